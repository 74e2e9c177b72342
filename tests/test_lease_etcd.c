/* The etcd lease store against a real etcd that each test starts on free loopback ports in
 * a temp dir: acquire, renew, expiry, release, epochs that only grow (also across an etcd
 * SIGKILL and restart, and above what a caller has seen), a stale renew refused, one winner
 * between concurrent nodes, keyed state fenced by the lease key (also across the restart),
 * membership records, endpoint failover, a 3-member cluster that
 * keeps granting with one member SIGKILLed, and shard managers on it that never serve a
 * shard twice. Skips (77) without etcd (Debian: etcd-server). */
#include "log.h" /* before check.h (its fail() macro) */

#include <check.h>
#include <ev.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "axactor/errors.h"
#include "etcd_test_util.h"
#include "lease.h"
#include "lease_test_util.h"
#include "shard.h"

static axd_lease_store *store_as(struct ev_loop *loop, const char *endpoints, const char *prefix, uint32_t n_shards,
                                 const char *user, const char *password)
{
    char err[256] = "";
    axd_lease_etcd_cfg cfg = {
        .endpoints = endpoints, .prefix = prefix, .timeout_ms = 1000, .user = user, .password = password};
    axd_lease_store *st = axd_lease_etcd_new(loop, n_shards, &cfg, err, sizeof err);
    ck_assert_msg(st != NULL, "%s", err);
    return st;
}

static axd_lease_store *store_on(struct ev_loop *loop, const char *endpoints, const char *prefix, uint32_t n_shards)
{
    return store_as(loop, endpoints, prefix, n_shards, NULL, NULL);
}

START_TEST(etcd_acquire_renew_expiry_epochs_release)
{
    etcd_proc e;
    etcd_up(&e, 1);
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    axd_lease_store *st = store_on(loop, e.endpoints, "t1/", 8);

    /* a fresh counter: the shard is quarantined for one ttl, under no owner */
    res r = do_acquire(loop, st, 2, "node-a", 1000, 0);
    ck_assert_msg(r.r.status == AX_OK, "acquire: %s", ax_strerror(r.r.status));
    ck_assert_int_eq(r.r.granted, 0);
    ck_assert_str_eq(r.owner, "");
    uint64_t seed = r.r.epoch;
    ck_assert_uint_gt(seed, UINT64_C(1600000000000)); /* seeded from the clock, ms */
    r = acquire_past_quarantine(loop, st, 2, "node-a", 10000);
    uint64_t ep = r.r.epoch;
    ck_assert_uint_eq(ep, seed + 1);

    check_lease_contract(loop, st, 2, ep, 5000, 1); /* get: the holder's time left too */

    /* expiry: the lease goes, the epoch counter stays and grows */
    r = do_acquire(loop, st, 2, "node-b", 1000, 0);
    ck_assert_int_eq(r.r.granted, 1);
    ck_assert_uint_eq(r.r.epoch, ep + 1);
    run_for(loop, 2.5);
    r = do_renew(loop, st, 2, "node-b", ep + 1, 1000);
    ck_assert_int_eq(r.r.status, AX_OK);
    ck_assert_int_eq(r.r.granted, 0);
    r = do_acquire(loop, st, 2, "node-a", 10000, 0);
    ck_assert_int_eq(r.r.granted, 1);
    ck_assert_uint_eq(r.r.epoch, ep + 2);
    /* the holder re-acquires: a new epoch, and the lease still renews */
    r = do_acquire(loop, st, 2, "node-a", 10000, ep + 2);
    ck_assert_int_eq(r.r.granted, 1);
    ck_assert_uint_eq(r.r.epoch, ep + 3);
    r = do_renew(loop, st, 2, "node-a", ep + 3, 10000);
    ck_assert_int_eq(r.r.granted, 1);
    /* a caller that knows a newer epoch than the store's counter: quarantine, then above it */
    r = acquire_past_quarantine(loop, st, 5, "node-a", 1000);
    uint64_t e5 = r.r.epoch;
    r = do_acquire(loop, st, 6, "node-a", 1000, 0); /* a fresh shard: quarantine */
    ck_assert_int_eq(r.r.behind, 0); /* a fresh counter is no store gone back */
    r = do_acquire(loop, st, 5, "node-a", 1000, e5 + 100);
    ck_assert_int_eq(r.r.granted, 0); /* the store is behind: the shard is held by nobody for a ttl */
    ck_assert_str_eq(r.owner, "");
    ck_assert_uint_eq(r.r.epoch, e5 + 100);
    ck_assert_int_eq(r.r.behind, 1);
    res r2 = do_acquire(loop, st, 5, "node-b", 1000, e5 + 100); /* the quarantine is there now */
    ck_assert_int_eq(r2.r.granted, 0);
    ck_assert_uint_eq(r2.r.epoch, e5 + 100);
    ck_assert_int_eq(r2.r.behind, 0);
    sres qs = st_write(loop, st, 5, e5 + 100, "t\0q", 3, "x", 1, 0); /* the quarantine is no lease to write under */
    ck_assert_int_eq(qs.r.status, AX_ESTALE);
    run_for(loop, r.r.ttl_ms / 1000.0 + 0.05);
    r = do_acquire(loop, st, 5, "node-b", 10000, e5 + 100);
    ck_assert_int_eq(r.r.granted, 1);
    ck_assert_uint_eq(r.r.epoch, e5 + 101); /* above every epoch the caller knew */

    /* keyed state: fenced by the lease key's epoch, in one transaction */
    check_state_contract(loop, st, 2, ep + 3, 4);
    sres w[3] = {{0}}; /* queued on one shard: applied and answered in call order */
    ck_assert_int_eq(axd_state_write(st, 2, ep + 3, "t\0k", 3, "1", 1, 0, sres_cb, &w[0]), 0);
    ck_assert_int_eq(axd_state_write(st, 2, ep + 3, "t\0k", 3, "22", 2, 0, sres_cb, &w[1]), 0);
    ck_assert_int_eq(axd_state_load(st, 2, ep + 3, "t\0k", 3, sres_cb, &w[2]), 0);
    ck_assert(run_until(loop, sres_done, &w[2], 5));
    ck_assert(w[0].done && w[1].done && w[0].r.status == AX_OK && w[1].r.status == AX_OK);
    ck_assert(w[2].r.found && w[2].r.len == 2 && !memcmp(w[2].data, "22", 2));

    /* etcd SIGKILLed and restarted: operations fail meanwhile, epochs survive (Raft) */
    etcd_kill_member(&e, 0, SIGKILL);
    r = do_get(loop, st, 2);
    ck_assert_int_eq(r.r.status, AX_ECONN);
    axd_lease_state s;
    axd_lease_store_state(st, &s);
    ck_assert_str_eq(s.store, "etcd");
    ck_assert_msg(strstr(s.last_error, "127.0.0.1"), "last error: %s", s.last_error);
    etcd_start_member(&e, 0, 1);
    int ok = 0;
    for (int i = 0; i < 100 && !ok; i++) { /* bounded: the member elects itself */
        r = do_get(loop, st, 2);
        ok = r.r.status == AX_OK;
        if (!ok)
            run_for(loop, 0.1);
    }
    ck_assert_msg(ok, "the restarted etcd does not answer");
    ck_assert_uint_eq(r.r.epoch, ep + 3);
    sres ld = st_load(loop, st, 2, ep + 3, "t\0k", 3); /* and so does the state */
    ck_assert(ld.r.status == AX_OK && ld.r.found && ld.r.len == 2);
    r = do_acquire(loop, st, 3, "node-c", 1000, 0); /* quarantine of another fresh shard works too */
    ck_assert_int_eq(r.r.status, AX_OK);

    /* free with a request in flight: its callback says canceled */
    res p = {0};
    ck_assert_int_eq(axd_lease_get(st, 1, res_cb, &p), 0);
    axd_lease_store_free(st);
    ck_assert_int_eq(p.done, 1);
    ck_assert_int_eq(p.r.status, AX_ECANCELED);
    ev_loop_destroy(loop);
    etcd_down(&e);
}
END_TEST

/* ---- several nodes racing for one shard ---- */

typedef struct race {
    int done, granted;
    char winner[64];
} race;

static void race_cb(void *ud, uint32_t shard, const axd_lease_result *r)
{
    (void)shard;
    race *x = ud;
    x->done++;
    if (r->status == AX_OK && r->granted) {
        x->granted++;
        snprintf(x->winner, sizeof x->winner, "%.*s", (int)r->owner_len, r->owner);
    }
}

static int race_done(void *ud) { return ((race *)ud)->done == 4; }

START_TEST(etcd_concurrent_acquire_has_one_winner)
{
    etcd_proc e;
    etcd_up(&e, 1);
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    axd_lease_store *st[4];
    for (int i = 0; i < 4; i++)
        st[i] = store_on(loop, e.endpoints, "race/", 16);
    res q = acquire_past_quarantine(loop, st[0], 7, "warm", 1000); /* past the shard's quarantine */
    ck_assert_int_eq(do_release(loop, st[0], 7, "warm", q.r.epoch).r.granted, 1);
    for (int round = 0; round < 5; round++) {
        race x = {0};
        char names[4][16];
        for (int i = 0; i < 4; i++) {
            snprintf(names[i], sizeof names[i], "n%d", i);
            ck_assert_int_eq(axd_lease_acquire(st[i], 7, names[i], 10000, 0, race_cb, &x), 0);
        }
        ck_assert(run_until(loop, race_done, &x, 10));
        ck_assert_msg(x.granted <= 1, "round %d: %d winners", round, x.granted);
        res g = do_get(loop, st[0], 7);
        if (x.granted) {
            ck_assert_str_eq(g.owner, x.winner);
            int w = x.winner[1] - '0';
            ck_assert_int_eq(do_release(loop, st[w], 7, x.winner, g.r.epoch).r.granted, 1);
        }
    }
    for (int i = 0; i < 4; i++)
        axd_lease_store_free(st[i]);
    ev_loop_destroy(loop);
    etcd_down(&e);
}
END_TEST

/* ---- membership records ---- */

typedef struct mres {
    int done, status;
    size_t n;
    char names[256];
} mres;

static void mres_cb(void *ud, int status, const axd_member *m, size_t n)
{
    mres *x = ud;
    x->done++;
    x->status = status;
    x->n = n;
    x->names[0] = 0;
    for (size_t i = 0; i < n; i++) {
        size_t l = strlen(x->names);
        snprintf(x->names + l, sizeof x->names - l, "%.*s=%.*s;", (int)m[i].name_len, m[i].name,
                 (int)m[i].record_len, m[i].record);
    }
}

static int mres_done(void *ud) { return ((mres *)ud)->done > 0; }

static mres member_op(struct ev_loop *loop, axd_lease_store *st, int op, const char *name, const char *rec,
                      uint32_t ttl)
{
    mres x = {0};
    int rc = op == 0   ? axd_member_put(st, name, rec, strlen(rec), ttl, mres_cb, &x)
             : op == 1 ? axd_member_del(st, name, mres_cb, &x)
                       : axd_member_list(st, mres_cb, &x);
    ck_assert_int_eq(rc, 0);
    ck_assert(run_until(loop, mres_done, &x, 5));
    return x;
}

START_TEST(etcd_membership_records_live_by_their_ttl)
{
    etcd_proc e;
    etcd_up(&e, 1);
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    axd_lease_store *st = store_on(loop, e.endpoints, "m/", 4);
    ck_assert_int_eq(member_op(loop, st, 0, "node-a", "{\"a\":1}", 10000).status, AX_OK);
    ck_assert_int_eq(member_op(loop, st, 0, "node-b", "{\"b\":1}", 1000).status, AX_OK);
    ck_assert_int_eq(member_op(loop, st, 0, "node-a", "{\"a\":2}", 10000).status, AX_OK); /* renewed, new record */
    mres l = member_op(loop, st, 2, NULL, NULL, 0);
    ck_assert_int_eq(l.status, AX_OK);
    ck_assert_uint_eq(l.n, 2);
    ck_assert_str_eq(l.names, "node-a={\"a\":2};node-b={\"b\":1};");
    run_for(loop, 2.5); /* node-b's record expires */
    l = member_op(loop, st, 2, NULL, NULL, 0);
    ck_assert_str_eq(l.names, "node-a={\"a\":2};");
    ck_assert_int_eq(member_op(loop, st, 1, "node-a", NULL, 0).status, AX_OK);
    l = member_op(loop, st, 2, NULL, NULL, 0);
    ck_assert_uint_eq(l.n, 0);
    /* a delete right behind a put (a node leaving while its record is being renewed)
     * happens after it, in call order: the record does not come back */
    mres p = {0}, d = {0};
    ck_assert_int_eq(axd_member_put(st, "node-c", "{}", 2, 10000, mres_cb, &p), 0);
    ck_assert_int_eq(axd_member_del(st, "node-c", mres_cb, &d), 0);
    ck_assert(run_until(loop, mres_done, &d, 5));
    ck_assert_int_eq(p.done, 1); /* answered first */
    ck_assert_int_eq(p.status, AX_OK);
    ck_assert_int_eq(d.status, AX_OK);
    l = member_op(loop, st, 2, NULL, NULL, 0);
    ck_assert_msg(l.n == 0, "listed after its delete: %s", l.names);
    /* bad arguments are refused at once */
    ck_assert_int_eq(axd_member_put(st, "", "x", 1, 1000, mres_cb, &l), AX_EINVAL);
    ck_assert_int_eq(axd_lease_acquire(st, 4, "node-a", 1000, 0, res_cb, &l), AX_EINVAL);
    ck_assert_int_eq(axd_lease_acquire(st, 0, "node-a", 0, 0, res_cb, &l), AX_EINVAL);
    axd_lease_store_free(st);
    ev_loop_destroy(loop);
    etcd_down(&e);
}
END_TEST

/* Several endpoints: one that is not there fails one operation (its effect unknown, as for
 * any lost connection) and the next goes to the next endpoint. Bad settings are refused. */
START_TEST(etcd_endpoints_fail_over_and_bad_settings_are_refused)
{
    etcd_proc e;
    etcd_up(&e, 1);
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    char eps[300];
    snprintf(eps, sizeof eps, "http://127.0.0.1:%d,%s", free_port(), e.endpoints);
    axd_lease_store *st = store_on(loop, eps, "f/", 4);
    res r = do_get(loop, st, 0);
    ck_assert_int_eq(r.r.status, AX_ECONN);
    r = do_get(loop, st, 0);
    ck_assert_int_eq(r.r.status, AX_OK);
    axd_lease_state s;
    axd_lease_store_state(st, &s);
    ck_assert_uint_eq(s.reconnects, 1);
    ck_assert_str_eq(s.conn, "connected");
    axd_lease_store_free(st);

    static const char *const bad[] = {"", "127.0.0.1:2379", "http://127.0.0.1", "http://127.0.0.1:23x9",
                                      "ftp://127.0.0.1:21", "http://127.0.0.1:2379/v3"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char err[256] = "";
        axd_lease_etcd_cfg cfg = {.endpoints = bad[i]};
        ck_assert_ptr_null(axd_lease_etcd_new(loop, 4, &cfg, err, sizeof err));
        ck_assert_msg(strstr(err, "lease.etcd_endpoints"), "'%s': %s", bad[i], err);
    }
    char err[256] = "";
    axd_lease_etcd_cfg cfg = {.endpoints = e.endpoints, .cert = "/x.pem"};
    ck_assert_ptr_null(axd_lease_etcd_new(loop, 4, &cfg, err, sizeof err));
    ck_assert_msg(strstr(err, "lease.etcd_key"), "%s", err);
    ev_loop_destroy(loop);
    etcd_down(&e);
}
END_TEST

/* Three members, one SIGKILLed while three shard managers share 16 shards: leases keep
 * working with a quorum and no shard is served by two nodes at any sample. */
/* etcd with authentication on: a store with the right user works (its token renewed when
 * etcd refuses it), no user or a wrong password is AX_EAUTH with a clear last error. */
START_TEST(etcd_authentication_a_right_user_works_a_wrong_one_is_eauth)
{
    etcd_proc e;
    etcd_up(&e, 1);
    etcdctl(&e, "user add root:axpw-7731");
    etcdctl(&e, "user grant-role root root");
    etcdctl(&e, "auth enable");
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    axd_lease_store *ok = store_as(loop, e.endpoints, "a/", 4, "root", "axpw-7731");
    res r = acquire_past_quarantine(loop, ok, 1, "node-a", 10000);
    check_lease_contract(loop, ok, 1, r.r.epoch, 5000, 1);
    /* etcd restarted: its simple tokens are gone; the store gets a new one and goes on */
    etcd_kill_member(&e, 0, SIGTERM);
    etcd_start_member(&e, 0, 1);
    int done = 0;
    for (int i = 0; i < 100 && !done; i++) {
        r = do_get(loop, ok, 1);
        done = r.r.status == AX_OK;
        if (!done)
            run_for(loop, 0.1);
    }
    ck_assert_msg(done, "after etcd's restart: %s", ax_strerror(r.r.status));
    axd_lease_store *none = store_on(loop, e.endpoints, "a/", 4);
    r = do_get(loop, none, 1);
    ck_assert_int_eq(r.r.status, AX_EAUTH);
    axd_lease_store *bad = store_as(loop, e.endpoints, "a/", 4, "root", "wrong");
    r = do_get(loop, bad, 1);
    ck_assert_int_eq(r.r.status, AX_EAUTH);
    axd_lease_state s;
    axd_lease_store_state(bad, &s);
    ck_assert_msg(strstr(s.last_error, "authentication failed"), "last error: %s", s.last_error);
    axd_lease_store_free(ok);
    axd_lease_store_free(none);
    axd_lease_store_free(bad);
    ev_loop_destroy(loop);
    etcd_down(&e);
}
END_TEST

static int all_served(tcluster *c)
{
    int n = 0;
    for (int i = 0; i < c->n_nodes; i++)
        n += tn_count(&c->nodes[i], c->n_shards);
    return n;
}

static int sixteen_served(void *ud) { return all_served(ud) == 16; }

START_TEST(etcd_three_members_one_killed_no_two_owners)
{
    etcd_proc e;
    etcd_up(&e, 3);
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    tcluster c;
    tc_init(&c, loop, 16);
    const char *names[] = {"node-a", "node-b", "node-c"};
    axd_lease_store *st[3];
    for (int i = 0; i < 3; i++) {
        st[i] = store_on(loop, e.endpoints, "c3/", 16);
        tc_add(&c, st[i], names[i], 3000, 500, 1000);
    }
    for (int i = 0; i < 3; i++)
        axd_shards_start(c.nodes[i].m);
    int served = run_until(loop, sixteen_served, &c, 30);
    axd_lease_state ls;
    axd_lease_store_state(st[0], &ls);
    ck_assert_msg(served, "the nodes serve %d of 16 shards (store: %s, %llu ops, %llu errors, last error %s)",
                  all_served(&c), ls.conn, (unsigned long long)ls.ops, (unsigned long long)ls.errors, ls.last_error);
    int lost_before = c.nodes[0].lost_lease + c.nodes[1].lost_lease + c.nodes[2].lost_lease;
    etcd_kill_member(&e, 0, SIGKILL); /* the first endpoint of every store */
    run_for(loop, 6.0);               /* renews go on through the two that are left */
    ck_assert_msg(all_served(&c) == 16, "%d of 16 shards served with a member down", all_served(&c));
    int lost = c.nodes[0].lost_lease + c.nodes[1].lost_lease + c.nodes[2].lost_lease - lost_before;
    ck_assert_int_eq(c.double_owner, 0);
    ck_assert_int_eq(c.epoch_backwards, 0);
    printf("  3-member etcd, one SIGKILLed: %d samples, never two owners, 16 of 16 shards served after 6 s "
           "(%d leases lost on the way)\n",
           c.samples, lost);
    tc_free(&c);
    for (int i = 0; i < 3; i++)
        axd_lease_store_free(st[i]);
    ev_loop_destroy(loop);
    etcd_down(&e);
}
END_TEST

int main(void)
{
    if (!etcd_available()) {
        fprintf(stderr, "etcd not found: skipping\n");
        return 77;
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (getenv("AX_TEST_DEBUG"))
        axd_log_set_level(AX_LOG_DEBUG);
    Suite *s = suite_create("lease_etcd");
    TCase *t = tcase_create("etcd");
    tcase_set_timeout(t, 120);
    tcase_add_test(t, etcd_acquire_renew_expiry_epochs_release);
    tcase_add_test(t, etcd_concurrent_acquire_has_one_winner);
    tcase_add_test(t, etcd_membership_records_live_by_their_ttl);
    tcase_add_test(t, etcd_endpoints_fail_over_and_bad_settings_are_refused);
    tcase_add_test(t, etcd_three_members_one_killed_no_two_owners);
    tcase_add_test(t, etcd_authentication_a_right_user_works_a_wrong_one_is_eauth);
    suite_add_tcase(s, t);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
