/* libaxclient: the blocking and pipelined client of axactord's Unix-socket protocol.
 * One axc_conn owns a socket, an output buffer (requests and buffered fire-and-forget
 * tells) and a read buffer; every byte read goes through the shared codec in proto/. */

#include "axactor/client.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "ax_mem.h"
#include "conn.h"
#include "frame.h"

enum { P_FLUSH, P_WAIT_ID, P_WAIT_PIPE, P_WAIT_EVENT, P_WAIT_ANY };
/* What dispatch() did with a frame. */
enum { D_DROPPED = 0, D_PIPE = 1, D_EVENT = 2 };

int64_t cl_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Error text may come from the daemon; keep it to one printable line. */
void cl_sanitize(char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f)
            *s = '?';
}

int cl_seterr(axc_conn *c, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->err, sizeof c->err, fmt, ap);
    va_end(ap);
    cl_sanitize(c->err);
    return code;
}

/* The connection can no longer be trusted (stream out of sync, peer gone): remember why;
 * every later call fails with AX_ECONN. */
int cl_broken(axc_conn *c, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->err, sizeof c->err, fmt, ap);
    va_end(ap);
    cl_sanitize(c->err);
    if (!c->broken) {
        memcpy(c->dead, c->err, sizeof c->dead);
        c->broken = 1;
    }
    return code;
}

int cl_usable(axc_conn *c)
{
    if (!c)
        return AX_EINVAL;
    if (c->broken)
        return cl_seterr(c, AX_ECONN, "connection to the daemon is broken: %s", c->dead);
    return 0;
}

uint32_t cl_next_id(axc_conn *c)
{
    uint32_t id = c->next_id++;
    if (c->next_id == 0) /* 0 means "no request" on the wire */
        c->next_id = 1;
    return id;
}

/* malloc'd NUL-terminated copy of n bytes (network-sized: non-aborting). */
char *cl_copy(const void *p, size_t n)
{
    char *s = ax_try_malloc(n + 1);
    if (!s)
        return NULL;
    if (n)
        memcpy(s, p, n);
    s[n] = 0;
    return s;
}

/* ---- pipelined asks ---- */

static pend *pq_at(axc_conn *c, size_t i)
{
    return &c->pq[(c->pq_head + i) & (c->pq_cap - 1)];
}

/* Make room for one more entry, so recording a send cannot fail later. */
static int pq_reserve(axc_conn *c)
{
    if (c->pq_count < c->pq_cap)
        return 0;
    size_t ncap = c->pq_cap ? c->pq_cap * 2 : 16;
    if (ncap > SIZE_MAX / sizeof(pend))
        return cl_seterr(c, AX_ENOMEM, "too many outstanding asks");
    pend *n = ax_try_malloc(ncap * sizeof *n);
    if (!n)
        return cl_seterr(c, AX_ENOMEM, "out of memory queueing an ask");
    for (size_t i = 0; i < c->pq_count; i++)
        n[i] = *pq_at(c, i);
    ax_free(c->pq);
    c->pq = n;
    c->pq_cap = ncap;
    c->pq_head = 0;
    return 0;
}

/* Drop delivered entries from the front. */
static void pq_trim(axc_conn *c)
{
    while (c->pq_count && pq_at(c, 0)->state == PE_FREE) {
        c->pq_head = (c->pq_head + 1) & (c->pq_cap - 1);
        c->pq_count--;
    }
    if (!c->pq_count)
        c->pq_head = 0;
}

static pend *pq_find(axc_conn *c, uint32_t id)
{
    for (size_t i = 0; i < c->pq_count; i++) {
        pend *e = pq_at(c, i);
        if (e->state == PE_WAIT && e->id == id)
            return e;
    }
    return NULL;
}

static void pq_complete(axc_conn *c, pend *e, int status, char *data, size_t len)
{
    e->res.req_id = e->id;
    e->res.status = status;
    e->res.data = data;
    e->res.len = data ? len : 0;
    e->state = PE_DONE;
    c->pq_waiting--;
    c->pq_done++;
}

static void pq_fail(axc_conn *c, pend *e, int status, const char *msg)
{
    pq_complete(c, e, status, cl_copy(msg, strlen(msg)), strlen(msg));
}

static int pq_pop_done(axc_conn *c, axc_result *r)
{
    if (!c->pq_done)
        return 0;
    for (size_t i = 0; i < c->pq_count; i++) {
        pend *e = pq_at(c, i);
        if (e->state == PE_DONE) {
            *r = e->res;
            e->state = PE_FREE;
            c->pq_done--;
            pq_trim(c);
            return 1;
        }
    }
    return 0;
}

/* Give up on asks past their local deadline; *next gets the earliest remaining one. */
static int pq_expire(axc_conn *c, int64_t now, int64_t *next)
{
    int n = 0;
    for (size_t i = 0; i < c->pq_count; i++) {
        pend *e = pq_at(c, i);
        if (e->state != PE_WAIT)
            continue;
        if (e->deadline <= now) {
            char msg[96];
            snprintf(msg, sizeof msg, "no reply from the daemon within %d ms", e->timeout_ms);
            pq_fail(c, e, AX_ETIMEDOUT, msg);
            n++;
        } else if (e->deadline < *next) {
            *next = e->deadline;
        }
    }
    return n;
}

/* ---- lifecycle events and downs ---- */

static void ev_push(axc_conn *c, char *doc)
{
    if (c->evq_count == c->evq_cap) {
        size_t ncap = c->evq_cap ? c->evq_cap * 2 : 16;
        char **n = c->evq_count < EVQ_MAX ? ax_try_malloc(ncap * sizeof *n) : NULL;
        if (!n) {
            ax_free(doc);
            c->ev_skipped++;
            return;
        }
        for (size_t i = 0; i < c->evq_count; i++)
            n[i] = c->evq[(c->evq_head + i) & (c->evq_cap - 1)];
        ax_free(c->evq);
        c->evq = n;
        c->evq_cap = ncap;
        c->evq_head = 0;
    }
    c->evq[(c->evq_head + c->evq_count) & (c->evq_cap - 1)] = doc;
    c->evq_count++;
}

static int ev_pop(axc_conn *c, char **doc)
{
    if (c->evq_count) {
        *doc = c->evq[c->evq_head];
        c->evq_head = (c->evq_head + 1) & (c->evq_cap - 1);
        c->evq_count--;
        return 1;
    }
    if (c->ev_skipped) {
        char buf[96];
        int n = snprintf(buf, sizeof buf, "{\"event\":\"lagged\",\"skipped\":%llu,\"by\":\"client\"}",
                         (unsigned long long)c->ev_skipped);
        char *d = cl_copy(buf, (size_t)n);
        if (!d)
            return 0;
        c->ev_skipped = 0;
        *doc = d;
        return 1;
    }
    return 0;
}

/* ---- reading frames ---- */

/* Take one complete frame off the read buffer: 1 = *f filled, 0 = need more bytes,
 * < 0 = malformed (connection broken). Never reads past what was received. */
int cl_parse(axc_conn *c, rframe *f)
{
    size_t avail = c->rb_len - c->rb_off;
    const uint8_t *p = c->rb + c->rb_off;
    ax_frame_hdr h;
    const char *why = NULL;
    int r = ax_frame_hdr_decode(p, avail, c->max_frame, &h, &why);
    if (r == 1) {
        c->rb_need = 0;
        return 0;
    }
    if (r == AX_ETOOBIG)
        return cl_broken(c, AX_EPROTO, "malformed frame from the daemon: %s (max_frame %u)",
                           why ? why : "frame too big", c->max_frame);
    if (r < 0)
        return cl_broken(c, AX_EPROTO, "malformed frame from the daemon: %s", why ? why : "bad header");
    switch (h.type) {
    case AX_T_HELLO_OK:
    case AX_T_ERROR:
    case AX_T_OK:
    case AX_T_REF:
    case AX_T_REPLY:
    case AX_T_JSON:
    case AX_T_EVENT:
        break;
    default:
        return cl_broken(c, AX_EPROTO, "daemon sent a %s frame, which only clients send",
                           ax_frame_type_name(h.type));
    }
    size_t total = AX_FRAME_HDR_SIZE + (size_t)h.body_len;
    if (avail < total) {
        c->rb_need = total;
        return 0;
    }
    c->rb_need = 0;
    f->h = h;
    f->body = p + AX_FRAME_HDR_SIZE;
    c->rb_off += total;
    if (c->rb_off == c->rb_len) /* the body stays in place until the next read */
        c->rb_off = c->rb_len = 0;
    return 1;
}

/* Read what the socket has. flags 0 blocks up to SO_RCVTIMEO; MSG_DONTWAIT does not.
 * Returns > 0 bytes read, 0 nothing yet, < 0 connection broken. */
int cl_recv(axc_conn *c, int flags)
{
    if (c->rb_off > 0) {
        memmove(c->rb, c->rb + c->rb_off, c->rb_len - c->rb_off);
        c->rb_len -= c->rb_off;
        c->rb_off = 0;
    }
    /* One huge reply should not pin its buffer for the life of the connection. */
    if (c->rb_len == 0 && c->rb_cap > RB_KEEP) {
        ax_free(c->rb);
        c->rb = NULL;
        c->rb_cap = 0;
    }
    /* rb_need is bounded: the header decoder refused bodies over max_frame. */
    size_t need = c->rb_need > RB_MIN ? c->rb_need : RB_MIN;
    if (c->rb_cap < need) {
        uint8_t *n = ax_try_realloc(c->rb, need);
        if (!n)
            return cl_broken(c, AX_ENOMEM, "out of memory for a %zu-byte frame from the daemon", need);
        c->rb = n;
        c->rb_cap = need;
    }
    ssize_t n = recv(c->fd, c->rb + c->rb_len, c->rb_cap - c->rb_len, flags);
    if (n > 0) {
        c->rb_len += (size_t)n;
        return (int)(n > INT_MAX ? INT_MAX : n);
    }
    if (n == 0)
        return cl_broken(c, AX_ECONN, c->rb_len ? "daemon closed the connection in the middle of a frame"
                                                  : "daemon closed the connection");
    /* EINTR too: the caller recomputes what is left of its deadline. */
    if (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK)
        return 0;
    return cl_broken(c, AX_ECONN, "reading from the daemon: %s", strerror(errno));
}

static int set_rcvtimeo(axc_conn *c, int64_t ms)
{
    /* A couple of ms of slack lets back-to-back calls with one timeout skip the syscall. */
    if (c->rcvtimeo_ms >= ms && c->rcvtimeo_ms - ms <= 2)
        return 0;
    struct timeval tv = {.tv_sec = (time_t)(ms / 1000), .tv_usec = (suseconds_t)(ms % 1000) * 1000};
    if (setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) < 0)
        return cl_broken(c, AX_EIO, "setsockopt(SO_RCVTIMEO): %s", strerror(errno));
    c->rcvtimeo_ms = ms;
    return 0;
}

/* Decode an ERROR body. Returns 0 with *code (< 0) and the message, or AX_EPROTO. */
int cl_get_error(axc_conn *c, const rframe *f, int *code, const char **msg, size_t *len)
{
    ax_body_error e;
    const char *why = NULL;
    if (ax_body_error_get(f->body, f->h.body_len, &e, &why) != 0)
        return cl_broken(c, AX_EPROTO, "malformed ERROR frame from the daemon: %s", why ? why : "bad body");
    *code = (int)e.code; /* the codec refuses codes >= 0, which would read as success */
    *msg = e.msg;
    *len = e.msg_len;
    return 0;
}

/* A req_id-0 ERROR: the daemon is ending the whole connection. */
static int conn_error(axc_conn *c, const rframe *f)
{
    int code = 0;
    const char *msg = NULL;
    size_t len = 0;
    int rc = cl_get_error(c, f, &code, &msg, &len);
    if (rc)
        return rc;
    if (!len)
        return cl_broken(c, code, "daemon ended the connection: %s", ax_strerror(code));
    return cl_broken(c, code, "daemon ended the connection: %.*s", (int)(len > 400 ? 400 : len), msg);
}

/* The daemon's answer to a pipelined ask. */
static int complete_pipelined(axc_conn *c, pend *e, const rframe *f)
{
    const void *p = NULL;
    const char *why = NULL;
    size_t n = 0;
    if (f->h.type == AX_T_REPLY) {
        if (ax_body_blob_get(f->body, f->h.body_len, &p, &n, &why) != 0)
            return cl_broken(c, AX_EPROTO, "malformed REPLY frame from the daemon: %s", why ? why : "bad body");
        char *d = cl_copy(p, n);
        pq_complete(c, e, d ? AX_OK : AX_ENOMEM, d, n);
        return D_PIPE;
    }
    if (f->h.type == AX_T_ERROR) {
        int code = 0;
        const char *msg = NULL;
        size_t len = 0;
        int rc = cl_get_error(c, f, &code, &msg, &len);
        if (rc)
            return rc;
        char *d = cl_copy(msg, len);
        if (d)
            cl_sanitize(d);
        pq_complete(c, e, code, d, d ? strlen(d) : 0);
        return D_PIPE;
    }
    return cl_broken(c, AX_EPROTO, "daemon answered an ask with a %s frame", ax_frame_type_name(f->h.type));
}

/* A frame no blocking call waits for: an EVENT (queued), a pipelined result, a
 * connection-level ERROR, or a late answer to a request we already gave up on (dropped).
 * Returns D_EVENT, D_PIPE, D_DROPPED, or < 0 when the connection broke. */
static int dispatch(axc_conn *c, const rframe *f)
{
    if (f->h.type == AX_T_EVENT) {
        const void *p;
        const char *why = NULL;
        size_t n;
        if (ax_body_blob_get(f->body, f->h.body_len, &p, &n, &why) != 0)
            return cl_broken(c, AX_EPROTO, "malformed EVENT frame from the daemon: %s", why ? why : "bad body");
        if (memchr(p, 0, n))
            return cl_broken(c, AX_EPROTO, "malformed EVENT frame from the daemon: NUL byte in the document");
        char *d = cl_copy(p, n);
        if (d)
            ev_push(c, d);
        else
            c->ev_skipped++;
        return D_EVENT;
    }
    if (f->h.req_id == 0)
        return f->h.type == AX_T_ERROR ? conn_error(c, f) : D_DROPPED;
    pend *e = c->pq_waiting ? pq_find(c, f->h.req_id) : NULL;
    return e ? complete_pipelined(c, e, f) : D_DROPPED;
}

/* ---- writing ---- */

static int lost_on_send(axc_conn *c, int err)
{
    /* The daemon may have said why before it closed (a req_id-0 ERROR): prefer that.
     * (The asynchronous client reads that ERROR on its own, with everything before it.) */
    for (int i = 0; i < 8 && !c->broken && !c->async; i++) {
        rframe f;
        int r = cl_parse(c, &f);
        if (r == 1) {
            r = dispatch(c, &f);
            if (r < 0)
                return r;
            continue;
        }
        if (r < 0 || cl_recv(c, MSG_DONTWAIT) <= 0)
            break;
    }
    if (c->broken)
        return AX_ECONN;
    return cl_broken(c, AX_ECONN, "connection to the daemon lost while sending: %s", strerror(err));
}

/* Write what the socket takes now: 1 = all written, 0 = would block, < 0 broken. */
int cl_send(axc_conn *c)
{
    while (c->out.len > 0) {
        ssize_t n = send(c->fd, c->out.data, c->out.len, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n > 0) {
            ax_wbuf_consume(&c->out, (size_t)n);
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return 0;
        return lost_on_send(c, n < 0 ? errno : EPIPE);
    }
    return 1;
}

/* Drive the socket until the goal of mode is met or the deadline passes:
 *   P_FLUSH     everything queued is written;
 *   P_WAIT_ID   the frame answering want arrived (*f);
 *   P_WAIT_PIPE some pipelined ask completed;
 *   P_WAIT_EVENT an EVENT was queued;
 *   P_WAIT_ANY  any frame arrived (*f; the HELLO exchange).
 * EVENTs are never a response: they carry the SUBSCRIBE's req_id (or 0 for a down).
 * Frames nobody waits for are dispatched on the way, and we keep reading while the
 * output is blocked so that a daemon stuck writing to us cannot deadlock us.
 * Returns 1 done, 0 deadline passed, < 0 connection broken. */
static int pump(axc_conn *c, int mode, uint32_t want, int64_t deadline, rframe *f)
{
    int last_try = 0;
    for (;;) {
        int r;
        while ((r = cl_parse(c, f)) == 1) {
            if (f->h.type != AX_T_EVENT && (mode == P_WAIT_ANY || (mode == P_WAIT_ID && f->h.req_id == want)))
                return 1;
            r = dispatch(c, f);
            if (r < 0)
                return r;
            if ((mode == P_WAIT_PIPE && r == D_PIPE) || (mode == P_WAIT_EVENT && r == D_EVENT))
                return 1;
        }
        if (r < 0)
            return r;
        if (c->out.len > 0 && (r = cl_send(c)) < 0)
            return r;
        if (mode == P_FLUSH && c->out.len == 0)
            return 1;
        int64_t rem = deadline - cl_now_ms();
        if (rem <= 0) {
            /* One last look without waiting, so a zero timeout still makes progress. */
            if (last_try)
                return 0;
            last_try = 1;
            if ((r = cl_recv(c, MSG_DONTWAIT)) < 0)
                return r;
            continue;
        }
        if (c->out.len > 0) {
            struct pollfd pfd = {.fd = c->fd, .events = POLLIN | POLLOUT};
            int pr = poll(&pfd, 1, rem > INT_MAX ? INT_MAX : (int)rem);
            if (pr < 0 && errno != EINTR)
                return cl_broken(c, AX_EIO, "poll: %s", strerror(errno));
            if (pr > 0 && (pfd.revents & (POLLIN | POLLHUP | POLLERR)) && (r = cl_recv(c, MSG_DONTWAIT)) < 0)
                return r;
            continue;
        }
        /* Nothing left to write: block in recv itself (bounded by SO_RCVTIMEO), so a
         * request costs one send and, usually, one recv. */
        if ((r = set_rcvtimeo(c, rem)) < 0 || (r = cl_recv(c, 0)) < 0)
            return r;
    }
}

/* Close the frame started at start; on any encoding error remove it entirely. */
int cl_end_frame(axc_conn *c, size_t mark, size_t start)
{
    int rc = c->out.err;
    if (!rc)
        rc = ax_frame_end(&c->out, start, c->max_frame);
    if (!rc && c->out.err)
        rc = c->out.err;
    if (rc) {
        c->out.len = mark;
        c->out.err = 0;
        if (rc == AX_ETOOBIG)
            return cl_seterr(c, rc, "request exceeds the daemon's max_frame (%u bytes)", c->max_frame);
        return cl_seterr(c, rc, "cannot encode the request: %s", ax_strerror(rc));
    }
    return 0;
}

/* Everything the daemon would reject as malformed is refused here instead: the daemon
 * answers a malformed frame by closing the connection. */
int cl_check_name(axc_conn *c, const char *what, const char *s, size_t *len)
{
    if (!s || !*s)
        return cl_seterr(c, AX_EINVAL, "%s is empty", what);
    size_t n = strnlen(s, AX_NAME_MAX + 1);
    if (ax_name_valid(s, n))
        return cl_seterr(c, AX_EINVAL, "%s is not a valid name (1..%u printable ASCII characters, no spaces)",
                      what, AX_NAME_MAX);
    *len = n;
    return 0;
}

/* Wire form of a target; *size gets its encoded length. */
int cl_target_wire(axc_conn *c, const axc_target *t, ax_wire_target *w, size_t *size)
{
    size_t a = 0, b = 0;
    int rc;
    memset(w, 0, sizeof *w);
    if (!t)
        return cl_seterr(c, AX_EINVAL, "no target");
    switch (t->kind) {
    case AX_TGT_REF:
        a = strnlen(t->ref.node, AXC_NODE_MAX);
        if (a == AXC_NODE_MAX || (a && ax_name_valid(t->ref.node, a)))
            return cl_seterr(c, AX_EINVAL, "ref node id is not a valid name");
        w->kind = AX_TGT_REF;
        w->ref.node = t->ref.node;
        w->ref.node_len = a;
        w->ref.id = t->ref.id;
        w->ref.gen = t->ref.gen;
        *size = 1 + 2 + a + 8 + 4;
        return 0;
    case AX_TGT_NAME:
        if ((rc = cl_check_name(c, "actor name", t->name, &a)))
            return rc;
        w->kind = AX_TGT_NAME;
        w->name = t->name;
        w->name_len = a;
        *size = 1 + 2 + a;
        return 0;
    case AX_TGT_KEY:
        if ((rc = cl_check_name(c, "actor type", t->name, &a)))
            return rc;
        b = t->key ? strnlen(t->key, AX_KEY_MAX + 1) : 0;
        if (ax_key_valid(t->key, b))
            return cl_seterr(c, AX_EINVAL, "key must be 1..%u bytes", AX_KEY_MAX);
        w->kind = AX_TGT_KEY;
        w->name = t->name;
        w->name_len = a;
        w->key = t->key;
        w->key_len = b;
        *size = 1 + 2 + a + 2 + b;
        return 0;
    default:
        return cl_seterr(c, AX_EINVAL, "unknown target kind %d", t->kind);
    }
}

/* Queue a TELL or ASK frame. Sizes are checked before anything is buffered so that a
 * huge payload is refused without being copied. */
int cl_put_msg(axc_conn *c, uint8_t type, uint16_t flags, uint32_t id, const axc_target *t,
                   const char *msg, const void *p, size_t n, uint32_t timeout_ms)
{
    ax_body_msg m;
    size_t tsz = 0, ml = 0;
    int rc;
    memset(&m, 0, sizeof m);
    if ((rc = cl_target_wire(c, t, &m.target, &tsz)) || (rc = cl_check_name(c, "message name", msg, &ml)))
        return rc;
    if (n && !p)
        return cl_seterr(c, AX_EINVAL, "payload is NULL");
    if (n > c->max_frame || tsz + 8 + 2 + ml + 4 + n + (type == AX_T_ASK ? 4u : 0u) > c->max_frame)
        return cl_seterr(c, AX_ETOOBIG, "request of %zu payload bytes exceeds the daemon's max_frame (%u bytes)",
                      n, c->max_frame);
    m.msg = msg;
    m.msg_len = ml;
    m.payload = p;
    m.payload_len = n;
    m.timeout_ms = timeout_ms;
    size_t mark = c->out.len;
    size_t start = ax_frame_begin(&c->out, type, flags, id);
    ax_body_msg_put(&c->out, type, &m);
    return cl_end_frame(c, mark, start);
}

/* Queue a frame whose body is empty (s1 NULL) or one string. */
int cl_put_simple(axc_conn *c, uint8_t type, uint32_t id, const char *s1, size_t n1)
{
    size_t mark = c->out.len;
    size_t start = ax_frame_begin(&c->out, type, 0, id);
    if (s1)
        ax_wbuf_str(&c->out, s1, n1);
    return cl_end_frame(c, mark, start);
}

/* ---- request/response ---- */

static int daemon_error(axc_conn *c, const rframe *f)
{
    int code = 0;
    const char *msg = NULL;
    size_t len = 0;
    int rc = cl_get_error(c, f, &code, &msg, &len);
    if (rc)
        return rc;
    if (!len)
        return cl_seterr(c, code, "%s", ax_strerror(code));
    if (len > INT_MAX)
        len = INT_MAX;
    return cl_seterr(c, code, "%.*s", (int)len, msg);
}

/* Write everything queued and wait for the answer to id. Returns 0 with a non-ERROR
 * frame in *f, the code of an ERROR answer (message in c->err), or a local error. */
static int roundtrip(axc_conn *c, uint32_t id, int timeout_ms, rframe *f)
{
    int r = pump(c, P_WAIT_ID, id, cl_now_ms() + timeout_ms, f);
    if (r == 0)
        return cl_seterr(c, AX_ETIMEDOUT, "no response from the daemon within %d ms", timeout_ms);
    if (r < 0)
        return r;
    if (f->h.type == AX_T_ERROR)
        return daemon_error(c, f);
    return 0;
}

int cl_expect(axc_conn *c, const rframe *f, uint8_t type, const char *what)
{
    if (f->h.type == type)
        return 0;
    return cl_broken(c, AX_EPROTO, "daemon answered %s with a %s frame (expected %s)", what,
                       ax_frame_type_name(f->h.type), ax_frame_type_name(type));
}

int cl_get_ok(axc_conn *c, const rframe *f, const char *what)
{
    int rc = cl_expect(c, f, AX_T_OK, what);
    if (!rc && f->h.body_len != 0)
        rc = cl_broken(c, AX_EPROTO, "malformed OK frame from the daemon: trailing bytes");
    return rc;
}

int cl_get_ref(axc_conn *c, const rframe *f, const char *what, axc_ref *out)
{
    ax_wire_ref w;
    const char *why = NULL;
    int rc = cl_expect(c, f, AX_T_REF, what);
    if (rc)
        return rc;
    if (ax_body_ref_get(f->body, f->h.body_len, &w, &why) != 0)
        return cl_broken(c, AX_EPROTO, "malformed REF frame from the daemon: %s", why ? why : "bad body");
    if (w.node_len >= AXC_NODE_MAX) /* a valid name is at most 255 bytes: cannot happen */
        return cl_broken(c, AX_EPROTO, "malformed REF frame from the daemon: node id too long");
    if (out) {
        out->id = w.id;
        out->gen = w.gen;
        if (w.node_len)
            memcpy(out->node, w.node, w.node_len);
        memset(out->node + w.node_len, 0, AXC_NODE_MAX - w.node_len);
    }
    return 0;
}

int cl_peek_blob(axc_conn *c, const rframe *f, uint8_t type, const char *what, const void **p, size_t *n)
{
    const char *why = NULL;
    int rc = cl_expect(c, f, type, what);
    if (rc)
        return rc;
    if (ax_body_blob_get(f->body, f->h.body_len, p, n, &why) != 0)
        return cl_broken(c, AX_EPROTO, "malformed %s frame from the daemon: %s", ax_frame_type_name(type),
                         why ? why : "bad body");
    if ((type == AX_T_JSON || type == AX_T_EVENT) && memchr(*p, 0, *n))
        return cl_broken(c, AX_EPROTO, "malformed %s frame from the daemon: NUL byte in the document",
                         ax_frame_type_name(type));
    return 0;
}

/* The single blob of a REPLY or JSON frame, copied and NUL-terminated. */
int cl_get_blob(axc_conn *c, const rframe *f, uint8_t type, const char *what, char **out, size_t *len)
{
    const void *p = NULL;
    size_t n = 0;
    int rc = cl_peek_blob(c, f, type, what, &p, &n);
    if (rc)
        return rc;
    char *d = cl_copy(p, n);
    if (!d)
        return cl_seterr(c, AX_ENOMEM, "out of memory for a %zu-byte answer", n);
    *out = d;
    if (len)
        *len = n;
    return 0;
}

/* Queue a request with put (its result rc), wait for its answer: a JSON document into
 * *json, or OK when json is NULL. */
static int json_answer(axc_conn *c, uint32_t id, int rc, const char *what, char **json)
{
    rframe f;
    if (rc || (rc = roundtrip(c, id, c->timeout_ms, &f)))
        return rc;
    if (!json)
        return cl_get_ok(c, &f, what);
    return cl_get_blob(c, &f, AX_T_JSON, what, json, NULL);
}

/* A request with an empty or single-string body answered by JSON or OK. */
static int simple_call(axc_conn *c, uint8_t type, const char *what, const char *arg, size_t arg_len,
                       char **json)
{
    uint32_t id = cl_next_id(c);
    return json_answer(c, id, cl_put_simple(c, type, id, arg, arg_len), what, json);
}

/* ---- public API ---- */

AXC_EXPORT axc_target axc_by_ref(const axc_ref *r)
{
    axc_target t;
    memset(&t, 0, sizeof t);
    t.kind = AX_TGT_REF;
    if (r)
        t.ref = *r;
    return t;
}

AXC_EXPORT axc_target axc_by_name(const char *name)
{
    axc_target t;
    memset(&t, 0, sizeof t);
    t.kind = AX_TGT_NAME;
    t.name = name;
    return t;
}

AXC_EXPORT axc_target axc_by_key(const char *type, const char *key)
{
    axc_target t;
    memset(&t, 0, sizeof t);
    t.kind = AX_TGT_KEY;
    t.name = type;
    t.key = key;
    return t;
}

/* Name sent in HELLO, for the daemon's logs: "<program>:<pid>", plain ASCII. */
static void client_name(char *buf, size_t cap)
{
    const char *prog = program_invocation_short_name;
    if (!prog || !*prog)
        prog = "libaxclient";
    snprintf(buf, cap, "%.40s:%ld", prog, (long)getpid());
    for (char *s = buf; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
              strchr("._-:+", *s)))
            *s = '_';
}

int cl_connect_start(axc_conn *c, const char *path)
{
    struct sockaddr_un sa;
    memset(&sa, 0, sizeof sa);
    sa.sun_family = AF_UNIX;
    size_t n = strlen(path);
    if (n >= sizeof sa.sun_path)
        return cl_seterr(c, AX_EINVAL, "socket path too long: %s", path);
    memcpy(sa.sun_path, path, n + 1);
    if (c->fd < 0)
        c->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c->fd < 0)
        return cl_seterr(c, AX_EIO, "socket: %s", strerror(errno));
    if (connect(c->fd, (struct sockaddr *)&sa, sizeof sa) == 0)
        return 0;
    int e = errno;
    if (e == EAGAIN) /* Linux: the listen backlog is full; nothing is pending */
        return cl_seterr(c, AX_EBUSY, "cannot connect to %s: daemon busy (backlog full)", path);
    if (e == EINPROGRESS || e == EINTR)
        return 1;
    return cl_seterr(c, (e == EACCES || e == EPERM) ? AX_EPERM : AX_ECONN, "cannot connect to %s: %s", path,
                     strerror(e));
}

int cl_connect_done(axc_conn *c, const char *path)
{
    int e = 0;
    socklen_t sl = sizeof e;
    if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &e, &sl) < 0)
        e = errno;
    if (e == 0)
        return 0;
    return cl_seterr(c, (e == EACCES || e == EPERM) ? AX_EPERM : AX_ECONN, "cannot connect to %s: %s", path,
                     strerror(e));
}

static int open_socket(axc_conn *c, const char *path, int64_t deadline)
{
    for (;;) {
        int rc = cl_connect_start(c, path);
        if (rc == 0)
            break;
        int64_t rem = deadline - cl_now_ms();
        if (rc == AX_EBUSY) {
            if (rem <= 0)
                return AX_ETIMEDOUT;
            poll(NULL, 0, rem < 10 ? (int)rem : 10);
            continue;
        }
        if (rc < 0)
            return rc;
        struct pollfd pfd = {.fd = c->fd, .events = POLLOUT};
        int pr;
        do
            pr = poll(&pfd, 1, rem <= 0 ? 0 : rem > INT_MAX ? INT_MAX : (int)rem);
        while (pr < 0 && errno == EINTR && (rem = deadline - cl_now_ms()) > 0);
        if (pr <= 0)
            return cl_seterr(c, AX_ETIMEDOUT, "cannot connect to %s: timed out", path);
        if ((rc = cl_connect_done(c, path)))
            return rc;
        break;
    }
    /* Blocking from now on: recv waits (bounded by SO_RCVTIMEO); every send passes
     * MSG_DONTWAIT and falls back to poll. */
    int fl = fcntl(c->fd, F_GETFL);
    if (fl < 0 || fcntl(c->fd, F_SETFL, fl & ~O_NONBLOCK) < 0)
        return cl_seterr(c, AX_EIO, "fcntl: %s", strerror(errno));
    return 0;
}

int cl_put_hello(axc_conn *c, uint32_t id)
{
    char name[CLIENT_NAME_MAX];
    client_name(name, sizeof name);
    size_t mark = c->out.len;
    size_t start = ax_frame_begin(&c->out, AX_T_HELLO, 0, id);
    ax_body_hello hb = {.min_ver = AX_PROTO_VERSION_MIN, .max_ver = AX_PROTO_VERSION, .name = name,
                        .name_len = strlen(name)};
    ax_body_hello_put(&c->out, &hb);
    return cl_end_frame(c, mark, start);
}

/* The reply must be the first frame; anything else means this is not our daemon. */
int cl_hello_answer(axc_conn *c, const char *path, const rframe *f, uint32_t id)
{
    int rc;
    if (f->h.type == AX_T_ERROR) {
        int code = 0;
        const char *msg = NULL;
        size_t len = 0;
        if ((rc = cl_get_error(c, f, &code, &msg, &len)))
            return rc;
        if (!len)
            return cl_seterr(c, code, "daemon at %s refused the connection: %s", path, ax_strerror(code));
        return cl_seterr(c, code, "daemon at %s refused the connection: %.*s", path, (int)(len > 300 ? 300 : len),
                         msg);
    }
    if (f->h.type != AX_T_HELLO_OK || (f->h.req_id != id && f->h.req_id != 0))
        return cl_seterr(c, AX_EPROTO, "daemon at %s answered HELLO with %s", path, ax_frame_type_name(f->h.type));
    ax_body_hello_ok h;
    const char *why = NULL;
    if (ax_body_hello_ok_get(f->body, f->h.body_len, &h, &why) != 0)
        return cl_seterr(c, AX_EPROTO, "malformed HELLO_OK from the daemon: %s", why ? why : "bad body");
    if (h.version < AX_PROTO_VERSION_MIN || h.version > AX_PROTO_VERSION)
        return cl_seterr(c, AX_EVERSION, "daemon chose protocol version %u; this client speaks %u..%u",
                         (unsigned)h.version, AX_PROTO_VERSION_MIN, AX_PROTO_VERSION);
    if (h.max_frame < AX_FRAME_MAX_MIN || h.max_frame > AX_FRAME_MAX_LIMIT)
        return cl_seterr(c, AX_EPROTO, "daemon announced max_frame %u, outside %u..%u", h.max_frame,
                         AX_FRAME_MAX_MIN, AX_FRAME_MAX_LIMIT);
    if (memchr(h.node_id, 0, h.node_id_len))
        return cl_seterr(c, AX_EPROTO, "malformed HELLO_OK from the daemon: NUL in node id");
    char *node = cl_copy(h.node_id, h.node_id_len);
    if (!node)
        return cl_seterr(c, AX_ENOMEM, "out of memory");
    ax_free(c->node_id);
    c->node_id = node;
    c->max_frame = h.max_frame;
    return 0;
}

static int hello(axc_conn *c, const char *path, int64_t deadline)
{
    rframe f;
    uint32_t id = cl_next_id(c);
    int rc = cl_put_hello(c, id);
    if (rc)
        return rc;
    rc = pump(c, P_WAIT_ANY, 0, deadline, &f);
    if (rc == 0)
        return cl_seterr(c, AX_ETIMEDOUT, "no HELLO answer from the daemon at %s", path);
    if (rc < 0)
        return rc;
    return cl_hello_answer(c, path, &f, id);
}

axc_conn *cl_conn_new(void)
{
    axc_conn *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->fd = -1;
    c->next_id = 1;
    c->timeout_ms = DEFAULT_TIMEOUT_MS;
    c->rcvtimeo_ms = -1;
    c->max_frame = AX_FRAME_MAX_DEFAULT;
    ax_wbuf_init(&c->out);
    return c;
}

AXC_EXPORT int axc_connect(const char *path, int timeout_ms, axc_conn **out, char *errbuf, size_t errlen)
{
    if (errbuf && errlen)
        errbuf[0] = 0;
    if (!out) {
        if (errbuf && errlen)
            snprintf(errbuf, errlen, "axc_connect: out is NULL");
        return AX_EINVAL;
    }
    *out = NULL;
    if (timeout_ms <= 0)
        timeout_ms = DEFAULT_TIMEOUT_MS;
    if (!path || !*path) {
        path = getenv(AXC_SOCKET_ENV);
        if (!path || !*path)
            path = AXC_DEFAULT_SOCKET;
    }
    int64_t deadline = cl_now_ms() + timeout_ms;
    axc_conn *c = cl_conn_new();
    if (!c) {
        if (errbuf && errlen)
            snprintf(errbuf, errlen, "out of memory");
        return AX_ENOMEM;
    }
    int rc = open_socket(c, path, deadline);
    if (!rc)
        rc = hello(c, path, deadline);
    if (rc) {
        if (errbuf && errlen)
            snprintf(errbuf, errlen, "%s", c->err);
        axc_close(c);
        return rc;
    }
    *out = c;
    return 0;
}

AXC_EXPORT void axc_close(axc_conn *c)
{
    if (!c)
        return;
    /* Fire-and-forget tells still buffered get one bounded chance to leave. */
    if (c->fd >= 0 && !c->broken && c->out.len > 0) {
        rframe f;
        pump(c, P_FLUSH, 0, cl_now_ms() + c->timeout_ms, &f);
    }
    if (c->fd >= 0)
        close(c->fd);
    for (size_t i = 0; i < c->pq_count; i++) {
        pend *e = pq_at(c, i);
        if (e->state == PE_DONE)
            ax_free(e->res.data);
    }
    for (size_t i = 0; i < c->evq_count; i++)
        ax_free(c->evq[(c->evq_head + i) & (c->evq_cap - 1)]);
    ax_free(c->evq);
    ax_free(c->pq);
    ax_free(c->rb);
    ax_wbuf_free(&c->out);
    ax_free(c->node_id);
    ax_free(c);
}

AXC_EXPORT const char *axc_errmsg(const axc_conn *c)
{
    if (!c)
        return "no connection";
    return c->err[0] ? c->err : "no error";
}

AXC_EXPORT const char *axc_node_id(const axc_conn *c)
{
    return c && c->node_id ? c->node_id : "";
}

AXC_EXPORT void axc_set_timeout(axc_conn *c, int timeout_ms)
{
    if (c)
        c->timeout_ms = timeout_ms > 0 ? timeout_ms : DEFAULT_TIMEOUT_MS;
}

AXC_EXPORT int axc_is_broken(const axc_conn *c)
{
    return !c || c->broken;
}

AXC_EXPORT uint32_t axc_max_frame(const axc_conn *c)
{
    return c ? c->max_frame : 0;
}

AXC_EXPORT size_t axc_pending(const axc_conn *c)
{
    return c ? c->pq_waiting + c->pq_done : 0;
}

AXC_EXPORT void axc_free(void *p)
{
    ax_free(p);
}

int cl_put_spawn(axc_conn *c, uint32_t id, const char *type, const char *name, const char *config_json)
{
    size_t tl = 0, nl = 0, cl = 0;
    int rc = cl_check_name(c, "actor type", type, &tl);
    if (rc)
        return rc;
    if (name && *name && (rc = cl_check_name(c, "actor name", name, &nl)))
        return rc;
    if (config_json)
        cl = strnlen(config_json, AX_CONFIG_MAX + 1);
    if (cl > AX_CONFIG_MAX)
        return cl_seterr(c, AX_ETOOBIG, "spawn config is longer than %u bytes", AX_CONFIG_MAX);
    if (2 + tl + 2 + nl + 4 + cl > c->max_frame)
        return cl_seterr(c, AX_ETOOBIG, "spawn config exceeds the daemon's max_frame (%u bytes)", c->max_frame);
    ax_body_spawn s = {.type = type, .type_len = tl, .name = nl ? name : "", .name_len = nl,
                       .config = cl ? config_json : "", .config_len = cl};
    size_t mark = c->out.len;
    size_t start = ax_frame_begin(&c->out, AX_T_SPAWN, 0, id);
    ax_body_spawn_put(&c->out, &s);
    return cl_end_frame(c, mark, start);
}

/* Queue a request with put, wait for its answer and decode a REF from it. */
static int ref_answer(axc_conn *c, uint32_t id, int rc, const char *what, axc_ref *out)
{
    rframe f;
    axc_ref r;
    if (rc || (rc = roundtrip(c, id, c->timeout_ms, &f)) || (rc = cl_get_ref(c, &f, what, &r)))
        return rc;
    if (out)
        *out = r;
    return 0;
}

AXC_EXPORT int axc_spawn(axc_conn *c, const char *type, const char *name, const char *config_json,
                         axc_ref *out)
{
    int rc = cl_usable(c);
    if (rc)
        return rc;
    uint32_t id = cl_next_id(c);
    return ref_answer(c, id, cl_put_spawn(c, id, type, name, config_json), "spawn", out);
}

_Static_assert(AXC_NOREPLY == AX_F_NOREPLY && AXC_DIRECT == AX_F_DIRECT, "axc flags are the wire flags");

/* Flags a caller may give, checked before anything is queued. */
int cl_check_flags(axc_conn *c, unsigned flags, unsigned allowed, const char *what)
{
    if (flags & ~allowed)
        return cl_seterr(c, AX_EINVAL, "%s: unknown or invalid flags 0x%x", what, flags & ~allowed);
    return 0;
}

static int tell_acked(axc_conn *c, const axc_target *t, const char *msg, const void *p, size_t n, uint16_t flags)
{
    rframe f;
    int rc = cl_usable(c);
    if (rc)
        return rc;
    uint32_t id = cl_next_id(c);
    if ((rc = cl_put_msg(c, AX_T_TELL, flags, id, t, msg, p, n, 0)) || (rc = roundtrip(c, id, c->timeout_ms, &f)))
        return rc;
    return cl_get_ok(c, &f, "tell");
}

/* Append s as the body of a JSON string (no quotes). Bytes >= 0x80 go through as they
 * are: the daemon's key is those bytes, and a \u escape would decode to other ones. */
static void json_escape(ax_wbuf *b, const char *s)
{
    static const char hexd[] = "0123456789abcdef";
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\') {
            uint8_t e[2] = {'\\', ch};
            ax_wbuf_put(b, e, 2);
        } else if (ch < 0x20 || ch == 0x7f) {
            uint8_t e[6] = {'\\', 'u', '0', '0', (uint8_t)hexd[ch >> 4], (uint8_t)hexd[ch & 15]};
            ax_wbuf_put(b, e, 6);
        } else {
            ax_wbuf_put(b, &ch, 1);
        }
    }
}

int cl_put_get_or_spawn(axc_conn *c, uint32_t id, const char *type, const char *key, const char *config_json)
{
    size_t kl = key ? strnlen(key, AX_KEY_MAX + 1) : 0, cl = 0;
    int rc;
    if (ax_key_valid(key, kl))
        return cl_seterr(c, AX_EINVAL, "key must be 1..%u bytes", AX_KEY_MAX);
    if (config_json)
        cl = strnlen(config_json, AX_CONFIG_MAX + 1);
    if (cl > AX_CONFIG_MAX)
        return cl_seterr(c, AX_ETOOBIG, "spawn config is longer than %u bytes", AX_CONFIG_MAX);
    /* Splice "key" into the caller's object: {"key":"K"} or {"key":"K", <members>}. The
     * daemon parses and checks the rest; only the opening brace is looked at here. */
    const char *rest = "}";
    if (cl) {
        const char *q = config_json + strspn(config_json, " \t\r\n");
        if (*q != '{')
            return cl_seterr(c, AX_EINVAL, "spawn config is not a JSON object");
        if (strstr(q, "\"key\""))
            return cl_seterr(c, AX_EINVAL, "spawn config must not hold \"key\": give the key as an argument");
        q++;
        q += strspn(q, " \t\r\n");
        rest = q;
    }
    ax_wbuf b;
    ax_wbuf_init(&b);
    ax_wbuf_put(&b, "{\"key\":\"", 8);
    json_escape(&b, key);
    ax_wbuf_put(&b, "\"", 1);
    if (*rest != '}')
        ax_wbuf_put(&b, ",", 1);
    ax_wbuf_put(&b, rest, strlen(rest) + 1); /* with the NUL */
    if (b.err) {
        rc = cl_seterr(c, b.err, "cannot build the spawn config: %s", ax_strerror(b.err));
    } else if (b.len - 1 > AX_CONFIG_MAX) {
        rc = cl_seterr(c, AX_ETOOBIG, "spawn config with the key is longer than %u bytes", AX_CONFIG_MAX);
    } else {
        rc = cl_put_spawn(c, id, type, NULL, (const char *)b.data);
    }
    ax_wbuf_free(&b);
    return rc;
}

AXC_EXPORT int axc_get_or_spawn(axc_conn *c, const char *type, const char *key, const char *config_json,
                                axc_ref *out)
{
    int rc = cl_usable(c);
    if (rc)
        return rc;
    uint32_t id = cl_next_id(c);
    return ref_answer(c, id, cl_put_get_or_spawn(c, id, type, key, config_json), "spawn", out);
}

int cl_put_spawn_arg(axc_conn *c, uint32_t id, const char *type, const char *name, const char *key,
                     const char *config_json, const void *arg, size_t n)
{
    static const char hexd[] = "0123456789abcdef";
    int rc;
    if (n > AXC_SPAWN_ARG_MAX || (n && !arg))
        return cl_seterr(c, AX_EINVAL, "spawn argument: at most %u bytes", AXC_SPAWN_ARG_MAX);
    if (key && name && *name)
        return cl_seterr(c, AX_EINVAL, "a keyed actor has no name");
    size_t cl = config_json ? strnlen(config_json, AX_CONFIG_MAX + 1) : 0;
    if (cl > AX_CONFIG_MAX)
        return cl_seterr(c, AX_ETOOBIG, "spawn config is longer than %u bytes", AX_CONFIG_MAX);
    const char *rest = "}";
    if (cl) { /* splice into the caller's object, as axc_get_or_spawn does */
        const char *q = config_json + strspn(config_json, " \t\r\n");
        if (*q != '{')
            return cl_seterr(c, AX_EINVAL, "spawn config is not a JSON object");
        if (strstr(q, "\"arg\"") || strstr(q, "\"arg_hex\""))
            return cl_seterr(c, AX_EINVAL, "spawn config must not hold \"arg\": give the argument as bytes");
        q++;
        rest = q + strspn(q, " \t\r\n");
    }
    ax_wbuf b;
    ax_wbuf_init(&b);
    ax_wbuf_put(&b, "{\"arg_hex\":\"", 12);
    for (size_t i = 0; i < n; i++) {
        uint8_t h[2] = {(uint8_t)hexd[((const uint8_t *)arg)[i] >> 4], (uint8_t)hexd[((const uint8_t *)arg)[i] & 15]};
        ax_wbuf_put(&b, h, 2);
    }
    ax_wbuf_put(&b, "\"", 1);
    if (*rest != '}')
        ax_wbuf_put(&b, ",", 1);
    ax_wbuf_put(&b, rest, strlen(rest) + 1); /* with the NUL */
    if (b.err)
        rc = cl_seterr(c, b.err, "cannot build the spawn config: %s", ax_strerror(b.err));
    else if (b.len - 1 > AX_CONFIG_MAX)
        rc = cl_seterr(c, AX_ETOOBIG, "spawn config with the argument is longer than %u bytes", AX_CONFIG_MAX);
    else if (key)
        rc = cl_put_get_or_spawn(c, id, type, key, (const char *)b.data);
    else
        rc = cl_put_spawn(c, id, type, name, (const char *)b.data);
    ax_wbuf_free(&b);
    return rc;
}

AXC_EXPORT int axc_spawn_arg(axc_conn *c, const char *type, const char *name, const char *key, const char *config_json,
                             const void *arg, size_t n, axc_ref *out)
{
    int rc = cl_usable(c);
    if (rc)
        return rc;
    uint32_t id = cl_next_id(c);
    return ref_answer(c, id, cl_put_spawn_arg(c, id, type, name, key, config_json, arg, n), "spawn", out);
}

AXC_EXPORT int axc_tell(axc_conn *c, const axc_target *t, const char *msg, const void *p, size_t n)
{
    return tell_acked(c, t, msg, p, n, 0);
}

/* Bound the buffer before adding to it, so a daemon that stops reading cannot make
 * fire-and-forget sends grow memory without limit. */
static int make_room(axc_conn *c)
{
    if (c->out.len < FLUSH_AT)
        return 0;
    rframe f;
    int r = pump(c, P_FLUSH, 0, cl_now_ms() + c->timeout_ms, &f);
    if (r == 0)
        return cl_seterr(c, AX_ETIMEDOUT, "daemon did not take buffered requests within %d ms", c->timeout_ms);
    return r < 0 ? r : 0;
}

/* After queueing: past the threshold, push without blocking. */
static int nudge(axc_conn *c)
{
    if (c->out.len >= FLUSH_AT) {
        int r = cl_send(c);
        if (r < 0)
            return r;
    }
    return 0;
}

static int tell_noreply(axc_conn *c, const axc_target *t, const char *msg, const void *p, size_t n, uint16_t flags)
{
    int rc = cl_usable(c);
    if (rc || (rc = make_room(c)))
        return rc;
    /* A real request id (not 0): should the daemon answer anyway, the answer is dropped
     * as unknown instead of reading as a connection-level error. */
    if ((rc = cl_put_msg(c, AX_T_TELL, (uint16_t)(flags | AX_F_NOREPLY), cl_next_id(c), t, msg, p, n, 0)))
        return rc;
    return nudge(c);
}

AXC_EXPORT int axc_tell_noreply(axc_conn *c, const axc_target *t, const char *msg, const void *p, size_t n)
{
    return tell_noreply(c, t, msg, p, n, 0);
}

AXC_EXPORT int axc_tell_ex(axc_conn *c, const axc_target *t, const char *msg, const void *p, size_t n,
                           unsigned flags)
{
    int rc = cl_usable(c);
    if (rc || (rc = cl_check_flags(c, flags, AXC_NOREPLY | AXC_DIRECT, "tell")))
        return rc;
    if (flags & AXC_NOREPLY)
        return tell_noreply(c, t, msg, p, n, (uint16_t)(flags & AXC_DIRECT));
    return tell_acked(c, t, msg, p, n, (uint16_t)flags);
}

int cl_ask_timeout(axc_conn *c, int timeout_ms, int *out)
{
    if (timeout_ms <= 0)
        return cl_seterr(c, AX_EINVAL, "ask timeout must be positive");
    *out = timeout_ms > INT_MAX - ASK_GRACE_MS ? INT_MAX - ASK_GRACE_MS : timeout_ms;
    return 0;
}

AXC_EXPORT int axc_ask(axc_conn *c, const axc_target *t, const char *msg, const void *p, size_t n,
                       int timeout_ms, void **reply, size_t *reply_len)
{
    return axc_ask_ex(c, t, msg, p, n, timeout_ms, 0, reply, reply_len);
}

AXC_EXPORT int axc_ask_ex(axc_conn *c, const axc_target *t, const char *msg, const void *p, size_t n,
                          int timeout_ms, unsigned flags, void **reply, size_t *reply_len)
{
    rframe f;
    int rc = cl_usable(c);
    if (rc || (rc = cl_check_flags(c, flags, AXC_DIRECT, "ask")))
        return rc;
    if ((rc = cl_ask_timeout(c, timeout_ms, &timeout_ms)))
        return rc;
    uint32_t id = cl_next_id(c);
    if ((rc = cl_put_msg(c, AX_T_ASK, (uint16_t)flags, id, t, msg, p, n, (uint32_t)timeout_ms)) ||
        (rc = roundtrip(c, id, timeout_ms + ASK_GRACE_MS, &f)))
        return rc;
    char *d;
    size_t len;
    if ((rc = cl_get_blob(c, &f, AX_T_REPLY, "ask", &d, &len)))
        return rc;
    if (reply)
        *reply = d;
    else
        ax_free(d);
    if (reply_len)
        *reply_len = len;
    return 0;
}

int cl_put_target_req(axc_conn *c, uint8_t type, uint32_t id, const axc_target *t)
{
    ax_wire_target w;
    size_t tsz;
    int rc = cl_target_wire(c, t, &w, &tsz);
    if (rc)
        return rc;
    size_t mark = c->out.len;
    size_t start = ax_frame_begin(&c->out, type, 0, id);
    ax_put_target(&c->out, &w);
    return cl_end_frame(c, mark, start);
}

int cl_put_exit(axc_conn *c, uint32_t id, const axc_target *t, const char *reason)
{
    ax_wire_target w;
    size_t tsz;
    if (!reason)
        reason = "normal";
    if (ax_name_valid(reason, strlen(reason)) != 0)
        return cl_seterr(c, AX_EINVAL, "exit: the reason must be a name (1..255 printable bytes, no spaces)");
    int rc = cl_target_wire(c, t, &w, &tsz);
    if (rc)
        return rc;
    size_t mark = c->out.len;
    size_t start = ax_frame_begin(&c->out, AX_T_EXIT, 0, id);
    ax_put_target(&c->out, &w);
    ax_wbuf_str(&c->out, reason, strlen(reason));
    return cl_end_frame(c, mark, start);
}

AXC_EXPORT int axc_stop(axc_conn *c, const axc_target *t)
{
    int rc = cl_usable(c);
    if (rc)
        return rc;
    uint32_t id = cl_next_id(c);
    return json_answer(c, id, cl_put_target_req(c, AX_T_STOP, id, t), "stop", NULL);
}

AXC_EXPORT int axc_exit(axc_conn *c, const axc_target *t, const char *reason)
{
    int rc = cl_usable(c);
    if (rc)
        return rc;
    uint32_t id = cl_next_id(c);
    return json_answer(c, id, cl_put_exit(c, id, t, reason), "exit", NULL);
}

AXC_EXPORT int axc_resolve(axc_conn *c, const axc_target *t, axc_ref *out)
{
    int rc = cl_usable(c);
    if (rc)
        return rc;
    uint32_t id = cl_next_id(c);
    return ref_answer(c, id, cl_put_target_req(c, AX_T_RESOLVE, id, t), "resolve", out);
}

static int json_call(axc_conn *c, uint8_t type, const char *what, char **json)
{
    int rc = cl_usable(c);
    if (rc)
        return rc;
    if (!json)
        return cl_seterr(c, AX_EINVAL, "%s: json is NULL", what);
    return simple_call(c, type, what, NULL, 0, json);
}

AXC_EXPORT int axc_status(axc_conn *c, char **json)
{
    return json_call(c, AX_T_STATUS, "status", json);
}

AXC_EXPORT int axc_cluster_status(axc_conn *c, char **json)
{
    return json_call(c, AX_T_CLUSTER_STATUS, "cluster status", json);
}

AXC_EXPORT int axc_actors(axc_conn *c, char **json)
{
    return json_call(c, AX_T_ACTORS, "actors", json);
}

int cl_put_actors(axc_conn *c, uint32_t id, const axc_actors_query *q)
{
    if (!q)
        return cl_seterr(c, AX_EINVAL, "actors: query is NULL");
    ax_actors_query w = {.cursor = q->cursor, .limit = q->limit};
    w.type = q->type ? q->type : "";
    w.name = q->name_prefix ? q->name_prefix : "";
    w.state = q->state ? q->state : "";
    w.key = q->key_prefix ? q->key_prefix : "";
    w.type_len = strlen(w.type);
    w.name_len = strlen(w.name);
    w.state_len = strlen(w.state);
    w.key_len = strlen(w.key);
    if (w.type_len > AX_NAME_MAX || w.name_len > AX_NAME_MAX || w.state_len > AX_NAME_MAX || w.key_len > AX_KEY_MAX)
        return cl_seterr(c, AX_EINVAL, "actors: a filter is too long");
    size_t mark = c->out.len;
    size_t start = ax_frame_begin(&c->out, AX_T_ACTORS, 0, id);
    ax_body_actors_put(&c->out, &w);
    return cl_end_frame(c, mark, start);
}

AXC_EXPORT int axc_actors_page(axc_conn *c, const axc_actors_query *q, char **json)
{
    int rc = cl_usable(c);
    if (rc)
        return rc;
    if (!json)
        return cl_seterr(c, AX_EINVAL, "actors: json is NULL");
    rframe f;
    uint32_t id = cl_next_id(c);
    if ((rc = cl_put_actors(c, id, q)) || (rc = roundtrip(c, id, c->timeout_ms, &f)))
        return rc;
    return cl_get_blob(c, &f, AX_T_JSON, "actors", json, NULL);
}

AXC_EXPORT int axc_plugins(axc_conn *c, char **json)
{
    return json_call(c, AX_T_PLUGINS, "plugins", json);
}

AXC_EXPORT int axc_shards(axc_conn *c, char **json)
{
    return json_call(c, AX_T_SHARDS, "shards", json);
}

AXC_EXPORT int axc_nodes(axc_conn *c, char **json)
{
    return json_call(c, AX_T_NODES, "nodes", json);
}

int cl_put_plugin_load(axc_conn *c, uint32_t id, const char *path)
{
    if (!path || !*path)
        return cl_seterr(c, AX_EINVAL, "plugin path is empty");
    size_t n = strnlen(path, AX_PATH_MAX + 1);
    if (n > AX_PATH_MAX)
        return cl_seterr(c, AX_EINVAL, "plugin path is longer than %u bytes", AX_PATH_MAX);
    return cl_put_simple(c, AX_T_PLUGIN_LOAD, id, path, n);
}

int cl_put_plugin_unload(axc_conn *c, uint32_t id, const char *name)
{
    size_t n = 0;
    int rc = cl_check_name(c, "plugin name", name, &n);
    return rc ? rc : cl_put_simple(c, AX_T_PLUGIN_UNLOAD, id, name, n);
}

int cl_put_log_level(axc_conn *c, uint32_t id, const char *level)
{
    size_t n = 0;
    int rc = cl_check_name(c, "log level", level, &n);
    if (rc)
        return rc;
    if (n > 16)
        return cl_seterr(c, AX_EINVAL, "log level is longer than 16 bytes");
    return cl_put_simple(c, AX_T_LOG_LEVEL, id, level, n);
}

int cl_put_drain(axc_conn *c, uint32_t id, uint32_t timeout_ms, unsigned flags)
{
    if (timeout_ms > AX_DRAIN_TIMEOUT_MAX || (flags & ~(unsigned)AXC_DRAIN_STAY))
        return cl_seterr(c, AX_EINVAL, "drain: timeout_ms must be at most %u and flags AXC_DRAIN_STAY",
                         AX_DRAIN_TIMEOUT_MAX);
    size_t mark = c->out.len;
    size_t start = ax_frame_begin(&c->out, AX_T_DRAIN, 0, id);
    ax_wbuf_u32(&c->out, timeout_ms);
    ax_wbuf_u8(&c->out, (uint8_t)((flags & AXC_DRAIN_STAY) ? AX_DRAIN_STAY : 0));
    return cl_end_frame(c, mark, start);
}

AXC_EXPORT int axc_plugin_load(axc_conn *c, const char *path, char **json)
{
    int rc = cl_usable(c);
    if (rc)
        return rc;
    if (!json)
        return cl_seterr(c, AX_EINVAL, "plugin load: json is NULL");
    uint32_t id = cl_next_id(c);
    return json_answer(c, id, cl_put_plugin_load(c, id, path), "plugin load", json);
}

AXC_EXPORT int axc_plugin_unload(axc_conn *c, const char *name)
{
    int rc = cl_usable(c);
    if (rc)
        return rc;
    uint32_t id = cl_next_id(c);
    return json_answer(c, id, cl_put_plugin_unload(c, id, name), "plugin unload", NULL);
}

AXC_EXPORT int axc_set_log_level(axc_conn *c, const char *level)
{
    int rc = cl_usable(c);
    if (rc)
        return rc;
    uint32_t id = cl_next_id(c);
    return json_answer(c, id, cl_put_log_level(c, id, level), "log level", NULL);
}

AXC_EXPORT int axc_drain(axc_conn *c, uint32_t timeout_ms, unsigned flags, char **json)
{
    rframe f;
    int rc = cl_usable(c);
    if (rc)
        return rc;
    uint32_t id = cl_next_id(c);
    rc = cl_put_drain(c, id, timeout_ms, flags);
    /* answered when the drain ends: within its timeout (0: the daemon's, at most an hour) */
    int wait_ms = (timeout_ms ? (int)timeout_ms : (int)AX_DRAIN_TIMEOUT_MAX) + 5000;
    if (!rc)
        rc = roundtrip(c, id, wait_ms, &f);
    if (rc)
        return rc;
    if (!json) {
        char *doc = NULL;
        rc = cl_get_blob(c, &f, AX_T_JSON, "drain", &doc, NULL);
        axc_free(doc);
        return rc;
    }
    return cl_get_blob(c, &f, AX_T_JSON, "drain", json, NULL);
}

AXC_EXPORT int axc_undrain(axc_conn *c)
{
    int rc = cl_usable(c);
    if (rc)
        return rc;
    return simple_call(c, AX_T_UNDRAIN, "undrain", NULL, 0, NULL);
}

AXC_EXPORT int axc_fd(const axc_conn *c)
{
    return c ? c->fd : -1;
}

AXC_EXPORT int axc_send_ask(axc_conn *c, const axc_target *t, const char *msg, const void *p, size_t n,
                            int timeout_ms, uint32_t *req_id)
{
    int rc = cl_usable(c);
    if (rc)
        return rc;
    if ((rc = cl_ask_timeout(c, timeout_ms, &timeout_ms)))
        return rc;
    if ((rc = pq_reserve(c)) || (rc = make_room(c)))
        return rc;
    uint32_t id = cl_next_id(c);
    if ((rc = cl_put_msg(c, AX_T_ASK, 0, id, t, msg, p, n, (uint32_t)timeout_ms)))
        return rc;
    pend *e = pq_at(c, c->pq_count++);
    memset(e, 0, sizeof *e);
    e->id = id;
    e->state = PE_WAIT;
    e->timeout_ms = timeout_ms + ASK_GRACE_MS;
    e->deadline = cl_now_ms() + timeout_ms + ASK_GRACE_MS;
    c->pq_waiting++;
    if (req_id)
        *req_id = id;
    /* The ask is queued even if this push fails; the failure shows as its result. */
    nudge(c);
    return 0;
}

AXC_EXPORT int axc_flush(axc_conn *c)
{
    rframe f;
    int rc = cl_usable(c);
    if (rc)
        return rc;
    if (!c->out.len)
        return 0;
    int r = pump(c, P_FLUSH, 0, cl_now_ms() + c->timeout_ms, &f);
    if (r == 0)
        return cl_seterr(c, AX_ETIMEDOUT, "daemon did not take buffered requests within %d ms", c->timeout_ms);
    return r < 0 ? r : 0;
}

AXC_EXPORT int axc_poll_result(axc_conn *c, int timeout_ms, axc_result *r)
{
    if (!c || !r)
        return c ? cl_seterr(c, AX_EINVAL, "poll_result: r is NULL") : AX_EINVAL;
    int64_t end = cl_now_ms() + (timeout_ms > 0 ? timeout_ms : 0);
    int polled = 0;
    for (;;) {
        if (pq_pop_done(c, r))
            return 1;
        if (c->broken) {
            /* Every outstanding ask gets exactly one result, even on a dead connection. */
            for (size_t i = 0; i < c->pq_count; i++) {
                pend *e = pq_at(c, i);
                if (e->state == PE_WAIT) {
                    pq_fail(c, e, AX_ECONN, c->dead);
                    pq_pop_done(c, r);
                    return 1;
                }
            }
            return cl_usable(c);
        }
        int64_t now = cl_now_ms(), next = INT64_MAX;
        if (pq_expire(c, now, &next))
            continue;
        if (!c->pq_waiting) {
            int s = c->out.len ? cl_send(c) : 0; /* still push queued tells */
            return s < 0 ? s : 0;
        }
        if (polled && now >= end)
            return 0;
        rframe f;
        int x = pump(c, P_WAIT_PIPE, 0, next < end ? next : end, &f);
        polled = 1;
        if (x < 0 && !c->broken)
            return x;
    }
}

/* ---- lifecycle events and monitors ---- */

int cl_put_subscribe(axc_conn *c, uint32_t id, const char *actor_name)
{
    size_t n = 0;
    int rc;
    if (actor_name && *actor_name && (rc = cl_check_name(c, "actor name filter", actor_name, &n)))
        return rc;
    return cl_put_simple(c, AX_T_SUBSCRIBE, id, n ? actor_name : "", n);
}

AXC_EXPORT int axc_subscribe(axc_conn *c, const char *actor_name)
{
    int rc = cl_usable(c);
    if (rc)
        return rc;
    uint32_t id = cl_next_id(c);
    return json_answer(c, id, cl_put_subscribe(c, id, actor_name), "subscribe", NULL);
}

AXC_EXPORT int axc_unsubscribe(axc_conn *c)
{
    int rc = cl_usable(c);
    if (rc)
        return rc;
    return simple_call(c, AX_T_UNSUBSCRIBE, "unsubscribe", NULL, 0, NULL);
}

/* The unsigned integer value of "key" in a flat JSON object the daemon produced;
 * -1 if absent or not a plain integer. */
int cl_json_u64(const char *doc, const char *key, uint64_t *out)
{
    size_t kl = strlen(key);
    for (const char *p = doc; (p = strchr(p, '"')) != NULL; p++) {
        if (strncmp(p + 1, key, kl) != 0 || p[1 + kl] != '"')
            continue;
        const char *q = p + 2 + kl;
        while (*q == ' ' || *q == '\t' || *q == '\n' || *q == '\r')
            q++;
        if (*q++ != ':')
            continue;
        while (*q == ' ' || *q == '\t' || *q == '\n' || *q == '\r')
            q++;
        if (*q < '0' || *q > '9')
            return -1;
        uint64_t v = 0;
        for (; *q >= '0' && *q <= '9'; q++) {
            if (v > (UINT64_MAX - (uint64_t)(*q - '0')) / 10)
                return -1;
            v = v * 10 + (uint64_t)(*q - '0');
        }
        *out = v;
        return 0;
    }
    return -1;
}

AXC_EXPORT int axc_monitor(axc_conn *c, const axc_target *t, uint64_t *mref)
{
    char *doc = NULL;
    uint64_t v;
    int rc = cl_usable(c);
    if (rc)
        return rc;
    uint32_t id = cl_next_id(c);
    if ((rc = json_answer(c, id, cl_put_target_req(c, AX_T_MONITOR, id, t), "monitor", &doc)))
        return rc;
    rc = cl_json_u64(doc, "mref", &v);
    ax_free(doc);
    if (rc)
        return cl_broken(c, AX_EPROTO, "daemon answered monitor without an \"mref\"");
    if (mref)
        *mref = v;
    return 0;
}

int cl_put_demonitor(axc_conn *c, uint32_t id, uint64_t mref)
{
    size_t mark = c->out.len;
    size_t start = ax_frame_begin(&c->out, AX_T_DEMONITOR, 0, id);
    ax_wbuf_u64(&c->out, mref);
    return cl_end_frame(c, mark, start);
}

AXC_EXPORT int axc_demonitor(axc_conn *c, uint64_t mref)
{
    int rc = cl_usable(c);
    if (rc)
        return rc;
    uint32_t id = cl_next_id(c);
    return json_answer(c, id, cl_put_demonitor(c, id, mref), "demonitor", NULL);
}

AXC_EXPORT int axc_next_event(axc_conn *c, int timeout_ms, char **json)
{
    rframe f;
    if (!c || !json)
        return c ? cl_seterr(c, AX_EINVAL, "next_event: json is NULL") : AX_EINVAL;
    /* Events that arrived before the connection broke are still handed out. */
    if (ev_pop(c, json))
        return 1;
    int rc = cl_usable(c);
    if (rc)
        return rc;
    int r = pump(c, P_WAIT_EVENT, 0, cl_now_ms() + (timeout_ms > 0 ? timeout_ms : 0), &f);
    if (ev_pop(c, json))
        return 1;
    return r < 0 ? r : 0;
}

/* Bounds one call when the daemon keeps sending: the caller gets control back. */
#define DISPATCH_MAX 65536

AXC_EXPORT int axc_dispatch_events(axc_conn *c, int timeout_ms, axc_event_cb cb, void *arg)
{
    rframe f;
    char *doc = NULL;
    int n = 0;
    if (!c || !cb)
        return c ? cl_seterr(c, AX_EINVAL, "dispatch_events: cb is NULL") : AX_EINVAL;
    int64_t deadline = cl_now_ms() + (timeout_ms > 0 ? timeout_ms : 0);
    while (n < DISPATCH_MAX) {
        if (ev_pop(c, &doc)) {
            cb(doc, strlen(doc), arg);
            ax_free(doc);
            n++;
            continue;
        }
        if (c->broken)
            break;
        /* Once something was handed out, only take what is already there. */
        int r = pump(c, P_WAIT_EVENT, 0, n ? cl_now_ms() : deadline, &f);
        if (r < 0 && !c->evq_count && !c->ev_skipped)
            return n ? n : r;
        if (r == 0 && !c->evq_count && !c->ev_skipped)
            break;
    }
    if (!n && c->broken)
        return cl_usable(c);
    return n;
}
