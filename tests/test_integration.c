/* Integration tests of one axactord: real daemons started by the harness, driven through
 * libaxclient and raw frames. They prove the client-visible behaviour end to end: message
 * delivery and per-sender order, errors for stopped actors and stale refs, bad and oversize
 * frames closing only their connection, plugin refusal, config errors, shutdown. */
#include "axactor/client.h"
#include "axactor/plugin.h"
#include "frame.h"
#include "harness.h"

#include <check.h>
#include <cjson/cJSON.h>
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <grp.h>
#include <sys/socket.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *const COUNTER[] = {"-p", "counter", NULL};

/* ---------- helpers ---------- */

/* Ask msg and return the reply text (caller frees), failing the test on an error. */
static char *ask_ok(axc_conn *c, const axc_target *t, const char *msg)
{
    void *reply = NULL;
    size_t len = 0;
    int rc = axc_ask(c, t, msg, NULL, 0, 5000, &reply, &len);
    ck_assert_msg(rc == 0, "ask %s: %d %s (%s)", msg, rc, ax_errname(rc), axc_errmsg(c));
    ck_assert_ptr_nonnull(reply);
    ck_assert_uint_eq(strlen(reply), len);
    return reply;
}

static void expect_get(axc_conn *c, const axc_target *t, const char *want)
{
    char *v = ask_ok(c, t, "get");
    ck_assert_str_eq(v, want);
    axc_free(v);
}

static int ask_rc(axc_conn *c, const axc_target *t, const char *msg)
{
    void *reply = NULL;
    size_t len = 0;
    int rc = axc_ask(c, t, msg, NULL, 0, 5000, &reply, &len);
    axc_free(reply);
    return rc;
}

static axc_ref spawn_ok(axc_conn *c, const char *type, const char *name, const char *cfg)
{
    axc_ref r;
    memset(&r, 0, sizeof r);
    int rc = axc_spawn(c, type, name, cfg, &r);
    ck_assert_msg(rc == 0, "spawn %s %s: %d %s (%s)", type, name ? name : "-", rc, ax_errname(rc), axc_errmsg(c));
    ck_assert_uint_ne(r.id, 0);
    return r;
}

#define ck_assert_err(expr, code, c)                                                                               \
    do {                                                                                                           \
        int rc_ = (expr);                                                                                          \
        ck_assert_msg(rc_ == (code), "%s: got %d %s (%s), want %s", #expr, rc_, ax_errname(rc_), axc_errmsg(c),    \
                      ax_errname(code));                                                                           \
    } while (0)

/* Append one TELL frame for a named actor to b. */
static void put_tell(ax_wbuf *b, uint32_t req, uint16_t flags, const char *name, const char *msg, const void *p,
                     size_t n)
{
    ax_body_msg m;
    memset(&m, 0, sizeof m);
    m.target.kind = AX_TGT_NAME;
    m.target.name = name;
    m.target.name_len = strlen(name);
    m.msg = msg;
    m.msg_len = strlen(msg);
    m.payload = p;
    m.payload_len = n;
    size_t st = ax_frame_begin(b, AX_T_TELL, flags, req);
    ax_body_msg_put(b, AX_T_TELL, &m);
    ck_assert_int_eq(ax_frame_end(b, st, AX_FRAME_MAX_LIMIT), 0);
}

/* Read one frame that must be ERROR: returns its code, and the message in msg. */
static int read_error(int fd, uint32_t *req, char *msg, size_t msglen)
{
    uint8_t type = 0, *body = NULL;
    size_t blen = 0;
    ck_assert_msg(ax_h_raw_read_frame(fd, 5000, &type, req, &body, &blen) == 1, "EOF instead of an ERROR frame");
    ck_assert_msg(type == AX_T_ERROR, "got %s, want ERROR", ax_frame_type_name(type));
    ax_body_error e;
    const char *why = NULL;
    ck_assert_msg(ax_body_error_get(body, blen, &e, &why) == 0, "bad ERROR body: %s", why);
    snprintf(msg, msglen, "%.*s", (int)e.msg_len, e.msg);
    free(body);
    return e.code;
}

/* ---------- delivery ---------- */

START_TEST(spawn_counter_tell_10000_inc_then_get_is_10000)
{
    ax_h_daemon *d = ax_h_start(COUNTER);
    axc_conn *c = ax_h_connect(d);
    axc_ref r = spawn_ok(c, "counter", "c1", NULL);
    axc_target byname = axc_by_name("c1"), byref = axc_by_ref(&r);
    for (int i = 0; i < 10000; i++) {
        int rc = axc_tell(c, i % 2 ? &byname : &byref, "inc", NULL, 0);
        ck_assert_msg(rc == 0, "tell %d: %d %s (%s)", i, rc, ax_errname(rc), axc_errmsg(c));
    }
    expect_get(c, &byname, "10000");
    expect_get(c, &byref, "10000");
    axc_close(c);
    ax_h_stop(d);
}
END_TEST

/* Fire-and-forget tells then an ask on the same connection: per-sender order means the
 * ask is handled after every tell. The mailbox is made big enough for the whole burst:
 * a noreply tell to a full mailbox is dropped silently (that is backpressure, not loss
 * of an accepted message), and the daemon may read the whole burst before the actor runs. */
START_TEST(tell_noreply_10000_inc_then_get_is_10000)
{
    ax_h_daemon *d = ax_h_start(COUNTER);
    axc_conn *c = ax_h_connect(d);
    axc_ref r = spawn_ok(c, "counter", "c2", "{\"mailbox_capacity\": 20000}");
    axc_target t = axc_by_ref(&r);
    for (int i = 0; i < 10000; i++) {
        int rc = axc_tell_noreply(c, &t, "inc", NULL, 0);
        ck_assert_msg(rc == 0, "tell_noreply %d: %d %s (%s)", i, rc, ax_errname(rc), axc_errmsg(c));
    }
    expect_get(c, &t, "10000");
    /* and again without an explicit flush in between, by name this time */
    axc_target n = axc_by_name("c2");
    for (int i = 0; i < 500; i++)
        ck_assert_int_eq(axc_tell_noreply(c, &n, "inc", NULL, 0), 0);
    ck_assert_int_eq(axc_flush(c), 0);
    expect_get(c, &n, "10500");
    axc_close(c);
    ax_h_stop(d);
}
END_TEST

START_TEST(echo_replies_with_the_payload)
{
    ax_h_daemon *d = ax_h_start((const char *const[]){"-p", "counter", "-p", "echo", NULL});
    axc_conn *c = ax_h_connect(d);
    spawn_ok(c, "echo", "e", NULL);
    axc_target t = axc_by_name("e");
    static const char payload[] = "hello\0world"; /* binary-safe: an embedded NUL */
    void *reply = NULL;
    size_t len = 0;
    ck_assert_int_eq(axc_ask(c, &t, "echo", payload, sizeof payload, 5000, &reply, &len), 0);
    ck_assert_uint_eq(len, sizeof payload);
    ck_assert_mem_eq(reply, payload, sizeof payload);
    axc_free(reply);
    /* an empty payload comes back empty */
    ck_assert_int_eq(axc_ask(c, &t, "echo", NULL, 0, 5000, &reply, &len), 0);
    ck_assert_uint_eq(len, 0);
    axc_free(reply);
    axc_close(c);
    ax_h_stop(d);
}
END_TEST

/* ---------- errors for stopped actors, stale refs, bad requests ---------- */

START_TEST(ask_to_stopped_actor_is_an_error)
{
    ax_h_daemon *d = ax_h_start(COUNTER);
    axc_conn *c = ax_h_connect(d);
    axc_ref r1 = spawn_ok(c, "counter", "c1", NULL);
    axc_target n = axc_by_name("c1"), old = axc_by_ref(&r1);
    ck_assert_int_eq(axc_tell(c, &old, "inc", NULL, 0), 0);
    expect_get(c, &n, "1");
    ck_assert_int_eq(axc_stop(c, &n), 0);
    ck_assert_err(ask_rc(c, &n, "get"), AX_ENOPROC, c);
    ck_assert_err(ask_rc(c, &old, "get"), AX_ENOPROC, c);
    ck_assert_err(axc_tell(c, &old, "inc", NULL, 0), AX_ENOPROC, c);
    ck_assert_err(axc_stop(c, &old), AX_ENOPROC, c);
    axc_ref res;
    ck_assert_err(axc_resolve(c, &n, &res), AX_ENOPROC, c);

    /* a new actor under the same name: the old ref must not reach it */
    axc_ref r2 = spawn_ok(c, "counter", "c1", NULL);
    ck_assert_msg(r2.id != r1.id || r2.gen != r1.gen, "re-spawn reused the ref @%llu.%u",
                  (unsigned long long)r1.id, r1.gen);
    ck_assert_err(axc_tell(c, &old, "inc", NULL, 0), AX_ENOPROC, c);
    ck_assert_err(ask_rc(c, &old, "get"), AX_ENOPROC, c);
    ck_assert_err(axc_stop(c, &old), AX_ENOPROC, c);
    expect_get(c, &n, "0");
    ck_assert_int_eq(axc_resolve(c, &n, &res), 0);
    ck_assert_uint_eq(res.id, r2.id);
    ck_assert_uint_eq(res.gen, r2.gen);
    /* the connection is still fine after all those errors */
    ck_assert_int_eq(axc_tell(c, &n, "inc", NULL, 0), 0);
    expect_get(c, &n, "1");
    axc_close(c);
    ax_h_stop(d);
}
END_TEST

START_TEST(tell_to_unknown_message_is_enomsg)
{
    ax_h_daemon *d = ax_h_start(COUNTER);
    axc_conn *c = ax_h_connect(d);
    spawn_ok(c, "counter", "c1", NULL);
    axc_target n = axc_by_name("c1");
    ck_assert_int_eq(axc_tell(c, &n, "inc", NULL, 0), 0);
    ck_assert_err(axc_tell(c, &n, "nosuchmsg", NULL, 0), AX_ENOMSG, c);
    ck_assert_ptr_nonnull(strstr(axc_errmsg(c), "nosuchmsg"));
    ck_assert_err(ask_rc(c, &n, "nosuchmsg"), AX_ENOMSG, c);
    /* a refused message does not hurt the actor */
    expect_get(c, &n, "1");
    axc_close(c);
    ax_h_stop(d);
}
END_TEST

START_TEST(spawn_duplicate_name_is_eexist)
{
    ax_h_daemon *d = ax_h_start(COUNTER);
    axc_conn *c = ax_h_connect(d);
    axc_ref r1 = spawn_ok(c, "counter", "c1", NULL);
    axc_target n = axc_by_name("c1");
    ck_assert_int_eq(axc_tell(c, &n, "inc", NULL, 0), 0);
    axc_ref r2;
    ck_assert_err(axc_spawn(c, "counter", "c1", NULL, &r2), AX_EEXIST, c);
    /* the first one is untouched and still answers by name and by ref */
    expect_get(c, &n, "1");
    axc_target t1 = axc_by_ref(&r1);
    expect_get(c, &t1, "1");
    /* anonymous actors never clash */
    axc_ref a1 = spawn_ok(c, "counter", NULL, NULL), a2 = spawn_ok(c, "counter", NULL, NULL);
    ck_assert(a1.id != a2.id || a1.gen != a2.gen);
    axc_close(c);
    ax_h_stop(d);
}
END_TEST

START_TEST(unknown_actor_type_is_enotype)
{
    ax_h_daemon *d = ax_h_start(COUNTER);
    axc_conn *c = ax_h_connect(d);
    axc_ref r;
    ck_assert_err(axc_spawn(c, "nosuchtype", "x", NULL, &r), AX_ENOTYPE, c);
    ck_assert_ptr_nonnull(strstr(axc_errmsg(c), "nosuchtype"));
    /* the name was not taken by the failed spawn */
    spawn_ok(c, "counter", "x", NULL);
    axc_close(c);
    ax_h_stop(d);
}
END_TEST

START_TEST(bad_spawn_config_is_einval)
{
    ax_h_daemon *d = ax_h_start(COUNTER);
    axc_conn *c = ax_h_connect(d);
    axc_ref r;
    ck_assert_err(axc_spawn(c, "counter", "x", "{\"no_such_option\": 1}", &r), AX_EINVAL, c);
    ck_assert_ptr_nonnull(strstr(axc_errmsg(c), "no_such_option"));
    ck_assert_err(axc_spawn(c, "counter", "x", "[1, 2]", &r), AX_EINVAL, c);
    ck_assert_err(axc_spawn(c, "counter", "x", "{\"mailbox_capacity\": 0}", &r), AX_EINVAL, c);
    spawn_ok(c, "counter", "x", "{\"mailbox_capacity\": 8}");
    axc_close(c);
    ax_h_stop(d);
}
END_TEST

/* A burst of acked tells written in one go to an actor with capacity 4: the daemon reads
 * the whole burst before the actor runs, so some tells are refused with EFULL. Whatever
 * the split, every tell answered OK was delivered and none refused was. */
START_TEST(full_mailbox_refuses_with_efull)
{
    enum { N = 64 };
    ax_h_daemon *d = ax_h_start(COUNTER);
    axc_conn *c = ax_h_connect(d);
    spawn_ok(c, "counter", "small", "{\"mailbox_capacity\": 4}");
    int fd = ax_h_raw_hello(d);
    ax_wbuf b;
    ax_wbuf_init(&b);
    for (uint32_t i = 1; i <= N; i++)
        put_tell(&b, i, 0, "small", "inc", NULL, 0);
    ck_assert_int_eq(ax_h_raw_write(fd, b.data, b.len), 0);
    ax_wbuf_free(&b);
    int seen[N + 1] = {0}, ok = 0, full = 0;
    for (int i = 0; i < N; i++) {
        uint8_t type = 0, *body = NULL;
        size_t blen = 0;
        uint32_t req = 0;
        ck_assert_int_eq(ax_h_raw_read_frame(fd, 5000, &type, &req, &body, &blen), 1);
        ck_assert_msg(req >= 1 && req <= N && !seen[req], "unexpected or repeated req_id %u", req);
        seen[req] = 1;
        if (type == AX_T_OK) {
            ok++;
        } else {
            ck_assert_msg(type == AX_T_ERROR, "got %s", ax_frame_type_name(type));
            ax_body_error e;
            const char *why;
            ck_assert_int_eq(ax_body_error_get(body, blen, &e, &why), 0);
            ck_assert_msg(e.code == AX_EFULL, "tell %u refused with %d %s", req, e.code, ax_errname(e.code));
            full++;
        }
        free(body);
    }
    ck_assert_int_ge(ok, 4);
    ck_assert_int_ge(full, 1);
    close(fd);
    char want[16];
    snprintf(want, sizeof want, "%d", ok);
    axc_target t = axc_by_name("small");
    expect_get(c, &t, want);
    /* the status document counts the refusals */
    char *json = NULL;
    ck_assert_int_eq(axc_status(c, &json), 0);
    cJSON *doc = cJSON_Parse(json);
    ck_assert_ptr_nonnull(doc);
    cJSON *mf = cJSON_GetObjectItem(cJSON_GetObjectItem(doc, "counters"), "mailbox_full");
    ck_assert_msg(cJSON_IsNumber(mf) && mf->valuedouble == full, "status counters.mailbox_full: %s", json);
    cJSON_Delete(doc);
    axc_free(json);
    axc_close(c);
    ax_h_stop(d);
}
END_TEST

/* ---------- bad input on the socket ---------- */

START_TEST(garbage_frame_closes_only_that_connection)
{
    ax_h_daemon *d = ax_h_start(COUNTER);
    axc_conn *c = ax_h_connect(d);
    spawn_ok(c, "counter", "c1", NULL);
    axc_target n = axc_by_name("c1");
    ck_assert_int_eq(axc_tell(c, &n, "inc", NULL, 0), 0);

    /* garbage as the very first bytes */
    static const char garbage[] = "GET / HTTP/1.1\r\nHost: axactor\r\n\r\n";
    int fd = ax_h_raw_connect(ax_h_sock(d));
    ck_assert_int_eq(ax_h_raw_write(fd, garbage, sizeof garbage - 1), 0);
    char msg[256];
    uint32_t req = 99;
    int code = read_error(fd, &req, msg, sizeof msg);
    ck_assert_msg(code == AX_EPROTO, "garbage answered with %d %s (%s)", code, ax_errname(code), msg);
    ck_assert_uint_eq(req, 0);
    ck_assert_msg(ax_h_raw_wait_eof(fd, 5000), "no EOF after the ERROR frame");
    close(fd);

    /* the other client is unaffected */
    ck_assert_int_eq(axc_tell(c, &n, "inc", NULL, 0), 0);
    expect_get(c, &n, "2");

    /* garbage after a good HELLO and a good request */
    fd = ax_h_raw_hello(d);
    ax_wbuf b;
    ax_wbuf_init(&b);
    put_tell(&b, 7, 0, "c1", "inc", NULL, 0);
    ck_assert_int_eq(ax_h_raw_write(fd, b.data, b.len), 0);
    ax_wbuf_free(&b);
    uint8_t type = 0;
    ck_assert_int_eq(ax_h_raw_read_frame(fd, 5000, &type, &req, NULL, NULL), 1);
    ck_assert_uint_eq(type, AX_T_OK);
    ck_assert_uint_eq(req, 7);
    uint8_t junk[64];
    for (size_t i = 0; i < sizeof junk; i++)
        junk[i] = (uint8_t)(0xA5 ^ i * 37);
    ck_assert_int_eq(ax_h_raw_write(fd, junk, sizeof junk), 0);
    code = read_error(fd, &req, msg, sizeof msg);
    ck_assert_msg(code == AX_EPROTO, "junk answered with %d %s (%s)", code, ax_errname(code), msg);
    ck_assert_msg(ax_h_raw_wait_eof(fd, 5000), "no EOF after the ERROR frame");
    close(fd);

    /* a well-formed header of a daemon-to-client type is a protocol error too */
    fd = ax_h_raw_hello(d);
    uint8_t hdr[AX_FRAME_HDR_SIZE];
    ax_frame_hdr h = {AX_PROTO_VERSION, AX_T_REPLY, 0, 5, 0};
    ax_frame_hdr_encode(&h, hdr);
    ck_assert_int_eq(ax_h_raw_write(fd, hdr, sizeof hdr), 0);
    code = read_error(fd, &req, msg, sizeof msg);
    ck_assert_msg(code == AX_EPROTO, "REPLY from a client answered with %d %s (%s)", code, ax_errname(code), msg);
    ck_assert_msg(ax_h_raw_wait_eof(fd, 5000), "no EOF after the ERROR frame");
    close(fd);

    /* still unaffected, and the daemon logged the bad frames */
    expect_get(c, &n, "3");
    ck_assert_msg(ax_h_wait_log(d, "bad frame", 2000), "no 'bad frame' in the log:\n%s", ax_h_log(d));
    axc_close(c);
    ax_h_stop(d);
}
END_TEST

START_TEST(oversize_frame_closes_only_that_connection)
{
    ax_h_daemon *d = ax_h_start((const char *const[]){"-p", "counter", "--set", "client.max_frame=4096", NULL});
    axc_conn *c = ax_h_connect(d);
    spawn_ok(c, "counter", "c1", NULL);
    axc_target n = axc_by_name("c1");

    /* a frame of exactly max_frame body bytes is fine */
    int fd = ax_h_raw_hello(d);
    ax_wbuf b;
    ax_wbuf_init(&b);
    static uint8_t pay[4096];
    size_t fixed = 1 + 2 + 2 + 8 + 2 + 3 + 4; /* kind, str "c1", epoch, str "inc", blob length */
    put_tell(&b, 3, 0, "c1", "inc", pay, 4096 - fixed);
    ck_assert_uint_eq(b.len, AX_FRAME_HDR_SIZE + 4096);
    ck_assert_int_eq(ax_h_raw_write(fd, b.data, b.len), 0);
    ax_wbuf_free(&b);
    uint8_t type = 0;
    uint32_t req = 0;
    ck_assert_int_eq(ax_h_raw_read_frame(fd, 5000, &type, &req, NULL, NULL), 1);
    ck_assert_msg(type == AX_T_OK, "a max_frame-sized TELL got %s", ax_frame_type_name(type));

    /* one byte more is refused from the header alone, before any body arrives */
    uint8_t hdr[AX_FRAME_HDR_SIZE];
    ax_frame_hdr h = {AX_PROTO_VERSION, AX_T_TELL, 0, 4, 4097};
    ax_frame_hdr_encode(&h, hdr);
    ck_assert_int_eq(ax_h_raw_write(fd, hdr, sizeof hdr), 0);
    char msg[256];
    int code = read_error(fd, &req, msg, sizeof msg);
    ck_assert_msg(code == AX_ETOOBIG, "oversize header answered with %d %s (%s)", code, ax_errname(code), msg);
    ck_assert_msg(ax_h_raw_wait_eof(fd, 5000), "no EOF after the ERROR frame");
    close(fd);

    /* a huge declared length, with some body bytes following */
    fd = ax_h_raw_hello(d);
    h.body_len = 0xFFFFFFF0u;
    ax_frame_hdr_encode(&h, hdr);
    ck_assert_int_eq(ax_h_raw_write(fd, hdr, sizeof hdr), 0);
    (void)ax_h_raw_write(fd, pay, 1000); /* may fail if the daemon closed already */
    code = read_error(fd, &req, msg, sizeof msg);
    ck_assert_msg(code == AX_ETOOBIG, "huge header answered with %d %s (%s)", code, ax_errname(code), msg);
    ck_assert_msg(ax_h_raw_wait_eof(fd, 5000), "no EOF after the ERROR frame");
    close(fd);

    /* the libaxclient connection never saw any of it */
    ck_assert_int_eq(axc_tell(c, &n, "inc", NULL, 0), 0);
    expect_get(c, &n, "2");
    axc_close(c);
    ax_h_stop(d);
}
END_TEST

/* libaxclient learns max_frame from HELLO_OK and refuses a bigger request itself, and the
 * connection stays usable. */
START_TEST(client_refuses_oversize_request_and_stays_usable)
{
    ax_h_daemon *d = ax_h_start((const char *const[]){"-p", "echo", "--set", "client.max_frame=4096", NULL});
    axc_conn *c = ax_h_connect(d);
    spawn_ok(c, "echo", "e", NULL);
    axc_target t = axc_by_name("e");
    static char big[8192];
    memset(big, 'x', sizeof big);
    ck_assert_err(axc_tell(c, &t, "echo", big, sizeof big), AX_ETOOBIG, c);
    void *reply = NULL;
    size_t len = 0;
    ck_assert_err(axc_ask(c, &t, "echo", big, sizeof big, 5000, &reply, &len), AX_ETOOBIG, c);
    ck_assert_int_eq(axc_ask(c, &t, "echo", big, 1000, 5000, &reply, &len), 0);
    ck_assert_uint_eq(len, 1000);
    axc_free(reply);
    axc_close(c);
    ax_h_stop(d);
}
END_TEST


/* PROTOCOL.md, connection rule 4: a body that fails the rules of its frame type is a
 * protocol error like a bad header: one ERROR EPROTO (with the frame's req_id), then the
 * daemon closes that connection. */
/* Is p[0..n) valid UTF-8 without control characters? */
static int utf8_clean(const unsigned char *p, size_t n)
{
    for (size_t i = 0; i < n;) {
        size_t len = p[i] < 0x80 ? 1 : (p[i] & 0xe0) == 0xc0 ? 2 : (p[i] & 0xf0) == 0xe0 ? 3 : (p[i] & 0xf8) == 0xf0 ? 4 : 0;
        if (!len || i + len > n || (len == 1 && (p[i] < 0x20 || p[i] == 0x7f)) || (len == 2 && p[i] < 0xc2))
            return 0;
        for (size_t k = 1; k < len; k++)
            if ((p[i + k] & 0xc0) != 0x80)
                return 0;
        i += len;
    }
    return 1;
}

/* Bytes a client sends (a key, a path) come back escaped in ERROR messages, never raw. */
START_TEST(error_messages_are_valid_utf8_whatever_the_client_sent)
{
    ax_h_daemon *d = ax_h_start(COUNTER);
    axc_conn *c = ax_h_connect(d);
    /* a DIRECT ask to a missing keyed actor whose key is not UTF-8: ENOTFOUND names the key */
    axc_target t = axc_by_key("counter", "k\xff\xfe\x01z");
    void *reply = NULL;
    size_t rn = 0;
    int rc = axc_ask_ex(c, &t, "get", NULL, 0, 2000, AXC_DIRECT, &reply, &rn);
    ck_assert_int_eq(rc, AX_ENOTFOUND);
    const char *m = axc_errmsg(c);
    ck_assert_msg(utf8_clean((const unsigned char *)m, strlen(m)), "not clean UTF-8: %s", m);
    ck_assert_msg(strstr(m, "\\xff\\xfe\\x01"), "the key's bytes are not escaped: %s", m);
    /* through a raw connection, so libaxclient's own cleaning is out of the way */
    int fd = ax_h_raw_hello(d);
    static const char path[] = "/nonexistent/\xc3\x28\xff.so";
    uint8_t body[64];
    size_t bl = sizeof path - 1;
    body[0] = 0;
    body[1] = (uint8_t)bl;
    memcpy(body + 2, path, bl);
    uint8_t hdr[AX_FRAME_HDR_SIZE];
    ax_frame_hdr h = {AX_PROTO_VERSION, AX_T_PLUGIN_LOAD, 0, 9, (uint32_t)(bl + 2)};
    ax_frame_hdr_encode(&h, hdr);
    ck_assert_int_eq(ax_h_raw_write(fd, hdr, sizeof hdr), 0);
    ck_assert_int_eq(ax_h_raw_write(fd, body, bl + 2), 0);
    uint8_t type, *b = NULL;
    uint32_t req;
    size_t n = 0;
    ck_assert_int_eq(ax_h_raw_read_frame(fd, 5000, &type, &req, &b, &n), 1);
    ck_assert_uint_eq(type, AX_T_ERROR);
    ck_assert_uint_ge(n, 6);
    size_t ml = (size_t)b[4] << 8 | b[5];
    ck_assert_uint_eq(ml + 6, n);
    ck_assert_msg(utf8_clean(b + 6, ml), "ERROR message is not clean UTF-8: %.*s", (int)ml, b + 6);
    free(b);
    close(fd);
    axc_close(c);
    ax_h_stop(d);
}
END_TEST

START_TEST(malformed_body_gets_eproto_and_closes_connection)
{
    ax_h_daemon *d = ax_h_start(COUNTER);
    axc_conn *c = ax_h_connect(d);
    spawn_ok(c, "counter", "c1", NULL);
    static const struct {
        uint8_t type;
        const char *body;
        size_t len;
    } bad[] = {
        {AX_T_TELL, "\x01\x00", 2},         /* target cut short */
        {AX_T_ASK, "\x07\x00\x00", 3},      /* unknown target kind */
        {AX_T_SPAWN, "\x00\x09xx", 4},      /* str longer than the body */
        {AX_T_STOP, "\x01\x00\x02" "c1zz", 7}, /* trailing bytes */
        {AX_T_STATUS, "x", 1},              /* STATUS has an empty body */
        {AX_T_PLUGIN_UNLOAD, "\x00\x08two word", 10}, /* not a valid plugin name */
        {AX_T_PLUGIN_UNLOAD, "\x00\x00", 2},          /* empty name */
        {AX_T_EXIT, "\x01\x00\x02" "c1" "\x00\x03a b", 10}, /* reason is not a name */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int fd = ax_h_raw_hello(d);
        uint8_t hdr[AX_FRAME_HDR_SIZE];
        ax_frame_hdr h = {AX_PROTO_VERSION, bad[i].type, 0, 40 + (uint32_t)i, (uint32_t)bad[i].len};
        ax_frame_hdr_encode(&h, hdr);
        ck_assert_int_eq(ax_h_raw_write(fd, hdr, sizeof hdr), 0);
        ck_assert_int_eq(ax_h_raw_write(fd, bad[i].body, bad[i].len), 0);
        char msg[256];
        uint32_t req = 0;
        int code = read_error(fd, &req, msg, sizeof msg);
        ck_assert_msg(code == AX_EPROTO, "malformed %s body answered with %d %s (%s)",
                      ax_frame_type_name(bad[i].type), code, ax_errname(code), msg);
        ck_assert_uint_eq(req, 40 + i);
        ck_assert_msg(ax_h_raw_wait_eof(fd, 3000), "malformed %s body (%s): ERROR sent but the connection stayed open",
                      ax_frame_type_name(bad[i].type), msg);
        close(fd);
    }
    axc_target n = axc_by_name("c1");
    expect_get(c, &n, "0");
    axc_close(c);
    ax_h_stop(d);
}
END_TEST

/* PROTOCOL.md, connection rules 1 and 2: HELLO first, exactly once, with a common version. */
START_TEST(hello_rules_are_enforced_per_connection)
{
    ax_h_daemon *d = ax_h_start(COUNTER);
    axc_conn *c = ax_h_connect(d);
    spawn_ok(c, "counter", "c1", NULL);
    char msg[256];
    uint32_t req = 0;
    ax_wbuf b;

    /* a request before HELLO */
    int fd = ax_h_raw_connect(ax_h_sock(d));
    ax_wbuf_init(&b);
    put_tell(&b, 11, 0, "c1", "inc", NULL, 0);
    ck_assert_int_eq(ax_h_raw_write(fd, b.data, b.len), 0);
    ax_wbuf_free(&b);
    int code = read_error(fd, &req, msg, sizeof msg);
    ck_assert_msg(code == AX_EPROTO, "TELL before HELLO: %d %s (%s)", code, ax_errname(code), msg);
    ck_assert_msg(ax_h_raw_wait_eof(fd, 5000), "no EOF");
    close(fd);

    /* no common version */
    fd = ax_h_raw_connect(ax_h_sock(d));
    ax_wbuf_init(&b);
    size_t st = ax_frame_begin(&b, AX_T_HELLO, 0, 12);
    ax_body_hello hb = {AX_PROTO_VERSION + 1, AX_PROTO_VERSION + 5, "future", 6};
    ax_body_hello_put(&b, &hb);
    ck_assert_int_eq(ax_frame_end(&b, st, AX_FRAME_MAX_DEFAULT), 0);
    ck_assert_int_eq(ax_h_raw_write(fd, b.data, b.len), 0);
    ax_wbuf_free(&b);
    code = read_error(fd, &req, msg, sizeof msg);
    ck_assert_msg(code == AX_EVERSION, "HELLO 2..6: %d %s (%s)", code, ax_errname(code), msg);
    ck_assert_uint_eq(req, 12);
    ck_assert_msg(ax_h_raw_wait_eof(fd, 5000), "no EOF");
    close(fd);

    /* a second HELLO */
    fd = ax_h_raw_hello(d);
    ax_wbuf_init(&b);
    st = ax_frame_begin(&b, AX_T_HELLO, 0, 13);
    hb = (ax_body_hello){AX_PROTO_VERSION_MIN, AX_PROTO_VERSION, "again", 5};
    ax_body_hello_put(&b, &hb);
    ck_assert_int_eq(ax_frame_end(&b, st, AX_FRAME_MAX_DEFAULT), 0);
    ck_assert_int_eq(ax_h_raw_write(fd, b.data, b.len), 0);
    ax_wbuf_free(&b);
    code = read_error(fd, &req, msg, sizeof msg);
    ck_assert_msg(code == AX_EPROTO, "second HELLO: %d %s (%s)", code, ax_errname(code), msg);
    ck_assert_msg(ax_h_raw_wait_eof(fd, 5000), "no EOF");
    close(fd);

    /* NOREPLY on an ASK is a bad header */
    fd = ax_h_raw_hello(d);
    uint8_t hdr[AX_FRAME_HDR_SIZE];
    ax_frame_hdr h = {AX_PROTO_VERSION, AX_T_ASK, AX_F_NOREPLY, 14, 0};
    ax_frame_hdr_encode(&h, hdr);
    ck_assert_int_eq(ax_h_raw_write(fd, hdr, sizeof hdr), 0);
    code = read_error(fd, &req, msg, sizeof msg);
    ck_assert_msg(code == AX_EPROTO, "NOREPLY ASK: %d %s (%s)", code, ax_errname(code), msg);
    ck_assert_msg(ax_h_raw_wait_eof(fd, 5000), "no EOF");
    close(fd);

    axc_target n = axc_by_name("c1");
    expect_get(c, &n, "0");
    axc_close(c);
    ax_h_stop(d);
}
END_TEST

/* Many max-size frames written back to back: the daemon's input buffer (bounded by one
 * max frame plus a read chunk) must take them all, in order. */
START_TEST(max_size_frames_back_to_back_are_all_handled)
{
    enum { N = 100 };
    ax_h_daemon *d = ax_h_start((const char *const[]){"-p", "counter", "--set", "client.max_frame=4096", NULL});
    axc_conn *c = ax_h_connect(d);
    spawn_ok(c, "counter", "c1", "{\"mailbox_capacity\": 1000}");
    int fd = ax_h_raw_hello(d);
    static uint8_t pay[4096];
    size_t fixed = 1 + 2 + 2 + 8 + 2 + 3 + 4;
    ax_wbuf b;
    ax_wbuf_init(&b);
    for (uint32_t i = 1; i <= N; i++)
        put_tell(&b, i, 0, "c1", "inc", pay, 4096 - fixed);
    ck_assert_uint_eq(b.len, N * (AX_FRAME_HDR_SIZE + 4096));
    /* write in odd-sized pieces so frames straddle reads */
    for (size_t off = 0; off < b.len;) {
        size_t n = b.len - off < 7777 ? b.len - off : 7777;
        ck_assert_int_eq(ax_h_raw_write(fd, b.data + off, n), 0);
        off += n;
    }
    ax_wbuf_free(&b);
    for (uint32_t i = 1; i <= N; i++) {
        uint8_t type = 0;
        uint32_t req = 0;
        ck_assert_int_eq(ax_h_raw_read_frame(fd, 5000, &type, &req, NULL, NULL), 1);
        ck_assert_msg(type == AX_T_OK, "frame %u answered by %s", i, ax_frame_type_name(type));
        ck_assert_uint_eq(req, i);
    }
    close(fd);
    axc_target n = axc_by_name("c1");
    expect_get(c, &n, "100");
    axc_close(c);
    ax_h_stop(d);
}
END_TEST

START_TEST(max_clients_refuses_extra_connections)
{
    ax_h_daemon *d = ax_h_start((const char *const[]){"-p", "counter", "--set", "client.max_clients=2", NULL});
    axc_conn *a = NULL, *b = NULL, *x = NULL;
    char err[256] = "";
    /* the harness's readiness probe has just closed: with two workers its close may be
     * seen (and its place given back) a moment after these connect */
    for (int i = 0; i < 200 && !b; i++) {
        if (axc_connect(ax_h_sock(d), 1000, a ? &b : &a, err, sizeof err) != 0)
            usleep(10000);
    }
    ck_assert_msg(a && b, "two clients not accepted with max_clients=2: %s", err);
    int rc = axc_connect(ax_h_sock(d), 2000, &x, err, sizeof err);
    ck_assert_msg(rc != 0 && x == NULL, "a third client was accepted with max_clients=2");
    ck_assert_msg(ax_h_wait_log(d, "max_clients", 2000), "refusal not logged:\n%s", ax_h_log(d));
    /* the two accepted ones still work; once one leaves, a new client gets in */
    spawn_ok(a, "counter", "c1", NULL);
    axc_target n = axc_by_name("c1");
    expect_get(b, &n, "0");
    axc_close(a);
    for (int i = 0; i < 200 && !x; i++) { /* the daemon sees the close asynchronously */
        if (axc_connect(ax_h_sock(d), 1000, &x, err, sizeof err) != 0)
            usleep(10000);
    }
    ck_assert_msg(x != NULL, "no slot freed after a client left: %s", err);
    expect_get(x, &n, "0");
    axc_close(x);
    axc_close(b);
    ax_h_stop(d);
}
END_TEST

/* Asks pipelined ahead of a stop: each gets exactly one answer, a reply or ENOPROC. */
START_TEST(pipelined_asks_then_stop_each_get_one_answer)
{
    enum { N = 50 };
    ax_h_daemon *d = ax_h_start(COUNTER);
    axc_conn *c = ax_h_connect(d), *c2 = ax_h_connect(d);
    spawn_ok(c, "counter", "c1", NULL);
    axc_target n = axc_by_name("c1");
    uint32_t ids[N];
    for (int i = 0; i < N; i++)
        ck_assert_int_eq(axc_send_ask(c, &n, "get", NULL, 0, 5000, &ids[i]), 0);
    ck_assert_int_eq(axc_flush(c), 0);
    ck_assert_int_eq(axc_stop(c2, &n), 0);
    int got = 0, seen[N] = {0};
    for (int iter = 0; iter < 500 && got < N; iter++) {
        axc_result r;
        int k = axc_poll_result(c, 100, &r);
        ck_assert_int_ge(k, 0);
        if (k == 0)
            continue;
        int idx = -1;
        for (int i = 0; i < N; i++)
            if (ids[i] == r.req_id)
                idx = i;
        ck_assert_msg(idx >= 0 && !seen[idx], "unexpected or repeated result for req %u", r.req_id);
        seen[idx] = 1;
        ck_assert_msg(r.status == AX_OK || r.status == AX_ENOPROC, "ask %d ended with %d %s", idx, r.status,
                      ax_errname(r.status));
        axc_free(r.data);
        got++;
    }
    ck_assert_int_eq(got, N);
    ck_assert_err(ask_rc(c, &n, "get"), AX_ENOPROC, c);
    axc_close(c2);
    axc_close(c);
    ax_h_stop(d);
}
END_TEST


/* A client that sends asks and never reads the replies: the daemon bounds what it queues
 * for it (client.outbuf_max) by no longer reading from it, or by dropping it; either way
 * other clients keep being served and the daemon stops cleanly afterwards. */
static long rss_kb(pid_t pid)
{
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    long kb = -1;
    while (f && fgets(line, sizeof line, f))
        if (!strncmp(line, "VmRSS:", 6))
            kb = strtol(line + 6, NULL, 10);
    if (f)
        fclose(f);
    return kb;
}

/* client.outbuf_max holds per request, not per read: a burst of requests with large
 * replies from a client that does not read stops being handled once the bound is
 * reached, and is handled in full (nothing lost) once the client reads. */
START_TEST(output_bound_holds_within_one_burst_of_requests)
{
    ax_h_daemon *d = ax_h_start((const char *const[]){"--set", "client.outbuf_max=1M", NULL});
    int fd = ax_h_raw_hello(d);
    enum { NREQ = 4096 }; /* 64 KiB of SHARDS requests, one write; each reply ~25 KB */
    uint8_t *burst = malloc((size_t)NREQ * AX_FRAME_HDR_SIZE);
    for (uint32_t i = 0; i < NREQ; i++) {
        ax_frame_hdr h = {AX_PROTO_VERSION, AX_T_SHARDS, 0, i + 1, 0};
        ax_frame_hdr_encode(&h, burst + (size_t)i * AX_FRAME_HDR_SIZE);
    }
    long before = rss_kb(ax_h_pid(d));
    ck_assert_int_eq(ax_h_raw_write(fd, burst, (size_t)NREQ * AX_FRAME_HDR_SIZE), 0);
    free(burst);
    usleep(500000); /* the daemon handles what it will */
    long during = rss_kb(ax_h_pid(d));
    printf("  %d SHARDS requests unread: daemon RSS %ld -> %ld KiB (bound 1 MiB of output)\n", NREQ, before, during);
#if !defined(__SANITIZE_ADDRESS__)
    /* (under ASan freed memory stays in its quarantine: RSS says nothing there) */
    ck_assert_msg(during - before < 16 * 1024, "RSS grew by %ld KiB for a client that does not read", during - before);
#endif
    /* the client reads: every request is answered, in order */
    for (uint32_t i = 0; i < NREQ; i++) {
        uint8_t type, *body = NULL;
        uint32_t req;
        size_t n = 0;
        ck_assert_int_eq(ax_h_raw_read_frame(fd, 10000, &type, &req, &body, &n), 1);
        ck_assert_uint_eq(type, AX_T_JSON);
        ck_assert_uint_eq(req, i + 1);
        free(body);
    }
    close(fd);
    ax_h_stop(d);
}
END_TEST

/* Files that are not a loadable plugin of this machine are refused before dlopen maps
 * them (a truncated .so made the dynamic loader SIGBUS the daemon), and a descriptor
 * symbol that is not an aligned data object is refused before a field is read. */
START_TEST(truncated_or_malformed_plugin_files_are_refused_and_the_daemon_lives)
{
    char trusted[4200];
    snprintf(trusted, sizeof trusted, "plugins.trusted_dirs=%s", ax_h_tmpdir());
    ax_h_daemon *d = ax_h_start((const char *const[]){"-p", "counter", "--set", trusted, NULL});
    axc_conn *c = ax_h_connect(d);
    /* the first 1000 bytes of counter.so, and other broken copies */
    FILE *in = fopen(ax_h_build_path("plugins/counter.so"), "rb");
    ck_assert_ptr_nonnull(in);
    static unsigned char so[1 << 20];
    size_t n = fread(so, 1, sizeof so, in);
    fclose(in);
    ck_assert_uint_gt(n, 4096);
    struct {
        const char *name;
        size_t len;
        int patch; /* byte offset to corrupt, -1 none */
        const char *why;
    } cases[] = {
        {"trunc1000.so", 1000, -1, "truncated"},
        {"trunc32.so", 32, -1, "shorter than an ELF header"},
        {"half.so", 0, -1, "truncated"},   /* len set below: half the file */
        {"notelf.so", 0, 1, "not an ELF file"},
        {"othermachine.so", 0, 18, "another machine"},
    };
    cases[2].len = n / 2;
    cases[3].len = cases[4].len = n;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", ax_h_tmpdir(), cases[i].name);
        FILE *f = fopen(path, "wb");
        ck_assert_ptr_nonnull(f);
        unsigned char saved = cases[i].patch >= 0 ? so[cases[i].patch] : 0;
        if (cases[i].patch >= 0)
            so[cases[i].patch] ^= 0x5a;
        ck_assert_uint_eq(fwrite(so, 1, cases[i].len, f), cases[i].len);
        if (cases[i].patch >= 0)
            so[cases[i].patch] = saved;
        fclose(f);
        char *json = NULL;
        int rc = axc_plugin_load(c, path, &json);
        ck_assert_msg(rc == AX_EABI, "%s: %d %s (%s)", cases[i].name, rc, ax_errname(rc), axc_errmsg(c));
        ck_assert_msg(strstr(axc_errmsg(c), cases[i].why), "%s: %s", cases[i].name, axc_errmsg(c));
        axc_free(json);
    }
    /* descriptors that are not an aligned ax_plugin_desc object */
    const char *bad[][2] = {{"plugins/bad_desc_func.so", "not a data object"},
                            {"plugins/bad_desc_misaligned.so", "misaligned"}};
    for (size_t i = 0; i < 2; i++) {
        char *json = NULL;
        int rc = axc_plugin_load(c, ax_h_build_path(bad[i][0]), &json);
        ck_assert_msg(rc == AX_EABI, "%s: %d %s (%s)", bad[i][0], rc, ax_errname(rc), axc_errmsg(c));
        ck_assert_msg(strstr(axc_errmsg(c), bad[i][1]), "%s: %s", bad[i][0], axc_errmsg(c));
        axc_free(json);
    }
    /* the daemon serves on, and a good plugin still loads */
    spawn_ok(c, "counter", "c1", NULL);
    char *json = NULL;
    ck_assert_int_eq(axc_plugin_load(c, ax_h_build_path("plugins/echo.so"), &json), 0);
    axc_free(json);
    axc_close(c);
    ax_h_stop(d);
}
END_TEST

/* Each signal sent to a real daemon: SIGHUP reloads (a good file applies, a bad one is
 * refused and changes nothing), SIGUSR1/SIGUSR2 are ignored, SIGTERM stops cleanly. */
START_TEST(signals_reload_or_are_ignored_and_never_kill_the_daemon)
{
    const char *conf = ax_h_write_file(NULL, "hup.conf", "[log]\nlevel = info\n[plugins]\nload = counter\n");
    char cpath[4096];
    snprintf(cpath, sizeof cpath, "%s", conf);
    ax_h_daemon *d = ax_h_start((const char *const[]){"-c", cpath, NULL});
    axc_conn *c = ax_h_connect(d);
    spawn_ok(c, "counter", "c1", NULL);
    pid_t pid = ax_h_pid(d);
    /* a good new file: a plugin more, another log level */
    ax_h_write_file(NULL, "hup.conf", "[log]\nlevel = debug\n[plugins]\nload = counter\nload = echo\n");
    ck_assert_int_eq(kill(pid, SIGHUP), 0);
    ck_assert_msg(ax_h_wait_log(d, "configuration reloaded: 1 plugin(s) loaded", 5000), "no reload:\n%s", ax_h_log(d));
    ck_assert_msg(ax_h_wait_log(d, "log level debug", 1000), "log level not applied:\n%s", ax_h_log(d));
    char *json = NULL;
    ck_assert_int_eq(axc_plugins(c, &json), 0);
    ck_assert_msg(strstr(json, "\"echo\""), "echo not loaded after SIGHUP: %s", json);
    axc_free(json);
    spawn_ok(c, "echo", "e1", NULL);
    /* a bad file: refused, nothing changes, the daemon serves on */
    ax_h_write_file(NULL, "hup.conf", "[log]\nlevel = loud\n");
    ck_assert_int_eq(kill(pid, SIGHUP), 0);
    ck_assert_msg(ax_h_wait_log(d, "reload refused", 5000), "bad reload not logged:\n%s", ax_h_log(d));
    ck_assert_msg(ax_h_wait_log(d, "hup.conf:2", 1000), "the refusal does not name the line:\n%s", ax_h_log(d));
    axc_target t = axc_by_name("c1");
    expect_get(c, &t, "0");
    /* the user signals mean nothing and kill nothing */
    ck_assert_int_eq(kill(pid, SIGUSR1), 0);
    ck_assert_int_eq(kill(pid, SIGUSR2), 0);
    usleep(200000);
    int st;
    ck_assert_msg(!ax_h_exited(d, &st), "the daemon died of a user signal (status %d)", st);
    expect_get(c, &t, "0");
    axc_close(c);
    ax_h_stop(d); /* SIGTERM: exit 0, socket removed */
}
END_TEST

/* A client that connects and never sends HELLO is closed after client.hello_timeout_ms. */
START_TEST(a_client_that_sends_no_hello_is_closed_after_the_timeout)
{
    ax_h_daemon *d = ax_h_start((const char *const[]){"--set", "client.hello_timeout_ms=300", NULL});
    int fd = ax_h_raw_connect(ax_h_sock(d));
    ck_assert_msg(ax_h_raw_wait_eof(fd, 3000), "a silent client was not closed");
    close(fd);
    /* one that says HELLO in time stays */
    fd = ax_h_raw_hello(d);
    usleep(600000);
    uint8_t hdr[AX_FRAME_HDR_SIZE];
    ax_frame_hdr h = {AX_PROTO_VERSION, AX_T_STATUS, 0, 5, 0};
    ax_frame_hdr_encode(&h, hdr);
    ck_assert_int_eq(ax_h_raw_write(fd, hdr, sizeof hdr), 0);
    uint8_t type, *body = NULL;
    uint32_t req;
    size_t n = 0;
    ck_assert_int_eq(ax_h_raw_read_frame(fd, 5000, &type, &req, &body, &n), 1);
    ck_assert_uint_eq(type, AX_T_JSON);
    free(body);
    close(fd);
    ax_h_stop(d);
}
END_TEST

/* The socket's directory must be the daemon's own: owned by it (or root) and writable by
 * nobody else, a real directory; else another user could swap in a listener of theirs. */
START_TEST(socket_directory_of_another_user_or_writable_by_others_is_refused)
{
    const char *exe = ax_h_build_path("daemon/axactord");
    char base[4096], d1[4200], d2[4200], d3[4200], sock[4300];
    snprintf(base, sizeof base, "%s", ax_h_tmpdir());
    typedef struct {
        const char *dir;
        const char *why;
    } dcase;
    dcase cases[3];
    int nc = 0;
    snprintf(d2, sizeof d2, "%s/everyone", base);
    ck_assert_int_eq(mkdir(d2, 0777), 0);
    ck_assert_int_eq(chmod(d2, 0777), 0);
    cases[nc++] = (dcase){d2, "writable by everyone"};
    snprintf(d3, sizeof d3, "%s/link", base);
    ck_assert_int_eq(symlink(base, d3), 0);
    cases[nc++] = (dcase){d3, "not a directory"};
    if (geteuid() == 0) { /* a directory of another user: needs root to make */
        snprintf(d1, sizeof d1, "%s/nobody", base);
        ck_assert_int_eq(mkdir(d1, 0750), 0);
        ck_assert_int_eq(chown(d1, 65534, 65534), 0);
        cases[nc++] = (dcase){d1, "owned by uid 65534"};
    }
    for (int i = 0; i < nc; i++) {
        snprintf(sock, sizeof sock, "%s/ax.sock", cases[i].dir);
        const char *argv[] = {exe, "-s", sock, NULL};
        char *out = NULL, *err = NULL;
        int st = ax_h_run(argv, &out, &err, 10000);
        ck_assert_msg(st == 1, "socket in %s: exit %d\n%s", cases[i].dir, st, err);
        ck_assert_msg(strstr(err, cases[i].why), "socket in %s: %s", cases[i].dir, err);
        ck_assert_msg(access(sock, F_OK) != 0, "a socket was created in %s", cases[i].dir);
        free(out);
        free(err);
    }
    /* a directory of its own is accepted, and the socket has exactly its mode */
    ax_h_daemon *d = ax_h_start(NULL);
    struct stat st;
    ck_assert_int_eq(stat(ax_h_sock(d), &st), 0);
    ck_assert_uint_eq(st.st_mode & 0777, 0660);
    ax_h_stop(d);
}
END_TEST

/* In a child running as uid/gid 65534 (nobody/nogroup): connect and PLUGIN_LOAD path;
 * returns the load's result code (0 or a negative AX_E*), 100 + n when it could not try. */
static int load_as_nobody(const char *sock, const char *path)
{
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        if (setgroups(0, NULL) != 0 || setgid(65534) != 0 || setuid(65534) != 0)
            _exit(101);
        axc_conn *c = NULL;
        char e[256];
        if (axc_connect(sock, 5000, &c, e, sizeof e) != 0)
            _exit(102);
        char *json = NULL;
        int rc = axc_plugin_load(c, path, &json);
        axc_free(json);
        axc_close(c);
        _exit(rc == 0 ? 0 : (-rc) & 0x7f);
    }
    int st;
    ck_assert_int_eq(waitpid(pid, &st, 0), pid);
    ck_assert(WIFEXITED(st));
    int code = WEXITSTATUS(st);
    return code >= 100 ? code : -code;
}

/* Loading a plugin runs its code as the daemon: a privileged request (plugins.runtime_load),
 * and only from trusted directories. Needs root to make a second uid. */
START_TEST(runtime_plugin_loads_are_privileged_and_from_trusted_dirs_only)
{
    if (geteuid() != 0) {
        printf("  (not root: the second-uid part is skipped)\n");
    }
    const char *echo = ax_h_build_path("plugins/echo.so");
    char echo_path[4096];
    snprintf(echo_path, sizeof echo_path, "%s", echo);
    for (int k = 0; k < 2 && geteuid() == 0; k++) {
        const char *mode = k ? "plugins.runtime_load=group" : "plugins.runtime_load=owner";
        ax_h_daemon *d = ax_h_start((const char *const[]){"-p", "counter", "--set", "client.socket_group=nogroup",
                                                          "--set", mode, NULL});
        /* let gid 65534 reach the socket: its directory becomes root:nogroup 0750 */
        ck_assert_int_eq(chown(ax_h_dir(d), 0, 65534), 0);
        ck_assert_int_eq(chmod(ax_h_dir(d), 0750), 0);
        int rc = load_as_nobody(ax_h_sock(d), echo_path);
        if (!k)
            ck_assert_msg(rc == AX_EPERM, "owner mode: a load by uid 65534 gave %d (%s)", rc, ax_errname(rc));
        else
            ck_assert_msg(rc == 0, "group mode: a load by uid 65534 gave %d (%s)", rc, ax_errname(rc));
        ck_assert(ax_h_wait_log(d, k ? "loaded plugin" : "only root or the daemon's user", 3000) || k);
        ax_h_stop(d);
    }
    /* root, but from places that are not trusted */
    ax_h_daemon *d = ax_h_start((const char *const[]){"-p", "counter", NULL});
    axc_conn *c = ax_h_connect(d);
    char other[4400], *json = NULL;
    snprintf(other, sizeof other, "%s/echo-copy.so", ax_h_tmpdir());
    FILE *in = fopen(echo_path, "rb"), *out = fopen(other, "wb");
    ck_assert(in && out);
    static char buf[1 << 20];
    size_t n = fread(buf, 1, sizeof buf, in);
    ck_assert_uint_eq(fwrite(buf, 1, n, out), n);
    fclose(in);
    fclose(out);
    ck_assert_int_eq(axc_plugin_load(c, other, &json), AX_EPERM);
    ck_assert_msg(strstr(axc_errmsg(c), "plugins.dir"), "%s", axc_errmsg(c));
    /* off: nobody */
    axc_close(c);
    ax_h_stop(d);
    d = ax_h_start((const char *const[]){"-p", "counter", "--set", "plugins.runtime_load=off", NULL});
    c = ax_h_connect(d);
    ck_assert_int_eq(axc_plugin_load(c, echo_path, &json), AX_EPERM);
    ck_assert_msg(strstr(axc_errmsg(c), "off"), "%s", axc_errmsg(c));
    axc_close(c);
    ax_h_stop(d);
    /* a trusted directory that others may write to is no trusted directory */
    char wdir[4200], trusted[4300];
    snprintf(wdir, sizeof wdir, "%s/writable", ax_h_tmpdir());
    ck_assert_int_eq(mkdir(wdir, 0777), 0);
    ck_assert_int_eq(chmod(wdir, 0777), 0);
    snprintf(other, sizeof other, "%s/echo.so", wdir);
    out = fopen(other, "wb");
    ck_assert_uint_eq(fwrite(buf, 1, n, out), n);
    fclose(out);
    snprintf(trusted, sizeof trusted, "plugins.trusted_dirs=%s", wdir);
    d = ax_h_start((const char *const[]){"-p", "counter", "--set", trusted, NULL});
    c = ax_h_connect(d);
    ck_assert_int_eq(axc_plugin_load(c, other, &json), AX_EPERM);
    ck_assert_msg(strstr(axc_errmsg(c), "writable by others"), "%s", axc_errmsg(c));
    /* a relative path is taken under plugins.dir, never the daemon's cwd */
    ck_assert_int_eq(axc_plugin_load(c, "./echo.so", &json), 0);
    axc_free(json);
    axc_close(c);
    ax_h_stop(d);
}
END_TEST

/* The listing works at any size: page by page with a cursor, never a document larger than
 * a frame (ETOOBIG at about 7,300 actors before), with filters and a fixed column order. */
START_TEST(actors_listing_pages_through_20000_actors_with_filters)
{
    ax_h_daemon *d = ax_h_start((const char *const[]){"-p", "counter", "-p", "echo", NULL});
    axc_conn *c = ax_h_connect(d);
    enum { N = 20000 };
    for (int i = 0; i < N; i++) {
        char name[32];
        snprintf(name, sizeof name, "%s%05d", i % 10 ? "c" : "e", i);
        axc_ref r;
        int rc = axc_spawn(c, i % 10 ? "counter" : "echo", name, NULL, &r);
        ck_assert_msg(rc == 0, "spawn %d: %s", i, ax_errname(rc));
    }
    const char *axctl = ax_h_build_path("libaxclient/axctl");
    const char *all[] = {axctl, "-s", ax_h_sock(d), "actors", NULL};
    char *out = NULL, *err = NULL;
    ck_assert_msg(ax_h_run(all, &out, &err, 60000) == 0, "%s", err);
    size_t lines = 0;
    for (const char *p = out; *p; p++)
        lines += *p == '\n';
    ck_assert_msg(lines == N + 1, "%zu lines for %d actors", lines, N);
    ck_assert_msg(!strncmp(out, "ID               GEN   NAME", 27), "header: %.80s", out); /* ID: 15 wide (worker << 32) */
    free(out);
    free(err);
    const char *typ[] = {axctl, "-s", ax_h_sock(d), "actors", "--type", "echo", "--json", NULL};
    ck_assert_int_eq(ax_h_run(typ, &out, &err, 60000), 0);
    cJSON *doc = cJSON_Parse(out);
    ck_assert_ptr_nonnull(doc);
    ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(doc, "actors")), N / 10);
    cJSON_Delete(doc);
    free(out);
    free(err);
    const char *pre[] = {axctl, "-s", ax_h_sock(d), "actors", "--name", "c0001", "--state", "running", NULL};
    ck_assert_int_eq(ax_h_run(pre, &out, &err, 60000), 0);
    lines = 0;
    for (const char *p = out; *p; p++)
        lines += *p == '\n';
    ck_assert_msg(lines == 1 + 9, "c0001x: %zu lines\n%s", lines, out); /* c00011..c00019 */
    free(out);
    free(err);
    axc_close(c);
    ax_h_stop(d);
}
END_TEST

START_TEST(client_that_never_reads_does_not_stall_others)
{
    ax_h_daemon *d = ax_h_start((const char *const[]){"-p", "echo", "--set", "client.outbuf_max=65536", NULL});
    axc_conn *c = ax_h_connect(d);
    spawn_ok(c, "echo", "e", NULL);
    int fd = ax_h_raw_hello(d);
    static uint8_t pay[4096];
    ax_body_msg m;
    memset(&m, 0, sizeof m);
    m.target.kind = AX_TGT_NAME;
    m.target.name = "e";
    m.target.name_len = 1;
    m.msg = "echo";
    m.msg_len = 4;
    m.payload = pay;
    m.payload_len = sizeof pay;
    m.timeout_ms = 5000;
    ax_wbuf b;
    ax_wbuf_init(&b);
    size_t st = ax_frame_begin(&b, AX_T_ASK, 0, 1);
    ax_body_msg_put(&b, AX_T_ASK, &m);
    ck_assert_int_eq(ax_frame_end(&b, st, AX_FRAME_MAX_DEFAULT), 0);
    int stalled = 0, dropped = 0;
    size_t sent_frames = 0;
    for (int i = 0; i < 100000 && !stalled && !dropped; i++) {
        size_t off = 0;
        int idle = 0;
        while (off < b.len) {
            ssize_t w = send(fd, b.data + off, b.len - off, MSG_NOSIGNAL | MSG_DONTWAIT);
            if (w > 0) {
                off += (size_t)w;
                idle = 0;
            } else if (w < 0 && errno == EAGAIN) {
                struct pollfd pf = {fd, POLLOUT, 0};
                if (poll(&pf, 1, 100) == 0 && ++idle >= 5) { /* 0.5 s without progress */
                    stalled = 1;
                    break;
                }
            } else {
                dropped = 1;
                break;
            }
        }
        sent_frames += off == b.len;
    }
    ax_wbuf_free(&b);
    ck_assert_msg(stalled || dropped, "the daemon kept reading %zu asks whose replies were never read", sent_frames);
    /* while that client is stuck, another one is served */
    axc_target t = axc_by_name("e");
    void *reply = NULL;
    size_t len = 0;
    ck_assert_int_eq(axc_ask(c, &t, "echo", "ping", 4, 5000, &reply, &len), 0);
    ck_assert_str_eq(reply, "ping");
    axc_free(reply);
    close(fd);
    ck_assert_int_eq(axc_ask(c, &t, "echo", "pong", 4, 5000, &reply, &len), 0);
    axc_free(reply);
    axc_close(c);
    ax_h_stop(d);
}
END_TEST

/* ---------- plugins ---------- */

static int json_plugin_names(const char *json, char *out, size_t outlen)
{
    cJSON *doc = cJSON_Parse(json);
    ck_assert_msg(doc != NULL, "plugins document is not JSON: %s", json);
    cJSON *arr = cJSON_GetObjectItem(doc, "plugins"), *it;
    ck_assert_msg(cJSON_IsArray(arr), "no plugins array: %s", json);
    int n = 0;
    out[0] = 0;
    cJSON_ArrayForEach(it, arr)
    {
        cJSON *name = cJSON_GetObjectItem(it, "name");
        ck_assert(cJSON_IsString(name));
        size_t l = strlen(out);
        snprintf(out + l, outlen - l, "%s%s", n ? "," : "", name->valuestring);
        n++;
    }
    cJSON_Delete(doc);
    return n;
}

START_TEST(wrong_abi_plugin_is_refused_and_daemon_keeps_serving)
{
    char trusted[4200];
    snprintf(trusted, sizeof trusted, "plugins.trusted_dirs=%s", ax_h_tmpdir());
    ax_h_daemon *d = ax_h_start((const char *const[]){"-p", "counter", "--set", trusted, NULL});
    axc_conn *c = ax_h_connect(d);
    spawn_ok(c, "counter", "c1", NULL);
    char *json = NULL;

    ck_assert_err(axc_plugin_load(c, ax_h_build_path("plugins/bad_abi.so"), &json), AX_EABI, c);
    ck_assert_ptr_null(json);
    const char *m = axc_errmsg(c);
    char ours[16];
    snprintf(ours, sizeof ours, "%d.%d", AX_ABI_MAJOR, AX_ABI_MINOR);
    ck_assert_msg(strstr(m, "99.0") && strstr(m, ours), "refusal does not name both ABI versions: %s", m);
    ck_assert_msg(ax_h_wait_log(d, "bad_abi.so", 2000), "refusal not logged:\n%s", ax_h_log(d));

    ck_assert_err(axc_plugin_load(c, ax_h_build_path("plugins/no_descriptor.so"), &json), AX_EABI, c);
    ck_assert_ptr_nonnull(strstr(axc_errmsg(c), "axactor_plugin"));
    ck_assert_err(axc_plugin_load(c, ax_h_build_path("plugins/does_not_exist.so"), &json), AX_ENOTFOUND, c);
    /* a file that is not a shared object at all */
    const char *notso = ax_h_write_file(NULL, "notso.so", "this is not an ELF file\n");
    ck_assert_err(axc_plugin_load(c, notso, &json), AX_EABI, c);
    /* the same plugin twice */
    ck_assert_err(axc_plugin_load(c, "counter", &json), AX_EEXIST, c);

    /* the daemon keeps serving, and lists only the good plugin; the bad type is unknown */
    axc_target n = axc_by_name("c1");
    ck_assert_int_eq(axc_tell(c, &n, "inc", NULL, 0), 0);
    expect_get(c, &n, "1");
    axc_ref r;
    ck_assert_err(axc_spawn(c, "bad_abi_type", NULL, NULL, &r), AX_ENOTYPE, c);
    ck_assert_int_eq(axc_plugins(c, &json), 0);
    char names[256];
    ck_assert_int_eq(json_plugin_names(json, names, sizeof names), 1);
    ck_assert_str_eq(names, "counter");
    axc_free(json);

    /* a good plugin loads at run time, by path, and its type works */
    ck_assert_int_eq(axc_plugin_load(c, ax_h_build_path("plugins/echo.so"), &json), 0);
    cJSON *doc = cJSON_Parse(json);
    ck_assert_ptr_nonnull(doc);
    ck_assert_str_eq(cJSON_GetStringValue(cJSON_GetObjectItem(doc, "name")), "echo");
    cJSON_Delete(doc);
    axc_free(json);
    spawn_ok(c, "echo", "e", NULL);
    ck_assert_int_eq(axc_plugins(c, &json), 0);
    ck_assert_int_eq(json_plugin_names(json, names, sizeof names), 2);
    axc_free(json);
    axc_close(c);
    ax_h_stop(d);
}
END_TEST

START_TEST(plugin_unload_refused_while_actors_live_then_reload_works)
{
    ax_h_daemon *d = ax_h_start(COUNTER);
    axc_conn *c = ax_h_connect(d);
    spawn_ok(c, "counter", "c1", NULL);
    axc_target n = axc_by_name("c1");
    ck_assert_err(axc_plugin_unload(c, "counter"), AX_EBUSY, c);
    ck_assert_err(axc_plugin_unload(c, "nosuchplugin"), AX_ENOTFOUND, c);
    expect_get(c, &n, "0");
    ck_assert_int_eq(axc_stop(c, &n), 0);
    ck_assert_int_eq(axc_plugin_unload(c, "counter"), 0);
    axc_ref r;
    ck_assert_err(axc_spawn(c, "counter", "c1", NULL, &r), AX_ENOTYPE, c);
    char *json = NULL;
    ck_assert_int_eq(axc_plugin_load(c, "counter", &json), 0); /* a bare name: plugins.dir */
    axc_free(json);
    spawn_ok(c, "counter", "c1", NULL);
    expect_get(c, &n, "0");
    axc_close(c);
    ax_h_stop(d);
}
END_TEST

START_TEST(configured_plugin_that_is_refused_stops_the_start)
{
    char *out = NULL, *err = NULL;
    char sockpath[4096];
    snprintf(sockpath, sizeof sockpath, "%s/bad-plugin.sock", ax_h_tmpdir());
    const char *argv[] = {ax_h_build_path("daemon/axactord"), "-s", sockpath, "--plugin-dir",
                          ax_h_build_path("plugins"), "-p", "bad_abi", NULL};
    int st = ax_h_run(argv, &out, &err, 10000);
    ck_assert_msg(st == 1, "exit %d, stderr:\n%s", st, err);
    ck_assert_msg(strstr(err, "99"), "stderr does not name the plugin's ABI:\n%s", err);
    ck_assert_msg(access(sockpath, F_OK) != 0, "a refused start left its socket behind");
    free(out);
    free(err);
}
END_TEST

/* ---------- configuration ---------- */


/* Run `axactord --check-config -c FILE` (and a real start on the same file) and expect
 * exit 1 with "FILE:LINE:" and every needle in stderr. */
static void expect_unsafe_config(const char *name, const char *text, int line, const char *const *needles)
{
    const char *f = ax_h_write_file(NULL, name, text);
    char path[4096], want[4200], sockpath[4096];
    snprintf(path, sizeof path, "%s", f);
    snprintf(want, sizeof want, "%s:%d:", path, line);
    snprintf(sockpath, sizeof sockpath, "%s/unsafe.sock", ax_h_tmpdir());
    const char *exe = ax_h_build_path("daemon/axactord");
    const char *pd = ax_h_build_path("plugins");
    const char *check[] = {exe, "--check-config", "--plugin-dir", pd, "-c", path, NULL};
    const char *run[] = {exe, "--plugin-dir", pd, "-c", path, "-s", sockpath, NULL};
    const char *const *argvs[] = {check, run};
    for (int k = 0; k < 2; k++) {
        char *out = NULL, *err = NULL;
        int st = ax_h_run(argvs[k], &out, &err, 10000);
        ck_assert_msg(st == 1, "%s %s: exit %d, stderr:\n%s", name, k ? "start" : "--check-config", st, err);
        ck_assert_msg(strstr(err, want), "%s: stderr lacks \"%s\":\n%s", name, want, err);
        for (size_t i = 0; needles[i]; i++)
            ck_assert_msg(strstr(err, needles[i]), "%s: stderr lacks \"%s\":\n%s", name, needles[i], err);
        ck_assert_msg(access(sockpath, F_OK) != 0, "%s: the refused start created its socket", name);
        free(out);
        free(err);
    }
}

START_TEST(check_config_refuses_cluster_configs_that_cannot_be_safe)
{
    /* a cluster on the per-process memory store: split brain */
    expect_unsafe_config("mem.conf",
                         "[node]\nname = a\n[cluster]\nlisten = 127.0.0.1:7401\nauth_token = 0123456789abcdef\n"
                         "[lease]\nstore = memory\n",
                         7, (const char *const[]){"lease.store = memory", "split brain", "lease.store = redis", NULL});
    /* durable state in a Redis of its own fences by epochs, which the memory store restarts */
    expect_unsafe_config("statestore.conf", "[state]\nstore = redis\n", 2,
                         (const char *const[]){"state.store = redis needs lease.store = redis", NULL});
    /* etcd endpoints that are not URLs, a client certificate without its key */
    expect_unsafe_config("etcd.conf", "[lease]\nstore = etcd\netcd_endpoints = 127.0.0.1:2379\n", 3,
                         (const char *const[]){"lease.etcd_endpoints", "http://HOST:PORT", NULL});
    expect_unsafe_config("etcdtls.conf", "[lease]\nstore = etcd\netcd_cert = /etc/axactor/etcd.pem\n", 3,
                         (const char *const[]){"lease.etcd_key", NULL});
    /* the default store is memory too: the line that turned the cluster on is named */
    expect_unsafe_config("memdef.conf", "[cluster]\nauth_token = 0123456789abcdef\npeers = b=127.0.0.1:7402\n", 3,
                         (const char *const[]){"lease.store = redis", NULL});
    const char *redis = "[lease]\nstore = redis\n";
    char text[2048];
    /* several peers in one value */
    snprintf(text, sizeof text, "%s[cluster]\nauth_token = 0123456789abcdef\npeers = b=127.0.0.1:7402,c=127.0.0.1:7403\n",
             redis);
    expect_unsafe_config("comma.conf", text, 5, (const char *const[]){"one peer per value", NULL});
    /* the same peer name twice */
    snprintf(text, sizeof text,
             "%s[cluster]\nauth_token = 0123456789abcdef\npeers = b=127.0.0.1:7402\npeers = b=127.0.0.1:7403\n", redis);
    expect_unsafe_config("dup.conf", text, 6, (const char *const[]){"duplicate peer name \"b\"", ":5", NULL});
    /* the node itself as a peer */
    snprintf(text, sizeof text,
             "[node]\nname = a\n%s[cluster]\nauth_token = 0123456789abcdef\npeers = b=127.0.0.1:7402\n"
             "peers = a=127.0.0.1:7401\n",
             redis);
    expect_unsafe_config("self.conf", text, 8, (const char *const[]){"this node's own name", NULL});
    /* a token too short to be a secret */
    snprintf(text, sizeof text, "%s[cluster]\nlisten = 127.0.0.1:7401\nauth_token = short-token\n", redis);
    expect_unsafe_config("shorttoken.conf", text, 5, (const char *const[]){"at least 16", NULL});
    /* TLS files that do not exist */
    snprintf(text, sizeof text,
             "%s[cluster]\nauth_token = 0123456789abcdef\nlisten = 127.0.0.1:7401\ntls = true\n"
             "tls_cert = /nonexistent/axactor/cert.pem\ntls_key = /nonexistent/axactor/key.pem\n"
             "tls_ca = /nonexistent/axactor/ca.pem\n",
             redis);
    expect_unsafe_config("tls.conf", text, 7,
                         (const char *const[]){"/nonexistent/axactor/cert.pem", "No such file or directory", "errno 2",
                                               NULL});
    /* a plugin that does not exist, and one that is not a file */
    expect_unsafe_config("plug.conf", "[plugins]\nload = counter\nload = /nonexistent/axactor/x.so\n", 3,
                         (const char *const[]){"/nonexistent/axactor/x.so", "errno 2", NULL});
    snprintf(text, sizeof text, "[plugins]\nload = %s\n", ax_h_tmpdir());
    expect_unsafe_config("plugdir.conf", text, 2, (const char *const[]){"not a regular file", NULL});
    /* and a good cluster config passes */
    const char *good = ax_h_write_file(NULL, "good.conf",
                                       "[node]\nname = a\n[cluster]\nlisten = 127.0.0.1:7401\nauth_token = "
                                       "0123456789abcdef\npeers = b=127.0.0.1:7402\n[lease]\nstore = redis\n");
    char gpath[4096];
    snprintf(gpath, sizeof gpath, "%s", good);
    const char *check[] = {ax_h_build_path("daemon/axactord"), "--check-config", "-c", gpath, NULL};
    char *out = NULL, *err = NULL;
    ck_assert_msg(ax_h_run(check, &out, &err, 10000) == 0, "%s", err);
    free(out);
    free(err);
}
END_TEST

/* Secrets come from files or systemd credentials, and --print-config never shows them. */
START_TEST(secrets_come_from_files_or_credentials_and_are_never_printed)
{
    const char *exe = ax_h_build_path("daemon/axactord");
    char tok[4096], dir[4096], conf[4096];
    snprintf(tok, sizeof tok, "%s", ax_h_write_file(NULL, "auth_token", "s3cret-token-0123456789abcdef\n"));
    snprintf(conf, sizeof conf, "%s",
             ax_h_write_file(NULL, "sec.conf",
                             "[cluster]\nlisten = 127.0.0.1:7409\n[lease]\nstore = redis\n"));
    char flag[4200];
    snprintf(flag, sizeof flag, "cluster.auth_token_file=%s", tok);
    /* from a file: the cluster config is complete, and the token is not printed */
    const char *check[] = {exe, "--check-config", "-c", conf, "--set", flag, NULL};
    char *out = NULL, *err = NULL;
    ck_assert_msg(ax_h_run(check, &out, &err, 10000) == 0, "%s", err);
    free(out);
    free(err);
    const char *print[] = {exe, "--print-config", "-c", conf, "--set", flag,
                           "--set", "lease.redis_password=hunter2-password", NULL};
    ck_assert_int_eq(ax_h_run(print, &out, &err, 10000), 0);
    ck_assert_msg(!strstr(out, "s3cret-token") && !strstr(out, "hunter2"), "--print-config shows a secret:\n%s", out);
    ck_assert_msg(strstr(out, "auth_token: set (not shown)") && strstr(out, "redis_password: set (not shown)"), "%s",
                  out);
    free(out);
    free(err);
    /* the etcd password from its file: read, not printed; with the password too: refused */
    char epw[4096], eflag[4200];
    snprintf(epw, sizeof epw, "%s", ax_h_write_file(NULL, "etcd_pw", "etcd-pa55word-from-file\n"));
    snprintf(eflag, sizeof eflag, "lease.etcd_password_file=%s", epw);
    const char *eprint[] = {exe, "--print-config", "-c", conf, "--set", flag, "--set", "lease.etcd_user=ax",
                            "--set", eflag, NULL};
    ck_assert_int_eq(ax_h_run(eprint, &out, &err, 10000), 0);
    ck_assert_msg(!strstr(out, "etcd-pa55word") && strstr(out, "etcd_password: set (not shown)"),
                  "--print-config with etcd_password_file:\n%s", out);
    free(out);
    free(err);
    const char *eboth[] = {exe, "--check-config", "-c", conf, "--set", flag, "--set", eflag,
                           "--set", "lease.etcd_password=x", NULL};
    ck_assert_int_eq(ax_h_run(eboth, &out, &err, 10000), 1);
    ck_assert_msg(strstr(err, "not both") && strstr(err, "etcd_password_file"), "%s", err);
    free(out);
    free(err);
    /* a token file that cannot be read: refused, at the line that names it */
    const char *bad = ax_h_write_file(NULL, "sec2.conf",
                                      "[cluster]\nlisten = 127.0.0.1:7409\nauth_token_file = /nonexistent/axactor/t\n"
                                      "[lease]\nstore = redis\n");
    char badp[4096], want[4200];
    snprintf(badp, sizeof badp, "%s", bad);
    snprintf(want, sizeof want, "%s:3:", badp);
    const char *check2[] = {exe, "--check-config", "-c", badp, NULL};
    ck_assert_int_eq(ax_h_run(check2, &out, &err, 10000), 1);
    ck_assert_msg(strstr(err, want) && strstr(err, "/nonexistent/axactor/t") && strstr(err, "errno 2"), "%s", err);
    free(out);
    free(err);
    /* a token and a token file: which one? refused */
    const char *check3[] = {exe, "--check-config", "-c", conf, "--set", flag, "--set", "cluster.auth_token=x", NULL};
    ck_assert_int_eq(ax_h_run(check3, &out, &err, 10000), 1);
    ck_assert_msg(strstr(err, "not both"), "%s", err);
    free(out);
    free(err);
    /* a systemd credential (LoadCredential=cluster.auth_token:...) when nothing else is set */
    snprintf(dir, sizeof dir, "%s/creds", ax_h_tmpdir());
    mkdir(dir, 0700);
    ax_h_write_file(dir, "cluster.auth_token", "from-credentials-0123456789\n");
    const char *check4[] = {exe, "--check-config", "-c", conf, NULL};
    ck_assert_int_eq(ax_h_run(check4, &out, &err, 10000), 1); /* without it: no token */
    ck_assert_msg(strstr(err, "auth_token"), "%s", err);
    free(out);
    free(err);
    setenv("CREDENTIALS_DIRECTORY", dir, 1);
    int st = ax_h_run(check4, &out, &err, 10000);
    unsetenv("CREDENTIALS_DIRECTORY");
    ck_assert_msg(st == 0, "with the credential: %s", err);
    free(out);
    free(err);
}
END_TEST

START_TEST(config_error_exits_nonzero_with_offending_line)
{
    const char *bad = ax_h_write_file(NULL, "bad.conf",
                                      "[client]\n"
                                      "max_clients = 10\n"
                                      "no_such_key = 1\n"
                                      "[runtime]\n"
                                      "batch = 8\n");
    char badpath[4096], want[4200], sockpath[4096];
    snprintf(badpath, sizeof badpath, "%s", bad);
    snprintf(want, sizeof want, "%s:3:", badpath);
    snprintf(sockpath, sizeof sockpath, "%s/never.sock", ax_h_tmpdir());
    const char *exe = ax_h_build_path("daemon/axactord");
    char *out = NULL, *err = NULL;

    const char *check[] = {exe, "--check-config", "-c", badpath, NULL};
    int st = ax_h_run(check, &out, &err, 10000);
    ck_assert_msg(st == 1, "--check-config on a bad file: exit %d\nstderr:\n%s", st, err);
    ck_assert_msg(strstr(err, want), "stderr lacks \"%s\":\n%s", want, err);
    free(out);
    free(err);

    const char *run[] = {exe, "-c", badpath, "-s", sockpath, NULL};
    st = ax_h_run(run, &out, &err, 10000);
    ck_assert_msg(st == 1, "start with a bad file: exit %d\nstderr:\n%s", st, err);
    ck_assert_msg(strstr(err, want), "stderr lacks \"%s\":\n%s", want, err);
    ck_assert_msg(access(sockpath, F_OK) != 0, "the refused start created its socket");
    free(out);
    free(err);

    /* a bad value (not a bad key) on line 3 as well */
    const char *bad2 = ax_h_write_file(NULL, "bad2.conf", "# comment\n[runtime]\nbatch = lots\n");
    char bad2path[4096];
    snprintf(bad2path, sizeof bad2path, "%s", bad2);
    snprintf(want, sizeof want, "%s:3:", bad2path);
    const char *check2[] = {exe, "--check-config", "-c", bad2path, NULL};
    st = ax_h_run(check2, &out, &err, 10000);
    ck_assert_msg(st == 1 && strstr(err, want), "exit %d, stderr:\n%s", st, err);
    free(out);
    free(err);

    /* a good file passes the check and a daemon runs on it */
    const char *good = ax_h_write_file(NULL, "good.conf",
                                       "[client]\n"
                                       "max_clients = 10\n"
                                       "[runtime]\n"
                                       "batch = 8\n"
                                       "[plugins]\n"
                                       "load = counter\n");
    char goodpath[4096];
    snprintf(goodpath, sizeof goodpath, "%s", good);
    const char *check3[] = {exe, "--check-config", "--plugin-dir", ax_h_build_path("plugins"), "-c", goodpath, NULL};
    st = ax_h_run(check3, &out, &err, 10000);
    ck_assert_msg(st == 0, "--check-config on a good file: exit %d\nstderr:\n%s", st, err);
    free(out);
    free(err);
    ax_h_daemon *d = ax_h_start((const char *const[]){"-c", goodpath, NULL});
    axc_conn *c = ax_h_connect(d);
    spawn_ok(c, "counter", "c1", NULL); /* plugins.load from the file */
    axc_close(c);
    ax_h_stop(d);
}
END_TEST

/* ---------- the socket and the process ---------- */

START_TEST(sigterm_stops_cleanly_and_removes_socket)
{
    ax_h_daemon *d = ax_h_start(COUNTER);
    axc_conn *c = ax_h_connect(d);
    spawn_ok(c, "counter", "c1", NULL);
    spawn_ok(c, "counter", NULL, NULL);
    axc_target n = axc_by_name("c1");
    for (int i = 0; i < 100; i++)
        ck_assert_int_eq(axc_tell_noreply(c, &n, "inc", NULL, 0), 0);
    ck_assert_int_eq(axc_flush(c), 0);
    char sock[4096];
    snprintf(sock, sizeof sock, "%s", ax_h_sock(d));
    ax_h_stop(d); /* checks exit 0, socket removed, no sanitizer report */
    ck_assert_int_ne(access(sock, F_OK), 0);
    /* the client sees a lost connection, not a crash */
    ck_assert_err(ask_rc(c, &n, "get"), AX_ECONN, c);
    axc_close(c);
}
END_TEST

START_TEST(sigint_stops_cleanly_too)
{
    ax_h_daemon *d = ax_h_start(COUNTER);
    axc_conn *c = ax_h_connect(d);
    spawn_ok(c, "counter", "c1", NULL);
    ax_h_stop_with(d, SIGINT);
    axc_close(c);
}
END_TEST

START_TEST(socket_is_mode_0660)
{
    ax_h_daemon *d = ax_h_start(COUNTER);
    struct stat st;
    ck_assert_int_eq(lstat(ax_h_sock(d), &st), 0);
    ck_assert(S_ISSOCK(st.st_mode));
    ck_assert_msg((st.st_mode & 07777) == 0660, "socket mode %04o", (unsigned)(st.st_mode & 07777));
    ck_assert_uint_eq(st.st_uid, geteuid());
    ax_h_stop(d);
}
END_TEST

START_TEST(second_daemon_on_same_socket_refuses_to_start)
{
    ax_h_daemon *d = ax_h_start(COUNTER);
    axc_conn *c = ax_h_connect(d);
    spawn_ok(c, "counter", "c1", NULL);
    const char *argv[] = {ax_h_build_path("daemon/axactord"), "-s", ax_h_sock(d), "--plugin-dir",
                          ax_h_build_path("plugins"), "-p", "counter", NULL};
    char *out = NULL, *err = NULL;
    int st = ax_h_run(argv, &out, &err, 10000);
    ck_assert_msg(st == 1, "second daemon: exit %d\nstderr:\n%s", st, err);
    ck_assert_msg(strstr(err, ax_h_sock(d)), "the refusal does not name the socket:\n%s", err);
    free(out);
    free(err);
    /* the first daemon still owns and serves its socket */
    struct stat sb;
    ck_assert_int_eq(lstat(ax_h_sock(d), &sb), 0);
    axc_target n = axc_by_name("c1");
    expect_get(c, &n, "0");
    axc_conn *c2 = ax_h_connect(d);
    expect_get(c2, &n, "0");
    axc_close(c2);
    axc_close(c);
    ax_h_stop(d);
}
END_TEST

START_TEST(stale_socket_of_a_killed_daemon_is_replaced)
{
    ax_h_daemon *d = ax_h_start(COUNTER);
    ax_h_kill(d);
    struct stat sb;
    ck_assert_msg(lstat(ax_h_sock(d), &sb) == 0, "SIGKILL should leave the socket file behind");
    ax_h_restart(d, NULL); /* waits until it serves on the same path */
    axc_conn *c = ax_h_connect(d);
    spawn_ok(c, "counter", "c1", NULL);
    axc_close(c);
    ax_h_stop(d);
}
END_TEST

START_TEST(socket_path_that_is_not_a_socket_is_not_removed)
{
    const char *f = ax_h_write_file(NULL, "regular-file", "keep me\n");
    char path[4096];
    snprintf(path, sizeof path, "%s", f);
    const char *argv[] = {ax_h_build_path("daemon/axactord"), "-s", path, NULL};
    char *out = NULL, *err = NULL;
    int st = ax_h_run(argv, &out, &err, 10000);
    ck_assert_msg(st == 1, "exit %d\nstderr:\n%s", st, err);
    struct stat sb;
    ck_assert_int_eq(lstat(path, &sb), 0);
    ck_assert(S_ISREG(sb.st_mode));
    free(out);
    free(err);
}
END_TEST

START_TEST(status_and_actors_documents_describe_the_daemon)
{
    ax_h_daemon *d = ax_h_start(COUNTER);
    axc_conn *c = ax_h_connect(d);
    spawn_ok(c, "counter", "c1", NULL);
    spawn_ok(c, "counter", "c2", NULL);
    char *json = NULL;
    ck_assert_int_eq(axc_status(c, &json), 0);
    cJSON *doc = cJSON_Parse(json);
    ck_assert_msg(doc != NULL, "status is not JSON: %s", json);
    ck_assert_str_eq(cJSON_GetStringValue(cJSON_GetObjectItem(doc, "node")), axc_node_id(c));
    ck_assert(cJSON_GetObjectItem(doc, "actors")->valuedouble == 2);
    ck_assert(cJSON_GetObjectItem(doc, "pid")->valuedouble == (double)ax_h_pid(d));
    cJSON_Delete(doc);
    axc_free(json);
    ck_assert_int_eq(axc_actors(c, &json), 0);
    doc = cJSON_Parse(json);
    ck_assert_msg(doc != NULL, "actors is not JSON: %s", json);
    cJSON *arr = cJSON_GetObjectItem(doc, "actors"), *it;
    int found = 0;
    cJSON_ArrayForEach(it, arr)
    {
        const char *name = cJSON_GetStringValue(cJSON_GetObjectItem(it, "name"));
        ck_assert_str_eq(cJSON_GetStringValue(cJSON_GetObjectItem(it, "type")), "counter");
        found += name && (!strcmp(name, "c1") || !strcmp(name, "c2"));
    }
    ck_assert_int_eq(found, 2);
    cJSON_Delete(doc);
    axc_free(json);
    axc_close(c);
    ax_h_stop(d);
}
END_TEST

/* ---------- workers (runtime.workers = 2, whatever AX_TEST_WORKERS says) ---------- */

static double doc_num(const char *json, const char *key)
{
    cJSON *d = cJSON_Parse(json);
    ck_assert_msg(d != NULL, "not JSON: %s", json);
    cJSON *v = cJSON_GetObjectItem(d, key);
    ck_assert_msg(cJSON_IsNumber(v), "no number %s in %s", key, json);
    double x = v->valuedouble;
    cJSON_Delete(d);
    return x;
}

/* The next down event of this connection within 5 s: its reason (static buffer). */
static const char *next_down(axc_conn *c, uint64_t mref)
{
    static char reason[128];
    for (int i = 0; i < 1000; i++) {
        char *doc = NULL;
        int rc = axc_next_event(c, 5000, &doc);
        ck_assert_msg(rc == 1, "no down for mref %llu: %d (%s)", (unsigned long long)mref, rc, axc_errmsg(c));
        cJSON *d = cJSON_Parse(doc);
        axc_free(doc);
        const char *ev = cJSON_GetStringValue(cJSON_GetObjectItem(d, "event"));
        cJSON *m = cJSON_GetObjectItem(d, "mref");
        int match = ev && !strcmp(ev, "down") && cJSON_IsNumber(m) && (uint64_t)m->valuedouble == mref;
        if (match)
            snprintf(reason, sizeof reason, "%s", cJSON_GetStringValue(cJSON_GetObjectItem(d, "reason")));
        cJSON_Delete(d);
        if (match)
            return reason;
    }
    ck_abort_msg("too many events while waiting for a down");
    return NULL;
}

START_TEST(client_requests_reach_actors_on_every_worker)
{
    ax_h_daemon *d = ax_h_start((const char *const[]){"-p", "counter", "-p", "echo", "--set", "runtime.workers=2", NULL});
    axc_conn *c = ax_h_connect(d);
    char *json = NULL;
    ck_assert_int_eq(axc_status(c, &json), 0);
    ck_assert_msg(doc_num(json, "workers") == 2, "%s", json);
    axc_free(json);
    /* unkeyed spawns take the workers in turn; "worker" places one */
    axc_ref r0 = spawn_ok(c, "counter", "w0", NULL), r1 = spawn_ok(c, "counter", "w1", NULL);
    ck_assert_uint_eq(r0.id >> 32, 0);
    ck_assert_uint_eq(r1.id >> 32, 1);
    axc_ref rp = spawn_ok(c, "counter", "p1", "{\"worker\":1}");
    ck_assert_uint_eq(rp.id >> 32, 1);
    axc_ref bad;
    ck_assert_err(axc_spawn(c, "counter", "x", "{\"worker\":2}", &bad), AX_EINVAL, c);
    ck_assert_msg(strstr(axc_errmsg(c), "worker 2 does not exist"), "%s", axc_errmsg(c));
    ck_assert_err(axc_get_or_spawn(c, "counter", "k", "{\"worker\":1}", &bad), AX_EINVAL, c);
    /* tells (acknowledged and not) and asks to the other worker, in order per connection */
    axc_target t1 = axc_by_name("w1"), t1r = axc_by_ref(&r1);
    for (int i = 0; i < 1000; i++)
        ck_assert_int_eq(axc_tell(c, &t1, "inc", NULL, 0), 0);
    for (int i = 0; i < 1000; i++)
        ck_assert_int_eq(axc_tell_noreply(c, &t1r, "inc", NULL, 0), 0);
    expect_get(c, &t1, "2000");
    /* a message its type does not handle is refused there: ENOMSG for tell and ask */
    ck_assert_err(axc_tell(c, &t1, "echo", "x", 1), AX_ENOMSG, c);
    ck_assert_str_eq(axc_errmsg(c), "actor type 'counter' has no message 'echo'"); /* as on its own worker */
    ck_assert_err(ask_rc(c, &t1, "echo"), AX_ENOMSG, c);
    ck_assert_str_eq(axc_errmsg(c), "actor type 'counter' has no message 'echo'");
    /* resolve, monitor, exit/2 and stop there */
    axc_ref got;
    ck_assert_int_eq(axc_resolve(c, &t1, &got), 0);
    ck_assert_uint_eq(got.id, r1.id);
    ck_assert_uint_eq(got.gen, r1.gen);
    uint64_t mref = 0;
    ck_assert_int_eq(axc_monitor(c, &t1, &mref), 0);
    ck_assert_int_eq(axc_exit(c, &t1, "bye"), 0);
    ck_assert_str_eq(next_down(c, mref), "bye");
    ck_assert_err(ask_rc(c, &t1r, "get"), AX_ENOPROC, c);
    ck_assert_err(axc_tell(c, &t1r, "inc", NULL, 0), AX_ENOPROC, c);
    ck_assert_err(axc_resolve(c, &t1r, &got), AX_ENOPROC, c);
    ck_assert_err(axc_monitor(c, &t1r, &mref), AX_ENOPROC, c);
    ck_assert_err(axc_exit(c, &t1r, "bye"), AX_ENOPROC, c);
    ck_assert_err(axc_stop(c, &t1r), AX_ENOPROC, c);
    /* a demonitor reaches the other worker: no down once it is answered */
    axc_target tp = axc_by_name("p1");
    ck_assert_int_eq(axc_monitor(c, &tp, &mref), 0);
    ck_assert_int_eq(axc_demonitor(c, mref), 0);
    ck_assert_int_eq(axc_stop(c, &tp), 0);
    ck_assert_err(ask_rc(c, &tp, "get"), AX_ENOPROC, c);
    ck_assert_int_eq(axc_status(c, &json), 0); /* a round trip after p1's end */
    axc_free(json);
    char *ev = NULL;
    ck_assert_msg(axc_next_event(c, 300, &ev) == 0, "a down after demonitor: %s", ev ? ev : "?");
    /* keyed actors live on their key's worker, one per key, found from any request */
    int on[2] = {0, 0};
    for (int k = 0; k < 32; k++) {
        char key[16];
        snprintf(key, sizeof key, "key%d", k);
        axc_target tk = axc_by_key("counter", key);
        ck_assert_int_eq(axc_tell(c, &tk, "inc", NULL, 0), 0);
        axc_ref kr;
        ck_assert_int_eq(axc_get_or_spawn(c, "counter", key, NULL, &kr), 0);
        on[kr.id >> 32 ? 1 : 0]++;
        expect_get(c, &tk, "1");
    }
    ck_assert_msg(on[0] && on[1], "32 keys on worker 0: %d, on worker 1: %d", on[0], on[1]);
    /* the documents count every worker's actors; pages cross from one worker to the next */
    ck_assert_int_eq(axc_status(c, &json), 0);
    ck_assert_msg(doc_num(json, "actors") == 33 && doc_num(json, "keyed_actors") == 32, "%s", json);
    axc_free(json);
    uint64_t cursor = 0;
    int rows = 0, pages = 0, w1_rows = 0;
    do {
        axc_actors_query q = {.cursor = cursor, .limit = 5};
        ck_assert_int_eq(axc_actors_page(c, &q, &json), 0);
        cJSON *doc = cJSON_Parse(json), *it;
        axc_free(json);
        cJSON_ArrayForEach(it, cJSON_GetObjectItem(doc, "actors"))
        {
            rows++;
            w1_rows += (uint64_t)cJSON_GetObjectItem(it, "id")->valuedouble >> 32 == 1;
        }
        cursor = (uint64_t)cJSON_GetObjectItem(doc, "next")->valuedouble;
        cJSON_Delete(doc);
    } while (cursor && ++pages < 100);
    ck_assert_int_eq(rows, 33);
    ck_assert_int_eq(w1_rows, on[1]);
    /* connections are spread over the workers (the harness's probe took one, c the next,
     * these two the others): every request works from each, those that worker 0 serves
     * (documents, plugins) included, and a down or an event reaches each one's worker */
    axc_conn *cc[2] = {ax_h_connect(d), ax_h_connect(d)};
    axc_ref rz = spawn_ok(c, "counter", "z0", "{\"worker\":0}"), ro = spawn_ok(c, "counter", "z1", "{\"worker\":1}");
    for (int i = 0; i < 2; i++) {
        ck_assert_int_eq(axc_status(cc[i], &json), 0);
        ck_assert_msg(doc_num(json, "clients") == 3 && doc_num(json, "actors") == 35, "%s", json);
        axc_free(json);
        ck_assert_int_eq(axc_shards(cc[i], &json), 0);
        ck_assert_msg(strstr(json, "\"shards\""), "%s", json);
        axc_free(json);
        ck_assert_int_eq(axc_plugins(cc[i], &json), 0);
        ck_assert_msg(strstr(json, "counter"), "%s", json);
        axc_free(json);
        axc_target tz = axc_by_ref(&rz), to = axc_by_ref(&ro), tk = axc_by_key("counter", "key7");
        ck_assert_int_eq(axc_tell(cc[i], &tz, "inc", NULL, 0), 0);
        ck_assert_int_eq(axc_tell(cc[i], &to, "inc", NULL, 0), 0);
        ck_assert_int_eq(axc_tell(cc[i], &tk, "inc", NULL, 0), 0);
        char want[8];
        snprintf(want, sizeof want, "%d", i + 1);
        expect_get(cc[i], &tz, want);
        expect_get(cc[i], &to, want);
        snprintf(want, sizeof want, "%d", i + 2);
        expect_get(cc[i], &tk, want);
    }
    ck_assert_int_eq(axc_subscribe(cc[0], NULL), 0);
    uint64_t m0 = 0, m1 = 0;
    axc_target tz = axc_by_name("z0"), to = axc_by_name("z1");
    ck_assert_int_eq(axc_monitor(cc[0], &to, &m0), 0);
    ck_assert_int_eq(axc_monitor(cc[1], &tz, &m1), 0);
    ck_assert_int_eq(axc_stop(c, &to), 0);
    ck_assert_int_eq(axc_stop(c, &tz), 0);
    ck_assert_str_eq(next_down(cc[0], m0), "stopped"); /* the events before it are skipped */
    ck_assert_str_eq(next_down(cc[1], m1), "stopped");
    axc_close(cc[0]);
    axc_close(cc[1]);
    axc_close(c);
    ax_h_stop(d); /* SIGTERM: actors on both workers stop, the daemon exits 0 */
}
END_TEST

/* Many clients at once, each with its own counter, interleaved. */
START_TEST(many_clients_are_served_independently)
{
    enum { NC = 16, NT = 200 };
    ax_h_daemon *d = ax_h_start(COUNTER);
    axc_conn *c[NC];
    char name[NC][16];
    for (int i = 0; i < NC; i++) {
        c[i] = ax_h_connect(d);
        snprintf(name[i], sizeof name[i], "k%d", i);
        spawn_ok(c[i], "counter", name[i], NULL);
    }
    for (int k = 0; k < NT; k++)
        for (int i = 0; i < NC; i++) {
            axc_target t = axc_by_name(name[i]);
            for (int j = 0; j <= i; j++)
                ck_assert_int_eq(axc_tell_noreply(c[i], &t, "inc", NULL, 0), 0);
            if (k % 50 == 0)
                ck_assert_int_eq(axc_flush(c[i]), 0);
        }
    for (int i = 0; i < NC; i++) {
        axc_target t = axc_by_name(name[i]);
        char want[16];
        snprintf(want, sizeof want, "%d", NT * (i + 1));
        expect_get(c[i], &t, want);
    }
    /* closing clients abruptly with requests in flight leaves the daemon fine */
    for (int i = 0; i < NC; i++) {
        axc_target t = axc_by_name(name[i]);
        uint32_t id;
        ck_assert_int_eq(axc_send_ask(c[i], &t, "get", NULL, 0, 5000, &id), 0);
        ck_assert_int_eq(axc_flush(c[i]), 0);
        axc_close(c[i]);
    }
    axc_conn *last = ax_h_connect(d);
    axc_target t = axc_by_name("k0");
    expect_get(last, &t, "200");
    axc_close(last);
    ax_h_stop(d);
}
END_TEST

static Suite *integration_suite(void)
{
    Suite *s = suite_create("integration");
    TCase *tc = tcase_create("daemon");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, spawn_counter_tell_10000_inc_then_get_is_10000);
    tcase_add_test(tc, tell_noreply_10000_inc_then_get_is_10000);
    tcase_add_test(tc, echo_replies_with_the_payload);
    tcase_add_test(tc, ask_to_stopped_actor_is_an_error);
    tcase_add_test(tc, tell_to_unknown_message_is_enomsg);
    tcase_add_test(tc, spawn_duplicate_name_is_eexist);
    tcase_add_test(tc, unknown_actor_type_is_enotype);
    tcase_add_test(tc, bad_spawn_config_is_einval);
    tcase_add_test(tc, full_mailbox_refuses_with_efull);
    tcase_add_test(tc, garbage_frame_closes_only_that_connection);
    tcase_add_test(tc, oversize_frame_closes_only_that_connection);
    tcase_add_test(tc, client_refuses_oversize_request_and_stays_usable);
    tcase_add_test(tc, malformed_body_gets_eproto_and_closes_connection);
    tcase_add_test(tc, error_messages_are_valid_utf8_whatever_the_client_sent);
    tcase_add_test(tc, hello_rules_are_enforced_per_connection);
    tcase_add_test(tc, max_size_frames_back_to_back_are_all_handled);
    tcase_add_test(tc, max_clients_refuses_extra_connections);
    tcase_add_test(tc, pipelined_asks_then_stop_each_get_one_answer);
    tcase_add_test(tc, client_that_never_reads_does_not_stall_others);
    tcase_add_test(tc, output_bound_holds_within_one_burst_of_requests);
    tcase_add_test(tc, truncated_or_malformed_plugin_files_are_refused_and_the_daemon_lives);
    tcase_add_test(tc, signals_reload_or_are_ignored_and_never_kill_the_daemon);
    tcase_add_test(tc, a_client_that_sends_no_hello_is_closed_after_the_timeout);
    tcase_add_test(tc, socket_directory_of_another_user_or_writable_by_others_is_refused);
    tcase_add_test(tc, runtime_plugin_loads_are_privileged_and_from_trusted_dirs_only);
    tcase_add_test(tc, actors_listing_pages_through_20000_actors_with_filters);
    tcase_add_test(tc, wrong_abi_plugin_is_refused_and_daemon_keeps_serving);
    tcase_add_test(tc, plugin_unload_refused_while_actors_live_then_reload_works);
    tcase_add_test(tc, configured_plugin_that_is_refused_stops_the_start);
    tcase_add_test(tc, config_error_exits_nonzero_with_offending_line);
    tcase_add_test(tc, check_config_refuses_cluster_configs_that_cannot_be_safe);
    tcase_add_test(tc, secrets_come_from_files_or_credentials_and_are_never_printed);
    tcase_add_test(tc, sigterm_stops_cleanly_and_removes_socket);
    tcase_add_test(tc, sigint_stops_cleanly_too);
    tcase_add_test(tc, socket_is_mode_0660);
    tcase_add_test(tc, second_daemon_on_same_socket_refuses_to_start);
    tcase_add_test(tc, stale_socket_of_a_killed_daemon_is_replaced);
    tcase_add_test(tc, socket_path_that_is_not_a_socket_is_not_removed);
    tcase_add_test(tc, status_and_actors_documents_describe_the_daemon);
    tcase_add_test(tc, many_clients_are_served_independently);
    tcase_add_test(tc, client_requests_reach_actors_on_every_worker);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    SRunner *sr = srunner_create(integration_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
