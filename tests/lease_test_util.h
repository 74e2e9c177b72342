/* Helpers shared by test_lease.c and test_lease_redis.c: run the loop until a condition
 * holds (bounded), and a small "cluster" of shard managers whose serving sets are sampled
 * every millisecond to prove that no shard is ever served by two nodes and that epochs
 * only grow. */
#ifndef AX_LEASE_TEST_UTIL_H
#define AX_LEASE_TEST_UTIL_H

#include <check.h>
#include <ev.h>
#include <string.h>

#include "shard.h"

#define TN_MAX_SHARDS 64
#define TN_MAX_NODES 4

typedef struct tnode {
    axd_shards *m;
    char name[64];
    int serving[TN_MAX_SHARDS]; /* per callbacks */
    uint64_t epoch[TN_MAX_SHARDS];
    int acquired, lost_lease, handover, shutdown, stopped;
    double last_lost_at;
} tnode;

typedef struct tcluster {
    struct ev_loop *loop;
    tnode nodes[TN_MAX_NODES];
    int n_nodes;
    uint32_t n_shards;
    uint64_t max_epoch[TN_MAX_SHARDS]; /* highest epoch ever granted, per shard */
    int double_owner, epoch_backwards, samples;
    ev_timer sampler;
} tcluster;

static inline void tn_on_acquired(void *ud, uint32_t shard, uint64_t epoch);
static inline void tn_on_lost(void *ud, uint32_t shard, uint64_t epoch, const char *reason);
static inline void tn_on_stopped(void *ud);

static tcluster *tc_cur; /* the one cluster of the running test */

static inline void tn_on_acquired(void *ud, uint32_t shard, uint64_t epoch)
{
    tnode *n = ud;
    tcluster *c = tc_cur;
    if (shard < TN_MAX_SHARDS) {
        if (epoch <= c->max_epoch[shard])
            c->epoch_backwards++;
        c->max_epoch[shard] = epoch;
        for (int i = 0; i < c->n_nodes; i++)
            if (&c->nodes[i] != n && c->nodes[i].serving[shard])
                c->double_owner++;
        n->serving[shard] = 1;
        n->epoch[shard] = epoch;
    }
    n->acquired++;
}

static inline void tn_on_lost(void *ud, uint32_t shard, uint64_t epoch, const char *reason)
{
    tnode *n = ud;
    if (shard < TN_MAX_SHARDS) {
        ck_assert_msg(n->serving[shard], "on_lost for a shard not served");
        ck_assert_uint_eq(n->epoch[shard], epoch);
        n->serving[shard] = 0;
    }
    if (!strcmp(reason, AXD_SHARD_LOST))
        n->lost_lease++;
    else if (!strcmp(reason, AXD_SHARD_HANDOVER))
        n->handover++;
    else if (!strcmp(reason, AXD_SHARD_SHUTDOWN))
        n->shutdown++;
    n->last_lost_at = ev_now(tc_cur->loop);
}

static inline void tn_on_stopped(void *ud) { ((tnode *)ud)->stopped++; }

/* Every millisecond: each shard served (by the manager's own check) by at most one node,
 * and the manager agrees with its callbacks. */
static inline void tc_sample(struct ev_loop *loop, ev_timer *w, int revents)
{
    tcluster *c = w->data;
    (void)loop;
    (void)revents;
    c->samples++;
    for (uint32_t s = 0; s < c->n_shards && s < TN_MAX_SHARDS; s++) {
        int owners = 0;
        for (int i = 0; i < c->n_nodes; i++) {
            if (!c->nodes[i].m)
                continue;
            int serving = axd_shards_serving(c->nodes[i].m, s, NULL);
            owners += serving;
            if (serving && !c->nodes[i].serving[s])
                c->double_owner += 1000; /* serving without on_acquired: a bug too */
        }
        if (owners > 1)
            c->double_owner++;
    }
}

static inline void tc_init(tcluster *c, struct ev_loop *loop, uint32_t n_shards)
{
    memset(c, 0, sizeof *c);
    c->loop = loop;
    c->n_shards = n_shards;
    tc_cur = c;
    ev_timer_init(&c->sampler, tc_sample, 0.001, 0.001);
    c->sampler.data = c;
    ev_timer_start(loop, &c->sampler);
}

static inline tnode *tc_add(tcluster *c, axd_lease_store *st, const char *name, uint32_t ttl, uint32_t renew,
                            uint32_t safety)
{
    ck_assert_int_lt(c->n_nodes, TN_MAX_NODES);
    tnode *n = &c->nodes[c->n_nodes++];
    char err[256] = "";
    snprintf(n->name, sizeof n->name, "%s", name);
    axd_shards_cfg cfg = {.node = name,
                         .n_shards = c->n_shards,
                         .ttl_ms = ttl,
                         .renew_interval_ms = renew,
                         .safety_margin_ms = safety};
    axd_shards_cbs cbs = {.on_acquired = tn_on_acquired, .on_lost = tn_on_lost, .on_stopped = tn_on_stopped, .ud = n};
    n->m = axd_shards_new(c->loop, st, &cfg, &cbs, err, sizeof err);
    ck_assert_msg(n->m != NULL, "%s", err);
    return n;
}

static inline int tn_count(const tnode *n, uint32_t n_shards)
{
    int k = 0;
    for (uint32_t s = 0; s < n_shards && s < TN_MAX_SHARDS; s++)
        k += n->serving[s];
    return k;
}

static inline void tc_free(tcluster *c)
{
    ev_timer_stop(c->loop, &c->sampler);
    for (int i = 0; i < c->n_nodes; i++) {
        axd_shards_free(c->nodes[i].m);
        c->nodes[i].m = NULL;
    }
}

static inline void tu_wake(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)w;
    (void)revents;
}

/* Run the loop until pred(ud) or timeout seconds of wall time; returns pred's last value. */
static inline int run_until(struct ev_loop *loop, int (*pred)(void *), void *ud, double timeout)
{
    ev_timer wake;
    ev_timer_init(&wake, tu_wake, 0.001, 0.001);
    ev_timer_start(loop, &wake);
    double end = ev_time() + timeout;
    int ok = 0;
    while (!(ok = pred ? pred(ud) : 0) && ev_time() < end)
        ev_run(loop, EVRUN_ONCE);
    ev_timer_stop(loop, &wake);
    return ok;
}

static inline void run_for(struct ev_loop *loop, double seconds) { run_until(loop, NULL, NULL, seconds); }

#endif
