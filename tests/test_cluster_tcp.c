/* Multi-process cluster tests: real axactord processes peering over loopback TCP,
 * started through the shared harness, plus the test process acting as a hand-made peer
 * (tests/../daemon/cluster/handshake.c) for hostile cases. They prove: handshake happy
 * path and remote tell/ask from libaxclient through any node; version mismatch and wrong
 * token refused with a reason logged on both sides; same-name spoofing and frames that
 * claim an unauthenticated or foreign session rejected before actor code; replayed and
 * forged frames dropped and counted; simultaneous connects ending with one link;
 * SIGKILL -> down/noconnection exactly once; restart -> new session trusted after its
 * handshake; a data flood not delaying heartbeats; secure by default. */
#include <arpa/inet.h>
#include <check.h>
#include <dirent.h>
#include <cjson/cJSON.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "axactor/client.h"
#include "handshake.h"
#include "frame.h"
#include "harness.h"
#include "redis_test_util.h" /* free_port, now_s */
#include "peer.h"

#define TOKEN "test-token-3f9a-0123"

/* ---------------- helpers ---------------- */

typedef struct node {
    const char *name;
    int port;
    ax_h_daemon *d;
    char args[40][96];
    const char *argv[41];
} node;

/* Clustered daemons refuse the memory lease store (it cannot be shared): this test's
 * nodes share one redis-server, started by the first node of each test (each test runs
 * in its own process) and stopped when that process exits. */
static redis_proc R;

static void redis_at_exit(void)
{
    if (R.pid > 0)
        redis_down(&R);
}

static int store_port(void)
{
    if (!R.port) {
        redis_up(&R, NULL);
        atexit(redis_at_exit);
    }
    return R.port;
}

/* Args for a node: its name, listen port, the address book (peers), token, fast
 * heartbeats, the counter plugin, plus extra "--set" items. */
static const char *const *node_args(node *n, const char *token, const node *const *peers, size_t np,
                                    const char *const *extra)
{
    size_t k = 0;
#define ARG(...) snprintf(n->args[k++], sizeof n->args[0], __VA_ARGS__)
    ARG("-n");
    ARG("%s", n->name);
    ARG("-p");
    ARG("counter");
    ARG("--set");
    ARG("cluster.listen=127.0.0.1:%d", n->port);
    for (size_t i = 0; i < np; i++) {
        ARG("--set");
        ARG("cluster.peers=%s=127.0.0.1:%d", peers[i]->name, peers[i]->port);
    }
    if (token) {
        ARG("--set");
        ARG("cluster.auth_token=%s", token);
    }
    ARG("--set");
    ARG("lease.store=redis");
    ARG("--set");
    ARG("lease.redis_port=%d", store_port());
    ARG("--set");
    ARG("cluster.heartbeat_interval_ms=100");
    ARG("--set");
    ARG("cluster.heartbeat_timeout_ms=1500");
    ARG("--set");
    ARG("cluster.reconnect_backoff_max_ms=300");
    for (size_t i = 0; extra && extra[i]; i++)
        ARG("%s", extra[i]);
#undef ARG
    for (size_t i = 0; i < k; i++)
        n->argv[i] = n->args[i];
    n->argv[k] = NULL;
    return n->argv;
}

static void node_start(node *n, const char *token, const node *const *peers, size_t np, const char *const *extra)
{
    n->d = ax_h_start(node_args(n, token, peers, np, extra));
}

/* The NODES document of a daemon, through a raw connection (caller deletes). */
static cJSON *nodes_doc(ax_h_daemon *d)
{
    int fd = ax_h_raw_hello(d);
    uint8_t hdr[AX_FRAME_HDR_SIZE];
    ax_frame_hdr h = {AX_PROTO_VERSION, AX_T_NODES, 0, 7, 0};
    ax_frame_hdr_encode(&h, hdr);
    ck_assert_int_eq(ax_h_raw_write(fd, hdr, sizeof hdr), 0);
    uint8_t type, *body = NULL;
    uint32_t req;
    size_t n = 0;
    ck_assert_int_eq(ax_h_raw_read_frame(fd, 5000, &type, &req, &body, &n), 1);
    ck_assert_uint_eq(type, AX_T_JSON);
    close(fd);
    ck_assert_uint_ge(n, 4);
    cJSON *doc = cJSON_ParseWithLength((const char *)body + 4, n - 4);
    free(body);
    ck_assert_ptr_nonnull(doc);
    return doc;
}

static cJSON *peer_of(cJSON *doc, const char *name)
{
    cJSON *p;
    cJSON_ArrayForEach(p, cJSON_GetObjectItem(doc, "peers"))
    {
        if (!strcmp(cJSON_GetStringValue(cJSON_GetObjectItem(p, "name")), name))
            return p;
    }
    return NULL;
}

static double num(cJSON *o, const char *k)
{
    cJSON *v = cJSON_GetObjectItem(o, k);
    ck_assert_msg(cJSON_IsNumber(v), "no number %s", k);
    return v->valuedouble;
}

static const char *str(cJSON *o, const char *k)
{
    const char *s = cJSON_GetStringValue(cJSON_GetObjectItem(o, k));
    ck_assert_msg(s != NULL, "no string %s", k);
    return s;
}

/* Wait until d sees peer `name` in state `state`; returns the final document. */
static cJSON *wait_peer_state(ax_h_daemon *d, const char *name, const char *state, int timeout_ms)
{
    double end = now_s() + timeout_ms / 1000.0;
    for (;;) {
        cJSON *doc = nodes_doc(d);
        cJSON *p = peer_of(doc, name);
        if (p && !strcmp(str(p, "state"), state))
            return doc;
        if (now_s() > end) {
            char *txt = cJSON_Print(doc);
            ck_abort_msg("peer %s never reached state %s: %s\nlog:\n%s", name, state, txt, ax_h_log(d));
        }
        cJSON_Delete(doc);
        usleep(20000);
    }
}

static void wait_up(node *a, node *b)
{
    cJSON_Delete(wait_peer_state(a->d, b->name, "up", 10000));
    cJSON_Delete(wait_peer_state(b->d, a->name, "up", 10000));
}

static axc_ref spawn_ok(axc_conn *c, const char *type, const char *name)
{
    axc_ref r;
    memset(&r, 0, sizeof r);
    int rc = axc_spawn(c, type, name, NULL, &r);
    ck_assert_msg(rc == 0, "spawn %s: %s (%s)", type, ax_errname(rc), axc_errmsg(c));
    return r;
}

static char *ask_text(axc_conn *c, const axc_target *t, const char *msg, int *rc)
{
    void *reply = NULL;
    size_t n = 0;
    *rc = axc_ask(c, t, msg, NULL, 0, 3000, &reply, &n);
    return reply;
}

static void expect_get(axc_conn *c, const axc_target *t, const char *want)
{
    int rc;
    char *v = ask_text(c, t, "get", &rc);
    ck_assert_msg(rc == 0, "ask get: %s (%s)", ax_errname(rc), axc_errmsg(c));
    ck_assert_str_eq(v, want);
    axc_free(v);
}

/* Ask "get" until it answers want (frames on another connection may still be on the
 * way); fails after ms. */
static void wait_get(axc_conn *c, const axc_target *t, const char *want, int ms)
{
    double end = now_s() + ms / 1000.0;
    for (;;) {
        int rc;
        char *v = ask_text(c, t, "get", &rc);
        ck_assert_msg(rc == 0, "ask get: %s (%s)", ax_errname(rc), axc_errmsg(c));
        int ok = !strcmp(v, want);
        if (!ok && now_s() > end)
            ck_abort_msg("get is %s, want %s", v, want);
        axc_free(v);
        if (ok)
            return;
        usleep(20000);
    }
}

/* ---------------- a hand-made peer (the test process) ---------------- */

static int fp_connect(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0), one = 1;
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    ck_assert_int_eq(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return fd;
}

static void fp_send(int fd, ax_wbuf *b)
{
    size_t off = 0;
    while (off < b->len) {
        ssize_t w = send(fd, b->data + off, b->len - off, MSG_NOSIGNAL);
        if (w <= 0)
            break; /* the daemon may have closed already */
        off += (size_t)w;
    }
    b->len = 0;
}

/* Read one whole peer frame into *b (replacing its content): 1, or 0 on EOF/timeout. */
static int fp_read(int fd, ax_wbuf *b, int timeout_ms)
{
    b->len = 0;
    size_t need = AX_PEER_HDR_SIZE;
    double end = now_s() + timeout_ms / 1000.0;
    while (b->len < need) {
        struct pollfd p = {fd, POLLIN, 0};
        int left = (int)((end - now_s()) * 1000);
        if (left <= 0 || poll(&p, 1, left) <= 0)
            return 0;
        uint8_t tmp[4096];
        size_t want = need - b->len < sizeof tmp ? need - b->len : sizeof tmp;
        ssize_t r = recv(fd, tmp, want, 0);
        if (r <= 0)
            return 0;
        ax_wbuf_put(b, tmp, (size_t)r);
        if (b->len == AX_PEER_HDR_SIZE && need == AX_PEER_HDR_SIZE) {
            ax_peer_hdr h;
            ck_assert_int_eq(ax_peer_hdr_decode(b->data, b->len, 1u << 24, &h, NULL), 0);
            need += h.body_len;
        }
    }
    return 1;
}

static uint8_t frame_type(const ax_wbuf *b) { return b->data[3]; }

/* Handshake as `id` with `token`; returns the fd (session in *sess) or -1 with the
 * REFUSE reason in why. */
static int fp_handshake(int port, const char *id, const char *token, uint16_t lo, uint16_t hi, axd_psess *sess,
                        char *why, size_t wlen)
{
    int fd = fp_connect(port);
    axd_hs hs;
    char store[128]; /* what the daemons of this test present: their redis, default db and prefix */
    snprintf(store, sizeof store, "redis:127.0.0.1:%d/0/axactor:", store_port());
    axd_hs_cfg c = {.self_id = id,
                   .token = token,
                   .token_len = strlen(token),
                   .min_ver = lo,
                   .max_ver = hi,
                   .shard_count = 256,
                   .store = store};
    ck_assert_int_eq(axd_hs_init(&hs, AXD_HS_INITIATOR, &c), 0);
    ax_wbuf out, in;
    ax_wbuf_init(&out);
    ax_wbuf_init(&in);
    axd_hs_start(&hs, &out);
    fp_send(fd, &out);
    int rc = AXD_HS_MORE;
    while (rc == AXD_HS_MORE) {
        if (!fp_read(fd, &in, 5000)) {
            rc = AX_ECONN;
            snprintf(hs.why, sizeof hs.why, "connection closed");
            break;
        }
        rc = axd_hs_input(&hs, in.data, in.len, &out);
        fp_send(fd, &out);
    }
    if (rc == AXD_HS_READY) {
        axd_hs_take_session(&hs, sess);
    } else {
        snprintf(why, wlen, "%s", hs.why);
        close(fd);
        fd = -1;
    }
    axd_hs_clear(&hs);
    ax_wbuf_free(&out);
    ax_wbuf_free(&in);
    return fd;
}

/* One TELL frame for (id, gen) "inc", sealed with sess if given. */
static void fp_tell(ax_wbuf *b, axd_psess *sess, uint32_t session, uint64_t id, uint32_t gen)
{
    b->len = 0;
    size_t st = ax_peer_frame_begin(b, AX_PT_TELL, session);
    ax_peer_rec r = {.to_id = id, .to_gen = gen, .msg = "inc", .msg_len = 3};
    ax_peer_rec_put(b, AX_PT_TELL, &r);
    ax_peer_frame_end(b, st, 1u << 20);
    if (sess)
        axd_psess_seal(sess, b->data, b->len);
    else {
        b->data[23] = 1; /* seq 1 */
        memset(b->data + AX_PEER_MAC_OFF, 0x42, AX_PEER_MAC_SIZE);
    }
}

/* ---------------- tests ---------------- */

START_TEST(two_daemons_handshake_and_carry_tell_and_ask_from_a_client_on_either_node)
{
    node a = {"node-a", free_port(), NULL, {{0}}, {0}}, b = {"node-b", free_port(), NULL, {{0}}, {0}};
    node_start(&a, TOKEN, (const node *const[]){&b}, 1, NULL);
    node_start(&b, TOKEN, (const node *const[]){&a}, 1, NULL);
    wait_up(&a, &b);
    axc_conn *ca = ax_h_connect(a.d), *cb = ax_h_connect(b.d);
    axc_ref r = spawn_ok(cb, "counter", "c1");
    ck_assert_ptr_nonnull(strstr(r.node, "node-b@boot-"));
    axc_target t = axc_by_ref(&r);
    for (int i = 0; i < 100; i++)
        ck_assert_int_eq(axc_tell(ca, &t, "inc", NULL, 0), 0);
    expect_get(ca, &t, "100"); /* ordered after the tells: same sender, same receiver */
    expect_get(cb, &t, "100");
    /* and the other way round */
    axc_ref ra = spawn_ok(ca, "counter", NULL);
    axc_target ta = axc_by_ref(&ra);
    ck_assert_int_eq(axc_tell(cb, &ta, "add", "41", 2), 0);
    ck_assert_int_eq(axc_tell(cb, &ta, "inc", NULL, 0), 0);
    expect_get(cb, &ta, "42");
    /* remote errors come back as errors */
    int rc;
    axc_ref bogus = r;
    bogus.gen += 7;
    axc_target tb = axc_by_ref(&bogus);
    axc_free(ask_text(ca, &tb, "get", &rc));
    ck_assert_int_eq(rc, AX_ENOPROC);
    axc_free(ask_text(ca, &t, "nosuch", &rc));
    ck_assert_int_eq(rc, AX_ENOMSG);
    usleep(300000); /* a few heartbeats (100 ms) */
    cJSON *doc = nodes_doc(a.d);
    cJSON *p = peer_of(doc, "node-b");
    ck_assert_str_eq(str(p, "state"), "up");
    ck_assert_ptr_nonnull(strstr(str(p, "wire_id"), "node-b@boot-"));
    ck_assert(num(p, "session") >= 1);
    ck_assert(num(p, "frames_in") > 0 && num(p, "frames_out") > 0);
    ck_assert(num(p, "bytes_in") > 0 && num(p, "bytes_out") > 0);
    ck_assert(num(p, "heartbeats_received") > 0 && num(p, "heartbeats_sent") > 0);
    ck_assert(num(p, "rtt_ms") > 0);
    ck_assert_int_eq((int)num(doc, "links"), 1);
    cJSON_Delete(doc);
    /* axctl nodes: the operator's table */
    const char *argv[] = {ax_h_build_path("libaxclient/axctl"), "-s", ax_h_sock(a.d), "nodes", NULL};
    char *out = NULL;
    ck_assert_int_eq(ax_h_run(argv, &out, NULL, 10000), 0);
    ck_assert_msg(strstr(out, "NODE") && strstr(out, "SESSION") && strstr(out, "RTT_MS") && strstr(out, "BYTES_IN") &&
                      strstr(out, "FRAMES_OUT") && strstr(out, "AUTH_FAILURES"),
                  "%s", out);
    ck_assert_msg(strstr(out, "node-b") && strstr(out, " up "), "%s", out);
    free(out);
    axc_close(ca);
    axc_close(cb);
    ax_h_stop(a.d);
    ax_h_stop(b.d);
}
END_TEST

/* ABI 1.3/1.4 across nodes: a business error keeps its code and text on the way back to
 * a remote asker, and a deferred reply reaches it when the actor answers. */
START_TEST(business_errors_and_deferred_replies_reach_a_remote_asker)
{
    node a = {"node-a", free_port(), NULL, {{0}}, {0}}, b = {"node-b", free_port(), NULL, {{0}}, {0}};
    const char *const work[] = {"-p", "work", NULL};
    node_start(&a, TOKEN, (const node *const[]){&b}, 1, work);
    node_start(&b, TOKEN, (const node *const[]){&a}, 1, work);
    wait_up(&a, &b);
    axc_conn *ca = ax_h_connect(a.d), *cb = ax_h_connect(b.d);
    axc_ref r = spawn_ok(cb, "work", "svc");
    axc_target t = axc_by_ref(&r), tn = axc_by_name("svc");
    void *reply = NULL;
    size_t n = 0;
    int rc = axc_ask(ca, &t, "find", "missing", 7, 3000, &reply, &n);
    ck_assert_int_eq(rc, AX_ENOTFOUND);
    ck_assert_str_eq(axc_errmsg(ca), "no such user: missing");
    rc = axc_ask(ca, &t, "find", "bob", 3, 3000, &reply, &n);
    ck_assert_msg(rc == 0 && !strcmp(reply, "found"), "%s", ax_errname(rc));
    axc_free(reply);
    /* deferred: a's client waits; b's client makes the actor answer */
    uint32_t id;
    ck_assert_int_eq(axc_send_ask(ca, &t, "defer", NULL, 0, 5000, &id), 0);
    ck_assert_int_eq(axc_flush(ca), 0);
    for (int i = 0; i < 300; i++) {
        char *v = NULL;
        rc = axc_ask(cb, &tn, "tokens", NULL, 0, 3000, (void **)&v, &n);
        int open = rc == 0 && !strcmp(v, "1");
        axc_free(v);
        if (open)
            break;
        usleep(10000);
    }
    rc = axc_ask(cb, &tn, "answer", "from afar", 9, 3000, &reply, &n);
    ck_assert_msg(rc == 0 && !strcmp(reply, "ok"), "answer: %s", ax_errname(rc));
    axc_free(reply);
    axc_result res;
    ck_assert_int_eq(axc_poll_result(ca, 3000, &res), 1);
    ck_assert_uint_eq(res.req_id, id);
    ck_assert_int_eq(res.status, AX_OK);
    ck_assert_str_eq((const char *)res.data, "from afar");
    axc_free(res.data);
    axc_close(ca);
    axc_close(cb);
    ax_h_stop(a.d);
    ax_h_stop(b.d);
}
END_TEST

START_TEST(cluster_without_token_refuses_to_start_unless_insecure_is_allowed)
{
    char port[64];
    snprintf(port, sizeof port, "cluster.listen=127.0.0.1:%d", free_port());
    const char *bin = ax_h_build_path("daemon/axactord");
    char *out = NULL, *err = NULL;
    const char *argv[] = {bin, "-s", "/tmp/ax-none.sock", "--set", port, NULL};
    int st = ax_h_run(argv, &out, &err, 10000);
    ck_assert_int_eq(st, 1);
    ck_assert_msg(strstr(err, "cluster.auth_token") && strstr(err, "allow_insecure_auth"), "%s", err);
    free(out);
    free(err);
    const char *argv2[] = {bin, "--check-config", "--set", port, NULL};
    st = ax_h_run(argv2, &out, &err, 10000);
    ck_assert_int_eq(st, 1);
    free(out);
    free(err);
    /* allowed explicitly: it runs, and says it is not authenticating */
    node a = {"node-a", free_port(), NULL, {{0}}, {0}};
    node_start(&a, NULL, NULL, 0, (const char *const[]){"--set", "cluster.allow_insecure_auth=true", NULL});
    ck_assert(ax_h_wait_log(a.d, "NOT authenticated", 5000));
    ax_h_stop(a.d);
}
END_TEST


/* Two nodes that would shard keys differently, or keep leases in different stores, do
 * not form a cluster: the handshake is refused, both logs say why, `axctl nodes` shows it. */
START_TEST(peers_with_another_shard_count_or_lease_store_are_refused)
{
    node a = {"node-a", free_port(), NULL, {{0}}, {0}};
    node b = {"node-b", free_port(), NULL, {{0}}, {0}};
    node_start(&a, TOKEN, (const node *const[]){&b}, 1, (const char *const[]){"--set", "shards.count=256", NULL});
    node_start(&b, TOKEN, (const node *const[]){&a}, 1, (const char *const[]){"--set", "shards.count=128", NULL});
    ck_assert(ax_h_wait_log(a.d, "shards.count differs", 5000));
    ck_assert(ax_h_wait_log(b.d, "shards.count differs", 5000));
    ck_assert(ax_h_wait_log(a.d, "has 128", 1000) && ax_h_wait_log(a.d, "has 256", 1000));
    usleep(300000);
    cJSON *doc = nodes_doc(a.d);
    cJSON *p = peer_of(doc, "node-b");
    ck_assert_str_ne(str(p, "state"), "up");
    ck_assert_msg(strstr(str(p, "last_error"), "shards.count differs"), "%s", str(p, "last_error"));
    cJSON_Delete(doc);
    const char *argv[] = {ax_h_build_path("libaxclient/axctl"), "-s", ax_h_sock(a.d), "nodes", NULL};
    char *out = NULL;
    ck_assert_int_eq(ax_h_run(argv, &out, NULL, 10000), 0);
    ck_assert_msg(strstr(out, "LAST_ERROR") && strstr(out, "shards.count differs"), "%s", out);
    free(out);
    ax_h_stop(b.d);
    /* the same count but another store (another key prefix in the same Redis) */
    node_start(&b, TOKEN, (const node *const[]){&a}, 1,
               (const char *const[]){"--set", "lease.redis_prefix=other:", NULL});
    ck_assert(ax_h_wait_log(b.d, "lease store differs", 5000));
    ck_assert(ax_h_wait_log(a.d, "lease store differs", 5000));
    ck_assert(ax_h_wait_log(a.d, "other:", 1000));
    usleep(300000);
    doc = nodes_doc(a.d);
    p = peer_of(doc, "node-b");
    ck_assert_str_ne(str(p, "state"), "up");
    ck_assert_msg(strstr(str(p, "last_error"), "lease store differs"), "%s", str(p, "last_error"));
    cJSON_Delete(doc);
    ax_h_stop(b.d);
    /* and a node that agrees joins, clearing the error */
    node_start(&b, TOKEN, (const node *const[]){&a}, 1, NULL);
    double end = now_s() + 5;
    for (;;) {
        doc = nodes_doc(a.d);
        p = peer_of(doc, "node-b");
        int up = !strcmp(str(p, "state"), "up") && !*str(p, "last_error");
        cJSON_Delete(doc);
        if (up)
            break;
        ck_assert_msg(now_s() < end, "node-b with matching settings did not join within 5 s");
        usleep(50000);
    }
    ax_h_stop(b.d);
    ax_h_stop(a.d);
}
END_TEST

/* SIGHUP applies a new cluster.peers entry: the node dials the new peer at once (with
 * membership through the store off: test_members covers that). */
START_TEST(sighup_adds_a_peer_from_the_reloaded_config)
{
    node a = {"node-a", free_port(), NULL, {{0}}, {0}};
    node b = {"node-b", free_port(), NULL, {{0}}, {0}};
    char cpath[4096];
    snprintf(cpath, sizeof cpath, "%s", ax_h_write_file(NULL, "peers.conf", "[log]\nlevel = info\n"));
    /* membership through the store off: the address book is cluster.peers alone */
    node_start(&a, TOKEN, NULL, 0, (const char *const[]){"-c", cpath, "--set", "cluster.membership=false", NULL});
    node_start(&b, TOKEN, NULL, 0, (const char *const[]){"--set", "cluster.membership=false", NULL});
    usleep(300000);
    cJSON *doc = nodes_doc(a.d);
    ck_assert_ptr_null(peer_of(doc, "node-b")); /* nobody dials anybody */
    cJSON_Delete(doc);
    char text[256];
    snprintf(text, sizeof text, "[cluster]\npeers = node-b=127.0.0.1:%d\n", b.port);
    ax_h_write_file(NULL, "peers.conf", text);
    ck_assert_int_eq(kill(ax_h_pid(a.d), SIGHUP), 0);
    ck_assert(ax_h_wait_log(a.d, "reload: new peer node-b", 5000));
    cJSON_Delete(wait_peer_state(a.d, "node-b", "up", 10000));
    ax_h_stop(b.d);
    ax_h_stop(a.d);
}
END_TEST

/* 1 if fd reaches EOF (or a reset) within ms. */
static int closed_within(int fd, int ms)
{
    double end = now_s() + ms / 1000.0;
    char buf[4096];
    while (now_s() < end) {
        struct pollfd pf = {.fd = fd, .events = POLLIN};
        if (poll(&pf, 1, 20) == 1) {
            ssize_t n = recv(fd, buf, sizeof buf, 0);
            if (n <= 0)
                return 1;
        }
    }
    return 0;
}

/* Before a peer authenticated, a frame may only be as large as a handshake needs: a
 * stranger that declares a 1 MiB HELLO is dropped at once, not buffered. */
START_TEST(a_stranger_declaring_a_huge_hello_is_dropped_at_once)
{
    node a = {"node-a", free_port(), NULL, {{0}}, {0}};
    node_start(&a, TOKEN, NULL, 0, NULL);
    int fd = fp_connect(a.port);
    uint8_t hdr[AX_PEER_HDR_SIZE];
    ax_peer_hdr h = {.version = AX_PEER_VERSION, .type = AX_PT_HELLO, .body_len = 1u << 20};
    ax_peer_hdr_encode(&h, hdr);
    ck_assert_int_eq(send(fd, hdr, sizeof hdr, MSG_NOSIGNAL), (ssize_t)sizeof hdr);
    ck_assert_msg(closed_within(fd, 1000), "a pre-auth frame of 1 MiB was accepted for buffering");
    close(fd);
    /* a real peer still gets in */
    node b = {"node-b", free_port(), NULL, {{0}}, {0}};
    node_start(&b, TOKEN, (const node *const[]){&a}, 1, NULL);
    cJSON_Delete(wait_peer_state(a.d, "node-b", "up", 10000));
    ax_h_stop(b.d);
    ax_h_stop(a.d);
}
END_TEST

static double cpu_ticks(pid_t pid)
{
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    ck_assert_ptr_nonnull(f);
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    const char *p = strrchr(buf, ')'); /* fields after the command name */
    unsigned long ut = 0, st = 0;
    ck_assert_int_eq(sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st), 2);
    return (double)(ut + st);
}

/* Out of file descriptors, the peer listener pauses instead of spinning on accept. */
START_TEST(peer_accept_pauses_when_out_of_descriptors)
{
    struct rlimit old, low;
    ck_assert_int_eq(getrlimit(RLIMIT_NOFILE, &old), 0);
    low = old;
    low.rlim_cur = 48; /* the daemon inherits it */
    ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &low), 0);
    node a = {"node-a", free_port(), NULL, {{0}}, {0}};
    node_start(&a, TOKEN, NULL, 0, NULL);
    ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &old), 0);
    int fds[120], n = 0;
    for (; n < 120; n++) /* many more than the daemon can take: the rest wait in the backlog */
        fds[n] = fp_connect(a.port);
    ck_assert(ax_h_wait_log(a.d, "Too many open files", 3000));
    double t0 = cpu_ticks(ax_h_pid(a.d));
    usleep(1000000);
    double used = cpu_ticks(ax_h_pid(a.d)) - t0, hz = (double)sysconf(_SC_CLK_TCK);
    printf("  out of fds: the daemon used %.0f%% of a CPU over 1 s\n", 100 * used / hz);
    ck_assert_msg(used < 0.2 * hz, "the peer listener spins when out of fds: %.0f%% CPU", 100 * used / hz);
    for (int i = 0; i < n; i++)
        close(fds[i]);
    /* and it serves again once descriptors are free */
    axc_conn *c = ax_h_connect(a.d);
    char *json = NULL;
    ck_assert_int_eq(axc_status(c, &json), 0);
    axc_free(json);
    axc_close(c);
    ax_h_stop(a.d);
}
END_TEST

/* A flood of strangers that connect and say nothing cannot keep a real peer out. */
START_TEST(a_flood_of_idle_strangers_does_not_keep_a_real_peer_out)
{
    node a = {"node-a", free_port(), NULL, {{0}}, {0}};
    node b = {"node-b", free_port(), NULL, {{0}}, {0}};
    node_start(&a, TOKEN, NULL, 0, NULL);
    enum { NS = 300 };
    static int fds[NS];
    for (int i = 0; i < NS; i++)
        fds[i] = fp_connect(a.port);
    usleep(200000); /* a has accepted them: its handshake slots are full */
    double t0 = now_s();
    node_start(&b, TOKEN, (const node *const[]){&a}, 1, NULL);
    cJSON_Delete(wait_peer_state(b.d, "node-a", "up", 10000));
    double took = now_s() - t0;
    printf("  %d idle strangers: node-b peered with node-a after %.0f ms\n", NS, took * 1000);
    ck_assert_msg(took < 3.0, "a real peer needed %.1f s to get past %d idle strangers", took, NS);
    for (int i = 0; i < NS; i++)
        close(fds[i]);
    ax_h_stop(b.d);
    ax_h_stop(a.d);
}
END_TEST

START_TEST(version_mismatch_is_refused_with_a_reason_logged_on_both_sides)
{
    node a = {"node-a", free_port(), NULL, {{0}}, {0}};
    node_start(&a, TOKEN, NULL, 0, NULL);
    axd_psess s;
    char why[320] = "";
    int fd = fp_handshake(a.port, "node-z@boot-0000000000000001-session-1", TOKEN, 7, 9, &s, why, sizeof why);
    ck_assert_int_eq(fd, -1);
    ck_assert_msg(strstr(why, "no common peer protocol version") && strstr(why, "7..9"), "%s", why);
    ck_assert(ax_h_wait_log(a.d, "no common peer protocol version", 5000));
    /* the daemon keeps serving peers that do speak its version */
    fd = fp_handshake(a.port, "node-z@boot-0000000000000001-session-2", TOKEN, 1, 3, &s, why, sizeof why);
    ck_assert_msg(fd >= 0, "%s", why);
    close(fd);
    axd_psess_free(&s);
    ax_h_stop(a.d);
}
END_TEST

START_TEST(wrong_token_and_same_name_spoofing_are_refused_and_counted)
{
    node a = {"node-a", free_port(), NULL, {{0}}, {0}}, b = {"node-b", free_port(), NULL, {{0}}, {0}};
    node_start(&a, TOKEN, (const node *const[]){&b}, 1, NULL);
    node_start(&b, TOKEN, (const node *const[]){&a}, 1, NULL);
    wait_up(&a, &b);
    cJSON *doc = nodes_doc(a.d);
    char wire[256];
    snprintf(wire, sizeof wire, "%s", str(peer_of(doc, "node-b"), "wire_id"));
    cJSON_Delete(doc);
    axc_conn *ca = ax_h_connect(a.d), *cb = ax_h_connect(b.d);
    axc_ref r = spawn_ok(cb, "counter", "c1");
    axc_target t = axc_by_ref(&r);
    /* another process claims to be node-b, with the wrong token */
    node evil = {"node-b", free_port(), NULL, {{0}}, {0}};
    node_start(&evil, "not-the-token-0123456", (const node *const[]){&a}, 1, NULL);
    /* the dialer checks the responder's proof first: evil finds the mismatch and
     * refuses; node-a logs the refusal with its reason */
    ck_assert(ax_h_wait_log(evil.d, "failed authentication", 5000));
    ck_assert(ax_h_wait_log(a.d, "auth_token mismatch", 5000));
    /* the real node-b keeps its session; traffic still flows to it */
    ck_assert_int_eq(axc_tell(ca, &t, "inc", NULL, 0), 0);
    expect_get(ca, &t, "1");
    doc = nodes_doc(a.d);
    cJSON *p = peer_of(doc, "node-b");
    ck_assert_str_eq(str(p, "wire_id"), wire);
    ck_assert_str_eq(str(p, "state"), "up");
    ck_assert(num(p, "auth_failures") >= 1);
    ck_assert(num(doc, "auth_failures") >= 1);
    cJSON_Delete(doc);
    /* a hand-made peer with a wrong token: refused by the daemon's check */
    axd_psess s;
    char why[320];
    int fd = fp_handshake(a.port, "node-q@boot-00000000000000aa-session-1", "wrong", 0, 0, &s, why, sizeof why);
    ck_assert_int_eq(fd, -1);
    ck_assert_msg(strstr(why, "failed authentication"), "%s", why);
    axc_close(ca);
    axc_close(cb);
    ax_h_stop(evil.d);
    ax_h_stop(a.d);
    ax_h_stop(b.d);
}
END_TEST

START_TEST(frames_claiming_an_unauthenticated_or_foreign_session_never_reach_actors)
{
    node a = {"node-a", free_port(), NULL, {{0}}, {0}};
    node_start(&a, TOKEN, NULL, 0, NULL);
    axc_conn *ca = ax_h_connect(a.d);
    axc_ref r = spawn_ok(ca, "counter", "c1");
    axc_target t = axc_by_ref(&r);
    ax_wbuf b;
    ax_wbuf_init(&b);
    /* 1: a TELL with a made-up session and MAC, no handshake at all */
    int fd = fp_connect(a.port);
    fp_tell(&b, NULL, 5, r.id, r.gen);
    fp_send(fd, &b);
    ck_assert(fp_read(fd, &b, 3000));
    ck_assert_uint_eq(frame_type(&b), AX_PT_REFUSE);
    close(fd);
    ck_assert(ax_h_wait_log(a.d, "not authenticated", 3000));
    /* 1b: a header announcing a body beyond cluster.max_frame: the link closes at once,
     * before any body is buffered */
    fd = fp_connect(a.port);
    b.len = 0;
    size_t st0 = ax_peer_frame_begin(&b, AX_PT_HELLO, 0);
    (void)st0;
    b.data[12] = 0x7f; /* body_len 0x7f000000 */
    fp_send(fd, &b);
    ck_assert_int_eq(fp_read(fd, &b, 3000), 0); /* EOF, no answer */
    close(fd);
    /* 2: authenticated as node-x; then a forged frame, a replay, a foreign session */
    axd_psess s;
    char why[320];
    fd = fp_handshake(a.port, "node-x@boot-00000000000000bb-session-4", TOKEN, 0, 0, &s, why, sizeof why);
    ck_assert_msg(fd >= 0, "%s", why);
    fp_tell(&b, &s, 0, r.id, r.gen); /* genuine */
    ax_wbuf copy;
    ax_wbuf_init(&copy);
    ax_wbuf_put(&copy, b.data, b.len);
    fp_send(fd, &b);
    ax_wbuf_put(&b, copy.data, copy.len); /* the same bytes again: a replay */
    fp_send(fd, &b);
    fp_tell(&b, &s, 0, r.id, r.gen);
    b.data[b.len - 1] ^= 0x20; /* forged payload byte */
    fp_send(fd, &b);
    fp_tell(&b, &s, 0, r.id, r.gen);
    b.data[11] ^= 1; /* claims another session: the MAC no longer matches either */
    fp_send(fd, &b);
    fp_tell(&b, &s, 0, r.id, r.gen); /* a last genuine one: once it counts, all were read */
    fp_send(fd, &b);
    wait_get(ca, &t, "2", 5000);
    usleep(100000);
    expect_get(ca, &t, "2");
    cJSON *doc = nodes_doc(a.d);
    cJSON *p = peer_of(doc, "node-x");
    ck_assert_ptr_nonnull(p);
    ck_assert_int_eq((int)num(p, "replayed"), 1);
    ck_assert_int_eq((int)num(p, "forged"), 2);
    ck_assert(num(doc, "unauthenticated_frames") >= 1);
    cJSON_Delete(doc);
    close(fd);
    axd_psess_free(&s);
    ax_wbuf_free(&copy);
    ax_wbuf_free(&b);
    axc_close(ca);
    ax_h_stop(a.d);
}
END_TEST

START_TEST(simultaneous_connects_end_with_exactly_one_link)
{
    for (int round = 0; round < 6; round++) {
        node a = {"node-a", free_port(), NULL, {{0}}, {0}}, b = {"node-b", free_port(), NULL, {{0}}, {0}};
        /* both dial at start, so every round races; backoff keeps retrying fast */
        node_start(&a, TOKEN, (const node *const[]){&b}, 1,
                   (const char *const[]){"--set", "cluster.reconnect_backoff_min_ms=1", NULL});
        node_start(&b, TOKEN, (const node *const[]){&a}, 1,
                   (const char *const[]){"--set", "cluster.reconnect_backoff_min_ms=1", NULL});
        wait_up(&a, &b);
        usleep(300000); /* let any loser finish closing */
        cJSON *da = nodes_doc(a.d), *db = nodes_doc(b.d);
        ck_assert_int_eq((int)num(da, "links"), 1);
        ck_assert_int_eq((int)num(db, "links"), 1);
        /* one TCP connection: exactly one side sees the other's listening port */
        char pa[32], pb[32];
        snprintf(pa, sizeof pa, "127.0.0.1:%d", a.port);
        snprintf(pb, sizeof pb, "127.0.0.1:%d", b.port);
        int a_dialed = !strcmp(str(peer_of(da, "node-b"), "address"), pb);
        int b_dialed = !strcmp(str(peer_of(db, "node-a"), "address"), pa);
        ck_assert_msg(a_dialed + b_dialed == 1, "round %d: a_dialed %d b_dialed %d", round, a_dialed, b_dialed);
        cJSON_Delete(da);
        cJSON_Delete(db);
        ax_h_stop(a.d);
        ax_h_stop(b.d);
    }
}
END_TEST

START_TEST(sigkill_fires_noconnection_once_and_a_restart_is_a_new_trusted_session)
{
    node a = {"node-a", free_port(), NULL, {{0}}, {0}}, b = {"node-b", free_port(), NULL, {{0}}, {0}};
    node_start(&a, TOKEN, (const node *const[]){&b}, 1, NULL);
    node_start(&b, TOKEN, (const node *const[]){&a}, 1, NULL);
    wait_up(&a, &b);
    cJSON *doc = nodes_doc(a.d);
    char old_wire[256];
    snprintf(old_wire, sizeof old_wire, "%s", str(peer_of(doc, "node-b"), "wire_id"));
    cJSON_Delete(doc);
    axc_conn *ca = ax_h_connect(a.d), *cb = ax_h_connect(b.d);
    axc_ref r = spawn_ok(cb, "counter", "c1");
    axc_close(cb);
    axc_target t = axc_by_ref(&r);
    uint64_t m1, m2;
    ck_assert_int_eq(axc_monitor(ca, &t, &m1), 0);
    ck_assert_int_eq(axc_monitor(ca, &t, &m2), 0);
    expect_get(ca, &t, "0");
    ax_h_kill(b.d);
    int downs = 0;
    char *ev = NULL;
    while (axc_next_event(ca, 4000, &ev) == 1 && ev) {
        ck_assert_msg(strstr(ev, "\"down\"") && strstr(ev, "noconnection"), "%s", ev);
        downs++;
        axc_free(ev);
        ev = NULL;
        if (downs == 2)
            break;
    }
    ck_assert_int_eq(downs, 2); /* one per monitor */
    ck_assert_int_eq(axc_next_event(ca, 1000, &ev), 0); /* and never again */
    int rc;
    axc_free(ask_text(ca, &t, "get", &rc));
    ck_assert_msg(rc == AX_ENOCONN || rc == AX_ENOTFOUND, "%s", ax_errname(rc));
    /* restart under the same name: a new boot, trusted once it has shaken hands */
    ax_h_restart(b.d, NULL);
    cJSON_Delete(wait_peer_state(a.d, "node-b", "up", 10000));
    doc = nodes_doc(a.d);
    const char *nw = str(peer_of(doc, "node-b"), "wire_id");
    ck_assert_str_ne(nw, old_wire);
    ck_assert_int_ne(strncmp(nw, old_wire, 29), 0); /* another boot part */
    cJSON_Delete(doc);
    cb = ax_h_connect(b.d);
    axc_ref r2 = spawn_ok(cb, "counter", "c2");
    axc_target t2 = axc_by_ref(&r2);
    ck_assert_int_eq(axc_tell(ca, &t2, "inc", NULL, 0), 0);
    expect_get(ca, &t2, "1");
    /* the old ref does not reach the new incarnation */
    axc_free(ask_text(ca, &t, "get", &rc));
    ck_assert_msg(rc == AX_ENOCONN || rc == AX_ENOTFOUND, "%s", ax_errname(rc));
    axc_close(ca);
    axc_close(cb);
    ax_h_stop(a.d);
    ax_h_stop(b.d);
}
END_TEST

START_TEST(a_data_flood_does_not_delay_heartbeats_beyond_the_timeout)
{
    node a = {"node-a", free_port(), NULL, {{0}}, {0}}, b = {"node-b", free_port(), NULL, {{0}}, {0}};
    const char *const fast[] = {"--set", "cluster.heartbeat_interval_ms=50", "--set",
                                "cluster.heartbeat_timeout_ms=500", NULL};
    node_start(&a, TOKEN, (const node *const[]){&b}, 1, fast);
    node_start(&b, TOKEN, (const node *const[]){&a}, 1, fast);
    wait_up(&a, &b);
    axc_conn *ca = ax_h_connect(a.d), *cb = ax_h_connect(b.d);
    axc_ref r;
    memset(&r, 0, sizeof r);
    ck_assert_int_eq(axc_spawn(cb, "counter", "sink", "{\"mailbox_capacity\":16777216}", &r), 0);
    axc_target t = axc_by_ref(&r);
    char payload[512];
    memset(payload, 'x', sizeof payload);
    double end = now_s() + 2.5;
    long sent = 0;
    while (now_s() < end) {
        for (int i = 0; i < 256; i++)
            if (axc_tell_noreply(ca, &t, "inc", payload, sizeof payload) == 0)
                sent++;
    }
    int rc;
    char *v = ask_text(ca, &t, "get", &rc);
    ck_assert_msg(rc == 0, "%s", ax_errname(rc));
    axc_free(v);
    cJSON *da = nodes_doc(a.d), *db = nodes_doc(b.d);
    cJSON *pa = peer_of(da, "node-b"), *pb = peer_of(db, "node-a");
    ck_assert_str_eq(str(pa, "state"), "up");
    ck_assert_str_eq(str(pb, "state"), "up");
    ck_assert_int_eq((int)num(pa, "downs"), 0);
    ck_assert_int_eq((int)num(pb, "downs"), 0);
    double gap_b = num(pb, "heartbeat_gap_max_ms"), gap_a = num(pa, "heartbeat_gap_max_ms");
    fprintf(stderr, "flood: %ld tells sent, %.0f bytes to node-b; max heartbeat gap at node-b %.1f ms, at node-a %.1f ms\n",
            sent, num(pa, "bytes_out"), gap_b, gap_a);
    ck_assert_msg(gap_b < 500 && gap_a < 500, "heartbeat gaps %.1f / %.1f ms", gap_b, gap_a);
    ck_assert(num(pa, "bytes_out") > 10e6);
    cJSON_Delete(da);
    cJSON_Delete(db);
    axc_close(ca);
    axc_close(cb);
    ax_h_stop(a.d);
    ax_h_stop(b.d);
}
END_TEST

/* A CA, certificates for node-a and node-b (SAN = the node name), and node-b's from a
 * rogue CA, in dir. */
static void make_certs(const char *dir)
{
    char script[2048];
    snprintf(script, sizeof script,
             "set -e; cd %s; "
             "gen_ca() { openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout $1.key "
             "-out $1.pem -days 2 -subj /CN=$1 2>/dev/null; }; "
             "gen() { printf 'subjectAltName=DNS:%%s\n' $2 > $3.ext; "
             "openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout $3.key -out $3.csr "
             "-subj /CN=$2 2>/dev/null; openssl x509 -req -in $3.csr -CA $1.pem -CAkey $1.key -CAcreateserial "
             "-out $3.pem -days 2 -extfile $3.ext 2>/dev/null; }; "
             "gen_ca ca; gen_ca rogue; gen ca node-a a; gen ca node-b b; gen rogue node-b evil",
             dir);
    const char *argv[] = {"/bin/sh", "-c", script, NULL};
    char *err = NULL;
    int st = ax_h_run(argv, NULL, &err, 30000);
    ck_assert_msg(st == 0, "openssl failed: %s", err ? err : "");
    free(err);
}

static int fd_count(pid_t pid)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/fd", (int)pid);
    DIR *d = opendir(path);
    ck_assert_ptr_nonnull(d);
    int n = 0;
    for (struct dirent *e; (e = readdir(d));)
        n += e->d_name[0] != '.';
    closedir(d);
    return n;
}

/* Idle strangers in the TLS phase are capped like handshakes (1,200 held ~900 fds before),
 * and a real TLS peer still gets in. */
START_TEST(idle_connections_in_the_tls_phase_are_capped)
{
    const char *dir = ax_h_tmpdir();
    make_certs(dir);
    char cert[2][300], key[2][300], ca[300];
    const char *base[2] = {"a", "b"};
    for (int i = 0; i < 2; i++) {
        snprintf(cert[i], sizeof cert[i], "cluster.tls_cert=%s/%s.pem", dir, base[i]);
        snprintf(key[i], sizeof key[i], "cluster.tls_key=%s/%s.key", dir, base[i]);
    }
    snprintf(ca, sizeof ca, "cluster.tls_ca=%s/ca.pem", dir);
    node a = {"node-a", free_port(), NULL, {{0}}, {0}}, b = {"node-b", free_port(), NULL, {{0}}, {0}};
    node_start(&a, TOKEN, NULL, 0,
               (const char *const[]){"--set", "cluster.tls=true", "--set", cert[0], "--set", key[0], "--set", ca, NULL});
    int base_fds = fd_count(ax_h_pid(a.d));
    enum { NS = 1200 };
    static int fds[NS];
    for (int i = 0; i < NS; i++)
        fds[i] = fp_connect(a.port);
    usleep(500000);
    int held = fd_count(ax_h_pid(a.d)) - base_fds;
    printf("  %d idle TCP connections to a TLS listener: the daemon holds %d fds for them\n", NS, held);
    ck_assert_msg(held <= 256 + 16, "the daemon holds %d fds for %d idle connections", held, NS);
    node_start(&b, TOKEN, (const node *const[]){&a}, 1,
               (const char *const[]){"--set", "cluster.tls=true", "--set", cert[1], "--set", key[1], "--set", ca, NULL});
    cJSON_Delete(wait_peer_state(b.d, "node-a", "up", 10000));
    for (int i = 0; i < NS; i++)
        close(fds[i]);
    ax_h_stop(b.d);
    ax_h_stop(a.d);
}
END_TEST

START_TEST(tls_links_verify_certificates_and_carry_traffic)
{
    const char *dir = ax_h_tmpdir();
    make_certs(dir);
    char cert[3][300], key[3][300], ca[300];
    const char *base[3] = {"a", "b", "evil"};
    for (int i = 0; i < 3; i++) {
        snprintf(cert[i], sizeof cert[i], "cluster.tls_cert=%s/%s.pem", dir, base[i]);
        snprintf(key[i], sizeof key[i], "cluster.tls_key=%s/%s.key", dir, base[i]);
    }
    snprintf(ca, sizeof ca, "cluster.tls_ca=%s/ca.pem", dir);
    node a = {"node-a", free_port(), NULL, {{0}}, {0}}, b = {"node-b", free_port(), NULL, {{0}}, {0}};
    node_start(&a, TOKEN, (const node *const[]){&b}, 1,
               (const char *const[]){"--set", "cluster.tls=true", "--set", cert[0], "--set", key[0], "--set", ca, NULL});
    node_start(&b, TOKEN, (const node *const[]){&a}, 1,
               (const char *const[]){"--set", "cluster.tls=true", "--set", cert[1], "--set", key[1], "--set", ca, NULL});
    wait_up(&a, &b);
    axc_conn *ca_ = ax_h_connect(a.d), *cb = ax_h_connect(b.d);
    axc_ref r = spawn_ok(cb, "counter", "c1");
    axc_target t = axc_by_ref(&r);
    for (int i = 0; i < 10; i++)
        ck_assert_int_eq(axc_tell(ca_, &t, "inc", NULL, 0), 0);
    expect_get(ca_, &t, "10");
    /* a node whose certificate another CA signed is refused by TLS itself */
    ax_h_stop(b.d);
    node evil = {"node-b", b.port, NULL, {{0}}, {0}};
    node_start(&evil, TOKEN, (const node *const[]){&a}, 1,
               (const char *const[]){"--set", "cluster.tls=true", "--set", cert[2], "--set", key[2], "--set", ca, NULL});
    ck_assert(ax_h_wait_log(evil.d, "certificate verif", 5000) || ax_h_wait_log(a.d, "certificate verif", 5000));
    usleep(300000);
    cJSON *doc = nodes_doc(a.d);
    ck_assert_str_ne(str(peer_of(doc, "node-b"), "state"), "up");
    cJSON_Delete(doc);
    /* TLS without the files is a configuration error at start */
    const char *bin = ax_h_build_path("daemon/axactord");
    char port[64];
    snprintf(port, sizeof port, "cluster.listen=127.0.0.1:%d", free_port());
    const char *argv[] = {bin, "--check-config", "--set", port, "--set", "cluster.auth_token=x", "--set",
                          "cluster.tls=true", NULL};
    char *err = NULL;
    ck_assert_int_eq(ax_h_run(argv, NULL, &err, 10000), 1);
    ck_assert_msg(strstr(err, "tls_cert"), "%s", err);
    free(err);
    axc_close(ca_);
    axc_close(cb);
    ax_h_stop(evil.d);
    ax_h_stop(a.d);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("cluster_tcp");
    TCase *t = tcase_create("tcp");
    tcase_set_timeout(t, 120);
    tcase_add_test(t, a_flood_of_idle_strangers_does_not_keep_a_real_peer_out);
    tcase_add_test(t, business_errors_and_deferred_replies_reach_a_remote_asker);
    tcase_add_test(t, a_stranger_declaring_a_huge_hello_is_dropped_at_once);
    tcase_add_test(t, peer_accept_pauses_when_out_of_descriptors);
    tcase_add_test(t, sighup_adds_a_peer_from_the_reloaded_config);
    tcase_add_test(t, peers_with_another_shard_count_or_lease_store_are_refused);
    tcase_add_test(t, two_daemons_handshake_and_carry_tell_and_ask_from_a_client_on_either_node);
    tcase_add_test(t, cluster_without_token_refuses_to_start_unless_insecure_is_allowed);
    tcase_add_test(t, version_mismatch_is_refused_with_a_reason_logged_on_both_sides);
    tcase_add_test(t, wrong_token_and_same_name_spoofing_are_refused_and_counted);
    tcase_add_test(t, frames_claiming_an_unauthenticated_or_foreign_session_never_reach_actors);
    tcase_add_test(t, simultaneous_connects_end_with_exactly_one_link);
    tcase_add_test(t, sigkill_fires_noconnection_once_and_a_restart_is_a_new_trusted_session);
    tcase_add_test(t, a_data_flood_does_not_delay_heartbeats_beyond_the_timeout);
    tcase_add_test(t, tls_links_verify_certificates_and_carry_traffic);
    tcase_add_test(t, idle_connections_in_the_tls_phase_are_capped);
    suite_add_tcase(s, t);
    return s;
}

int main(void)
{
    if (system("redis-server --version >/dev/null 2>&1") != 0) {
        fprintf(stderr, "redis-server not found (the clustered daemons' lease store): skipping\n");
        return 77;
    }
    SRunner *r = srunner_create(suite());
    srunner_run_all(r, CK_NORMAL);
    int failed = srunner_ntests_failed(r);
    srunner_free(r);
    return failed ? 1 : 0;
}
