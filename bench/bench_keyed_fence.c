/* bench_keyed_fence: what the shard-epoch check costs on the local keyed path (issue 5).
 * Two runtimes (libaxd) in one process, each on its own libev loop, with the same
 * built-in actor type and K keyed actors:
 *
 *   fenced    a lease manager over the memory store (axd_route_start, as axactord runs by
 *             default), every shard acquired; each message resolves its key through
 *             axd_registry_route carrying the shard's current epoch (as a routed client
 *             TELL/ASK does: the fencing check, then get_or_spawn)
 *   unfenced  no lease manager; each message resolves its key through
 *             axd_registry_get_or_spawn
 *
 * For each: N resolves alone (resolve), N tells (resolve, envelope, deliver, handled)
 * and N asks (the same plus a pending ask answered by the handler), round-robin over the
 * K keys; the loop turns after every K messages. Runs of the two alternate; each figure is
 * the median of --runs runs. Prints both rates and fenced/unfenced; no peer.
 *
 * usage: bench_keyed_fence [--n N] [--keys K] [--runs R] */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "config.h"
#include "log.h"
#include "server.h"
#include "shard.h"

#define LOOP_LIMIT_S 60.0

typedef struct {
    int64_t n;
} fcount;

static int f_inc(ax_ctx *cx, fcount *st, const ax_msg *m)
{
    (void)cx;
    (void)m;
    st->n++;
    return AX_OK;
}

static int f_get(ax_ctx *cx, fcount *st, const ax_msg *m)
{
    (void)m;
    st->n++;
    return ax_reply(cx, &st->n, sizeof st->n);
}

AX_ACTOR_TYPE(fcount_type, "fcount", fcount, NULL, NULL, AX_MSG("inc", f_inc), AX_MSG("get", f_get));

typedef struct {
    char k[24];
    size_t len;
    uint64_t epoch; /* fenced: the key's shard epoch, carried by every message */
} fkey;

typedef struct {
    const char *label;
    int fenced;
    axd_server srv;
    struct ev_loop *loop;
    axd_type *type;
    uint32_t inc_id, get_id;
} runtime;

static uint64_t g_replies, g_reply_errors;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void die(const runtime *rt, const char *what, int rc, const char *why)
{
    fprintf(stderr, "bench_keyed_fence (%s): %s: %s%s%s\n", rt->label, what, ax_strerror(rc), why ? ": " : "",
            why ? why : "");
    exit(1);
}

static void runtime_init(runtime *rt, const char *label, int fenced)
{
    axd_config cfg;
    char err[512];
    axd_config_defaults(&cfg);
    cfg.log_level = AX_LOG_WARN;
    rt->label = label;
    rt->fenced = fenced;
    rt->loop = ev_loop_new(EVFLAG_AUTO);
    if (!rt->loop) {
        fprintf(stderr, "bench_keyed_fence: cannot create an event loop\n");
        exit(1);
    }
    axd_server_init(&rt->srv, rt->loop, &cfg);
    /* two runtimes in one process: neither needs SIGTERM/SIGINT, and a signal may only
     * be watched by one loop */
    ev_signal_stop(rt->loop, &rt->srv.sig_term);
    ev_signal_stop(rt->loop, &rt->srv.sig_int);
    if (axd_type_register(&rt->srv.rt, &fcount_type, NULL, &rt->type, err, sizeof err) != 0) {
        fprintf(stderr, "bench_keyed_fence: cannot register the bench type: %s\n", err);
        exit(1);
    }
    rt->inc_id = axd_msg_lookup(&rt->srv.rt, "inc", 3);
    rt->get_id = axd_msg_lookup(&rt->srv.rt, "get", 3);
    if (!fenced)
        return;
    if (axd_server_route_start(&rt->srv, NULL, err, sizeof err) != 0) {
        fprintf(stderr, "bench_keyed_fence: axd_route_start: %s\n", err);
        exit(1);
    }
    /* the memory store grants from the loop: turn it until every shard is ours */
    double t0 = now_s();
    while (axd_shards_count_owned(rt->srv.keyed.shards) < rt->srv.cfg.shard_count) {
        ev_run(rt->loop, EVRUN_NOWAIT);
        if (now_s() - t0 > 10.0) {
            fprintf(stderr, "bench_keyed_fence: only %u of %u shards acquired after 10 s\n",
                    axd_shards_count_owned(rt->srv.keyed.shards), rt->srv.cfg.shard_count);
            exit(1);
        }
    }
}

static void runtime_free(runtime *rt)
{
    axd_runtime_stop_all(&rt->srv.rt, "shutdown");
    if (rt->fenced) { /* release the leases, as a daemon shutting down does (bounded) */
        double t0 = now_s();
        if (axd_route_stop(&rt->srv.keyed))
            while (!rt->srv.keyed.shards_stopped && now_s() - t0 < 5.0)
                ev_run(rt->loop, EVRUN_NOWAIT);
        if (ev_is_active(&rt->srv.keyed.shards_grace))
            ev_timer_stop(rt->loop, &rt->srv.keyed.shards_grace);
    }
    axd_server_free(&rt->srv);
    axd_type_unregister(&rt->srv.rt, rt->type);
    ev_loop_destroy(rt->loop);
}

/* The keyed lookup under test: fenced through axd_registry_route with the key's epoch,
 * unfenced through axd_registry_get_or_spawn. */
static inline int resolve(runtime *rt, const fkey *k, ax_ref *out, const char **why)
{
    if (rt->fenced)
        return axd_registry_route(&rt->srv.rt, "fcount", 6, k->k, k->len, k->epoch, 1, out, why);
    return axd_registry_get_or_spawn(&rt->srv.rt, "fcount", 6, k->k, k->len, NULL, 1, out, why);
}

/* Turn the loop until no actor is ready (bounded). */
static void drain(runtime *rt)
{
    double t0 = now_s();
    do {
        ev_run(rt->loop, EVRUN_NOWAIT);
        if (now_s() - t0 > LOOP_LIMIT_S)
            die(rt, "drain", AX_ETIMEDOUT, "actors still busy");
    } while (rt->srv.rt.ready_head);
}

/* Spawn the K keyed actors; fenced: record each key's shard epoch. */
static void prepare_keys(runtime *rt, fkey *keys, size_t nk)
{
    const char *why = NULL;
    for (size_t i = 0; i < nk; i++) {
        ax_ref r;
        uint64_t epoch = 0;
        int rc = axd_route_check(&rt->srv.keyed, keys[i].k, keys[i].len, 0, &epoch, &why);
        if (rc)
            die(rt, "axd_route_check", rc, why);
        if (rt->fenced) {
            if (!epoch)
                die(rt, "shard epoch", AX_EINVAL, "a served shard without an epoch");
            keys[i].epoch = epoch;
            /* the check is live: a wrong epoch is refused */
            if (axd_registry_route(&rt->srv.rt, "fcount", 6, keys[i].k, keys[i].len, epoch + 1, 1, &r, &why) != AX_ESTALE)
                die(rt, "fencing", AX_EINVAL, "a stale epoch was accepted");
        }
        if ((rc = resolve(rt, &keys[i], &r, &why)) != 0)
            die(rt, "spawn keyed actor", rc, why);
    }
    drain(rt);
}

static double run_resolve(runtime *rt, const fkey *keys, size_t nk, size_t n)
{
    const char *why = NULL;
    ax_ref r;
    uint64_t sum = 0;
    double t0 = now_s();
    for (size_t i = 0; i < n; i++) {
        int rc = resolve(rt, &keys[i % nk], &r, &why);
        if (rc)
            die(rt, "resolve", rc, why);
        sum += r.id;
    }
    double dt = now_s() - t0;
    if (sum == 0)
        die(rt, "resolve", AX_EINVAL, "no actor");
    return dt;
}

static void ask_done(axd_rt *s, axd_pending *p, int status, const void *data, size_t n)
{
    (void)s;
    (void)p;
    (void)data;
    (void)n;
    if (status == AX_OK)
        g_replies++;
    else
        g_reply_errors++;
}

/* n messages (tells, or asks when ask), the loop turned after every nk; returns the
 * seconds until every one was handled (and, for asks, answered). */
static double run_msgs(runtime *rt, const fkey *keys, size_t nk, size_t n, int ask)
{
    axd_rt *s = &rt->srv.rt;
    const char *why = NULL;
    uint64_t goal = s->ctr.delivered + n, replies_goal = g_replies + (ask ? n : 0);
    double t0 = now_s();
    for (size_t i = 0; i < n; i++) {
        ax_ref r;
        int rc = resolve(rt, &keys[i % nk], &r, &why);
        if (rc)
            die(rt, "resolve", rc, why);
        axd_actor *a = axd_actor_get(s, r);
        uint32_t id = ask ? rt->get_id : rt->inc_id;
        if (!a || !axd_actor_handles(a, id))
            die(rt, "resolve", AX_ENOMSG, "no handler");
        axd_env *e = axd_env_new(s, 0);
        if (!e)
            die(rt, "axd_env_new", AX_ENOMEM, NULL);
        e->m.id = id;
        e->epoch = keys[i % nk].epoch;
        if (ask) {
            axd_pending *p = axd_pending_new(s, s->cfg->ask_timeout_ms, ask_done);
            if (!p)
                die(rt, "axd_pending_new", AX_ENOMEM, NULL);
            e->ask = p->slot;
            e->ask_gen = p->gen;
        }
        if ((rc = axd_actor_deliver(s, a, e)) != 0)
            die(rt, "deliver", rc, NULL);
        if ((i + 1) % nk == 0)
            drain(rt);
    }
    drain(rt);
    double dt = now_s() - t0;
    if (s->ctr.delivered != goal || g_replies != replies_goal || g_reply_errors)
        die(rt, ask ? "asks" : "tells", AX_EINVAL, "not every message was handled and answered");
    return dt;
}

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

static void report(const char *name, double fenced, double unfenced)
{
    char a[32], b[32];
    fmt_rate(a, sizeof a, fenced);
    fmt_rate(b, sizeof b, unfenced);
    printf("%s: %s ops/s fenced (unfenced %s: %.3fx, %+.1f ns/op)\n", name, a, b, fenced / unfenced,
           (1.0 / fenced - 1.0 / unfenced) * 1e9);
    fflush(stdout);
}

int main(int argc, char **argv)
{
    size_t n = 2000000, nk = 1000;
    int runs = 3;
    for (int i = 1; i < argc; i++) {
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(argv[i], "--n") && v)
            n = (size_t)atol(argv[++i]);
        else if (!strcmp(argv[i], "--keys") && v)
            nk = (size_t)atol(argv[++i]);
        else if (!strcmp(argv[i], "--runs") && v)
            runs = atoi(argv[++i]);
        else {
            fprintf(stderr, "usage: %s [--n N] [--keys K] [--runs R]\n", argv[0]);
            return 2;
        }
    }
    if (n < 1 || n > 100000000 || nk < 1 || nk > 1000000 || runs < 1 || runs > 15) {
        fprintf(stderr, "bench_keyed_fence: --n 1..100M, --keys 1..1M, --runs 1..15\n");
        return 2;
    }
    axd_log_set_level(AX_LOG_WARN);
    fkey *kf = calloc(nk, sizeof *kf), *ku = calloc(nk, sizeof *ku);
    if (!kf || !ku) {
        fprintf(stderr, "bench_keyed_fence: out of memory\n");
        return 1;
    }
    for (size_t i = 0; i < nk; i++)
        kf[i].len = ku[i].len = (size_t)snprintf(kf[i].k, sizeof kf[i].k, "user:%zu", i);
    memcpy(ku, kf, nk * sizeof *kf);

    static runtime U, F;
    runtime_init(&U, "unfenced", 0);
    runtime_init(&F, "fenced", 1);
    prepare_keys(&U, ku, nk);
    prepare_keys(&F, kf, nk);
    printf("# keyed fence: %zu keyed actors, %u shards (fenced: all leased from the memory store), N = %zu, "
           "median of %d\n", nk, F.srv.cfg.shard_count, n, runs);
    fflush(stdout);

    double rf[3][15], ru[3][15];
    /* warm-up, then alternate so drift hits both alike */
    run_msgs(&U, ku, nk, nk * 10, 1);
    run_msgs(&F, kf, nk, nk * 10, 1);
    for (int i = 0; i < runs; i++) {
        ru[0][i] = (double)n / run_resolve(&U, ku, nk, n);
        rf[0][i] = (double)n / run_resolve(&F, kf, nk, n);
        ru[1][i] = (double)n / run_msgs(&U, ku, nk, n, 0);
        rf[1][i] = (double)n / run_msgs(&F, kf, nk, n, 0);
        ru[2][i] = (double)n / run_msgs(&U, ku, nk, n, 1);
        rf[2][i] = (double)n / run_msgs(&F, kf, nk, n, 1);
    }
    if (axd_shards_count_owned(F.srv.keyed.shards) != F.srv.cfg.shard_count) {
        fprintf(stderr, "bench_keyed_fence: shards were lost during the run (%u of %u owned)\n",
                axd_shards_count_owned(F.srv.keyed.shards), F.srv.cfg.shard_count);
        return 1;
    }
    report("keyed_resolve_fenced", median(rf[0], runs), median(ru[0], runs));
    report("keyed_tell_fenced", median(rf[1], runs), median(ru[1], runs));
    report("keyed_ask_fenced", median(rf[2], runs), median(ru[2], runs));

    runtime_free(&F);
    runtime_free(&U);
    free(kf);
    free(ku);
    return 0;
}
