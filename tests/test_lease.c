/* Unit tests for shards and leases: the shard hash against its documented vectors, the
 * memory lease store's semantics (asynchronous replies, epochs, renew/release fencing,
 * expiry), and the shard manager driven by the memory store on a real loop with small
 * TTLs: acquire, renew, the local deadline from the send time, never two owners, fair
 * share and handover, shutdown. */
#include <check.h>
#include <pthread.h>
#include <stdatomic.h>
#include <cjson/cJSON.h>
#include <ev.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "axactor/errors.h"
#include "lease.h"
#include "lease_test_util.h"
#include "shard.h"


/* ---- the hash ---- */

START_TEST(shard_hash_matches_documented_vectors)
{
    /* The same table is in proto/PROTOCOL.md, "Leases and shards". */
    static const struct {
        const char *key;
        size_t len;
        uint64_t fnv;
        uint32_t s256, s65536, s7;
    } v[] = {
        {"", 0, UINT64_C(0xcbf29ce484222325), 193, 49089, 3},
        {"a", 1, UINT64_C(0xaf63dc4c8601ec8c), 192, 12480, 5},
        {"foobar", 6, UINT64_C(0x85944171f73967e8), 153, 9881, 2},
        {"user:42", 7, UINT64_C(0x6c151ea4dcd221c2), 102, 16230, 4},
        {"counter/alice", 13, UINT64_C(0xb9bbb3deec7f5074), 170, 58282, 1},
        {"\x00\xff", 2, UINT64_C(0x0831c907b4ea2b60), 103, 57959, 2},
    };
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
        ck_assert_uint_eq(axd_fnv1a64(v[i].key, v[i].len), v[i].fnv);
        ck_assert_uint_eq(axd_shard_of(v[i].key, v[i].len, 256), v[i].s256);
        ck_assert_uint_eq(axd_shard_of(v[i].key, v[i].len, 65536), v[i].s65536);
        ck_assert_uint_eq(axd_shard_of(v[i].key, v[i].len, 7), v[i].s7);
        ck_assert_uint_eq(axd_shard_of(v[i].key, v[i].len, 1), 0);
    }
}
END_TEST

/* The vectors table of PROTOCOL.md ("Leases and shards") agrees with the code. */
START_TEST(protocol_md_hash_vectors_agree)
{
    const char *src = getenv("AX_SOURCE_DIR");
    ck_assert_msg(src != NULL, "AX_SOURCE_DIR is not set (run through meson test)");
    char path[4096], line[512];
    snprintf(path, sizeof path, "%s/proto/PROTOCOL.md", src);
    FILE *f = fopen(path, "r");
    ck_assert_ptr_nonnull(f);
    int in_sec = 0, rows = 0;
    while (fgets(line, sizeof line, f)) {
        if (!strncmp(line, "## ", 3))
            in_sec = !strncmp(line, "## Leases and shards", 20);
        char key[128], hex[64];
        unsigned s256, s65536, s7;
        uint8_t bytes[64];
        size_t len = 0;
        if (!in_sec || sscanf(line, "| `%127[^`]` | `%63[0-9a-f]` | %u | %u | %u |", key, hex, &s256, &s65536, &s7) != 5) {
            if (in_sec && sscanf(line, "| `` (empty) | `%63[0-9a-f]` | %u | %u | %u |", hex, &s256, &s65536, &s7) == 4)
                key[0] = 0;
            else if (!in_sec || sscanf(line, "| `%127[^`]` (2 bytes, hex) | `%63[0-9a-f]` | %u | %u | %u |", key, hex,
                                       &s256, &s65536, &s7) != 5)
                continue;
        }
        if (strstr(line, "(2 bytes, hex)")) { /* "00 ff" written as hex */
            unsigned a, b;
            ck_assert_int_eq(sscanf(key, "%x %x", &a, &b), 2);
            bytes[0] = (uint8_t)a, bytes[1] = (uint8_t)b, len = 2;
        } else {
            len = strlen(key);
            memcpy(bytes, key, len);
        }
        ck_assert_uint_eq(axd_fnv1a64(bytes, len), strtoull(hex, NULL, 16));
        ck_assert_uint_eq(axd_shard_of((const char *)bytes, len, 256), s256);
        ck_assert_uint_eq(axd_shard_of((const char *)bytes, len, 65536), s65536);
        ck_assert_uint_eq(axd_shard_of((const char *)bytes, len, 7), s7);
        rows++;
    }
    fclose(f);
    ck_assert_int_eq(rows, 6);
}
END_TEST

START_TEST(shard_hash_spreads_keys)
{
    uint32_t count[16] = {0};
    char key[32];
    for (int i = 0; i < 16000; i++) {
        int n = snprintf(key, sizeof key, "user-%d", i);
        count[axd_shard_of(key, (size_t)n, 16)]++;
    }
    for (int s = 0; s < 16; s++)
        ck_assert_msg(count[s] > 800 && count[s] < 1200, "shard %d got %u of 16000", s, count[s]);
}
END_TEST

/* ---- the memory store ---- */

START_TEST(mem_store_acquire_renew_release_and_fencing)
{
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    axd_lease_store *st = axd_lease_mem_new(loop, 8);
    res r;

    r = do_acquire(loop, st, 3, "node-a", 10000, 0);
    ck_assert_int_eq(r.r.status, AX_OK);
    ck_assert_int_eq(r.r.granted, 1);
    ck_assert_uint_eq(r.r.epoch, 1);
    ck_assert_uint_eq(r.shard, 3);

    r = do_acquire(loop, st, 3, "node-b", 10000, 0); /* held: who and at which epoch */
    ck_assert_int_eq(r.r.granted, 0);
    ck_assert_str_eq(r.owner, "node-a");
    ck_assert_uint_eq(r.r.epoch, 1);
    ck_assert_int_gt(r.r.ttl_ms, 9000);

    r = do_renew(loop, st, 3, "node-a", 1, 10000);
    ck_assert_int_eq(r.r.granted, 1);
    r = do_renew(loop, st, 3, "node-b", 1, 10000); /* not the holder */
    ck_assert_int_eq(r.r.granted, 0);
    r = do_renew(loop, st, 3, "node-a", 0, 10000); /* stale epoch */
    ck_assert_int_eq(r.r.granted, 0);

    r = do_acquire(loop, st, 3, "node-a", 10000, 0); /* re-acquire by the holder: new epoch */
    ck_assert_int_eq(r.r.granted, 1);
    ck_assert_uint_eq(r.r.epoch, 2);
    r = do_renew(loop, st, 3, "node-a", 1, 10000); /* the old epoch is fenced off */
    ck_assert_int_eq(r.r.granted, 0);

    r = do_release(loop, st, 3, "node-a", 1); /* wrong epoch: nothing happens */
    ck_assert_int_eq(r.r.granted, 0);
    r = do_get(loop, st, 3);
    ck_assert_int_eq(r.r.granted, 1);
    ck_assert_str_eq(r.owner, "node-a");
    ck_assert_uint_eq(r.r.epoch, 2);
    r = do_release(loop, st, 3, "node-a", 2);
    ck_assert_int_eq(r.r.granted, 1);
    r = do_get(loop, st, 3);
    ck_assert_int_eq(r.r.granted, 0);
    ck_assert_str_eq(r.owner, "");
    ck_assert_uint_eq(r.r.epoch, 2); /* the last epoch granted survives the lease */

    r = do_acquire(loop, st, 3, "node-b", 10000, 0);
    ck_assert_int_eq(r.r.granted, 1);
    ck_assert_uint_eq(r.r.epoch, 3);
    /* a caller that knows epoch 41 where the store has less: the store went back in time,
     * so the shard is quarantined for one ttl (an old lease may still be served), then
     * granted above 41 */
    r = do_acquire(loop, st, 4, "node-b", 100, 41);
    ck_assert_int_eq(r.r.granted, 0);
    ck_assert_str_eq(r.owner, "");
    ck_assert_uint_eq(r.r.epoch, 41);
    ck_assert_int_eq(r.r.behind, 1); /* this call found the store behind */
    r = do_acquire(loop, st, 4, "node-a", 100, 41); /* anyone: still quarantined */
    ck_assert_int_eq(r.r.granted, 0);
    ck_assert_uint_eq(r.r.epoch, 41);
    ck_assert_int_eq(r.r.behind, 0); /* a quarantine already there, at the known epoch: no regression */
    run_for(loop, 0.15);
    r = do_acquire(loop, st, 4, "node-b", 10000, 41);
    ck_assert_int_eq(r.r.granted, 1);
    ck_assert_uint_eq(r.r.epoch, 42);

    /* bad arguments: refused at once, no callback */
    res x = {0};
    ck_assert_int_eq(axd_lease_acquire(st, 8, "node-a", 1000, 0, res_cb, &x), AX_EINVAL);
    ck_assert_int_eq(axd_lease_acquire(st, 0, "", 1000, 0, res_cb, &x), AX_EINVAL);
    ck_assert_int_eq(axd_lease_acquire(st, 0, NULL, 1000, 0, res_cb, &x), AX_EINVAL);
    ck_assert_int_eq(axd_lease_acquire(st, 0, "node-a", 0, 0, res_cb, &x), AX_EINVAL);
    char longname[300];
    memset(longname, 'n', sizeof longname - 1);
    longname[sizeof longname - 1] = 0;
    ck_assert_int_eq(axd_lease_renew(st, 0, longname, 1, 1000, res_cb, &x), AX_EINVAL);
    run_for(loop, 0.01);
    ck_assert_int_eq(x.done, 0);

    axd_lease_state s;
    axd_lease_store_state(st, &s);
    ck_assert_str_eq(s.store, "memory");
    ck_assert_str_eq(s.conn, "connected");
    ck_assert_uint_ge(s.ops, 13);
    axd_lease_store_free(st);
    ev_loop_destroy(loop);
}
END_TEST

START_TEST(mem_store_lease_expires_and_epoch_keeps_growing)
{
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    axd_lease_store *st = axd_lease_mem_new(loop, 4);
    res r = do_acquire(loop, st, 0, "node-a", 60, 0);
    ck_assert_uint_eq(r.r.epoch, 1);
    r = do_acquire(loop, st, 0, "node-b", 60, 0);
    ck_assert_int_eq(r.r.granted, 0);
    run_for(loop, 0.1);
    r = do_renew(loop, st, 0, "node-a", 1, 60); /* expired: renew is refused */
    ck_assert_int_eq(r.r.status, AX_OK);
    ck_assert_int_eq(r.r.granted, 0);
    r = do_get(loop, st, 0);
    ck_assert_int_eq(r.r.granted, 0);
    r = do_acquire(loop, st, 0, "node-b", 60, 0);
    ck_assert_int_eq(r.r.granted, 1);
    ck_assert_uint_eq(r.r.epoch, 2);
    axd_lease_store_free(st);
    ev_loop_destroy(loop);
}
END_TEST

START_TEST(mem_store_keeps_state_records_fenced_by_the_lease)
{
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    axd_lease_store *st = axd_lease_mem_new(loop, 4);
    res r = do_acquire(loop, st, 1, "node-a", 150, 0);
    ck_assert_int_eq(r.r.granted, 1);
    r = do_release(loop, st, 1, "node-a", r.r.epoch); /* epoch 1 ends; 2 is granted next */
    r = do_acquire(loop, st, 1, "node-a", 150, 0);
    ck_assert_uint_eq(r.r.epoch, 2);
    check_state_contract(loop, st, 1, 2, 3);
    sres w = st_write(loop, st, 1, 2, "t\0k", 3, "x", 1, 0);
    ck_assert_int_eq(w.r.status, AX_OK);
    /* the lease expires: its epoch writes nothing any more, the record stays */
    run_for(loop, 0.2);
    w = st_write(loop, st, 1, 2, "t\0k", 3, "y", 1, 0);
    ck_assert_int_eq(w.r.status, AX_ESTALE);
    r = do_acquire(loop, st, 1, "node-b", 1000, 0);
    ck_assert_uint_eq(r.r.epoch, 3);
    w = st_load(loop, st, 1, 3, "t\0k", 3);
    ck_assert_int_eq(w.r.found, 1);
    ck_assert(w.r.len == 1 && w.data[0] == 'x');
    /* cut off: state operations fail as lease operations do; free cancels them */
    axd_lease_mem_cut(st, NULL, 1);
    w = st_load(loop, st, 1, 3, "t\0k", 3);
    ck_assert_int_eq(w.r.status, AX_ECONN);
    axd_lease_mem_cut(st, NULL, 0);
    sres pend = {0};
    axd_lease_mem_set_delay(st, 1000);
    ck_assert_int_eq(axd_state_write(st, 1, 3, "t\0k", 3, "z", 1, 0, sres_cb, &pend), 0);
    axd_lease_store_free(st);
    ck_assert_int_eq(pend.done, 1);
    ck_assert_int_eq(pend.r.status, AX_ECANCELED);
    ev_loop_destroy(loop);
}
END_TEST

START_TEST(mem_store_cut_node_fails_and_free_cancels_pending)
{
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    axd_lease_store *st = axd_lease_mem_new(loop, 4);
    axd_lease_mem_cut(st, "node-a", 1);
    res r = do_acquire(loop, st, 0, "node-a", 1000, 0);
    ck_assert_int_eq(r.r.status, AX_ECONN);
    r = do_acquire(loop, st, 0, "node-b", 1000, 0); /* others still reach the store */
    ck_assert_int_eq(r.r.granted, 1);
    axd_lease_mem_cut(st, "node-a", 0);
    r = do_acquire(loop, st, 1, "node-a", 1000, 0);
    ck_assert_int_eq(r.r.granted, 1);

    res x = {0}, y = {0};
    axd_lease_mem_set_delay(st, 1000);
    ck_assert_int_eq(axd_lease_get(st, 0, res_cb, &x), 0);
    ck_assert_int_eq(axd_lease_get(st, 1, res_cb, &y), 0);
    axd_lease_store_free(st);
    ck_assert_int_eq(x.done, 1);
    ck_assert_int_eq(x.r.status, AX_ECANCELED);
    ck_assert_int_eq(y.r.status, AX_ECANCELED);
    ev_loop_destroy(loop);
}
END_TEST

/* ---- the manager ---- */

typedef struct want {
    tnode *n;
    int count;
} want;
static int has_count(void *ud)
{
    want *w = ud;
    return tn_count(w->n, tc_cur->n_shards) == w->count;
}
static int node_stopped(void *ud) { return ((tnode *)ud)->stopped > 0; }

START_TEST(manager_single_node_owns_all_and_keeps_them)
{
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    axd_lease_store *st = axd_lease_mem_new(loop, 16);
    tcluster c;
    tc_init(&c, loop, 16);
    tnode *a = tc_add(&c, st, "node-a", 300, 100, 100);
    axd_shards_start(a->m);
    want w = {a, 16};
    ck_assert(run_until(loop, has_count, &w, 2));
    ck_assert_uint_eq(axd_shards_count_owned(a->m), 16);
    ck_assert_uint_eq(axd_shards_target(a->m), 16);
    run_for(loop, 1.0); /* > 3 ttl: renewals keep every shard */
    ck_assert_int_eq(tn_count(a, 16), 16);
    ck_assert_int_eq(a->lost_lease, 0);
    ck_assert_int_eq(a->acquired, 16);

    uint64_t e = 0;
    ck_assert_int_eq(axd_shards_serving(a->m, 5, &e), 1);
    ck_assert_uint_eq(e, a->epoch[5]);
    ck_assert_int_eq(axd_shards_fence(a->m, 5, e), 0);
    ck_assert_int_eq(axd_shards_fence(a->m, 5, 0), 0);
    ck_assert_int_eq(axd_shards_fence(a->m, 5, e + 1), AX_ESTALE);
    ck_assert_int_eq(axd_shards_fence(a->m, 5, e + 7), AX_ESTALE);
    ck_assert_int_eq(axd_shards_fence(a->m, 99, e), AX_EBUSY);

    axd_shard_info in;
    ck_assert_int_eq(axd_shards_info(a->m, 5, &in), 0);
    ck_assert_int_eq(in.state, AXD_SHARD_OWNED);
    ck_assert_str_eq(in.owner, "node-a");
    ck_assert_int_gt(in.expires_in_ms, 0);
    ck_assert_int_le(in.expires_in_ms, 200);
    ck_assert_int_eq(axd_shards_info(a->m, 16, &in), AX_EINVAL);

    cJSON *j = axd_shards_json(a->m, 0);
    char *txt = cJSON_PrintUnformatted(j);
    ck_assert_ptr_nonnull(strstr(txt, "\"owned\":16"));
    ck_assert_ptr_nonnull(strstr(txt, "\"type\":\"memory\""));
    ck_assert_ptr_nonnull(strstr(txt, "\"state\":\"owned\""));
    free(txt);
    cJSON_Delete(j);

    axd_shards_stop(a->m);
    ck_assert_int_eq(tn_count(a, 16), 0); /* stops serving at once */
    ck_assert_int_eq(a->shutdown, 16);
    ck_assert(run_until(loop, node_stopped, a, 2));
    ck_assert_int_eq(a->stopped, 1);
    res r = do_get(loop, st, 5); /* released in the store */
    ck_assert_int_eq(r.r.granted, 0);
    ck_assert_int_eq(c.double_owner, 0);
    ck_assert_int_eq(c.epoch_backwards, 0);
    tc_free(&c);
    axd_lease_store_free(st);
    ev_loop_destroy(loop);
}
END_TEST

/* A release waits while the keyed layer says work of the shard (durable state writes)
 * is still on its way to the store: the shard is not served meanwhile, the lease stays
 * in the store, and it is released once that work is done, or at the local deadline. */
START_TEST(manager_holds_a_release_back_until_the_shard_s_work_is_done)
{
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    axd_lease_store *st = axd_lease_mem_new(loop, 4);
    tcluster c;
    tc_init(&c, loop, 4);
    tnode *a = tc_add(&c, st, "node-a", 2000, 500, 500);
    axd_shards_start(a->m);
    want w = {a, 4};
    ck_assert(run_until(loop, has_count, &w, 2));
    a->release_hold = 1;
    axd_shards_stop(a->m);
    ck_assert_int_eq(tn_count(a, 4), 0); /* not served from now on */
    run_for(loop, 0.2);
    ck_assert_int_gt(a->release_asked, 4); /* polled */
    ck_assert_int_eq(a->stopped, 0);      /* the stop waits for the releases */
    res r = do_get(loop, st, 2);
    ck_assert_int_eq(r.r.granted, 1); /* still held in the store */
    ck_assert_str_eq(r.owner, "node-a");
    axd_shard_info in;
    ck_assert_int_eq(axd_shards_info(a->m, 2, &in), 0);
    ck_assert_int_eq(in.state, AXD_SHARD_RELEASING);
    a->release_hold = 0;
    ck_assert(run_until(loop, node_stopped, a, 2));
    r = do_get(loop, st, 2);
    ck_assert_int_eq(r.r.granted, 0); /* released */
    tc_free(&c);
    /* work that never ends: released at the local deadline (ttl - safety) all the same */
    tc_init(&c, loop, 4);
    a = tc_add(&c, st, "node-b", 400, 100, 100);
    axd_shards_start(a->m);
    w = (want){a, 4};
    ck_assert(run_until(loop, has_count, &w, 2));
    a->release_hold = 1;
    double t0 = ev_time();
    axd_shards_stop(a->m);
    ck_assert(run_until(loop, node_stopped, a, 2));
    ck_assert_double_lt(ev_time() - t0, 0.4);
    r = do_get(loop, st, 1);
    ck_assert_int_eq(r.r.granted, 0);
    tc_free(&c);
    axd_lease_store_free(st);
    ev_loop_destroy(loop);
}
END_TEST

/* The store becomes unreachable: the node stops serving at its local deadline (last
 * successful send + ttl - safety), before the store's expiry; another node takes over
 * only after that, with a higher epoch. Sampled every ms: never two owners. */
START_TEST(manager_unreachable_store_drops_shards_before_expiry)
{
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    axd_lease_store *st = axd_lease_mem_new(loop, 8);
    tcluster c;
    tc_init(&c, loop, 8);
    tnode *a = tc_add(&c, st, "node-a", 300, 100, 100);
    axd_shards_start(a->m);
    want w = {a, 8};
    ck_assert(run_until(loop, has_count, &w, 2));
    run_for(loop, 0.25);

    tnode *b = tc_add(&c, st, "node-b", 300, 100, 100);
    axd_shards_start(b->m);
    run_for(loop, 0.2);
    ck_assert_int_eq(tn_count(b, 8), 0); /* all held by a */

    double cut_at = ev_now(loop);
    axd_lease_mem_cut(st, "node-a", 1);
    want wa = {a, 0};
    ck_assert(run_until(loop, has_count, &wa, 1));
    double lost_after = a->last_lost_at - cut_at;
    /* the last successful renew was sent at most renew_interval before the cut */
    ck_assert_msg(lost_after <= 0.2 + 0.08, "lost %.3f s after the cut", lost_after);
    ck_assert_int_eq(a->lost_lease, 8);
    for (uint32_t s = 0; s < 8; s++) { /* ... and before the store let the leases go */
        res r = do_get(loop, st, s);
        ck_assert_int_eq(r.r.granted, 1);
        ck_assert_str_eq(r.owner, "node-a");
        ck_assert_int_gt(r.r.ttl_ms, 0);
    }

    /* b takes over after the store's expiry (b still believes a is alive: fair share 4) */
    axd_shards_set_live_nodes(b->m, 2);
    want wb4 = {b, 4};
    ck_assert(run_until(loop, has_count, &wb4, 2));
    axd_shards_set_live_nodes(b->m, 1);
    want wb = {b, 8};
    ck_assert(run_until(loop, has_count, &wb, 2));
    for (uint32_t s = 0; s < 8; s++)
        ck_assert_uint_gt(b->epoch[s], a->epoch[s]);

    /* a comes back: it is refused (b holds everything) and serves nothing */
    axd_lease_mem_cut(st, "node-a", 0);
    run_for(loop, 0.4);
    ck_assert_int_eq(tn_count(a, 8), 0);
    ck_assert_int_eq(tn_count(b, 8), 8);
    ck_assert_int_eq(c.double_owner, 0);
    ck_assert_int_eq(c.epoch_backwards, 0);
    ck_assert_int_gt(c.samples, 300);
    tc_free(&c);
    axd_lease_store_free(st);
    ev_loop_destroy(loop);
}
END_TEST

/* Replies slower than ttl - safety: the local deadline (from the send time) has passed
 * when the grant arrives, so the shard is never served, and it is given back. */
START_TEST(manager_deadline_counts_from_send_time)
{
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    axd_lease_store *st = axd_lease_mem_new(loop, 4);
    tcluster c;
    tc_init(&c, loop, 4);
    axd_lease_mem_set_delay(st, 250); /* > ttl - safety = 200 */
    tnode *a = tc_add(&c, st, "node-a", 300, 100, 100);
    axd_shards_start(a->m);
    run_for(loop, 0.8);
    ck_assert_int_eq(a->acquired, 0);
    axd_shards_stop(a->m);
    ck_assert(run_until(loop, node_stopped, a, 2));

    /* 120 ms replies: served, but renewals answered late leave a small window; a renew
     * whose reply is later than the deadline never extends it. */
    axd_lease_mem_set_delay(st, 120);
    tnode *b = tc_add(&c, st, "node-b", 300, 100, 100);
    axd_shards_start(b->m);
    run_for(loop, 1.0);
    ck_assert_int_gt(b->acquired, 0);
    ck_assert_int_eq(c.double_owner, 0);
    ck_assert_int_eq(c.epoch_backwards, 0);
    tc_free(&c);
    axd_lease_store_free(st);
    ev_loop_destroy(loop);
}
END_TEST

static int split_evenly(void *ud)
{
    tcluster *c = ud;
    return tn_count(&c->nodes[0], c->n_shards) == 8 && tn_count(&c->nodes[1], c->n_shards) == 8;
}

START_TEST(manager_two_nodes_share_fairly_and_hand_over)
{
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    axd_lease_store *st = axd_lease_mem_new(loop, 16);
    tcluster c;
    tc_init(&c, loop, 16);
    tnode *a = tc_add(&c, st, "node-a", 300, 100, 100);
    axd_shards_start(a->m);
    want w = {a, 16};
    ck_assert(run_until(loop, has_count, &w, 2));

    /* b joins: both learn there are two live nodes; a hands over 8, b takes them */
    tnode *b = tc_add(&c, st, "node-b", 300, 100, 100);
    axd_shards_set_live_nodes(b->m, 2);
    axd_shards_start(b->m);
    axd_shards_set_live_nodes(a->m, 2);
    ck_assert(run_until(loop, split_evenly, &c, 3));
    ck_assert_int_eq(a->handover, 8);
    ck_assert_int_eq(a->lost_lease, 0);
    run_for(loop, 0.5); /* stable */
    ck_assert(split_evenly(&c));

    /* b shuts down: releases at once; a (told one node is live) takes all back */
    axd_shards_stop(b->m);
    ck_assert(run_until(loop, node_stopped, b, 2));
    double t0 = ev_now(loop);
    axd_shards_set_live_nodes(a->m, 1);
    ck_assert(run_until(loop, has_count, &w, 2));
    ck_assert_msg(ev_now(loop) - t0 < 0.25, "released shards should be taken without waiting for expiry");
    ck_assert_int_eq(c.double_owner, 0);
    ck_assert_int_eq(c.epoch_backwards, 0);
    tc_free(&c);
    axd_lease_store_free(st);
    ev_loop_destroy(loop);
}
END_TEST

/* A shard released by its holder, who tells this node (kick), while this node's acquire
 * of it is in flight, read before the release: the refusal must not hold the shard back
 * for the old holder's remaining lease, the shard is acquired again at once. (Seen with
 * etcd, whose acquire takes three round trips: shards handed over by a drain stayed
 * unowned for seconds and asks to them timed out.) */
START_TEST(manager_kick_during_an_acquire_is_not_lost)
{
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    axd_lease_store *st = axd_lease_mem_new(loop, 4);
    res x = do_acquire(loop, st, 2, "node-x", 10000, 0); /* held for 10 s by another node */
    ck_assert_int_eq(x.r.granted, 1);
    axd_lease_mem_set_delay(st, 300); /* each answer 300 ms after the store acted */
    tcluster c;
    tc_init(&c, loop, 4);
    tnode *a = tc_add(&c, st, "node-a", 3000, 1000, 500);
    axd_shards_start(a->m);
    run_for(loop, 0.05); /* the acquires went out: shard 2's refusal is on its way */
    res rel = {0};
    ck_assert_int_eq(axd_lease_release(st, 2, "node-x", x.r.epoch, res_cb, &rel), 0); /* done in the store now */
    axd_shards_kick(a->m, 2); /* node-x told the others */
    want w = {a, 4};
    double t0 = ev_now(loop);
    ck_assert_msg(run_until(loop, has_count, &w, 2), "node-a owns %d of 4 shards 2 s after shard 2 was released",
                  tn_count(a, 4));
    printf("  shard 2 acquired %.0f ms after its release (answers delayed 300 ms)\n", (ev_now(loop) - t0) * 1000);
    ck_assert_int_eq(c.double_owner, 0);
    tc_free(&c);
    axd_lease_store_free(st);
    ev_loop_destroy(loop);
}
END_TEST

/* Workers read a shard's {epoch, deadline} from their own threads while the manager's
 * loop changes them: every read is consistent (served means a non-zero epoch, the same
 * one axd_shards_epoch gives, and a shard's epoch never goes back while served). Run
 * under ThreadSanitizer in CI. */
typedef struct reader {
    axd_shards *m;
    uint32_t n;
    _Atomic int stop;
    long reads, served, bad;
} reader;

static void *read_shards(void *ud)
{
    reader *r = ud;
    uint64_t last[64] = {0};
    while (!atomic_load(&r->stop)) {
        for (uint32_t s = 0; s < r->n; s++) {
            uint64_t ep = 0;
            int serving = axd_shards_serving(r->m, s, &ep);
            r->reads++;
            if (!serving)
                continue;
            r->served++;
            if (ep == 0 || ep < last[s])
                r->bad++;
            last[s] = ep;
        }
    }
    return NULL;
}

START_TEST(manager_state_reads_from_another_thread_are_consistent)
{
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    axd_lease_store *st = axd_lease_mem_new(loop, 16);
    tcluster c;
    tc_init(&c, loop, 16);
    tnode *a = tc_add(&c, st, "node-a", 300, 100, 100);
    reader r = {.m = a->m, .n = 16};
    pthread_t th;
    ck_assert_int_eq(pthread_create(&th, NULL, read_shards, &r), 0);
    axd_shards_start(a->m);
    want w = {a, 16};
    ck_assert(run_until(loop, has_count, &w, 2));
    /* b joins (a hands 8 over) and leaves (a takes them back), twice */
    for (int round = 0; round < 2; round++) {
        tnode *b = tc_add(&c, st, round ? "node-c" : "node-b", 300, 100, 100);
        axd_shards_set_live_nodes(b->m, 2);
        axd_shards_start(b->m);
        axd_shards_set_live_nodes(a->m, 2);
        ck_assert(run_until(loop, split_evenly, &c, 3));
        axd_shards_stop(b->m);
        ck_assert(run_until(loop, node_stopped, b, 2));
        axd_shards_set_live_nodes(a->m, 1);
        ck_assert(run_until(loop, has_count, &w, 2));
        axd_shards_free(b->m);
        b->m = NULL;
        c.n_nodes--;
    }
    atomic_store(&r.stop, 1);
    pthread_join(th, NULL);
    ck_assert_int_gt(r.served, 0);
    ck_assert_int_eq(r.bad, 0);
    tc_free(&c);
    axd_lease_store_free(st);
    ev_loop_destroy(loop);
}
END_TEST

static int all_owned_by_two(void *ud)
{
    tcluster *c = ud;
    return tn_count(&c->nodes[0], c->n_shards) + tn_count(&c->nodes[1], c->n_shards) == (int)c->n_shards;
}

/* Two nodes start together on one store: each shard has exactly one winner. */
START_TEST(manager_concurrent_start_one_winner_per_shard)
{
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    axd_lease_store *st = axd_lease_mem_new(loop, 32);
    tcluster c;
    tc_init(&c, loop, 32);
    tnode *a = tc_add(&c, st, "node-a", 300, 100, 100);
    tnode *b = tc_add(&c, st, "node-b", 300, 100, 100);
    axd_shards_start(a->m);
    axd_shards_start(b->m);
    ck_assert(run_until(loop, all_owned_by_two, &c, 2));
    for (uint32_t s = 0; s < 32; s++)
        ck_assert_int_eq(a->serving[s] + b->serving[s], 1);
    ck_assert_int_eq(c.double_owner, 0);
    tc_free(&c);
    axd_lease_store_free(st);
    ev_loop_destroy(loop);
}
END_TEST

START_TEST(manager_rejects_bad_config_and_frees_with_requests_in_flight)
{
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    axd_lease_store *st = axd_lease_mem_new(loop, 16);
    char err[256];
    axd_shards_cfg cfg = {.node = "n", .n_shards = 16, .ttl_ms = 300, .renew_interval_ms = 200, .safety_margin_ms = 100};
    ck_assert_ptr_null(axd_shards_new(loop, st, &cfg, NULL, err, sizeof err));
    ck_assert_ptr_nonnull(strstr(err, "renew_interval_ms + safety_margin_ms < ttl_ms"));
    cfg.renew_interval_ms = 100;
    cfg.n_shards = 17;
    ck_assert_ptr_null(axd_shards_new(loop, st, &cfg, NULL, err, sizeof err));
    cfg.n_shards = 16;
    cfg.node = "";
    ck_assert_ptr_null(axd_shards_new(loop, st, &cfg, NULL, err, sizeof err));
    cfg.node = "n";
    axd_shards *m = axd_shards_new(loop, st, &cfg, NULL, err, sizeof err);
    ck_assert_ptr_nonnull(m);
    axd_lease_mem_set_delay(st, 500);
    axd_shards_start(m);
    run_for(loop, 0.02); /* acquires in flight */
    axd_shards_free(m);   /* part of it lives on until the store answers */
    axd_lease_store_free(st);
    axd_shards_free(NULL);

    axd_config conf;
    axd_config_defaults(&conf);
    ck_assert_int_eq(axd_shards_config_check(&conf, err, sizeof err), 0);
    ck_assert_uint_eq(conf.shard_count, 256);
    ck_assert_uint_eq(conf.lease_ttl_ms, 10000);
    ck_assert_int_eq(axd_config_set(&conf, "lease.renew_interval_ms", "9s", err, sizeof err), 0);
    ck_assert_int_eq(axd_shards_config_check(&conf, err, sizeof err), AX_ECONFIG);
    ck_assert_str_eq(err, "lease.renew_interval_ms (9000) + lease.safety_margin_ms (1000) must be less than "
                          "lease.ttl_ms (10000)");
    ck_assert_ptr_null(axd_lease_store_from_config(loop, &conf, err, sizeof err));
    ck_assert_int_eq(axd_config_set(&conf, "lease.renew_interval_ms", "3000", err, sizeof err), 0);
    axd_lease_store *s2 = axd_lease_store_from_config(loop, &conf, err, sizeof err);
    ck_assert_ptr_nonnull(s2);
    ck_assert_uint_eq(s2->n_shards, 256);
    axd_lease_store_free(s2);
    ck_assert_int_eq(axd_config_set(&conf, "lease.store", "zookeeper", err, sizeof err), AX_ECONFIG);
    axd_config_free(&conf);
    ev_loop_destroy(loop);
}
END_TEST

static Suite *lease_suite(void)
{
    Suite *s = suite_create("lease");
    TCase *tc = tcase_create("lease");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, shard_hash_matches_documented_vectors);
    tcase_add_test(tc, protocol_md_hash_vectors_agree);
    tcase_add_test(tc, shard_hash_spreads_keys);
    tcase_add_test(tc, mem_store_acquire_renew_release_and_fencing);
    tcase_add_test(tc, mem_store_lease_expires_and_epoch_keeps_growing);
    tcase_add_test(tc, mem_store_cut_node_fails_and_free_cancels_pending);
    tcase_add_test(tc, mem_store_keeps_state_records_fenced_by_the_lease);
    tcase_add_test(tc, manager_single_node_owns_all_and_keeps_them);
    tcase_add_test(tc, manager_holds_a_release_back_until_the_shard_s_work_is_done);
    tcase_add_test(tc, manager_unreachable_store_drops_shards_before_expiry);
    tcase_add_test(tc, manager_deadline_counts_from_send_time);
    tcase_add_test(tc, manager_two_nodes_share_fairly_and_hand_over);
    tcase_add_test(tc, manager_kick_during_an_acquire_is_not_lost);
    tcase_add_test(tc, manager_state_reads_from_another_thread_are_consistent);
    tcase_add_test(tc, manager_concurrent_start_one_winner_per_shard);
    tcase_add_test(tc, manager_rejects_bad_config_and_frees_with_requests_in_flight);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(lease_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
