/* Durable keyed actors across real processes: three axactord sharing one redis-server
 * (appendonly yes, appendfsync always) as lease and state store, the ledger example
 * plugin (plugins/ledger.c: each "add" ask carries a unique id, the actor keeps the set)
 * and the dfence test type (tests/plugins/fence.c). Proves: no acknowledged add is lost
 * across ten SIGKILLs of owners under pipelined load, nor across a Redis restart, nor a
 * graceful handover (which also fences nothing); a paused former owner's write is refused
 * by the store (its asker gets ESTALE, the actor stops "fenced") and the newer owner's
 * state stays; a Redis that lost its data is logged and epochs still grow; axctl forget
 * deletes a record; with state.store = redis the state lives in a Redis of its own,
 * fenced there by epoch fences, and survives SIGKILLs the same way. Skips (77) without redis-server. */
#include <check.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <hiredis/hiredis.h>

#include "shards_test_util.h"

#include "ledger_loader.h"

/* The three nodes on a Redis with its append-only file fsynced at every write, and the
 * loader adding through node-a until 200 adds were acknowledged. */
static void cluster_up_under_load(loader *L)
{
    cluster_redis_aof = 1;
    cluster_up();
    loader_start(L, 0, 1);
    wait_acked(L, 0, 200, 10000);
}

/* ---------------- tests ---------------- */

START_TEST(no_acked_add_is_lost_across_ten_sigkills_of_the_owner)
{
    loader L;
    cluster_up_under_load(&L);
    for (int round = 0; round < 10; round++) {
        int victim = 1 + round % 2; /* node-a carries the load; b and c die in turn */
        size_t before = total_acked(&L);
        node_kill(victim);
        wait_settled(6 * TTL_MS);
        wait_acked(&L, before, 50, 10000); /* served again: the load goes on elsewhere */
        node_restart(victim);
        wait_settled(6 * TTL_MS);
        wait_acked(&L, total_acked(&L), 50, 10000);
    }
    loader_stop(&L);
    size_t checked = check_no_acked_add_lost(0, &L);
    double loads = 0, found = 0, fenced = 0;
    for (int i = 0; i < NNODES; i++) {
        loads += state_ctr(i, "loads");
        found += state_ctr(i, "loads_found");
        fenced += state_ctr(i, "fenced");
    }
    printf("  10 SIGKILLs under %d pipelined adds: %zu acknowledged adds all in the state (%llu sent, %llu "
           "errors); state loads since the last restarts %.0f (%.0f found), fenced %.0f\n",
           WINDOW, checked, (unsigned long long)L.sent, (unsigned long long)L.errors, loads, found, fenced);
    ck_assert_uint_gt(checked, 1000);
    loader_free(&L);
    cluster_down();
}
END_TEST

/* Is process pid stopped (state T in /proc/pid/stat)? */
static int proc_stopped(pid_t pid)
{
    char path[64], buf[512];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    const char *p = strrchr(buf, ')');
    return p && (p[2] == 'T' || p[2] == 't');
}

START_TEST(a_paused_former_owner_cannot_overwrite_the_newer_owners_state)
{
    cluster_redis_aof = 1;
    cluster_up();
    /* a key owned by node b or c, asked through the other two */
    const char *key = NULL;
    char kb[32];
    int owner = -1;
    for (int k = 0; k < 200 && owner < 1; k++) {
        snprintf(kb, sizeof kb, "reg-%d", k);
        double ep;
        owner = owner_of(shard_of(kb), &ep);
        key = kb;
    }
    ck_assert_int_ge(owner, 1);
    int other = owner == 1 ? 2 : 1;
    char *v;
    axc_target t = axc_by_key("dfence", key);
    void *reply = NULL;
    size_t rn = 0;
    ck_assert_int_eq(axc_ask(conn(0), &t, "set", "1", 1, 2000, &reply, &rn), 0);
    axc_free(reply);
    /* the owner's handler of pause_set 2 stops the whole daemon before it changes anything */
    axc_conn *oc = ax_h_connect(N[owner].d);
    uint32_t req;
    ck_assert_int_eq(axc_send_ask(oc, &t, "pause_set", "2", 1, 30000, &req), 0);
    ck_assert_int_eq(axc_flush(oc), 0);
    pid_t pid = ax_h_pid(N[owner].d);
    for (int i = 0; i < 500 && !proc_stopped(pid); i++) /* bounded: 5 s */
        sleep_ms(10);
    ck_assert_msg(proc_stopped(pid), "the owner did not stop itself in the handler");
    /* past its lease: the others take the shard, and the newer owner writes 3 */
    double t0 = now_s(), ep = 0;
    int now_owner = -1;
    N[owner].live = 0;
    while ((now_owner = owner_of(shard_of(key), &ep)) < 0 || now_owner == owner) {
        ck_assert_msg(now_s() - t0 < 4.0 * TTL_MS / 1000, "nobody took the shard of the paused owner");
        sleep_ms(50);
    }
    int rc;
    reply = NULL;
    for (int i = 0; i < 200; i++) { /* bounded: retryable errors while the shard moves */
        rc = axc_ask(conn(other == now_owner ? 0 : other), &t, "set", "3", 1, 2000, &reply, &rn);
        if (!retryable(rc))
            break;
        axc_free(reply);
        reply = NULL;
        sleep_ms(50);
    }
    ck_assert_msg(rc == 0, "set 3 through the survivors: %s", ax_errname(rc));
    axc_free(reply);
    /* wake the former owner: its handler goes on, sets 2, and its write at the old epoch is refused */
    ck_assert_int_eq(kill(pid, SIGCONT), 0);
    N[owner].live = 1;
    axc_result r = {0};
    int got = 0;
    for (int i = 0; i < 100 && got != 1; i++) /* bounded: 10 s */
        got = axc_poll_result(oc, 100, &r);
    ck_assert_int_eq(got, 1);
    ck_assert_msg(r.status == AX_ESTALE, "the paused owner's pause_set answered %s (%s), want ESTALE",
                  ax_errname(r.status), r.data ? (char *)r.data : "");
    axc_free(r.data);
    axc_close(oc);
    ck_assert_msg(ax_h_wait_log(N[owner].d, "refused (fenced", 5000), "no fenced write in the paused owner's log");
    ck_assert_double_ge(state_ctr(owner, "fenced"), 1);
    /* the newer state is intact, wherever the shard is served now */
    for (int i = 0; i < NNODES; i++) {
        v = ask_key_ok(i, "dfence", key, "get");
        ck_assert_msg(!strcmp(v, "3"), "%s through %s: %s, want 3 (the newer owner's write)", key, N[i].name, v);
        axc_free(v);
    }
    printf("  paused owner %s resumed: its write at the old epoch was refused (ESTALE); the state is 3\n",
           N[owner].name);
    cluster_down();
}
END_TEST

START_TEST(a_redis_restart_loses_no_acked_write_and_a_redis_that_lost_its_data_is_logged)
{
    loader L;
    cluster_up_under_load(&L);
    redis_kill(&R, SIGKILL); /* every acknowledged write was fsynced (appendfsync always) */
    sleep_ms(500);
    redis_start(&R); /* the same dir: it reads its append-only file back */
    size_t before = total_acked(&L);
    wait_settled(8 * TTL_MS);
    wait_acked(&L, before, 200, 15000);
    loader_stop(&L);
    size_t checked = check_no_acked_add_lost(0, &L);
    printf("  redis SIGKILLed and restarted under load: %zu acknowledged adds all in the state (%llu errors)\n",
           checked, (unsigned long long)L.errors);
    /* now a Redis that lost everything: epochs never go backwards and the loss is logged */
    double before_ep[NSHARDS];
    view v;
    for (int k = 0; k < NSHARDS; k++)
        before_ep[k] = 0;
    for (int i = 0; i < NNODES; i++) {
        view_of(i, &v);
        for (int k = 0; k < NSHARDS; k++)
            if (v.owned[k])
                before_ep[k] = v.epoch[k];
    }
    redis_kill(&R, SIGKILL);
    char cmd[160];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'/*", R.dir);
    ck_assert_int_eq(system(cmd), 0);
    redis_start(&R);
    /* the owners lose their leases at their next renew, a quarantine of one ttl follows,
     * then every shard is served again: each at an epoch above the one before */
    double end = now_s() + 12.0 * TTL_MS / 1000;
    for (;;) {
        int above = 0;
        for (int i = 0; i < NNODES; i++) {
            view_of(i, &v);
            for (int k = 0; k < NSHARDS; k++)
                above += v.owned[k] && v.epoch[k] > before_ep[k];
        }
        if (above == NSHARDS)
            break;
        ck_assert_msg(now_s() < end, "after the data loss only %d of %d shards are served again", above, NSHARDS);
        sleep_ms(100);
    }
    wait_settled(4 * TTL_MS); /* and never two owners, never an epoch going back (the sampler) */
    int logged = 0;
    for (int i = 0; i < NNODES; i++)
        logged += strstr(ax_h_log(N[i].d), "LEASE STORE LOST ITS DATA") != NULL;
    ck_assert_msg(logged > 0, "no node logged that the store lost its data");
    loader_free(&L);
    cluster_down();
}
END_TEST

START_TEST(a_graceful_handover_moves_the_state_with_no_lost_and_no_fenced_write)
{
    loader L;
    cluster_up_under_load(&L);
    double fenced_before = state_ctr(0, "fenced");
    for (int round = 0; round < 2; round++) {
        int victim = 1 + round;
        /* SIGTERM: its shards are handed over (and it must fence none of its own writes) */
        ck_assert_int_eq(kill(ax_h_pid(N[victim].d), SIGTERM), 0);
        int status = -1;
        for (int i = 0; i < 1000 && !ax_h_exited(N[victim].d, &status); i++) /* bounded: 10 s */
            sleep_ms(10);
        ck_assert_msg(status == 0, "%s did not exit cleanly on SIGTERM (status %d)", N[victim].name, status);
        const char *log = ax_h_log(N[victim].d);
        ck_assert_msg(!strstr(log, "refused (fenced"), "%s fenced its own writes while handing over:\n%s",
                      N[victim].name, log);
        ax_h_destroy(N[victim].d);
        N[victim].d = NULL;
        N[victim].live = 0;
        axc_close(N[victim].c);
        N[victim].c = NULL;
        size_t before = total_acked(&L);
        wait_settled(6 * TTL_MS);
        wait_acked(&L, before, 100, 10000);
        N[victim].d = ax_h_start(node_args(&N[victim]));
        N[victim].live = 1;
        wait_settled(8 * TTL_MS); /* the fair share: shards move back by handover */
        wait_acked(&L, total_acked(&L), 100, 10000);
    }
    loader_stop(&L);
    size_t checked = check_no_acked_add_lost(0, &L);
    double fenced = state_ctr(0, "fenced") - fenced_before;
    for (int i = 1; i < NNODES; i++)
        fenced += state_ctr(i, "fenced");
    printf("  2 graceful handovers (and back) under load: %zu acknowledged adds all in the state; fenced "
           "writes %.0f\n",
           checked, fenced);
    ck_assert_msg(fenced == 0, "%.0f writes were fenced during graceful handovers", fenced);
    loader_free(&L);
    cluster_down();
}
END_TEST

/* ---- state.store = redis: durable state in a Redis of its own ---- */

static redis_proc R2;

static size_t state_redis_args(node *n, size_t k)
{
    snprintf(n->args[k++], sizeof n->args[0], "--set");
    snprintf(n->args[k++], sizeof n->args[0], "state.store=redis");
    snprintf(n->args[k++], sizeof n->args[0], "--set");
    snprintf(n->args[k++], sizeof n->args[0], "state.redis_port=%d", R2.port);
    snprintf(n->args[k++], sizeof n->args[0], "--set");
    snprintf(n->args[k++], sizeof n->args[0], "state.redis_prefix=st:");
    return k;
}

/* Keys of a redis-server matching pattern. */
static long long count_keys(const redis_proc *r, const char *pattern)
{
    redisContext *c = redisConnect("127.0.0.1", r->port);
    ck_assert(c && !c->err);
    redisReply *rr = redisCommand(c, "KEYS %s", pattern);
    ck_assert(rr && rr->type == REDIS_REPLY_ARRAY);
    long long n = (long long)rr->elements;
    freeReplyObject(rr);
    redisFree(c);
    return n;
}

START_TEST(a_state_redis_of_its_own_keeps_every_acked_write_across_sigkills)
{
    redis_up_aof(&R2, NULL, 1);
    node_extra_args = state_redis_args;
    loader L;
    cluster_up_under_load(&L);
    for (int round = 0; round < 2; round++) {
        int victim = 1 + round;
        size_t before = total_acked(&L);
        node_kill(victim);
        wait_settled(6 * TTL_MS);
        wait_acked(&L, before, 50, 10000);
        node_restart(victim);
        wait_settled(6 * TTL_MS);
    }
    loader_stop(&L);
    size_t checked = check_no_acked_add_lost(0, &L);
    long long in_state = count_keys(&R2, "st:state:*"), fences = count_keys(&R2, "st:fence:*"),
              in_lease = count_keys(&R, "*state:*");
    printf("  state in a Redis of its own, 2 SIGKILLs under load: %zu acknowledged adds all in the state; %lld "
           "state hashes and %lld fences there, %lld state keys in the lease Redis\n",
           checked, in_state, fences, in_lease);
    ck_assert_int_gt(in_state, 0);
    ck_assert_int_gt(fences, 0);
    ck_assert_int_eq(in_lease, 0);
    ck_assert_uint_gt(checked, 200);
    loader_free(&L);
    cluster_down();
    node_extra_args = NULL;
    redis_down(&R2);
}
END_TEST

START_TEST(axctl_forget_deletes_a_record)
{
    cluster_redis_aof = 0;
    cluster_up();
    axc_target t = axc_by_key("dfence", "forget-me");
    void *reply = NULL;
    size_t rn = 0;
    ck_assert_int_eq(axc_ask(conn(1), &t, "set", "42", 2, 2000, &reply, &rn), 0);
    axc_free(reply);
    const char *argv[] = {ax_h_build_path("libaxclient/axctl"), "-s", ax_h_sock(N[2].d), "forget", "dfence",
                          "forget-me", NULL};
    char *out = NULL, *err = NULL;
    int st = ax_h_run(argv, &out, &err, 10000);
    ck_assert_msg(st == 0, "axctl forget: status %d: %s%s", st, out, err);
    free(out);
    free(err);
    char *v = ask_key_ok(0, "dfence", "forget-me", "get");
    ck_assert_msg(!strcmp(v, "0"), "after forget: %s, want 0 (a fresh actor)", v);
    axc_free(v);
    /* a type that is not durable has no record to forget */
    const char *argv2[] = {ax_h_build_path("libaxclient/axctl"), "-s", ax_h_sock(N[0].d), "forget", "counter",
                           "c1", NULL};
    st = ax_h_run(argv2, &out, &err, 10000);
    ck_assert_msg(st != 0 && (strstr(err, "has no message '$forget'") || strstr(err, "no handler for this message")),
                  "axctl forget of a counter: status %d: %s%s", st, out, err);
    free(out);
    free(err);
    cluster_down();
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("durable");
    TCase *t = tcase_create("durable");
    tcase_set_timeout(t, 240);
    tcase_add_test(t, no_acked_add_is_lost_across_ten_sigkills_of_the_owner);
    tcase_add_test(t, a_paused_former_owner_cannot_overwrite_the_newer_owners_state);
    if (!store_etcd()) /* tests of Redis itself */
        tcase_add_test(t, a_redis_restart_loses_no_acked_write_and_a_redis_that_lost_its_data_is_logged);
    tcase_add_test(t, a_graceful_handover_moves_the_state_with_no_lost_and_no_fenced_write);
    tcase_add_test(t, axctl_forget_deletes_a_record);
    if (!store_etcd())
        tcase_add_test(t, a_state_redis_of_its_own_keeps_every_acked_write_across_sigkills);
    suite_add_tcase(s, t);
    return s;
}

int main(void) { return cluster_suite_main(suite, NULL, NULL); }
