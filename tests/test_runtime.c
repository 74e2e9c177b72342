/* Unit tests of the actor runtime in-process: mailboxes (control before user,
 * capacity), supervision (restart policies, intensity, mailbox policies), links and
 * trap-exit, monitors, the lifecycle stream and the keyed registry with its reaper.
 * A test actor type is registered directly (no plugin file) on a real libev loop. */
#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

#include "ax_mem.h"
#include "config.h"
#include "log.h"
#include "core_int.h" /* the core's own test: its internals too */

#include <check.h>

/* ---- the test actor ---- */
typedef struct {
    int64_t got;        /* user messages handled this incarnation */
    int64_t next_seq;   /* "seq" checks order */
    int seq_bad;
    int exits, downs, events, lagged;
    char last_reason[64];
    uint64_t last_tag;
    int starts;
    int fail_start;     /* set through the global below */
    char order[64];     /* letters of handled messages, for ordering tests */
    int n_order;
} tact;

static int g_fail_next_start;
static int g_stops;
static char g_stop_reason[64];

static int t_start(ax_ctx *cx, tact *st)
{
    (void)cx;
    st->starts++;
    if (g_fail_next_start) {
        g_fail_next_start--;
        return AX_EFAILED;
    }
    return AX_OK;
}

static void t_stop(ax_ctx *cx, tact *st, const char *reason)
{
    (void)cx;
    (void)st;
    g_stops++;
    snprintf(g_stop_reason, sizeof g_stop_reason, "%s", reason);
}

static int t_crash(ax_ctx *cx, tact *st, const ax_msg *m)
{
    (void)cx;
    (void)st;
    (void)m;
    return AX_EFAILED;
}

static int t_fail(ax_ctx *cx, tact *st, const ax_msg *m)
{
    char r[64];
    (void)st;
    snprintf(r, sizeof r, "%.*s", (int)m->len, (const char *)m->data);
    return ax_fail(cx, r);
}

static int t_exit(ax_ctx *cx, tact *st, const ax_msg *m)
{
    char r[64];
    (void)st;
    snprintf(r, sizeof r, "%.*s", (int)m->len, (const char *)m->data);
    return ax_stop(cx, ax_self(cx), r);
}

static int t_get(ax_ctx *cx, tact *st, const ax_msg *m)
{
    (void)m;
    st->got++;
    return ax_reply_i64(cx, st->got);
}

static int t_seq(ax_ctx *cx, tact *st, const ax_msg *m)
{
    int64_t v = -1;
    (void)cx;
    if (ax_msg_i64(m, &v) != AX_OK || v != st->next_seq)
        st->seq_bad++;
    st->next_seq = v + 1;
    return AX_OK;
}

static int t_letter(ax_ctx *cx, tact *st, const ax_msg *m)
{
    (void)cx;
    if (st->n_order < 63 && m->len)
        st->order[st->n_order++] = ((const char *)m->data)[0];
    return AX_OK;
}

static int t_sys_exit(ax_ctx *cx, tact *st, const ax_msg *m)
{
    (void)cx;
    st->exits++;
    snprintf(st->last_reason, sizeof st->last_reason, "%.*s", (int)m->len, (const char *)m->data);
    return AX_OK;
}

static int t_sys_down(ax_ctx *cx, tact *st, const ax_msg *m)
{
    (void)cx;
    st->downs++;
    st->last_tag = m->tag;
    snprintf(st->last_reason, sizeof st->last_reason, "%.*s", (int)m->len, (const char *)m->data);
    return AX_OK;
}

static int t_sys_event(ax_ctx *cx, tact *st, const ax_msg *m)
{
    (void)cx;
    st->events++;
    if (m->len > 16 && memmem(m->data, m->len, "\"lagged\"", 8))
        st->lagged++;
    return AX_OK;
}

AX_ACTOR_TYPE(tact_type, "tact", tact, t_start, t_stop, AX_MSG("crash", t_crash), AX_MSG("fail", t_fail),
              AX_MSG("exit", t_exit), AX_MSG("get", t_get), AX_MSG("seq", t_seq), AX_MSG("letter", t_letter),
              AX_MSG("$exit", t_sys_exit), AX_MSG("$down", t_sys_down), AX_MSG("$event", t_sys_event));

/* ---- fixture ---- */
static axd_rt S;        /* the runtime core alone: no keyed routing, cluster or clients */
static axd_config C;    /* its configuration (tests may change it) */
static struct ev_loop *L;

static void setup(void)
{
    char err[256];
    axd_config_defaults(&C);
    axd_log_set_level(AX_LOG_ERROR);
    L = ev_loop_new(EVFLAG_AUTO);
    axd_runtime_init(&S, L, &C, "test@boot-0000000000000001-session-1");
    axd_type *t;
    ck_assert_int_eq(axd_type_register(&S, &tact_type, NULL, &t, err, sizeof err), 0);
    g_fail_next_start = 0;
    g_stops = 0;
}

static void teardown(void)
{
    /* built-in test type: unregister it ourselves (plugins would do it on unload) */
    axd_runtime_stop_all(&S, "shutdown");
    axd_type *t = axd_hmap_get(&S.types, "tact", 4);
    axd_runtime_free(&S);
    axd_plugins_unload_all(&S);
    axd_hmap_free(&S.types);
    axd_type_unregister(&S, t);
    axd_config_free(&C);
    ev_loop_destroy(L);
}

static ax_ref spawn_opts(const char *name, ax_spawn_opts *o)
{
    ax_ref r;
    const char *why = NULL;
    if (o)
        o->name = name;
    ax_spawn_opts d = AX_SPAWN_OPTS_INIT;
    d.name = name;
    ck_assert_int_eq(axd_actor_spawn(&S, "tact", 4, o ? o : &d, &r, &why), 0);
    return r;
}

static tact *state_of(ax_ref r)
{
    axd_actor *a = axd_actor_get_any(&S, r);
    return a ? a->state : NULL;
}

static int send_kind(ax_ref to, const char *msg, const char *payload)
{
    size_t n = payload ? strlen(payload) : 0;
    axd_env *e = axd_env_new(&S, n);
    memcpy(e->data, payload ? payload : "", n);
    e->m.id = axd_msg_lookup(&S, msg, strlen(msg));
    int rc = axd_actor_deliver(&S, axd_actor_get(&S, to), e);
    if (rc)
        axd_env_free(&S, e);
    return rc;
}

/* asks made by the test: the result lands in these */
static int g_ask_status[2048];
static int g_ask_done;
static void test_ask_done(axd_rt *s, axd_pending *p, int status, const void *d, size_t n)
{
    (void)s;
    (void)d;
    (void)n;
    g_ask_status[p->u.client.req_id] = status;
    g_ask_done++;
}

static int ask(ax_ref to, const char *msg, uint32_t idx)
{
    axd_env *e = axd_env_new(&S, 0);
    e->m.id = axd_msg_lookup(&S, msg, strlen(msg));
    axd_pending *p = axd_pending_new(&S, 5000, test_ask_done);
    p->u.client.req_id = idx;
    e->ask = p->slot;
    e->ask_gen = p->gen;
    g_ask_status[idx] = 1; /* not done */
    int rc = axd_actor_deliver(&S, axd_actor_get(&S, to), e);
    if (rc) {
        e->ask = 0;
        axd_env_free(&S, e);
        axd_pending_complete(&S, p->slot, p->gen, rc, NULL, 0);
    }
    return rc;
}

static void run(void) { axd_runtime_run(&S); }

/* Let timers fire: run the loop for about ms milliseconds (bounded). */
static void run_for(double ms)
{
    double end = ev_time() + ms / 1000.0;
    for (int i = 0; i < 10000 && ev_time() < end; i++) {
        ev_run(L, EVRUN_NOWAIT);
        axd_runtime_run(&S);
        usleep(1000);
    }
}

/* ---- mailboxes ---- */

START_TEST(control_mailbox_is_drained_before_user_mailbox)
{
    ax_ref r = spawn_opts(NULL, NULL);
    ck_assert_int_eq(send_kind(r, "letter", "a"), 0);
    ck_assert_int_eq(send_kind(r, "letter", "b"), 0);
    /* a control message queued after the user ones runs first: the stop wins and the
     * queued user messages are never handled */
    axd_actor_stop(&S, axd_actor_get(&S, r), "stopped");
    run();
    ck_assert_ptr_null(axd_actor_get_any(&S, r));
    ck_assert_int_eq(g_stops, 1);
}
END_TEST

START_TEST(control_message_overtakes_queued_user_messages)
{
    ax_spawn_opts o = AX_SPAWN_OPTS_INIT;
    o.trap_exit = 1;
    ax_ref a = spawn_opts("a", &o);
    ax_ref b = spawn_opts("b", NULL);
    ck_assert_int_eq(axd_sup_link(&S, axd_actor_get(&S, a), b, &(int){0}), 0);
    ck_assert_int_eq(send_kind(a, "letter", "x"), 0);
    ck_assert_int_eq(send_kind(a, "letter", "y"), 0);
    axd_actor_stop(&S, axd_actor_get(&S, b), "boom"); /* b's exit signal reaches a's control box */
    run();
    tact *st = state_of(a);
    ck_assert_int_eq(st->exits, 1);
    /* the $exit (control) was handled before x and y (user) */
    ck_assert_int_eq(st->n_order, 2);
    ck_assert_str_eq(st->last_reason, "boom");
}
END_TEST

START_TEST(full_user_mailbox_refuses_with_efull)
{
    ax_spawn_opts o = AX_SPAWN_OPTS_INIT;
    o.mailbox_cap = 4;
    ax_ref r = spawn_opts(NULL, &o);
    for (int i = 0; i < 4; i++)
        ck_assert_int_eq(send_kind(r, "get", NULL), 0);
    ck_assert_int_eq(send_kind(r, "get", NULL), AX_EFULL);
    ck_assert_uint_eq(S.ctr.mailbox_full, 1);
    run();
    ck_assert_int_eq(state_of(r)->got, 4);
    ck_assert_int_eq(send_kind(r, "get", NULL), 0); /* drained: accepted again */
}
END_TEST

START_TEST(ref_to_stopped_actor_never_reaches_a_new_one)
{
    ax_ref old = spawn_opts("n", NULL);
    axd_actor_stop(&S, axd_actor_get(&S, old), "stopped");
    run();
    ax_ref fresh = spawn_opts("n", NULL);
    ck_assert_uint_eq(fresh.id, old.id); /* the slot is reused ... */
    ck_assert_uint_ne(fresh.gen, old.gen); /* ... with a new generation */
    ck_assert_int_eq(send_kind(old, "get", NULL), AX_ENOPROC);
    ck_assert_int_eq(send_kind(fresh, "get", NULL), 0);
}
END_TEST

START_TEST(unknown_message_is_enomsg)
{
    ax_ref r = spawn_opts(NULL, NULL);
    axd_env *e = axd_env_new(&S, 0);
    e->m.id = axd_msg_intern(&S, "nosuch", 6);
    ck_assert_int_eq(axd_actor_deliver(&S, axd_actor_get(&S, r), e), AX_ENOMSG);
    axd_env_free(&S, e);
}
END_TEST

/* ---- restart policies ---- */

START_TEST(transient_actor_that_exits_normally_is_not_restarted)
{
    ax_spawn_opts o = AX_SPAWN_OPTS_INIT;
    o.restart = AX_RESTART_TRANSIENT;
    ax_ref r = spawn_opts(NULL, &o);
    send_kind(r, "exit", "normal");
    run();
    ck_assert_ptr_null(axd_actor_get_any(&S, r));
    ck_assert_uint_eq(S.ctr.restarts, 0);
}
END_TEST

START_TEST(transient_actor_that_crashes_is_restarted_with_same_ref_and_fresh_state)
{
    ax_spawn_opts o = AX_SPAWN_OPTS_INIT;
    o.restart = AX_RESTART_TRANSIENT;
    ax_ref r = spawn_opts(NULL, &o);
    send_kind(r, "get", NULL);
    send_kind(r, "get", NULL);
    send_kind(r, "crash", NULL);
    run();
    axd_actor *a = axd_actor_get(&S, r);
    ck_assert_ptr_nonnull(a);
    ck_assert_uint_eq(a->restarts, 1);
    tact *st = a->state;
    ck_assert_int_eq(st->got, 0);    /* fresh state */
    ck_assert_int_eq(st->starts, 1); /* on_start ran again on the zeroed state */
    ck_assert_str_eq(g_stop_reason, "error:EFAILED");
}
END_TEST

START_TEST(permanent_actor_is_restarted_even_after_normal_exit)
{
    ax_spawn_opts o = AX_SPAWN_OPTS_INIT;
    o.restart = AX_RESTART_PERMANENT;
    ax_ref r = spawn_opts(NULL, &o);
    send_kind(r, "exit", "normal");
    run();
    ck_assert_ptr_nonnull(axd_actor_get(&S, r));
    ck_assert_uint_eq(S.ctr.restarts, 1);
}
END_TEST

START_TEST(temporary_actor_is_never_restarted)
{
    ax_ref r = spawn_opts(NULL, NULL);
    send_kind(r, "crash", NULL);
    run();
    ck_assert_ptr_null(axd_actor_get_any(&S, r));
}
END_TEST

START_TEST(ax_fail_is_an_abnormal_exit_with_its_reason)
{
    ax_spawn_opts o = AX_SPAWN_OPTS_INIT;
    o.restart = AX_RESTART_TRANSIENT;
    ax_ref r = spawn_opts(NULL, &o);
    send_kind(r, "fail", "disk_on_fire");
    run();
    ck_assert_str_eq(g_stop_reason, "disk_on_fire");
    ck_assert_uint_eq(S.ctr.restarts, 1);
}
END_TEST

START_TEST(intensity_exceeded_stops_the_actor_and_fires_links)
{
    ax_spawn_opts o = AX_SPAWN_OPTS_INIT;
    o.restart = AX_RESTART_PERMANENT;
    o.max_restarts = 3;
    o.restart_window_ms = 60000;
    ax_ref r = spawn_opts("crashy", &o);
    ax_spawn_opts w = AX_SPAWN_OPTS_INIT;
    w.trap_exit = 1;
    ax_ref watcher = spawn_opts("watcher", &w);
    ck_assert_int_eq(axd_sup_link(&S, axd_actor_get(&S, watcher), r, &(int){0}), 0);
    for (int i = 0; i < 4; i++) {
        ck_assert_int_eq(send_kind(r, "crash", NULL), 0);
        run();
    }
    ck_assert_ptr_null(axd_actor_get_any(&S, r));
    ck_assert_uint_eq(S.ctr.restarts, 3);
    ck_assert_str_eq(g_stop_reason, "error:EFAILED");
    run();
    tact *st = state_of(watcher);
    ck_assert_int_eq(st->exits, 1);
    ck_assert_str_eq(st->last_reason, "restart_intensity");
}
END_TEST

START_TEST(restart_backoff_delays_the_restart)
{
    ax_spawn_opts o = AX_SPAWN_OPTS_INIT;
    o.restart = AX_RESTART_PERMANENT;
    o.backoff_ms = 100;
    ax_ref r = spawn_opts(NULL, &o);
    send_kind(r, "crash", NULL);
    run();
    axd_actor *a = axd_actor_get_any(&S, r);
    ck_assert_ptr_nonnull(a);
    ck_assert_int_eq(a->st, AXD_ST_RESTARTING);
    ck_assert_int_eq(send_kind(r, "get", NULL), 0); /* accepted into the mailbox meanwhile */
    run_for(250);
    a = axd_actor_get(&S, r);
    ck_assert_int_eq(a->st, AXD_ST_RUNNING);
    ck_assert_int_eq(((tact *)a->state)->got, 1); /* kept message delivered after restart */
}
END_TEST

START_TEST(failed_on_start_during_restart_counts_toward_intensity)
{
    ax_spawn_opts o = AX_SPAWN_OPTS_INIT;
    o.restart = AX_RESTART_PERMANENT;
    o.max_restarts = 2;
    o.restart_window_ms = 60000;
    ax_ref r = spawn_opts(NULL, &o);
    g_fail_next_start = 100;
    send_kind(r, "crash", NULL);
    run();
    ck_assert_ptr_null(axd_actor_get_any(&S, r));
    ck_assert_str_eq(g_stop_reason, "start_failed:EFAILED");
}
END_TEST

START_TEST(keep_policy_preserves_order_of_1000_queued_messages)
{
    char num[16];
    ax_spawn_opts o = AX_SPAWN_OPTS_INIT;
    o.restart = AX_RESTART_PERMANENT;
    o.mailbox_policy = AX_MAILBOX_KEEP;
    o.mailbox_cap = 2000;
    ax_ref r = spawn_opts(NULL, &o);
    send_kind(r, "crash", NULL);
    for (int i = 0; i < 1000; i++) {
        snprintf(num, sizeof num, "%d", i);
        ck_assert_int_eq(send_kind(r, "seq", num), 0);
    }
    for (int i = 0; i < 100; i++)
        run();
    tact *st = state_of(r);
    ck_assert_uint_eq(S.ctr.restarts, 1);
    ck_assert_int_eq(st->seq_bad, 0);
    ck_assert_int_eq(st->next_seq, 1000);
}
END_TEST

START_TEST(drain_and_drop_fails_pending_asks_immediately)
{
    ax_spawn_opts o = AX_SPAWN_OPTS_INIT;
    o.restart = AX_RESTART_PERMANENT;
    o.mailbox_policy = AX_MAILBOX_DRAIN_AND_DROP;
    ax_ref r = spawn_opts(NULL, &o);
    g_ask_done = 0;
    send_kind(r, "crash", NULL);
    for (uint32_t i = 0; i < 10; i++)
        ck_assert_int_eq(ask(r, "get", i), 0);
    run(); /* one turn: the crash, the restart, the drop — no time passes */
    ck_assert_int_eq(g_ask_done, 10);
    for (int i = 0; i < 10; i++)
        ck_assert_int_eq(g_ask_status[i], AX_ECANCELED);
    ck_assert_int_eq(state_of(r)->got, 0);
}
END_TEST

START_TEST(asks_queued_at_a_final_stop_fail_with_enoproc)
{
    ax_ref r = spawn_opts(NULL, NULL);
    g_ask_done = 0;
    send_kind(r, "crash", NULL);
    for (uint32_t i = 0; i < 5; i++)
        ck_assert_int_eq(ask(r, "get", i), 0);
    run();
    ck_assert_int_eq(g_ask_done, 5);
    ck_assert_int_eq(g_ask_status[4], AX_ENOPROC);
}
END_TEST

/* ---- links ---- */

START_TEST(link_propagates_abnormal_exit)
{
    ax_ref a = spawn_opts("a", NULL);
    ax_ref b = spawn_opts("b", NULL);
    ck_assert_int_eq(axd_sup_link(&S, axd_actor_get(&S, a), b, &(int){0}), 0);
    send_kind(a, "fail", "boom");
    run();
    run();
    ck_assert_ptr_null(axd_actor_get_any(&S, a));
    ck_assert_ptr_null(axd_actor_get_any(&S, b));
    ck_assert_str_eq(g_stop_reason, "boom"); /* b died with the same reason */
}
END_TEST

START_TEST(normal_exit_does_not_kill_linked_actors)
{
    ax_ref a = spawn_opts("a", NULL);
    ax_ref b = spawn_opts("b", NULL);
    ck_assert_int_eq(axd_sup_link(&S, axd_actor_get(&S, a), b, &(int){0}), 0);
    send_kind(a, "exit", "normal");
    run();
    run();
    ck_assert_ptr_null(axd_actor_get_any(&S, a));
    ck_assert_ptr_nonnull(axd_actor_get(&S, b));
}
END_TEST

START_TEST(trap_exit_converts_a_linked_crash_into_a_message)
{
    ax_spawn_opts o = AX_SPAWN_OPTS_INIT;
    o.trap_exit = 1;
    ax_ref t = spawn_opts("trapper", &o);
    ax_ref c = spawn_opts("crasher", NULL);
    ck_assert_int_eq(axd_sup_link(&S, axd_actor_get(&S, c), t, &(int){0}), 0);
    send_kind(c, "crash", NULL);
    run();
    run();
    ck_assert_ptr_nonnull(axd_actor_get(&S, t));
    tact *st = state_of(t);
    ck_assert_int_eq(st->exits, 1);
    ck_assert_str_eq(st->last_reason, "error:EFAILED");
}
END_TEST

START_TEST(kill_is_not_trappable)
{
    ax_spawn_opts o = AX_SPAWN_OPTS_INIT;
    o.trap_exit = 1;
    ax_ref t = spawn_opts("trapper", &o);
    axd_actor_stop(&S, axd_actor_get(&S, t), "kill");
    run();
    ck_assert_ptr_null(axd_actor_get_any(&S, t));
    ck_assert_str_eq(g_stop_reason, "killed");
    /* through a link, as in Erlang: an actor that exits with reason kill itself sends
     * kill, an ordinary reason: a trapping partner gets it as $exit and lives */
    ax_ref t2 = spawn_opts("trapper2", &o);
    ax_ref k = spawn_opts("killer", NULL);
    ck_assert_int_eq(axd_sup_link(&S, axd_actor_get(&S, k), t2, &(int){0}), 0);
    send_kind(k, "fail", "kill");
    run();
    run();
    ck_assert_ptr_nonnull(axd_actor_get(&S, t2));
    ck_assert_int_eq(state_of(t2)->exits, 1);
    ck_assert_str_eq(state_of(t2)->last_reason, "kill");
}
END_TEST

START_TEST(link_to_dead_actor_delivers_noproc_at_once)
{
    ax_ref dead = spawn_opts("dead", NULL);
    axd_actor_stop(&S, axd_actor_get(&S, dead), "stopped");
    run();
    ax_spawn_opts o = AX_SPAWN_OPTS_INIT;
    o.trap_exit = 1;
    ax_ref t = spawn_opts("trapper", &o);
    int noproc = 0;
    ck_assert_int_eq(axd_sup_link(&S, axd_actor_get(&S, t), dead, &noproc), AX_ENOPROC);
    ck_assert_int_eq(noproc, 1);
    run();
    ck_assert_int_eq(state_of(t)->exits, 1);
    ck_assert_str_eq(state_of(t)->last_reason, "noproc");
}
END_TEST

START_TEST(unlink_stops_propagation)
{
    ax_ref a = spawn_opts("a", NULL);
    ax_ref b = spawn_opts("b", NULL);
    ck_assert_int_eq(axd_sup_link(&S, axd_actor_get(&S, a), b, &(int){0}), 0);
    axd_sup_unlink(&S, axd_actor_get(&S, b), a);
    send_kind(a, "crash", NULL);
    run();
    run();
    ck_assert_ptr_nonnull(axd_actor_get(&S, b));
}
END_TEST

/* ---- monitors ---- */

START_TEST(monitor_delivers_down_with_reason)
{
    ax_ref w = spawn_opts("w", NULL);
    ax_ref t = spawn_opts("t", NULL);
    uint64_t mref;
    ck_assert_int_eq(axd_sup_monitor(&S, w, t, &mref), 0);
    send_kind(t, "fail", "oops");
    run();
    run();
    tact *st = state_of(w);
    ck_assert_int_eq(st->downs, 1);
    ck_assert_uint_eq(st->last_tag, mref);
    ck_assert_str_eq(st->last_reason, "oops");
    ck_assert_ptr_nonnull(axd_actor_get(&S, w)); /* one-way: the watcher lives */
}
END_TEST

START_TEST(exactly_one_down_per_monitor_under_a_crash_storm)
{
    ax_ref w = spawn_opts("w", NULL);
    ax_spawn_opts o = AX_SPAWN_OPTS_INIT;
    o.restart = AX_RESTART_PERMANENT;
    o.max_restarts = 50;
    o.restart_window_ms = 60000;
    ax_ref t = spawn_opts("t", &o);
    uint64_t m[20];
    for (int i = 0; i < 20; i++)
        ck_assert_int_eq(axd_sup_monitor(&S, w, t, &m[i]), 0);
    for (int i = 0; i < 60; i++) { /* restarts do not fire monitors; the final stop does */
        send_kind(t, "crash", NULL);
        run();
    }
    for (int i = 0; i < 10; i++)
        run();
    ck_assert_ptr_null(axd_actor_get_any(&S, t));
    ck_assert_int_eq(state_of(w)->downs, 20);
    ck_assert_str_eq(state_of(w)->last_reason, "restart_intensity");
}
END_TEST

START_TEST(demonitor_with_flush_guarantees_no_down)
{
    ax_ref w = spawn_opts("w", NULL);
    ax_ref t = spawn_opts("t", NULL);
    uint64_t mref;
    ck_assert_int_eq(axd_sup_monitor(&S, w, t, &mref), 0);
    /* the target dies first, its down is queued for w (not yet handled), then w
     * demonitors with flush */
    axd_actor_exit(&S, axd_actor_get(&S, t), "stopped", 1);
    ck_assert_uint_eq(axd_actor_get(&S, w)->user.len, 1); /* signals queue with messages */
    axd_sup_demonitor(&S, w, mref, 1);
    run();
    ck_assert_int_eq(state_of(w)->downs, 0);
}
END_TEST

START_TEST(monitoring_a_dead_actor_gives_noproc_at_once)
{
    ax_ref w = spawn_opts("w", NULL);
    ax_ref t = spawn_opts("t", NULL);
    axd_actor_stop(&S, axd_actor_get(&S, t), "stopped");
    run();
    uint64_t mref;
    ck_assert_int_eq(axd_sup_monitor(&S, w, t, &mref), 0);
    run();
    ck_assert_int_eq(state_of(w)->downs, 1);
    ck_assert_str_eq(state_of(w)->last_reason, "noproc");
}
END_TEST

/* ---- lifecycle stream ---- */

START_TEST(lifecycle_events_reach_actor_subscribers_in_order)
{
    ax_ref sub = spawn_opts("sub", NULL);
    ck_assert_int_eq(axd_events_subscribe(&S, sub, NULL, 0, 0), 0);
    ax_spawn_opts o = AX_SPAWN_OPTS_INIT;
    o.restart = AX_RESTART_TRANSIENT;
    ax_ref t = spawn_opts("t", &o); /* started */
    send_kind(t, "crash", NULL);     /* restarted */
    run();
    axd_actor_stop(&S, axd_actor_get(&S, t), "stopped"); /* stopped */
    run();
    run();
    ck_assert_int_eq(state_of(sub)->events, 3);
}
END_TEST

START_TEST(slow_subscriber_gets_lagged_marker_and_daemon_keeps_going)
{
    C.events_buffer = 4;
    ax_ref sub = spawn_opts("sub", NULL);
    ck_assert_int_eq(axd_events_subscribe(&S, sub, NULL, 0, 0), 0);
    for (int i = 0; i < 20; i++) /* 20 started events while the subscriber does not run */
        spawn_opts(NULL, NULL);
    ck_assert_uint_gt(S.ctr.events_lagged, 0);
    run();
    spawn_opts(NULL, NULL); /* the next event comes after a lagged marker */
    run();
    ck_assert_int_eq(state_of(sub)->lagged, 1);
}
END_TEST

/* ---- registry ---- */

START_TEST(concurrent_get_or_spawn_on_one_key_yields_one_actor)
{
    ax_ref first, r;
    ck_assert_int_eq(axd_registry_get_or_spawn(&S, "tact", 4, "k1", 2, NULL, 1, &first, NULL), 0);
    for (int i = 0; i < 1000; i++) {
        ck_assert_int_eq(axd_registry_get_or_spawn(&S, "tact", 4, "k1", 2, NULL, 1, &r, NULL), 0);
        ck_assert(ax_ref_eq(r, first));
    }
    ck_assert_uint_eq(S.ctr.spawned, 1);
    ck_assert_int_eq(axd_registry_get_or_spawn(&S, "tact", 4, "k2", 2, NULL, 0, &r, NULL), AX_ENOTFOUND);
}
END_TEST

START_TEST(idle_reaper_stops_an_idle_actor_and_not_a_busy_one)
{
    ax_spawn_opts o = AX_SPAWN_OPTS_INIT;
    o.idle_timeout_ms = 150;
    ax_ref idle, busy;
    ck_assert_int_eq(axd_registry_get_or_spawn(&S, "tact", 4, "idle", 4, &o, 1, &idle, NULL), 0);
    ck_assert_int_eq(axd_registry_get_or_spawn(&S, "tact", 4, "busy", 4, &o, 1, &busy, NULL), 0);
    for (int i = 0; i < 8; i++) { /* 400 ms: busy gets a message every 50 ms */
        send_kind(busy, "get", NULL);
        run_for(50);
    }
    ck_assert_ptr_null(axd_actor_get_any(&S, idle));
    ck_assert_ptr_nonnull(axd_actor_get(&S, busy));
    ck_assert_str_eq(g_stop_reason, "idle");
    ax_ref again;
    ck_assert_int_eq(axd_registry_get_or_spawn(&S, "tact", 4, "idle", 4, &o, 1, &again, NULL), 0);
    ck_assert(!ax_ref_eq(again, idle)); /* a fresh one */
}
END_TEST

START_TEST(binary_keys_stay_valid_json_as_key_hex)
{
    ax_ref r1, r2;
    ck_assert_int_eq(axd_registry_get_or_spawn(&S, "tact", 4, "alice", 5, NULL, 1, &r1, NULL), 0);
    ck_assert_int_eq(axd_registry_get_or_spawn(&S, "tact", 4, "\xff\x01", 2, NULL, 1, &r2, NULL), 0);
    cJSON *doc = axd_runtime_actors_json(&S), *it;
    int plain = 0, hex = 0;
    cJSON_ArrayForEach(it, cJSON_GetObjectItem(doc, "actors"))
    {
        const char *k = cJSON_GetStringValue(cJSON_GetObjectItem(it, "key"));
        const char *h = cJSON_GetStringValue(cJSON_GetObjectItem(it, "key_hex"));
        plain += k && !strcmp(k, "alice");
        hex += h && !strcmp(h, "ff01");
    }
    cJSON_Delete(doc);
    ck_assert_int_eq(plain, 1);
    ck_assert_int_eq(hex, 1);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("runtime");
    TCase *tc = tcase_create("runtime");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, control_mailbox_is_drained_before_user_mailbox);
    tcase_add_test(tc, control_message_overtakes_queued_user_messages);
    tcase_add_test(tc, full_user_mailbox_refuses_with_efull);
    tcase_add_test(tc, ref_to_stopped_actor_never_reaches_a_new_one);
    tcase_add_test(tc, unknown_message_is_enomsg);
    tcase_add_test(tc, transient_actor_that_exits_normally_is_not_restarted);
    tcase_add_test(tc, transient_actor_that_crashes_is_restarted_with_same_ref_and_fresh_state);
    tcase_add_test(tc, permanent_actor_is_restarted_even_after_normal_exit);
    tcase_add_test(tc, temporary_actor_is_never_restarted);
    tcase_add_test(tc, ax_fail_is_an_abnormal_exit_with_its_reason);
    tcase_add_test(tc, intensity_exceeded_stops_the_actor_and_fires_links);
    tcase_add_test(tc, restart_backoff_delays_the_restart);
    tcase_add_test(tc, failed_on_start_during_restart_counts_toward_intensity);
    tcase_add_test(tc, keep_policy_preserves_order_of_1000_queued_messages);
    tcase_add_test(tc, drain_and_drop_fails_pending_asks_immediately);
    tcase_add_test(tc, asks_queued_at_a_final_stop_fail_with_enoproc);
    tcase_add_test(tc, link_propagates_abnormal_exit);
    tcase_add_test(tc, normal_exit_does_not_kill_linked_actors);
    tcase_add_test(tc, trap_exit_converts_a_linked_crash_into_a_message);
    tcase_add_test(tc, kill_is_not_trappable);
    tcase_add_test(tc, link_to_dead_actor_delivers_noproc_at_once);
    tcase_add_test(tc, unlink_stops_propagation);
    tcase_add_test(tc, monitor_delivers_down_with_reason);
    tcase_add_test(tc, exactly_one_down_per_monitor_under_a_crash_storm);
    tcase_add_test(tc, demonitor_with_flush_guarantees_no_down);
    tcase_add_test(tc, monitoring_a_dead_actor_gives_noproc_at_once);
    tcase_add_test(tc, lifecycle_events_reach_actor_subscribers_in_order);
    tcase_add_test(tc, slow_subscriber_gets_lagged_marker_and_daemon_keeps_going);
    tcase_add_test(tc, concurrent_get_or_spawn_on_one_key_yields_one_actor);
    tcase_add_test(tc, idle_reaper_stops_an_idle_actor_and_not_a_busy_one);
    tcase_add_test(tc, binary_keys_stay_valid_json_as_key_hex);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
