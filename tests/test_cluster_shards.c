/* Keyed routing across real processes: one redis-server (the lease store) that the test
 * starts on a free loopback port, and three axactord peering over loopback TCP. Proves:
 * every key is reachable from every node and lives on exactly one; a SIGKILLed owner's
 * keys are served by a survivor within ttl + 1 s at a higher epoch; a Redis restart is
 * recovered without two nodes ever serving one shard at once; the epoch a key's actor
 * runs under never goes backwards across a failover; an owner restarted while its old
 * leases live causes only retryable errors; a paused (SIGSTOP) owner that wakes after its
 * shards moved serves nothing stale. With AX_TEST_STORE=etcd the same cluster runs on
 * etcd (the tests of Redis itself left out), plus one of etcd itself: all members of a
 * 3-member etcd SIGKILLed, every node stops serving before its deadline, and resumes
 * once a quorum is back. Skips (77) without redis-server (or etcd). */
#include <arpa/inet.h>
#include <check.h>
#include <cjson/cJSON.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "axactor/client.h"
#include "harness.h"
#include "redis_test_util.h"

#include "shards_test_util.h"

/* ---------------- tests ---------------- */

START_TEST(keyed_counters_are_reachable_from_every_node)
{
    char key[20][16];
    cluster_up();
    for (int k = 0; k < 20; k++) {
        snprintf(key[k], sizeof key[k], "user:%d", k);
        for (int i = 0; i < NNODES; i++)
            tell_key_ok(i, "counter", key[k], "inc");
    }
    for (int k = 0; k < 20; k++)
        for (int i = 0; i < NNODES; i++) {
            char *v = ask_key_ok(i, "counter", key[k], "get");
            ck_assert_msg(!strcmp(v, "3"), "%s through %s: %s, want 3", key[k], N[i].name, v);
            axc_free(v);
        }
    /* one actor per key in the whole cluster, on the node that serves its shard */
    int total = 0, seen[20] = {0};
    view v;
    for (int i = 0; i < NNODES; i++) {
        view_of(i, &v);
        for (int k = 0; k < NSHARDS; k++)
            total += v.actors[k];
        cJSON *doc = doc_of(i, axc_actors, "actors"), *a;
        cJSON_ArrayForEach(a, cJSON_GetObjectItem(doc, "actors"))
        {
            const char *ak = cJSON_GetStringValue(cJSON_GetObjectItem(a, "key"));
            if (!ak || strcmp(str(a, "type"), "counter"))
                continue;
            int k = atoi(ak + 5);
            ck_assert_msg(!strncmp(ak, "user:", 5) && k >= 0 && k < 20, "unexpected key %s", ak);
            seen[k]++;
            ck_assert_msg(v.owned[shard_of(ak)], "%s runs %s but does not serve its shard %u", N[i].name, ak,
                          shard_of(ak));
        }
        cJSON_Delete(doc);
    }
    ck_assert_int_eq(total, 20);
    for (int k = 0; k < 20; k++)
        ck_assert_msg(seen[k] == 1, "key %s has %d actors in the cluster", key[k], seen[k]);
    cluster_down();
}
END_TEST

START_TEST(sigkill_owner_then_key_is_served_by_a_survivor_within_ttl_plus_1s_with_higher_epoch)
{
    const uint32_t sh = shard_of("alice");
    double worst = 0;
    cluster_up();
    for (int trial = 0; trial < 3; trial++) {
        /* the counter lives on the owner; it starts again from 0 on the survivor */
        tell_key_ok(trial % NNODES, "counter", "alice", "inc");
        double old_epoch = 0;
        int victim = owner_of(sh, &old_epoch);
        ck_assert_msg(victim >= 0, "trial %d: nobody serves alice's shard %u", trial, sh);
        int asker = (victim + 1) % NNODES;
        double t0 = now_s();
        node_kill(victim);
        int rc, tries = 0;
        char *v = NULL;
        for (;;) { /* bounded: 15 s */
            void *reply = NULL;
            size_t n = 0;
            axc_target t = axc_by_key("counter", "alice");
            tries++;
            rc = axc_ask(conn(asker), &t, "get", NULL, 0, 1000, &reply, &n);
            if (rc == 0) {
                v = reply;
                break;
            }
            axc_free(reply);
            ck_assert_msg(retryable(rc), "trial %d: ask alice through %s: %s (%s)", trial, N[asker].name,
                          ax_errname(rc), axc_errmsg(conn(asker)));
            ck_assert_msg(now_s() - t0 < 15, "trial %d: alice not served 15 s after the kill (last %s)", trial,
                          ax_errname(rc));
            sleep_ms(10);
        }
        double took = now_s() - t0;
        if (took > worst)
            worst = took;
        printf("  trial %d: killed %s (epoch %.0f of shard %u); %s answered after %.0f ms (%d tries), value %s\n",
               trial, N[victim].name, old_epoch, sh, N[asker].name, took * 1000, tries, v);
        ck_assert_str_eq(v, "0"); /* a new actor: the state died with its node */
        axc_free(v);
        double new_epoch = 0;
        int owner = owner_of(sh, &new_epoch);
        ck_assert_msg(owner >= 0 && owner != victim, "trial %d: shard %u owner after failover: %d", trial, sh, owner);
        ck_assert_msg(new_epoch > old_epoch, "trial %d: epoch %.0f after failover, %.0f before", trial, new_epoch,
                      old_epoch);
        /* etcd counts lease time in whole seconds and deletes expired keys in a 500 ms sweep:
         * up to a second more (PROTOCOL.md "etcd store") */
        double bound_ms = TTL_MS + 1000 + (store_etcd() ? 1000 : 0);
        ck_assert_msg(took * 1000 <= bound_ms, "trial %d: failover took %.0f ms > %.0f ms (ttl + 1 s%s)", trial,
                      took * 1000, bound_ms, store_etcd() ? " + 1 s for etcd" : "");
        /* bring the node back (a new boot) and let the shards rebalance */
        node_restart(victim);
        double end = now_s() + 10;
        while (!mesh_up()) {
            ck_assert_msg(now_s() < end, "the restarted node did not peer within 10 s");
            sleep_ms(50);
        }
        wait_settled(8 * TTL_MS);
    }
    printf("  worst failover: %.0f ms (ttl %d ms, heartbeat timeout %d ms)\n", worst * 1000, TTL_MS, HB_TIMEOUT_MS);
    cluster_down();
}
END_TEST

/* Before the store goes away: every shard's epoch now (0: not served), and one ask
 * through every node. */
static void served_epochs_and_asks(double ep[NSHARDS])
{
    view before[NNODES];
    sample_round(before);
    for (int k = 0; k < NSHARDS; k++) {
        ep[k] = 0;
        for (int i = 0; i < NNODES; i++)
            if (before[i].owned[k])
                ep[k] = before[i].epoch[k];
    }
    for (int i = 0; i < NNODES; i++) {
        char *v = ask_key_ok(i, "counter", "carol", "get");
        axc_free(v);
    }
}

/* After it came back: asks through every node work, and every shard served a second
 * later is served above its epoch before. Returns how many shards are served. */
static int asks_then_epochs_above(const double before[NSHARDS])
{
    for (int i = 0; i < NNODES; i++)
        for (int k = 0; k < 5; k++) {
            char key[16];
            snprintf(key, sizeof key, "carol-%d", k);
            char *v = ask_key_ok(i, "counter", key, "get");
            axc_free(v);
        }
    sleep_sampling(1000);
    view after[NNODES];
    int served = sample_round(after);
    for (int k = 0; k < NSHARDS; k++)
        for (int i = 0; i < NNODES; i++)
            if (after[i].owned[k])
                ck_assert_msg(after[i].epoch[k] > before[k], "shard %d: epoch %.0f after, %.0f before", k,
                              after[i].epoch[k], before[k]);
    return served;
}

START_TEST(redis_restart_nodes_recover_without_double_ownership)
{
    cluster_up();
    double epoch_before[NSHARDS];
    served_epochs_and_asks(epoch_before);
    double t0 = now_s();
    redis_kill(&R, SIGKILL);
    sleep_sampling(3000);
    /* with the store gone every lease reaches its local deadline: nothing is served */
    view vs[NNODES];
    ck_assert_int_eq(sample_round(vs), 0);
    for (int i = 0; i < NNODES; i++)
        ck_assert_int_eq(vs[i].n_owned, 0);
    /* keyed requests meanwhile fail with an error a client retries, through every node */
    for (int i = 0; i < NNODES; i++) {
        int rc;
        char *v = ask_key(i, "counter", "carol", "get", 0, &rc);
        ck_assert_msg(v == NULL && retryable(rc), "ask through %s without the store: %s (%s)", N[i].name,
                      ax_errname(rc), axc_errmsg(conn(i)));
    }
    redis_start(&R); /* same port, empty: every shard is quarantined for one ttl */
    double t_restart = now_s();
    wait_settled(10 * TTL_MS);
    double t_settled = now_s();
    asks_then_epochs_above(epoch_before);
    printf("  redis down %.0f ms; all %d shards served again %.0f ms after the restart\n", (t_restart - t0) * 1000,
           NSHARDS, (t_settled - t_restart) * 1000);
    cluster_down();
}
END_TEST

/* etcd only: every member of a 3-member etcd SIGKILLed at once, then restarted one by
 * one. With no member left no renew succeeds, so each node must stop serving by the
 * local deadline of its last renewed lease: that renew was sent before the last member
 * died, so no node may claim a deadline past t_dead + ttl - safety margin, and by then
 * nothing is served anywhere and keyed asks fail with retryable errors. One member of
 * three back is no quorum: still nothing is served. With two, every shard is served
 * again, at an epoch above the one before (etcd kept its epoch counters on disk). */
START_TEST(all_etcd_members_killed_nodes_stop_before_their_deadline_and_resume_after_a_restart)
{
    cluster_etcd_members = 3;
    cluster_up();
    double epoch_before[NSHARDS];
    served_epochs_and_asks(epoch_before);
    for (int m = 0; m < E.n; m++)
        etcd_kill_member(&E, m, SIGKILL);
    double t_dead = now_s(), limit = t_dead + (TTL_MS - SAFETY_MS) / 1000.0;
    /* until the latest possible deadline (+ half the margin): no claim beyond it */
    view vs[NNODES];
    double last_served = 0, claim_max = 0;
    while (now_s() < limit + SAFETY_MS / 2000.0) {
        sample_round(vs);
        for (int i = 0; i < NNODES; i++)
            for (int k = 0; k < NSHARDS; k++)
                if (vs[i].owned[k]) {
                    double claim = vs[i].t0 + vs[i].exp_ms[k] / 1000.0;
                    if (claim > claim_max)
                        claim_max = claim;
                    if (vs[i].t1 > last_served)
                        last_served = vs[i].t1;
                    ck_assert_msg(claim <= limit + 0.05,
                                  "%s claims shard %d until %.0f ms after etcd died (latest deadline %.0f ms)",
                                  N[i].name, k, (claim - t_dead) * 1000, (limit - t_dead) * 1000);
                }
        sleep_ms(20);
    }
    ck_assert_int_eq(sample_round(vs), 0);
    for (int i = 0; i < NNODES; i++) {
        ck_assert_int_eq(vs[i].n_owned, 0);
        int rc;
        char *v = ask_key(i, "counter", "carol", "get", 0, &rc);
        ck_assert_msg(v == NULL && retryable(rc), "ask through %s without etcd: %s (%s)", N[i].name,
                      ax_errname(rc), axc_errmsg(conn(i)));
    }
    sleep_sampling(1000);
    ck_assert_int_eq(sample_round(vs), 0);
    /* one member of three: no quorum, nothing to renew or acquire with */
    etcd_start_member(&E, 0, 1);
    sleep_sampling(2 * TTL_MS);
    ck_assert_int_eq(sample_round(vs), 0);
    for (int i = 0; i < NNODES; i++)
        ck_assert_int_eq(vs[i].n_owned, 0);
    /* two: a quorum again */
    etcd_start_member(&E, 1, 1);
    double t_quorum = now_s();
    wait_settled(10 * TTL_MS);
    double t_settled = now_s();
    etcd_start_member(&E, 2, 1);
    ck_assert_int_eq(asks_then_epochs_above(epoch_before), NSHARDS);
    printf("  etcd (3 members) killed: last shard seen served %.0f ms after, latest claimed deadline %.0f ms "
           "(bound %.0f ms); all %d shards served again %.0f ms after a quorum was back\n",
           last_served ? (last_served - t_dead) * 1000 : 0.0, claim_max ? (claim_max - t_dead) * 1000 : 0.0,
           (limit - t_dead) * 1000, NSHARDS, (t_settled - t_quorum) * 1000);
    cluster_down();
}
END_TEST

/* Ask "epoch" of key through node i: the epoch its actor ran under (0 = not served). */
static double fence_epoch(int i, const char *key)
{
    char *v = ask_key_ok(i, "fence", key, "epoch");
    double e = strtod(v, NULL);
    axc_free(v);
    return e;
}

START_TEST(fence_epoch_seen_by_a_keyed_actor_never_decreases_across_failover)
{
    const char *key = "dave";
    const uint32_t sh = shard_of(key);
    cluster_up();
    double last = 0, first = 0;
    for (int r = 0; r < 5; r++)
        for (int i = 0; i < NNODES; i++) {
            double e = fence_epoch(i, key);
            ck_assert_msg(e > 0, "served without an epoch");
            ck_assert_msg(e >= last, "epoch went back from %.0f to %.0f", last, e);
            last = e;
            if (!first)
                first = e;
        }
    ck_assert(first == last); /* no failover yet: one epoch */
    double owner_epoch = 0;
    int victim = owner_of(sh, &owner_epoch);
    ck_assert_int_ge(victim, 0);
    ck_assert(owner_epoch == last);
    node_kill(victim);
    /* keep asking from both survivors through the failover */
    int changes = 0;
    double end = now_s() + 15;
    while (now_s() < end) {
        for (int i = 0; i < NNODES; i++) {
            if (!N[i].live)
                continue;
            int rc;
            char *v = ask_key(i, "fence", key, "epoch", 0, &rc);
            if (!v) {
                ck_assert_msg(retryable(rc), "ask through %s: %s", N[i].name, ax_errname(rc));
                continue;
            }
            double e = strtod(v, NULL);
            axc_free(v);
            ck_assert_msg(e >= last, "epoch went back from %.0f to %.0f through %s", last, e, N[i].name);
            changes += e > last;
            last = e;
        }
        if (last > first && changes)
            break;
        sleep_ms(20);
    }
    ck_assert_msg(last > first, "no higher epoch after the failover (%.0f)", last);
    /* the new incarnation of the actor saw only that epoch */
    int survivor = (victim + 1) % NNODES;
    char *h = ask_key_ok(survivor, "fence", key, "hist");
    unsigned long long n, lo, hi, dec;
    ck_assert_int_eq(sscanf(h, "%llu %llu %llu %llu", &n, &lo, &hi, &dec), 4);
    axc_free(h);
    ck_assert_uint_eq(dec, 0);
    ck_assert((double)lo > first);
    ck_assert((double)hi == last);
    printf("  %s: epoch %.0f before the kill of %s, %.0f after\n", key, first, N[victim].name, last);
    cluster_down();
}
END_TEST

START_TEST(a_restarted_owner_serves_its_old_keys_with_only_retryable_errors_meanwhile)
{
    const uint32_t sh = shard_of("erin");
    cluster_up();
    tell_key_ok(0, "counter", "erin", "inc");
    double old_epoch = 0;
    int victim = owner_of(sh, &old_epoch);
    ck_assert_int_ge(victim, 0);
    double t0 = now_s();
    node_kill(victim);
    node_restart(victim); /* a new boot while the old one's leases are still live */
    /* ask through the restarted node and through a survivor: until the old leases
     * expire and the shard is taken again, every error must be one to retry */
    int askers[2] = {victim, (victim + 1) % NNODES}, errs[2] = {0, 0};
    double took[2] = {0, 0};
    for (int k = 0; k < 2; k++) {
        axc_target t = axc_by_key("counter", "erin");
        for (;;) { /* bounded: 15 s */
            void *reply = NULL;
            size_t n = 0;
            int rc = axc_ask(conn(askers[k]), &t, "get", NULL, 0, 1000, &reply, &n);
            axc_free(reply);
            if (rc == 0)
                break;
            errs[k]++;
            ck_assert_msg(retryable(rc), "ask erin through %s%s: %s (%s)", N[askers[k]].name,
                          k ? "" : " (restarted)", ax_errname(rc), axc_errmsg(conn(askers[k])));
            ck_assert_msg(now_s() - t0 < 15, "erin not served 15 s after the restart (last %s)", ax_errname(rc));
            sleep_ms(10);
        }
        took[k] = now_s() - t0;
    }
    double new_epoch = 0;
    ck_assert_int_ge(owner_of(sh, &new_epoch), 0);
    ck_assert(new_epoch > old_epoch);
    printf("  %s restarted: erin answered through it after %.0f ms (%d retryable errors), through %s after %.0f ms\n",
           N[victim].name, took[0] * 1000, errs[0], N[askers[1]].name, took[1] * 1000);
    double end = now_s() + 10;
    while (!mesh_up()) {
        ck_assert_msg(now_s() < end, "the restarted node did not peer within 10 s");
        sleep_ms(50);
    }
    wait_settled(8 * TTL_MS);
    cluster_down();
}
END_TEST

START_TEST(a_paused_owner_resumes_without_serving_the_shards_that_moved)
{
    const uint32_t sh = shard_of("frank");
    cluster_up();
    tell_key_ok(0, "counter", "frank", "inc"); /* frank = 1 on the owner */
    double old_epoch = 0;
    int victim = owner_of(sh, &old_epoch);
    ck_assert_int_ge(victim, 0);
    int other = (victim + 1) % NNODES;
    /* freeze the owner (a long GC pause, a stopped VM): the others take its shards */
    double t0 = now_s();
    ck_assert_int_eq(kill(ax_h_pid(N[victim].d), SIGSTOP), 0);
    N[victim].live = 0; /* not sampled while it cannot answer */
    char *v = ask_key_ok(other, "counter", "frank", "get");
    double took = now_s() - t0;
    ck_assert_str_eq(v, "0");
    axc_free(v);
    /* it wakes up right after the takeover, past its local deadline: it must not serve
     * frank's shard any more */
    ck_assert_int_eq(kill(ax_h_pid(N[victim].d), SIGCONT), 0);
    N[victim].live = 1;
    view vs[NNODES];
    for (int r = 0; r < 40; r++) { /* dense sampling right after the wake-up */
        sample_round(vs);
        sleep_ms(10);
    }
    double end = now_s() + 10;
    while (!mesh_up()) {
        ck_assert_msg(now_s() < end, "the resumed node did not peer again within 10 s");
        sleep_ms(50);
    }
    wait_settled(8 * TTL_MS);
    for (int i = 0; i < NNODES; i++) { /* the frozen node's actor (frank = 1) is gone */
        v = ask_key_ok(i, "counter", "frank", "get");
        ck_assert_msg(!strcmp(v, "0"), "frank through %s: %s, want 0 (the new actor)", N[i].name, v);
        axc_free(v);
    }
    double new_epoch = 0;
    ck_assert_int_ge(owner_of(sh, &new_epoch), 0);
    ck_assert(new_epoch > old_epoch);
    printf("  froze %s: frank served by %s after %.0f ms; after the wake-up no stale owner\n", N[victim].name,
           N[other].name, took * 1000);
    cluster_down();
}
END_TEST


/* ---------------- what keyed actors record (tests/plugins/fence.c "rec") ---------------- */

typedef struct frec {
    int node;       /* index in N, -1 unknown pid */
    char key[64];
    uint64_t epoch;
    double t;       /* CLOCK_MONOTONIC seconds, as now_s() */
} frec;

static char fence_log[512];

static void fence_log_setup(void)
{
    snprintf(fence_log, sizeof fence_log, "%s/fence-%d.log", ax_h_tmpdir(), (int)getpid());
    unlink(fence_log);
    setenv("AX_FENCE_LOG", fence_log, 1); /* inherited by the daemons */
}

static int frec_cmp(const void *a, const void *b)
{
    const frec *x = a, *y = b;
    int k = strcmp(x->key, y->key);
    if (k)
        return k;
    return x->t < y->t ? -1 : x->t > y->t;
}

/* Read every record; pids map to nodes through pids[] (the pid each node had). */
static frec *fence_log_read(const pid_t pids[NNODES], size_t *n)
{
    FILE *f = fopen(fence_log, "r");
    ck_assert_msg(f != NULL, "no fence log %s", fence_log);
    size_t cap = 1024, k = 0;
    frec *v = malloc(cap * sizeof *v);
    long pid;
    char key[64];
    unsigned long long epoch;
    long long ns;
    while (fscanf(f, "%ld %63s %llu %lld", &pid, key, &epoch, &ns) == 4) {
        if (k == cap)
            v = realloc(v, (cap *= 2) * sizeof *v);
        v[k].node = -1;
        for (int i = 0; i < NNODES; i++)
            if (pids[i] == (pid_t)pid)
                v[k].node = i;
        snprintf(v[k].key, sizeof v[k].key, "%s", key);
        v[k].epoch = epoch;
        v[k].t = ns / 1e9;
        k++;
    }
    fclose(f);
    qsort(v, k, sizeof *v, frec_cmp);
    *n = k;
    return v;
}

/* The safety rule, from what the actors did: once a key's shard has been served at epoch E
 * (a message handled at E, so the store had granted E), no message of that key is handled
 * at an epoch below E, nor outside any epoch (0). Returns the violations, printing the
 * first few relative to t_ref. */
static int fence_violations(const frec *v, size_t n, double t_ref)
{
    int bad = 0;
    for (size_t i = 0; i < n;) {
        size_t j = i;
        uint64_t max = 0;
        size_t at_max = i;
        for (; j < n && !strcmp(v[j].key, v[i].key); j++) {
            if (v[j].epoch < max || v[j].epoch == 0) {
                if (bad++ < 5)
                    printf("  VIOLATION key %s: %s handled at epoch %llu at %+.1f ms, after %s handled epoch %llu "
                           "at %+.1f ms\n",
                           v[j].key, v[j].node >= 0 ? N[v[j].node].name : "?", (unsigned long long)v[j].epoch,
                           (v[j].t - t_ref) * 1000, v[at_max].node >= 0 ? N[v[at_max].node].name : "?",
                           (unsigned long long)max, (v[at_max].t - t_ref) * 1000);
            } else if (v[j].epoch > max) {
                max = v[j].epoch;
                at_max = j;
            }
        }
        i = j;
    }
    return bad;
}

/* A steady keyed load: one thread per node, asks "rec KEY" pipelined 16 deep. */
#define LOAD_KEYS 48
typedef struct loader {
    axc_conn *c;
    int idx;
    volatile int stop;
    uint64_t ok, errors;
    pthread_t th;
} loader;

static void *load_main(void *arg)
{
    loader *l = arg;
    unsigned seed = (unsigned)l->idx * 7919u + 1;
    double end = now_s() + 60; /* bounded even if nobody stops it */
    while (!l->stop && now_s() < end && !axc_is_broken(l->c)) {
        for (int d = 0; d < 16; d++) {
            char key[32];
            seed = seed * 1103515245u + 12345u;
            int n = snprintf(key, sizeof key, "load-%u", (seed >> 8) % LOAD_KEYS);
            axc_target t = axc_by_key("fence", key);
            uint32_t id;
            if (axc_send_ask(l->c, &t, "rec", key, (size_t)n, 1000, &id) != 0)
                break;
        }
        axc_flush(l->c);
        axc_result r;
        while (axc_pending(l->c) > 0) {
            int got = axc_poll_result(l->c, 3000, &r);
            if (got < 0)
                break;
            if (got == 0)
                continue;
            if (r.status == 0)
                l->ok++;
            else
                l->errors++;
            axc_free(r.data);
        }
    }
    return NULL;
}

static void loaders_start(loader L[NNODES])
{
    for (int i = 0; i < NNODES; i++) {
        memset(&L[i], 0, sizeof L[i]);
        L[i].idx = i;
        L[i].c = ax_h_connect(N[i].d); /* its own connection: conn(i) stays the test's */
        ck_assert_int_eq(pthread_create(&L[i].th, NULL, load_main, &L[i]), 0);
    }
}

static void loaders_stop(loader L[NNODES])
{
    for (int i = 0; i < NNODES; i++)
        L[i].stop = 1;
    for (int i = 0; i < NNODES; i++) {
        pthread_join(L[i].th, NULL);
        axc_close(L[i].c);
    }
}

START_TEST(a_paused_owner_handles_nothing_at_its_old_epoch_after_sigcont)
{
    fence_log_setup();
    cluster_up();
    pid_t pids[NNODES];
    for (int i = 0; i < NNODES; i++)
        pids[i] = ax_h_pid(N[i].d);
    double e0 = 0;
    int victim = owner_of(shard_of("load-0"), &e0);
    (void)e0;
    ck_assert_int_ge(victim, 0);
    view before;
    view_of(victim, &before); /* the shards it serves when it is first frozen */
    loader L[NNODES];
    loaders_start(L);
    sleep_ms(1000); /* steady load: every node has keyed work queued */
    /* three freezes: where SIGSTOP lands (mid-batch, mid-read, idle) is chance */
    double t_stop = now_s(), t_cont[3];
    for (int r = 0; r < 3; r++) {
        ck_assert_int_eq(kill(pids[victim], SIGSTOP), 0);
        N[victim].live = 0;
        sleep_ms(2200); /* past the ttl: the survivors take its shards */
        t_cont[r] = now_s();
        ck_assert_int_eq(kill(pids[victim], SIGCONT), 0);
        N[victim].live = 1;
        sleep_ms(2500); /* it takes shards again under the load */
    }
    loaders_stop(L);
    size_t n;
    frec *v = fence_log_read(pids, &n);
    size_t after = 0, moved = 0;
    for (size_t i = 0; i < n; i++) {
        uint32_t k = shard_of(v[i].key);
        after += v[i].node == victim && v[i].t >= t_cont[0] && v[i].t < t_cont[0] + 0.5;
        /* a takeover happened (during any of the freezes): the test is about something */
        moved += v[i].node != victim && before.owned[k] && v[i].t > t_stop && v[i].epoch > (uint64_t)before.epoch[k];
    }
    int bad = fence_violations(v, n, t_cont[0]);
    printf("  SIGSTOP %s 3 x 2.2 s under load: %zu records (%llu asks ok, %llu errors), %zu handled by it in the "
           "0.5 s after the first SIGCONT, %zu of its shards by new owners; %d at a superseded epoch\n",
           N[victim].name, n, (unsigned long long)(L[0].ok + L[1].ok + L[2].ok),
           (unsigned long long)(L[0].errors + L[1].errors + L[2].errors), after, moved, bad);
    free(v);
    ck_assert_msg(moved > 0, "no shard of the paused owner was served by another node: no takeover to test");
    ck_assert_msg(bad == 0, "%d messages handled at an epoch after the store had granted a newer one", bad);
    double end = now_s() + 10;
    while (!mesh_up()) {
        ck_assert_msg(now_s() < end, "the resumed node did not peer again within 10 s");
        sleep_ms(50);
    }
    wait_settled(8 * TTL_MS);
    cluster_down();
}
END_TEST

START_TEST(a_handler_busy_past_the_ttl_lets_nothing_after_it_run_at_the_old_epoch)
{
    fence_log_setup();
    cluster_up();
    pid_t pids[NNODES];
    for (int i = 0; i < NNODES; i++)
        pids[i] = ax_h_pid(N[i].d);
    const char *key = "slowpoke";
    char *v0 = ask_key_ok(0, "fence", key, "epoch");
    uint64_t e0 = strtoull(v0, NULL, 10);
    axc_free(v0);
    double e0d;
    int victim = owner_of(shard_of(key), &e0d);
    ck_assert_int_ge(victim, 0);
    int other = (victim + 1) % NNODES;
    /* one burst on the owner's socket: "slow" (busy 2 x ttl), then 10 "rec" queued
     * behind it in the same actor's mailbox, all read in one go before slow runs */
    axc_conn *c = conn(victim);
    axc_target t = axc_by_key("fence", key);
    char slow[64];
    int sl = snprintf(slow, sizeof slow, "%s %d", key, 2 * TTL_MS);
    uint32_t id;
    ck_assert_int_eq(axc_send_ask(c, &t, "slow", slow, (size_t)sl, 20000, &id), 0);
    for (int i = 0; i < 10; i++)
        ck_assert_int_eq(axc_send_ask(c, &t, "rec", key, strlen(key), 20000, &id), 0);
    ck_assert_int_eq(axc_flush(c), 0);
    double t0 = now_s();
    N[victim].live = 0;
    /* meanwhile, through a survivor, until the key is served at a newer epoch */
    int served = 0;
    while (!served && now_s() < t0 + 2.0 * TTL_MS / 1000.0) {
        void *reply = NULL;
        size_t rn = 0;
        int rc = axc_ask(conn(other), &t, "rec", key, strlen(key), 500, &reply, &rn);
        if (rc == 0 && strtoull(reply, NULL, 10) > e0)
            served = 1;
        axc_free(reply);
        if (!served)
            sleep_ms(50);
    }
    double t_new = now_s();
    int ok = 0, refused = 0;
    for (int i = 0; i < 11; i++) {
        axc_result r;
        int got = axc_poll_result(c, 15000, &r);
        ck_assert_int_eq(got, 1);
        if (r.status == 0)
            ok++;
        else
            refused++;
        axc_free(r.data);
    }
    N[victim].live = 1;
    /* what a survivor handled meanwhile is recorded too */
    char *v1 = ask_key_ok(other, "fence", key, "rec");
    axc_free(v1);
    size_t n;
    frec *v = fence_log_read(pids, &n);
    int bad = fence_violations(v, n, t0);
    printf("  slow handler on %s for %d ms: key served at a newer epoch through %s %.0f ms after it began; of "
           "the 11 queued asks %d answered, %d refused; %d handled at a superseded epoch\n",
           N[victim].name, 2 * TTL_MS, N[other].name, (t_new - t0) * 1000, ok, refused, bad);
    free(v);
    ck_assert_msg(served, "the key was not served at a newer epoch during the stall: no takeover to test");
    ck_assert_msg(bad == 0, "%d messages handled at an epoch after the store had granted a newer one", bad);
    double end = now_s() + 10;
    while (!mesh_up()) {
        ck_assert_msg(now_s() < end, "the stalled node did not peer again within 10 s");
        sleep_ms(50);
    }
    wait_settled(8 * TTL_MS);
    cluster_down();
}
END_TEST

/* AX_TEST_ONLY=substring runs only the tests whose names contain it (development). */
#define ADD(fn)                                                                                                   \
    do {                                                                                                          \
        const char *only = getenv("AX_TEST_ONLY");                                                                \
        if (!only || strstr(#fn, only))                                                                           \
            tcase_add_test(t, fn);                                                                                \
    } while (0)
/* A test of Redis itself (restarts, snapshots, a proxy in front of it): not on etcd. */
#define ADD_REDIS(fn)                                                                                             \
    do {                                                                                                          \
        if (!store_etcd())                                                                                        \
            ADD(fn);                                                                                              \
    } while (0)
/* A test of etcd itself (its members killed and restarted): on etcd only. */
#define ADD_ETCD(fn)                                                                                              \
    do {                                                                                                          \
        if (store_etcd())                                                                                         \
            ADD(fn);                                                                                              \
    } while (0)
/* ---------------- a TCP proxy in front of redis, to cut one node from the store ---------------- */

typedef struct proxy {
    int port, lfd, to_port;
    volatile int cut, stop;
    int a[16], b[16]; /* client side, redis side; -1 free */
    pthread_t th;
} proxy;

static void proxy_close_all(proxy *p)
{
    for (int i = 0; i < 16; i++)
        if (p->a[i] >= 0) {
            close(p->a[i]);
            close(p->b[i]);
            p->a[i] = p->b[i] = -1;
        }
}

static void *proxy_main(void *arg)
{
    proxy *p = arg;
    while (!p->stop) {
        if (p->cut)
            proxy_close_all(p);
        struct pollfd fds[33];
        int nf = 0;
        fds[nf++] = (struct pollfd){.fd = p->lfd, .events = POLLIN};
        for (int i = 0; i < 16; i++)
            if (p->a[i] >= 0) {
                fds[nf++] = (struct pollfd){.fd = p->a[i], .events = POLLIN};
                fds[nf++] = (struct pollfd){.fd = p->b[i], .events = POLLIN};
            }
        if (poll(fds, (nfds_t)nf, 20) <= 0)
            continue;
        if (fds[0].revents & POLLIN) {
            int c = accept(p->lfd, NULL, NULL);
            int slot = -1;
            for (int i = 0; i < 16 && slot < 0; i++)
                if (p->a[i] < 0)
                    slot = i;
            if (c >= 0 && (p->cut || slot < 0)) {
                close(c); /* cut: the store is unreachable */
            } else if (c >= 0) {
                struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK),
                                         .sin_port = htons((uint16_t)p->to_port)};
                int r = socket(AF_INET, SOCK_STREAM, 0);
                if (r < 0 || connect(r, (struct sockaddr *)&sa, sizeof sa) != 0) {
                    close(c);
                    if (r >= 0)
                        close(r);
                } else {
                    p->a[slot] = c;
                    p->b[slot] = r;
                }
            }
        }
        for (int k = 1; k < nf; k++) {
            if (!(fds[k].revents & (POLLIN | POLLHUP | POLLERR)))
                continue;
            int from = fds[k].fd, i = 0;
            while (i < 16 && p->a[i] != from && p->b[i] != from)
                i++;
            if (i == 16)
                continue;
            int to = p->a[i] == from ? p->b[i] : p->a[i];
            char buf[16384];
            ssize_t n = read(from, buf, sizeof buf);
            if (n <= 0 || write(to, buf, (size_t)n) != n) {
                close(p->a[i]);
                close(p->b[i]);
                p->a[i] = p->b[i] = -1;
            }
        }
    }
    proxy_close_all(p);
    close(p->lfd);
    return NULL;
}

static proxy PX;
#define CUT_NODE 2

static void proxy_stop(proxy *p)
{
    p->stop = 1;
    pthread_join(p->th, NULL);
}

static void proxy_for_cut_node(void)
{
    proxy *p = &PX;
    memset(p, 0, sizeof *p);
    for (int i = 0; i < 16; i++)
        p->a[i] = p->b[i] = -1;
    p->to_port = R.port;
    p->port = free_port();
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK),
                             .sin_port = htons((uint16_t)p->port)};
    p->lfd = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    setsockopt(p->lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    ck_assert_int_eq(bind(p->lfd, (struct sockaddr *)&sa, sizeof sa), 0);
    ck_assert_int_eq(listen(p->lfd, 16), 0);
    ck_assert_int_eq(pthread_create(&p->th, NULL, proxy_main, p), 0);
    N[CUT_NODE].store_port = p->port;
}

START_TEST(a_node_cut_from_the_store_but_not_its_peers_loses_its_shards_to_the_others)
{
    before_nodes = proxy_for_cut_node;
    cluster_up();
    before_nodes = NULL;
    const int v = CUT_NODE;
    view vs[NNODES];
    view_of(v, &vs[v]);
    /* keys of the cut node's shards, and their epochs there */
    char keys[10][32];
    int nk = 0;
    for (int i = 0; i < 2000 && nk < 10; i++) {
        char k[32];
        snprintf(k, sizeof k, "cut-%d", i);
        if (vs[v].owned[shard_of(k)])
            snprintf(keys[nk++], sizeof keys[0], "%s", k);
    }
    ck_assert_int_gt(nk, 0);
    for (int i = 0; i < nk; i++)
        tell_key_ok(v, "counter", keys[i], "inc");
    double t0 = now_s();
    PX.cut = 1; /* node-c keeps its peers, loses redis */
    /* every key is served again, by a node that reaches the store, within the failover
     * bound: ttl (its last renew) + renew interval (seen as store-less) + the acquire poll */
    double bound = (TTL_MS + 2 * RENEW_MS) / 1000.0 + 1.0, last = 0;
    int moved = 0;
    while (!moved) { /* sampled: never two owners, and until every such shard moved */
        view now[NNODES];
        sample_round(now);
        moved = 1;
        for (int i = 0; i < nk; i++) {
            uint32_t k = shard_of(keys[i]);
            if (!now[(v + 1) % NNODES].owned[k] && !now[(v + 2) % NNODES].owned[k])
                moved = 0;
        }
        last = now_s() - t0;
        ck_assert_msg(moved || last < bound + 5, "the cut node's shards did not move within %.0f ms",
                      (bound + 5) * 1000);
        if (!moved)
            sleep_ms(20);
    }
    ck_assert_msg(last <= bound, "the cut node's shards were served again after %.0f ms (bound %.0f ms)",
                  last * 1000, bound * 1000);
    int other = (v + 1) % NNODES;
    for (int i = 0; i < nk; i++) { /* a new actor on the new owner: the count starts over */
        char *r = ask_key_ok(other, "counter", keys[i], "get");
        ck_assert_str_eq(r, "0");
        axc_free(r);
    }
    view_of(v, &vs[v]);
    ck_assert_int_eq(vs[v].n_owned, 0);
    /* healed: it reaches the store again and gets its share back by handover */
    PX.cut = 0;
    wait_settled(10 * TTL_MS);
    view_of(v, &vs[v]);
    ck_assert_int_gt(vs[v].n_owned, 0);
    printf("  %s cut from redis: its %d keys served by the others after %.0f ms at most (bound %.0f ms); "
           "healed, it serves %d shards again\n",
           N[v].name, nk, last * 1000, bound * 1000, vs[v].n_owned);
    cluster_down();
    proxy_stop(&PX);
}
END_TEST


START_TEST(a_handover_stops_the_keyed_actors_with_reason_handover)
{
    char stoplog[512];
    snprintf(stoplog, sizeof stoplog, "%s/stops-%d.log", ax_h_tmpdir(), (int)getpid());
    unlink(stoplog);
    setenv("AX_FENCE_STOPLOG", stoplog, 1);
    cluster_up_n(2); /* node-a and node-b hold every shard */
    pid_t pa = ax_h_pid(N[0].d), pb = ax_h_pid(N[1].d);
    for (int i = 0; i < 200; i++) {
        char k[32];
        snprintf(k, sizeof k, "ho-%d", i);
        char *v = ask_key_ok(i % 2, "fence", k, "epoch");
        axc_free(v);
    }
    /* node-c joins: a and b hand shards over to it */
    N[2].d = ax_h_start(node_args(&N[2]));
    N[2].live = 1;
    double end = now_s() + 10;
    while (!mesh_up()) {
        ck_assert_msg(now_s() < end, "node-c did not peer within 10 s");
        sleep_ms(50);
    }
    wait_settled(8 * TTL_MS);
    FILE *f = fopen(stoplog, "r");
    ck_assert_msg(f != NULL, "no actor stopped (no %s)", stoplog);
    long pid;
    char key[80], reason[80];
    int handover = 0, other = 0;
    while (fscanf(f, "%ld %79s %79s", &pid, key, reason) == 3) {
        if (pid != pa && pid != pb)
            continue;
        if (!strcmp(reason, "handover"))
            handover++;
        else if (other++ < 5)
            printf("  %s stopped with reason %s\n", key, reason);
    }
    fclose(f);
    unsetenv("AX_FENCE_STOPLOG");
    printf("  node-c joined: %d keyed actors stopped by the handover with reason handover, %d otherwise\n",
           handover, other);
    ck_assert_int_gt(handover, 0);
    ck_assert_msg(other == 0, "%d actors stopped by the handover saw another reason than handover", other);
    cluster_down();
}
END_TEST

/* ---------------- a Redis that comes back with older data ---------------- */

/* SAVE through a raw connection (the RDB lands in R.dir/dump.rdb). */
static void redis_save(void)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK),
                             .sin_port = htons((uint16_t)R.port)};
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    ck_assert_int_eq(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    const char cmd[] = "*1\r\n$4\r\nSAVE\r\n";
    ck_assert_int_eq(write(fd, cmd, sizeof cmd - 1), (ssize_t)(sizeof cmd - 1));
    char buf[64];
    struct pollfd pf = {.fd = fd, .events = POLLIN};
    ck_assert_int_eq(poll(&pf, 1, 5000), 1);
    ssize_t n = read(fd, buf, sizeof buf - 1);
    ck_assert_int_gt(n, 0);
    buf[n] = 0;
    ck_assert_msg(!strncmp(buf, "+OK", 3), "SAVE: %s", buf);
    close(fd);
}

static void copy_file(const char *from, const char *to)
{
    FILE *a = fopen(from, "rb"), *b = fopen(to, "wb");
    ck_assert_msg(a && b, "copy %s -> %s", from, to);
    char buf[65536];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, a)) > 0)
        ck_assert_uint_eq(fwrite(buf, 1, n, b), n);
    fclose(a);
    fclose(b);
}

START_TEST(redis_restored_from_an_older_snapshot_never_lets_two_nodes_serve_one_epoch)
{
    fence_log_setup();
    cluster_up();
    loader L[NNODES];
    loaders_start(L);
    sleep_ms(800);
    /* the snapshot that Redis will come back with */
    char rdb[128], old[128];
    snprintf(rdb, sizeof rdb, "%s/dump.rdb", R.dir);
    snprintf(old, sizeof old, "%s/old.rdb", R.dir);
    redis_save();
    copy_file(rdb, old);
    /* the epochs move on after it: node-b dies (its shards move), comes back (they move
     * again, by handover) */
    L[1].stop = 1;
    pthread_join(L[1].th, NULL);
    axc_close(L[1].c);
    node_kill(1);
    wait_settled(8 * TTL_MS);
    node_restart(1);
    double end = now_s() + 10;
    while (!mesh_up()) {
        ck_assert_msg(now_s() < end, "node-b did not peer again within 10 s");
        sleep_ms(50);
    }
    wait_settled(8 * TTL_MS);
    L[1].stop = 0;
    L[1].c = ax_h_connect(N[1].d);
    ck_assert_int_eq(pthread_create(&L[1].th, NULL, load_main, &L[1]), 0);
    sleep_ms(500);
    /* Redis dies and comes back on the old snapshot: its epoch counters went back */
    double t_regress = now_s();
    redis_kill(&R, SIGKILL);
    copy_file(old, rdb);
    redis_start(&R);
    sleep_ms(4 * TTL_MS); /* under load: renews refused, shards acquired again */
    loaders_stop(L);
    wait_settled(10 * TTL_MS);
    /* what the actors did: never one (shard, epoch) on two nodes, never an epoch going back */
    size_t n;
    pid_t nopids[NNODES] = {0}; /* node-b had two pids: records are told apart by pid */
    frec *v = fence_log_read(nopids, &n);
    int dup = 0;
    typedef struct { uint32_t shard; uint64_t epoch; long pid; } se;
    size_t cap = 4096, ns = 0;
    se *seen = malloc(cap * sizeof *seen);
    FILE *f = fopen(fence_log, "r");
    ck_assert_ptr_nonnull(f);
    long pid;
    char key[64];
    unsigned long long epoch;
    long long ns_t;
    while (fscanf(f, "%ld %63s %llu %lld", &pid, key, &epoch, &ns_t) == 4) {
        uint32_t sh = shard_of(key);
        size_t k = 0;
        while (k < ns && !(seen[k].shard == sh && seen[k].epoch == epoch))
            k++;
        if (k == ns) {
            if (ns == cap)
                seen = realloc(seen, (cap *= 2) * sizeof *seen);
            seen[ns++] = (se){sh, epoch, pid};
        } else if (seen[k].pid != pid) {
            if (dup++ < 5)
                printf("  VIOLATION shard %u epoch %llu handled by pid %ld and pid %ld\n", sh, epoch, seen[k].pid,
                       pid);
        }
    }
    fclose(f);
    free(seen);
    int bad = fence_violations(v, n, t_regress);
    free(v);
    double regressions = 0;
    for (int i = 0; i < NNODES; i++) {
        cJSON *doc = doc_of(i, axc_status, "status");
        cJSON *st = cJSON_GetObjectItem(doc, "lease_store");
        cJSON *rg = st ? cJSON_GetObjectItem(st, "regressions") : NULL;
        regressions += cJSON_IsNumber(rg) ? rg->valuedouble : 0;
        cJSON_Delete(doc);
    }
    printf("  redis restored from a snapshot taken before 2 rounds of failover and handover: %zu records, %zu "
           "(shard, epoch) pairs, %d messages at a pair another node had, %d out of order; %.0f regressions detected\n",
           n, ns, dup, bad, regressions);
    ck_assert_msg(dup == 0, "%d messages were handled at a (shard, epoch) another node had handled", dup);
    ck_assert_msg(bad == 0, "%d messages handled at an epoch older than one already served", bad);
    ck_assert_msg(regressions > 0, "no node noticed that the store went back");
    cluster_down();
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("cluster_shards");
    TCase *t = tcase_create("shards");
    tcase_set_timeout(t, 120);
    ADD(keyed_counters_are_reachable_from_every_node);
    ADD(sigkill_owner_then_key_is_served_by_a_survivor_within_ttl_plus_1s_with_higher_epoch);
    ADD_REDIS(redis_restart_nodes_recover_without_double_ownership);
    ADD_ETCD(all_etcd_members_killed_nodes_stop_before_their_deadline_and_resume_after_a_restart);
    ADD(fence_epoch_seen_by_a_keyed_actor_never_decreases_across_failover);
    ADD(a_restarted_owner_serves_its_old_keys_with_only_retryable_errors_meanwhile);
    ADD(a_paused_owner_resumes_without_serving_the_shards_that_moved);
    ADD(a_paused_owner_handles_nothing_at_its_old_epoch_after_sigcont);
    ADD(a_handler_busy_past_the_ttl_lets_nothing_after_it_run_at_the_old_epoch);
    ADD_REDIS(a_node_cut_from_the_store_but_not_its_peers_loses_its_shards_to_the_others);
    ADD(a_handover_stops_the_keyed_actors_with_reason_handover);
    ADD_REDIS(redis_restored_from_an_older_snapshot_never_lets_two_nodes_serve_one_epoch);
    suite_add_tcase(s, t);
    return s;
}

int main(void) { return cluster_suite_main(suite, NULL, NULL); }
