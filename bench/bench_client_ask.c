/* bench_client_ask: client ask round trips through libaxclient over the Unix socket,
 * against a real axactord this program starts (and stops) with the counter plugin.
 * Two runs: one connection, sequential asks ("get"), with p50/p99 latency; and the
 * same connection pipelined (axc_send_ask x depth, then axc_poll_result x depth).
 * Redis figures (from bench/run: redis-benchmark -t ping) are printed beside ours.
 * The daemon runs with --workers workers (default 1).
 *
 * --parallel: instead, 2 connections from 2 client threads, each pipelining asks to an
 * actor of its own, the two actors on different workers: against a daemon with 1
 * worker, then one with 2; aggregate asks/s and the ratio, beside Redis's ratio of
 * io-threads 2 to 1 on 2 connections (--redis-par1/--redis-par2, from bench/run).
 *
 * --async REDIS_SOCKET: instead, the asynchronous client (axactor/async.h) through its libev
 * adapter, depth asks kept in flight (each answer sends the next), beside hiredis's async
 * API through its libev adapter keeping depth PINGs in flight on the redis-server at
 * REDIS_SOCKET; best of 3 runs each, alternating, and the ratio.
 *
 * usage: bench_client_ask [--daemon PATH] [--plugin PATH] [-n ASKS] [--depth D] [--workers N]
 *                         [--redis-seq RPS] [--redis-seq-p50 MS] [--redis-seq-p99 MS]
 *                         [--redis-pipe RPS]
 *        bench_client_ask --parallel [-n ASKS] [--depth D] [--redis-par1 RPS] [--redis-par2 RPS]
 *        bench_client_ask --async REDIS_SOCKET [-n ASKS] [--depth D] */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <axactor/adapters/libev.h>
#include <axactor/client.h>
#include <hiredis/adapters/libev.h>
#include <hiredis/async.h>

static pid_t daemon_pid = -1;
static char tmpdir[32];
static char sock[256];

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void cleanup(void)
{
    if (daemon_pid > 0) {
        kill(daemon_pid, SIGTERM);
        int st;
        for (int i = 0; i < 500; i++) { /* 5 s, then SIGKILL */
            if (waitpid(daemon_pid, &st, WNOHANG) == daemon_pid) {
                daemon_pid = -1;
                break;
            }
            usleep(10000);
        }
        if (daemon_pid > 0) {
            kill(daemon_pid, SIGKILL);
            waitpid(daemon_pid, &st, 0);
        }
        daemon_pid = -1;
    }
    if (sock[0])
        unlink(sock);
    sock[0] = 0;
    if (tmpdir[0])
        rmdir(tmpdir);
    tmpdir[0] = 0;
}

static void fail(const char *what, axc_conn *c, int rc)
{
    fprintf(stderr, "bench_client_ask: %s: %s (%s)\n", what, ax_strerror(rc), c ? axc_errmsg(c) : "");
    axc_close(c);
    cleanup();
    exit(1);
}

static int cmp_double(const void *x, const void *y)
{
    double a = *(const double *)x, b = *(const double *)y;
    return (a > b) - (a < b);
}

static double pct(const double *sorted, size_t n, double p)
{
    size_t i = (size_t)(p * (double)(n - 1) + 0.5);
    return sorted[i < n ? i : n - 1];
}

static void fmt_rate(char *buf, size_t len, double r)
{
    if (r >= 1e6)
        snprintf(buf, len, "%.2fM", r / 1e6);
    else
        snprintf(buf, len, "%.1fk", r / 1e3);
}

static axc_conn *start_daemon(const char *daemon, const char *plugin, int workers)
{
    char wset[64];
    snprintf(wset, sizeof wset, "runtime.workers=%d", workers);
    snprintf(tmpdir, sizeof tmpdir, "/tmp/axbench.XXXXXX");
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        exit(1);
    }
    snprintf(sock, sizeof sock, "%s/axactord.sock", tmpdir);
    daemon_pid = fork();
    if (daemon_pid < 0) {
        perror("fork");
        exit(1);
    }
    if (daemon_pid == 0) {
        execl(daemon, daemon, "-s", sock, "-p", plugin, "-l", "warn", "--set", wset, (char *)NULL);
        fprintf(stderr, "bench_client_ask: exec %s: %s\n", daemon, strerror(errno));
        _exit(127);
    }
    char err[256] = "";
    for (int i = 0; i < 500; i++) { /* up to 5 s for the socket */
        axc_conn *c = NULL;
        if (access(sock, F_OK) == 0 && axc_connect(sock, 1000, &c, err, sizeof err) == 0)
            return c;
        int st;
        if (waitpid(daemon_pid, &st, WNOHANG) == daemon_pid) {
            daemon_pid = -1;
            fprintf(stderr, "bench_client_ask: axactord exited during start-up\n");
            cleanup();
            exit(1);
        }
        usleep(10000);
    }
    fprintf(stderr, "bench_client_ask: cannot connect to %s: %s\n", sock, err);
    cleanup();
    exit(1);
}

/* ---- --parallel: 2 connections, 2 actors on different workers ---- */

typedef struct par_client {
    axc_conn *c;
    axc_ref ref;
    long n;
    int depth;
    pthread_barrier_t *go;
    int rc;
    char err[320];
} par_client;

static void *par_main(void *arg)
{
    par_client *p = arg;
    axc_conn *c = p->c;
    pthread_barrier_wait(p->go);
    axc_target t = axc_by_ref(&p->ref);
    for (long b = 0; b < p->n / p->depth && !p->rc; b++) {
        for (int i = 0; i < p->depth && !p->rc; i++) {
            uint32_t id;
            p->rc = axc_send_ask(c, &t, "get", NULL, 0, 5000, &id);
        }
        if (!p->rc)
            p->rc = axc_flush(c);
        for (int got = 0; got < p->depth && !p->rc; got++) {
            axc_result res;
            int r = axc_poll_result(c, 5000, &res);
            p->rc = r < 0 ? r : r == 0 ? AX_ETIMEDOUT : res.status;
            if (r == 1)
                axc_free(res.data);
        }
    }
    if (p->rc)
        snprintf(p->err, sizeof p->err, "%s (%s)", ax_strerror(p->rc), axc_errmsg(c));
    return NULL;
}

/* Aggregate asks/s of 2 connections against a daemon with `workers` workers. The
 * daemon hands accepted connections to its workers in turn: this program's first
 * connection (c) goes to worker 0, the two measured ones to workers 1 and 0 (with 2
 * workers). cross 0: each asks the actor on its own worker; 1: on the other worker. */
static double par_run(const char *daemon, const char *plugin, int workers, long n, int depth, int cross)
{
    axc_conn *c = start_daemon(daemon, plugin, workers);
    par_client pc[2];
    const int conn_worker[2] = {1 % workers, 0};
    pthread_barrier_t go;
    pthread_barrier_init(&go, NULL, 3);
    for (int i = 0; i < 2; i++) {
        char cfg[32];
        snprintf(cfg, sizeof cfg, "{\"worker\":%d}", cross ? (conn_worker[i] + 1) % workers : conn_worker[i]);
        memset(&pc[i], 0, sizeof pc[i]);
        char err[256];
        int crc = axc_connect(sock, 5000, &pc[i].c, err, sizeof err);
        if (crc) {
            fprintf(stderr, "bench_client_ask: connect: %s\n", err);
            cleanup();
            exit(1);
        }
        int rc = axc_spawn(c, "counter", NULL, cfg, &pc[i].ref);
        if (rc)
            fail("spawn counter", c, rc);
        pc[i].n = n;
        pc[i].depth = depth;
        pc[i].go = &go;
    }
    pthread_t th[2];
    for (int i = 0; i < 2; i++)
        pthread_create(&th[i], NULL, par_main, &pc[i]);
    pthread_barrier_wait(&go);
    double t0 = now_s();
    for (int i = 0; i < 2; i++)
        pthread_join(th[i], NULL);
    double dt = now_s() - t0;
    pthread_barrier_destroy(&go);
    for (int i = 0; i < 2; i++)
        if (pc[i].rc) {
            fprintf(stderr, "bench_client_ask: --parallel, workers %d, connection %d: %s\n", workers, i, pc[i].err);
            axc_close(c);
            cleanup();
            exit(1);
        }
    for (int i = 0; i < 2; i++)
        axc_close(pc[i].c);
    axc_close(c);
    cleanup();
    return (double)(2 * (n / depth) * depth) / dt;
}

static int parallel_main(const char *daemon, const char *plugin, long n, int depth, double redis1, double redis2)
{
    double r1 = 0, r2 = 0, rx = 0;
    for (int rep = 0; rep < 3; rep++) { /* the best of 3: the machine is shared */
        double a = par_run(daemon, plugin, 1, n, depth, 0), b = par_run(daemon, plugin, 2, n, depth, 0),
               x = par_run(daemon, plugin, 2, n, depth, 1);
        r1 = a > r1 ? a : r1;
        r2 = b > r2 ? b : r2;
        rx = x > rx ? x : rx;
    }
    char a[32], b[32], x[32];
    fmt_rate(a, sizeof a, r1);
    fmt_rate(b, sizeof b, r2);
    fmt_rate(x, sizeof x, rx);
    printf("# client ask, 2 connections (2 client threads) pipelining %d asks each to their own actor, "
           "%ld asks per connection, best of 3\n", depth, n);
    printf("client_ask_2conn_pipelined_%d: workers=1 %s asks/s, workers=2 %s asks/s (each connection's actor on "
           "its worker): 2w/1w %.2fx; actors on the other worker %s asks/s: %.2fx", depth, a, b, r2 / r1, x, rx / r1);
    if (redis1 > 0 && redis2 > 0) {
        fmt_rate(a, sizeof a, redis1);
        fmt_rate(b, sizeof b, redis2);
        printf(" (redis ping -c 2 -P %d: io-threads 1 %s, io-threads 2 %s req/s: %.2fx)", depth, a, b, redis2 / redis1);
    }
    printf("\n");
    return 0;
}

/* ---- --async: the asynchronous client beside hiredis's, both on libev ---- */

typedef struct abench {
    long target, sent, done;
    int err;
    char errmsg[256];
    axc_target t;
    struct ev_loop *loop;
} abench;

static void ax_cb(axc_async *ac, const axc_reply *r, void *priv)
{
    abench *b = priv;
    if (r->status) {
        b->err = r->status;
        snprintf(b->errmsg, sizeof b->errmsg, "%s", r->errmsg);
        ev_break(b->loop, EVBREAK_ALL);
        return;
    }
    if (++b->done == b->target)
        ev_break(b->loop, EVBREAK_ALL);
    else if (b->sent < b->target && axc_async_ask(ac, &b->t, "get", NULL, 0, 5000, 0, ax_cb, b) == 0)
        b->sent++;
}

static void redis_cb(redisAsyncContext *rc, void *reply, void *priv)
{
    abench *b = priv;
    if (!reply) {
        b->err = -1;
        snprintf(b->errmsg, sizeof b->errmsg, "%s", rc->errstr);
        ev_break(b->loop, EVBREAK_ALL);
        return;
    }
    if (++b->done == b->target)
        ev_break(b->loop, EVBREAK_ALL);
    else if (b->sent < b->target && redisAsyncCommand(rc, redis_cb, b, "PING") == REDIS_OK)
        b->sent++;
}

static double async_ax_run(axc_async *ac, struct ev_loop *loop, const axc_target *t, long n, int depth)
{
    abench b = {.target = n, .t = *t, .loop = loop};
    double t0 = now_s();
    for (int i = 0; i < depth && b.sent < n; i++)
        if (axc_async_ask(ac, &b.t, "get", NULL, 0, 5000, 0, ax_cb, &b) == 0)
            b.sent++;
    ev_run(loop, 0);
    if (b.err) {
        fprintf(stderr, "bench_client_ask --async: ask: %s\n", b.errmsg);
        cleanup();
        exit(1);
    }
    return (double)n / (now_s() - t0);
}

static double async_redis_run(redisAsyncContext *rc, struct ev_loop *loop, long n, int depth)
{
    abench b = {.target = n, .loop = loop};
    double t0 = now_s();
    for (int i = 0; i < depth && b.sent < n; i++)
        if (redisAsyncCommand(rc, redis_cb, &b, "PING") == REDIS_OK)
            b.sent++;
    ev_run(loop, 0);
    if (b.err) {
        fprintf(stderr, "bench_client_ask --async: redis PING: %s\n", b.errmsg);
        cleanup();
        exit(1);
    }
    return (double)n / (now_s() - t0);
}

static int async_main(const char *daemon, const char *plugin, const char *rsock, long n, int depth)
{
    axc_conn *c = start_daemon(daemon, plugin, 1);
    axc_ref ref;
    int rc = axc_spawn(c, "counter", "bench", NULL, &ref);
    if (rc)
        fail("spawn counter", c, rc);
    axc_close(c);
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    axc_async *ac = NULL;
    char err[256];
    if ((rc = axc_async_connect(sock, 5000, &ac, err, sizeof err)) || (rc = axc_libev_attach(ac, loop))) {
        fprintf(stderr, "bench_client_ask --async: connect: %s\n", err);
        cleanup();
        return 1;
    }
    redisAsyncContext *rd = redisAsyncConnectUnix(rsock);
    if (!rd || rd->err || redisLibevAttach(loop, rd) != REDIS_OK) {
        fprintf(stderr, "bench_client_ask --async: redis at %s: %s\n", rsock, rd ? rd->errstr : "out of memory");
        cleanup();
        return 1;
    }
    axc_target t = axc_by_ref(&ref);
    async_ax_run(ac, loop, &t, n / 10 + 1, depth); /* warm-up (and the HELLO) */
    async_redis_run(rd, loop, n / 10 + 1, depth);
    double ax_best = 0, rd_best = 0;
    for (int run = 0; run < 3; run++) {
        double a = async_ax_run(ac, loop, &t, n, depth), r = async_redis_run(rd, loop, n, depth);
        ax_best = a > ax_best ? a : ax_best;
        rd_best = r > rd_best ? r : rd_best;
    }
    char a[32], r[32];
    fmt_rate(a, sizeof a, ax_best);
    fmt_rate(r, sizeof r, rd_best);
    printf("async_client_ask: %s asks/s (libaxclient async, libev adapter, %d in flight, %ld asks, best of 3)\n", a,
           depth, n);
    printf("async_client_peer: %s req/s (hiredis async PING, libev adapter, %d in flight, same loop and run)\n", r,
           depth);
    printf("async_client_ratio: %.2f (axactor / hiredis)\n", ax_best / rd_best);
    redisAsyncFree(rd);
    axc_async_free(ac);
    ev_loop_destroy(loop);
    cleanup();
    return 0;
}

int main(int argc, char **argv)
{
    const char *daemon = BENCH_DAEMON, *plugin = BENCH_COUNTER_PLUGIN;
    long n = 100000;
    int depth = 16;
    double redis_seq = 0, redis_p50 = 0, redis_p99 = 0, redis_pipe = 0, redis_par1 = 0, redis_par2 = 0;
    int workers = 1, parallel = 0;
    const char *async_redis = NULL;
    for (int i = 1; i < argc; i++) {
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(argv[i], "--daemon") && v)
            daemon = argv[++i];
        else if (!strcmp(argv[i], "--plugin") && v)
            plugin = argv[++i];
        else if (!strcmp(argv[i], "-n") && v)
            n = atol(argv[++i]);
        else if (!strcmp(argv[i], "--depth") && v)
            depth = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--redis-seq") && v)
            redis_seq = atof(argv[++i]);
        else if (!strcmp(argv[i], "--redis-seq-p50") && v)
            redis_p50 = atof(argv[++i]);
        else if (!strcmp(argv[i], "--redis-seq-p99") && v)
            redis_p99 = atof(argv[++i]);
        else if (!strcmp(argv[i], "--redis-pipe") && v)
            redis_pipe = atof(argv[++i]);
        else if (!strcmp(argv[i], "--redis-par1") && v)
            redis_par1 = atof(argv[++i]);
        else if (!strcmp(argv[i], "--redis-par2") && v)
            redis_par2 = atof(argv[++i]);
        else if (!strcmp(argv[i], "--workers") && v)
            workers = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--parallel"))
            parallel = 1;
        else if (!strcmp(argv[i], "--async") && v)
            async_redis = argv[++i];
        else {
            fprintf(stderr, "usage: %s [--daemon PATH] [--plugin PATH] [-n ASKS] [--depth D] [--workers N] "
                            "[--redis-seq RPS] [--redis-seq-p50 MS] [--redis-seq-p99 MS] [--redis-pipe RPS]\n"
                            "       %s --parallel [-n ASKS] [--depth D] [--redis-par1 RPS] [--redis-par2 RPS]\n",
                    argv[0], argv[0]);
            return 2;
        }
    }
    if (n < 1000 || depth < 1 || depth > 4096 || workers < 1 || workers > 256) {
        fprintf(stderr, "bench_client_ask: -n must be >= 1000, --depth 1..4096, --workers 1..256\n");
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    if (parallel)
        return parallel_main(daemon, plugin, n, depth, redis_par1, redis_par2);
    if (async_redis)
        return async_main(daemon, plugin, async_redis, n, depth);

    axc_conn *c = start_daemon(daemon, plugin, workers);
    axc_ref ref;
    int rc = axc_spawn(c, "counter", "bench", NULL, &ref);
    if (rc)
        fail("spawn counter", c, rc);
    axc_target t = axc_by_ref(&ref);
    double *lat = malloc((size_t)n * sizeof *lat);
    if (!lat)
        fail("malloc", c, AX_ENOMEM);

    /* warm-up */
    for (int i = 0; i < 2000; i++) {
        void *r = NULL;
        size_t rl;
        if ((rc = axc_ask(c, &t, "get", NULL, 0, 5000, &r, &rl)))
            fail("ask", c, rc);
        axc_free(r);
    }

    /* 1 connection, sequential */
    double t0 = now_s();
    for (long i = 0; i < n; i++) {
        void *r = NULL;
        size_t rl;
        double a = now_s();
        if ((rc = axc_ask(c, &t, "get", NULL, 0, 5000, &r, &rl)))
            fail("ask", c, rc);
        lat[i] = now_s() - a;
        axc_free(r);
    }
    double seq_dt = now_s() - t0, seq_rate = (double)n / seq_dt;
    qsort(lat, (size_t)n, sizeof *lat, cmp_double);
    double p50 = pct(lat, (size_t)n, 0.50) * 1e6, p99 = pct(lat, (size_t)n, 0.99) * 1e6;

    /* pipelined: depth asks in flight, then collect them all */
    long batches = n / depth;
    t0 = now_s();
    for (long b = 0; b < batches; b++) {
        double a = now_s();
        for (int i = 0; i < depth; i++) {
            uint32_t id;
            if ((rc = axc_send_ask(c, &t, "get", NULL, 0, 5000, &id)))
                fail("send_ask", c, rc);
        }
        if ((rc = axc_flush(c)))
            fail("flush", c, rc);
        for (int got = 0; got < depth;) {
            axc_result res;
            rc = axc_poll_result(c, 5000, &res);
            if (rc < 0)
                fail("poll_result", c, rc);
            if (rc == 0)
                fail("poll_result", c, AX_ETIMEDOUT);
            if (res.status != AX_OK)
                fail("pipelined ask", c, res.status);
            axc_free(res.data);
            got++;
        }
        lat[b] = now_s() - a;
    }
    double pipe_dt = now_s() - t0, pipe_rate = (double)(batches * depth) / pipe_dt;
    qsort(lat, (size_t)batches, sizeof *lat, cmp_double);
    double bp50 = pct(lat, (size_t)batches, 0.50) * 1e6, bp99 = pct(lat, (size_t)batches, 0.99) * 1e6;

    char a[32], b[32];
    printf("# client ask: libaxclient over a Unix socket, counter \"get\", 1 connection, %ld asks\n", n);
    fmt_rate(a, sizeof a, seq_rate);
    printf("client_ask_seq: %s asks/s, p50 %.1fus p99 %.1fus", a, p50, p99);
    if (redis_seq > 0) {
        fmt_rate(b, sizeof b, redis_seq);
        printf(" (redis ping -c 1: %s req/s", b);
        if (redis_p50 > 0)
            printf(", p50 %.1fus p99 %.1fus", redis_p50 * 1e3, redis_p99 * 1e3);
        printf("; ours/redis %.2fx)", seq_rate / redis_seq);
    }
    printf("\n");
    fmt_rate(a, sizeof a, pipe_rate);
    printf("client_ask_pipelined_%d: %s asks/s, batch p50 %.1fus p99 %.1fus", depth, a, bp50, bp99);
    if (redis_pipe > 0) {
        fmt_rate(b, sizeof b, redis_pipe);
        printf(" (redis ping -c 1 -P %d: %s req/s; ours/redis %.2fx)", depth, b, pipe_rate / redis_pipe);
    }
    printf("\n");

    free(lat);
    axc_close(c);
    cleanup();
    return 0;
}
