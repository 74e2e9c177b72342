/* Cluster membership through the lease store (issue 13, item 1), with real daemons and a
 * real redis-server: nodes started with no cluster.peers at all find each other through
 * their records in the store, share the shards, and a node that joins later needs no
 * other node's configuration changed; a SIGKILLed node's record expires and it
 * disappears from every `axctl nodes`; a stopped node leaves at once. With
 * AX_TEST_STORE=etcd the same on one etcd member with authentication on (the daemons read
 * the password from lease.etcd_password_file). Skips (77) without redis-server (or etcd). */
#include "axactor/plugin.h" /* AX_ABI_*; before check.h (its fail() macro) */

#include <check.h>
#include <cjson/cJSON.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "axactor/client.h"
#include "harness.h"
#include "redis_test_util.h"
#include "etcd_test_util.h"

#define MAXN 4
#define TOKEN "members-token-0d9c2a"
#define TTL_MS 1500

static redis_proc R;
static etcd_proc E;
static char etcd_pw_file[4096]; /* on etcd: authentication is on, the password in this file */

typedef struct mnode {
    char name[16];
    int port;
    ax_h_daemon *d;
    axc_conn *c;
    char args[40][160];
    const char *argv[41];
} mnode;

static mnode M[MAXN];

static void mnode_start(int i)
{
    mnode *n = &M[i];
    size_t k = 0;
    snprintf(n->name, sizeof n->name, "m%d", i);
    n->port = free_port();
#define SET(...)                                                                                                  \
    do {                                                                                                          \
        snprintf(n->args[k++], sizeof n->args[0], "--set");                                                       \
        snprintf(n->args[k++], sizeof n->args[0], __VA_ARGS__);                                                   \
    } while (0)
    snprintf(n->args[k++], sizeof n->args[0], "-n");
    snprintf(n->args[k++], sizeof n->args[0], "m%d", i);
    snprintf(n->args[k++], sizeof n->args[0], "-p");
    snprintf(n->args[k++], sizeof n->args[0], "counter");
    SET("cluster.listen=127.0.0.1:%d", n->port); /* and no cluster.peers */
    SET("cluster.auth_token=%s", TOKEN);
    SET("cluster.heartbeat_interval_ms=100");
    SET("cluster.heartbeat_timeout_ms=1000");
    SET("cluster.reconnect_backoff_max_ms=300");
    SET("cluster.member_ttl_ms=%d", TTL_MS);
    SET("shards.count=16");
    if (store_etcd()) {
        SET("lease.store=etcd");
        SET("lease.etcd_endpoints=%.74s", E.endpoints);
        SET("lease.etcd_timeout_ms=500");
        SET("lease.etcd_user=root");
        SET("lease.etcd_password_file=%.120s", etcd_pw_file);
    } else {
        SET("lease.store=redis");
        SET("lease.redis_host=127.0.0.1");
        SET("lease.redis_port=%d", R.port);
        SET("lease.redis_connect_timeout_ms=500");
    }
    SET("lease.ttl_ms=2000");
    SET("lease.renew_interval_ms=500");
    SET("lease.safety_margin_ms=500");
#undef SET
    for (size_t j = 0; j < k; j++)
        n->argv[j] = n->args[j];
    n->argv[k] = NULL;
    n->d = ax_h_start(n->argv);
    n->c = ax_h_connect(n->d);
}

/* How many peers node i sees "up". */
static int peers_up(int i)
{
    char *json = NULL;
    ck_assert_int_eq(axc_nodes(M[i].c, &json), 0);
    cJSON *doc = cJSON_Parse(json);
    axc_free(json);
    ck_assert_ptr_nonnull(doc);
    int up = 0;
    cJSON *p;
    cJSON_ArrayForEach(p, cJSON_GetObjectItem(doc, "peers"))
    {
        const char *st = cJSON_GetStringValue(cJSON_GetObjectItem(p, "state"));
        up += st && !strcmp(st, "up");
    }
    cJSON_Delete(doc);
    return up;
}

/* The member records node i's NODES lists, each with its version, ABI and shard count. */
static int members_listed(int i)
{
    char *json = NULL;
    ck_assert_int_eq(axc_nodes(M[i].c, &json), 0);
    cJSON *doc = cJSON_Parse(json), *p;
    axc_free(json);
    int n = 0;
    cJSON_ArrayForEach(p, cJSON_GetObjectItem(doc, "members"))
    {
        ck_assert_ptr_nonnull(cJSON_GetStringValue(cJSON_GetObjectItem(p, "version")));
        ck_assert_ptr_nonnull(cJSON_GetStringValue(cJSON_GetObjectItem(p, "abi")));
        ck_assert_ptr_nonnull(cJSON_GetStringValue(cJSON_GetObjectItem(p, "addr")));
        ck_assert(cJSON_IsNumber(cJSON_GetObjectItem(p, "shards")));
        n++;
    }
    cJSON_Delete(doc);
    return n;
}

/* Wait (bounded) until each of the live nodes sees `want` peers up. */
static void wait_mesh(const int *live, int nlive, int want, int timeout_ms)
{
    double end = now_s() + timeout_ms / 1000.0;
    for (;;) {
        int ok = 1;
        for (int j = 0; j < nlive; j++)
            ok &= peers_up(live[j]) == want;
        if (ok)
            return;
        ck_assert_msg(now_s() < end, "the nodes did not see %d peers up each within %d ms", want, timeout_ms);
        sleep_ms(50);
    }
}

/* Node i's NODES lists exactly the peers named (comma-separated, any order). */
static int lists_exactly(int i, const char *names)
{
    char *json = NULL;
    ck_assert_int_eq(axc_nodes(M[i].c, &json), 0);
    cJSON *doc = cJSON_Parse(json);
    axc_free(json);
    int n = 0, ok = 1;
    cJSON *p;
    cJSON_ArrayForEach(p, cJSON_GetObjectItem(doc, "peers"))
    {
        n++;
        const char *name = cJSON_GetStringValue(cJSON_GetObjectItem(p, "name"));
        ok &= name && strstr(names, name) != NULL;
    }
    cJSON_Delete(doc);
    int want = *names ? 1 : 0;
    for (const char *c = names; *c; c++)
        want += *c == ',';
    return ok && n == want;
}

/* `axctl status --cluster --json` through node i, parsed; human when json is 0 (the text). */
static cJSON *cluster_status(int i, char **text)
{
    const char *argv[] = {ax_h_build_path("libaxclient/axctl"), "-s", ax_h_sock(M[i].d), "status", "--cluster",
                          text ? NULL : "--json", NULL};
    char *out = NULL, *err = NULL;
    int st = ax_h_run(argv, &out, &err, 15000);
    ck_assert_msg(st == 0, "axctl status --cluster: status %d: %s%s", st, out, err);
    free(err);
    if (text) {
        *text = out;
        return NULL;
    }
    cJSON *doc = cJSON_Parse(out);
    ck_assert_msg(doc != NULL, "axctl status --cluster --json: not JSON: %s", out);
    free(out);
    return doc;
}

static double num_at(const cJSON *o, const char *a, const char *b)
{
    const cJSON *v = cJSON_GetObjectItem(o, a);
    if (b)
        v = cJSON_GetObjectItem(v, b);
    ck_assert_msg(cJSON_IsNumber(v), "no number at %s%s%s", a, b ? "." : "", b ? b : "");
    return v->valuedouble;
}

/* The cluster-wide status: one entry per member, the sums add up the ones that answered,
 * and a member that is gone is named with why it did not answer. */
static void check_cluster_status(int via, int members, int answered, const char *silent)
{
    cJSON *doc = cluster_status(via, NULL);
    ck_assert_int_eq((int)num_at(doc, "members", NULL), members);
    ck_assert_int_eq((int)num_at(doc, "answered", NULL), answered);
    const cJSON *sum = cJSON_GetObjectItem(doc, "sum"), *n;
    double tells = 0, owned = 0, actors = 0;
    int silent_seen = 0;
    cJSON_ArrayForEach(n, cJSON_GetObjectItem(doc, "nodes"))
    {
        const cJSON *st = cJSON_GetObjectItem(n, "status");
        const char *name = cJSON_GetStringValue(cJSON_GetObjectItem(n, "node"));
        ck_assert_ptr_nonnull(name);
        if (!st) {
            ck_assert_msg(silent && strstr(name, silent) == name, "%s did not answer: %s", name,
                          cJSON_GetStringValue(cJSON_GetObjectItem(n, "error")));
            ck_assert_ptr_nonnull(cJSON_GetStringValue(cJSON_GetObjectItem(n, "error")));
            silent_seen = 1;
            continue;
        }
        tells += num_at(st, "counters", "tells");
        owned += num_at(st, "shards", "owned");
        actors += num_at(st, "actors", NULL);
    }
    ck_assert_int_eq(silent_seen, silent != NULL);
    ck_assert_double_eq(num_at(sum, "counters", "tells"), tells);
    ck_assert_double_eq(num_at(sum, "shards", "owned"), owned);
    ck_assert_double_eq(num_at(sum, "actors", NULL), actors);
    ck_assert_ptr_null(cJSON_GetObjectItem(sum, "pid")); /* not a count */
    ck_assert_ptr_null(cJSON_GetObjectItem(cJSON_GetObjectItem(sum, "shards"), "count"));
    cJSON_Delete(doc);
}

START_TEST(nodes_with_no_peer_list_find_each_other_a_fourth_joins_and_the_dead_expire)
{
    if (store_etcd()) { /* with authentication on: the daemons read the password from a file */
        etcd_up(&E, 1);
        etcdctl(&E, "user add root:members-pw-5e1f");
        etcdctl(&E, "user grant-role root root");
        etcdctl(&E, "auth enable");
        snprintf(etcd_pw_file, sizeof etcd_pw_file, "%s", ax_h_write_file(NULL, "etcd_pw", "members-pw-5e1f\n"));
    } else {
        redis_up(&R, NULL);
    }
    double t0 = now_s();
    for (int i = 0; i < 3; i++)
        mnode_start(i);
    int three[] = {0, 1, 2};
    wait_mesh(three, 3, 2, 10000);
    printf("  3 nodes with no cluster.peers: a full mesh %.0f ms after the first was started (each start waits "
           "until it serves)\n",
           (now_s() - t0) * 1000);
    /* the cluster-wide shard view: every shard owned by m0 or held by a named other */
    double end0 = now_s() + 15;
    for (;;) {
        char *json = NULL;
        ck_assert_int_eq(axc_shards(M[0].c, &json), 0);
        cJSON *doc = cJSON_Parse(json), *sh;
        axc_free(json);
        int covered = 0, n = 0;
        cJSON_ArrayForEach(sh, cJSON_GetObjectItem(doc, "shards"))
        {
            const char *st = cJSON_GetStringValue(cJSON_GetObjectItem(sh, "state"));
            const char *ow = cJSON_GetStringValue(cJSON_GetObjectItem(sh, "owner"));
            double ep = cJSON_GetNumberValue(cJSON_GetObjectItem(sh, "epoch"));
            n++;
            covered += st && ow && ep > 0 &&
                       (!strcmp(st, "owned") || (!strcmp(st, "held") && (strstr(ow, "m1@") || strstr(ow, "m2@"))));
        }
        if (n == 16 && covered == 16) {
            cJSON_Delete(doc);
            break;
        }
        if (now_s() >= end0) {
            char *txt = cJSON_PrintUnformatted(doc);
            ck_abort_msg("m0's shards view: %d of %d shards owned or held by a named node: %s", covered, n, txt);
        }
        cJSON_Delete(doc);
        sleep_ms(100);
    }
    /* nodes starting together on a fresh store race for its quarantines: none of that is
     * a store that went back (a false "LEASE STORE REGRESSED" would send operators
     * after lost data) */
    for (int i = 0; i < 3; i++) {
        char *json = NULL;
        ck_assert_int_eq(axc_shards(M[i].c, &json), 0);
        cJSON *doc = cJSON_Parse(json);
        axc_free(json);
        double rg = cJSON_GetNumberValue(cJSON_GetObjectItem(doc, "store_regressions"));
        cJSON_Delete(doc);
        ck_assert_msg(rg == 0, "%s reports %.0f store regressions on a fresh store", M[i].name, rg);
    }
    /* the keyed counters are reachable from every node: they agree on the membership */
    axc_target t = axc_by_key("counter", "k1");
    for (int i = 0; i < 3; i++) {
        int rc = -1;
        for (int a = 0; a < 200 && rc != 0; a++) { /* bounded: the shards settle (quarantine of a fresh store) */
            rc = axc_tell(M[i].c, &t, "inc", NULL, 0);
            if (rc)
                sleep_ms(50);
        }
        ck_assert_msg(rc == 0, "tell k1 through %s: %s", M[i].name, ax_errname(rc));
    }
    /* a fourth joins: nobody's configuration changes */
    t0 = now_s();
    mnode_start(3);
    int four[] = {0, 1, 2, 3};
    wait_mesh(four, 4, 3, 10000);
    printf("  a 4th node joined: all 4 in a mesh %.0f ms after it was started\n", (now_s() - t0) * 1000);
    double end = now_s() + 5;
    while (members_listed(0) != 4) { /* this node's own record is listed too */
        ck_assert_msg(now_s() < end, "m0 does not list the 4 members' records");
        sleep_ms(50);
    }
    /* axctl nodes shows each member's version and ABI (from its record) */
    const char *argv[] = {ax_h_build_path("libaxclient/axctl"), "-s", ax_h_sock(M[0].d), "nodes", NULL};
    char *out = NULL, *err = NULL;
    ck_assert_int_eq(ax_h_run(argv, &out, &err, 10000), 0);
    char abi[16];
    snprintf(abi, sizeof abi, " %d.%d ", AX_ABI_MAJOR, AX_ABI_MINOR);
    ck_assert_msg(strstr(out, "VERSION") && strstr(out, "ABI") && strstr(out, abi) && strstr(out, "m3"),
                  "axctl nodes:\n%s", out);
    free(out);
    free(err);
    /* axctl status --cluster: every member's status, and the sums (3 tells were counted) */
    check_cluster_status(1, 4, 4, NULL);
    cJSON *cs = cluster_status(0, NULL);
    ck_assert_double_ge(num_at(cJSON_GetObjectItem(cs, "sum"), "counters", "tells"), 3);
    cJSON_Delete(cs);
    char *text = NULL;
    cluster_status(3, &text);
    ck_assert_msg(strstr(text, "4 member(s), 4 answered") && strstr(text, "SHARDS_OWNED") &&
                      strstr(text, "counters.tells:"),
                  "axctl status --cluster:\n%s", text);
    free(text);
    /* SIGKILL m2: its record expires (ttl), and it leaves every NODES */
    axc_close(M[2].c);
    M[2].c = NULL;
    t0 = now_s();
    ax_h_kill(M[2].d);
    /* asked at once, the dead m2 is still a member: named, with why it did not answer */
    check_cluster_status(0, 4, 3, "m2");
    int rest[] = {0, 1, 3};
    end = now_s() + 10;
    for (;;) {
        int ok = lists_exactly(0, "m1,m3") && lists_exactly(1, "m0,m3") && lists_exactly(3, "m0,m1");
        if (ok)
            break;
        ck_assert_msg(now_s() < end, "the killed m2 is still listed 10 s after the kill");
        sleep_ms(50);
    }
    double gone = now_s() - t0;
    printf("  m2 SIGKILLed: gone from every NODES after %.0f ms (member ttl %d ms)\n", gone * 1000, TTL_MS);
    ck_assert_double_ge(gone, TTL_MS / 1000.0 * 0.5);
    wait_mesh(rest, 3, 2, 5000);
    /* a stopped node deletes its record: gone at the next listing, not a ttl later */
    axc_close(M[3].c);
    M[3].c = NULL;
    t0 = now_s();
    ax_h_stop(M[3].d);
    end = now_s() + 10;
    while (!(lists_exactly(0, "m1") && lists_exactly(1, "m0"))) {
        ck_assert_msg(now_s() < end, "the stopped m3 is still listed 10 s later");
        sleep_ms(50);
    }
    gone = now_s() - t0;
    printf("  m3 stopped: gone from every NODES after %.0f ms\n", gone * 1000);
    /* deleted, not expired: a record lives at least its ttl (a delete overtaken by a
     * renewing put, or never sent before the process ended, would leave it that long) */
    ck_assert_msg(gone < TTL_MS / 1000.0, "the stopped m3 was listed for %.0f ms: its record expired (ttl %d ms) "
                  "instead of being deleted", gone * 1000, TTL_MS);
    for (int i = 0; i < 2; i++) {
        axc_close(M[i].c);
        ax_h_stop(M[i].d);
    }
    ax_h_destroy(M[2].d);
    if (store_etcd())
        etcd_down(&E);
    else
        redis_down(&R);
}
END_TEST

int main(void)
{
    if (store_etcd() ? !etcd_available() : system("redis-server --version >/dev/null 2>&1") != 0) {
        fprintf(stderr, "%s not found: skipping\n", store_etcd() ? "etcd" : "redis-server");
        return 77;
    }
    signal(SIGPIPE, SIG_IGN);
    setvbuf(stdout, NULL, _IOLBF, 0);
    Suite *s = suite_create("members");
    TCase *tc = tcase_create("members");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, nodes_with_no_peer_list_find_each_other_a_fourth_joins_and_the_dead_expire);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
