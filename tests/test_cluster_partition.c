/* Keyed routing under a network partition, in one process: three nodes on the memory
 * overlay (one axd_server and libev loop each) share ONE memory lease store (on a loop of
 * its own). One node is cut off from the others (both ways) and from the store (as if it
 * lost Redis) while keyed asks keep coming from every side. A probe actor checks at every
 * delivered message that no two nodes ever delivered for one shard at one epoch and that
 * no older epoch of a shard is delivered after a newer one anywhere; after every loop
 * step the test checks that no shard is served by two nodes at once. The isolated node
 * must stop serving at its local deadline, the majority must take its shards over, and
 * after healing every shard is served again and every key answers from every node. */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cluster.h"
#include "overlay.h"
#include "lease.h"
#include "log.h"
#include "peer.h"
#include "server.h"
#include "shard.h"

#include <check.h> /* after plugin.h: check.h defines a `fail` macro */


#define MAXN 3
#define NSH 8
#define NKEYS 24
#define TTL_MS "1000"
#define RENEW_MS "300"
#define SAFETY_MS "300"
#define MAX_EPOCHS 256

typedef struct tnode {
    const char *name;
    axd_server s;
    struct ev_loop *loop;
    int live;
} tnode;

static tnode N[MAXN];
static axd_ovl_net *NET;
static struct ev_loop *STORE_LOOP;
static axd_lease_store *STORE;

/* ---- what was delivered: per shard, which node delivered at which epoch ---- */
typedef struct shard_log {
    uint64_t epoch[MAX_EPOCHS];
    int node[MAX_EPOCHS];
    int n;
    uint64_t max_epoch;
} shard_log;

static shard_log LOG[NSH];
static long delivered[MAXN];
static int violations;
static char violation[256];

static int node_index(axd_rt *s)
{
    for (int i = 0; i < MAXN; i++)
        if (&N[i].s.rt == s)
            return i;
    return -1;
}

static void violate(const char *msg)
{
    if (!violations++)
        snprintf(violation, sizeof violation, "%s", msg);
}

/* ---- the probe: a keyed actor that checks the fencing invariant at each delivery ---- */
typedef struct probe {
    uint64_t n;
} probe;

static int p_hit(ax_ctx *cx, probe *st, const ax_msg *m)
{
    (void)m;
    char buf[200];
    int me = node_index(cx->srv);
    const axd_actor *self = cx->self;
    const char *key = self->key + strlen(self->key) + 1; /* stored as "type\0key" */
    uint32_t shard = axd_shard_of(key, self->key_len - strlen(self->key) - 1, NSH);
    uint64_t epoch = ax_ctx_epoch(cx);
    st->n++;
    if (me < 0 || !epoch) {
        snprintf(buf, sizeof buf, "key %s delivered on node %d without serving shard %u", key, me, shard);
        violate(buf);
        return ax_reply_i64(cx, 0);
    }
    delivered[me]++;
    shard_log *l = &LOG[shard];
    if (epoch < l->max_epoch) {
        snprintf(buf, sizeof buf, "shard %u: %s delivered epoch %llu after epoch %llu was delivered", shard,
                 N[me].name, (unsigned long long)epoch, (unsigned long long)l->max_epoch);
        violate(buf);
    }
    int found = 0;
    for (int k = 0; k < l->n; k++) {
        if (l->epoch[k] != epoch)
            continue;
        found = 1;
        if (l->node[k] != me) {
            snprintf(buf, sizeof buf, "shard %u epoch %llu delivered by %s and by %s", shard,
                     (unsigned long long)epoch, N[l->node[k]].name, N[me].name);
            violate(buf);
        }
    }
    if (!found && l->n < MAX_EPOCHS) {
        l->epoch[l->n] = epoch;
        l->node[l->n++] = me;
    }
    if (epoch > l->max_epoch)
        l->max_epoch = epoch;
    return ax_reply_i64(cx, (int64_t)epoch);
}
AX_ACTOR_TYPE(probe_type, "probe", probe, NULL, NULL, AX_MSG("hit", p_hit));

/* ---- nodes ---- */

static void node_up(int i, const char *name, const char *const *peers)
{
    axd_config cfg;
    char err[512];
    tnode *n = &N[i];
    axd_config_defaults(&cfg);
    n->name = name;
    const char *set[][2] = {{"node.name", name},
                            {"cluster.auth_token", "mem-token"},
                            {"cluster.heartbeat_interval_ms", "20"},
                            {"cluster.heartbeat_timeout_ms", "300"},
                            {"cluster.reconnect_backoff_min_ms", "5"},
                            {"cluster.reconnect_backoff_max_ms", "40"},
                            {"shards.count", "8"},
                            {"lease.ttl_ms", TTL_MS},
                            {"lease.renew_interval_ms", RENEW_MS},
                            {"lease.safety_margin_ms", SAFETY_MS}};
    for (size_t k = 0; k < sizeof set / sizeof set[0]; k++)
        ck_assert_msg(axd_config_set(&cfg, set[k][0], set[k][1], err, sizeof err) == 0, "%s", err);
    for (size_t k = 0; peers && peers[k]; k++) {
        char e[128];
        snprintf(e, sizeof e, "%s=mem:1", peers[k]);
        ck_assert_msg(axd_config_set(&cfg, "cluster.peers", e, err, sizeof err) == 0, "%s", err);
    }
    n->loop = ev_loop_new(EVFLAG_AUTO);
    axd_server_init(&n->s, n->loop, &cfg);
    ev_signal_stop(n->loop, &n->s.sig_term); /* libev lets one loop own a signal */
    ev_signal_stop(n->loop, &n->s.sig_int);
    axd_type *t;
    ck_assert_int_eq(axd_type_register(&n->s.rt, &probe_type, NULL, &t, err, sizeof err), 0);
    ck_assert_msg(axd_server_cluster_start_mem(&n->s, NET, err, sizeof err) == 0, "%s", err);
    ck_assert_msg(axd_server_route_start(&n->s, STORE, err, sizeof err) == 0, "%s", err);
    n->live = 1;
}

static void node_down(int i)
{
    tnode *n = &N[i];
    if (!n->live)
        return;
    axd_type *t = axd_hmap_get(&n->s.rt.types, "probe", 5);
    axd_server_free(&n->s);
    axd_type_unregister(&n->s.rt, t);
    ev_loop_destroy(n->loop);
    n->live = 0;
}

static void setup(void)
{
    axd_log_set_level(AX_LOG_ERROR);
    NET = axd_ovl_net_new(7);
    STORE_LOOP = ev_loop_new(EVFLAG_AUTO);
    STORE = axd_lease_mem_new(STORE_LOOP, NSH);
    memset(N, 0, sizeof N);
    memset(LOG, 0, sizeof LOG);
    memset(delivered, 0, sizeof delivered);
    violations = 0;
    violation[0] = 0;
}

static void teardown(void)
{
    for (int i = 0; i < MAXN; i++)
        node_down(i);
    axd_lease_store_free(STORE); /* lookups still in flight are canceled: their tables go */
    ev_loop_destroy(STORE_LOOP);
    axd_ovl_net_free(NET);
}

/* Shards served by more than one node at this instant (each node by its own clock). */
static int overlaps, max_overlap_shard = -1;
static void check_single_owner(void)
{
    for (uint32_t k = 0; k < NSH; k++) {
        int owners = 0;
        for (int i = 0; i < MAXN; i++)
            owners += N[i].live && N[i].s.keyed.shards && axd_shards_serving(N[i].s.keyed.shards, k, NULL);
        if (owners > 1) {
            overlaps++;
            max_overlap_shard = (int)k;
        }
    }
}

static void pump(double ms)
{
    double end = ev_time() + ms / 1000.0;
    do {
        ev_run(STORE_LOOP, EVRUN_NOWAIT);
        for (int i = 0; i < MAXN; i++)
            if (N[i].live) {
                ev_run(N[i].loop, EVRUN_NOWAIT);
                axd_runtime_run(&N[i].s.rt);
            }
        check_single_owner();
        usleep(200);
    } while (ev_time() < end);
}

static int peer_up(int i, const char *peer)
{
    cJSON *doc = axd_cluster_nodes_json(&N[i].s.rt, N[i].s.cluster), *p;
    int up = 0;
    cJSON_ArrayForEach(p, cJSON_GetObjectItem(doc, "peers"))
    {
        if (!strcmp(cJSON_GetStringValue(cJSON_GetObjectItem(p, "name")), peer))
            up = !strcmp(cJSON_GetStringValue(cJSON_GetObjectItem(p, "state")), "up");
    }
    cJSON_Delete(doc);
    return up;
}

static int served_by(uint32_t shard)
{
    int who = -1;
    for (int i = 0; i < MAXN; i++)
        if (N[i].live && axd_shards_serving(N[i].s.keyed.shards, shard, NULL)) {
            if (who >= 0)
                return -2;
            who = i;
        }
    return who;
}

/* Every shard served by exactly one of the nodes in `set` (bitmask), and their live
 * counts agree with the set's size. */
static int settled(unsigned set)
{
    int n = __builtin_popcount(set);
    for (int i = 0; i < MAXN; i++)
        if ((set >> i & 1) && N[i].s.keyed.shards) {
            cJSON *doc = axd_shards_json(N[i].s.keyed.shards, 0);
            int live = (int)cJSON_GetObjectItem(doc, "live_nodes")->valuedouble;
            int owned = (int)cJSON_GetObjectItem(doc, "owned")->valuedouble;
            int target = (int)cJSON_GetObjectItem(doc, "target")->valuedouble;
            cJSON_Delete(doc);
            if (live != n || owned > target)
                return 0;
        }
    for (uint32_t k = 0; k < NSH; k++) {
        int w = served_by(k);
        if (w < 0 || !(set >> w & 1))
            return 0;
    }
    return 1;
}

static void wait_settled(unsigned set, double ms)
{
    double end = ev_time() + ms / 1000.0;
    while (!settled(set)) {
        ck_assert_msg(ev_time() < end, "shards not settled on node set %#x within %.0f ms", set, ms);
        pump(5);
    }
}

/* ---- keyed asks from the test, as a client of node i would make them ---- */
typedef struct outcome {
    long ok, busy, noconn, timedout, stale, other;
    int last_other;
} outcome;
static outcome OUT[MAXN];
static long inflight;

static void ask_done(axd_rt *s, axd_pending *p, int status, const void *d, size_t n)
{
    (void)p;
    (void)d;
    (void)n;
    int i = node_index(s);
    ck_assert_int_ge(i, 0);
    outcome *o = &OUT[i];
    inflight--;
    switch (status) {
    case AX_OK: o->ok++; break;
    case AX_EBUSY: o->busy++; break;
    case AX_ENOCONN: o->noconn++; break;
    case AX_ETIMEDOUT: o->timedout++; break;
    case AX_ESTALE: o->stale++; break;
    default: o->other++; o->last_other = status; break;
    }
}

/* The way the client listener does it: local if this node serves the key's shard,
 * else forwarded to the shard's owner. */
static void ask_key(int i, const char *key)
{
    axd_rt *s = &N[i].s.rt;
    size_t klen = strlen(key);
    axd_pending *p = axd_pending_new(s, 400, ask_done);
    ck_assert_ptr_nonnull(p);
    inflight++;
    ax_ref ref;
    const char *why = NULL;
    int rc = axd_registry_route(s, "probe", 5, key, klen, 0, 1, &ref, &why);
    if (rc == AX_EBUSY) {
        rc = axd_route_send(&N[i].s.keyed, "probe", 5, key, klen, AX_PK_ASK, "hit", 3, NULL, 0, AX_REF_NONE, p);
    } else if (rc == AX_OK) {
        axd_actor *a = axd_actor_get(s, ref);
        axd_env *e = axd_env_new(s, 0);
        e->m.id = axd_msg_lookup(s, "hit", 3);
        e->ask = p->slot;
        e->ask_gen = p->gen;
        rc = axd_actor_deliver(s, a, e);
        if (rc) {
            e->ask = 0;
            axd_env_free(s, e);
        }
    }
    if (rc)
        axd_pending_complete(s, p->slot, p->gen, rc, NULL, 0);
}

static void traffic(double ms, unsigned from)
{
    char key[16];
    double end = ev_time() + ms / 1000.0;
    int round = 0;
    while (ev_time() < end) {
        for (int i = 0; i < MAXN; i++) {
            if (!(from >> i & 1) || !N[i].live)
                continue;
            for (int k = round % 3; k < NKEYS; k += 3) {
                snprintf(key, sizeof key, "key-%d", k);
                ask_key(i, key);
            }
        }
        round++;
        pump(8);
    }
}

static void drain(void)
{
    double end = ev_time() + 3;
    while (inflight > 0) {
        ck_assert_msg(ev_time() < end, "%ld asks never completed", inflight);
        pump(5);
    }
}

static void no_violations(const char *when)
{
    ck_assert_msg(violations == 0, "%s: %d fencing violations; first: %s", when, violations, violation);
    ck_assert_msg(overlaps == 0, "%s: shard %d served by two nodes at once (%d samples)", when, max_overlap_shard,
                  overlaps);
}

static void mesh_up(void)
{
    double end = ev_time() + 3;
    for (int i = 0; i < MAXN; i++)
        for (int j = 0; j < MAXN; j++)
            while (i != j && !peer_up(i, N[j].name)) {
                ck_assert_msg(ev_time() < end, "%s never saw %s up", N[i].name, N[j].name);
                pump(2);
            }
}

/* ---------------- tests ---------------- */

START_TEST(partitioned_node_drops_its_shards_and_no_shard_epoch_is_ever_served_twice)
{
    node_up(0, "a", (const char *const[]){"b", "c", NULL});
    node_up(1, "b", (const char *const[]){"a", "c", NULL});
    node_up(2, "c", (const char *const[]){"a", "b", NULL});
    mesh_up();
    wait_settled(07, 5000);
    int c_shards = 0;
    for (uint32_t k = 0; k < NSH; k++)
        c_shards += served_by(k) == 2;
    ck_assert_int_gt(c_shards, 0);

    /* everything answers from everywhere */
    traffic(400, 07);
    drain();
    no_violations("before the partition");
    for (int i = 0; i < MAXN; i++) {
        ck_assert_msg(OUT[i].ok > 0 && OUT[i].other == 0 && OUT[i].busy == 0,
                      "%s before the partition: ok %ld busy %ld other %ld (%s)", N[i].name, OUT[i].ok, OUT[i].busy,
                      OUT[i].other, ax_errname(OUT[i].last_other));
        ck_assert_int_gt(delivered[i], 0);
    }
    memset(OUT, 0, sizeof OUT);

    /* c loses the network and the lease store */
    char c_owner[256];
    snprintf(c_owner, sizeof c_owner, "%s", N[2].s.keyed.route_owner);
    long c_before = delivered[2];
    double t_cut = ev_time();
    axd_ovl_net_partition2(NET, "c", "a");
    axd_ovl_net_partition2(NET, "c", "b");
    axd_lease_mem_cut(STORE, c_owner, 1);
    /* it must stop at its local deadline: ttl - safety after its last renew at most */
    double c_stopped = 0;
    while (ev_time() - t_cut < 3.0) {
        traffic(20, 07);
        if (!c_stopped && axd_shards_count_owned(N[2].s.keyed.shards) == 0)
            c_stopped = ev_time() - t_cut;
    }
    ck_assert_msg(c_stopped > 0, "c still serves %u shards 3 s after losing the store",
                  axd_shards_count_owned(N[2].s.keyed.shards));
    /* When the stop callback ran is loop scheduling, not safety (it comes late on a loaded
     * machine): safety is that c never delivers past its deadline, which every delivery
     * checks exactly (axd_shards_serving) and no_violations() proves below. */
    wait_settled(03, 3000); /* a and b serve everything */
    long c_at_stop = delivered[2];
    drain();
    ck_assert_int_eq(delivered[2], c_at_stop); /* c delivered nothing after it stopped */
    no_violations("during the partition");
    printf("  c stopped serving %.0f ms after the cut (%ld deliveries before, %ld during)\n", c_stopped * 1000,
           c_before, c_at_stop - c_before);
    /* from a and b every key answers; from c none does, and every error is retryable */
    memset(OUT, 0, sizeof OUT);
    traffic(300, 07);
    drain();
    no_violations("after the takeover");
    for (int i = 0; i < 2; i++)
        ck_assert_msg(OUT[i].ok > 0 && OUT[i].busy + OUT[i].noconn + OUT[i].timedout + OUT[i].other == 0,
                      "%s after the takeover: ok %ld busy %ld noconn %ld timedout %ld other %ld", N[i].name,
                      OUT[i].ok, OUT[i].busy, OUT[i].noconn, OUT[i].timedout, OUT[i].other);
    ck_assert_int_eq(OUT[2].ok, 0);
    ck_assert_msg(OUT[2].other == 0, "c: non-retryable error %s", ax_errname(OUT[2].last_other));
    ck_assert_int_gt(OUT[2].busy + OUT[2].noconn + OUT[2].timedout + OUT[2].stale, 0);

    /* heal: c comes back (same boot), takes its share again */
    axd_ovl_net_heal(NET, "c", "a");
    axd_ovl_net_heal(NET, "c", "b");
    axd_lease_mem_cut(STORE, c_owner, 0);
    mesh_up();
    double t_heal = ev_time();
    while (!settled(07)) {
        ck_assert_msg(ev_time() - t_heal < 5, "not settled 5 s after the heal");
        traffic(20, 07);
    }
    drain();
    no_violations("after the heal");
    /* a sender's cached owner (1 s) may still name the node that handed a shard over:
     * its first message there gets a retryable EBUSY and the owner is looked up again */
    traffic(100, 07);
    drain();
    long busy = 0;
    for (int i = 0; i < MAXN; i++) {
        ck_assert_msg(OUT[i].other == 0, "%s: non-retryable error %s", N[i].name, ax_errname(OUT[i].last_other));
        busy += OUT[i].busy + OUT[i].stale;
    }
    printf("  %ld retryable EBUSY/ESTALE answers right after the heal\n", busy);
    memset(OUT, 0, sizeof OUT);
    long c_healed = delivered[2];
    traffic(300, 07);
    drain();
    no_violations("at the end");
    for (int i = 0; i < MAXN; i++)
        ck_assert_msg(OUT[i].ok > 0 && OUT[i].busy + OUT[i].noconn + OUT[i].timedout + OUT[i].other == 0,
                      "%s after the heal: ok %ld busy %ld noconn %ld timedout %ld other %ld", N[i].name, OUT[i].ok,
                      OUT[i].busy, OUT[i].noconn, OUT[i].timedout, OUT[i].other);
    ck_assert_int_gt(delivered[2], c_healed);
    /* every shard changed owner at least across the partition or kept a single one */
    for (uint32_t k = 0; k < NSH; k++)
        ck_assert_int_ge(LOG[k].n, 1);
    printf("  settled %.0f ms after the heal; deliveries a %ld, b %ld, c %ld\n", (ev_time() - t_heal) * 1000,
           delivered[0], delivered[1], delivered[2]);
}
END_TEST

/* ---- an actor on another worker of node a asking a key that node b serves ---- */
typedef struct asker {
    int replies, status;
    char reply[32];
} asker;

static int a_go(ax_ctx *cx, asker *st, const ax_msg *m)
{
    char key[64];
    snprintf(key, sizeof key, "%.*s", (int)m->len, (const char *)m->data);
    int rc = ax_ask_key(cx, "probe", key, "hit", NULL, 0, 3000, "got", 1);
    if (rc) { /* refused at once: recorded like an answer */
        st->replies++;
        st->status = rc;
    }
    return AX_OK;
}

static int a_got(ax_ctx *cx, asker *st, const ax_msg *m)
{
    (void)cx;
    st->replies++;
    st->status = m->status;
    snprintf(st->reply, sizeof st->reply, "%.*s", (int)m->len, m->data ? (const char *)m->data : "");
    return AX_OK;
}
AX_ACTOR_TYPE(asker_type, "asker", asker, NULL, NULL, AX_MSG("go", a_go), AX_MSG("got", a_got));

typedef struct asker_look {
    ax_ref ref;
    int found;
    asker seen;
} asker_look;

static void asker_look_cb(axd_rt *rt, void *ud)
{
    asker_look *l = ud;
    axd_actor *a = axd_actor_get(rt, l->ref);
    l->found = a != NULL;
    if (a)
        l->seen = *(asker *)a->state;
}

START_TEST(an_actor_on_another_worker_reaches_a_key_that_another_node_serves)
{
    char err[256];
    node_up(0, "a", (const char *const[]){"b", NULL});
    node_up(1, "b", (const char *const[]){"a", NULL});
    double end = ev_time() + 3;
    while (!peer_up(0, "b") || !peer_up(1, "a")) {
        ck_assert_msg(ev_time() < end, "a and b never saw each other up");
        pump(2);
    }
    wait_settled(03, 5000);
    /* a key of a shard b serves */
    char key[32] = "";
    for (int k = 0; k < 1000 && !key[0]; k++) {
        char cand[32];
        snprintf(cand, sizeof cand, "k%d", k);
        if (served_by(axd_shard_of(cand, strlen(cand), NSH)) == 1)
            snprintf(key, sizeof key, "%s", cand);
    }
    ck_assert_msg(key[0], "no key of node b's shards");
    axd_type *at;
    ck_assert_int_eq(axd_type_register(&N[0].s.rt, &asker_type, NULL, &at, err, sizeof err), 0);
    ck_assert_msg(axd_server_workers_start(&N[0].s, 2, err, sizeof err) == 0, "%s", err);
    ax_ref r;
    const char *why = NULL;
    ck_assert_int_eq(axd_actor_spawn_on(&N[0].s.rt, 1, "asker", 5, NULL, &r, &why), 0);
    ck_assert_uint_eq(axd_ref_worker(r), 1);
    axd_env *e = axd_env_new(&N[0].s.rt, strlen(key));
    memcpy(e->data, key, strlen(key));
    e->m.id = axd_msg_lookup(&N[0].s.rt, "go", 2);
    ck_assert_int_eq(axd_xw_env(&N[0].s.rt, r, e), 0);
    asker_look l = {.ref = r};
    end = ev_time() + 5;
    do {
        pump(5);
        ck_assert_int_eq(axd_workers_sync(&N[0].s.workers, 0, 1, asker_look_cb, &l, sizeof l, 1000), 0);
    } while (l.found && l.seen.replies == 0 && ev_time() < end);
    ck_assert(l.found);
    ck_assert_msg(l.seen.replies == 1 && l.seen.status == AX_OK, "%d replies, status %d (%s)", l.seen.replies,
                  l.seen.status, ax_errname(l.seen.status));
    ck_assert_int_eq(delivered[1], 1); /* b's probe handled it, at b's epoch of the shard */
    ck_assert_int_eq(delivered[0], 0);
    node_down(0); /* stops the workers */
    axd_type_unregister(&N[0].s.rt, at);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("cluster_partition");
    TCase *t = tcase_create("partition");
    tcase_add_checked_fixture(t, setup, teardown);
    tcase_set_timeout(t, 120);
    tcase_add_test(t, partitioned_node_drops_its_shards_and_no_shard_epoch_is_ever_served_twice);
    tcase_add_test(t, an_actor_on_another_worker_reaches_a_key_that_another_node_serves);
    suite_add_tcase(s, t);
    return s;
}

int main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    SRunner *r = srunner_create(suite());
    srunner_run_all(r, CK_NORMAL);
    int failed = srunner_ntests_failed(r);
    srunner_free(r);
    return failed ? 1 : 0;
}
