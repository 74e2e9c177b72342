/* bench_plugin_api: what the plugin API for real work costs (issue 11), against a real
 * axactord (1 worker) this program starts with the work and rediscache plugins, and a
 * redis-server it starts on a free loopback port:
 *   deferred_reply: asks answered from the actor's next message (ax_defer, a tell to
 *                   itself, ax_reply_token) vs answered at once, pipelined 16 deep:
 *                   asks/s and the ratio;
 *   offload_rtt:    an ask answered after a no-op ax_offload round trip vs a plain ask,
 *                   one at a time: p50 latency and the ratio;
 *   rediscache_get: GET through a rediscache actor (ax_io_watch + hiredis async +
 *                   deferred replies) vs redis-benchmark -t get on the same server, one
 *                   connection, pipelined 16 deep and one at a time: req/s and ratios.
 * usage: bench_plugin_api [-n N] [--redis-server PATH] [--redis-benchmark PATH] */
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

static pid_t daemon_pid = -1, redis_pid = -1;
static char tmpdir[] = "/tmp/axbench-api.XXXXXX";
static char sock[256];

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void stop_pid(pid_t *p)
{
    if (*p <= 0)
        return;
    kill(*p, SIGTERM);
    for (int i = 0; i < 500; i++) { /* 5 s, then SIGKILL */
        if (waitpid(*p, NULL, WNOHANG) == *p) {
            *p = -1;
            return;
        }
        usleep(10000);
    }
    kill(*p, SIGKILL);
    waitpid(*p, NULL, 0);
    *p = -1;
}

static void cleanup(void)
{
    stop_pid(&daemon_pid);
    stop_pid(&redis_pid);
    if (sock[0])
        unlink(sock);
    rmdir(tmpdir);
}

static void fail(const char *what, axc_conn *c, int rc)
{
    fprintf(stderr, "bench_plugin_api: %s: %s (%s)\n", what, ax_strerror(rc), c ? axc_errmsg(c) : "");
    cleanup();
    exit(1);
}

static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t l = sizeof a;
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) || getsockname(fd, (struct sockaddr *)&a, &l)) {
        perror("free port");
        exit(1);
    }
    close(fd);
    return ntohs(a.sin_port);
}

static pid_t spawn_argv(const char *const *argv)
{
    pid_t p = fork();
    if (p == 0) {
        if (!freopen("/dev/null", "w", stdout))
            _exit(126);
        execvp(argv[0], (char *const *)argv);
        fprintf(stderr, "bench_plugin_api: exec %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    return p;
}

static int cmp_double(const void *x, const void *y)
{
    double a = *(const double *)x, b = *(const double *)y;
    return (a > b) - (a < b);
}

static axc_target T;

/* n asks of msg pipelined `depth` deep: asks/s. */
static double pipelined(axc_conn *c, const char *msg, long n, int depth)
{
    double t0 = now_s();
    for (long b = 0; b < n / depth; b++) {
        for (int i = 0; i < depth; i++) {
            uint32_t id;
            int rc = axc_send_ask(c, &T, msg, NULL, 0, 5000, &id);
            if (rc)
                fail("send_ask", c, rc);
        }
        int rc = axc_flush(c);
        if (rc)
            fail("flush", c, rc);
        for (int got = 0; got < depth; got++) {
            axc_result r;
            rc = axc_poll_result(c, 5000, &r);
            if (rc != 1 || r.status)
                fail(msg, c, rc != 1 ? (rc ? rc : AX_ETIMEDOUT) : r.status);
            axc_free(r.data);
        }
    }
    return (double)(n / depth * depth) / (now_s() - t0);
}

/* n asks one at a time: p50 latency in us (and asks/s in *rate). */
static double sequential(axc_conn *c, const char *msg, long n, double *rate)
{
    double *lat = malloc((size_t)n * sizeof *lat), t0 = now_s();
    for (long i = 0; i < n; i++) {
        void *v = NULL;
        size_t len;
        double a = now_s();
        int rc = axc_ask(c, &T, msg, NULL, 0, 5000, &v, &len);
        if (rc)
            fail(msg, c, rc);
        lat[i] = now_s() - a;
        axc_free(v);
    }
    if (rate)
        *rate = (double)n / (now_s() - t0);
    qsort(lat, (size_t)n, sizeof *lat, cmp_double);
    double p50 = lat[n / 2] * 1e6;
    free(lat);
    return p50;
}

/* redis-benchmark -t get on the server: req/s of its CSV. */
static double redis_bench(const char *rb, int port, long n, int depth)
{
    char cmd[512], line[512];
    snprintf(cmd, sizeof cmd, "%s -h 127.0.0.1 -p %d -t get -c 1 -n %ld -P %d --csv 2>/dev/null", rb, port, n, depth);
    FILE *f = popen(cmd, "r");
    double rps = 0;
    while (f && fgets(line, sizeof line, f)) {
        char *p = strstr(line, "\"GET\",\"");
        if (p)
            rps = atof(p + 7);
    }
    if (f)
        pclose(f);
    return rps;
}

int main(int argc, char **argv)
{
    long n = 50000;
    const char *rs = "redis-server", *rb = "redis-benchmark";
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-n") && i + 1 < argc)
            n = atol(argv[++i]);
        else if (!strcmp(argv[i], "--redis-server") && i + 1 < argc)
            rs = argv[++i];
        else if (!strcmp(argv[i], "--redis-benchmark") && i + 1 < argc)
            rb = argv[++i];
        else {
            fprintf(stderr, "usage: %s [-n N] [--redis-server PATH] [--redis-benchmark PATH]\n", argv[0]);
            return 2;
        }
    }
    if (n < 1000) {
        fprintf(stderr, "bench_plugin_api: -n must be >= 1000\n");
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 1;
    }
    snprintf(sock, sizeof sock, "%s/axactord.sock", tmpdir);
    int port = free_port();
    char portbuf[16];
    snprintf(portbuf, sizeof portbuf, "%d", port);
    redis_pid = spawn_argv((const char *const[]){rs, "--port", portbuf, "--bind", "127.0.0.1", "--save", "",
                                                 "--appendonly", "no", NULL});
    daemon_pid = spawn_argv((const char *const[]){BENCH_DAEMON, "-s", sock, "--plugin-dir", BENCH_PLUGIN_DIR, "-p",
                                                  "work", "-p", "rediscache", "-l", "warn", "--set",
                                                  "runtime.workers=1", NULL});
    axc_conn *c = NULL;
    char err[256] = "";
    for (int i = 0; i < 500 && !c; i++) {
        if (access(sock, F_OK) != 0 || axc_connect(sock, 1000, &c, err, sizeof err) != 0)
            usleep(10000);
    }
    if (!c) {
        fprintf(stderr, "bench_plugin_api: cannot connect to the daemon: %s\n", err);
        cleanup();
        return 1;
    }
    axc_ref r;
    int rc = axc_spawn(c, "work", "w", NULL, &r);
    if (rc)
        fail("spawn work", c, rc);
    T = axc_by_name("w");
    pipelined(c, "nop", 10000, 16); /* warm-up */
    double direct = pipelined(c, "nop", n, 16), deferred = pipelined(c, "dnop", n, 16);
    printf("# plugin API (issue 11): one daemon, 1 worker, one connection, %ld asks per figure\n", n);
    printf("deferred_reply_pipelined_16: %.1fk asks/s (answered from the next message; direct reply %.1fk: "
           "deferred/direct %.2fx)\n", deferred / 1e3, direct / 1e3, deferred / direct);
    long ns = n / 2;
    double plain = sequential(c, "nop", ns, NULL), off = sequential(c, "onop", ns, NULL);
    printf("offload_rtt: p50 %.1f us per ask through a no-op ax_offload (plain ask p50 %.1f us: offload/plain "
           "%.2fx latency)\n", off, plain, off / plain);
    /* rediscache: the key's actor vs redis-benchmark on the same server */
    char arg[64];
    snprintf(arg, sizeof arg, "127.0.0.1:%d:60000", port);
    if ((rc = axc_spawn_arg(c, "rediscache", NULL, "key:__rand_int__", NULL, arg, strlen(arg), &r)))
        fail("spawn rediscache", c, rc);
    T = axc_by_key("rediscache", "key:__rand_int__"); /* the key redis-benchmark GETs */
    if ((rc = axc_ask(c, &T, "set", "xxx", 3, 5000, NULL, NULL)))
        fail("rediscache set", c, rc);
    pipelined(c, "get", 5000, 16); /* warm-up */
    double ours_p = pipelined(c, "get", n, 16), ours_s;
    sequential(c, "get", ns, &ours_s);
    double redis_p = redis_bench(rb, port, n, 16), redis_s = redis_bench(rb, port, ns, 1);
    printf("rediscache_get_pipelined_16: %.1fk req/s (redis-benchmark -t get -P 16: %.1fk: ours/redis %.2fx)\n",
           ours_p / 1e3, redis_p / 1e3, redis_p > 0 ? ours_p / redis_p : 0);
    printf("rediscache_get_seq: %.1fk req/s (redis-benchmark -t get -c 1: %.1fk: ours/redis %.2fx)\n", ours_s / 1e3,
           redis_s / 1e3, redis_s > 0 ? ours_s / redis_s : 0);
    axc_close(c);
    cleanup();
    return 0;
}
