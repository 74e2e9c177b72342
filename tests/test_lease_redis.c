/* The Redis lease store against a real redis-server that each test starts on a free
 * loopback port in a temp dir (and kills, and restarts): the scripts' semantics
 * (acquire, renew, expiry, epochs that only grow, stale renew refused, release), one
 * winner between concurrent nodes, AUTH errors, hostile replies, and recovery after Redis
 * restarts without two owners at any sampled time. Skips (77) without redis-server. */
#include <check.h>
#include <errno.h>
#include <ev.h>
#include <hiredis/hiredis.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "axactor/errors.h"
#include "lease.h"
#include "lease_test_util.h"
#include "redis_test_util.h"
#include "shard.h"

/* A blocking side connection to poke at the server (tests only). */
static redisContext *raw(const redis_proc *r)
{
    struct timeval tv = {2, 0};
    redisContext *c = redisConnectWithTimeout("127.0.0.1", r->port, tv);
    ck_assert_msg(c && !c->err, "raw connect failed");
    redisSetTimeout(c, tv);
    if (r->password[0]) {
        redisReply *x = redisCommand(c, "AUTH %s", r->password);
        ck_assert_ptr_nonnull(x);
        freeReplyObject(x);
    }
    return c;
}

static void raw_cmd(redisContext *c, const char *fmt, const char *a, const char *b, const char *d)
{
    redisReply *x = redisCommand(c, fmt, a, b, d);
    ck_assert_msg(x && x->type != REDIS_REPLY_ERROR, "raw command failed: %s", x ? x->str : c->errstr);
    freeReplyObject(x);
}

static axd_lease_store *store_new_fences(struct ev_loop *loop, const redis_proc *r, const char *password,
                                        uint32_t db, const char *prefix, uint32_t n_shards, int fences)
{
    char err[256] = "";
    axd_lease_redis_cfg cfg = {.host = "127.0.0.1",
                              .port = (uint16_t)r->port,
                              .password = password,
                              .db = db,
                              .prefix = prefix,
                              .connect_timeout_ms = 500,
                              .state_fences = fences};
    axd_lease_store *st = axd_lease_redis_new(loop, n_shards, &cfg, err, sizeof err);
    ck_assert_msg(st != NULL, "%s", err);
    return st;
}

static axd_lease_store *store_new(struct ev_loop *loop, const redis_proc *r, const char *password, uint32_t db,
                                 const char *prefix, uint32_t n_shards)
{
    return store_new_fences(loop, r, password, db, prefix, n_shards, 0);
}

/* ---- tests ---- */

START_TEST(redis_acquire_renew_expiry_epochs_release)
{
    redis_proc rp;
    redis_up(&rp, NULL);
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    axd_lease_store *st = store_new(loop, &rp, NULL, 0, "t1:", 8);

    /* a fresh counter: the shard is quarantined for one ttl, under no owner */
    res r = do_acquire(loop, st, 2, "node-a", 200, 0);
    ck_assert_int_eq(r.r.status, AX_OK);
    ck_assert_int_eq(r.r.granted, 0);
    ck_assert_str_eq(r.owner, "");
    uint64_t seed = r.r.epoch;
    ck_assert_uint_gt(seed, UINT64_C(1600000000000)); /* seeded from Redis' clock, ms */
    r = acquire_past_quarantine(loop, st, 2, "node-a", 10000);
    uint64_t e = r.r.epoch;
    ck_assert_uint_eq(e, seed + 1);

    check_lease_contract(loop, st, 2, e, 9000, 1);

    /* expiry: the lease goes, the epoch counter stays and grows */
    r = do_acquire(loop, st, 2, "node-b", 100, 0);
    ck_assert_int_eq(r.r.granted, 1);
    ck_assert_uint_eq(r.r.epoch, e + 1);
    run_for(loop, 0.2);
    r = do_renew(loop, st, 2, "node-b", e + 1, 100);
    ck_assert_int_eq(r.r.granted, 0);
    r = do_acquire(loop, st, 2, "node-a", 10000, 0);
    ck_assert_int_eq(r.r.granted, 1);
    ck_assert_uint_eq(r.r.epoch, e + 2);
    /* the holder re-acquires: a new epoch */
    r = do_acquire(loop, st, 2, "node-a", 10000, e + 2);
    ck_assert_int_eq(r.r.granted, 1);
    ck_assert_uint_eq(r.r.epoch, e + 3);
    /* a caller that knows a newer epoch than the store's counter: Redis went back in time
     * (an old RDB, a lagging replica); the shard is quarantined for one ttl, then granted
     * above what the caller knows */
    r = do_acquire(loop, st, 5, "node-a", 10000, 0); /* quarantine of a fresh shard first */
    ck_assert_int_eq(r.r.granted, 0);
    ck_assert_int_eq(r.r.behind, 0); /* a fresh counter is no store gone back */
    uint64_t e5 = r.r.epoch;
    run_for(loop, 0.05);
    redisContext *c0 = raw(&rp);
    redisReply *x0 = redisCommand(c0, "DEL t1:shard:5");
    freeReplyObject(x0);
    r = do_acquire(loop, st, 5, "node-a", 100, e5 + 100);
    ck_assert_int_eq(r.r.granted, 0);
    ck_assert_str_eq(r.owner, "");
    ck_assert_uint_eq(r.r.epoch, e5 + 100);
    ck_assert_int_eq(r.r.behind, 1);
    r = do_acquire(loop, st, 5, "node-b", 100, e5 + 100); /* the quarantine is there now */
    ck_assert_int_eq(r.r.granted, 0);
    ck_assert_uint_eq(r.r.epoch, e5 + 100);
    ck_assert_int_eq(r.r.behind, 0);
    run_for(loop, 0.15);
    r = do_acquire(loop, st, 5, "node-b", 10000, e5 + 100);
    ck_assert_int_eq(r.r.granted, 1);
    ck_assert_uint_eq(r.r.epoch, e5 + 101);
    redisFree(c0);

    /* the key layout is the documented one */
    redisContext *c = raw(&rp);
    redisReply *x = redisCommand(c, "HGET t1:shard:2 owner");
    ck_assert_str_eq(x->str, "node-a");
    freeReplyObject(x);
    x = redisCommand(c, "GET t1:epoch:2");
    ck_assert_uint_eq(strtoull(x->str, NULL, 10), e + 3);
    freeReplyObject(x);
    x = redisCommand(c, "PTTL t1:shard:2");
    ck_assert_int_gt(x->integer, 9000);
    freeReplyObject(x);
    /* scripts flushed: EVALSHA gets NOSCRIPT and the store falls back to EVAL */
    freeReplyObject(redisCommand(c, "SCRIPT FLUSH"));
    redisFree(c);
    r = do_renew(loop, st, 2, "node-a", e + 3, 10000);
    ck_assert_int_eq(r.r.status, AX_OK);
    ck_assert_int_eq(r.r.granted, 1);

    axd_lease_state s;
    axd_lease_store_state(st, &s);
    ck_assert_str_eq(s.store, "redis");
    ck_assert_str_eq(s.conn, "connected");
    ck_assert_str_eq(s.last_error, "");

    /* free with a request in flight: its callback says canceled */
    res p = {0};
    ck_assert_int_eq(axd_lease_get(st, 1, res_cb, &p), 0);
    axd_lease_store_free(st);
    ck_assert_int_eq(p.done, 1);
    ck_assert_int_eq(p.r.status, AX_ECANCELED);
    ev_loop_destroy(loop);
    redis_down(&rp);
}
END_TEST

/* Calls of EVALSHA the server has counted (INFO commandstats). */
static long long evalsha_calls(redisContext *c)
{
    redisReply *rr = redisCommand(c, "INFO commandstats");
    ck_assert(rr && rr->type == REDIS_REPLY_STRING);
    const char *p = strstr(rr->str, "cmdstat_evalsha:calls=");
    long long v = p ? atoll(p + strlen("cmdstat_evalsha:calls=")) : 0;
    freeReplyObject(rr);
    return v;
}

START_TEST(redis_state_records_are_fenced_by_the_lease_record_in_one_script)
{
    redis_proc rp;
    redis_up(&rp, NULL);
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    axd_lease_store *st = store_new(loop, &rp, NULL, 0, "ts:", 8);
    res r = acquire_past_quarantine(loop, st, 4, "node-a", 10000);
    uint64_t e = r.r.epoch;
    check_state_contract(loop, st, 4, e, 5);
    /* binary record bytes, exactly, under the documented key */
    static const char blob[] = {0, 1, 2, (char)0xff, 0, 'x'};
    sres w = st_write(loop, st, 4, e, "t\0k", 3, blob, sizeof blob, 0);
    ck_assert_int_eq(w.r.status, AX_OK);
    redisContext *c = raw(&rp);
    redisReply *rr = redisCommand(c, "HGET ts:state:4 %b", "t\0k", (size_t)3);
    ck_assert(rr && rr->type == REDIS_REPLY_STRING && rr->len == sizeof blob && !memcmp(rr->str, blob, sizeof blob));
    freeReplyObject(rr);
    /* released: that epoch writes nothing; the next owner loads the record */
    r = do_release(loop, st, 4, "node-a", e);
    ck_assert_int_eq(r.r.granted, 1);
    w = st_write(loop, st, 4, e, "t\0k", 3, "late", 4, 0);
    ck_assert_int_eq(w.r.status, AX_ESTALE);
    r = do_acquire(loop, st, 4, "node-b", 10000, 0);
    ck_assert_int_eq(r.r.granted, 1);
    w = st_load(loop, st, 4, r.r.epoch, "t\0k", 3);
    ck_assert_int_eq(w.r.found, 1);
    ck_assert(w.r.len == sizeof blob && !memcmp(w.data, blob, sizeof blob));
    /* a group commit: writes made in one loop iteration go as one script call, each
     * fenced on its own, in order (a load made after them sees them) */
    uint64_t e2 = r.r.epoch;
    long long calls0 = evalsha_calls(c);
    sres g[4] = {{0}};
    ck_assert_int_eq(axd_state_write(st, 4, e2, "t\0a", 3, "1", 1, 0, sres_cb, &g[0]), 0);
    ck_assert_int_eq(axd_state_write(st, 4, e2 - 1, "t\0b", 3, "x", 1, 0, sres_cb, &g[1]), 0); /* stale */
    ck_assert_int_eq(axd_state_write(st, 4, e2, "t\0a", 3, "2", 1, 0, sres_cb, &g[2]), 0);
    ck_assert_int_eq(axd_state_load(st, 4, e2, "t\0a", 3, sres_cb, &g[3]), 0);
    ck_assert(run_until(loop, sres_done, &g[3], 5));
    ck_assert_int_eq(g[0].done + g[1].done + g[2].done, 3);
    ck_assert_int_eq(g[0].r.status, AX_OK);
    ck_assert_int_eq(g[1].r.status, AX_ESTALE);
    ck_assert_int_eq(g[2].r.status, AX_OK);
    ck_assert_int_eq(g[3].r.found, 1);
    ck_assert(g[3].r.len == 1 && g[3].data[0] == '2');
    ck_assert_int_eq(evalsha_calls(c) - calls0, 2); /* the three writes in one call, then the load */
    /* hostile data: a state key of the wrong type is an error, not a crash */
    rr = redisCommand(c, "SET ts:state:4 notahash");
    freeReplyObject(rr);
    w = st_load(loop, st, 4, r.r.epoch, "t\0k", 3);
    ck_assert_int_eq(w.r.status, AX_EIO);
    redisFree(c);
    /* Redis gone: the outcome is unknown (an error, never a silent success) */
    redis_kill(&rp, SIGKILL);
    w = st_write(loop, st, 4, r.r.epoch, "t\0k", 3, "x", 1, 0);
    ck_assert(w.r.status == AX_ECONN || w.r.status == AX_ETIMEDOUT);
    axd_lease_store_free(st);
    ev_loop_destroy(loop);
    redis_down(&rp);
}
END_TEST

/* state.store = redis: a state store of its own, fenced by a per-shard epoch fence. */
START_TEST(a_state_redis_of_its_own_fences_by_the_highest_epoch_seen)
{
    redis_proc rp;
    redis_up(&rp, NULL);
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    axd_lease_store *st = store_new_fences(loop, &rp, NULL, 0, "tf:", 8, 1);
    sres x = st_load(loop, st, 3, 5, "t\0k", 3); /* the new owner's activation: fence 5 */
    ck_assert_int_eq(x.r.status, AX_OK);
    ck_assert_int_eq(x.r.found, 0);
    x = st_write(loop, st, 3, 5, "t\0k", 3, "five", 4, 0);
    ck_assert_int_eq(x.r.status, AX_OK);
    x = st_write(loop, st, 3, 4, "t\0k", 3, "four", 4, 0); /* a former owner, late */
    ck_assert_int_eq(x.r.status, AX_ESTALE);
    x = st_load(loop, st, 3, 4, "t\0k", 3);
    ck_assert_int_eq(x.r.status, AX_ESTALE);
    x = st_write(loop, st, 3, 7, "t\0k", 3, "seven", 5, 0); /* a newer owner: the fence rises */
    ck_assert_int_eq(x.r.status, AX_OK);
    x = st_write(loop, st, 3, 5, "t\0k", 3, "late", 4, 1);
    ck_assert_int_eq(x.r.status, AX_ESTALE);
    x = st_load(loop, st, 3, 7, "t\0k", 3);
    ck_assert_int_eq(x.r.found, 1);
    ck_assert(x.r.len == 5 && !memcmp(x.data, "seven", 5));
    x = st_load(loop, st, 2, 1, "t\0k", 3); /* fences are per shard */
    ck_assert_int_eq(x.r.status, AX_OK);
    /* a group commit in fence mode: each write against its shard's fence */
    sres g[3] = {{0}};
    ck_assert_int_eq(axd_state_write(st, 3, 7, "t\0a", 3, "a", 1, 0, sres_cb, &g[0]), 0);
    ck_assert_int_eq(axd_state_write(st, 3, 6, "t\0b", 3, "b", 1, 0, sres_cb, &g[1]), 0);
    ck_assert_int_eq(axd_state_write(st, 2, 9, "t\0c", 3, "c", 1, 0, sres_cb, &g[2]), 0);
    ck_assert(run_until(loop, sres_done, &g[2], 5));
    ck_assert_int_eq(g[0].r.status, AX_OK);
    ck_assert_int_eq(g[1].r.status, AX_ESTALE);
    ck_assert_int_eq(g[2].r.status, AX_OK);
    redisContext *c = raw(&rp);
    redisReply *rr = redisCommand(c, "GET tf:fence:3");
    ck_assert(rr && rr->type == REDIS_REPLY_STRING && !strcmp(rr->str, "7"));
    freeReplyObject(rr);
    rr = redisCommand(c, "GET tf:fence:2");
    ck_assert(rr && rr->type == REDIS_REPLY_STRING && !strcmp(rr->str, "9"));
    freeReplyObject(rr);
    rr = redisCommand(c, "EXISTS tf:shard:3"); /* no lease records involved */
    ck_assert(rr && rr->type == REDIS_REPLY_INTEGER && rr->integer == 0);
    freeReplyObject(rr);
    redisFree(c);
    axd_lease_store_free(st);
    ev_loop_destroy(loop);
    redis_down(&rp);
}
END_TEST

START_TEST(redis_concurrent_acquire_has_one_winner)
{
    redis_proc rp;
    redis_up(&rp, NULL);
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    axd_lease_store *sa = store_new(loop, &rp, NULL, 0, "t2:", 16);
    axd_lease_store *sb = store_new(loop, &rp, NULL, 0, "t2:", 16);
    acquire_past_quarantine(loop, sa, 0, "warmup", 50); /* counter exists now */
    run_for(loop, 0.1);

    for (int round = 0; round < 20; round++) {
        res a = {0}, b = {0};
        ck_assert_int_eq(axd_lease_acquire(sa, 0, "node-a", 50, 0, res_cb, &a), 0);
        ck_assert_int_eq(axd_lease_acquire(sb, 0, "node-b", 50, 0, res_cb, &b), 0);
        wait_res(loop, &a);
        wait_res(loop, &b);
        ck_assert_int_eq(a.r.status, AX_OK);
        ck_assert_int_eq(b.r.status, AX_OK);
        ck_assert_int_eq(a.r.granted + b.r.granted, 1);
        res *w = a.r.granted ? &a : &b, *l = a.r.granted ? &b : &a;
        ck_assert_str_eq(l->owner, a.r.granted ? "node-a" : "node-b");
        ck_assert_uint_eq(l->r.epoch, w->r.epoch);
        run_for(loop, 0.07); /* let it expire */
    }

    /* two managers on two connections: every shard served by exactly one */
    tcluster c;
    tc_init(&c, loop, 16);
    tnode *na = tc_add(&c, sa, "node-a", 300, 100, 100);
    tnode *nb = tc_add(&c, sb, "node-b", 300, 100, 100);
    axd_shards_start(na->m);
    axd_shards_start(nb->m);
    run_for(loop, 1.2); /* quarantine of the 15 fresh shards, then acquisition */
    for (uint32_t s = 0; s < 16; s++)
        ck_assert_msg(na->serving[s] + nb->serving[s] == 1, "shard %u served by %d", s,
                      na->serving[s] + nb->serving[s]);
    ck_assert_int_eq(c.double_owner, 0);
    ck_assert_int_eq(c.epoch_backwards, 0);
    tc_free(&c);
    axd_lease_store_free(sa);
    axd_lease_store_free(sb);
    ev_loop_destroy(loop);
    redis_down(&rp);
}
END_TEST

START_TEST(redis_wrong_password_is_a_clear_error)
{
    redis_proc rp;
    redis_up(&rp, "s3cret");
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);

    axd_lease_store *st = store_new(loop, &rp, "wrong", 0, "t3:", 4);
    res r = do_acquire(loop, st, 0, "node-a", 1000, 0);
    ck_assert_int_eq(r.r.status, AX_EAUTH);
    axd_lease_state s;
    axd_lease_store_state(st, &s);
    ck_assert_msg(strstr(s.last_error, "AUTH failed") && strstr(s.last_error, "WRONGPASS"), "last_error: %s",
                  s.last_error);
    ck_assert_str_ne(s.conn, "connected");
    axd_lease_store_free(st);

    st = store_new(loop, &rp, NULL, 0, "t3:", 4); /* no password at all */
    r = do_acquire(loop, st, 0, "node-a", 1000, 0);
    ck_assert_int_eq(r.r.status, AX_EAUTH);
    axd_lease_store_state(st, &s);
    ck_assert_msg(strstr(s.last_error, "NOAUTH"), "last_error: %s", s.last_error);
    axd_lease_store_free(st);

    st = store_new(loop, &rp, "s3cret", 5, "t3:", 4); /* right password, db 5 */
    r = acquire_past_quarantine(loop, st, 0, "node-a", 1000);
    ck_assert_int_eq(r.r.status, AX_OK);
    redisContext *c = raw(&rp);
    freeReplyObject(redisCommand(c, "SELECT 5"));
    redisReply *x = redisCommand(c, "EXISTS t3:shard:0");
    ck_assert_int_eq(x->integer, 1);
    freeReplyObject(x);
    redisFree(c);
    axd_lease_store_free(st);
    ev_loop_destroy(loop);
    redis_down(&rp);
}
END_TEST

START_TEST(redis_hostile_data_gives_errors_not_crashes)
{
    redis_proc rp;
    redis_up(&rp, NULL);
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    axd_lease_store *st = store_new(loop, &rp, NULL, 0, "t4:", 8);
    redisContext *c = raw(&rp);
    raw_cmd(c, "SET %s %s", "t4:shard:0", "not-a-hash", NULL);        /* wrong type */
    raw_cmd(c, "SET %s %s", "t4:epoch:1", "abc", NULL);               /* counter not a number */
    raw_cmd(c, "HSET %s owner %s", "t4:shard:2", "node-x", NULL);     /* held, epoch missing */
    raw_cmd(c, "HSET %s epoch %s", "t4:shard:2", "-5", NULL);         /* and a bad epoch */
    raw_cmd(c, "SET %s %s", "t4:epoch:3", "99999999999999999999", NULL); /* beyond 2^53 */
    redisFree(c);

    res r = do_acquire(loop, st, 0, "node-a", 1000, 0);
    ck_assert_int_eq(r.r.status, AX_EIO);
    r = do_renew(loop, st, 0, "node-a", 1, 1000);
    ck_assert_int_eq(r.r.status, AX_EIO);
    r = do_acquire(loop, st, 1, "node-a", 1000, 0);
    ck_assert_int_eq(r.r.status, AX_EIO);
    r = do_acquire(loop, st, 2, "node-a", 1000, 0);
    ck_assert_int_eq(r.r.status, AX_EPROTO);
    r = do_get(loop, st, 2);
    ck_assert_int_eq(r.r.status, AX_EPROTO);
    r = do_acquire(loop, st, 3, "node-a", 1000, 0);
    ck_assert_int_ne(r.r.status, AX_OK);
    axd_lease_state s;
    axd_lease_store_state(st, &s);
    ck_assert_str_eq(s.conn, "connected"); /* bad data is not a connection problem */
    ck_assert_str_ne(s.last_error, "");
    r = acquire_past_quarantine(loop, st, 4, "node-a", 300); /* other shards still work */
    ck_assert_int_eq(r.r.status, AX_OK);
    axd_lease_store_free(st);
    ev_loop_destroy(loop);
    redis_down(&rp);
}
END_TEST

static int all_served(void *ud)
{
    tcluster *c = ud;
    for (uint32_t s = 0; s < c->n_shards; s++) {
        int k = 0;
        for (int i = 0; i < c->n_nodes; i++)
            k += c->nodes[i].serving[s];
        if (k != 1)
            return 0;
    }
    return 1;
}
static int none_served(void *ud)
{
    tcluster *c = ud;
    for (int i = 0; i < c->n_nodes; i++)
        if (tn_count(&c->nodes[i], c->n_shards))
            return 0;
    return 1;
}

/* Redis is killed (SIGKILL, no persistence: every key is lost) and started again on the
 * same port. The nodes stop serving by their local deadlines, the stores reconnect, the
 * shards come back with higher epochs, and no shard is ever served twice. */
START_TEST(redis_restart_recovers_without_double_ownership)
{
    redis_proc rp;
    redis_up(&rp, NULL);
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    axd_lease_store *sa = store_new(loop, &rp, NULL, 0, "t5:", 8);
    axd_lease_store *sb = store_new(loop, &rp, NULL, 0, "t5:", 8);
    tcluster c;
    tc_init(&c, loop, 8);
    tnode *na = tc_add(&c, sa, "node-a", 300, 100, 100);
    tnode *nb = tc_add(&c, sb, "node-b", 300, 100, 100);
    axd_shards_set_live_nodes(na->m, 2);
    axd_shards_set_live_nodes(nb->m, 2);
    axd_shards_start(na->m);
    axd_shards_start(nb->m);
    ck_assert(run_until(loop, all_served, &c, 5));
    run_for(loop, 0.3);
    ck_assert_int_eq(tn_count(na, 8), 4);
    ck_assert_int_eq(tn_count(nb, 8), 4);
    uint64_t before[8];
    for (uint32_t s = 0; s < 8; s++)
        before[s] = c.max_epoch[s];

    /* 1: Redis dies and stays down past the deadline */
    double killed = ev_time();
    redis_kill(&rp, SIGKILL);
    ck_assert(run_until(loop, none_served, &c, 2));
    ck_assert_msg(ev_time() - killed < 0.2 + 0.15, "shards kept %.3f s after Redis died", ev_time() - killed);
    ck_assert_int_eq(na->lost_lease + nb->lost_lease, 8);
    axd_lease_state s;
    axd_lease_store_state(sa, &s);
    ck_assert_str_eq(s.conn, "reconnecting");
    ck_assert_str_ne(s.last_error, "");
    run_for(loop, 0.2);
    redis_start(&rp);
    ck_assert(run_until(loop, all_served, &c, 8));
    axd_lease_store_state(sa, &s);
    ck_assert_str_eq(s.conn, "connected");
    ck_assert_uint_ge(s.reconnects, 1);
    for (uint32_t s2 = 0; s2 < 8; s2++)
        ck_assert_uint_gt(c.max_epoch[s2], before[s2]);

    /* 2: Redis restarts at once (all keys lost while the nodes still serve): renews are
     * refused, and the quarantine keeps the shards unowned until the old leases could
     * have expired, so nobody serves a shard another node still serves */
    run_for(loop, 0.3);
    for (uint32_t s2 = 0; s2 < 8; s2++)
        before[s2] = c.max_epoch[s2];
    redis_kill(&rp, SIGKILL);
    redis_start(&rp);
    ck_assert(run_until(loop, none_served, &c, 2));
    ck_assert(run_until(loop, all_served, &c, 8));
    for (uint32_t s2 = 0; s2 < 8; s2++)
        ck_assert_uint_gt(c.max_epoch[s2], before[s2]);
    run_for(loop, 0.3);
    ck_assert(all_served(&c));

    ck_assert_int_eq(c.double_owner, 0);
    ck_assert_int_eq(c.epoch_backwards, 0);
    ck_assert_int_gt(c.samples, 1000);
    axd_shards_stop(na->m);
    axd_shards_stop(nb->m);
    run_for(loop, 0.1);
    tc_free(&c);
    axd_lease_store_free(sa);
    axd_lease_store_free(sb);
    ev_loop_destroy(loop);
    redis_down(&rp);
}
END_TEST

/* Nothing listens: operations fail fast with AX_ECONN (never block), and the store keeps
 * trying; the connect timeout bounds a connection that never completes. */
START_TEST(redis_unreachable_fails_fast)
{
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    redis_proc rp = {.port = free_port()};
    axd_lease_store *st = store_new(loop, &rp, NULL, 0, "t6:", 4);
    double t0 = ev_time();
    res r = do_acquire(loop, st, 0, "node-a", 1000, 0);
    ck_assert_int_eq(r.r.status, AX_ECONN);
    ck_assert(ev_time() - t0 < 1.0);
    axd_lease_state s;
    axd_lease_store_state(st, &s);
    ck_assert_str_ne(s.conn, "connected");
    ck_assert_str_ne(s.last_error, "");
    res x = {0};
    ck_assert_int_eq(axd_lease_acquire(st, 4, "node-a", 1000, 0, res_cb, &x), AX_EINVAL);
    axd_lease_store_free(st);
    ev_loop_destroy(loop);
}
END_TEST

/* A Redis that stops answering (SIGSTOP): requests time out after connect_timeout_ms,
 * the connection is dropped, and once Redis answers again the store reconnects. */
START_TEST(redis_hung_server_times_out_and_recovers)
{
    redis_proc rp;
    redis_up(&rp, NULL);
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    axd_lease_store *st = store_new(loop, &rp, NULL, 0, "t7:", 4); /* 500 ms timeout */
    acquire_past_quarantine(loop, st, 0, "node-a", 300);
    kill(rp.pid, SIGSTOP);
    double t0 = ev_time();
    res r = do_get(loop, st, 0);
    double took = ev_time() - t0;
    ck_assert_int_eq(r.r.status, AX_ETIMEDOUT);
    ck_assert_msg(took >= 0.4 && took < 1.5, "timed out after %.3f s", took);
    axd_lease_state s;
    axd_lease_store_state(st, &s);
    ck_assert_msg(strstr(s.last_error, "no reply within 500 ms"), "last_error: %s", s.last_error);
    kill(rp.pid, SIGCONT);
    for (int i = 0; i < 100; i++) { /* bounded: the store reconnects by itself */
        r = do_get(loop, st, 0);
        if (r.r.status == AX_OK)
            break;
        run_for(loop, 0.05);
    }
    ck_assert_int_eq(r.r.status, AX_OK);
    axd_lease_store_state(st, &s);
    ck_assert_str_eq(s.conn, "connected");
    axd_lease_store_free(st);
    ev_loop_destroy(loop);
    redis_down(&rp);
}
END_TEST

static Suite *redis_suite(void)
{
    Suite *s = suite_create("lease_redis");
    TCase *tc = tcase_create("redis");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, redis_acquire_renew_expiry_epochs_release);
    tcase_add_test(tc, redis_concurrent_acquire_has_one_winner);
    tcase_add_test(tc, redis_state_records_are_fenced_by_the_lease_record_in_one_script);
    tcase_add_test(tc, a_state_redis_of_its_own_fences_by_the_highest_epoch_seen);
    tcase_add_test(tc, redis_wrong_password_is_a_clear_error);
    tcase_add_test(tc, redis_hostile_data_gives_errors_not_crashes);
    tcase_add_test(tc, redis_restart_recovers_without_double_ownership);
    tcase_add_test(tc, redis_unreachable_fails_fast);
    tcase_add_test(tc, redis_hung_server_times_out_and_recovers);
    suite_add_tcase(s, tc);
    return s;
}

static int have_redis_server(void)
{
    return system("redis-server --version >/dev/null 2>&1") == 0;
}

int main(void)
{
    if (!have_redis_server()) {
        fprintf(stderr, "redis-server not found: skipping\n");
        return 77;
    }
    signal(SIGPIPE, SIG_IGN);
    SRunner *sr = srunner_create(redis_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
