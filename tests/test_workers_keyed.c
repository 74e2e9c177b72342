/* Keyed actors on workers: the lease manager (keyed routing over a real memory lease
 * store) runs on worker 0, a key's actor on its home worker. It is fenced from that
 * worker's thread: it handles messages while the shard is served, and when the shard's
 * lease is lost (the store cut off) it stops with lease_lost and handles nothing more.
 * Real threads and libev loops; also under ThreadSanitizer in CI. */
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "core_int.h"
#include "keyed.h"
#include "lease.h"
#include "log.h"
#include "shard.h"
#include "workers.h"
#include "workers_test_util.h"

#include <check.h> /* after plugin.h: check.h defines a `fail` macro */

static _Atomic long g_hits, g_stops;
static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;
static char g_stop_reason[64];

typedef struct kt {
    int64_t n;
} kt;

static int k_hit(ax_ctx *cx, kt *st, const ax_msg *m)
{
    (void)cx;
    (void)m;
    st->n++;
    g_hits++;
    return AX_OK;
}

static void k_stop(ax_ctx *cx, kt *st, const char *reason)
{
    (void)cx;
    (void)st;
    pthread_mutex_lock(&g_mu);
    snprintf(g_stop_reason, sizeof g_stop_reason, "%s", reason);
    pthread_mutex_unlock(&g_mu);
    g_stops++;
}

AX_ACTOR_TYPE(kt_type, "kt", kt, NULL, k_stop, AX_MSG("hit", k_hit));

static axd_config C;
static axd_rt R0;
static axd_keyed K;
static axd_workers G;
static axd_lease_store *STORE;
static struct ev_loop *L;

#define WAIT_UNTIL(cond) WT_WAIT_UNTIL(L, cond)
static void settle(int ms) { wt_settle(L, ms); }

static void setup(void)
{
    char err[256];
    axd_type *t;
    axd_config_defaults(&C);
    C.shard_count = 8;
    C.lease_ttl_ms = 600;
    C.lease_renew_interval_ms = 100;
    C.lease_safety_margin_ms = 200;
    axd_log_set_level(AX_LOG_ERROR);
    L = ev_loop_new(EVFLAG_AUTO);
    axd_runtime_init(&R0, L, &C, "kt@boot-0000000000000001-session-1");
    ck_assert_int_eq(axd_type_register(&R0, &kt_type, NULL, &t, err, sizeof err), 0);
    STORE = axd_lease_mem_new(L, C.shard_count);
    ck_assert_msg(axd_route_start_store(&K, &R0, STORE, err, sizeof err) == 0, "%s", err);
    ck_assert_msg(axd_workers_start(&G, &R0, 2, err, sizeof err) == 0, "%s", err);
    ck_assert_int_eq(axd_route_attach_workers(&K), 0);
    WAIT_UNTIL(axd_shards_count_owned(K.shards) == C.shard_count);
    g_hits = g_stops = 0;
    g_stop_reason[0] = 0;
}

static void teardown(void)
{
    axd_workers_stop(&G, "shutdown");
    axd_type *t = axd_hmap_get(&R0.types, "kt", 2);
    axd_runtime_free(&R0);
    axd_route_free(&K);
    axd_lease_store_free(STORE);
    axd_hmap_free(&R0.types);
    axd_type_unregister(&R0, t);
    axd_config_free(&C);
    ev_loop_destroy(L);
}

typedef struct job {
    _Atomic int done;
    ax_ref to;
    int rc;
} job;

static void hit_cb(axd_rt *rt, void *ud)
{
    job *j = ud;
    axd_env *e = axd_env_new(rt, 0);
    e->m.id = axd_msg_lookup(rt, "hit", 3);
    j->rc = axd_actor_deliver(rt, axd_actor_get(rt, j->to), e);
    if (j->rc)
        axd_env_free(rt, e);
    atomic_store(&j->done, 1);
}

static int hit(ax_ref to)
{
    job j = {.to = to};
    ck_assert_int_eq(axd_workers_call(&G, axd_ref_worker(to), hit_cb, &j), 0);
    WAIT_UNTIL(atomic_load(&j.done));
    return j.rc;
}

START_TEST(a_keyed_actor_on_its_home_worker_is_fenced_from_that_workers_thread)
{
    /* a key whose home is worker 1 */
    char key[16];
    WT_KEY_ON(&G, 1, "u", key, sizeof key);
    ax_ref r;
    const char *why = NULL;
    /* from worker 0 (as the front end would): the actor is made on worker 1 */
    ck_assert_msg(axd_registry_route(&R0, "kt", 2, key, strlen(key), 0, 1, &r, &why) == 0, "%s", why);
    ck_assert_uint_eq(axd_ref_worker(r), 1);
    for (int i = 0; i < 5; i++)
        ck_assert_int_eq(hit(r), 0);
    WAIT_UNTIL(g_hits == 5);
    /* the store becomes unreachable for this node: renewals fail, the leases run out */
    axd_lease_mem_cut(STORE, K.route_owner, 1);
    WAIT_UNTIL(g_stops == 1);
    pthread_mutex_lock(&g_mu);
    ck_assert_str_eq(g_stop_reason, AXD_SHARD_LOST);
    pthread_mutex_unlock(&g_mu);
    ck_assert_int_ne(hit(r), 0); /* gone: nothing more is handled */
    settle(50);
    ck_assert_int_eq(g_hits, 5);
    /* not served: a new activation is refused on the home worker too */
    ck_assert_int_eq(axd_registry_route(&R0, "kt", 2, key, strlen(key), 0, 1, &r, &why), AX_EBUSY);
}
END_TEST

START_TEST(an_idle_keyed_actor_on_another_worker_is_reaped_there)
{
    char key[16];
    WT_KEY_ON(&G, 1, "idle", key, sizeof key);
    ax_spawn_opts o = AX_SPAWN_OPTS_INIT;
    o.idle_timeout_ms = 100;
    ax_ref r;
    const char *why = NULL;
    ck_assert_msg(axd_registry_get_or_spawn(&R0, "kt", 2, key, strlen(key), &o, 1, &r, &why) == 0, "%s", why);
    ck_assert_uint_eq(axd_ref_worker(r), 1);
    ck_assert_int_eq(hit(r), 0);
    WAIT_UNTIL(g_stops == 1); /* worker 1's reaper, within a few idle timeouts */
    pthread_mutex_lock(&g_mu);
    ck_assert_str_eq(g_stop_reason, "idle");
    pthread_mutex_unlock(&g_mu);
    ck_assert_int_ne(hit(r), 0);
    /* the key gets a fresh actor on its home worker again */
    ax_ref r2;
    ck_assert_msg(axd_registry_get_or_spawn(&R0, "kt", 2, key, strlen(key), &o, 1, &r2, &why) == 0, "%s", why);
    ck_assert_uint_eq(axd_ref_worker(r2), 1);
    ck_assert(!ax_ref_eq(r, r2));
}
END_TEST

int main(void)
{
    Suite *s = suite_create("workers_keyed");
    TCase *tc = tcase_create("workers_keyed");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, a_keyed_actor_on_its_home_worker_is_fenced_from_that_workers_thread);
    tcase_add_test(tc, an_idle_keyed_actor_on_another_worker_is_reaped_there);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
