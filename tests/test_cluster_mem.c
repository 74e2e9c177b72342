/* Several nodes inside one test process on the in-memory overlay (one axd_server and
 * one libev loop each): deterministic fault injection (seeded drops, delays, one- and
 * two-way partitions, heal, connection resets). Proves: a mesh comes up and carries
 * tell/ask in order; partitions declare a node down exactly once and fire monitors with
 * noconnection; a healed partition brings the same boot back; requests queued across a
 * re-handshake resolve; a restarted node is a new incarnation and requests to the old
 * one fail instead of hanging; a forced simultaneous-connect race ends with one link,
 * every time; drops and delays are survived. */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cluster.h"
#include "overlay.h"
#include "log.h"
#include "server.h"
#include "workers.h"

#include <check.h> /* after plugin.h: check.h defines a `fail` macro */


/* ---- a probe actor type ---- */
typedef struct probe {
    int64_t n;
    int downs;
    char last_down[64];
    uint64_t last_mref;
    int replies, last_status;
    char last_reply[32];
    ax_ref last_from;
} probe;

/* fwd / ask_remote: the payload is an ax_ref (maybe remote); plugin code tells "inc" to
 * it, or asks it "get" with the reply arriving as "got". */
static int p_fwd(ax_ctx *cx, probe *st, const ax_msg *m)
{
    (void)st;
    ax_ref to;
    if (m->len != sizeof to)
        return AX_EINVAL;
    memcpy(&to, m->data, sizeof to);
    return ax_tell(cx, to, "inc", NULL, 0);
}
static int p_ask_remote(ax_ctx *cx, probe *st, const ax_msg *m)
{
    (void)st;
    ax_ref to;
    if (m->len != sizeof to)
        return AX_EINVAL;
    memcpy(&to, m->data, sizeof to);
    int rc = ax_ask(cx, to, "get", NULL, 0, 3000, "got", 7);
    if (rc != AX_OK) { /* refused at once: record it like a reply */
        st->replies++;
        st->last_status = rc;
    }
    return AX_OK;
}
static int p_got(ax_ctx *cx, probe *st, const ax_msg *m)
{
    (void)cx;
    st->replies++;
    st->last_status = m->status;
    snprintf(st->last_reply, sizeof st->last_reply, "%.*s", (int)m->len, m->data ? (const char *)m->data : "");
    return AX_OK;
}

static int p_inc(ax_ctx *cx, probe *st, const ax_msg *m)
{
    (void)cx;
    st->n++;
    st->last_from = m->from;
    return AX_OK;
}
static int p_get(ax_ctx *cx, probe *st, const ax_msg *m)
{
    (void)m;
    return ax_reply_i64(cx, st->n);
}
static int p_down(ax_ctx *cx, probe *st, const ax_msg *m)
{
    (void)cx;
    st->downs++;
    st->last_mref = m->tag;
    snprintf(st->last_down, sizeof st->last_down, "%.*s", (int)m->len, (const char *)m->data);
    return AX_OK;
}
AX_ACTOR_TYPE(probe_type, "probe", probe, NULL, NULL, AX_MSG("inc", p_inc), AX_MSG("get", p_get),
              AX_MSG("$down", p_down), AX_MSG("fwd", p_fwd), AX_MSG("ask_remote", p_ask_remote),
              AX_MSG("got", p_got));

/* ---- nodes ---- */
#define MAXN 4
typedef struct tnode {
    const char *name;
    axd_server s;
    struct ev_loop *loop;
    int live;
    axd_workers workers; /* started by the test that runs this node on several workers */
} tnode;

static tnode N[MAXN];
static axd_ovl_net *NET;

static void node_up(int i, const char *name, const char *const *peers, const char *const *extra)
{
    axd_config cfg;
    char err[512];
    tnode *n = &N[i];
    axd_config_defaults(&cfg);
    n->name = name;
    ck_assert_int_eq(axd_config_set(&cfg, "node.name", name, err, sizeof err), 0);
    ck_assert_int_eq(axd_config_set(&cfg, "cluster.auth_token", "mem-token", err, sizeof err), 0);
    ck_assert_int_eq(axd_config_set(&cfg, "cluster.heartbeat_interval_ms", "20", err, sizeof err), 0);
    ck_assert_int_eq(axd_config_set(&cfg, "cluster.heartbeat_timeout_ms", "300", err, sizeof err), 0);
    ck_assert_int_eq(axd_config_set(&cfg, "cluster.reconnect_backoff_min_ms", "5", err, sizeof err), 0);
    ck_assert_int_eq(axd_config_set(&cfg, "cluster.reconnect_backoff_max_ms", "40", err, sizeof err), 0);
    for (size_t k = 0; peers && peers[k]; k++) {
        char e[128];
        snprintf(e, sizeof e, "%s=mem:1", peers[k]);
        ck_assert_msg(axd_config_set(&cfg, "cluster.peers", e, err, sizeof err) == 0, "%s", err);
    }
    for (size_t k = 0; extra && extra[k]; k += 2)
        ck_assert_msg(axd_config_set(&cfg, extra[k], extra[k + 1], err, sizeof err) == 0, "%s", err);
    n->loop = ev_loop_new(EVFLAG_AUTO);
    axd_server_init(&n->s, n->loop, &cfg);
    /* libev lets one loop own a signal: the test nodes need none */
    ev_signal_stop(n->loop, &n->s.sig_term);
    ev_signal_stop(n->loop, &n->s.sig_int);
    axd_type *t;
    ck_assert_int_eq(axd_type_register(&n->s.rt, &probe_type, NULL, &t, err, sizeof err), 0);
    ck_assert_msg(axd_server_cluster_start_mem(&n->s, NET, err, sizeof err) == 0, "%s", err);
    n->live = 1;
}

static void node_down(int i)
{
    tnode *n = &N[i];
    if (!n->live)
        return;
    axd_workers_stop(&n->workers, "shutdown"); /* a no-op when never started */
    axd_type *t = axd_hmap_get(&n->s.rt.types, "probe", 5);
    axd_server_free(&n->s);
    axd_type_unregister(&n->s.rt, t);
    ev_loop_destroy(n->loop);
    n->live = 0;
}

static void setup(void)
{
    axd_log_set_level(AX_LOG_ERROR);
    NET = axd_ovl_net_new(42);
    memset(N, 0, sizeof N);
}

static void teardown(void)
{
    for (int i = 0; i < MAXN; i++)
        node_down(i);
    axd_ovl_net_free(NET);
}

static void pump(double ms)
{
    double end = ev_time() + ms / 1000.0;
    do {
        for (int i = 0; i < MAXN; i++)
            if (N[i].live) {
                ev_run(N[i].loop, EVRUN_NOWAIT);
                axd_runtime_run(&N[i].s.rt);
            }
        usleep(200);
    } while (ev_time() < end);
}

static cJSON *peer_doc(int i, const char *peer, cJSON **doc)
{
    *doc = axd_cluster_nodes_json(&N[i].s.rt, N[i].s.cluster);
    cJSON *p;
    cJSON_ArrayForEach(p, cJSON_GetObjectItem(*doc, "peers"))
    {
        if (!strcmp(cJSON_GetStringValue(cJSON_GetObjectItem(p, "name")), peer))
            return p;
    }
    return NULL;
}

static int peer_state_is(int i, const char *peer, const char *state)
{
    cJSON *doc, *p = peer_doc(i, peer, &doc);
    int ok = p && !strcmp(cJSON_GetStringValue(cJSON_GetObjectItem(p, "state")), state);
    cJSON_Delete(doc);
    return ok;
}

static double peer_num(int i, const char *peer, const char *key)
{
    cJSON *doc, *p = peer_doc(i, peer, &doc);
    double v = p ? cJSON_GetObjectItem(p, key)->valuedouble : -1;
    cJSON_Delete(doc);
    return v;
}

static int links_of(int i)
{
    cJSON *doc = axd_cluster_nodes_json(&N[i].s.rt, N[i].s.cluster);
    int v = (int)cJSON_GetObjectItem(doc, "links")->valuedouble;
    cJSON_Delete(doc);
    return v;
}

/* Pump until i sees peer in state (bounded). */
static void wait_state(int i, const char *peer, const char *state, double ms)
{
    double end = ev_time() + ms / 1000.0;
    while (!peer_state_is(i, peer, state)) {
        ck_assert_msg(ev_time() < end, "%s never saw %s %s", N[i].name, peer, state);
        pump(2);
    }
}

static ax_ref spawn_probe(int i)
{
    ax_ref r;
    const char *why;
    ck_assert_int_eq(axd_actor_spawn(&N[i].s.rt, "probe", 5, NULL, &r, &why), 0);
    return r;
}

static probe *probe_of(int i, ax_ref r)
{
    axd_actor *a = axd_actor_get_any(&N[i].s.rt, r);
    return a ? a->state : NULL;
}

/* A ref, as seen from node i, to actor r on node j. */
static ax_ref remote(int i, int j, ax_ref r)
{
    uint32_t node = 0;
    ck_assert_int_eq(axd_cluster_node_of(N[i].s.cluster, N[j].name, strlen(N[j].name), &node), 0);
    ck_assert_uint_ne(node, 0);
    r.node = node;
    return r;
}

static int tell(int i, ax_ref to, const char *msg)
{
    return axd_cluster_tell_named(N[i].s.cluster, to, msg, strlen(msg), NULL, 0, AX_REF_NONE);
}

/* asks made by the test */
static int g_status[64];
static char g_reply[64][32];
static void ask_done(axd_rt *s, axd_pending *p, int status, const void *d, size_t n)
{
    (void)s;
    uint32_t k = p->u.client.req_id;
    g_status[k] = status;
    snprintf(g_reply[k], sizeof g_reply[k], "%.*s", (int)n, d ? (const char *)d : "");
}

static int ask(int i, ax_ref to, const char *msg, uint32_t k, uint32_t timeout_ms)
{
    axd_pending *p = axd_pending_new(&N[i].s.rt, timeout_ms, ask_done);
    p->u.client.req_id = k;
    g_status[k] = 1; /* pending */
    int rc = axd_cluster_ask_named(N[i].s.cluster, to, msg, strlen(msg), NULL, 0, p, timeout_ms);
    if (rc)
        axd_pending_complete(&N[i].s.rt, p->slot, p->gen, rc, NULL, 0);
    return rc;
}

static void wait_ask(uint32_t k, double ms)
{
    double end = ev_time() + ms / 1000.0;
    while (g_status[k] == 1) {
        ck_assert_msg(ev_time() < end, "ask %u never completed", k);
        pump(2);
    }
}

/* ---------------- tests ---------------- */

START_TEST(three_node_mesh_comes_up_and_carries_tells_and_asks_in_order)
{
    node_up(0, "a", (const char *const[]){"b", "c", NULL}, NULL);
    node_up(1, "b", (const char *const[]){"a", "c", NULL}, NULL);
    node_up(2, "c", (const char *const[]){"a", "b", NULL}, NULL);
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 3; j++)
            if (i != j)
                wait_state(i, N[j].name, "up", 3000);
    ax_ref rb = spawn_probe(1);
    ax_ref to = remote(0, 1, rb), to_c = remote(2, 1, rb);
    for (int k = 0; k < 1000; k++) {
        ck_assert_int_eq(tell(0, to, "inc"), 0);
        ck_assert_int_eq(tell(2, to_c, "inc"), 0);
    }
    ck_assert_int_eq(ask(0, to, "get", 0, 2000), 0);
    wait_ask(0, 3000);
    ck_assert_int_eq(g_status[0], AX_OK);
    /* a's asks come after a's tells; c's may still be in flight, so at least 1000 */
    ck_assert_int_ge(atoi(g_reply[0]), 1000);
    pump(50);
    ck_assert_int_eq(probe_of(1, rb)->n, 2000);
    /* errors from the remote runtime come back */
    ax_ref stale = to;
    stale.gen += 3;
    ck_assert_int_eq(ask(0, stale, "get", 1, 2000), 0);
    wait_ask(1, 3000);
    ck_assert_int_eq(g_status[1], AX_ENOPROC);
    ck_assert_int_eq(ask(0, to, "nosuch", 2, 2000), 0);
    wait_ask(2, 3000);
    ck_assert_int_eq(g_status[2], AX_ENOMSG);
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(links_of(i), 2);
}
END_TEST

START_TEST(two_way_partition_declares_down_once_fires_noconnection_and_heals)
{
    node_up(0, "a", (const char *const[]){"b", NULL}, NULL);
    node_up(1, "b", (const char *const[]){"a", NULL}, NULL);
    wait_state(0, "b", "up", 3000);
    ax_ref target = spawn_probe(1), watcher = spawn_probe(0);
    ax_ref to = remote(0, 1, target);
    uint64_t m1 = ++N[0].s.rt.next_mref, m2 = ++N[0].s.rt.next_mref;
    ck_assert_int_eq(axd_cluster_monitor(N[0].s.cluster, watcher, to, m1), 0);
    ck_assert_int_eq(axd_cluster_monitor(N[0].s.cluster, watcher, to, m2), 0);
    pump(30);
    axd_ovl_net_partition2(NET, "a", "b");
    ck_assert_int_eq(ask(0, to, "get", 3, 5000), 0); /* in flight when the node is lost */
    wait_state(0, "b", "down", 3000);
    wait_state(1, "a", "down", 3000);
    wait_ask(3, 1000);
    ck_assert_int_eq(g_status[3], AX_ENOCONN);
    pump(100);
    probe *w = probe_of(0, watcher);
    ck_assert_int_eq(w->downs, 2); /* one per monitor, never more */
    ck_assert_str_eq(w->last_down, "noconnection");
    ck_assert_int_eq(tell(0, to, "inc"), AX_ENOCONN);
    ck_assert_int_eq((int)peer_num(0, "b", "downs"), 1);
    /* heal: the same boot comes back, refs work again */
    axd_ovl_net_heal(NET, "a", "b");
    wait_state(0, "b", "up", 3000);
    wait_state(1, "a", "up", 3000);
    ck_assert_int_eq(tell(0, to, "inc"), 0);
    ck_assert_int_eq(ask(0, to, "get", 4, 2000), 0);
    wait_ask(4, 3000);
    ck_assert_int_eq(g_status[4], AX_OK);
    ck_assert_str_eq(g_reply[4], "1");
    pump(100);
    ck_assert_int_eq(w->downs, 2);
    ck_assert_int_eq((int)peer_num(0, "b", "downs"), 1);
}
END_TEST

START_TEST(one_way_partition_is_detected_by_both_sides)
{
    node_up(0, "a", (const char *const[]){"b", NULL}, NULL);
    node_up(1, "b", (const char *const[]){"a", NULL}, NULL);
    wait_state(0, "b", "up", 3000);
    axd_ovl_net_partition(NET, "a", "b", 1); /* a's frames never reach b */
    wait_state(1, "a", "down", 3000);
    wait_state(0, "b", "down", 3000);
    axd_ovl_net_heal(NET, "a", "b");
    wait_state(0, "b", "up", 3000);
    wait_state(1, "a", "up", 3000);
}
END_TEST

/* ---- node a on two workers: its actors on worker 1 and the other nodes ---- */
typedef struct wjob {
    _Atomic int done;
    ax_ref ref;
    const char *msg;
    ax_ref arg;
    int rc;
    probe seen; /* a copy of the probe's state, taken on its worker */
} wjob;

static void w_spawn(axd_rt *rt, void *ud)
{
    wjob *j = ud;
    const char *why;
    j->rc = axd_actor_spawn(rt, "probe", 5, NULL, &j->ref, &why);
    atomic_store(&j->done, 1);
}

static void w_send(axd_rt *rt, void *ud)
{
    wjob *j = ud;
    axd_env *e = axd_env_new(rt, sizeof j->arg);
    memcpy(e->data, &j->arg, sizeof j->arg);
    e->m.id = axd_msg_lookup(rt, j->msg, strlen(j->msg));
    j->rc = axd_actor_deliver(rt, axd_actor_get(rt, j->ref), e);
    if (j->rc)
        axd_env_free(rt, e);
    atomic_store(&j->done, 1);
}

static void w_look(axd_rt *rt, void *ud)
{
    wjob *j = ud;
    axd_actor *a = axd_actor_get_any(rt, j->ref);
    j->rc = a ? 0 : AX_ENOPROC;
    if (a)
        j->seen = *(probe *)a->state;
    atomic_store(&j->done, 1);
}

static void w_stop(axd_rt *rt, void *ud)
{
    wjob *j = ud;
    j->rc = axd_actor_stop(rt, axd_actor_get(rt, j->ref), "worker-reason");
    atomic_store(&j->done, 1);
}

static void on_worker1(void (*fn)(axd_rt *, void *), wjob *j)
{
    atomic_store(&j->done, 0);
    ck_assert_int_eq(axd_workers_call(&N[0].workers, 1, fn, j), 0);
    double end = ev_time() + 5;
    while (!atomic_load(&j->done) && ev_time() < end)
        pump(1);
    ck_assert(atomic_load(&j->done));
}

START_TEST(actors_on_another_worker_talk_to_other_nodes_both_ways)
{
    node_up(0, "a", (const char *const[]){"b", NULL}, NULL);
    node_up(1, "b", (const char *const[]){"a", NULL}, NULL);
    wait_state(0, "b", "up", 3000);
    char err[256];
    ck_assert_msg(axd_workers_start(&N[0].workers, &N[0].s.rt, 2, err, sizeof err) == 0, "%s", err);
    wjob j = {0};
    on_worker1(w_spawn, &j);
    ck_assert_int_eq(j.rc, 0);
    ax_ref a1 = j.ref; /* on node a, worker 1 */
    ck_assert_uint_eq(axd_ref_worker(a1), 1);
    ax_ref pb = spawn_probe(1), a1_from_b = remote(1, 0, a1), pb_from_a = remote(0, 1, pb);
    /* b -> a's worker 1: tells, then an ask answered from there */
    for (int k = 0; k < 100; k++)
        ck_assert_int_eq(tell(1, a1_from_b, "inc"), 0);
    ck_assert_int_eq(ask(1, a1_from_b, "get", 0, 3000), 0);
    wait_ask(0, 3000);
    ck_assert_int_eq(g_status[0], AX_OK);
    ck_assert_str_eq(g_reply[0], "100");
    /* a's worker 1 -> b: tells and an ask (the reply comes back to worker 1) */
    wjob f = {.ref = a1, .msg = "fwd", .arg = pb_from_a};
    for (int k = 0; k < 50; k++) {
        on_worker1(w_send, &f);
        ck_assert_int_eq(f.rc, 0);
    }
    double end = ev_time() + 3;
    while (probe_of(1, pb)->n < 50 && ev_time() < end)
        pump(1);
    ck_assert_int_eq(probe_of(1, pb)->n, 50);
    wjob q = {.ref = a1, .msg = "ask_remote", .arg = pb_from_a};
    on_worker1(w_send, &q);
    wjob look = {.ref = a1};
    end = ev_time() + 3;
    do {
        pump(2);
        on_worker1(w_look, &look);
    } while (look.seen.replies == 0 && ev_time() < end);
    ck_assert_int_eq(look.seen.replies, 1);
    ck_assert_int_eq(look.seen.last_status, AX_OK);
    ck_assert_str_eq(look.seen.last_reply, "50");
    /* b monitors a's worker-1 actor: one down with its reason */
    ax_ref watcher = spawn_probe(1);
    uint64_t m = ++N[1].s.rt.next_mref;
    ck_assert_int_eq(axd_cluster_monitor(N[1].s.cluster, watcher, a1_from_b, m), 0);
    pump(30);
    wjob st = {.ref = a1};
    on_worker1(w_stop, &st);
    ck_assert_int_eq(st.rc, 0);
    end = ev_time() + 3;
    while (probe_of(1, watcher)->downs == 0 && ev_time() < end)
        pump(1);
    ck_assert_int_eq(probe_of(1, watcher)->downs, 1);
    ck_assert_str_eq(probe_of(1, watcher)->last_down, "worker-reason");
}
END_TEST

START_TEST(a_remote_actor_exit_is_one_down_with_its_reason)
{
    node_up(0, "a", (const char *const[]){"b", NULL}, NULL);
    node_up(1, "b", (const char *const[]){"a", NULL}, NULL);
    wait_state(0, "b", "up", 3000);
    ax_ref target = spawn_probe(1), watcher = spawn_probe(0);
    ax_ref to = remote(0, 1, target);
    uint64_t m = ++N[0].s.rt.next_mref;
    ck_assert_int_eq(axd_cluster_monitor(N[0].s.cluster, watcher, to, m), 0);
    pump(30);
    ck_assert_int_eq(axd_actor_stop(&N[1].s.rt, axd_actor_get(&N[1].s.rt, target), "custom-reason"), 0);
    pump(100);
    probe *w = probe_of(0, watcher);
    ck_assert_int_eq(w->downs, 1);
    ck_assert_str_eq(w->last_down, "custom-reason");
    ck_assert_uint_eq(w->last_mref, m);
    /* a monitor of an actor that does not exist: one down, noproc */
    uint64_t m2 = ++N[0].s.rt.next_mref;
    ck_assert_int_eq(axd_cluster_monitor(N[0].s.cluster, watcher, to, m2), 0);
    pump(60);
    ck_assert_int_eq(w->downs, 2);
    ck_assert_str_eq(w->last_down, "noproc");
    /* demonitor before the exit: nothing arrives, not even at node loss */
    ax_ref t2 = spawn_probe(1);
    ax_ref to2 = remote(0, 1, t2);
    uint64_t m3 = ++N[0].s.rt.next_mref;
    ck_assert_int_eq(axd_cluster_monitor(N[0].s.cluster, watcher, to2, m3), 0);
    pump(30);
    ck_assert_int_eq(axd_cluster_demonitor(N[0].s.cluster, to2, m3), 0);
    pump(30);
    axd_actor_stop(&N[1].s.rt, axd_actor_get(&N[1].s.rt, t2), "bye");
    pump(60);
    node_down(1);
    wait_state(0, "b", "down", 3000);
    pump(60);
    ck_assert_int_eq(w->downs, 2);
}
END_TEST

START_TEST(requests_queued_across_a_rehandshake_of_the_same_boot_resolve)
{
    node_up(0, "a", (const char *const[]){"b", NULL}, NULL);
    node_up(1, "b", (const char *const[]){"a", NULL}, NULL);
    wait_state(0, "b", "up", 3000);
    double s1 = peer_num(0, "b", "session");
    ax_ref to = remote(0, 1, spawn_probe(1));
    axd_ovl_net_partition2(NET, "a", "b");
    axd_ovl_net_reset(NET, "a", "b");
    pump(20);
    ck_assert_int_eq(tell(0, to, "inc"), 0); /* queued: the node is not declared down yet */
    ck_assert_int_eq(ask(0, to, "get", 5, 3000), 0);
    pump(50);
    axd_ovl_net_heal(NET, "a", "b");
    wait_ask(5, 2000);
    ck_assert_int_eq(g_status[5], AX_OK);
    ck_assert_str_eq(g_reply[5], "1");
    ck_assert(peer_num(0, "b", "session") > s1); /* a new session of the same boot */
    ck_assert_int_eq((int)peer_num(0, "b", "downs"), 0);
}
END_TEST

START_TEST(a_restarted_node_is_a_new_incarnation_and_old_requests_fail)
{
    node_up(0, "a", (const char *const[]){"b", NULL}, NULL);
    node_up(1, "b", (const char *const[]){"a", NULL}, NULL);
    wait_state(0, "b", "up", 3000);
    ax_ref to = remote(0, 1, spawn_probe(1));
    axd_ovl_net_delay(NET, "a", "b", 50);
    ck_assert_int_eq(ask(0, to, "get", 6, 5000), 0); /* will never be answered */
    pump(5);
    node_down(1); /* stops: CLOSE reaches a, which declares b down */
    wait_ask(6, 2000);
    ck_assert_int_eq(g_status[6], AX_ENOCONN);
    node_up(1, "b", (const char *const[]){"a", NULL}, NULL);
    wait_state(0, "b", "up", 3000);
    uint32_t fresh = 0;
    ck_assert_int_eq(axd_cluster_node_of(N[0].s.cluster, "b", 1, &fresh), 0);
    ck_assert_uint_ne(fresh, to.node);
    ck_assert_int_eq(tell(0, to, "inc"), AX_ENOCONN); /* the old incarnation stays down */
    ax_ref to2 = remote(0, 1, spawn_probe(1));
    ck_assert_int_eq(ask(0, to2, "get", 7, 2000), 0);
    wait_ask(7, 3000);
    ck_assert_int_eq(g_status[7], AX_OK);
}
END_TEST

START_TEST(forced_simultaneous_connects_end_with_one_link_every_time)
{
    for (int round = 0; round < 150; round++) {
        /* vary who starts first and how late the other's frames arrive */
        unsigned d = (unsigned)(round % 5);
        axd_ovl_net_delay(NET, "a", "b", d);
        axd_ovl_net_delay(NET, "b", "a", 4 - d);
        if (round % 2) {
            node_up(0, "a", (const char *const[]){"b", NULL}, NULL);
            node_up(1, "b", (const char *const[]){"a", NULL}, NULL);
        } else {
            node_up(1, "b", (const char *const[]){"a", NULL}, NULL);
            node_up(0, "a", (const char *const[]){"b", NULL}, NULL);
        }
        wait_state(0, "b", "up", 3000);
        wait_state(1, "a", "up", 3000);
        pump(15);
        ck_assert_msg(links_of(0) == 1 && links_of(1) == 1, "round %d: links %d/%d", round, links_of(0),
                      links_of(1));
        ck_assert_msg(peer_state_is(0, "b", "up") && peer_state_is(1, "a", "up"), "round %d", round);
        node_down(0);
        node_down(1);
    }
}
END_TEST

/* Deliver a local message to actor r on node i with a binary payload. */
static void local_send(int i, ax_ref r, const char *msg, const void *p, size_t n)
{
    axd_rt *s = &N[i].s.rt;
    axd_env *e = axd_env_new(s, n);
    memcpy(e->data, p, n);
    e->m.id = axd_msg_lookup(s, msg, strlen(msg));
    ck_assert_int_eq(axd_actor_deliver(s, axd_actor_get(s, r), e), 0);
}

START_TEST(plugin_actors_tell_and_ask_remote_actors_and_asks_fail_cleanly_on_node_loss)
{
    node_up(0, "a", (const char *const[]){"b", NULL}, NULL);
    node_up(1, "b", (const char *const[]){"a", NULL}, NULL);
    wait_state(0, "b", "up", 3000);
    ax_ref src = spawn_probe(0), dst = spawn_probe(1);
    ax_ref to = remote(0, 1, dst);
    for (int k = 0; k < 10; k++)
        local_send(0, src, "fwd", &to, sizeof to);
    local_send(0, src, "ask_remote", &to, sizeof to);
    pump(100);
    probe *p = probe_of(0, src);
    ck_assert_int_eq(p->replies, 1);
    ck_assert_int_eq(p->last_status, AX_OK);
    ck_assert_str_eq(p->last_reply, "10"); /* the asks came after the tells, in order */
    /* the receiver sees the sender as a remote ref */
    probe *d = probe_of(1, dst);
    ck_assert_uint_eq(d->last_from.id, src.id);
    ck_assert_uint_ne(d->last_from.node, 0);
    /* the node is lost with an ask in flight: the asker gets ENOCONN, once */
    axd_ovl_net_partition2(NET, "a", "b");
    local_send(0, src, "ask_remote", &to, sizeof to);
    wait_state(0, "b", "down", 3000);
    pump(50);
    ck_assert_int_eq(p->replies, 2);
    ck_assert_int_eq(p->last_status, AX_ENOCONN);
    /* and a tell to a down node is refused at once */
    local_send(0, src, "ask_remote", &to, sizeof to);
    pump(20);
    ck_assert_int_eq(p->replies, 3);
    ck_assert_int_eq(p->last_status, AX_ENOCONN);
}
END_TEST

START_TEST(seeded_drops_and_delays_are_survived)
{
    node_up(0, "a", (const char *const[]){"b", NULL}, NULL);
    node_up(1, "b", (const char *const[]){"a", NULL}, NULL);
    wait_state(0, "b", "up", 3000);
    ax_ref rb = spawn_probe(1);
    ax_ref to = remote(0, 1, rb);
    axd_ovl_net_delay(NET, "a", "b", 30);
    axd_ovl_net_delay(NET, "b", "a", 30);
    double t0 = ev_time();
    ck_assert_int_eq(ask(0, to, "get", 8, 2000), 0);
    wait_ask(8, 2000);
    ck_assert_int_eq(g_status[8], AX_OK);
    ck_assert(ev_time() - t0 >= 0.055);
    axd_ovl_net_heal(NET, "a", "b");
    axd_ovl_net_drop(NET, "a", "b", 300); /* 30 % of a's frames are lost */
    int sent = 0;
    for (int round = 0; round < 50; round++) {
        for (int k = 0; k < 10; k++)
            sent += tell(0, to, "inc") == 0;
        pump(3);
    }
    pump(200);
    int64_t got = probe_of(1, rb)->n;
    ck_assert_int_gt(got, 0);
    ck_assert_int_lt(got, sent); /* some frames were dropped ... */
    ck_assert(axd_ovl_net_dropped(NET) > 0);
    ck_assert(peer_state_is(0, "b", "up")); /* ... but heartbeats got through often enough */
    ck_assert_int_eq((int)peer_num(1, "a", "downs"), 0);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("cluster_mem");
    TCase *t = tcase_create("mem");
    tcase_add_checked_fixture(t, setup, teardown);
    tcase_set_timeout(t, 120);
    tcase_add_test(t, three_node_mesh_comes_up_and_carries_tells_and_asks_in_order);
    tcase_add_test(t, two_way_partition_declares_down_once_fires_noconnection_and_heals);
    tcase_add_test(t, one_way_partition_is_detected_by_both_sides);
    tcase_add_test(t, a_remote_actor_exit_is_one_down_with_its_reason);
    tcase_add_test(t, requests_queued_across_a_rehandshake_of_the_same_boot_resolve);
    tcase_add_test(t, a_restarted_node_is_a_new_incarnation_and_old_requests_fail);
    tcase_add_test(t, forced_simultaneous_connects_end_with_one_link_every_time);
    tcase_add_test(t, seeded_drops_and_delays_are_survived);
    tcase_add_test(t, plugin_actors_tell_and_ask_remote_actors_and_asks_fail_cleanly_on_node_loss);
    tcase_add_test(t, actors_on_another_worker_talk_to_other_nodes_both_ways);
    suite_add_tcase(s, t);
    return s;
}

int main(void)
{
    SRunner *r = srunner_create(suite());
    srunner_run_all(r, CK_NORMAL);
    int failed = srunner_ntests_failed(r);
    srunner_free(r);
    return failed ? 1 : 0;
}
