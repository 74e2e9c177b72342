/* libaxclient, asynchronous: the same requests and codec as client.c (through conn.h), driven
 * by the caller's event loop through axc_async_loop hooks, each request answered through its
 * own callback. Requests waiting for an answer are kept by request id, active monitors by
 * mref; the one subscription of a connection by its SUBSCRIBE's id (its EVENTs carry it). */

#include "axactor/async.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "ax_mem.h"
#include "conn.h"
#include "frame.h"

#define DEFAULT_MAX_UNSENT (64u << 20)
/* Reads per readable event before the loop gets control back. */
#define READS_PER_EVENT 64
/* Retry of a connect refused for a full listen backlog. */
#define BUSY_RETRY_MS 10
/* Local deadline of a drain beyond its own timeout (as axc_drain). */
#define DRAIN_GRACE_MS 5000

enum { ST_CONNECTING, ST_HELLO, ST_UP, ST_DOWN, ST_CLOSED };

/* What a request's answer is decoded as. */
enum { K_OK, K_REF, K_DATA, K_JSON, K_MONITOR, K_DEMONITOR, K_SUBSCRIBE, K_UNSUBSCRIBE, K_HELLO };

typedef struct areq {
    uint64_t key; /* request id while waiting; mref once an active monitor */
    uint8_t kind;
    axc_async_cb cb;
    void *priv;
    int64_t deadline; /* waiting: local give-up time (monotonic ms) */
    int timeout_ms;
    uint64_t mref;     /* DEMONITOR: the monitor it ends */
    struct areq *hnext; /* chain in its table */
    struct areq *prev, *next; /* the table's list, oldest first */
} areq;

/* Requests by key: buckets of chains (ids are sequential, so key & mask spreads them),
 * plus a list in insertion order for the deadline scans and the teardown. */
typedef struct rtab {
    areq **b;
    size_t cap, n;
    areq *head, *tail;
} rtab;

struct axc_async {
    axc_conn *c; /* codec state of the current socket; NULL while down */
    char path[108];
    int state;
    int timeout_ms, connect_timeout_ms;
    size_t max_unsent;
    axc_async_loop loop;
    int attached, reading, writing;
    int64_t timer_at;      /* when the loop's timer is armed for (INT64_MAX: not armed) */
    int64_t min_deadline;  /* no waiting request's deadline is earlier (may be stale-early) */
    int64_t connect_deadline, retry_at;
    uint32_t hello_id;
    size_t hello_left;     /* bytes of the HELLO frame not yet written */
    rtab waiting, monitors;
    areq *sub;             /* the active subscription (its key: the SUBSCRIBE's id) */
    axc_async_connect_cb connect_cb;
    void *connect_priv;
    axc_async_disconnect_cb disconnect_cb;
    void *disconnect_priv;
    axc_async_cb event_cb;
    void *event_priv;
    int rc_min, rc_max, rc_cur;
    unsigned reconnects;
    int ever_up;           /* a HELLO succeeded on some connection (for reconnect counting) */
    int depth;             /* callbacks on the stack */
    int free_pending;
    char *tmp;             /* NUL-terminated copy of the blob handed to a callback */
    size_t tmp_cap;
    char err[512];
};

static int aerr(axc_async *ac, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int aerr(axc_async *ac, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(ac->err, sizeof ac->err, fmt, ap);
    va_end(ap);
    cl_sanitize(ac->err);
    return code;
}

/* ---- request tables ---- */

static int rtab_grow(rtab *t)
{
    size_t ncap = t->cap ? t->cap * 2 : 64;
    areq **nb = ax_try_malloc(ncap * sizeof *nb);
    if (!nb)
        return AX_ENOMEM;
    memset(nb, 0, ncap * sizeof *nb);
    for (areq *r = t->head; r; r = r->next) {
        size_t i = (size_t)r->key & (ncap - 1);
        r->hnext = nb[i];
        nb[i] = r;
    }
    ax_free(t->b);
    t->b = nb;
    t->cap = ncap;
    return 0;
}

/* Room for one more, so that an insert after a queued frame cannot fail. */
static int rtab_reserve(rtab *t)
{
    return t->n < t->cap ? 0 : rtab_grow(t);
}

static void rtab_insert(rtab *t, areq *r)
{
    size_t i = (size_t)r->key & (t->cap - 1);
    r->hnext = t->b[i];
    t->b[i] = r;
    r->next = NULL;
    r->prev = t->tail;
    if (t->tail)
        t->tail->next = r;
    else
        t->head = r;
    t->tail = r;
    t->n++;
}

static areq *rtab_find(const rtab *t, uint64_t key)
{
    if (!t->cap)
        return NULL;
    for (areq *r = t->b[(size_t)key & (t->cap - 1)]; r; r = r->hnext)
        if (r->key == key)
            return r;
    return NULL;
}

static void rtab_remove(rtab *t, areq *r)
{
    areq **pp = &t->b[(size_t)r->key & (t->cap - 1)];
    while (*pp != r)
        pp = &(*pp)->hnext;
    *pp = r->hnext;
    if (r->prev)
        r->prev->next = r->next;
    else
        t->head = r->next;
    if (r->next)
        r->next->prev = r->prev;
    else
        t->tail = r->prev;
    t->n--;
}

/* ---- loop hooks ---- */

static void want_read(axc_async *ac, int on)
{
    if (!ac->attached || ac->reading == on)
        return;
    ac->reading = on;
    if (on)
        ac->loop.add_read(ac->loop.data);
    else
        ac->loop.del_read(ac->loop.data);
}

static void want_write(axc_async *ac, int on)
{
    if (!ac->attached || ac->writing == on)
        return;
    ac->writing = on;
    if (on)
        ac->loop.add_write(ac->loop.data);
    else
        ac->loop.del_write(ac->loop.data);
}

static void set_fd(axc_async *ac, int fd)
{
    if (!ac->attached)
        return;
    ac->reading = ac->writing = 0;
    ac->loop.set_fd(ac->loop.data, fd);
}

/* Arm the loop's timer for the earliest thing that needs time: the connect deadline or a
 * retry, a reconnect, a request's deadline. */
static void rearm(axc_async *ac)
{
    if (!ac->attached)
        return;
    int64_t at = INT64_MAX;
    if (ac->state == ST_CONNECTING || ac->state == ST_HELLO)
        at = ac->connect_deadline;
    if ((ac->state == ST_CONNECTING || ac->state == ST_DOWN) && ac->retry_at < at)
        at = ac->retry_at;
    if (ac->waiting.n && ac->min_deadline < at)
        at = ac->min_deadline;
    if (at == ac->timer_at)
        return;
    ac->timer_at = at;
    if (at == INT64_MAX) {
        ac->loop.set_timer(ac->loop.data, -1);
        return;
    }
    int64_t ms = at - cl_now_ms();
    ac->loop.set_timer(ac->loop.data, ms < 0 ? 0 : ms > INT32_MAX ? INT32_MAX : (int)ms);
}

/* ---- calling back ---- */

static const char *with_nul(axc_async *ac, const void *p, size_t n)
{
    if (n + 1 > ac->tmp_cap) {
        char *t = ax_try_realloc(ac->tmp, n + 1);
        if (!t)
            return NULL;
        ac->tmp = t;
        ac->tmp_cap = n + 1;
    }
    if (n)
        memcpy(ac->tmp, p, n);
    ac->tmp[n] = 0;
    return ac->tmp;
}

static void call(axc_async *ac, axc_async_cb cb, void *priv, axc_reply *r)
{
    if (!r->errmsg)
        r->errmsg = r->status ? ax_strerror(r->status) : "";
    if (!cb)
        return;
    ac->depth++;
    cb(ac, r, priv);
    ac->depth--;
}

static void call_status(axc_async *ac, areq *q, int status, const char *msg, int final)
{
    axc_reply r;
    memset(&r, 0, sizeof r);
    r.status = status;
    r.final = final;
    r.req_id = q->kind == K_MONITOR && !final ? 0 : (uint32_t)q->key;
    r.errmsg = msg;
    r.mref = q->kind == K_MONITOR ? q->mref : 0;
    call(ac, q->cb, q->priv, &r);
}

/* ---- connection teardown ---- */

static void destroy(axc_async *ac);

static void close_socket(axc_async *ac)
{
    if (!ac->c)
        return;
    set_fd(ac, -1);
    if (ac->c->fd >= 0)
        close(ac->c->fd);
    ac->c->fd = -1;
    axc_close(ac->c); /* nothing to flush: fd is gone */
    ac->c = NULL;
}

/* The connection ended (status 0: by the caller). Everything that waited on it gets its
 * final call, then the disconnect callback; then a reconnect is scheduled if asked for. */
static void conn_lost(axc_async *ac, int status, const char *why)
{
    if (ac->state == ST_DOWN || ac->state == ST_CLOSED)
        return;
    int was_up = ac->state == ST_UP;
    char reason[512];
    snprintf(reason, sizeof reason, "%s", why && *why ? why : "connection closed");
    close_socket(ac);
    ac->state = (ac->rc_min > 0 && status != 0) ? ST_DOWN : ST_CLOSED;
    ac->depth++;
    /* Take the tables apart before calling anyone: callbacks may issue requests (refused:
     * not connected) or free the connection (deferred: depth > 0). */
    areq *w = ac->waiting.head, *m = ac->monitors.head, *s = ac->sub;
    ac->waiting.head = ac->waiting.tail = NULL;
    ac->monitors.head = ac->monitors.tail = NULL;
    ac->waiting.n = ac->monitors.n = 0;
    if (ac->waiting.cap)
        memset(ac->waiting.b, 0, ac->waiting.cap * sizeof *ac->waiting.b);
    if (ac->monitors.cap)
        memset(ac->monitors.b, 0, ac->monitors.cap * sizeof *ac->monitors.b);
    ac->sub = NULL;
    axc_disconnect d = {.status = status, .reason = reason, .reconnect_in_ms = -1};
    char msg[600];
    snprintf(msg, sizeof msg, "connection to the daemon lost before the answer (outcome unknown): %s", reason);
    while (w) {
        areq *n = w->next;
        if (w->kind == K_SUBSCRIBE)
            d.lost_subscription = 1;
        if (w->kind != K_HELLO) {
            d.lost_requests++;
            call_status(ac, w, AX_ECONN, msg, 1);
        }
        ax_free(w);
        w = n;
    }
    while (m) {
        areq *n = m->next;
        char doc[128];
        int len = snprintf(doc, sizeof doc, "{\"event\":\"down\",\"mref\":%llu,\"reason\":\"noconnection\"}",
                           (unsigned long long)m->mref);
        axc_reply r;
        memset(&r, 0, sizeof r);
        r.status = AX_ENOCONN;
        r.kind = AXC_R_EVENT;
        r.final = 1;
        r.errmsg = msg;
        r.data = doc;
        r.len = (size_t)len;
        r.mref = m->mref;
        call(ac, m->cb, m->priv, &r);
        d.lost_monitors++;
        ax_free(m);
        m = n;
    }
    if (s) {
        d.lost_subscription = 1;
        call_status(ac, s, AX_ECONN, msg, 1);
        ax_free(s);
    }
    if (ac->state == ST_DOWN) {
        if (ac->rc_cur < ac->rc_min)
            ac->rc_cur = ac->rc_min;
        d.reconnect_in_ms = ac->rc_cur;
        ac->retry_at = cl_now_ms() + ac->rc_cur;
    }
    if (was_up && ac->disconnect_cb)
        ac->disconnect_cb(ac, &d, ac->disconnect_priv);
    else if (!was_up && ac->connect_cb && !ac->free_pending)
        ac->connect_cb(ac, status ? status : AX_ECONN, ac->connect_priv);
    ac->depth--;
    rearm(ac);
}

/* The current socket failed while connecting or saying HELLO. */
static void connect_failed(axc_async *ac, int status)
{
    char why[512];
    snprintf(why, sizeof why, "%s", ac->c ? ac->c->err : ac->err);
    snprintf(ac->err, sizeof ac->err, "%s", why);
    conn_lost(ac, status, why);
    /* a failed attempt doubles the wait before the next one */
    if (ac->state == ST_DOWN) {
        int next = ac->rc_cur * 2;
        ac->rc_cur = next > ac->rc_max ? ac->rc_max : next;
    }
}

static void broke(axc_async *ac, int status)
{
    if (ac->state == ST_UP)
        conn_lost(ac, status, ac->c ? ac->c->err : "connection lost");
    else
        connect_failed(ac, status);
}

/* ---- opening ---- */

static int open_conn(axc_async *ac)
{
    axc_conn *c = cl_conn_new();
    if (!c)
        return aerr(ac, AX_ENOMEM, "out of memory");
    c->async = 1;
    c->timeout_ms = ac->timeout_ms;
    /* Until HELLO_OK says the daemon's limit, requests are checked against the highest one;
     * those the daemon would refuse are failed when it answers (drop_oversized). */
    c->max_frame = AX_FRAME_MAX_LIMIT;
    int rc = cl_connect_start(c, ac->path);
    if (rc < 0 && rc != AX_EBUSY) {
        aerr(ac, rc, "%s", c->err);
        if (c->fd >= 0)
            close(c->fd);
        c->fd = -1;
        axc_close(c);
        return rc;
    }
    ac->c = c;
    ac->connect_deadline = cl_now_ms() + ac->connect_timeout_ms;
    ac->retry_at = INT64_MAX;
    ac->hello_id = cl_next_id(c);
    if (cl_put_hello(c, ac->hello_id) != 0) {
        aerr(ac, AX_ENOMEM, "%s", c->err);
        close_socket(ac);
        return AX_ENOMEM;
    }
    ac->hello_left = c->out.len;
    if (rc == AX_EBUSY) {
        ac->state = ST_CONNECTING;
        ac->retry_at = cl_now_ms() + BUSY_RETRY_MS;
    } else {
        ac->state = rc == 1 ? ST_CONNECTING : ST_HELLO;
    }
    /* the HELLO, waiting like any request so that its deadline and teardown are shared */
    areq *h = ax_try_malloc(sizeof *h);
    if (!h || rtab_reserve(&ac->waiting)) {
        ax_free(h);
        close_socket(ac);
        ac->state = ST_CLOSED;
        return aerr(ac, AX_ENOMEM, "out of memory");
    }
    memset(h, 0, sizeof *h);
    h->key = ac->hello_id;
    h->kind = K_HELLO;
    h->deadline = ac->connect_deadline;
    rtab_insert(&ac->waiting, h);
    if (h->deadline < ac->min_deadline)
        ac->min_deadline = h->deadline;
    return 0;
}

/* Watch what the current state needs. */
static void watch(axc_async *ac)
{
    if (!ac->c)
        return;
    if (ac->state == ST_CONNECTING) {
        want_read(ac, 0);
        want_write(ac, ac->retry_at == INT64_MAX);
    } else {
        want_read(ac, 1);
        want_write(ac, ac->c->out.len > 0 && !(ac->state == ST_HELLO && !ac->hello_left));
    }
}

AXC_EXPORT int axc_async_connect(const char *path, int timeout_ms, axc_async **out, char *errbuf, size_t errlen)
{
    if (errbuf && errlen)
        errbuf[0] = 0;
    if (!out)
        return AX_EINVAL;
    *out = NULL;
    if (!path || !*path) {
        path = getenv(AXC_SOCKET_ENV);
        if (!path || !*path)
            path = AXC_DEFAULT_SOCKET;
    }
    axc_async *ac = calloc(1, sizeof *ac);
    if (!ac) {
        if (errbuf && errlen)
            snprintf(errbuf, errlen, "out of memory");
        return AX_ENOMEM;
    }
    int rc = 0;
    if (strlen(path) >= sizeof ac->path)
        rc = aerr(ac, AX_EINVAL, "socket path too long: %s", path);
    snprintf(ac->path, sizeof ac->path, "%s", path);
    ac->timeout_ms = 5000;
    ac->connect_timeout_ms = timeout_ms > 0 ? timeout_ms : 5000;
    ac->max_unsent = DEFAULT_MAX_UNSENT;
    ac->timer_at = INT64_MAX;
    ac->min_deadline = INT64_MAX;
    ac->retry_at = INT64_MAX;
    if (!rc)
        rc = open_conn(ac);
    if (rc) {
        if (errbuf && errlen)
            snprintf(errbuf, errlen, "%s", ac->err);
        destroy(ac);
        return rc;
    }
    *out = ac;
    return 0;
}

AXC_EXPORT int axc_async_attach(axc_async *ac, const axc_async_loop *loop)
{
    if (!ac || !loop || !loop->set_fd || !loop->add_read || !loop->del_read || !loop->add_write || !loop->del_write ||
        !loop->set_timer)
        return ac ? aerr(ac, AX_EINVAL, "attach: a loop hook is missing") : AX_EINVAL;
    if (ac->attached)
        return aerr(ac, AX_EINVAL, "attach: already attached to a loop");
    ac->loop = *loop;
    ac->attached = 1;
    if (ac->c)
        set_fd(ac, ac->c->fd);
    watch(ac);
    rearm(ac);
    return 0;
}

/* ---- writing ---- */

/* Write what the socket takes now (only the HELLO until it is answered): 1 = nothing
 * left to write now, 0 = would block, < 0 broken (torn down). */
static int a_send(axc_async *ac)
{
    axc_conn *c = ac->c;
    while (c && c->out.len > 0) {
        size_t n = c->out.len;
        if (ac->state == ST_HELLO) {
            if (!ac->hello_left)
                return 1;
            if (n > ac->hello_left)
                n = ac->hello_left;
        }
        ssize_t w = send(c->fd, c->out.data, n, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w > 0) {
            ax_wbuf_consume(&c->out, (size_t)w);
            if (ac->state == ST_HELLO)
                ac->hello_left -= (size_t)w;
            continue;
        }
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return 0;
        cl_broken(c, AX_ECONN, "connection to the daemon lost while sending: %s", strerror(w < 0 ? errno : EPIPE));
        broke(ac, AX_ECONN);
        return AX_ECONN;
    }
    return 1;
}

AXC_EXPORT int axc_async_flush(axc_async *ac)
{
    if (!ac)
        return AX_EINVAL;
    if (!ac->c || ac->state == ST_CONNECTING)
        return ac->c ? 1 : aerr(ac, AX_ECONN, "not connected");
    ac->depth++;
    int r = a_send(ac);
    ac->depth--;
    if (ac->c)
        watch(ac);
    if (r < 0)
        return AX_ECONN;
    return ac->c && ac->c->out.len ? 1 : 0;
}

/* ---- reading ---- */

/* After HELLO_OK: requests queued before it that exceed the daemon's max_frame are taken
 * out of the buffer (the daemon would close the connection over them) and failed. */
static void drop_oversized(axc_async *ac)
{
    axc_conn *c = ac->c;
    uint32_t *ids = NULL;
    size_t n = 0, cap = 0, rd = 0, wr = 0;
    while (rd + AX_FRAME_HDR_SIZE <= c->out.len) {
        ax_frame_hdr h;
        const char *why = NULL;
        if (ax_frame_hdr_decode(c->out.data + rd, c->out.len - rd, AX_FRAME_MAX_LIMIT, &h, &why) != 0)
            break; /* cannot happen: we encoded these */
        size_t sz = AX_FRAME_HDR_SIZE + (size_t)h.body_len;
        if (h.body_len > c->max_frame) {
            if (n == cap) {
                size_t ncap = cap ? cap * 2 : 8;
                uint32_t *x = ax_try_realloc(ids, ncap * sizeof *x);
                if (!x)
                    break;
                ids = x;
                cap = ncap;
            }
            ids[n++] = h.req_id;
        } else {
            if (wr != rd)
                memmove(c->out.data + wr, c->out.data + rd, sz);
            wr += sz;
        }
        rd += sz;
    }
    if (rd != wr) {
        memmove(c->out.data + wr, c->out.data + rd, c->out.len - rd);
        c->out.len -= rd - wr;
    }
    for (size_t i = 0; i < n && ac->c; i++) {
        areq *q = rtab_find(&ac->waiting, ids[i]);
        if (!q)
            continue;
        rtab_remove(&ac->waiting, q);
        char msg[128];
        snprintf(msg, sizeof msg, "request exceeds the daemon's max_frame (%u bytes)", c->max_frame);
        call_status(ac, q, AX_ETOOBIG, msg, 1);
        ax_free(q);
    }
    ax_free(ids);
}

static void on_hello(axc_async *ac, const rframe *f)
{
    areq *h = rtab_find(&ac->waiting, ac->hello_id);
    int rc = cl_hello_answer(ac->c, ac->path, f, ac->hello_id);
    if (rc) {
        connect_failed(ac, rc);
        return;
    }
    if (h) {
        rtab_remove(&ac->waiting, h);
        ax_free(h);
    }
    ac->state = ST_UP;
    ac->c->timeout_ms = ac->timeout_ms;
    ac->rc_cur = ac->rc_min;
    if (ac->ever_up)
        ac->reconnects++;
    ac->ever_up = 1;
    ac->depth++;
    drop_oversized(ac);
    if (ac->c && ac->connect_cb)
        ac->connect_cb(ac, 0, ac->connect_priv);
    ac->depth--;
}

/* An EVENT: the subscription's (by its id), a monitor's down (req_id 0, by mref), or
 * nobody's (the event callback). */
static int on_event(axc_async *ac, const rframe *f)
{
    const void *p;
    size_t n;
    int rc = cl_peek_blob(ac->c, f, AX_T_EVENT, "event", &p, &n);
    if (rc)
        return rc;
    const char *doc = with_nul(ac, p, n);
    if (!doc)
        return 0; /* out of memory: the event is lost, the stream is fine */
    axc_reply r;
    memset(&r, 0, sizeof r);
    r.kind = AXC_R_EVENT;
    r.data = doc;
    r.len = n;
    r.req_id = f->h.req_id;
    uint64_t mref = 0;
    if (f->h.req_id == 0 && cl_json_u64(doc, "mref", &mref) == 0 && strstr(doc, "\"down\"")) {
        areq *m = rtab_find(&ac->monitors, mref);
        r.mref = mref;
        if (m) {
            rtab_remove(&ac->monitors, m);
            r.final = 1;
            call(ac, m->cb, m->priv, &r);
            ax_free(m);
            return 0;
        }
    } else if (ac->sub && f->h.req_id == (uint32_t)ac->sub->key) {
        call(ac, ac->sub->cb, ac->sub->priv, &r);
        return 0;
    }
    call(ac, ac->event_cb, ac->event_priv, &r);
    return 0;
}

static void end_sub(axc_async *ac)
{
    areq *s = ac->sub;
    if (!s)
        return;
    ac->sub = NULL;
    call_status(ac, s, 0, NULL, 1);
    ax_free(s);
}

/* The answer to waiting request q (taken out of the table). Returns < 0 when the answer
 * was malformed (the connection is then broken). */
static int on_answer(axc_async *ac, areq *q, const rframe *f)
{
    axc_conn *c = ac->c;
    axc_reply r;
    memset(&r, 0, sizeof r);
    r.req_id = (uint32_t)q->key;
    r.final = 1;
    if (f->h.type == AX_T_ERROR) {
        int code = 0;
        const char *msg = NULL;
        size_t len = 0;
        int rc = cl_get_error(c, f, &code, &msg, &len);
        if (rc)
            return rc;
        const char *m = len ? with_nul(ac, msg, len) : NULL;
        if (m)
            cl_sanitize(ac->tmp);
        r.status = code;
        r.errmsg = m ? m : ax_strerror(code);
        call(ac, q->cb, q->priv, &r);
        ax_free(q);
        return 0;
    }
    const void *p = NULL;
    size_t n = 0;
    int rc = 0;
    switch (q->kind) {
    case K_OK:
    case K_DEMONITOR:
    case K_SUBSCRIBE:
    case K_UNSUBSCRIBE:
        rc = cl_get_ok(c, f, "request");
        break;
    case K_REF:
        r.kind = AXC_R_REF;
        rc = cl_get_ref(c, f, "request", &r.ref);
        break;
    case K_DATA:
        r.kind = AXC_R_DATA;
        rc = cl_peek_blob(c, f, AX_T_REPLY, "ask", &p, &n);
        break;
    case K_JSON:
    case K_MONITOR:
        r.kind = AXC_R_JSON;
        rc = cl_peek_blob(c, f, AX_T_JSON, "request", &p, &n);
        break;
    default:
        rc = cl_broken(c, AX_EPROTO, "daemon sent a second HELLO answer");
    }
    if (rc) {
        ax_free(q);
        return rc;
    }
    if (r.kind == AXC_R_DATA || r.kind == AXC_R_JSON) {
        r.data = with_nul(ac, p, n);
        r.len = n;
        if (!r.data) {
            r.status = AX_ENOMEM;
            r.kind = AXC_R_NONE;
            r.errmsg = "out of memory for the answer";
            r.len = 0;
        }
    }
    if (q->kind == K_MONITOR && !r.status) {
        if (cl_json_u64(r.data, "mref", &q->mref) != 0 || rtab_find(&ac->monitors, q->mref) ||
            rtab_reserve(&ac->monitors) != 0) {
            ax_free(q);
            return cl_broken(c, AX_EPROTO, "daemon answered monitor without a new \"mref\"");
        }
        r.mref = q->mref;
        r.final = 0;
        q->key = q->mref;
        rtab_insert(&ac->monitors, q);
        call(ac, q->cb, q->priv, &r);
        return 0;
    }
    if (q->kind == K_SUBSCRIBE && !r.status)
        r.final = 0; /* its events follow; the final call comes when it ends */
    call(ac, q->cb, q->priv, &r);
    if (q->kind == K_DEMONITOR && ac->c) {
        areq *m = rtab_find(&ac->monitors, q->mref);
        if (m) {
            rtab_remove(&ac->monitors, m);
            call_status(ac, m, 0, NULL, 1);
            ax_free(m);
        }
    }
    if (q->kind == K_SUBSCRIBE && !r.status) {
        if (!ac->c) { /* the callback freed or closed the connection */
            call_status(ac, q, AX_ECONN, "connection closed", 1);
            ax_free(q);
            return 0;
        }
        end_sub(ac);
        ac->sub = q;
        return 0;
    }
    if (q->kind == K_UNSUBSCRIBE && ac->c)
        end_sub(ac);
    ax_free(q);
    return 0;
}

/* One frame; < 0 when the connection broke over it. */
static int on_frame(axc_async *ac, const rframe *f)
{
    if (ac->state == ST_HELLO) {
        on_hello(ac, f);
        return ac->c ? 0 : AX_ECONN;
    }
    if (f->h.type == AX_T_EVENT)
        return on_event(ac, f);
    if (f->h.req_id == 0) {
        if (f->h.type != AX_T_ERROR)
            return 0;
        int code = 0;
        const char *msg = NULL;
        size_t len = 0;
        int rc = cl_get_error(ac->c, f, &code, &msg, &len);
        if (!rc)
            rc = cl_broken(ac->c, code, "daemon ended the connection: %.*s", (int)(len > 400 ? 400 : len),
                           len ? msg : ax_strerror(code));
        return rc;
    }
    areq *q = rtab_find(&ac->waiting, f->h.req_id);
    if (!q)
        return 0; /* a late answer to a request given up on */
    rtab_remove(&ac->waiting, q);
    return on_answer(ac, q, f);
}

static void do_read(axc_async *ac)
{
    for (int i = 0; i < READS_PER_EVENT && ac->c; i++) {
        int r = cl_recv(ac->c, MSG_DONTWAIT);
        if (r < 0) {
            /* the bytes before the end still count: a req_id-0 ERROR says why */
            rframe f;
            while (ac->c && cl_parse(ac->c, &f) == 1)
                if (on_frame(ac, &f) < 0)
                    break;
            if (ac->c)
                broke(ac, ac->c->broken ? AX_ECONN : r);
            return;
        }
        rframe f;
        int p = 0;
        while (ac->c && (p = cl_parse(ac->c, &f)) == 1) {
            if (on_frame(ac, &f) < 0) {
                if (ac->c)
                    broke(ac, AX_EPROTO);
                return;
            }
        }
        if (ac->c && p < 0) {
            broke(ac, AX_EPROTO);
            return;
        }
        if (r == 0)
            break;
    }
}

/* ---- the adapter's entry points ---- */

static void leave(axc_async *ac)
{
    ac->depth--;
    if (ac->depth == 0 && ac->free_pending) {
        destroy(ac);
        return;
    }
    watch(ac);
    rearm(ac);
}

AXC_EXPORT void axc_async_handle_read(axc_async *ac)
{
    if (!ac || !ac->c || ac->state == ST_CONNECTING)
        return;
    ac->depth++;
    do_read(ac);
    if (ac->c && ac->c->out.len)
        a_send(ac); /* callbacks queued requests: write them in this turn of the loop */
    leave(ac);
}

AXC_EXPORT void axc_async_handle_write(axc_async *ac)
{
    if (!ac || !ac->c)
        return;
    ac->depth++;
    if (ac->state == ST_CONNECTING) {
        int rc = cl_connect_done(ac->c, ac->path);
        if (rc)
            connect_failed(ac, rc);
        else
            ac->state = ST_HELLO;
    }
    if (ac->c && ac->state != ST_CONNECTING)
        a_send(ac);
    leave(ac);
}

/* Fail waiting requests past their deadline; min_deadline becomes exact. */
static void expire(axc_async *ac, int64_t now)
{
    int64_t next = INT64_MAX;
    for (areq *q = ac->waiting.head, *n; q && ac->c; q = n) {
        n = q->next;
        if (q->deadline > now) {
            if (q->deadline < next)
                next = q->deadline;
            continue;
        }
        if (q->kind == K_HELLO) {
            aerr(ac, AX_ETIMEDOUT, "no HELLO answer from the daemon at %s within %d ms", ac->path,
                 ac->connect_timeout_ms);
            if (ac->c)
                cl_seterr(ac->c, AX_ETIMEDOUT, "%s", ac->err);
            connect_failed(ac, AX_ETIMEDOUT);
            return;
        }
        rtab_remove(&ac->waiting, q);
        char msg[96];
        snprintf(msg, sizeof msg, "no answer from the daemon within %d ms", q->timeout_ms);
        call_status(ac, q, AX_ETIMEDOUT, msg, 1);
        ax_free(q);
        n = ac->waiting.head; /* a callback may have answered or added requests: rescan */
        next = INT64_MAX;
    }
    ac->min_deadline = next;
}

AXC_EXPORT void axc_async_handle_timer(axc_async *ac)
{
    if (!ac)
        return;
    ac->timer_at = INT64_MAX;
    ac->depth++;
    int64_t now = cl_now_ms();
    if (ac->state == ST_DOWN && ac->retry_at <= now) {
        ac->retry_at = INT64_MAX;
        if (open_conn(ac) == 0) {
            set_fd(ac, ac->c->fd);
        } else {
            /* failed at once (no daemon there yet): report it, try again later */
            ac->state = ST_DOWN;
            int next = ac->rc_cur * 2;
            ac->rc_cur = next > ac->rc_max ? ac->rc_max : next;
            ac->retry_at = now + ac->rc_cur;
            if (ac->connect_cb)
                ac->connect_cb(ac, AX_ECONN, ac->connect_priv);
        }
    } else if (ac->state == ST_CONNECTING && ac->retry_at <= now) {
        ac->retry_at = INT64_MAX;
        int rc = cl_connect_start(ac->c, ac->path);
        if (rc == AX_EBUSY && now < ac->connect_deadline)
            ac->retry_at = now + BUSY_RETRY_MS;
        else if (rc < 0)
            connect_failed(ac, rc == AX_EBUSY ? AX_ETIMEDOUT : rc);
        else if (rc == 0)
            ac->state = ST_HELLO;
    } else if (ac->state == ST_CONNECTING && ac->connect_deadline <= now) {
        cl_seterr(ac->c, AX_ETIMEDOUT, "cannot connect to %s: timed out", ac->path);
        connect_failed(ac, AX_ETIMEDOUT);
    }
    if (ac->c && ac->min_deadline <= now)
        expire(ac, now);
    leave(ac);
}

/* ---- settings and state ---- */

AXC_EXPORT void axc_async_set_connect_cb(axc_async *ac, axc_async_connect_cb cb, void *privdata)
{
    if (ac) {
        ac->connect_cb = cb;
        ac->connect_priv = privdata;
    }
}

AXC_EXPORT void axc_async_set_disconnect_cb(axc_async *ac, axc_async_disconnect_cb cb, void *privdata)
{
    if (ac) {
        ac->disconnect_cb = cb;
        ac->disconnect_priv = privdata;
    }
}

AXC_EXPORT void axc_async_set_event_cb(axc_async *ac, axc_async_cb cb, void *privdata)
{
    if (ac) {
        ac->event_cb = cb;
        ac->event_priv = privdata;
    }
}

AXC_EXPORT void axc_async_set_reconnect(axc_async *ac, int min_ms, int max_ms)
{
    if (!ac)
        return;
    ac->rc_min = min_ms > 0 ? min_ms : 0;
    ac->rc_max = max_ms > ac->rc_min ? max_ms : ac->rc_min;
    ac->rc_cur = ac->rc_min;
}

AXC_EXPORT void axc_async_set_timeout(axc_async *ac, int timeout_ms)
{
    if (ac) {
        ac->timeout_ms = timeout_ms > 0 ? timeout_ms : 5000;
        if (ac->c)
            ac->c->timeout_ms = ac->timeout_ms;
    }
}

AXC_EXPORT void axc_async_set_max_unsent(axc_async *ac, size_t bytes)
{
    if (ac)
        ac->max_unsent = bytes ? bytes : DEFAULT_MAX_UNSENT;
}

AXC_EXPORT const char *axc_async_errmsg(const axc_async *ac)
{
    if (!ac)
        return "no connection";
    return ac->err[0] ? ac->err : "no error";
}

AXC_EXPORT int axc_async_is_connected(const axc_async *ac)
{
    return ac && ac->state == ST_UP;
}

AXC_EXPORT const char *axc_async_node_id(const axc_async *ac)
{
    return ac && ac->c && ac->state == ST_UP ? axc_node_id(ac->c) : "";
}

AXC_EXPORT unsigned axc_async_reconnects(const axc_async *ac)
{
    return ac ? ac->reconnects : 0;
}

AXC_EXPORT size_t axc_async_pending(const axc_async *ac)
{
    if (!ac)
        return 0;
    size_t n = ac->waiting.n + ac->monitors.n + (ac->sub ? 1 : 0);
    return ac->state == ST_HELLO || ac->state == ST_CONNECTING ? n - 1 : n;
}

AXC_EXPORT size_t axc_async_unsent(const axc_async *ac)
{
    return ac && ac->c ? ac->c->out.len : 0;
}

static void destroy(axc_async *ac)
{
    close_socket(ac);
    for (rtab *t = &ac->waiting; t; t = t == &ac->waiting ? &ac->monitors : NULL) {
        for (areq *q = t->head, *n; q; q = n) {
            n = q->next;
            ax_free(q);
        }
        ax_free(t->b);
    }
    ax_free(ac->sub);
    if (ac->attached && ac->loop.cleanup)
        ac->loop.cleanup(ac->loop.data);
    ax_free(ac->tmp);
    free(ac);
}

AXC_EXPORT void axc_async_disconnect(axc_async *ac)
{
    if (!ac)
        return;
    ac->rc_min = 0; /* by the caller: no reconnect */
    if (ac->state == ST_DOWN) {
        ac->state = ST_CLOSED;
        ac->retry_at = INT64_MAX;
        rearm(ac);
        return;
    }
    ac->depth++;
    conn_lost(ac, 0, "closed by the client");
    ac->depth--;
    if (!ac->depth && ac->free_pending)
        destroy(ac);
}

AXC_EXPORT void axc_async_free(axc_async *ac)
{
    if (!ac || ac->free_pending)
        return;
    ac->free_pending = 1;
    ac->depth++;
    ac->rc_min = 0;
    conn_lost(ac, 0, "closed by the client");
    ac->depth--;
    if (!ac->depth)
        destroy(ac);
}

/* ---- requests ---- */

/* Before encoding: the connection takes requests, and the buffer is not over its bound. */
static int ready(axc_async *ac)
{
    if (!ac)
        return AX_EINVAL;
    if (ac->free_pending)
        return aerr(ac, AX_ECONN, "the connection is being freed");
    if (!ac->c || ac->state == ST_DOWN || ac->state == ST_CLOSED)
        return aerr(ac, AX_ECONN, "not connected to the daemon%s", ac->state == ST_DOWN ? " (reconnecting)" : "");
    if (ac->c->out.len >= ac->max_unsent)
        return aerr(ac, AX_EFULL, "%zu bytes of requests not yet written (the daemon is not reading): try later",
                    ac->c->out.len);
    if (rtab_reserve(&ac->waiting))
        return aerr(ac, AX_ENOMEM, "out of memory");
    return 0;
}

/* After put queued the frame with id (rc: its result): record the request. */
static int track(axc_async *ac, int rc, uint32_t id, int kind, int timeout_ms, axc_async_cb cb, void *priv)
{
    if (rc)
        return aerr(ac, rc, "%s", ac->c->err);
    areq *q = ax_try_malloc(sizeof *q);
    if (!q) {
        /* the frame is queued but cannot be tracked: the answer will be dropped as unknown */
        return aerr(ac, AX_ENOMEM, "out of memory (the request was sent; its answer will be lost)");
    }
    memset(q, 0, sizeof *q);
    q->key = id;
    q->kind = (uint8_t)kind;
    q->cb = cb;
    q->priv = priv;
    q->timeout_ms = timeout_ms;
    q->deadline = cl_now_ms() + timeout_ms;
    rtab_insert(&ac->waiting, q);
    if (q->deadline < ac->min_deadline)
        ac->min_deadline = q->deadline;
    if (ac->depth == 0) {
        watch(ac);
        rearm(ac);
    }
    return 0;
}

#define BEGIN_REQ(ac)                                                                                                  \
    int rc_ = ready(ac);                                                                                               \
    if (rc_)                                                                                                           \
        return rc_;                                                                                                    \
    uint32_t id = cl_next_id((ac)->c)

AXC_EXPORT int axc_async_spawn(axc_async *ac, const char *type, const char *name, const char *config_json,
                               axc_async_cb cb, void *privdata)
{
    BEGIN_REQ(ac);
    return track(ac, cl_put_spawn(ac->c, id, type, name, config_json), id, K_REF, ac->timeout_ms, cb, privdata);
}

AXC_EXPORT int axc_async_get_or_spawn(axc_async *ac, const char *type, const char *key, const char *config_json,
                                      axc_async_cb cb, void *privdata)
{
    BEGIN_REQ(ac);
    return track(ac, cl_put_get_or_spawn(ac->c, id, type, key, config_json), id, K_REF, ac->timeout_ms, cb,
                 privdata);
}

AXC_EXPORT int axc_async_spawn_arg(axc_async *ac, const char *type, const char *name, const char *key,
                                   const char *config_json, const void *arg, size_t n, axc_async_cb cb, void *privdata)
{
    BEGIN_REQ(ac);
    return track(ac, cl_put_spawn_arg(ac->c, id, type, name, key, config_json, arg, n), id, K_REF, ac->timeout_ms,
                 cb, privdata);
}

AXC_EXPORT int axc_async_resolve(axc_async *ac, const axc_target *t, axc_async_cb cb, void *privdata)
{
    BEGIN_REQ(ac);
    return track(ac, cl_put_target_req(ac->c, AX_T_RESOLVE, id, t), id, K_REF, ac->timeout_ms, cb, privdata);
}

AXC_EXPORT int axc_async_tell(axc_async *ac, const axc_target *t, const char *msg, const void *p, size_t n,
                              unsigned flags, axc_async_cb cb, void *privdata)
{
    BEGIN_REQ(ac);
    int rc = cl_check_flags(ac->c, flags, AXC_NOREPLY | AXC_DIRECT, "tell");
    if (!rc && (flags & AXC_NOREPLY) && cb)
        rc = cl_seterr(ac->c, AX_EINVAL, "tell: a fire-and-forget tell (AXC_NOREPLY) has no callback");
    if (!rc)
        rc = cl_put_msg(ac->c, AX_T_TELL, (uint16_t)flags, id, t, msg, p, n, 0);
    if (rc || (flags & AXC_NOREPLY)) {
        if (rc)
            return aerr(ac, rc, "%s", ac->c->err);
        if (ac->depth == 0)
            watch(ac);
        return 0;
    }
    return track(ac, 0, id, K_OK, ac->timeout_ms, cb, privdata);
}

AXC_EXPORT int axc_async_ask(axc_async *ac, const axc_target *t, const char *msg, const void *p, size_t n,
                             int timeout_ms, unsigned flags, axc_async_cb cb, void *privdata)
{
    BEGIN_REQ(ac);
    int rc = cl_check_flags(ac->c, flags, AXC_DIRECT, "ask");
    if (!rc)
        rc = cl_ask_timeout(ac->c, timeout_ms, &timeout_ms);
    if (!rc)
        rc = cl_put_msg(ac->c, AX_T_ASK, (uint16_t)flags, id, t, msg, p, n, (uint32_t)timeout_ms);
    return track(ac, rc, id, K_DATA, timeout_ms + 1000, cb, privdata);
}

AXC_EXPORT int axc_async_stop(axc_async *ac, const axc_target *t, axc_async_cb cb, void *privdata)
{
    BEGIN_REQ(ac);
    return track(ac, cl_put_target_req(ac->c, AX_T_STOP, id, t), id, K_OK, ac->timeout_ms, cb, privdata);
}

AXC_EXPORT int axc_async_exit(axc_async *ac, const axc_target *t, const char *reason, axc_async_cb cb,
                              void *privdata)
{
    BEGIN_REQ(ac);
    return track(ac, cl_put_exit(ac->c, id, t, reason), id, K_OK, ac->timeout_ms, cb, privdata);
}

AXC_EXPORT int axc_async_monitor(axc_async *ac, const axc_target *t, axc_async_cb cb, void *privdata)
{
    BEGIN_REQ(ac);
    return track(ac, cl_put_target_req(ac->c, AX_T_MONITOR, id, t), id, K_MONITOR, ac->timeout_ms, cb, privdata);
}

AXC_EXPORT int axc_async_demonitor(axc_async *ac, uint64_t mref, axc_async_cb cb, void *privdata)
{
    BEGIN_REQ(ac);
    int rc = track(ac, cl_put_demonitor(ac->c, id, mref), id, K_DEMONITOR, ac->timeout_ms, cb, privdata);
    if (!rc)
        ac->waiting.tail->mref = mref;
    return rc;
}

AXC_EXPORT int axc_async_subscribe(axc_async *ac, const char *actor_name, axc_async_cb cb, void *privdata)
{
    BEGIN_REQ(ac);
    return track(ac, cl_put_subscribe(ac->c, id, actor_name), id, K_SUBSCRIBE, ac->timeout_ms, cb, privdata);
}

AXC_EXPORT int axc_async_unsubscribe(axc_async *ac, axc_async_cb cb, void *privdata)
{
    BEGIN_REQ(ac);
    return track(ac, cl_put_simple(ac->c, AX_T_UNSUBSCRIBE, id, NULL, 0), id, K_UNSUBSCRIBE, ac->timeout_ms, cb,
                 privdata);
}

static int doc_req(axc_async *ac, uint8_t type, axc_async_cb cb, void *privdata)
{
    BEGIN_REQ(ac);
    return track(ac, cl_put_simple(ac->c, type, id, NULL, 0), id, K_JSON, ac->timeout_ms, cb, privdata);
}

AXC_EXPORT int axc_async_status(axc_async *ac, axc_async_cb cb, void *privdata)
{
    return doc_req(ac, AX_T_STATUS, cb, privdata);
}

AXC_EXPORT int axc_async_cluster_status(axc_async *ac, axc_async_cb cb, void *privdata)
{
    return doc_req(ac, AX_T_CLUSTER_STATUS, cb, privdata);
}

AXC_EXPORT int axc_async_nodes(axc_async *ac, axc_async_cb cb, void *privdata)
{
    return doc_req(ac, AX_T_NODES, cb, privdata);
}

AXC_EXPORT int axc_async_shards(axc_async *ac, axc_async_cb cb, void *privdata)
{
    return doc_req(ac, AX_T_SHARDS, cb, privdata);
}

AXC_EXPORT int axc_async_plugins(axc_async *ac, axc_async_cb cb, void *privdata)
{
    return doc_req(ac, AX_T_PLUGINS, cb, privdata);
}

AXC_EXPORT int axc_async_undrain(axc_async *ac, axc_async_cb cb, void *privdata)
{
    BEGIN_REQ(ac);
    return track(ac, cl_put_simple(ac->c, AX_T_UNDRAIN, id, NULL, 0), id, K_OK, ac->timeout_ms, cb, privdata);
}

AXC_EXPORT int axc_async_actors_page(axc_async *ac, const axc_actors_query *q, axc_async_cb cb, void *privdata)
{
    BEGIN_REQ(ac);
    return track(ac, cl_put_actors(ac->c, id, q), id, K_JSON, ac->timeout_ms, cb, privdata);
}

AXC_EXPORT int axc_async_plugin_load(axc_async *ac, const char *path, axc_async_cb cb, void *privdata)
{
    BEGIN_REQ(ac);
    return track(ac, cl_put_plugin_load(ac->c, id, path), id, K_JSON, ac->timeout_ms, cb, privdata);
}

AXC_EXPORT int axc_async_plugin_unload(axc_async *ac, const char *name, axc_async_cb cb, void *privdata)
{
    BEGIN_REQ(ac);
    return track(ac, cl_put_plugin_unload(ac->c, id, name), id, K_OK, ac->timeout_ms, cb, privdata);
}

AXC_EXPORT int axc_async_set_log_level(axc_async *ac, const char *level, axc_async_cb cb, void *privdata)
{
    BEGIN_REQ(ac);
    return track(ac, cl_put_log_level(ac->c, id, level), id, K_OK, ac->timeout_ms, cb, privdata);
}

AXC_EXPORT int axc_async_drain(axc_async *ac, uint32_t timeout_ms, unsigned flags, axc_async_cb cb, void *privdata)
{
    BEGIN_REQ(ac);
    int wait_ms = (timeout_ms ? (int)timeout_ms : (int)AX_DRAIN_TIMEOUT_MAX) + DRAIN_GRACE_MS;
    return track(ac, cl_put_drain(ac->c, id, timeout_ms, flags), id, K_JSON, wait_ms, cb, privdata);
}
