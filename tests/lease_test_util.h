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
    int release_hold;  /* release_ready answers 0 while set (work of the shard in flight) */
    int release_asked; /* times release_ready was asked */
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

/* ---- keyed state operations of a store (lease.h), waited for ---- */

typedef struct sres {
    int done;
    axd_state_result r;
    char data[256];
} sres;

static inline void sres_cb(void *ud, uint32_t shard, const axd_state_result *r)
{
    (void)shard;
    sres *x = ud;
    ck_assert_int_eq(x->done, 0); /* exactly once */
    x->done = 1;
    x->r = *r;
    ck_assert(r->len <= sizeof x->data);
    if (r->found && r->len)
        memcpy(x->data, r->data, r->len);
    x->r.data = x->data;
}

static inline int sres_done(void *ud) { return ((sres *)ud)->done; }
static inline int run_until(struct ev_loop *loop, int (*cond)(void *), void *ud, double timeout_s);

static inline sres st_load(struct ev_loop *loop, axd_lease_store *st, uint32_t shard, uint64_t epoch, const char *name,
                           size_t nlen)
{
    sres x = {0};
    ck_assert_int_eq(axd_state_load(st, shard, epoch, name, nlen, sres_cb, &x), 0);
    ck_assert_int_eq(x.done, 0); /* never inside the call */
    ck_assert_msg(run_until(loop, sres_done, &x, 5), "no state reply within 5 s");
    return x;
}

static inline sres st_write(struct ev_loop *loop, axd_lease_store *st, uint32_t shard, uint64_t epoch,
                            const char *name, size_t nlen, const void *data, size_t n, int del)
{
    sres x = {0};
    ck_assert_int_eq(axd_state_write(st, shard, epoch, name, nlen, data, n, del, sres_cb, &x), 0);
    ck_assert_int_eq(x.done, 0);
    ck_assert_msg(run_until(loop, sres_done, &x, 5), "no state reply within 5 s");
    return x;
}

/* The state contract of a store where `epoch` holds shard `sh` now (and `other` is a
 * shard nobody holds): records are binary, loads and writes are fenced by the epoch. */
static inline void check_state_contract(struct ev_loop *loop, axd_lease_store *st, uint32_t sh, uint64_t epoch,
                                        uint32_t other)
{
    static const char name[] = "ledger\0acct-1", v1[] = "v\0one", v2[] = "two";
    size_t nl = sizeof name - 1;
    sres r = st_load(loop, st, sh, epoch, name, nl);
    ck_assert_int_eq(r.r.status, AX_OK);
    ck_assert_int_eq(r.r.found, 0); /* no record: a fresh actor */
    r = st_write(loop, st, sh, epoch, name, nl, v1, sizeof v1 - 1, 0);
    ck_assert_int_eq(r.r.status, AX_OK);
    ck_assert_int_eq(r.r.records, 1);
    r = st_load(loop, st, sh, epoch, name, nl);
    ck_assert_int_eq(r.r.status, AX_OK);
    ck_assert_int_eq(r.r.found, 1);
    ck_assert_uint_eq(r.r.len, sizeof v1 - 1);
    ck_assert(!memcmp(r.data, v1, sizeof v1 - 1));
    /* the same name under another type is another record */
    r = st_write(loop, st, sh, epoch, "other\0acct-1", 13, v2, 3, 0);
    ck_assert_int_eq(r.r.records, 2);
    /* an older epoch, a newer one nobody was granted, a shard nobody holds: refused, unchanged */
    r = st_write(loop, st, sh, epoch - 1, name, nl, v2, 3, 0);
    ck_assert_int_eq(r.r.status, AX_ESTALE);
    r = st_write(loop, st, sh, epoch + 1, name, nl, v2, 3, 1);
    ck_assert_int_eq(r.r.status, AX_ESTALE);
    r = st_load(loop, st, sh, epoch - 1, name, nl);
    ck_assert_int_eq(r.r.status, AX_ESTALE);
    r = st_load(loop, st, other, epoch, name, nl);
    ck_assert_int_eq(r.r.status, AX_ESTALE);
    r = st_load(loop, st, sh, epoch, name, nl);
    ck_assert_int_eq(r.r.found, 1);
    ck_assert(!memcmp(r.data, v1, sizeof v1 - 1));
    /* an empty state is a record too; a delete removes it */
    r = st_write(loop, st, sh, epoch, name, nl, NULL, 0, 0);
    ck_assert_int_eq(r.r.status, AX_OK);
    r = st_load(loop, st, sh, epoch, name, nl);
    ck_assert_int_eq(r.r.found, 1);
    ck_assert_uint_eq(r.r.len, 0);
    r = st_write(loop, st, sh, epoch, name, nl, NULL, 0, 1);
    ck_assert_int_eq(r.r.status, AX_OK);
    ck_assert_int_eq(r.r.records, 1);
    r = st_load(loop, st, sh, epoch, name, nl);
    ck_assert_int_eq(r.r.found, 0);
    /* bad arguments: refused at once, no callback */
    sres x = {0};
    ck_assert_int_eq(axd_state_load(st, sh, 0, name, nl, sres_cb, &x), AX_EINVAL);
    ck_assert_int_eq(axd_state_load(st, sh, epoch, name, 0, sres_cb, &x), AX_EINVAL);
    ck_assert_int_eq(axd_state_load(st, st->n_shards, epoch, name, nl, sres_cb, &x), AX_EINVAL);
    ck_assert_int_eq(axd_state_write(st, sh, epoch, name, AXD_STATE_NAME_MAX + 1, v1, 1, 0, sres_cb, &x), AX_EINVAL);
    ck_assert_int_eq(x.done, 0);
}

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

static inline int tn_release_ready(void *ud, uint32_t shard)
{
    (void)shard;
    tnode *n = ud;
    n->release_asked++;
    return !n->release_hold;
}

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
    axd_shards_cbs cbs = {.on_acquired = tn_on_acquired, .on_lost = tn_on_lost, .on_stopped = tn_on_stopped,
                          .release_ready = tn_release_ready, .ud = n};
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

/* ---- one lease operation of a store, waited for (test_lease_redis.c, test_lease_etcd.c) ---- */

typedef struct res {
    int done;
    uint32_t shard;
    axd_lease_result r;
    char owner[300];
} res;

static inline void res_cb(void *ud, uint32_t shard, const axd_lease_result *r)
{
    res *x = ud;
    ck_assert_int_eq(x->done, 0); /* exactly once */
    x->done = 1;
    x->shard = shard;
    x->r = *r;
    ck_assert_ptr_nonnull(r->owner);
    snprintf(x->owner, sizeof x->owner, "%.*s", (int)r->owner_len, r->owner);
    x->r.owner = x->owner;
}
static inline int res_done(void *ud) { return ((res *)ud)->done; }

static inline res wait_res(struct ev_loop *loop, res *x)
{
    ck_assert_msg(run_until(loop, res_done, x, 5), "no reply within 5 s");
    return *x;
}

static inline res do_acquire(struct ev_loop *loop, axd_lease_store *st, uint32_t shard, const char *node, uint32_t ttl,
                      uint64_t min_epoch)
{
    res x = {0};
    ck_assert_int_eq(axd_lease_acquire(st, shard, node, ttl, min_epoch, res_cb, &x), 0);
    ck_assert_int_eq(x.done, 0);
    return wait_res(loop, &x);
}
static inline res do_renew(struct ev_loop *loop, axd_lease_store *st, uint32_t shard, const char *node, uint64_t epoch,
                    uint32_t ttl)
{
    res x = {0};
    ck_assert_int_eq(axd_lease_renew(st, shard, node, epoch, ttl, res_cb, &x), 0);
    ck_assert_int_eq(x.done, 0); /* never inside the call */
    return wait_res(loop, &x);
}
static inline res do_release(struct ev_loop *loop, axd_lease_store *st, uint32_t shard, const char *node, uint64_t epoch)
{
    res x = {0};
    ck_assert_int_eq(axd_lease_release(st, shard, node, epoch, res_cb, &x), 0);
    return wait_res(loop, &x);
}
static inline res do_get(struct ev_loop *loop, axd_lease_store *st, uint32_t shard)
{
    res x = {0};
    ck_assert_int_eq(axd_lease_get(st, shard, res_cb, &x), 0);
    return wait_res(loop, &x);
}
static inline res do_get_with_ttl(struct ev_loop *loop, axd_lease_store *st, uint32_t shard)
{
    res x = {0};
    ck_assert_int_eq(axd_lease_get_with_ttl(st, shard, res_cb, &x), 0);
    return wait_res(loop, &x);
}

/* Acquire after the shard's quarantine (a fresh epoch counter holds the shard under no
 * owner for one ttl, see PROTOCOL.md). */
static inline res acquire_past_quarantine(struct ev_loop *loop, axd_lease_store *st, uint32_t shard, const char *node,
                                   uint32_t ttl)
{
    res r = do_acquire(loop, st, shard, node, ttl, 0);
    ck_assert_msg(r.r.status == AX_OK, "acquire: %s", ax_strerror(r.r.status));
    if (!r.r.granted) {
        ck_assert_str_eq(r.owner, "");
        ck_assert_int_gt(r.r.ttl_ms, 0);
        run_for(loop, r.r.ttl_ms / 1000.0 + 0.02);
        r = do_acquire(loop, st, shard, node, ttl, 0);
    }
    ck_assert_int_eq(r.r.granted, 1);
    return r;
}

/* The lease contract of a store where node-a holds shard sh at epoch e with a ttl of
 * 10 s: another node is refused (with the holder, its epoch and more than min_ttl_ms
 * left), renews need the holder at its epoch, releases too; a released shard is free and
 * keeps its epoch. get_ttl: the store reports get_with_ttl's remaining time (else -1). */
static inline void check_lease_contract(struct ev_loop *loop, axd_lease_store *st, uint32_t sh, uint64_t e,
                                        int64_t min_ttl_ms, int get_ttl)
{
    res r = do_acquire(loop, st, sh, "node-b", 10000, 0);
    ck_assert_int_eq(r.r.status, AX_OK);
    ck_assert_int_eq(r.r.granted, 0);
    ck_assert_str_eq(r.owner, "node-a");
    ck_assert_uint_eq(r.r.epoch, e);
    ck_assert_int_gt(r.r.ttl_ms, min_ttl_ms);

    r = do_renew(loop, st, sh, "node-a", e, 10000);
    ck_assert_int_eq(r.r.status, AX_OK);
    ck_assert_int_eq(r.r.granted, 1);
    r = do_renew(loop, st, sh, "node-b", e, 10000);
    ck_assert_int_eq(r.r.granted, 0);
    r = do_renew(loop, st, sh, "node-a", e - 1, 10000); /* stale epoch */
    ck_assert_int_eq(r.r.granted, 0);

    r = do_get(loop, st, sh);
    ck_assert_int_eq(r.r.granted, 1);
    ck_assert_str_eq(r.owner, "node-a");
    ck_assert_uint_eq(r.r.epoch, e);
    r = do_get_with_ttl(loop, st, sh); /* the survey's: the holder's time left too */
    ck_assert_int_eq(r.r.granted, 1);
    ck_assert_str_eq(r.owner, "node-a");
    ck_assert_uint_eq(r.r.epoch, e);
    if (get_ttl)
        ck_assert_int_gt(r.r.ttl_ms, min_ttl_ms);

    r = do_release(loop, st, sh, "node-a", e - 1);
    ck_assert_int_eq(r.r.granted, 0);
    r = do_release(loop, st, sh, "node-b", e);
    ck_assert_int_eq(r.r.granted, 0);
    r = do_release(loop, st, sh, "node-a", e);
    ck_assert_int_eq(r.r.granted, 1);
    r = do_get(loop, st, sh);
    ck_assert_int_eq(r.r.granted, 0);
    ck_assert_uint_eq(r.r.epoch, e);
}

#endif
