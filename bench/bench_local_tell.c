/* bench_local_tell: local tell throughput between two plugin actors in one daemon
 * process. It links the daemon's own runtime (libaxd), loads the pingpong test plugin,
 * and drives the real libev loop the way axactord does: "start" (ping-pong round trips)
 * and "burst" (one-way hits paced by the bounded mailbox). Each figure is the median of
 * several runs of at least --seconds of work, in messages per second.
 *
 * usage: bench_local_tell [--plugin PATH] [--seconds S] [--runs R]
 *                         [--erlang-pingpong MSGS_PER_S] [--erlang-burst MSGS_PER_S]
 * The erlang figures (from bench/erlang_bench.escript) are only printed beside ours. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "config.h"
#include "log.h"
#include "server.h"

#define TARGET 10e6

struct pp_cmd { /* the binary "start"/"burst" payload of tests/plugins/pingpong.c */
    ax_ref peer;
    int64_t n;
};

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void die(const char *what, int rc)
{
    fprintf(stderr, "bench_local_tell: %s: %s\n", what, ax_strerror(rc));
    exit(1);
}

/* Tell `to` a message from outside any actor (as the client listener does). */
static void inject(axd_rt *s, ax_ref to, const char *msg, ax_ref peer, int64_t n)
{
    struct pp_cmd c = {peer, n};
    axd_env *e = axd_env_new(s, sizeof c);
    if (!e)
        die("axd_env_new", AX_ENOMEM);
    memcpy(e->data, &c, sizeof c);
    e->m.id = axd_msg_lookup(s, msg, strlen(msg));
    int rc = axd_actor_deliver(s, axd_actor_get(s, to), e);
    if (rc) {
        axd_env_free(s, e);
        die(msg, rc);
    }
}

static uint64_t processed(axd_rt *s, ax_ref r)
{
    axd_actor *a = axd_actor_get(s, r);
    if (!a) {
        fprintf(stderr, "bench_local_tell: an actor died during the run\n");
        exit(1);
    }
    return a->processed;
}

/* One run: tell `a` msg(b, n) and turn the loop until `b` handled `want` more
 * messages. Returns the elapsed seconds. */
static double run_once(axd_rt *s, ax_ref a, ax_ref b, const char *msg, int64_t n, uint64_t want)
{
    uint64_t goal = processed(s, b) + want;
    double t0 = now_s();
    inject(s, a, msg, b, n);
    while (processed(s, b) < goal)
        ev_run(s->loop, EVRUN_NOWAIT);
    double dt = now_s() - t0;
    /* let the tail (credits, last pong) drain so runs do not overlap */
    for (int i = 0; i < 16 && s->ready_head; i++)
        ev_run(s->loop, EVRUN_NOWAIT);
    return dt;
}

static int cmp_double(const void *x, const void *y)
{
    double a = *(const double *)x, b = *(const double *)y;
    return (a > b) - (a < b);
}

/* Messages per second for `kind`: calibrate n so one run takes >= seconds, then the
 * median of `runs` runs. */
static double measure(axd_rt *s, ax_ref a, ax_ref b, const char *kind, double seconds, int runs)
{
    int pingpong = strcmp(kind, "start") == 0;
    int64_t n = 100000;
    for (;;) { /* also the warm-up */
        double dt = run_once(s, a, b, kind, n, (uint64_t)n);
        if (dt >= seconds)
            break;
        double scale = dt > 0.01 ? seconds * 1.1 / dt : 10.0;
        n = (int64_t)((double)n * (scale > 10.0 ? 10.0 : scale < 1.2 ? 1.2 : scale));
    }
    double rates[16];
    if (runs > 16)
        runs = 16;
    for (int i = 0; i < runs; i++) {
        double dt = run_once(s, a, b, kind, n, (uint64_t)n);
        /* a round trip is two messages: ping and pong */
        rates[i] = (double)n * (pingpong ? 2.0 : 1.0) / dt;
    }
    qsort(rates, (size_t)runs, sizeof rates[0], cmp_double);
    return rates[runs / 2];
}

static void fmt_rate(char *buf, size_t len, double r)
{
    if (r >= 1e6)
        snprintf(buf, len, "%.1fM", r / 1e6);
    else
        snprintf(buf, len, "%.0fk", r / 1e3);
}

static void report(const char *name, double ours, double erl)
{
    char a[32], b[32];
    fmt_rate(a, sizeof a, ours);
    printf("%s: %s msgs/s (target 10M: %.2fx", name, a, ours / TARGET);
    if (erl > 0) {
        fmt_rate(b, sizeof b, erl);
        printf("; erlang %s: %.2fx", b, ours / erl);
    }
    printf(")\n");
    fflush(stdout);
}

int main(int argc, char **argv)
{
    const char *plugin = NULL;
    double seconds = 1.0, erl_pp = 0, erl_burst = 0;
    int runs = 3;
    for (int i = 1; i < argc; i++) {
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(argv[i], "--plugin") && v)
            plugin = argv[++i];
        else if (!strcmp(argv[i], "--seconds") && v)
            seconds = atof(argv[++i]);
        else if (!strcmp(argv[i], "--runs") && v)
            runs = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--erlang-pingpong") && v)
            erl_pp = atof(argv[++i]);
        else if (!strcmp(argv[i], "--erlang-burst") && v)
            erl_burst = atof(argv[++i]);
        else {
            fprintf(stderr, "usage: %s [--plugin PATH] [--seconds S] [--runs R] "
                            "[--erlang-pingpong RATE] [--erlang-burst RATE]\n", argv[0]);
            return 2;
        }
    }
    if (!plugin)
        plugin = BENCH_PINGPONG_PLUGIN; /* the build tree's pingpong.so */
    if (seconds <= 0 || runs < 1) {
        fprintf(stderr, "bench_local_tell: --seconds and --runs must be positive\n");
        return 2;
    }

    axd_config cfg;
    char err[512];
    axd_config_defaults(&cfg);
    axd_log_set_level(AX_LOG_WARN);
    cfg.log_level = AX_LOG_WARN;
    struct ev_loop *loop = ev_default_loop(EVFLAG_AUTO);
    static axd_server srv;
    axd_server_init(&srv, loop, &cfg);
    if (axd_plugin_load(&srv.rt, plugin, NULL, err, sizeof err) != 0) {
        fprintf(stderr, "bench_local_tell: cannot load %s: %s\n", plugin, err);
        return 1;
    }
    ax_ref a, b;
    const char *why = "";
    int rc;
    if ((rc = axd_actor_spawn(&srv.rt, "pingpong", 8, NULL, &a, &why)) != 0 ||
        (rc = axd_actor_spawn(&srv.rt, "pingpong", 8, NULL, &b, &why)) != 0) {
        fprintf(stderr, "bench_local_tell: spawn: %s (%s)\n", ax_strerror(rc), why);
        return 1;
    }
    printf("# local tell: 2 pingpong actors, mailbox capacity %u, batch %u, >= %.1f s per run, median of %d\n",
           srv.cfg.mailbox_capacity, srv.cfg.batch, seconds, runs);
    report("local_tell_pingpong", measure(&srv.rt, a, b, "start", seconds, runs), erl_pp);
    report("local_tell_burst", measure(&srv.rt, a, b, "burst", seconds, runs), erl_burst);

    axd_server_free(&srv);
    ev_loop_destroy(loop);
    return 0;
}
