/* bench_remote: remote messaging between two axactord daemons on loopback TCP (started
 * and stopped here, peering with a token), beside Erlang distribution (two `erl -sname`
 * nodes started here) in the same run.
 *   burst    N one-way "hit" tells from a pingpong actor on node A to one on node B:
 *            batched by the sender's node (one MAC per frame); msgs/s until B has all N
 *   pingpong actor-to-actor round trips A -> B -> A (tell "ping", tell "pong" back)
 *   ask      libaxclient asks through node A to an actor on node B, sequential
 * Targets (issue 4): burst >= 1M msgs/s and >= 2x Erlang's.
 *
 * Both daemons run with --workers workers (default 1; the peer links are worker 0's, the
 * actors are spawned on the workers in turn).
 *
 * usage: bench_remote [--daemon PATH] [--plugin-dir DIR] [-n HITS] [-r ROUNDS] [--workers N] [--no-erlang] */
#include <cjson/cJSON.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <axactor/client.h>
#include <axactor/plugin.h>

struct pp_cmd { /* the pingpong plugin's binary start/burst payload */
    ax_ref peer;
    int64_t n;
};

static char tmpdir[] = "/tmp/axbench-remote.XXXXXX";
static pid_t pids[8];
static int npids;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void cleanup(void)
{
    for (int i = 0; i < npids; i++) {
        if (pids[i] <= 0)
            continue;
        kill(pids[i], SIGTERM);
        int st;
        for (int k = 0; k < 300 && waitpid(pids[i], &st, WNOHANG) != pids[i]; k++)
            usleep(10000);
        kill(pids[i], SIGKILL);
        waitpid(pids[i], &st, WNOHANG);
        pids[i] = 0;
    }
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
    if (system(cmd) != 0)
        fprintf(stderr, "bench_remote: could not remove %s\n", tmpdir);
}

static void die(const char *what, axc_conn *c, int rc)
{
    fprintf(stderr, "bench_remote: %s: %s (%s)\n", what, ax_strerror(rc), c ? axc_errmsg(c) : "");
    cleanup();
    exit(1);
}

static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t sl = sizeof sa;
    if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof sa) || getsockname(fd, (struct sockaddr *)&sa, &sl)) {
        perror("bench_remote: port");
        exit(1);
    }
    close(fd);
    return ntohs(sa.sin_port);
}

static pid_t spawn_argv(char *const argv[], const char *out)
{
    pid_t p = fork();
    if (p == 0) {
        if (out && !freopen(out, "w", stdout))
            _exit(127);
        execvp(argv[0], argv);
        fprintf(stderr, "bench_remote: exec %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    if (p > 0)
        pids[npids++] = p;
    return p;
}

/* Clustered daemons need a shared lease store (the memory store is refused): a
 * redis-server on a free loopback port, started once. It carries only the two nodes'
 * lease traffic; no message of this benchmark goes through it. */
static int redis_port;

static int port_open(int port)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK),
                             .sin_port = htons((uint16_t)port)};
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    int ok = fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0;
    if (fd >= 0)
        close(fd);
    return ok;
}

static void store_start(void)
{
    char port[16], log[300];
    redis_port = free_port();
    snprintf(port, sizeof port, "%d", redis_port);
    snprintf(log, sizeof log, "%s/redis.log", tmpdir);
    char *argv[] = {"redis-server", "--port", port, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                    "--dir", tmpdir, NULL};
    if (spawn_argv(argv, log) <= 0) {
        fprintf(stderr, "bench_remote: cannot start redis-server (the lease store)\n");
        cleanup();
        exit(1);
    }
    for (int i = 0; i < 500 && !port_open(redis_port); i++) /* bounded: 5 s */
        usleep(10000);
    if (!port_open(redis_port)) {
        fprintf(stderr, "bench_remote: redis-server did not listen on %d (see %s)\n", redis_port, log);
        cleanup();
        exit(1);
    }
}

static int workers = 1;

static axc_conn *start_node(const char *daemon, const char *plugdir, const char *name, int port, const char *peer,
                            int peer_port)
{
    char sock[300], listen[64], peers[128], pd[600], logp[300], rport[64], wset[48];
    snprintf(wset, sizeof wset, "runtime.workers=%d", workers);
    if (!redis_port)
        store_start();
    snprintf(rport, sizeof rport, "lease.redis_port=%d", redis_port);
    snprintf(sock, sizeof sock, "%s/%s.sock", tmpdir, name);
    snprintf(logp, sizeof logp, "%s/%s.log", tmpdir, name);
    snprintf(listen, sizeof listen, "cluster.listen=127.0.0.1:%d", port);
    snprintf(peers, sizeof peers, "cluster.peers=%s=127.0.0.1:%d", peer, peer_port);
    snprintf(pd, sizeof pd, "%s", plugdir);
    char *argv[] = {(char *)daemon, "-s", sock, "-n", (char *)name, "--plugin-dir", pd, "-p", "pingpong",
                    "-l", "warn", "--set", listen, "--set", peers, "--set",
                    "cluster.auth_token=bench-token-0123456789", "--set", "lease.store=redis", "--set", rport,
                    "--set", wset, NULL};
    spawn_argv(argv, logp);
    char err[256] = "";
    for (int i = 0; i < 500; i++) {
        axc_conn *c = NULL;
        if (access(sock, F_OK) == 0 && axc_connect(sock, 1000, &c, err, sizeof err) == 0)
            return c;
        usleep(10000);
    }
    fprintf(stderr, "bench_remote: %s never served: %s\n", name, err);
    cleanup();
    exit(1);
}

/* The ref_node of peer `name` in c's NODES document once it is up (0 if never). */
static uint32_t peer_node(axc_conn *c, const char *name)
{
    for (int i = 0; i < 500; i++) {
        char *js = NULL;
        int rc = axc_nodes(c, &js);
        if (rc)
            die("nodes", c, rc);
        cJSON *doc = cJSON_Parse(js), *p;
        axc_free(js);
        uint32_t node = 0;
        cJSON_ArrayForEach(p, cJSON_GetObjectItem(doc, "peers"))
        {
            if (!strcmp(cJSON_GetStringValue(cJSON_GetObjectItem(p, "name")), name) &&
                !strcmp(cJSON_GetStringValue(cJSON_GetObjectItem(p, "state")), "up"))
                node = (uint32_t)cJSON_GetObjectItem(p, "ref_node")->valuedouble;
        }
        cJSON_Delete(doc);
        if (node)
            return node;
        usleep(10000);
    }
    return 0;
}

static long ask_num(axc_conn *c, const axc_target *t, const char *msg)
{
    void *rep = NULL;
    size_t n = 0;
    int rc = axc_ask(c, t, msg, NULL, 0, 10000, &rep, &n);
    if (rc)
        die(msg, c, rc);
    long v = atol(rep);
    axc_free(rep);
    return v;
}

/* Wait until the counter `msg` of t reaches want; returns the time it did. */
static double wait_count(axc_conn *c, const axc_target *t, const char *msg, long want, double limit)
{
    double end = now_s() + limit;
    while (ask_num(c, t, msg) < want) {
        if (now_s() > end) {
            char *js = NULL;
            fprintf(stderr, "bench_remote: %s stuck at %ld, below %ld\n", msg, ask_num(c, t, msg), want);
            if (axc_nodes(c, &js) == 0)
                fprintf(stderr, "%s\n", js);
            cleanup();
            exit(1);
        }
        usleep(500);
    }
    return now_s();
}

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Erlang distribution figures: 0 if erl is not available. */
static int erlang_figures(long n, long rounds, double *burst, double *rtt_us)
{
    if (system("command -v erl >/dev/null 2>&1 && command -v erlc >/dev/null 2>&1") != 0)
        return 0;
    char cmd[1200], host[256] = "", bnode[300], out[300], nstr[32], rstr[32], sname_a[64], sname_b[64];
    snprintf(cmd, sizeof cmd, "erlc -o %s %s/axbench_dist.erl", tmpdir, BENCH_SOURCE_DIR);
    if (system(cmd) != 0)
        return 0;
    gethostname(host, sizeof host);
    char *dot = strchr(host, '.');
    if (dot)
        *dot = 0;
    snprintf(sname_a, sizeof sname_a, "axbench_a%d", (int)getpid());
    snprintf(sname_b, sizeof sname_b, "axbench_b%d", (int)getpid());
    snprintf(bnode, sizeof bnode, "%s@%s", sname_b, host);
    char *bargv[] = {"erl", "-sname", sname_b, "-setcookie", "axbench", "-noshell", "-noinput", "-pa", tmpdir, NULL};
    pid_t b = spawn_argv(bargv, "/dev/null");
    (void)b;
    snprintf(out, sizeof out, "%s/erl.out", tmpdir);
    snprintf(nstr, sizeof nstr, "%ld", n);
    snprintf(rstr, sizeof rstr, "%ld", rounds);
    for (int attempt = 0; attempt < 50; attempt++) { /* node B needs a moment to register */
        char *aargv[] = {"erl", "-sname", sname_a, "-setcookie", "axbench", "-noshell", "-noinput", "-pa", tmpdir,
                         "-run", "axbench_dist", "main", bnode, nstr, rstr, NULL};
        pid_t a = spawn_argv(aargv, out);
        int st = 0;
        waitpid(a, &st, 0);
        pids[--npids] = 0;
        FILE *f = fopen(out, "r");
        char line[128];
        int got = 0;
        while (f && fgets(line, sizeof line, f)) {
            got += sscanf(line, "burst %lf", burst) == 1;
            got += sscanf(line, "rtt_us %lf", rtt_us) == 1;
        }
        if (f)
            fclose(f);
        if (got == 2)
            return 1;
        usleep(200000);
    }
    return 0;
}

int main(int argc, char **argv)
{
    const char *daemon = BENCH_DAEMON, *plugdir = BENCH_PLUGIN_DIR;
    long n = 2000000, rounds = 20000, asks = 20000;
    int erlang = 1;
    for (int i = 1; i < argc; i++) {
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(argv[i], "--daemon") && v)
            daemon = argv[++i];
        else if (!strcmp(argv[i], "--plugin-dir") && v)
            plugdir = argv[++i];
        else if (!strcmp(argv[i], "-n") && v)
            n = atol(argv[++i]);
        else if (!strcmp(argv[i], "-r") && v)
            rounds = asks = atol(argv[++i]);
        else if (!strcmp(argv[i], "--workers") && v)
            workers = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--no-erlang"))
            erlang = 0;
        else {
            fprintf(stderr, "usage: bench_remote [--daemon PATH] [--plugin-dir DIR] [-n HITS] [-r ROUNDS] [--workers N] "
                            "[--no-erlang]\n");
            return 2;
        }
    }
    signal(SIGPIPE, SIG_IGN);
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 1;
    }
    int pa = free_port(), pb = free_port();
    axc_conn *ca = start_node(daemon, plugdir, "bench-a", pa, "bench-b", pb);
    axc_conn *cb = start_node(daemon, plugdir, "bench-b", pb, "bench-a", pa);
    uint32_t b_on_a = peer_node(ca, "bench-b");
    if (!b_on_a || !peer_node(cb, "bench-a"))
        die("the two daemons never peered", NULL, AX_ECONN);
    axc_ref d, s;
    int rc = axc_spawn(ca, "pingpong", "driver", NULL, &d);
    if (rc)
        die("spawn driver", ca, rc);
    rc = axc_spawn(cb, "pingpong", "sink", "{\"mailbox_capacity\":16777216}", &s);
    if (rc)
        die("spawn sink", cb, rc);
    axc_target td = axc_by_ref(&d), ts = axc_by_ref(&s);
    struct pp_cmd cmd = {{s.id, s.gen, b_on_a}, 0};

    /* burst: median of 3 */
    double rates[3];
    for (int k = 0; k < 3; k++) {
        long base = ask_num(cb, &ts, "hits");
        cmd.n = n;
        double t0 = now_s();
        if ((rc = axc_tell(ca, &td, "burst", &cmd, sizeof cmd)))
            die("burst", ca, rc);
        double t1 = wait_count(cb, &ts, "hits", base + n, 20);
        rates[k] = (double)n / (t1 - t0);
    }
    qsort(rates, 3, sizeof rates[0], cmp_d);
    /* actor ping-pong round trips A -> B -> A */
    long base = ask_num(ca, &td, "rounds");
    cmd.n = rounds;
    double t0 = now_s();
    if ((rc = axc_tell(ca, &td, "start", &cmd, sizeof cmd)))
        die("start", ca, rc);
    double t1 = wait_count(ca, &td, "rounds", base + rounds, 120);
    double rtt_actor = (t1 - t0) / (double)rounds * 1e6;
    /* client asks through A to the actor on B */
    t0 = now_s();
    for (long i = 0; i < asks; i++) {
        void *rep = NULL;
        size_t len = 0;
        if ((rc = axc_ask(ca, &ts, "ping", NULL, 0, 10000, &rep, &len)))
            die("ask", ca, rc);
        axc_free(rep);
    }
    double rtt_ask = (now_s() - t0) / (double)asks * 1e6;
    char *js = NULL;
    double bytes = 0, frames = 0;
    if (axc_nodes(ca, &js) == 0) {
        cJSON *doc = cJSON_Parse(js), *p;
        cJSON_ArrayForEach(p, cJSON_GetObjectItem(doc, "peers"))
        {
            bytes = cJSON_GetObjectItem(p, "bytes_out")->valuedouble;
            frames = cJSON_GetObjectItem(p, "frames_out")->valuedouble;
        }
        cJSON_Delete(doc);
        axc_free(js);
    }
    axc_close(ca);
    axc_close(cb);
    cleanup(); /* stop the daemons before Erlang runs: the machine is small */
    if (!mkdtemp(strcpy(tmpdir, "/tmp/axbench-remote.XXXXXX"))) {
        perror("mkdtemp");
        return 1;
    }
    double eb = 0, ertt = 0;
    int have_erl = erlang && erlang_figures(n, rounds, &eb, &ertt);
    cleanup();

    printf("# remote messaging, two daemons on loopback TCP (HMAC-SHA256 per frame)\n");
    printf("%-34s %14s %14s %8s\n", "benchmark", "axactor", "erlang dist", "ratio");
    if (have_erl)
        printf("%-34s %12.2fM/s %12.2fM/s %7.2fx\n", "remote tell burst (one-way)", rates[1] / 1e6, eb / 1e6,
               rates[1] / eb);
    else
        printf("%-34s %12.2fM/s %14s %8s\n", "remote tell burst (one-way)", rates[1] / 1e6, "n/a", "-");
    if (have_erl)
        printf("%-34s %11.1f us %11.1f us %7.2fx\n", "actor round trip A->B->A", rtt_actor, ertt, ertt / rtt_actor);
    else
        printf("%-34s %11.1f us %14s %8s\n", "actor round trip A->B->A", rtt_actor, "n/a", "-");
    printf("%-34s %11.1f us %14s %8s\n", "client ask via A to actor on B", rtt_ask, "-", "-");
    printf("# burst: %ld msgs x3 (median), %.0f frames / %.1f MB sent by A in all runs; targets: >= 1M msgs/s "
           "and >= 2x Erlang\n", n, frames, bytes / 1e6);
    int ok = rates[1] >= 1e6 && (!have_erl || rates[1] >= 2 * eb);
    printf("# target %s\n", ok ? "met" : "NOT met");
    return 0;
}
