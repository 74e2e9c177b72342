/* The node's workers (daemon/core/workers.c) in-process: runtimes on real threads with
 * real libev loops, the test's thread being worker 0. Each cross-worker rule is checked
 * from the outside of actors of a test type: tells keep their order and asks are
 * answered across workers, an ask across workers times out on the asker's worker, a
 * monitor across workers fires once (and not after demonitor with flush), a link across
 * workers carries an abnormal exit (and noproc for a gone actor), exit/2 and stop reach
 * the other worker, a registered name is unique on the node and found from every worker,
 * get_or_spawn racing on two workers makes exactly one actor per key (on the key's home
 * worker), a single-worker type's actors all live on worker 0, lifecycle events reach
 * subscribers on every worker, a plugin loaded at run time serves every worker and is
 * unloaded only when no worker has actors of it, and shutdown runs every
 * actor's on_stop on every worker. Also run
 * under ThreadSanitizer in CI (build-ci-tsan). */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "core_int.h"
#include "log.h"
#include "workers.h"
#include "workers_test_util.h"

#include <check.h> /* after plugin.h: check.h defines a `fail` macro */

/* ---- what the actors report (any worker's thread) ---- */
static _Atomic long g_pings, g_bad_order, g_answers, g_downs, g_exits, g_stops, g_events;
static _Atomic int g_answer_status;
static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;
static char g_down_reason[64], g_exit_reason[64], g_answer[32], g_event[64];

static void note(char *dst, const ax_msg *m)
{
    pthread_mutex_lock(&g_mu);
    snprintf(dst, 64, "%.*s", (int)m->len, (const char *)m->data);
    pthread_mutex_unlock(&g_mu);
}

enum { OP_TELL_N = 1, OP_ASK, OP_ASK_SLOW, OP_MONITOR, OP_DEMONITOR_FLUSH, OP_LINK, OP_TRAP, OP_EXIT, OP_STOP, OP_FAIL, OP_ASK_NAMED, OP_GET_OR_SPAWN, OP_SUBSCRIBE, OP_TELL_KEY };
typedef struct cmd {
    int op;
    ax_ref target;
    uint64_t n;
    uint32_t timeout_ms;
    char reason[32];
} cmd;

typedef struct wt {
    uint64_t next; /* the next "ping" seq expected */
    uint64_t mref;
} wt;

static int w_ping(ax_ctx *cx, wt *st, const ax_msg *m)
{
    uint64_t seq = 0;
    if (m->len == sizeof seq)
        memcpy(&seq, m->data, sizeof seq);
    if (seq != st->next)
        g_bad_order++;
    st->next = seq + 1;
    g_pings++;
    return ax_reply(cx, "pong", 4);
}

static int w_slow(ax_ctx *cx, wt *st, const ax_msg *m)
{
    (void)st;
    (void)m;
    usleep(300 * 1000); /* past the asker's timeout */
    return ax_reply(cx, "late", 4);
}

static int w_answer(ax_ctx *cx, wt *st, const ax_msg *m)
{
    (void)cx;
    (void)st;
    pthread_mutex_lock(&g_mu);
    snprintf(g_answer, sizeof g_answer, "%.*s", (int)m->len, (const char *)m->data);
    pthread_mutex_unlock(&g_mu);
    g_answer_status = m->status;
    g_answers++;
    return AX_OK;
}

static int w_down(ax_ctx *cx, wt *st, const ax_msg *m)
{
    (void)cx;
    (void)st;
    note(g_down_reason, m);
    g_downs++;
    return AX_OK;
}

static int w_exit(ax_ctx *cx, wt *st, const ax_msg *m)
{
    (void)cx;
    (void)st;
    note(g_exit_reason, m);
    g_exits++;
    return AX_OK;
}

/* get_or_spawn results: side 0/1 (the caller's worker), key i */
#define GOS_KEYS 200
static ax_ref g_gos[2][GOS_KEYS];
static _Atomic int g_gos_done[2];

static int w_event(ax_ctx *cx, wt *st, const ax_msg *m)
{
    (void)cx;
    (void)st;
    if (m->len > 10 && !memcmp(m->data, "{\"event\":\"", 10)) { /* keep the event's name */
        const char *p = (const char *)m->data + 10, *q = memchr(p, '"', m->len - 10);
        pthread_mutex_lock(&g_mu);
        size_t k = strlen(g_event);
        snprintf(g_event + k, sizeof g_event - k, "%.*s,", q ? (int)(q - p) : 0, p);
        pthread_mutex_unlock(&g_mu);
    }
    g_events++;
    return AX_OK;
}

static int w_cmd(ax_ctx *cx, wt *st, const ax_msg *m)
{
    cmd c;
    if (m->len != sizeof c)
        return AX_EINVAL;
    memcpy(&c, m->data, sizeof c);
    switch (c.op) {
    case OP_TELL_N:
        for (uint64_t i = 0; i < c.n; i++)
            while (ax_tell(cx, c.target, "ping", &i, sizeof i) == AX_EFULL)
                usleep(100); /* backpressure: the other worker drains meanwhile */
        return AX_OK;
    case OP_ASK: return ax_ask(cx, c.target, "ping", &c.n, sizeof c.n, c.timeout_ms, "answer", 7);
    case OP_ASK_SLOW: return ax_ask(cx, c.target, "slow", NULL, 0, c.timeout_ms, "answer", 8);
    case OP_MONITOR: return ax_monitor(cx, c.target, &st->mref);
    case OP_DEMONITOR_FLUSH: return ax_demonitor(cx, st->mref, 1);
    case OP_LINK: return ax_link(cx, c.target);
    case OP_TRAP: return ax_trap_exit(cx, 1);
    case OP_EXIT: return ax_exit(cx, c.target, c.reason);
    case OP_STOP: return ax_stop(cx, c.target, c.reason);
    case OP_FAIL: return ax_fail(cx, c.reason);
    case OP_GET_OR_SPAWN: { /* c.n: which side records */
        for (int i = 0; i < GOS_KEYS; i++) {
            char key[16];
            snprintf(key, sizeof key, "k%d", i);
            int rc = ax_get_or_spawn(cx, "wt", key, NULL, &g_gos[c.n][i]);
            if (rc)
                return rc;
        }
        atomic_store_explicit(&g_gos_done[c.n], 1, memory_order_release);
        return AX_OK;
    }
    case OP_SUBSCRIBE: return ax_subscribe_events(cx, 1);
    case OP_TELL_KEY: return ax_tell_key(cx, "wt", c.reason, "ping", &c.n, sizeof c.n);
    case OP_ASK_NAMED: {
        ax_ref to;
        int rc = ax_lookup(cx, c.reason, &to);
        return rc ? rc : ax_ask(cx, to, "ping", &c.n, sizeof c.n, c.timeout_ms, "answer", 9);
    }
    }
    return AX_EINVAL;
}

static void w_stop(ax_ctx *cx, wt *st, const char *reason)
{
    (void)cx;
    (void)st;
    (void)reason;
    g_stops++;
}

AX_ACTOR_TYPE(wt_type, "wt", wt, NULL, w_stop, AX_MSG("ping", w_ping), AX_MSG("slow", w_slow),
              AX_MSG("answer", w_answer), AX_MSG("cmd", w_cmd), AX_MSG("$down", w_down), AX_MSG("$exit", w_exit),
              AX_MSG("$event", w_event));

/* A type whose plugin would keep mutable globals: AX_TYPE_SINGLE_WORKER pins its actors
 * to worker 0. The descriptor is written out (AX_ACTOR_TYPE has no flags argument). */
static const ax_msg_def pinned_msgs[] = {AX_MSG("ping", w_ping)};
static const ax_actor_type pinned_type = {
    .size = sizeof(ax_actor_type),
    .name = "pinned",
    .state_size = sizeof(wt),
    .msgs = pinned_msgs,
    .n_msgs = 1,
    .flags = AX_TYPE_SINGLE_WORKER,
};

/* ---- the fixture: worker 0 on this thread ---- */
static axd_config C;
static axd_rt R0;
static axd_workers G;
static struct ev_loop *L;

static void setup(void)
{
    char err[256];
    axd_type *t;
    axd_config_defaults(&C);
    axd_log_set_level(AX_LOG_ERROR);
    L = ev_loop_new(EVFLAG_AUTO);
    axd_runtime_init(&R0, L, &C, "test@boot-0000000000000001-session-1");
    ck_assert_int_eq(axd_type_register(&R0, &wt_type, NULL, &t, err, sizeof err), 0);
    ck_assert_int_eq(axd_type_register(&R0, &pinned_type, NULL, &t, err, sizeof err), 0);
    ck_assert_msg(axd_workers_start(&G, &R0, 2, err, sizeof err) == 0, "%s", err);
    g_pings = g_bad_order = g_answers = g_downs = g_exits = g_stops = g_events = 0;
    g_answer_status = 1;
}

static void teardown(void)
{
    axd_workers_stop(&G, "shutdown");
    axd_type *t = axd_hmap_get(&R0.types, "wt", 2), *t2 = axd_hmap_get(&R0.types, "pinned", 6);
    axd_runtime_free(&R0);
    axd_plugins_unload_all(&R0);
    axd_hmap_free(&R0.types);
    axd_type_unregister(&R0, t);
    axd_type_unregister(&R0, t2);
    axd_config_free(&C);
    ev_loop_destroy(L);
}

#define WAIT_UNTIL(cond) WT_WAIT_UNTIL(L, cond)
static void settle(int ms) { wt_settle(L, ms); }

typedef struct job {
    _Atomic int done;
    ax_ref ref;
    int rc;
    cmd c;
    const char *name;
    const char *type; /* NULL: "wt" */
    const char *key;  /* get_or_spawn instead */
} job;

static void spawn_cb(axd_rt *rt, void *ud)
{
    job *j = ud;
    const char *why;
    const char *type = j->type ? j->type : "wt";
    ax_spawn_opts o = {.size = sizeof o, .name = j->name};
    j->rc = j->key ? axd_registry_get_or_spawn(rt, type, strlen(type), j->key, strlen(j->key), NULL, 1, &j->ref, &why)
                   : axd_actor_spawn(rt, type, strlen(type), &o, &j->ref, &why);
    atomic_store(&j->done, 1);
}

/* Spawn a named actor on worker w: the spawn's result. */
static int spawn_named_on(uint32_t w, const char *name, ax_ref *out)
{
    job j = {.name = name};
    ck_assert_int_eq(axd_workers_call(&G, w, spawn_cb, &j), 0);
    WAIT_UNTIL(atomic_load(&j.done));
    *out = j.ref;
    return j.rc;
}

static ax_ref spawn_on(uint32_t w)
{
    job j = {0};
    ck_assert_int_eq(axd_workers_call(&G, w, spawn_cb, &j), 0);
    WAIT_UNTIL(atomic_load(&j.done));
    ck_assert_int_eq(j.rc, 0);
    ck_assert_uint_eq(axd_ref_worker(j.ref), w);
    return j.ref;
}

static void cmd_cb(axd_rt *rt, void *ud)
{
    job *j = ud;
    axd_env *e = axd_env_new(rt, sizeof j->c);
    memcpy(e->data, &j->c, sizeof j->c);
    e->m.id = axd_msg_lookup(rt, "cmd", 3);
    j->rc = axd_actor_deliver(rt, axd_actor_get(rt, j->ref), e);
    if (j->rc)
        axd_env_free(rt, e);
    atomic_store(&j->done, 1);
}

/* Have actor `who` (on its worker) run command c. */
static void command(ax_ref who, cmd c)
{
    job j = {.ref = who, .c = c};
    ck_assert_int_eq(axd_workers_call(&G, axd_ref_worker(who), cmd_cb, &j), 0);
    WAIT_UNTIL(atomic_load(&j.done));
    ck_assert_int_eq(j.rc, 0);
}

START_TEST(tells_across_workers_keep_their_order_and_asks_are_answered)
{
    ax_ref a = spawn_on(0), b = spawn_on(1);
    command(a, (cmd){.op = OP_TELL_N, .target = b, .n = 20000});
    WAIT_UNTIL(g_pings == 20000);
    ck_assert_int_eq(g_bad_order, 0);
    /* the other direction, and an ask answered across workers */
    ax_ref c = spawn_on(0);
    command(b, (cmd){.op = OP_TELL_N, .target = c, .n = 5000});
    WAIT_UNTIL(g_pings == 25000);
    ck_assert_int_eq(g_bad_order, 0);
    ax_ref d = spawn_on(1);
    command(a, (cmd){.op = OP_ASK, .target = d, .n = 0, .timeout_ms = 5000});
    WAIT_UNTIL(g_answers == 1);
    ck_assert_int_eq(g_answer_status, AX_OK);
    pthread_mutex_lock(&g_mu);
    ck_assert_str_eq(g_answer, "pong");
    pthread_mutex_unlock(&g_mu);
}
END_TEST

START_TEST(an_ask_across_workers_times_out_on_the_askers_worker)
{
    ax_ref a = spawn_on(0), b = spawn_on(1);
    command(a, (cmd){.op = OP_ASK_SLOW, .target = b, .timeout_ms = 100});
    WAIT_UNTIL(g_answers == 1);
    ck_assert_int_eq(g_answer_status, AX_ETIMEDOUT);
    settle(400); /* the late reply arrives and is only counted */
    ck_assert_int_eq(g_answers, 1);
    ck_assert_uint_ge(R0.ctr.late_replies, 1);
    /* an ask to an actor gone on the other worker ends with ENOPROC */
    command(a, (cmd){.op = OP_STOP, .target = b, .reason = "normal"});
    settle(50);
    command(a, (cmd){.op = OP_ASK, .target = b, .timeout_ms = 5000});
    WAIT_UNTIL(g_answers == 2);
    ck_assert_int_eq(g_answer_status, AX_ENOPROC);
}
END_TEST

START_TEST(a_monitor_across_workers_fires_once_with_the_reason_and_not_after_demonitor)
{
    ax_ref w = spawn_on(0), t = spawn_on(1);
    command(w, (cmd){.op = OP_MONITOR, .target = t});
    settle(20);
    command(t, (cmd){.op = OP_FAIL, .reason = "boom"});
    WAIT_UNTIL(g_downs == 1);
    pthread_mutex_lock(&g_mu);
    ck_assert_str_eq(g_down_reason, "boom");
    pthread_mutex_unlock(&g_mu);
    /* a gone target: noproc */
    command(w, (cmd){.op = OP_MONITOR, .target = t});
    WAIT_UNTIL(g_downs == 2);
    pthread_mutex_lock(&g_mu);
    ck_assert_str_eq(g_down_reason, "noproc");
    pthread_mutex_unlock(&g_mu);
    /* demonitor with flush: the target's exit no longer reaches the watcher */
    ax_ref t2 = spawn_on(1);
    command(w, (cmd){.op = OP_MONITOR, .target = t2});
    command(w, (cmd){.op = OP_DEMONITOR_FLUSH});
    settle(20);
    command(t2, (cmd){.op = OP_FAIL, .reason = "boom"});
    settle(100);
    ck_assert_int_eq(g_downs, 2);
}
END_TEST

START_TEST(a_link_across_workers_carries_an_abnormal_exit_and_noproc_for_a_gone_actor)
{
    ax_ref a = spawn_on(0), b = spawn_on(1);
    command(a, (cmd){.op = OP_TRAP});
    command(a, (cmd){.op = OP_LINK, .target = b});
    settle(20);
    command(b, (cmd){.op = OP_FAIL, .reason = "crashed"});
    WAIT_UNTIL(g_exits == 1);
    pthread_mutex_lock(&g_mu);
    ck_assert_str_eq(g_exit_reason, "crashed");
    pthread_mutex_unlock(&g_mu);
    /* b is gone: a (trapping) hears noproc */
    command(a, (cmd){.op = OP_LINK, .target = b});
    WAIT_UNTIL(g_exits == 2);
    pthread_mutex_lock(&g_mu);
    ck_assert_str_eq(g_exit_reason, "noproc");
    pthread_mutex_unlock(&g_mu);
    /* a non-trapping actor linked across workers dies with its partner */
    long stops = g_stops;
    ax_ref c = spawn_on(0), d = spawn_on(1);
    command(c, (cmd){.op = OP_LINK, .target = d});
    settle(20);
    command(d, (cmd){.op = OP_FAIL, .reason = "crashed"});
    WAIT_UNTIL(g_stops == stops + 2);
    ck_assert_ptr_null(axd_actor_get(&R0, c));
}
END_TEST

START_TEST(exit_and_stop_reach_an_actor_on_another_worker)
{
    ax_ref a = spawn_on(0), b = spawn_on(1), c = spawn_on(1);
    command(a, (cmd){.op = OP_EXIT, .target = b, .reason = "kill"});
    command(a, (cmd){.op = OP_STOP, .target = c, .reason = "done"});
    WAIT_UNTIL(g_stops == 2);
    /* and a trapping actor gets exit/2 as $exit */
    ax_ref d = spawn_on(1);
    command(d, (cmd){.op = OP_TRAP});
    command(a, (cmd){.op = OP_EXIT, .target = d, .reason = "please"});
    WAIT_UNTIL(g_exits == 1);
    pthread_mutex_lock(&g_mu);
    ck_assert_str_eq(g_exit_reason, "please");
    pthread_mutex_unlock(&g_mu);
}
END_TEST

START_TEST(a_registered_name_is_unique_on_the_node_and_found_from_every_worker)
{
    ax_ref svc, dup;
    ck_assert_int_eq(spawn_named_on(1, "svc", &svc), 0);
    ck_assert_int_eq(spawn_named_on(0, "svc", &dup), AX_EEXIST); /* taken on the other worker */
    ax_ref found;
    ck_assert_int_eq(axd_name_lookup(&R0, "svc", 3, &found), 0);
    ck_assert(ax_ref_eq(found, svc));
    ax_ref a = spawn_on(0);
    command(a, (cmd){.op = OP_ASK_NAMED, .reason = "svc", .timeout_ms = 5000});
    WAIT_UNTIL(g_answers == 1);
    ck_assert_int_eq(g_answer_status, AX_OK);
    /* gone: the name is free again, for any worker */
    command(a, (cmd){.op = OP_STOP, .target = svc, .reason = "normal"});
    WAIT_UNTIL(g_stops == 1);
    ck_assert_int_eq(axd_name_lookup(&R0, "svc", 3, &found), AX_ENOTFOUND);
    ck_assert_int_eq(spawn_named_on(0, "svc", &dup), 0);
}
END_TEST

START_TEST(get_or_spawn_racing_on_two_workers_makes_exactly_one_actor_per_key_on_its_home_worker)
{
    ax_ref a = spawn_on(0), b = spawn_on(1);
    atomic_store(&g_gos_done[0], 0);
    atomic_store(&g_gos_done[1], 0);
    /* both at once, the same keys in the same order: every key is contended */
    job j0 = {.ref = a, .c = {.op = OP_GET_OR_SPAWN, .n = 0}}, j1 = {.ref = b, .c = {.op = OP_GET_OR_SPAWN, .n = 1}};
    ck_assert_int_eq(axd_workers_call(&G, 1, cmd_cb, &j1), 0);
    ck_assert_int_eq(axd_workers_call(&G, 0, cmd_cb, &j0), 0);
    WAIT_UNTIL(atomic_load_explicit(&g_gos_done[0], memory_order_acquire) &&
               atomic_load_explicit(&g_gos_done[1], memory_order_acquire));
    WAIT_UNTIL(atomic_load(&j0.done) && atomic_load(&j1.done));
    int on[2] = {0, 0};
    for (int i = 0; i < GOS_KEYS; i++) {
        char key[16];
        snprintf(key, sizeof key, "k%d", i);
        ck_assert_msg(ax_ref_eq(g_gos[0][i], g_gos[1][i]), "key %s: two actors (%llx.%u and %llx.%u)", key, (unsigned long long)g_gos[0][i].id, g_gos[0][i].gen, (unsigned long long)g_gos[1][i].id, g_gos[1][i].gen);
        ck_assert_uint_eq(axd_ref_worker(g_gos[0][i]), axd_workers_home(&G, key, strlen(key)));
        on[axd_ref_worker(g_gos[0][i])]++;
    }
    ck_assert_int_gt(on[0], 0); /* the keys are spread over both workers */
    ck_assert_int_gt(on[1], 0);
    ck_assert_uint_eq(R0.keyed.len, (uint32_t)on[0]);
}
END_TEST

START_TEST(a_tell_by_key_reaches_the_keys_actor_on_its_home_worker)
{
    char key[16];
    WT_KEY_ON(&G, 1, "t", key, sizeof key);
    ax_ref a = spawn_on(0);
    cmd c = {.op = OP_TELL_KEY, .n = 0};
    snprintf(c.reason, sizeof c.reason, "%s", key);
    command(a, c);
    WAIT_UNTIL(g_pings == 1);
    c.n = 1;
    command(a, c); /* the actor exists now: found, not spawned again */
    WAIT_UNTIL(g_pings == 2);
    ck_assert_int_eq(g_bad_order, 0);
}
END_TEST

START_TEST(a_single_worker_type_runs_all_its_actors_on_one_worker)
{
    /* a key whose home would be worker 1 (by its hash): pinning must win over that */
    static char key[16];
    for (int i = 0; i < 1000; i++) {
        snprintf(key, sizeof key, "x%d", i);
        if (axd_workers_home(&G, key, strlen(key)) == 1)
            break;
    }
    ck_assert_uint_eq(axd_workers_home(&G, key, strlen(key)), 1);
    for (uint32_t w = 0; w < 2; w++) {
        job j = {.type = "pinned"}, k = {.type = "pinned", .key = key};
        ck_assert_int_eq(axd_workers_call(&G, w, spawn_cb, &j), 0);
        ck_assert_int_eq(axd_workers_call(&G, w, spawn_cb, &k), 0);
        WAIT_UNTIL(atomic_load(&j.done) && atomic_load(&k.done));
        ck_assert_int_eq(j.rc, 0);
        ck_assert_int_eq(k.rc, 0);
        ck_assert_uint_eq(axd_ref_worker(j.ref), 0); /* spawned from worker w, lives on 0 */
        ck_assert_uint_eq(axd_ref_worker(k.ref), 0);
    }
    /* an ordinary type spawned on worker 1 stays there */
    ck_assert_uint_eq(axd_ref_worker(spawn_on(1)), 1);
}
END_TEST

START_TEST(lifecycle_events_reach_subscribers_on_every_worker_in_order)
{
    g_event[0] = 0;
    ax_ref sub = spawn_on(0);
    command(sub, (cmd){.op = OP_SUBSCRIBE});
    ax_ref t = spawn_on(1); /* started, on the other worker */
    command(t, (cmd){.op = OP_FAIL, .reason = "boom"});
    WAIT_UNTIL(g_events >= 2);
    pthread_mutex_lock(&g_mu);
    ck_assert_str_eq(g_event, "started,stopped,");
    pthread_mutex_unlock(&g_mu);
}
END_TEST

static void spawn_counter_cb(axd_rt *rt, void *ud)
{
    job *j = ud;
    const char *why;
    j->rc = axd_actor_spawn(rt, "counter", 7, NULL, &j->ref, &why);
    atomic_store(&j->done, 1);
}

static void stop_cb(axd_rt *rt, void *ud)
{
    job *j = ud;
    j->rc = axd_actor_stop(rt, axd_actor_get(rt, j->ref), "normal");
    atomic_store(&j->done, 1);
}

START_TEST(a_plugin_loaded_at_run_time_serves_every_worker_and_unloads_only_when_no_worker_uses_it)
{
    const char *bd = getenv("AX_BUILD_DIR");
    ck_assert_msg(bd != NULL, "AX_BUILD_DIR is not set (run through meson test)");
    char path[512], err[512];
    snprintf(path, sizeof path, "%s/plugins/counter.so", bd);
    axd_plugin *p;
    ck_assert_msg(axd_plugin_load(&R0, path, &p, err, sizeof err) == 0, "%s", err);
    job j = {0};
    ck_assert_int_eq(axd_workers_call(&G, 1, spawn_counter_cb, &j), 0);
    WAIT_UNTIL(atomic_load(&j.done));
    ck_assert_int_eq(j.rc, 0); /* worker 1 knows the type */
    ck_assert_uint_eq(axd_ref_worker(j.ref), 1);
    /* an actor of it lives on worker 1: the unload is refused, naming the worker */
    ck_assert_int_eq(axd_plugin_unload(&R0, "counter", err, sizeof err), AX_EBUSY);
    ck_assert_msg(strstr(err, "worker 1") != NULL, "%s", err);
    job k = {.ref = j.ref};
    ck_assert_int_eq(axd_workers_call(&G, 1, stop_cb, &k), 0);
    WAIT_UNTIL(atomic_load(&k.done));
    settle(20);
    ck_assert_msg(axd_plugin_unload(&R0, "counter", err, sizeof err) == 0, "%s", err);
    job m = {0};
    ck_assert_int_eq(axd_workers_call(&G, 1, spawn_counter_cb, &m), 0);
    WAIT_UNTIL(atomic_load(&m.done));
    ck_assert_int_eq(m.rc, AX_ENOTYPE); /* gone from every worker */
}
END_TEST

/* A client sink on worker 0, as the front end installs one: what reaches clients. */
static _Atomic int g_client_downs;
static char g_client_doc[256];
static int sink_send(void *ud, ax_ref client, uint32_t req_id, const char *json, size_t n, int force)
{
    (void)ud, (void)client, (void)req_id, (void)force;
    snprintf(g_client_doc, sizeof g_client_doc, "%.*s", (int)n, json);
    g_client_downs++;
    return 0;
}
static int sink_alive(void *ud, ax_ref client) { return (void)ud, (void)client, 1; }
static void sink_flush(void *ud) { (void)ud; }
static const axd_client_sink test_sink = {.send_event = sink_send, .alive = sink_alive, .flush = sink_flush};

START_TEST(a_client_monitoring_an_actor_on_another_worker_gets_its_down_on_worker_0)
{
    axd_rt_set_sink(&R0, &test_sink, NULL);
    g_client_downs = 0;
    ax_ref t = spawn_on(1);
    uint64_t mref;
    ck_assert_int_eq(axd_sup_monitor(&R0, (ax_ref){7, 1, AXD_NODE_CLIENT}, t, &mref), 0);
    settle(20);
    command(t, (cmd){.op = OP_FAIL, .reason = "boom"});
    WAIT_UNTIL(g_client_downs == 1);
    ck_assert_msg(strstr(g_client_doc, "\"reason\":\"boom\"") != NULL, "%s", g_client_doc);
    axd_rt_set_sink(&R0, NULL, NULL);
}
END_TEST

START_TEST(shutdown_with_actors_on_every_worker_runs_every_on_stop)
{
    enum { PER = 200 };
    for (int i = 0; i < PER; i++) {
        spawn_on(0);
        spawn_on(1);
    }
    /* traffic in flight at the moment of shutdown */
    ax_ref a = spawn_on(0), b = spawn_on(1);
    command(a, (cmd){.op = OP_TELL_N, .target = b, .n = 2000});
    command(b, (cmd){.op = OP_ASK_SLOW, .target = a, .timeout_ms = 5000});
    axd_workers_stop(&G, "shutdown");
    ck_assert_int_eq(g_stops, 2 * PER + 2);
    ck_assert_ptr_null(R0.group);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("workers");
    TCase *tc = tcase_create("workers");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, tells_across_workers_keep_their_order_and_asks_are_answered);
    tcase_add_test(tc, an_ask_across_workers_times_out_on_the_askers_worker);
    tcase_add_test(tc, a_monitor_across_workers_fires_once_with_the_reason_and_not_after_demonitor);
    tcase_add_test(tc, a_link_across_workers_carries_an_abnormal_exit_and_noproc_for_a_gone_actor);
    tcase_add_test(tc, exit_and_stop_reach_an_actor_on_another_worker);
    tcase_add_test(tc, a_registered_name_is_unique_on_the_node_and_found_from_every_worker);
    tcase_add_test(tc, get_or_spawn_racing_on_two_workers_makes_exactly_one_actor_per_key_on_its_home_worker);
    tcase_add_test(tc, a_tell_by_key_reaches_the_keys_actor_on_its_home_worker);
    tcase_add_test(tc, a_single_worker_type_runs_all_its_actors_on_one_worker);
    tcase_add_test(tc, lifecycle_events_reach_subscribers_on_every_worker_in_order);
    tcase_add_test(tc, a_plugin_loaded_at_run_time_serves_every_worker_and_unloads_only_when_no_worker_uses_it);
    tcase_add_test(tc, a_client_monitoring_an_actor_on_another_worker_gets_its_down_on_worker_0);
    tcase_add_test(tc, shutdown_with_actors_on_every_worker_runs_every_on_stop);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
