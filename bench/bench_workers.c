/* bench_workers: one node, every core (issue 10). Runtimes of daemon/core/workers.c on
 * real threads, a built-in actor type ("pp": a ball passed back and forth, N messages
 * per pair in all):
 *
 *   pairs_1w / pairs_2w   K independent ping-pong pairs at once, all on one worker, or
 *                         spread over two (each pair on one worker): messages/s of all
 *                         pairs, and the ratio 2w/1w, beside Erlang/OTP's K pairs with
 *                         +S 1 and +S 2 (bench/erlang_pairs.escript, figures passed in)
 *   pingpong_same/_cross  one pair on one worker, or with its two actors on two workers
 *                         (every message crosses): messages/s, and the round trip
 *   tell_same/_cross      one actor telling another N messages one way, same worker or
 *                         across (backpressure: a full inbox is retried)
 *
 * Each figure is the median of --runs runs (default 5; pairs_1w and pairs_2w alternate). usage: bench_workers [--pairs K] [--n N]
 * [--runs R] [--erlang-s1 RATE] [--erlang-s2 RATE] */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "core_int.h"
#include "log.h"
#include "workers.h"

#define LOOP_LIMIT_S 120.0

static _Atomic long g_done, g_got;
static uint32_t g_ball_id, g_hit_id;

typedef struct {
    int64_t n;
} pp;

static int p_ball(ax_ctx *cx, pp *st, const ax_msg *m)
{
    (void)st;
    uint64_t rem;
    memcpy(&rem, m->data, sizeof rem);
    if (rem == 0) {
        g_done++;
        return AX_OK;
    }
    rem--;
    int rc;
    while ((rc = ax_tell_id(cx, m->from, g_ball_id, &rem, sizeof rem)) == AX_EFULL)
        ;
    return rc;
}

static int p_hit(ax_ctx *cx, pp *st, const ax_msg *m)
{
    (void)cx;
    (void)m;
    st->n++;
    g_got++;
    return AX_OK;
}

/* "burst": tell the target (payload: ref, count) count hits. When the target's mailbox or
 * its worker's inbox is full, the rest is sent by a "burst" to itself: the actor yields
 * so that the target (maybe on this worker) can drain. */
static int p_burst(ax_ctx *cx, pp *st, const ax_msg *m)
{
    (void)st;
    struct { ax_ref to; uint64_t n; } b;
    memcpy(&b, m->data, sizeof b);
    for (; b.n > 0; b.n--) {
        int rc = ax_tell_id(cx, b.to, g_hit_id, NULL, 0);
        if (rc == AX_EFULL)
            return ax_tell(cx, ax_self(cx), "burst", &b, sizeof b);
        if (rc)
            return rc;
    }
    return AX_OK;
}

AX_ACTOR_TYPE(pp_type, "pp", pp, NULL, NULL, AX_MSG("ball", p_ball), AX_MSG("hit", p_hit), AX_MSG("burst", p_burst));

static axd_config C;
static axd_rt R0;
static struct ev_loop *L;
static axd_workers G;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

typedef struct job {
    _Atomic int done;
    ax_ref ref, from;
    uint32_t msg;
    size_t n;
    unsigned char data[32];
} job;

static void spawn_cb(axd_rt *rt, void *ud)
{
    job *j = ud;
    const char *why;
    if (axd_actor_spawn(rt, "pp", 2, NULL, &j->ref, &why) != 0) {
        fprintf(stderr, "bench_workers: spawn: %s\n", why);
        exit(1);
    }
    atomic_store(&j->done, 1);
}

static void send_cb(axd_rt *rt, void *ud)
{
    job *j = ud;
    axd_env *e = axd_env_new(rt, j->n);
    memcpy(e->data, j->data, j->n);
    e->m.id = j->msg;
    e->m.from = j->from;
    if (axd_actor_deliver(rt, axd_actor_get(rt, j->ref), e) != 0) {
        fprintf(stderr, "bench_workers: deliver failed\n");
        exit(1);
    }
    atomic_store(&j->done, 1);
}

static void wait_for(_Atomic int *flag)
{
    double end = now_s() + LOOP_LIMIT_S;
    while (!atomic_load(flag) && now_s() < end)
        ev_run(L, EVRUN_NOWAIT);
    if (!atomic_load(flag)) {
        fprintf(stderr, "bench_workers: gave up waiting\n");
        exit(1);
    }
}

static ax_ref spawn_on(uint32_t w)
{
    job j = {0};
    axd_workers_call(&G, w, spawn_cb, &j);
    wait_for(&j.done);
    return j.ref;
}

static void send_to(ax_ref to, ax_ref from, uint32_t msg, const void *p, size_t n)
{
    job j = {.ref = to, .from = from, .msg = msg, .n = n};
    memcpy(j.data, p, n);
    axd_workers_call(&G, axd_ref_worker(to), send_cb, &j);
    wait_for(&j.done);
}

static void run_until(_Atomic long *ctr, long goal)
{
    double end = now_s() + LOOP_LIMIT_S;
    while (atomic_load(ctr) < goal && now_s() < end)
        ev_run(L, EVRUN_NOWAIT);
    if (atomic_load(ctr) < goal) {
        fprintf(stderr, "bench_workers: gave up (%ld of %ld)\n", atomic_load(ctr), goal);
        exit(1);
    }
}

static void group_start(uint32_t n)
{
    char err[256];
    axd_config_defaults(&C);
    C.max_actors = 1u << 16;
    L = ev_loop_new(EVFLAG_AUTO);
    axd_runtime_init(&R0, L, &C, "bench@boot-0000000000000001-session-1");
    axd_type *t;
    if (axd_type_register(&R0, &pp_type, NULL, &t, err, sizeof err) != 0 ||
        axd_workers_start(&G, &R0, n, err, sizeof err) != 0) {
        fprintf(stderr, "bench_workers: %s\n", err);
        exit(1);
    }
    g_ball_id = axd_msg_lookup(&R0, "ball", 4);
    g_hit_id = axd_msg_lookup(&R0, "hit", 3);
}

static void group_stop(void)
{
    axd_workers_stop(&G, "shutdown");
    axd_type *t = axd_hmap_get(&R0.types, "pp", 2);
    axd_runtime_free(&R0);
    axd_hmap_free(&R0.types);
    axd_type_unregister(&R0, t);
    axd_config_free(&C);
    ev_loop_destroy(L);
}

/* K pairs, pair i on worker (i % workers) (or its two actors on workers 0 and 1 when
 * cross): messages per second of all pairs. */
static double pairs(uint32_t workers, int k, uint64_t n, int cross)
{
    group_start(workers);
    ax_ref a[64], b[64];
    for (int i = 0; i < k; i++) {
        a[i] = spawn_on(cross ? 0 : (uint32_t)i % workers);
        b[i] = spawn_on(cross ? 1 : (uint32_t)i % workers);
    }
    g_done = 0;
    double t0 = now_s();
    for (int i = 0; i < k; i++)
        send_to(a[i], b[i], g_ball_id, &n, sizeof n);
    run_until(&g_done, k);
    double dt = now_s() - t0;
    group_stop();
    return (double)k * (double)(n + 1) / dt;
}

static double tell(uint32_t workers, uint64_t n, int cross)
{
    group_start(workers);
    ax_ref src = spawn_on(0), dst = spawn_on(cross ? 1 : 0);
    struct { ax_ref to; uint64_t n; } b = {dst, n};
    g_got = 0;
    double t0 = now_s();
    send_to(src, AX_REF_NONE, axd_msg_lookup(&R0, "burst", 5), &b, sizeof b);
    run_until(&g_got, (long)n);
    double dt = now_s() - t0;
    group_stop();
    return (double)n / dt;
}

static int cmp(const void *x, const void *y)
{
    double a = *(const double *)x, b = *(const double *)y;
    return a < b ? -1 : a > b;
}

#define MEDIAN(expr, runs)                                                                         \
    ({                                                                                             \
        double v_[16];                                                                             \
        for (int r_ = 0; r_ < (runs); r_++)                                                        \
            v_[r_] = (expr);                                                                       \
        qsort(v_, (size_t)(runs), sizeof v_[0], cmp);                                              \
        v_[(runs) / 2];                                                                            \
    })

int main(int argc, char **argv)
{
    int k = 8, runs = 5;
    uint64_t n = 400000;
    double erl1 = 0, erl2 = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--pairs") && i + 1 < argc)
            k = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--n") && i + 1 < argc)
            n = strtoull(argv[++i], NULL, 10);
        else if (!strcmp(argv[i], "--runs") && i + 1 < argc)
            runs = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--erlang-s1") && i + 1 < argc)
            erl1 = atof(argv[++i]);
        else if (!strcmp(argv[i], "--erlang-s2") && i + 1 < argc)
            erl2 = atof(argv[++i]);
        else {
            fprintf(stderr, "usage: %s [--pairs K] [--n N] [--runs R] [--erlang-s1 RATE] [--erlang-s2 RATE]\n",
                    argv[0]);
            return 2;
        }
    }
    if (k < 1 || k > 64 || runs < 1 || runs > 15) {
        fprintf(stderr, "bench_workers: --pairs 1..64, --runs 1..15\n");
        return 2;
    }
    axd_log_set_level(AX_LOG_ERROR);
    printf("# workers: %d ping-pong pairs, %llu messages per pair, median of %d (1 and 2 workers alternating)\n", k, (unsigned long long)n, runs);
    /* 1 and 2 workers alternate, run by run: this VM's speed drifts by tens of percent
     * over seconds, so the ratio is the median of the ratios of neighbouring runs */
    double v1[16], v2[16], vr[16];
    for (int r = 0; r < runs; r++) {
        v1[r] = pairs(1, k, n, 0);
        v2[r] = pairs(2, k, n, 0);
        vr[r] = v2[r] / v1[r];
    }
    qsort(v1, (size_t)runs, sizeof v1[0], cmp);
    qsort(v2, (size_t)runs, sizeof v2[0], cmp);
    qsort(vr, (size_t)runs, sizeof vr[0], cmp);
    double p1 = v1[runs / 2], p2 = v2[runs / 2], ratio = vr[runs / 2];
    printf("pairs_1w: %.2fM msgs/s", p1 / 1e6);
    if (erl1 > 0)
        printf(" (erlang +S 1: %.2fM, ours/erlang %.2fx)", erl1 / 1e6, p1 / erl1);
    printf("\npairs_2w: %.2fM msgs/s (2w/1w %.2fx, median of the %d paired runs' ratios: min %.2fx max %.2fx",
           p2 / 1e6, ratio, runs, vr[0], vr[runs - 1]);
    if (erl2 > 0)
        printf("; erlang +S 2: %.2fM, erlang 2/1 %.2fx, ours/erlang %.2fx", erl2 / 1e6, erl1 > 0 ? erl2 / erl1 : 0,
               p2 / erl2);
    printf(")\n");
    uint64_t n1 = n / 4;
    double ps = MEDIAN(pairs(2, 1, n1, 0), runs), pc = MEDIAN(pairs(2, 1, n1, 1), runs);
    printf("pingpong_same: %.2fM msgs/s (round trip %.0f ns)\n", ps / 1e6, 2e9 / ps);
    printf("pingpong_cross: %.2fM msgs/s (round trip %.0f ns; cross/same %.2fx)\n", pc / 1e6, 2e9 / pc, pc / ps);
    double ts = MEDIAN(tell(2, n, 0), runs), tc = MEDIAN(tell(2, n, 1), runs);
    printf("tell_same: %.2fM msgs/s\n", ts / 1e6);
    printf("tell_cross: %.2fM msgs/s (cross/same %.2fx)\n", tc / 1e6, tc / ts);
    return 0;
}
