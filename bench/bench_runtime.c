/* bench_runtime: the actor life cycle in one daemon process. It links the daemon's own
 * runtime (libaxd), registers a small built-in actor type ("bcount": an 8-byte counter
 * state, as plugins/counter.c) and drives the real libev loop the way axactord does:
 *
 *   spawn_stop             spawn N plain actors, stop them all, turn the loop until
 *                          every one is gone (actors/s)
 *   get_or_spawn_new       N get_or_spawn calls on N new keys: each spawns (ops/s)
 *   get_or_spawn_existing  N get_or_spawn calls on those keys again: each finds (ops/s)
 *   restart                a permanent actor (max_restarts 10000 per 1 ms) whose handler
 *                          returns an error on "crash"; N crashes queued (the ref and
 *                          the mailbox survive a restart), N restarts (restarts/s)
 *   rss_idle_actor         RSS growth (/proc/self/statm) for M idle actors (bytes/actor,
 *                          MiB in all, against the design goal of < 1 GiB for 1M)
 *
 * rss_idle_actor runs first, on a fresh heap. Each rate is the median of --runs runs.
 * The erlang figures (bench/erlang_runtime_bench.escript) are only printed beside ours.
 *
 * usage: bench_runtime [--n N] [--rss-actors M] [--runs R] [--erlang-spawn-stop RATE]
 *                      [--erlang-gos-new RATE] [--erlang-gos-existing RATE]
 *                      [--erlang-restart RATE] [--erlang-restart-1k RATE]
 *                      [--erlang-rss BYTES_PER_PROCESS] */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "log.h"
#include "server.h"

#define GOAL_BYTES_PER_1M (1024.0 * 1024.0 * 1024.0) /* design goal: < 1 GiB for 1M idle actors */
#define LOOP_LIMIT_S 120.0                           /* every wait below gives up after this */

typedef struct {
    int64_t n;
} bcount;

static int b_inc(ax_ctx *cx, bcount *st, const ax_msg *m)
{
    (void)cx;
    (void)m;
    st->n++;
    return AX_OK;
}

static int b_crash(ax_ctx *cx, bcount *st, const ax_msg *m)
{
    (void)cx;
    (void)st;
    (void)m;
    return AX_EFAILED; /* an abnormal exit: "error:EFAILED" */
}

AX_ACTOR_TYPE(bcount_type, "bcount", bcount, NULL, NULL, AX_MSG("inc", b_inc), AX_MSG("crash", b_crash));

static axd_server srv;
static axd_type *btype;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void die(const char *what, int rc, const char *why)
{
    fprintf(stderr, "bench_runtime: %s: %s%s%s\n", what, ax_strerror(rc), why ? ": " : "", why ? why : "");
    exit(1);
}

static long rss_bytes(void)
{
    long size = 0, resident = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (!f || fscanf(f, "%ld %ld", &size, &resident) != 2) {
        fprintf(stderr, "bench_runtime: cannot read /proc/self/statm\n");
        exit(1);
    }
    fclose(f);
    return resident * sysconf(_SC_PAGESIZE);
}

/* Turn the loop until no bcount actor is alive (bounded). */
static void drain_all(void)
{
    double t0 = now_s();
    while (btype->live > 0) {
        ev_run(srv.loop, EVRUN_NOWAIT);
        if (now_s() - t0 > LOOP_LIMIT_S) {
            fprintf(stderr, "bench_runtime: %u actors still alive after %.0f s\n", btype->live, LOOP_LIMIT_S);
            exit(1);
        }
    }
}

static void stop_all(const ax_ref *refs, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        int rc = axd_actor_stop(&srv.rt, axd_actor_get(&srv.rt, refs[i]), "normal");
        if (rc)
            die("axd_actor_stop", rc, NULL);
    }
}

static void spawn_all(ax_ref *refs, size_t n)
{
    const char *why = NULL;
    for (size_t i = 0; i < n; i++) {
        int rc = axd_actor_spawn(&srv.rt, "bcount", 6, NULL, &refs[i], &why);
        if (rc)
            die("axd_actor_spawn", rc, why);
    }
}

/* ---- the measurements: each returns elapsed seconds ---- */

static double run_spawn_stop(ax_ref *refs, size_t n)
{
    double t0 = now_s();
    spawn_all(refs, n);
    stop_all(refs, n);
    drain_all();
    return now_s() - t0;
}

typedef struct {
    char k[16];
    size_t len;
} bkey;

/* Every key through get_or_spawn once (spawn on a miss). */
static double run_gos(const bkey *keys, ax_ref *refs, size_t n)
{
    const char *why = NULL;
    double t0 = now_s();
    for (size_t i = 0; i < n; i++) {
        int rc = axd_registry_get_or_spawn(&srv.rt, "bcount", 6, keys[i].k, keys[i].len, NULL, 1, &refs[i], &why);
        if (rc)
            die("axd_registry_get_or_spawn", rc, why);
    }
    return now_s() - t0;
}

static void inject_crash(uint32_t msg, axd_actor *a)
{
    axd_env *e = axd_env_new(&srv.rt, 0);
    if (!e)
        die("axd_env_new", AX_ENOMEM, NULL);
    e->m.id = msg;
    int rc = axd_actor_deliver(&srv.rt, a, e);
    if (rc) {
        axd_env_free(&srv.rt, e);
        die("deliver crash", rc, NULL);
    }
}

/* Queue n crashes (as many at a time as the mailbox takes) and turn the loop until the
 * actor restarted n more times. -1 if it stopped for good instead: more than
 * max_restarts within the window, i.e. faster than the intensity ceiling. */
static double run_restart(ax_ref r, size_t n)
{
    uint32_t crash = axd_msg_lookup(&srv.rt, "crash", 5);
    axd_actor *a = axd_actor_get(&srv.rt, r);
    if (!a)
        die("restart actor", AX_ENOPROC, NULL);
    uint64_t goal = a->restarts + n;
    size_t sent = 0;
    double t0 = now_s();
    while (a->restarts < goal) {
        while (sent < n && a->user.len < a->cap) {
            inject_crash(crash, a);
            sent++;
        }
        ev_run(srv.loop, EVRUN_NOWAIT);
        if (!(a = axd_actor_get(&srv.rt, r)))
            return -1.0;
        if (now_s() - t0 > LOOP_LIMIT_S)
            die("restart", AX_ETIMEDOUT, "restarts did not finish");
    }
    return now_s() - t0;
}

/* ---- reporting ---- */

static int cmp_double(const void *x, const void *y)
{
    double a = *(const double *)x, b = *(const double *)y;
    return (a > b) - (a < b);
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof v[0], cmp_double);
    return v[n / 2];
}

static void fmt_rate(char *buf, size_t len, double r)
{
    if (r >= 1e6)
        snprintf(buf, len, "%.2fM", r / 1e6);
    else
        snprintf(buf, len, "%.0fk", r / 1e3);
}

/* name: ours (peer figure: ratio[; peer2 figure: ratio]) */
static void report2(const char *name, const char *unit, double ours, const char *peer, double erl, const char *peer2,
                    double erl2)
{
    char a[32], b[32];
    fmt_rate(a, sizeof a, ours);
    printf("%s: %s %s", name, a, unit);
    if (erl > 0) {
        fmt_rate(b, sizeof b, erl);
        printf(" (%s %s: %.2fx", peer, b, ours / erl);
        if (erl2 > 0) {
            fmt_rate(b, sizeof b, erl2);
            printf("; %s %s: %.2fx", peer2, b, ours / erl2);
        }
        printf(")");
    } else {
        printf(" (erlang: not measured)");
    }
    printf("\n");
    fflush(stdout);
}

static void report(const char *name, const char *unit, double ours, const char *peer, double erl)
{
    report2(name, unit, ours, peer, erl, NULL, 0);
}

int main(int argc, char **argv)
{
    size_t n = 200000, rss_n = 1000000;
    int runs = 3;
    double erl_ss = 0, erl_new = 0, erl_old = 0, erl_rs = 0, erl_rs1k = 0, erl_rss = 0;
    for (int i = 1; i < argc; i++) {
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(argv[i], "--n") && v)
            n = (size_t)atol(argv[++i]);
        else if (!strcmp(argv[i], "--rss-actors") && v)
            rss_n = (size_t)atol(argv[++i]);
        else if (!strcmp(argv[i], "--runs") && v)
            runs = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--erlang-spawn-stop") && v)
            erl_ss = atof(argv[++i]);
        else if (!strcmp(argv[i], "--erlang-gos-new") && v)
            erl_new = atof(argv[++i]);
        else if (!strcmp(argv[i], "--erlang-gos-existing") && v)
            erl_old = atof(argv[++i]);
        else if (!strcmp(argv[i], "--erlang-restart") && v)
            erl_rs = atof(argv[++i]);
        else if (!strcmp(argv[i], "--erlang-restart-1k") && v)
            erl_rs1k = atof(argv[++i]);
        else if (!strcmp(argv[i], "--erlang-rss") && v)
            erl_rss = atof(argv[++i]);
        else {
            fprintf(stderr, "usage: %s [--n N] [--rss-actors M] [--runs R] [--erlang-spawn-stop RATE] "
                            "[--erlang-gos-new RATE] [--erlang-gos-existing RATE] [--erlang-restart RATE] "
                            "[--erlang-restart-1k RATE] [--erlang-rss BYTES]\n", argv[0]);
            return 2;
        }
    }
    if (n < 1 || n > 10000000 || rss_n > 4000000 || runs < 1 || runs > 15) {
        fprintf(stderr, "bench_runtime: --n 1..10M, --rss-actors 0..4M, --runs 1..15\n");
        return 2;
    }

    axd_config cfg;
    char err[512];
    axd_config_defaults(&cfg);
    axd_log_set_level(AX_LOG_WARN);
    cfg.log_level = AX_LOG_WARN;
    struct ev_loop *loop = ev_default_loop(EVFLAG_AUTO);
    axd_server_init(&srv, loop, &cfg);
    if (axd_type_register(&srv.rt, &bcount_type, NULL, &btype, err, sizeof err) != 0) {
        fprintf(stderr, "bench_runtime: cannot register the bench type: %s\n", err);
        return 1;
    }
    size_t cap = n > rss_n ? n : rss_n;
    ax_ref *refs = calloc(cap, sizeof *refs);
    bkey *keys = calloc(n, sizeof *keys);
    if (!refs || !keys) {
        fprintf(stderr, "bench_runtime: out of memory\n");
        return 1;
    }
    memset(refs, 0xff, cap * sizeof *refs); /* resident before the RSS baseline */
    for (size_t i = 0; i < n; i++)
        keys[i].len = (size_t)snprintf(keys[i].k, sizeof keys[i].k, "k%zu", i);

    printf("# runtime: actor type bcount (%zu-byte state, %zu-byte axd_actor), N = %zu, median of %d; "
           "rss at %zu actors\n", sizeof(bcount), sizeof(axd_actor), n, runs, rss_n);
    fflush(stdout);

    /* RSS first, on a heap nothing else has used yet */
    if (rss_n) {
        long before = rss_bytes();
        double t0 = now_s();
        spawn_all(refs, rss_n);
        ev_run(loop, EVRUN_NOWAIT);
        double dt = now_s() - t0;
        long after = rss_bytes();
        double per = (double)(after - before) / (double)rss_n;
        double total = (double)(after - before);
        double goal = GOAL_BYTES_PER_1M * ((double)rss_n / 1e6);
        printf("rss_idle_actor: %.0f bytes/actor, %.0f MiB for %zu (goal < 1 GiB per 1M: %.2fx of the budget",
               per, total / (1024.0 * 1024.0), rss_n, total / goal);
        if (erl_rss > 0)
            printf("; erlang %.0f bytes/process: %.2fx", erl_rss, per / erl_rss);
        else
            printf("; erlang: not measured");
        printf(") [spawned in %.2f s, process RSS %.0f MiB]\n", dt, (double)after / (1024.0 * 1024.0));
        fflush(stdout);
        stop_all(refs, rss_n);
        drain_all();
    }

    double r_ss[15], r_new[15], r_old[15], r_rs[15];
    run_spawn_stop(refs, n < 10000 ? n : 10000); /* warm-up */
    for (int i = 0; i < runs; i++)
        r_ss[i] = (double)n / run_spawn_stop(refs, n);
    report("spawn_stop", "actors/s", median(r_ss, runs), "erlang spawn+stop", erl_ss);

    for (int i = 0; i < runs; i++) {
        r_new[i] = (double)n / run_gos(keys, refs, n);
        if (srv.rt.keyed.len != n) {
            fprintf(stderr, "bench_runtime: %zu keyed actors after %zu new keys\n", (size_t)srv.rt.keyed.len, n);
            return 1;
        }
        r_old[i] = (double)n / run_gos(keys, refs, n);
        if (btype->live != n) {
            fprintf(stderr, "bench_runtime: existing keys spawned actors (%u alive)\n", btype->live);
            return 1;
        }
        stop_all(refs, n);
        drain_all();
    }
    report("get_or_spawn_new", "ops/s", median(r_new, runs), "erlang ets+spawn", erl_new);
    report("get_or_spawn_existing", "ops/s", median(r_old, runs), "erlang ets:lookup", erl_old);

    ax_spawn_opts o = AX_SPAWN_OPTS_INIT;
    o.restart = AX_RESTART_PERMANENT;
    o.max_restarts = 10000; /* the daemon's ceiling */
    o.restart_window_ms = 1;
    ax_ref r;
    const char *why = NULL;
    int rc = axd_actor_spawn(&srv.rt, "bcount", 6, &o, &r, &why);
    if (rc)
        die("spawn the restarting actor", rc, why);
    double dt = run_restart(r, n < 10000 ? n : 10000); /* warm-up */
    for (int i = 0; i < runs && dt >= 0; i++)
        if ((dt = run_restart(r, n)) >= 0)
            r_rs[i] = (double)n / dt;
    if (dt < 0) {
        printf("restart: over 10M restarts/s: the actor hit the daemon's intensity ceiling (%u restarts in "
               "%u ms) and stopped\n", o.max_restarts, o.restart_window_ms);
    } else {
        report2("restart", "restarts/s", median(r_rs, runs), "erlang supervisor", erl_rs, "its first 1000", erl_rs1k);
        stop_all(&r, 1);
        drain_all();
    }

    free(refs);
    free(keys);
    axd_runtime_stop_all(&srv.rt, "shutdown");
    axd_server_free(&srv);
    axd_type_unregister(&srv.rt, btype);
    ev_loop_destroy(loop);
    return 0;
}
