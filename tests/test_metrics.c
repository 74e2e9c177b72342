/* The Prometheus endpoint (issue 13, item 4): real daemons with metrics.listen on a free
 * loopback port, scraped over HTTP and parsed by Debian's python3-prometheus-client
 * (tests/metrics_check.py): every family present, histograms consistent, the numbers
 * matching what the test did (asks counted and timed, every shard owned by exactly one
 * of three nodes, peers up, a drain's handovers in the handover histogram). Hostile
 * bytes on the HTTP port change nothing. Skips (77) without redis-server or the client
 * library. */
#include <check.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "shards_test_util.h"

static int mport[NNODES];

static size_t metrics_args(node *n, size_t k)
{
    snprintf(n->args[k++], sizeof n->args[0], "--set");
    snprintf(n->args[k++], sizeof n->args[0], "metrics.listen=127.0.0.1:%d", mport[n - N]);
    return k;
}

/* Scrape port and return the value of sample `what` (summed over matches). */
static double scrape(int port, int cluster, const char *what)
{
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/metrics", port);
    char script[4096];
    snprintf(script, sizeof script, "%s/tests/metrics_check.py", ax_h_source_dir());
    const char *argv[] = {"/usr/bin/python3", script, url, cluster ? "cluster" : "single", what, NULL};
    char *out = NULL, *err = NULL;
    int st = ax_h_run(argv, &out, &err, 20000);
    ck_assert_msg(st == 0, "metrics_check %s: status %d: %s", url, st, err ? err : "");
    const char *sp = out ? strrchr(out, ' ') : NULL;
    ck_assert_msg(sp != NULL, "metrics_check said: %s", out ? out : "");
    double v = strtod(sp + 1, NULL);
    free(out);
    free(err);
    return v;
}

/* Hostile bytes at the HTTP port: garbage, a huge header, a half request left open. */
static void hostile(int port)
{
    static char big[65536];
    memset(big, 'A', sizeof big);
    const char *bad[] = {"\x16\x03\x01\x02\x00garbage\r\n\r\n", "GET /metrics HTTP/1.1\r\nX: ", "BREW /pot HTCPCP/1.0\r\n\r\n"};
    for (size_t i = 0; i < 3; i++) {
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK),
                                 .sin_port = htons((uint16_t)port)};
        ck_assert_int_eq(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0);
        ssize_t w = write(fd, bad[i], strlen(bad[i]));
        (void)w;
        if (i == 1)
            w = write(fd, big, sizeof big); /* a header far beyond any limit */
        close(fd);
    }
}

START_TEST(a_single_node_is_scraped_and_counts_and_times_its_asks)
{
    mport[0] = free_port();
    char set[64];
    snprintf(set, sizeof set, "metrics.listen=127.0.0.1:%d", mport[0]);
    const char *args[] = {"-p", "counter", "--set", set, NULL};
    ax_h_daemon *d = ax_h_start(args);
    axc_conn *c = ax_h_connect(d);
    axc_target t = axc_by_key("counter", "m1");
    for (int i = 0; i < 50; i++) {
        void *r = NULL;
        size_t n = 0;
        ck_assert_int_eq(axc_ask(c, &t, "inc", NULL, 0, 2000, &r, &n), 0);
        axc_free(r);
    }
    double asks = scrape(mport[0], 0, "axactor_client_ask_seconds_count");
    ck_assert_msg(asks >= 50, "50 asks made, the histogram counts %.0f", asks);
    ck_assert_double_ge(scrape(mport[0], 0, "axactor_asks_total"), 50);
    ck_assert_double_gt(scrape(mport[0], 0, "axactor_handler_seconds_count"), 0);
    ck_assert_double_eq(scrape(mport[0], 0, "axactor_keyed_actors"), 1);
    hostile(mport[0]);
    ck_assert_double_ge(scrape(mport[0], 0, "axactor_uptime_seconds"), 0);
    void *r = NULL;
    size_t rn = 0;
    ck_assert_msg(axc_ask(c, &t, "get", NULL, 0, 2000, &r, &rn) == 0, "the daemon stopped serving");
    axc_free(r);
    printf("  single node: %.0f asks in the latency histogram; hostile HTTP input changed nothing\n", asks);
    axc_close(c);
    ax_h_stop(d);
}
END_TEST

START_TEST(a_cluster_is_scraped_shards_peers_and_a_drain_s_handovers)
{
    for (int i = 0; i < NNODES; i++)
        mport[i] = free_port();
    node_extra_args = metrics_args;
    cluster_up();
    double owned = 0;
    for (int i = 0; i < NNODES; i++) {
        owned += scrape(mport[i], 1, "axactor_shard_owned");
        ck_assert_double_eq(scrape(mport[i], 1, "axactor_peer_up"), NNODES - 1);
        ck_assert_double_gt(scrape(mport[i], 1, "axactor_peer_heartbeat_rtt_seconds_count"), 0);
        ck_assert_double_eq(scrape(mport[i], 1, "axactor_live_nodes"), NNODES);
    }
    ck_assert_msg(owned == NSHARDS, "the nodes' axactor_shard_owned add up to %.0f of %d shards", owned, NSHARDS);
    view v;
    view_of(1, &v);
    double before = scrape(mport[1], 1, "axactor_handover_seconds_count");
    const char *argv[] = {ax_h_build_path("libaxclient/axctl"), "-s", ax_h_sock(N[1].d), "drain", "--stay", NULL};
    ck_assert_int_eq(ax_h_run(argv, NULL, NULL, 30000), 0);
    double handed = scrape(mport[1], 1, "axactor_handover_seconds_count") - before;
    ck_assert_msg(handed == v.n_owned, "node-b held %d shards, its handover histogram counts %.0f", v.n_owned, handed);
    ck_assert_double_eq(scrape(mport[1], 1, "axactor_shard_owned"), 0);
    ck_assert_double_eq(scrape(mport[0], 1, "axactor_peer_draining{peer=node-b}"), 1);
    printf("  3 nodes: every shard owned once across the scrapes; node-b's drain: %.0f handovers in its "
           "histogram\n",
           handed);
    cluster_down();
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("metrics");
    TCase *t = tcase_create("metrics");
    tcase_set_timeout(t, 120);
    tcase_add_test(t, a_single_node_is_scraped_and_counts_and_times_its_asks);
    tcase_add_test(t, a_cluster_is_scraped_shards_peers_and_a_drain_s_handovers);
    suite_add_tcase(s, t);
    return s;
}

int main(void)
{
    return cluster_suite_main(suite, "/usr/bin/python3 -c 'import prometheus_client' 2>/dev/null",
                              "python3-prometheus-client");
}
