/* libaxclient against a scripted fake daemon (a thread serving a temporary Unix
 * socket): garbage, oversize headers, EOF mid-frame, ERROR frames, replies out of order
 * and late replies must give the right codes and messages, and never a crash. */

#include <check.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "axactor/client.h"
#include "frame.h"

/* ---- the fake daemon ---- */

typedef struct server server;
typedef void (*script_fn)(server *s, int fd);

struct server {
    char dir[64];
    char path[100];
    int lfd;
    pthread_t th;
    script_fn script;
    uint32_t max_frame; /* announced in HELLO_OK */
    int count;          /* script-specific result, read after srv_stop */
    int conns;          /* connections to serve, one after the other (default 1) */
    uint32_t seed;      /* for the random script */
};

/* Read exactly n bytes, waiting at most 5 s for each chunk. 0, or -1 on EOF/timeout. */
static int read_exact(int fd, void *buf, size_t n)
{
    uint8_t *p = buf;
    while (n) {
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        if (poll(&pfd, 1, 5000) <= 0)
            return -1;
        ssize_t r = read(fd, p, n);
        if (r <= 0)
            return -1;
        p += r;
        n -= (size_t)r;
    }
    return 0;
}

static void write_all(int fd, const void *buf, size_t n)
{
    const uint8_t *p = buf;
    while (n) {
        ssize_t r = send(fd, p, n, MSG_NOSIGNAL);
        if (r <= 0)
            return;
        p += r;
        n -= (size_t)r;
    }
}

/* One client frame; *body is malloc'd (free it). -1 on EOF or a bad header. */
static int srv_recv(int fd, ax_frame_hdr *h, uint8_t **body)
{
    uint8_t hb[AX_FRAME_HDR_SIZE];
    const char *why = NULL;
    if (read_exact(fd, hb, sizeof hb) || ax_frame_hdr_decode(hb, sizeof hb, AX_FRAME_MAX_LIMIT, h, &why))
        return -1;
    *body = malloc(h->body_len + 1);
    if (!*body || read_exact(fd, *body, h->body_len)) {
        free(*body);
        return -1;
    }
    return 0;
}

/* Receive one request, check its type, return its req_id (0 on failure). */
static uint32_t srv_expect(int fd, uint8_t type)
{
    ax_frame_hdr h;
    uint8_t *body;
    if (srv_recv(fd, &h, &body))
        return 0;
    const char *why = NULL;
    int ok = h.type == type && ax_body_validate(h.type, body, h.body_len, &why) == 0;
    free(body);
    return ok ? h.req_id : 0;
}

static void srv_send(int fd, uint8_t type, uint32_t req_id, const ax_wbuf *body)
{
    ax_frame_hdr h = {AX_PROTO_VERSION, type, 0, req_id, body ? (uint32_t)body->len : 0};
    uint8_t hb[AX_FRAME_HDR_SIZE];
    ax_frame_hdr_encode(&h, hb);
    write_all(fd, hb, sizeof hb);
    if (body && body->len)
        write_all(fd, body->data, body->len);
}

static void srv_error(int fd, uint32_t req_id, int code, const char *msg)
{
    ax_wbuf b;
    ax_wbuf_init(&b);
    ax_body_error_put(&b, code, msg);
    srv_send(fd, AX_T_ERROR, req_id, &b);
    ax_wbuf_free(&b);
}

static void srv_blob(int fd, uint8_t type, uint32_t req_id, const void *p, size_t n)
{
    ax_wbuf b;
    ax_wbuf_init(&b);
    ax_wbuf_blob(&b, p, n);
    srv_send(fd, type, req_id, &b);
    ax_wbuf_free(&b);
}

static void srv_reply(int fd, uint32_t req_id, const char *text)
{
    srv_blob(fd, AX_T_REPLY, req_id, text, strlen(text));
}

static int srv_hello(server *s, int fd)
{
    ax_frame_hdr h;
    uint8_t *body;
    ax_body_hello hello;
    const char *why = NULL;
    if (srv_recv(fd, &h, &body))
        return -1;
    int ok = h.type == AX_T_HELLO && ax_body_hello_get(body, h.body_len, &hello, &why) == 0 &&
             hello.min_ver == 1 && hello.max_ver >= 1;
    free(body);
    if (!ok)
        return -1;
    ax_body_hello_ok ho = {.version = 1, .node_id = "test-node@boot-ab-session-1",
                           .node_id_len = strlen("test-node@boot-ab-session-1"), .max_frame = s->max_frame};
    ax_wbuf b;
    ax_wbuf_init(&b);
    ax_body_hello_ok_put(&b, &ho);
    srv_send(fd, AX_T_HELLO_OK, h.req_id, &b);
    ax_wbuf_free(&b);
    return 0;
}

/* Wait until the client closes its end (so the script does not close first). */
static void srv_drain(int fd)
{
    uint8_t buf[4096];
    struct pollfd pfd = {.fd = fd, .events = POLLIN};
    while (poll(&pfd, 1, 5000) > 0 && read(fd, buf, sizeof buf) > 0)
        ;
}

static void *srv_main(void *arg)
{
    server *s = arg;
    for (int i = 0; i < (s->conns ? s->conns : 1); i++) {
        struct pollfd pfd = {.fd = s->lfd, .events = POLLIN};
        if (poll(&pfd, 1, 5000) <= 0)
            return NULL;
        int fd = accept(s->lfd, NULL, NULL);
        if (fd < 0)
            return NULL;
        s->script(s, fd);
        close(fd);
    }
    return NULL;
}

static server *srv_start(script_fn script, uint32_t max_frame)
{
    server *s = calloc(1, sizeof *s);
    ck_assert_ptr_nonnull(s);
    snprintf(s->dir, sizeof s->dir, "/tmp/axc-unit-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(s->dir));
    snprintf(s->path, sizeof s->path, "%s/d.sock", s->dir);
    s->script = script;
    s->max_frame = max_frame ? max_frame : AX_FRAME_MAX_DEFAULT;
    s->lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ck_assert_int_ge(s->lfd, 0);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    snprintf(sa.sun_path, sizeof sa.sun_path, "%s", s->path);
    ck_assert_int_eq(bind(s->lfd, (struct sockaddr *)&sa, sizeof sa), 0);
    ck_assert_int_eq(listen(s->lfd, 4), 0);
    ck_assert_int_eq(pthread_create(&s->th, NULL, srv_main, s), 0);
    return s;
}

static int srv_stop(server *s)
{
    pthread_join(s->th, NULL);
    close(s->lfd);
    unlink(s->path);
    rmdir(s->dir);
    int n = s->count;
    free(s);
    return n;
}

static axc_conn *connect_to(server *s)
{
    axc_conn *c = NULL;
    char err[256];
    int rc = axc_connect(s->path, 2000, &c, err, sizeof err);
    ck_assert_msg(rc == 0, "connect: %d %s", rc, err);
    ck_assert_ptr_nonnull(c);
    return c;
}

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- scripts ---- */

static void script_garbage(server *s, int fd)
{
    if (srv_hello(s, fd) || !srv_expect(fd, AX_T_STATUS))
        return;
    uint8_t junk[40];
    memset(junk, 0xab, sizeof junk);
    write_all(fd, junk, sizeof junk);
    srv_drain(fd);
}

static void script_oversize(server *s, int fd)
{
    uint32_t id;
    if (srv_hello(s, fd) || !(id = srv_expect(fd, AX_T_ASK)))
        return;
    /* A header announcing more than max_frame, and no body: the client must refuse it
     * from the header alone. */
    ax_frame_hdr h = {AX_PROTO_VERSION, AX_T_REPLY, 0, id, 0xfffffff0u};
    uint8_t hb[AX_FRAME_HDR_SIZE];
    ax_frame_hdr_encode(&h, hb);
    write_all(fd, hb, sizeof hb);
    srv_drain(fd);
}

static void script_eof_mid_frame(server *s, int fd)
{
    uint32_t id;
    if (srv_hello(s, fd) || !(id = srv_expect(fd, AX_T_ASK)))
        return;
    ax_frame_hdr h = {AX_PROTO_VERSION, AX_T_REPLY, 0, id, 100};
    uint8_t buf[AX_FRAME_HDR_SIZE + 10];
    ax_frame_hdr_encode(&h, buf);
    memset(buf + AX_FRAME_HDR_SIZE, 'x', 10);
    write_all(fd, buf, sizeof buf);
    /* close: EOF 90 bytes short of the body */
}

static void script_error_then_reply(server *s, int fd)
{
    uint32_t id;
    if (srv_hello(s, fd) || !(id = srv_expect(fd, AX_T_TELL)))
        return;
    srv_error(fd, id, AX_EFULL, "mailbox of c1 is full (1024 messages)");
    if (!(id = srv_expect(fd, AX_T_ASK)))
        return;
    srv_reply(fd, id, "pong");
    srv_drain(fd);
}

static void script_all_requests(server *s, int fd)
{
    uint32_t id;
    ax_wbuf b;
    if (srv_hello(s, fd))
        return;
    /* SPAWN -> REF (local node) */
    if (!(id = srv_expect(fd, AX_T_SPAWN)))
        return;
    ax_wbuf_init(&b);
    ax_wire_ref r = {.node = "", .node_len = 0, .id = 12, .gen = 3};
    ax_put_ref(&b, &r);
    srv_send(fd, AX_T_REF, id, &b);
    ax_wbuf_free(&b);
    /* RESOLVE -> REF on another node */
    if (!(id = srv_expect(fd, AX_T_RESOLVE)))
        return;
    ax_wbuf_init(&b);
    ax_wire_ref r2 = {.node = "node-b", .node_len = 6, .id = 7, .gen = 1};
    ax_put_ref(&b, &r2);
    srv_send(fd, AX_T_REF, id, &b);
    ax_wbuf_free(&b);
    /* TELL -> OK */
    if (!(id = srv_expect(fd, AX_T_TELL)))
        return;
    srv_send(fd, AX_T_OK, id, NULL);
    /* STATUS / ACTORS / PLUGINS / PLUGIN_LOAD -> JSON */
    static const uint8_t types[] = {AX_T_STATUS, AX_T_ACTORS, AX_T_PLUGINS, AX_T_PLUGIN_LOAD};
    for (size_t i = 0; i < sizeof types; i++) {
        if (!(id = srv_expect(fd, types[i])))
            return;
        const char *doc = "{\"ok\":true}";
        srv_blob(fd, AX_T_JSON, id, doc, strlen(doc));
    }
    /* PLUGIN_UNLOAD, STOP -> OK */
    if (!(id = srv_expect(fd, AX_T_PLUGIN_UNLOAD)))
        return;
    srv_send(fd, AX_T_OK, id, NULL);
    if (!(id = srv_expect(fd, AX_T_STOP)))
        return;
    srv_send(fd, AX_T_OK, id, NULL);
    /* ASK with a binary reply (embedded NUL) */
    if (!(id = srv_expect(fd, AX_T_ASK)))
        return;
    srv_blob(fd, AX_T_REPLY, id, "a\0b", 3);
    srv_drain(fd);
}

static void script_conn_error(server *s, int fd)
{
    if (srv_hello(s, fd) || !srv_expect(fd, AX_T_STATUS))
        return;
    srv_error(fd, 0, AX_EPERM, "peer uid 1000 is not allowed");
    srv_drain(fd);
}

static void script_hello_refused(server *s, int fd)
{
    ax_frame_hdr h;
    uint8_t *body;
    if (srv_recv(fd, &h, &body))
        return;
    free(body);
    srv_error(fd, h.req_id, AX_EVERSION, "no common protocol version");
}

static void script_silent(server *s, int fd)
{
    uint32_t id, id2;
    if (srv_hello(s, fd) || !(id = srv_expect(fd, AX_T_ASK)))
        return;
    /* Never answer in time; answer the next ask only after a late reply to this one. */
    if (!(id2 = srv_expect(fd, AX_T_ASK)))
        return;
    srv_reply(fd, id, "late");
    srv_reply(fd, id2, "fresh");
    srv_drain(fd);
}

static void script_pipelined(server *s, int fd)
{
    uint32_t ids[3];
    if (srv_hello(s, fd))
        return;
    for (int i = 0; i < 3; i++)
        if (!(ids[i] = srv_expect(fd, AX_T_ASK)))
            return;
    /* Completion order, not request order; the middle one fails. */
    srv_reply(fd, ids[2], "three");
    srv_error(fd, ids[1], AX_ENOMSG, "no handler for 'nope'");
    srv_reply(fd, ids[0], "one");
    srv_drain(fd);
}

static void script_wrong_type(server *s, int fd)
{
    uint32_t id;
    if (srv_hello(s, fd) || !(id = srv_expect(fd, AX_T_TELL)))
        return;
    srv_reply(fd, id, "not an OK");
    srv_drain(fd);
}

static void script_count_noreply(server *s, int fd)
{
    if (srv_hello(s, fd))
        return;
    for (;;) {
        ax_frame_hdr h;
        uint8_t *body;
        if (srv_recv(fd, &h, &body))
            return;
        free(body);
        if (h.type == AX_T_TELL && (h.flags & AX_F_NOREPLY)) {
            s->count++;
            continue;
        }
        if (h.type == AX_T_STATUS) {
            srv_blob(fd, AX_T_JSON, h.req_id, "{}", 2);
            break;
        }
        return;
    }
    srv_drain(fd);
}

static void script_close_after_hello(server *s, int fd)
{
    srv_hello(s, fd);
}

static void script_error_then_close(server *s, int fd)
{
    if (srv_hello(s, fd))
        return;
    srv_error(fd, 0, AX_EPROTO, "client sent a malformed frame: bad magic");
    shutdown(fd, SHUT_RDWR);
}

static void script_close_with_pending(server *s, int fd)
{
    if (srv_hello(s, fd) || !srv_expect(fd, AX_T_ASK) || !srv_expect(fd, AX_T_ASK))
        return;
}

static void script_events(server *s, int fd)
{
    uint32_t sub, id;
    const char *started = "{\"event\":\"started\",\"id\":1,\"gen\":1,\"name\":\"c1\"}";
    const char *down = "{\"event\":\"down\",\"mref\":42,\"id\":1,\"gen\":1,\"reason\":\"normal\"}";
    const char *mon = "{\"mref\": 42, \"id\":1,\"gen\":1}";
    if (srv_hello(s, fd) || !(sub = srv_expect(fd, AX_T_SUBSCRIBE)))
        return;
    srv_send(fd, AX_T_OK, sub, NULL);
    srv_blob(fd, AX_T_EVENT, sub, started, strlen(started));
    if (!(id = srv_expect(fd, AX_T_STATUS)))
        return;
    /* an event (a down: req_id 0) in the middle of another request's exchange */
    srv_blob(fd, AX_T_EVENT, 0, down, strlen(down));
    srv_blob(fd, AX_T_JSON, id, "{}", 2);
    if (!(id = srv_expect(fd, AX_T_MONITOR)))
        return;
    srv_blob(fd, AX_T_JSON, id, mon, strlen(mon));
    if (!(id = srv_expect(fd, AX_T_DEMONITOR)))
        return;
    srv_send(fd, AX_T_OK, id, NULL);
    if (!(id = srv_expect(fd, AX_T_UNSUBSCRIBE)))
        return;
    srv_send(fd, AX_T_OK, id, NULL);
    /* a malformed EVENT: the blob claims more bytes than the body has */
    ax_wbuf b;
    ax_wbuf_init(&b);
    ax_wbuf_u32(&b, 1000);
    ax_wbuf_put(&b, "{}", 2);
    srv_send(fd, AX_T_EVENT, sub, &b);
    ax_wbuf_free(&b);
    srv_drain(fd);
}

/* SPAWN for get_or_spawn: s->count counts requests whose bytes were as expected. */
static void script_keyed(server *s, int fd)
{
    static const char *const want[] = {"{\"key\":\"k\\\"1\"}", "{\"key\":\"k\\\"1\",\"restart\":\"permanent\"}"};
    ax_frame_hdr h;
    uint8_t *body;
    ax_body_spawn sp;
    const char *why = NULL;
    if (srv_hello(s, fd))
        return;
    for (int i = 0; i < 2; i++) {
        if (srv_recv(fd, &h, &body))
            return;
        if (h.type == AX_T_SPAWN && ax_body_spawn_get(body, h.body_len, &sp, &why) == 0 && sp.name_len == 0 &&
            sp.config_len == strlen(want[i]) && !memcmp(sp.config, want[i], sp.config_len))
            s->count++;
        free(body);
        ax_wbuf b;
        ax_wbuf_init(&b);
        ax_wire_ref r = {.node = "", .node_len = 0, .id = 5, .gen = 1};
        ax_put_ref(&b, &r);
        srv_send(fd, AX_T_REF, h.req_id, &b);
        ax_wbuf_free(&b);
    }
    /* ASK and TELL carry DIRECT on the wire */
    for (int i = 0; i < 2; i++) {
        if (srv_recv(fd, &h, &body))
            return;
        free(body);
        if ((h.type == AX_T_ASK || h.type == AX_T_TELL) && h.flags == AX_F_DIRECT)
            s->count++;
        srv_error(fd, h.req_id, AX_ENOTFOUND, "no live actor for this key");
    }
    srv_drain(fd);
}

static uint32_t rnd(uint32_t *st)
{
    *st = *st * 1664525u + 1013904223u;
    return *st >> 8;
}

/* Answer every request with something random but complete (so the client never waits
 * for bytes that will not come): valid or mangled bodies of any d->c type, a wrong
 * direction type, a req_id-0 ERROR, or junk. */
static void script_random(server *s, int fd)
{
    static const uint8_t types[] = {AX_T_OK, AX_T_ERROR, AX_T_REF, AX_T_REPLY, AX_T_JSON, AX_T_HELLO_OK, AX_T_TELL,
                                    AX_T_EVENT};
    if (srv_hello(s, fd))
        return;
    for (;;) {
        ax_frame_hdr h;
        uint8_t *body;
        if (srv_recv(fd, &h, &body))
            return;
        free(body);
        uint32_t r = rnd(&s->seed);
        ax_wbuf b;
        ax_wbuf_init(&b);
        uint8_t type = types[r % sizeof types];
        /* req_id 0 only on ERROR: anything else unanswered would just make us wait */
        uint32_t id = type == AX_T_ERROR && (r >> 4) % 4 == 0 ? 0 : h.req_id;
        switch ((r >> 8) % 4) {
        case 0: /* random bytes as the body */
            for (uint32_t n = rnd(&s->seed) % 48; n; n--)
                ax_wbuf_u8(&b, (uint8_t)rnd(&s->seed));
            break;
        case 1: /* a well-formed body for the type */
            if (type == AX_T_ERROR)
                ax_body_error_put(&b, -(int)(rnd(&s->seed) % 30) - 1, "random error");
            else if (type == AX_T_REPLY || type == AX_T_JSON)
                ax_wbuf_blob(&b, "{\"k\":1}", 7);
            else if (type == AX_T_REF) {
                ax_wire_ref wr = {.node = "", .node_len = 0, .id = r, .gen = 1};
                ax_put_ref(&b, &wr);
            }
            break;
        case 2: /* a blob whose length lies */
            ax_wbuf_u32(&b, rnd(&s->seed));
            ax_wbuf_put(&b, "abc", 3);
            break;
        default: { /* junk instead of a frame */
            uint8_t junk[24];
            for (size_t i = 0; i < sizeof junk; i++)
                junk[i] = (uint8_t)rnd(&s->seed);
            junk[0] = 0; /* never a valid magic */
            write_all(fd, junk, sizeof junk);
            ax_wbuf_free(&b);
            continue;
        }
        }
        srv_send(fd, type, id, &b);
        ax_wbuf_free(&b);
        s->count++;
    }
}

/* ---- tests ---- */

START_TEST(garbage_reply_is_eproto_then_econn)
{
    server *s = srv_start(script_garbage, 0);
    axc_conn *c = connect_to(s);
    ck_assert_str_eq(axc_node_id(c), "test-node@boot-ab-session-1");
    char *doc = (char *)"untouched";
    ck_assert_int_eq(axc_status(c, &doc), AX_EPROTO);
    ck_assert_str_eq(doc, "untouched");
    ck_assert_ptr_nonnull(strstr(axc_errmsg(c), "malformed frame from the daemon"));
    ck_assert_ptr_nonnull(strstr(axc_errmsg(c), "magic"));
    ck_assert_int_eq(axc_is_broken(c), 1);
    ck_assert_int_eq(axc_actors(c, &doc), AX_ECONN);
    ck_assert_ptr_nonnull(strstr(axc_errmsg(c), "broken"));
    axc_close(c);
    srv_stop(s);
}
END_TEST

START_TEST(oversize_header_is_refused_before_its_body)
{
    server *s = srv_start(script_oversize, 4096);
    axc_conn *c = connect_to(s);
    ck_assert_uint_eq(axc_max_frame(c), 4096);
    axc_target t = axc_by_name("c1");
    void *reply = (void *)1;
    size_t len = 77;
    ck_assert_int_eq(axc_ask(c, &t, "get", NULL, 0, 1000, &reply, &len), AX_EPROTO);
    ck_assert_ptr_eq(reply, (void *)1);
    ck_assert_uint_eq(len, 77);
    ck_assert_ptr_nonnull(strstr(axc_errmsg(c), "max_frame"));
    ck_assert_int_eq(axc_is_broken(c), 1);
    axc_close(c);
    srv_stop(s);
}
END_TEST

START_TEST(eof_mid_frame_is_econn)
{
    server *s = srv_start(script_eof_mid_frame, 0);
    axc_conn *c = connect_to(s);
    axc_target t = axc_by_name("c1");
    void *reply = NULL;
    size_t len = 0;
    ck_assert_int_eq(axc_ask(c, &t, "get", "x", 1, 1000, &reply, &len), AX_ECONN);
    ck_assert_ptr_null(reply);
    ck_assert_ptr_nonnull(strstr(axc_errmsg(c), "middle of a frame"));
    ck_assert_int_eq(axc_tell(c, &t, "inc", NULL, 0), AX_ECONN);
    axc_close(c);
    srv_stop(s);
}
END_TEST

START_TEST(error_frame_gives_code_and_message_and_keeps_the_connection)
{
    server *s = srv_start(script_error_then_reply, 0);
    axc_conn *c = connect_to(s);
    axc_target t = axc_by_name("c1");
    ck_assert_int_eq(axc_tell(c, &t, "inc", "1", 1), AX_EFULL);
    ck_assert_str_eq(axc_errmsg(c), "mailbox of c1 is full (1024 messages)");
    ck_assert_int_eq(axc_is_broken(c), 0);
    void *reply = NULL;
    size_t len = 0;
    ck_assert_int_eq(axc_ask(c, &t, "ping", NULL, 0, 1000, &reply, &len), 0);
    ck_assert_uint_eq(len, 4);
    ck_assert_str_eq(reply, "pong"); /* NUL-terminated */
    axc_free(reply);
    axc_close(c);
    srv_stop(s);
}
END_TEST

START_TEST(every_request_gets_its_response_type)
{
    server *s = srv_start(script_all_requests, 0);
    axc_conn *c = connect_to(s);
    axc_ref r;
    ck_assert_int_eq(axc_spawn(c, "counter", "c1", "{\"mailbox_capacity\":8}", &r), 0);
    ck_assert_uint_eq(r.id, 12);
    ck_assert_uint_eq(r.gen, 3);
    ck_assert_str_eq(r.node, "");
    axc_target t = axc_by_key("counter", "alice");
    ck_assert_int_eq(axc_resolve(c, &t, &r), 0);
    ck_assert_uint_eq(r.id, 7);
    ck_assert_str_eq(r.node, "node-b");
    axc_target tr = axc_by_ref(&r);
    ck_assert_int_eq(axc_tell(c, &tr, "inc", NULL, 0), 0);
    char *doc = NULL;
    ck_assert_int_eq(axc_status(c, &doc), 0);
    ck_assert_str_eq(doc, "{\"ok\":true}");
    axc_free(doc);
    ck_assert_int_eq(axc_actors(c, &doc), 0);
    axc_free(doc);
    ck_assert_int_eq(axc_plugins(c, &doc), 0);
    axc_free(doc);
    ck_assert_int_eq(axc_plugin_load(c, "/x/counter.so", &doc), 0);
    axc_free(doc);
    ck_assert_int_eq(axc_plugin_unload(c, "counter"), 0);
    axc_target tn = axc_by_name("c1");
    ck_assert_int_eq(axc_stop(c, &tn), 0);
    void *reply = NULL;
    size_t len = 0;
    ck_assert_int_eq(axc_ask(c, &tn, "get", NULL, 0, 500, &reply, &len), 0);
    ck_assert_uint_eq(len, 3);
    ck_assert_int_eq(memcmp(reply, "a\0b", 4), 0);
    axc_free(reply);
    ck_assert_int_eq(axc_is_broken(c), 0);
    axc_close(c);
    srv_stop(s);
}
END_TEST

START_TEST(connection_level_error_breaks_the_connection)
{
    server *s = srv_start(script_conn_error, 0);
    axc_conn *c = connect_to(s);
    char *doc = NULL;
    ck_assert_int_eq(axc_status(c, &doc), AX_EPERM);
    ck_assert_ptr_nonnull(strstr(axc_errmsg(c), "peer uid 1000 is not allowed"));
    ck_assert_int_eq(axc_is_broken(c), 1);
    ck_assert_int_eq(axc_status(c, &doc), AX_ECONN);
    axc_close(c);
    srv_stop(s);
}
END_TEST

START_TEST(hello_refused_fails_connect_with_the_reason)
{
    server *s = srv_start(script_hello_refused, 0);
    axc_conn *c = (axc_conn *)1;
    char err[256];
    ck_assert_int_eq(axc_connect(s->path, 2000, &c, err, sizeof err), AX_EVERSION);
    ck_assert_ptr_null(c);
    ck_assert_ptr_nonnull(strstr(err, "no common protocol version"));
    srv_stop(s);
}
END_TEST

START_TEST(connect_without_daemon_is_econn)
{
    axc_conn *c = (axc_conn *)1;
    char err[256];
    ck_assert_int_eq(axc_connect("/nonexistent-dir/axactord.sock", 500, &c, err, sizeof err), AX_ECONN);
    ck_assert_ptr_null(c);
    ck_assert_ptr_nonnull(strstr(err, "/nonexistent-dir/axactord.sock"));
    /* NULL-safe entry points */
    axc_close(NULL);
    axc_free(NULL);
    ck_assert_str_eq(axc_errmsg(NULL), "no connection");
    ck_assert_int_eq(axc_tell(NULL, NULL, "x", NULL, 0), AX_EINVAL);
}
END_TEST

START_TEST(ask_times_out_locally_and_drops_the_late_reply)
{
    server *s = srv_start(script_silent, 0);
    axc_conn *c = connect_to(s);
    axc_target t = axc_by_name("c1");
    void *reply = NULL;
    size_t len = 0;
    int64_t t0 = mono_ms();
    ck_assert_int_eq(axc_ask(c, &t, "slow", NULL, 0, 100, &reply, &len), AX_ETIMEDOUT);
    int64_t took = mono_ms() - t0;
    ck_assert_msg(took >= 1000 && took < 3000, "waited %lld ms", (long long)took);
    ck_assert_int_eq(axc_is_broken(c), 0);
    /* The late "late" reply must not be taken for this ask's answer. */
    ck_assert_int_eq(axc_ask(c, &t, "fast", NULL, 0, 1000, &reply, &len), 0);
    ck_assert_str_eq(reply, "fresh");
    axc_free(reply);
    axc_close(c);
    srv_stop(s);
}
END_TEST

START_TEST(pipelined_results_are_matched_by_req_id)
{
    server *s = srv_start(script_pipelined, 0);
    axc_conn *c = connect_to(s);
    axc_target t = axc_by_name("c1");
    uint32_t ids[3];
    ck_assert_int_eq(axc_send_ask(c, &t, "a", NULL, 0, 1000, &ids[0]), 0);
    ck_assert_int_eq(axc_send_ask(c, &t, "nope", NULL, 0, 1000, &ids[1]), 0);
    ck_assert_int_eq(axc_send_ask(c, &t, "c", NULL, 0, 1000, &ids[2]), 0);
    ck_assert_uint_eq(axc_pending(c), 3);
    axc_result r;
    int seen = 0;
    for (int i = 0; i < 3; i++) {
        /* The first poll does not wait (it flushes; a result may or may not be back). */
        int got = axc_poll_result(c, i == 0 ? 0 : 2000, &r);
        if (got == 0 && i == 0)
            got = axc_poll_result(c, 2000, &r);
        ck_assert_int_eq(got, 1);
        if (r.req_id == ids[0]) {
            ck_assert_int_eq(r.status, 0);
            ck_assert_str_eq(r.data, "one");
        } else if (r.req_id == ids[1]) {
            ck_assert_int_eq(r.status, AX_ENOMSG);
            ck_assert_str_eq(r.data, "no handler for 'nope'");
        } else {
            ck_assert_uint_eq(r.req_id, ids[2]);
            ck_assert_int_eq(r.status, 0);
            ck_assert_str_eq(r.data, "three");
            ck_assert_uint_eq(r.len, 5);
        }
        seen |= 1 << i;
        axc_free(r.data);
    }
    ck_assert_int_eq(seen, 7);
    ck_assert_uint_eq(axc_pending(c), 0);
    ck_assert_int_eq(axc_poll_result(c, 0, &r), 0);
    axc_close(c);
    srv_stop(s);
}
END_TEST

START_TEST(wrong_response_type_is_eproto)
{
    server *s = srv_start(script_wrong_type, 0);
    axc_conn *c = connect_to(s);
    axc_target t = axc_by_name("c1");
    ck_assert_int_eq(axc_tell(c, &t, "inc", NULL, 0), AX_EPROTO);
    ck_assert_ptr_nonnull(strstr(axc_errmsg(c), "REPLY"));
    ck_assert_int_eq(axc_is_broken(c), 1);
    axc_close(c);
    srv_stop(s);
}
END_TEST

START_TEST(bad_requests_are_refused_locally)
{
    server *s = srv_start(script_count_noreply, 1024);
    axc_conn *c = connect_to(s);
    axc_target t = axc_by_name("c1");
    axc_target bad = axc_by_name("has space");
    axc_target nokey = axc_by_key("counter", "");
    char big[2048];
    memset(big, 'x', sizeof big);
    ck_assert_int_eq(axc_tell(c, &bad, "inc", NULL, 0), AX_EINVAL);
    ck_assert_int_eq(axc_tell(c, &nokey, "inc", NULL, 0), AX_EINVAL);
    ck_assert_int_eq(axc_tell(c, &t, "", NULL, 0), AX_EINVAL);
    ck_assert_int_eq(axc_tell(c, &t, "inc", NULL, 5), AX_EINVAL);
    ck_assert_int_eq(axc_tell_noreply(c, &t, "inc", big, sizeof big), AX_ETOOBIG);
    ck_assert_ptr_nonnull(strstr(axc_errmsg(c), "max_frame"));
    void *reply = NULL;
    size_t len;
    ck_assert_int_eq(axc_ask(c, &t, "get", NULL, 0, 0, &reply, &len), AX_EINVAL);
    axc_target kind9 = t;
    kind9.kind = 9;
    ck_assert_int_eq(axc_stop(c, &kind9), AX_EINVAL);
    ck_assert_int_eq(axc_is_broken(c), 0);
    /* Nothing of the above reached the daemon: it counts 0 NOREPLY tells, then the
     * status. */
    char *doc = NULL;
    ck_assert_int_eq(axc_status(c, &doc), 0);
    axc_free(doc);
    axc_close(c);
    ck_assert_int_eq(srv_stop(s), 0);
}
END_TEST

START_TEST(noreply_tells_are_buffered_then_flushed)
{
    server *s = srv_start(script_count_noreply, 0);
    axc_conn *c = connect_to(s);
    axc_target t = axc_by_name("c1");
    char payload[100];
    memset(payload, 'p', sizeof payload);
    for (int i = 0; i < 5000; i++) /* ~700 KB: crosses the 64 KiB flush threshold */
        ck_assert_int_eq(axc_tell_noreply(c, &t, "inc", payload, sizeof payload), 0);
    ck_assert_int_eq(axc_flush(c), 0);
    char *doc = NULL;
    ck_assert_int_eq(axc_status(c, &doc), 0);
    ck_assert_str_eq(doc, "{}");
    axc_free(doc);
    axc_close(c);
    ck_assert_int_eq(srv_stop(s), 5000);
}
END_TEST

START_TEST(daemon_gone_gives_econn_not_sigpipe)
{
    /* Default SIGPIPE disposition on purpose: MSG_NOSIGNAL must protect us. */
    signal(SIGPIPE, SIG_DFL);
    server *s = srv_start(script_close_after_hello, 0);
    axc_conn *c = connect_to(s);
    srv_stop(s);
    usleep(50 * 1000);
    axc_target t = axc_by_name("c1");
    static char payload[512 * 1024];
    int rc = axc_tell(c, &t, "inc", payload, 1000);
    ck_assert_int_eq(rc, AX_ECONN);
    ck_assert_int_eq(axc_is_broken(c), 1);
    ck_assert_int_eq(axc_tell_noreply(c, &t, "inc", NULL, 0), AX_ECONN);
    axc_close(c);
}
END_TEST

START_TEST(error_sent_before_close_is_reported)
{
    server *s = srv_start(script_error_then_close, 0);
    axc_conn *c = connect_to(s);
    srv_stop(s);
    usleep(50 * 1000);
    char *doc = NULL;
    int rc = axc_status(c, &doc);
    ck_assert_int_eq(rc, AX_EPROTO);
    ck_assert_ptr_nonnull(strstr(axc_errmsg(c), "bad magic"));
    ck_assert_int_eq(axc_is_broken(c), 1);
    axc_close(c);
}
END_TEST

START_TEST(broken_connection_fails_every_pending_ask_once)
{
    server *s = srv_start(script_close_with_pending, 0);
    axc_conn *c = connect_to(s);
    axc_target t = axc_by_name("c1");
    uint32_t a, b;
    ck_assert_int_eq(axc_send_ask(c, &t, "a", NULL, 0, 1000, &a), 0);
    ck_assert_int_eq(axc_send_ask(c, &t, "b", NULL, 0, 1000, &b), 0);
    ck_assert_int_eq(axc_flush(c), 0);
    axc_result r;
    ck_assert_int_eq(axc_poll_result(c, 2000, &r), 1);
    ck_assert_uint_eq(r.req_id, a);
    ck_assert_int_eq(r.status, AX_ECONN);
    axc_free(r.data);
    ck_assert_int_eq(axc_poll_result(c, 2000, &r), 1);
    ck_assert_uint_eq(r.req_id, b);
    ck_assert_int_eq(r.status, AX_ECONN);
    axc_free(r.data);
    ck_assert_int_eq(axc_poll_result(c, 2000, &r), AX_ECONN);
    axc_close(c);
    srv_stop(s);
}
END_TEST

START_TEST(random_replies_never_crash)
{
    enum { CONNS = 60 };
    server *s = srv_start(script_random, 0);
    s->conns = CONNS;
    s->seed = 12345;
    axc_target t = axc_by_name("c1");
    int ok = 0, failed = 0;
    for (int i = 0; i < CONNS; i++) {
        axc_conn *c = connect_to(s);
        axc_set_timeout(c, 2000);
        for (int k = 0; k < 50 && !axc_is_broken(c); k++) {
            char *doc = NULL;
            void *reply = NULL;
            size_t len = 0;
            axc_ref r;
            int rc;
            switch (k % 5) {
            case 0:
                rc = axc_status(c, &doc);
                if (!rc)
                    ck_assert_uint_eq(doc[strlen(doc)], 0);
                axc_free(doc);
                break;
            case 1:
                rc = axc_ask(c, &t, "get", "x", 1, 500, &reply, &len);
                if (!rc)
                    ck_assert_uint_eq(((char *)reply)[len], 0);
                axc_free(reply);
                break;
            case 2:
                rc = axc_tell(c, &t, "inc", NULL, 0);
                break;
            case 3:
                rc = axc_resolve(c, &t, &r);
                break;
            default:
                rc = axc_spawn(c, "counter", NULL, NULL, &r);
                break;
            }
            ck_assert_int_le(rc, 0);
            ck_assert_ptr_nonnull(axc_errmsg(c));
            if (rc)
                failed++;
            else
                ok++;
        }
        ck_assert_int_eq(axc_is_broken(c), 1); /* sooner or later the junk comes */
        axc_close(c);
    }
    srv_stop(s);
    ck_assert_int_gt(ok, 0);
    ck_assert_int_gt(failed, 0);
}
END_TEST

START_TEST(events_are_queued_and_monitors_return_their_mref)
{
    server *s = srv_start(script_events, 0);
    axc_conn *c = connect_to(s);
    char *doc = NULL;
    ck_assert_int_eq(axc_subscribe(c, "bad name"), AX_EINVAL);
    ck_assert_int_eq(axc_subscribe(c, NULL), 0);
    ck_assert_int_eq(axc_next_event(c, 2000, &doc), 1);
    ck_assert_ptr_nonnull(strstr(doc, "\"started\""));
    axc_free(doc);
    ck_assert_int_eq(axc_status(c, &doc), 0);
    ck_assert_str_eq(doc, "{}");
    axc_free(doc);
    ck_assert_int_eq(axc_next_event(c, 0, &doc), 1); /* queued during status */
    ck_assert_ptr_nonnull(strstr(doc, "\"down\""));
    axc_free(doc);
    ck_assert_int_eq(axc_next_event(c, 0, &doc), 0);
    axc_target t = axc_by_name("c1");
    uint64_t mref = 0;
    ck_assert_int_eq(axc_monitor(c, &t, &mref), 0);
    ck_assert_uint_eq(mref, 42);
    ck_assert_int_eq(axc_demonitor(c, mref), 0);
    ck_assert_int_eq(axc_unsubscribe(c), 0);
    ck_assert_int_eq(axc_next_event(c, 2000, &doc), AX_EPROTO);
    ck_assert_ptr_nonnull(strstr(axc_errmsg(c), "EVENT"));
    ck_assert_int_eq(axc_is_broken(c), 1);
    axc_close(c);
    srv_stop(s);
}
END_TEST

START_TEST(get_or_spawn_puts_the_key_in_the_config_and_direct_on_the_wire)
{
    server *s = srv_start(script_keyed, 0);
    axc_conn *c = connect_to(s);
    axc_ref r;
    axc_target t = axc_by_key("counter", "k\"1");
    void *reply = NULL;
    size_t len;
    ck_assert_int_eq(axc_get_or_spawn(c, "counter", "k\"1", NULL, &r), 0);
    ck_assert_uint_eq(r.id, 5);
    ck_assert_int_eq(axc_get_or_spawn(c, "counter", "k\"1", " {\"restart\":\"permanent\"}", &r), 0);
    /* refused locally, nothing sent */
    ck_assert_int_eq(axc_get_or_spawn(c, "counter", "k", "[1]", &r), AX_EINVAL);
    ck_assert_int_eq(axc_get_or_spawn(c, "counter", "k", "{\"key\":\"x\"}", &r), AX_EINVAL);
    ck_assert_int_eq(axc_ask_ex(c, &t, "get", NULL, 0, 1000, 0x4, &reply, &len), AX_EINVAL);
    ck_assert_int_eq(axc_ask_ex(c, &t, "get", NULL, 0, 1000, AXC_DIRECT, &reply, &len), AX_ENOTFOUND);
    ck_assert_int_eq(axc_tell_ex(c, &t, "inc", NULL, 0, AXC_DIRECT), AX_ENOTFOUND);
    ck_assert_int_eq(axc_is_broken(c), 0);
    axc_close(c);
    ck_assert_int_eq(srv_stop(s), 4);
}
END_TEST

static Suite *client_suite(void)
{
    Suite *s = suite_create("client_unit");
    TCase *tc = tcase_create("fake_daemon");
    tcase_set_timeout(tc, 20);
    tcase_add_test(tc, garbage_reply_is_eproto_then_econn);
    tcase_add_test(tc, oversize_header_is_refused_before_its_body);
    tcase_add_test(tc, eof_mid_frame_is_econn);
    tcase_add_test(tc, error_frame_gives_code_and_message_and_keeps_the_connection);
    tcase_add_test(tc, every_request_gets_its_response_type);
    tcase_add_test(tc, connection_level_error_breaks_the_connection);
    tcase_add_test(tc, hello_refused_fails_connect_with_the_reason);
    tcase_add_test(tc, connect_without_daemon_is_econn);
    tcase_add_test(tc, ask_times_out_locally_and_drops_the_late_reply);
    tcase_add_test(tc, pipelined_results_are_matched_by_req_id);
    tcase_add_test(tc, wrong_response_type_is_eproto);
    tcase_add_test(tc, bad_requests_are_refused_locally);
    tcase_add_test(tc, noreply_tells_are_buffered_then_flushed);
    tcase_add_test(tc, daemon_gone_gives_econn_not_sigpipe);
    tcase_add_test(tc, error_sent_before_close_is_reported);
    tcase_add_test(tc, broken_connection_fails_every_pending_ask_once);
    tcase_add_test(tc, random_replies_never_crash);
    tcase_add_test(tc, events_are_queued_and_monitors_return_their_mref);
    tcase_add_test(tc, get_or_spawn_puts_the_key_in_the_config_and_direct_on_the_wire);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(client_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
