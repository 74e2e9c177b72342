/* Draining a node (issue 13, item 2): three real axactord on one redis-server, durable
 * ledger actors (plugins/ledger.c) under pipelined load through the other two nodes.
 * SIGTERM and `axctl drain` hand every shard of the node over while the load runs: no
 * ask fails (the messages for a shard in handover wait for its next owner, those queued
 * at the old owner are handed back to it), no acknowledged add is lost, no write is
 * fenced, and the survivors take the released shards at once (not after an acquire
 * interval). `axctl drain --stay` leaves the node up, holding no shard and still routing
 * its clients' asks; `axctl undrain` lets it take its share again. Skips (77) without
 * redis-server. */
#include <check.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "shards_test_util.h"
#include "ledger_loader.h"

/* the acquire interval is long here: a shard taken within it was taken because of the
 * release notice, not found free by a periodic round */
static size_t slow_acquire_args(node *n, size_t k)
{
    (void)n;
    snprintf(n->args[k++], sizeof n->args[0], "--set");
    snprintf(n->args[k++], sizeof n->args[0], "lease.acquire_interval_ms=5000");
    return k;
}

/* Loaders through node-a and node-c (and node-b when n is 3), each its own ids. */
static void loaders_up(loader *L, int n)
{
    static const int via[3] = {0, 2, 1};
    node_extra_args = slow_acquire_args;
    cluster_redis_aof = 1;
    cluster_up();
    for (int i = 0; i < n; i++)
        loader_start(&L[i], via[i], 1 + (uint64_t)i * 1000000000ULL);
    for (int i = 0; i < n; i++)
        wait_acked(&L[i], 0, 200, 10000);
}

static double fenced_total(void)
{
    double f = 0;
    for (int i = 0; i < NNODES; i++)
        if (N[i].live)
            f += state_ctr(i, "fenced");
    return f;
}

/* Stop the loaders; every ask answered OK, every acknowledged add in the state. */
static void loaders_check(loader *L, int n, const char *what)
{
    uint64_t sent = 0, errors = 0;
    size_t checked = 0;
    for (int i = 0; i < n; i++)
        loader_stop(&L[i]);
    for (int i = 0; i < n; i++) {
        checked += check_no_acked_add_lost(0, &L[i]);
        sent += L[i].sent;
        errors += L[i].errors;
    }
    printf("  %s: %llu asks sent through %d nodes, %llu failed; %zu acknowledged adds all in the state\n", what,
           (unsigned long long)sent, n, (unsigned long long)errors, checked);
    for (int i = 0; i < n; i++)
        ck_assert_msg(L[i].errors == 0, "%s: %llu asks through %s failed (the first with %s)", what,
                      (unsigned long long)L[i].errors, N[L[i].node].name, ax_errname(L[i].first_error));
    for (int i = 0; i < n; i++)
        loader_free(&L[i]);
}

/* axctl against node i; returns its exit status, *out its standard output (free). */
static int axctl(int i, const char *a1, const char *a2, const char *a3, char **out)
{
    const char *argv[] = {ax_h_build_path("libaxclient/axctl"), "-s", ax_h_sock(N[i].d), a1, a2, a3, NULL};
    char *err = NULL;
    int st = ax_h_run(argv, out, &err, 30000);
    if (st)
        printf("  axctl %s on %s: status %d, stderr: %s\n", a1, N[i].name, st, err ? err : "");
    free(err);
    return st;
}

/* The daemon's own account of its drain ("drain done in ..."), or "". */
static const char *drain_line(int i, char *buf, size_t len)
{
    const char *p = strstr(ax_h_log(N[i].d), "drain done in");
    if (!p)
        p = strstr(ax_h_log(N[i].d), "drain timed out");
    size_t n = 0;
    while (p && p[n] && p[n] != '\n' && n + 1 < len)
        n++;
    snprintf(buf, len, "%.*s", (int)n, p ? p : "");
    return buf;
}

static void wait_exit_ok(int i, int timeout_ms)
{
    int status = -1;
    for (int t = 0; t < timeout_ms / 10 && !ax_h_exited(N[i].d, &status); t++)
        sleep_ms(10);
    ck_assert_msg(status == 0, "%s did not exit cleanly (status %d):\n%s", N[i].name, status, ax_h_log(N[i].d));
    char line[256];
    printf("  %s: %s\n", N[i].name, drain_line(i, line, sizeof line));
    ck_assert_msg(strstr(line, "drain done"), "%s did not finish its drain:\n%s", N[i].name, ax_h_log(N[i].d));
    ck_assert_msg(!strstr(ax_h_log(N[i].d), "refused (fenced"), "%s fenced its own writes while draining",
                  N[i].name);
    axc_close(N[i].c);
    N[i].c = NULL;
    N[i].live = 0;
}

/* Both survivors serve every shard between them within `ms` of the drain's end. */
static double wait_two_serve_all(int ms)
{
    double t0 = now_s(), end = t0 + ms / 1000.0;
    view vs[NNODES];
    while (sample_round(vs) != NSHARDS) {
        if (now_s() >= end) {
            for (int i = 0; i < NNODES; i++) /* what each node thinks, for the failure's reader */
                if (N[i].live) {
                    cJSON *doc = doc_of(i, axc_shards, "shards");
                    char *txt = cJSON_PrintUnformatted(doc);
                    printf("  %s: %s\n", N[i].name, txt);
                    free(txt);
                    cJSON_Delete(doc);
                }
            ck_abort_msg("the survivors did not take every shard within %d ms", ms);
        }
        sleep_ms(10);
    }
    return (now_s() - t0) * 1000.0;
}

START_TEST(sigterm_hands_every_shard_over_under_load_with_no_failed_ask)
{
    loader L[2];
    loaders_up(L, 2);
    double fenced0 = fenced_total();
    view v;
    view_of(1, &v);
    ck_assert_int_gt(v.n_owned, 0);
    ck_assert_int_eq(kill(ax_h_pid(N[1].d), SIGTERM), 0);
    wait_exit_ok(1, 20000);
    /* a release notice makes the survivors take the shards now, not in 5 s */
    double ms = wait_two_serve_all(3000);
    size_t before = total_acked(&L[0]) + total_acked(&L[1]);
    wait_acked(&L[0], total_acked(&L[0]), 100, 10000);
    wait_acked(&L[1], total_acked(&L[1]), 100, 10000);
    printf("  SIGTERM of node-b (%d shards): every shard served again %.0f ms after it exited; %zu adds "
           "acknowledged before\n",
           v.n_owned, ms, before);
    double fenced = fenced_total() - fenced0;
    loaders_check(L, 2, "SIGTERM drain");
    ck_assert_msg(fenced == 0, "%.0f writes were fenced in the drain", fenced);
    cluster_down();
}
END_TEST

START_TEST(axctl_drain_hands_every_shard_over_then_the_daemon_stops)
{
    loader L[2];
    loaders_up(L, 2);
    double fenced0 = fenced_total();
    char *out = NULL;
    int st = axctl(1, "drain", "--timeout", "15000", &out);
    ck_assert_msg(st == 0, "axctl drain: exit status %d, output: %s", st, out ? out : "");
    printf("  axctl drain: %s", out);
    ck_assert_msg(strstr(out, "drained in") && strstr(out, "shard(s) handed over") && strstr(out, "the daemon stops"),
                  "axctl drain said: %s", out);
    free(out);
    wait_exit_ok(1, 10000);
    double ms = wait_two_serve_all(3000);
    printf("  every shard served again %.0f ms after node-b exited\n", ms);
    wait_acked(&L[0], total_acked(&L[0]), 100, 10000);
    wait_acked(&L[1], total_acked(&L[1]), 100, 10000);
    double fenced = fenced_total() - fenced0;
    loaders_check(L, 2, "axctl drain");
    ck_assert_msg(fenced == 0, "%.0f writes were fenced in the drain", fenced);
    cluster_down();
}
END_TEST

/* node-a's view of node-b: "draining" in its peer entry */
static int peer_draining(int i, const char *name)
{
    cJSON *doc = doc_of(i, axc_nodes, "nodes"), *p;
    int d = -1;
    cJSON_ArrayForEach(p, cJSON_GetObjectItem(doc, "peers"))
    if (!strcmp(str(p, "name"), name))
        d = cJSON_IsTrue(cJSON_GetObjectItem(p, "draining"));
    cJSON_Delete(doc);
    return d;
}

START_TEST(drain_stay_keeps_the_node_up_routing_and_undrain_gives_it_shards_again)
{
    loader L[3];
    loaders_up(L, 3); /* node-b's own clients too: they keep being served through it */
    char *out = NULL;
    int st = axctl(1, "drain", "--stay", "--json", &out);
    ck_assert_msg(st == 0, "axctl drain --stay: exit status %d, output: %s", st, out ? out : "");
    cJSON *r = cJSON_Parse(out);
    ck_assert_msg(r && !strcmp(str(r, "result"), "drained"), "drain --stay: %s", out);
    printf("  drain --stay: %s", out);
    ck_assert_int_gt((int)num(r, "handed_over"), 0);
    cJSON_Delete(r);
    free(out);
    view v;
    view_of(1, &v);
    ck_assert_int_eq(v.n_owned, 0);
    ck_assert_int_eq(v.target, 0);
    ck_assert_int_eq(peer_draining(0, "node-b"), 1);
    ck_assert_int_eq(peer_draining(2, "node-b"), 1);
    wait_two_serve_all(3000);
    /* the drained node still routes its clients' asks, to the others */
    for (int i = 0; i < 3; i++)
        wait_acked(&L[i], total_acked(&L[i]), 100, 10000);
    cJSON *doc = doc_of(1, axc_status, "status");
    ck_assert_str_eq(str(cJSON_GetObjectItem(doc, "drain"), "state"), "drained");
    cJSON_Delete(doc);
    st = axctl(1, "undrain", NULL, NULL, &out);
    ck_assert_msg(st == 0, "axctl undrain: exit status %d", st);
    free(out);
    wait_settled(8 * TTL_MS); /* node-b holds its share again */
    ck_assert_int_eq(peer_draining(0, "node-b"), 0);
    view_of(1, &v);
    ck_assert_int_gt(v.n_owned, 0);
    for (int i = 0; i < 3; i++)
        wait_acked(&L[i], total_acked(&L[i]), 100, 10000);
    loaders_check(L, 3, "drain --stay, then undrain");
    cluster_down();
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("drain");
    TCase *t = tcase_create("drain");
    tcase_set_timeout(t, 180);
    tcase_add_test(t, sigterm_hands_every_shard_over_under_load_with_no_failed_ask);
    tcase_add_test(t, axctl_drain_hands_every_shard_over_then_the_daemon_stops);
    tcase_add_test(t, drain_stay_keeps_the_node_up_routing_and_undrain_gives_it_shards_again);
    suite_add_tcase(s, t);
    return s;
}

int main(void) { return cluster_suite_main(suite, NULL, NULL); }
