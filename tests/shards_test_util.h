/* Three real axactord peering over loopback TCP with one redis-server as the lease
 * store, for the tests of keyed routing and leases (test_cluster_shards) and of durable
 * keyed actors (test_durable): the nodes' settings, connections, the shard views and the
 * double-ownership sampler, start/kill/restart, keyed asks with bounded retries. Every
 * wait is bounded. Include once, after harness.h and redis_test_util.h. */
#ifndef AX_SHARDS_TEST_UTIL_H
#define AX_SHARDS_TEST_UTIL_H

#include <arpa/inet.h>
#include <check.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <cjson/cJSON.h>

#include "axactor/client.h"
#include "harness.h"
#include "redis_test_util.h"
#include "etcd_test_util.h"

#define TOKEN "shards-token-51c0"
#define NNODES 3
#define NSHARDS 16
#define TTL_MS 2000
#define RENEW_MS 500
#define SAFETY_MS 500
#define HB_TIMEOUT_MS 1000

/* ---------------- three daemons ---------------- */

typedef struct node {
    const char *name;
    int port;
    int store_port; /* 0: R.port; else a proxy in front of it (store cuts) */
    int live;
    ax_h_daemon *d;
    axc_conn *c;
    char args[48][96];
    const char *argv[49];
} node;

static node N[NNODES];
static redis_proc R;
static etcd_proc E;

/* AX_TEST_STORE=etcd (store_etcd): the same cluster on etcd instead of redis-server (the
 * tests that need Redis itself are left out, see cluster_suite_main). */
static int cluster_redis_aof; /* cluster_up: redis with appendonly yes, appendfsync always */
static int cluster_etcd_members = 1; /* cluster_up on etcd: 1 or 3 members (every node is given all) */

/* More settings for every node (k: the next free n->args slot; returns the next one). */
static size_t (*node_extra_args)(node *n, size_t k);

static const char *const *node_args(node *n)
{
    size_t k = 0;
#define ARG(...) snprintf(n->args[k++], sizeof n->args[0], __VA_ARGS__)
#define SET(...)                                                                                                  \
    do {                                                                                                          \
        ARG("--set");                                                                                             \
        ARG(__VA_ARGS__);                                                                                         \
    } while (0)
    ARG("-n");
    ARG("%s", n->name);
    ARG("-p");
    ARG("counter");
    ARG("-p");
    ARG("fence");
    ARG("-p");
    ARG("ledger");
    SET("cluster.listen=127.0.0.1:%d", n->port);
    for (int i = 0; i < NNODES; i++)
        if (&N[i] != n)
            SET("cluster.peers=%s=127.0.0.1:%d", N[i].name, N[i].port);
    SET("cluster.auth_token=%s", TOKEN);
    SET("cluster.heartbeat_interval_ms=100");
    SET("cluster.heartbeat_timeout_ms=%d", HB_TIMEOUT_MS);
    SET("cluster.reconnect_backoff_max_ms=300");
    SET("shards.count=%d", NSHARDS);
    if (store_etcd()) {
        SET("lease.store=etcd");
        SET("lease.etcd_endpoints=%.74s", E.endpoints); /* three members: at most 68 bytes */
        SET("lease.etcd_timeout_ms=500");
    } else {
        SET("lease.store=redis");
        SET("lease.redis_host=127.0.0.1");
        SET("lease.redis_port=%d", n->store_port ? n->store_port : R.port);
        SET("lease.store_name=test-redis-%d", R.port); /* one name: some reach it through a proxy */
        SET("lease.redis_connect_timeout_ms=500");
    }
    SET("lease.ttl_ms=%d", TTL_MS);
    SET("lease.renew_interval_ms=%d", RENEW_MS);
    SET("lease.safety_margin_ms=%d", SAFETY_MS);
    if (node_extra_args)
        k = node_extra_args(n, k);
#undef SET
#undef ARG
    for (size_t i = 0; i < k; i++)
        n->argv[i] = n->args[i];
    n->argv[k] = NULL;
    return n->argv;
}

/* A connection to node i, made again if the daemon was restarted or the old one broke. */
static axc_conn *conn(int i)
{
    node *n = &N[i];
    ck_assert_msg(n->live, "node %s is not running", n->name);
    if (n->c && axc_is_broken(n->c)) {
        axc_close(n->c);
        n->c = NULL;
    }
    if (!n->c)
        n->c = ax_h_connect(n->d);
    return n->c;
}

static cJSON *doc_of(int i, int (*fn)(axc_conn *, char **), const char *what)
{
    char *json = NULL;
    axc_conn *c = conn(i);
    int rc = fn(c, &json);
    ck_assert_msg(rc == 0, "%s of %s: %s (%s)", what, N[i].name, ax_errname(rc), axc_errmsg(c));
    cJSON *doc = cJSON_Parse(json);
    ck_assert_msg(doc != NULL, "%s of %s: not JSON: %s", what, N[i].name, json);
    axc_free(json);
    return doc;
}

static double num(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItem(o, k);
    ck_assert_msg(cJSON_IsNumber(v), "no number %s", k);
    return v->valuedouble;
}

static const char *str(const cJSON *o, const char *k)
{
    const char *s = cJSON_GetStringValue(cJSON_GetObjectItem(o, k));
    ck_assert_msg(s != NULL, "no string %s", k);
    return s;
}

/* Every node sees every other as "up". */
static int mesh_up(void)
{
    for (int i = 0; i < NNODES; i++) {
        if (!N[i].live)
            continue;
        cJSON *doc = doc_of(i, axc_nodes, "nodes"), *p;
        int up = 0;
        cJSON_ArrayForEach(p, cJSON_GetObjectItem(doc, "peers"))
        {
            for (int j = 0; j < NNODES; j++)
                if (N[j].live && j != i && !strcmp(str(p, "name"), N[j].name) && !strcmp(str(p, "state"), "up"))
                    up++;
        }
        cJSON_Delete(doc);
        int want = 0;
        for (int j = 0; j < NNODES; j++)
            want += N[j].live && j != i;
        if (up != want)
            return 0;
    }
    return 1;
}

/* ---------------- the shard view, and the double-ownership sampler ---------------- */

typedef struct view {
    int owned[NSHARDS];  /* "owned" with expires_in_ms > 0 */
    double epoch[NSHARDS];
    double exp_ms[NSHARDS];
    int actors[NSHARDS];
    int live_nodes, target, n_owned;
    double handovers; /* the node's handovers so far (each counted when its release is confirmed) */
    double lost;      /* its shards lost so far (lease lost, stalled past the deadline, regressed) */
    double t0, t1; /* the request was sent after t0, answered before t1 */
} view;

static void view_of(int i, view *v)
{
    memset(v, 0, sizeof *v);
    v->t0 = now_s();
    cJSON *doc = doc_of(i, axc_shards, "shards"), *sh;
    v->t1 = now_s();
    v->live_nodes = (int)num(doc, "live_nodes");
    v->handovers = num(doc, "handovers");
    v->lost = num(doc, "lost_total");
    v->target = (int)num(doc, "target");
    cJSON_ArrayForEach(sh, cJSON_GetObjectItem(doc, "shards"))
    {
        int k = (int)num(sh, "shard");
        ck_assert_int_lt(k, NSHARDS);
        ck_assert_int_ge(k, 0);
        v->epoch[k] = num(sh, "epoch");
        v->exp_ms[k] = num(sh, "expires_in_ms");
        v->actors[k] = (int)num(sh, "actors");
        if (!strcmp(str(sh, "state"), "owned") && v->exp_ms[k] > 0) {
            v->owned[k] = 1;
            v->n_owned++;
        }
    }
    cJSON_Delete(doc);
}

/* Node a said (in *was) it serves shard k until its deadline; a later owner at a higher
 * epoch is no overlap only if a stopped before: a hand-over does that (a stops serving,
 * then releases; the store grants the next epoch only after the release). Asked now:
 * a no longer serves the shard, has confirmed another release since and lost no shard
 * meanwhile. A node that merely lost the lease keeps its claim until its deadline: that
 * stays a violation. */
static int handed_over_since(int a, int k, const view *was)
{
    view now;
    view_of(a, &now);
    return !now.owned[k] && now.handovers > was->handovers && now.lost == was->lost;
}

/* What the sampler has seen: per shard, the highest epoch any node reported serving. */
static double max_owned_epoch[NSHARDS];
static int rounds, served_seen, early_handovers;

/* One round: every live node's view, taken one after the other. Fails on double
 * ownership: node A said at t it serves the shard until t + expires_in_ms, and node B,
 * asked after A answered and before that deadline, says it serves the shard too. Also
 * fails when a node serves an epoch lower than one already seen served (an older owner
 * serving after a newer one). Returns the number of shards served by exactly one node. */
static int sample_round(view vs[NNODES])
{
    for (int i = 0; i < NNODES; i++)
        if (N[i].live)
            view_of(i, &vs[i]);
        else
            memset(&vs[i], 0, sizeof vs[i]);
    int covered = 0;
    for (int k = 0; k < NSHARDS; k++) {
        int owners = 0;
        for (int a = 0; a < NNODES; a++) {
            if (!vs[a].owned[k])
                continue;
            owners++;
            served_seen++;
            for (int b = 0; b < NNODES; b++) {
                if (b == a || !vs[b].owned[k] || vs[b].t0 < vs[a].t1)
                    continue; /* only pairs where b was asked after a answered */
                if (vs[b].t1 < vs[a].t0 + vs[a].exp_ms[k] / 1000.0 && vs[b].epoch[k] > vs[a].epoch[k] &&
                    handed_over_since(a, k, &vs[a])) {
                    early_handovers++; /* a gave it up early, by a confirmed release: b took it after */
                    continue;
                }
                ck_assert_msg(vs[b].t1 >= vs[a].t0 + vs[a].exp_ms[k] / 1000.0,
                              "double ownership of shard %d: %s (epoch %.0f, %.0f ms left) and %s (epoch %.0f) "
                              "in round %d",
                              k, N[a].name, vs[a].epoch[k], vs[a].exp_ms[k], N[b].name, vs[b].epoch[k], rounds);
            }
            ck_assert_msg(vs[a].epoch[k] >= max_owned_epoch[k],
                          "%s serves shard %d at epoch %.0f after epoch %.0f was served (round %d)", N[a].name, k,
                          vs[a].epoch[k], max_owned_epoch[k], rounds);
        }
        for (int a = 0; a < NNODES; a++)
            if (vs[a].owned[k] && vs[a].epoch[k] > max_owned_epoch[k])
                max_owned_epoch[k] = vs[a].epoch[k];
        covered += owners == 1;
    }
    rounds++;
    return covered;
}

/* Sleep ms while sampling every ~50 ms. */
__attribute__((unused)) static void sleep_sampling(int ms)
{
    view vs[NNODES];
    double end = now_s() + ms / 1000.0;
    while (now_s() < end) {
        sample_round(vs);
        sleep_ms(50);
    }
}

/* Wait (bounded) until every shard is served by exactly one node and the live nodes
 * agree on the membership and hold no more than their share. */
static void wait_settled(int timeout_ms)
{
    view vs[NNODES];
    int live = 0;
    for (int i = 0; i < NNODES; i++)
        live += N[i].live;
    double end = now_s() + timeout_ms / 1000.0;
    for (;;) {
        int covered = sample_round(vs), ok = covered == NSHARDS;
        for (int i = 0; i < NNODES; i++)
            if (N[i].live && (vs[i].live_nodes != live || vs[i].n_owned > vs[i].target))
                ok = 0;
        if (ok)
            return;
        if (now_s() > end) {
            cJSON *doc = doc_of(0, axc_shards, "shards");
            char *txt = cJSON_Print(doc);
            ck_abort_msg("shards not settled within %d ms (%d of %d served by one node); node a: %s", timeout_ms,
                         covered, NSHARDS, txt);
        }
        sleep_ms(50);
    }
}

static void (*before_nodes)(void); /* run by cluster_up_n once redis is up, before any node */

/* Start redis and the first `first` nodes (the others can be started later). */
static void cluster_up_n(int first)
{
    static const char *names[NNODES] = {"node-a", "node-b", "node-c"};
    memset(N, 0, sizeof N);
    memset(max_owned_epoch, 0, sizeof max_owned_epoch);
    rounds = served_seen = early_handovers = 0;
    if (store_etcd())
        etcd_up(&E, cluster_etcd_members);
    else
        redis_up_aof(&R, NULL, cluster_redis_aof);
    for (int i = 0; i < NNODES; i++) {
        N[i].name = names[i];
        N[i].port = free_port();
    }
    if (before_nodes)
        before_nodes();
    for (int i = 0; i < first; i++) {
        N[i].d = ax_h_start(node_args(&N[i]));
        N[i].live = 1;
    }
    double end = now_s() + 10;
    while (!mesh_up()) {
        ck_assert_msg(now_s() < end, "the three nodes did not peer within 10 s");
        sleep_ms(50);
    }
    /* a fresh Redis quarantines every shard for one ttl: nothing is served before */
    wait_settled(8 * TTL_MS);
}

static void cluster_up(void) { cluster_up_n(NNODES); }

__attribute__((unused)) static void node_kill(int i)
{
    axc_close(N[i].c);
    N[i].c = NULL;
    ax_h_kill(N[i].d);
    N[i].live = 0;
}

/* Wait (bounded) until port can be bound as a listener again: a free port chosen for a
 * node lies in the ephemeral range, so some short-lived connection of the machine may
 * hold it for a moment when the node restarts on it (seen once in CI: EADDRINUSE). */
static void wait_port_bindable(int port)
{
    for (int i = 0; i < 250; i++) { /* bounded: 5 s */
        int fd = socket(AF_INET, SOCK_STREAM, 0), one = 1;
        struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK),
                                 .sin_port = htons((uint16_t)port)};
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        int ok = bind(fd, (struct sockaddr *)&sa, sizeof sa) == 0;
        close(fd);
        if (ok)
            return;
        sleep_ms(20);
    }
}

__attribute__((unused)) static void node_restart(int i)
{
    wait_port_bindable(N[i].port);
    ax_h_restart(N[i].d, NULL);
    N[i].live = 1;
}

static void cluster_down(void)
{
    for (int i = 0; i < NNODES; i++) {
        axc_close(N[i].c);
        N[i].c = NULL;
        if (N[i].live)
            ax_h_stop(N[i].d); /* releases its leases: Redis must still run */
        else
            ax_h_destroy(N[i].d);
        N[i].d = NULL;
        N[i].live = 0;
    }
    if (store_etcd())
        etcd_down(&E);
    else
        redis_down(&R);
    printf("  (%d sampling rounds, %d served shards seen, never two at once; %d taken over before the old "
           "owner's deadline after its confirmed hand-over)\n",
           rounds, served_seen, early_handovers);
}

/* ---------------- keyed requests ---------------- */

static int retryable(int rc)
{
    return rc == AX_EBUSY || rc == AX_ENOCONN || rc == AX_ETIMEDOUT || rc == AX_ESTALE;
}

/* Ask (type, key) msg through node i, retrying retryable errors for up to budget_ms.
 * Returns the reply (axc_free) or NULL with *rc set. */
static char *ask_key(int i, const char *type, const char *key, const char *msg, int budget_ms, int *rc)
{
    axc_target t = axc_by_key(type, key);
    double end = now_s() + budget_ms / 1000.0;
    for (;;) {
        void *reply = NULL;
        size_t n = 0;
        *rc = axc_ask(conn(i), &t, msg, NULL, 0, 1000, &reply, &n);
        if (*rc == 0)
            return reply;
        axc_free(reply);
        if (!retryable(*rc) || now_s() > end)
            return NULL;
        sleep_ms(20);
    }
}

__attribute__((unused)) static char *ask_key_ok(int i, const char *type, const char *key, const char *msg)
{
    int rc;
    char *v = ask_key(i, type, key, msg, 10000, &rc);
    ck_assert_msg(v != NULL, "ask %s %s %s through %s: %s (%s)", type, key, msg, N[i].name, ax_errname(rc),
                  axc_errmsg(conn(i)));
    return v;
}

/* An acknowledged tell; only "not delivered" errors are retried, so it lands once. */
__attribute__((unused)) static void tell_key_ok(int i, const char *type, const char *key, const char *msg)
{
    axc_target t = axc_by_key(type, key);
    double end = now_s() + 10;
    int rc;
    while ((rc = axc_tell(conn(i), &t, msg, NULL, 0)) == AX_EBUSY || rc == AX_ESTALE) {
        ck_assert_msg(now_s() < end, "tell %s %s kept failing: %s", type, key, ax_errname(rc));
        sleep_ms(20);
    }
    ck_assert_msg(rc == 0, "tell %s %s %s through %s: %s (%s)", type, key, msg, N[i].name, ax_errname(rc),
                  axc_errmsg(conn(i)));
}

/* The node serving the shard of key (FNV-1a-64 as in PROTOCOL.md), and its epoch. */
__attribute__((unused)) static uint32_t shard_of(const char *key)
{
    uint64_t h = 0xcbf29ce484222325ULL;
    for (const unsigned char *p = (const unsigned char *)key; *p; p++)
        h = (h ^ *p) * 0x100000001b3ULL;
    return (uint32_t)(h ^ (h >> 32)) % NSHARDS;
}

__attribute__((unused)) static int owner_of(uint32_t shard, double *epoch)
{
    view v;
    for (int i = 0; i < NNODES; i++) {
        if (!N[i].live)
            continue;
        view_of(i, &v);
        if (v.owned[shard]) {
            *epoch = v.epoch[shard];
            return i;
        }
    }
    return -1;
}


/* ---------------- main ---------------- */

/* The main of a suite of these daemons: skips (77) without redis-server, or when the
 * shell test `also` (may be NULL) fails (then says `what` is missing); else runs it. */
__attribute__((unused)) static int cluster_suite_main(Suite *(*suite)(void), const char *also, const char *what)
{
    if (store_etcd() && !etcd_available()) {
        fprintf(stderr, "etcd not found: skipping\n");
        return 77;
    }
    if (!store_etcd() && (system("redis-server --version >/dev/null 2>&1") != 0 || (also && system(also) != 0))) {
        fprintf(stderr, "%s not found: skipping\n", also ? what : "redis-server");
        return 77;
    }
    signal(SIGPIPE, SIG_IGN);
    setvbuf(stdout, NULL, _IOLBF, 0);
    SRunner *sr = srunner_create(suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

#endif
