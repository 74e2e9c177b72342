/* The axactor frame codec: header encode/decode, the growable write buffer, the
 * bounds-checked reader and the typed bodies of the client plane (see PROTOCOL.md).
 * Everything here treats its input as hostile: no read past len, no abort on sizes. */
#include "frame.h"

#include <string.h>

#include "ax_mem.h"

/* Buffers above this size are released when they drain, so one huge reply does not
 * pin memory for the life of a connection. */
#define WBUF_KEEP_CAP (64u << 10)

static void be16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}
static void be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}
static uint16_t rd16(const uint8_t *p) { return (uint16_t)(p[0] << 8 | p[1]); }
static uint32_t rd32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* ---- header ---- */

void ax_frame_hdr_encode(const ax_frame_hdr *hdr, uint8_t out[AX_FRAME_HDR_SIZE])
{
    be16(out, AX_FRAME_MAGIC);
    out[2] = hdr->version;
    out[3] = hdr->type;
    be16(out + 4, hdr->flags);
    be16(out + 6, 0);
    be32(out + 8, hdr->req_id);
    be32(out + 12, hdr->body_len);
}

int ax_frame_hdr_decode(const uint8_t *p, size_t len, uint32_t max_body, ax_frame_hdr *hdr,
                        const char **why)
{
    const char *w = NULL;
    int rc = AX_EPROTO;
    uint16_t flags;
    if (len < AX_FRAME_HDR_SIZE)
        return 1;
    flags = rd16(p + 4);
    if (rd16(p) != AX_FRAME_MAGIC)
        w = "bad magic (not an axactor frame)";
    else if (p[2] < AX_PROTO_VERSION_MIN || p[2] > AX_PROTO_VERSION)
        w = "unsupported protocol version";
    else if (!ax_frame_type_known(p[3]))
        w = "unknown frame type";
    else if (flags & ~AX_F_KNOWN_MASK)
        w = "unknown flags";
    else if ((flags & AX_F_NOREPLY) && p[3] != AX_T_TELL)
        w = "NOREPLY flag on a frame other than TELL";
    else if ((flags & AX_F_DIRECT) && p[3] != AX_T_TELL && p[3] != AX_T_ASK)
        w = "DIRECT flag on a frame other than TELL or ASK";
    else if (rd16(p + 6) != 0)
        w = "reserved header field is not zero";
    else if (rd32(p + 12) > max_body) {
        w = "body longer than max_frame";
        rc = AX_ETOOBIG;
    }
    if (w) {
        if (why)
            *why = w;
        return rc;
    }
    hdr->version = p[2];
    hdr->type = p[3];
    hdr->flags = flags;
    hdr->req_id = rd32(p + 8);
    hdr->body_len = rd32(p + 12);
    return 0;
}

int ax_frame_type_known(uint8_t type) { return ax_frame_type_name(type)[0] != '?'; }

const char *ax_frame_type_name(uint8_t type)
{
    switch (type) {
    case AX_T_HELLO: return "HELLO";
    case AX_T_HELLO_OK: return "HELLO_OK";
    case AX_T_ERROR: return "ERROR";
    case AX_T_OK: return "OK";
    case AX_T_SPAWN: return "SPAWN";
    case AX_T_REF: return "REF";
    case AX_T_TELL: return "TELL";
    case AX_T_ASK: return "ASK";
    case AX_T_REPLY: return "REPLY";
    case AX_T_STOP: return "STOP";
    case AX_T_RESOLVE: return "RESOLVE";
    case AX_T_EXIT: return "EXIT";
    case AX_T_STATUS: return "STATUS";
    case AX_T_ACTORS: return "ACTORS";
    case AX_T_PLUGINS: return "PLUGINS";
    case AX_T_PLUGIN_LOAD: return "PLUGIN_LOAD";
    case AX_T_PLUGIN_UNLOAD: return "PLUGIN_UNLOAD";
    case AX_T_NODES: return "NODES";
    case AX_T_SHARDS: return "SHARDS";
    case AX_T_LOG_LEVEL: return "LOG_LEVEL";
    case AX_T_DRAIN: return "DRAIN";
    case AX_T_UNDRAIN: return "UNDRAIN";
    case AX_T_CLUSTER_STATUS: return "CLUSTER_STATUS";
    case AX_T_JSON: return "JSON";
    case AX_T_SUBSCRIBE: return "SUBSCRIBE";
    case AX_T_UNSUBSCRIBE: return "UNSUBSCRIBE";
    case AX_T_MONITOR: return "MONITOR";
    case AX_T_DEMONITOR: return "DEMONITOR";
    case AX_T_EVENT: return "EVENT";
    }
    return "?";
}

int ax_proto_negotiate(uint16_t min_ver, uint16_t max_ver)
{
    uint16_t v = max_ver < AX_PROTO_VERSION ? max_ver : AX_PROTO_VERSION;
    if (min_ver > max_ver || v < min_ver || v < AX_PROTO_VERSION_MIN)
        return AX_EVERSION;
    return v;
}

/* ---- write buffer ---- */

void ax_wbuf_init(ax_wbuf *b) { memset(b, 0, sizeof *b); }

void ax_wbuf_free(ax_wbuf *b)
{
    ax_free(b->data);
    memset(b, 0, sizeof *b);
}

int ax_wbuf_reserve(ax_wbuf *b, size_t extra)
{
    size_t need, cap;
    uint8_t *d;
    if (b->err)
        return b->err;
    if (extra > SIZE_MAX - b->len) {
        b->err = AX_ENOMEM;
        return b->err;
    }
    need = b->len + extra;
    if (need <= b->cap)
        return 0;
    cap = b->cap ? b->cap : 256;
    while (cap < need)
        cap = cap > SIZE_MAX / 2 ? need : cap * 2;
    d = ax_try_realloc(b->data, cap);
    if (!d) {
        b->err = AX_ENOMEM;
        return b->err;
    }
    b->data = d;
    b->cap = cap;
    return 0;
}

void ax_wbuf_put(ax_wbuf *b, const void *p, size_t n)
{
    if (ax_wbuf_reserve(b, n))
        return;
    if (n)
        memcpy(b->data + b->len, p, n);
    b->len += n;
}

void ax_wbuf_u8(ax_wbuf *b, uint8_t v) { ax_wbuf_put(b, &v, 1); }

void ax_wbuf_u16(ax_wbuf *b, uint16_t v)
{
    uint8_t t[2];
    be16(t, v);
    ax_wbuf_put(b, t, 2);
}

void ax_wbuf_u32(ax_wbuf *b, uint32_t v)
{
    uint8_t t[4];
    be32(t, v);
    ax_wbuf_put(b, t, 4);
}

void ax_wbuf_u64(ax_wbuf *b, uint64_t v)
{
    uint8_t t[8];
    be32(t, (uint32_t)(v >> 32));
    be32(t + 4, (uint32_t)v);
    ax_wbuf_put(b, t, 8);
}

void ax_wbuf_str(ax_wbuf *b, const char *s, size_t n)
{
    if (n > AX_STR_MAX) {
        if (!b->err)
            b->err = AX_ETOOBIG;
        return;
    }
    if (ax_wbuf_reserve(b, 2 + n))
        return;
    ax_wbuf_u16(b, (uint16_t)n);
    ax_wbuf_put(b, s, n);
}

void ax_wbuf_blob(ax_wbuf *b, const void *p, size_t n)
{
    if (n > UINT32_MAX) {
        if (!b->err)
            b->err = AX_ETOOBIG;
        return;
    }
    if (ax_wbuf_reserve(b, 4 + n))
        return;
    ax_wbuf_u32(b, (uint32_t)n);
    ax_wbuf_put(b, p, n);
}

void ax_wbuf_consume(ax_wbuf *b, size_t n)
{
    if (n >= b->len) {
        b->len = 0;
        if (b->cap > WBUF_KEEP_CAP) {
            ax_free(b->data);
            b->data = NULL;
            b->cap = 0;
        }
        return;
    }
    memmove(b->data, b->data + n, b->len - n);
    b->len -= n;
}

size_t ax_frame_begin(ax_wbuf *b, uint8_t type, uint16_t flags, uint32_t req_id)
{
    size_t start = b->len;
    ax_frame_hdr h = {AX_PROTO_VERSION, type, flags, req_id, 0};
    if (ax_wbuf_reserve(b, AX_FRAME_HDR_SIZE))
        return start;
    ax_frame_hdr_encode(&h, b->data + b->len);
    b->len += AX_FRAME_HDR_SIZE;
    return start;
}

int ax_frame_end(ax_wbuf *b, size_t start, uint32_t max_body)
{
    size_t body;
    int rc = b->err;
    if (!rc && (start > b->len || b->len - start < AX_FRAME_HDR_SIZE))
        return AX_EINVAL; /* not a frame started on this buffer */
    if (!rc) {
        body = b->len - start - AX_FRAME_HDR_SIZE;
        if (body > max_body)
            rc = AX_ETOOBIG;
        else
            be32(b->data + start + 12, (uint32_t)body);
    }
    if (rc) {
        if (start < b->len)
            b->len = start;
        b->err = 0;
    }
    return rc;
}

/* ---- reader ---- */

static const char empty[1] = "";

void ax_rbuf_init(ax_rbuf *r, const void *p, size_t len)
{
    r->p = len ? p : (const uint8_t *)empty;
    r->len = len;
    r->off = 0;
    r->err = 0;
    r->why = NULL;
}

static void rfail(ax_rbuf *r, const char *why)
{
    if (!r->err) {
        r->err = AX_EPROTO;
        r->why = why;
    }
}

/* Returns a pointer to the next n bytes and advances, or NULL (error set). */
static const uint8_t *take(ax_rbuf *r, size_t n, const char *why)
{
    const uint8_t *q;
    if (r->err)
        return NULL;
    if (r->len - r->off < n) {
        rfail(r, why);
        return NULL;
    }
    q = r->p + r->off;
    r->off += n;
    return q;
}

uint8_t ax_rbuf_u8(ax_rbuf *r)
{
    const uint8_t *q = take(r, 1, "body truncated");
    return q ? q[0] : 0;
}

uint16_t ax_rbuf_u16(ax_rbuf *r)
{
    const uint8_t *q = take(r, 2, "body truncated");
    return q ? rd16(q) : 0;
}

uint32_t ax_rbuf_u32(ax_rbuf *r)
{
    const uint8_t *q = take(r, 4, "body truncated");
    return q ? rd32(q) : 0;
}

uint64_t ax_rbuf_u64(ax_rbuf *r)
{
    const uint8_t *q = take(r, 8, "body truncated");
    return q ? (uint64_t)rd32(q) << 32 | rd32(q + 4) : 0;
}

void ax_rbuf_str(ax_rbuf *r, const char **out, size_t *n)
{
    size_t l = ax_rbuf_u16(r);
    const uint8_t *q = take(r, l, "string length runs past the end of the body");
    *out = q ? (const char *)q : empty;
    *n = q ? l : 0;
}

void ax_rbuf_blob(ax_rbuf *r, const void **out, size_t *n)
{
    size_t l = ax_rbuf_u32(r);
    const uint8_t *q = take(r, l, "blob length runs past the end of the body");
    *out = q ? (const void *)q : (const void *)empty;
    *n = q ? l : 0;
}

int ax_rbuf_done(ax_rbuf *r)
{
    if (!r->err && r->off != r->len)
        rfail(r, "trailing bytes");
    return r->err;
}

/* ---- validation ---- */

int ax_name_valid(const char *s, size_t n)
{
    size_t i;
    if (!s || n < 1 || n > AX_NAME_MAX)
        return AX_EINVAL;
    for (i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x21 || (unsigned char)s[i] > 0x7e)
            return AX_EINVAL;
    return AX_OK;
}

int ax_key_valid(const char *s, size_t n)
{
    if (!s || n < 1 || n > AX_KEY_MAX || memchr(s, 0, n))
        return AX_EINVAL;
    return AX_OK;
}

/* Finish a typed decode: 0, or the reader's error with *why set. */
static int finish(ax_rbuf *r, const char **why)
{
    int rc = ax_rbuf_done(r);
    if (rc && why)
        *why = r->why;
    return rc;
}

/* ---- refs and targets ---- */

void ax_put_ref(ax_wbuf *b, const ax_wire_ref *r)
{
    ax_wbuf_str(b, r->node, r->node_len);
    ax_wbuf_u64(b, r->id);
    ax_wbuf_u32(b, r->gen);
}

void ax_get_ref(ax_rbuf *r, ax_wire_ref *out)
{
    ax_wire_ref t;
    ax_rbuf_str(r, &t.node, &t.node_len);
    t.id = ax_rbuf_u64(r);
    t.gen = ax_rbuf_u32(r);
    if (!r->err && t.node_len && ax_name_valid(t.node, t.node_len))
        rfail(r, "ref node is not a valid name");
    if (!r->err)
        *out = t;
}

void ax_put_target(ax_wbuf *b, const ax_wire_target *t)
{
    switch (t->kind) {
    case AX_TGT_REF:
        ax_wbuf_u8(b, t->kind);
        ax_put_ref(b, &t->ref);
        break;
    case AX_TGT_NAME:
        ax_wbuf_u8(b, t->kind);
        ax_wbuf_str(b, t->name, t->name_len);
        break;
    case AX_TGT_KEY:
        ax_wbuf_u8(b, t->kind);
        ax_wbuf_str(b, t->name, t->name_len);
        ax_wbuf_str(b, t->key, t->key_len);
        break;
    default:
        if (!b->err)
            b->err = AX_EINVAL;
    }
}

void ax_get_target(ax_rbuf *r, ax_wire_target *out)
{
    ax_wire_target t;
    memset(&t, 0, sizeof t);
    t.ref.node = t.name = t.key = empty;
    t.kind = ax_rbuf_u8(r);
    switch (r->err ? 0xff : t.kind) {
    case AX_TGT_REF:
        ax_get_ref(r, &t.ref);
        break;
    case AX_TGT_NAME:
        ax_rbuf_str(r, &t.name, &t.name_len);
        if (!r->err && ax_name_valid(t.name, t.name_len))
            rfail(r, "target name is not a valid name");
        break;
    case AX_TGT_KEY:
        ax_rbuf_str(r, &t.name, &t.name_len);
        ax_rbuf_str(r, &t.key, &t.key_len);
        if (!r->err && ax_name_valid(t.name, t.name_len))
            rfail(r, "target type is not a valid name");
        else if (!r->err && ax_key_valid(t.key, t.key_len))
            rfail(r, "target key must be 1..1024 bytes without NUL");
        break;
    default:
        rfail(r, "unknown target kind");
    }
    if (!r->err)
        *out = t;
}

/* ---- typed bodies ---- */

void ax_body_msg_put(ax_wbuf *b, uint8_t type, const ax_body_msg *m)
{
    ax_put_target(b, &m->target);
    ax_wbuf_u64(b, m->epoch);
    ax_wbuf_str(b, m->msg, m->msg_len);
    ax_wbuf_blob(b, m->payload, m->payload_len);
    if (type == AX_T_ASK)
        ax_wbuf_u32(b, m->timeout_ms);
}

int ax_body_msg_get(const void *p, size_t len, uint8_t type, ax_body_msg *m, const char **why)
{
    ax_rbuf r;
    ax_body_msg t;
    int rc;
    if (type != AX_T_TELL && type != AX_T_ASK) {
        if (why)
            *why = "not a TELL or ASK frame";
        return AX_EPROTO;
    }
    memset(&t, 0, sizeof t);
    ax_rbuf_init(&r, p, len);
    ax_get_target(&r, &t.target);
    t.epoch = ax_rbuf_u64(&r);
    ax_rbuf_str(&r, &t.msg, &t.msg_len);
    ax_rbuf_blob(&r, &t.payload, &t.payload_len);
    if (type == AX_T_ASK) {
        t.timeout_ms = ax_rbuf_u32(&r);
        if (!r.err && t.timeout_ms == 0)
            rfail(&r, "ASK timeout_ms must be > 0");
    }
    if (!r.err && ax_name_valid(t.msg, t.msg_len))
        rfail(&r, "message name is not a valid name");
    if ((rc = finish(&r, why)))
        return rc;
    *m = t;
    return 0;
}

void ax_body_spawn_put(ax_wbuf *b, const ax_body_spawn *s)
{
    ax_wbuf_str(b, s->type, s->type_len);
    ax_wbuf_str(b, s->name, s->name_len);
    ax_wbuf_blob(b, s->config, s->config_len);
}

int ax_body_spawn_get(const void *p, size_t len, ax_body_spawn *s, const char **why)
{
    ax_rbuf r;
    ax_body_spawn t;
    const void *cfg;
    int rc;
    ax_rbuf_init(&r, p, len);
    ax_rbuf_str(&r, &t.type, &t.type_len);
    ax_rbuf_str(&r, &t.name, &t.name_len);
    ax_rbuf_blob(&r, &cfg, &t.config_len);
    t.config = cfg;
    if (!r.err && ax_name_valid(t.type, t.type_len))
        rfail(&r, "actor type is not a valid name");
    else if (!r.err && t.name_len && ax_name_valid(t.name, t.name_len))
        rfail(&r, "actor name is not a valid name");
    else if (!r.err && t.config_len > AX_CONFIG_MAX)
        rfail(&r, "spawn config longer than 64 KiB");
    if ((rc = finish(&r, why)))
        return rc;
    *s = t;
    return 0;
}

void ax_body_error_put(ax_wbuf *b, int32_t code, const char *msg)
{
    size_t n = msg ? strlen(msg) : 0;
    ax_wbuf_u32(b, (uint32_t)code);
    /* A diagnostic is better cut short than turned into a second error. */
    ax_wbuf_str(b, msg ? msg : empty, n > AX_STR_MAX ? AX_STR_MAX : n);
}

int ax_body_error_get(const void *p, size_t len, ax_body_error *e, const char **why)
{
    ax_rbuf r;
    ax_body_error t;
    int rc;
    ax_rbuf_init(&r, p, len);
    t.code = (int32_t)ax_rbuf_u32(&r);
    ax_rbuf_str(&r, &t.msg, &t.msg_len);
    if (!r.err && t.code >= 0)
        rfail(&r, "ERROR code must be negative");
    if ((rc = finish(&r, why)))
        return rc;
    *e = t;
    return 0;
}

void ax_body_hello_put(ax_wbuf *b, const ax_body_hello *h)
{
    ax_wbuf_u16(b, h->min_ver);
    ax_wbuf_u16(b, h->max_ver);
    ax_wbuf_str(b, h->name, h->name_len);
}

int ax_body_hello_get(const void *p, size_t len, ax_body_hello *h, const char **why)
{
    ax_rbuf r;
    ax_body_hello t;
    int rc;
    ax_rbuf_init(&r, p, len);
    t.min_ver = ax_rbuf_u16(&r);
    t.max_ver = ax_rbuf_u16(&r);
    ax_rbuf_str(&r, &t.name, &t.name_len);
    if (!r.err && (t.min_ver < 1 || t.min_ver > t.max_ver))
        rfail(&r, "HELLO version range is empty or starts at 0");
    else if (!r.err && t.name_len && ax_name_valid(t.name, t.name_len))
        rfail(&r, "HELLO client name is not a valid name");
    if ((rc = finish(&r, why)))
        return rc;
    *h = t;
    return 0;
}

void ax_body_hello_ok_put(ax_wbuf *b, const ax_body_hello_ok *h)
{
    ax_wbuf_u16(b, h->version);
    ax_wbuf_str(b, h->node_id, h->node_id_len);
    ax_wbuf_u32(b, h->max_frame);
}

int ax_body_hello_ok_get(const void *p, size_t len, ax_body_hello_ok *h, const char **why)
{
    ax_rbuf r;
    ax_body_hello_ok t;
    int rc;
    ax_rbuf_init(&r, p, len);
    t.version = ax_rbuf_u16(&r);
    ax_rbuf_str(&r, &t.node_id, &t.node_id_len);
    t.max_frame = ax_rbuf_u32(&r);
    if (!r.err && t.version < 1)
        rfail(&r, "HELLO_OK version is 0");
    else if (!r.err && ax_name_valid(t.node_id, t.node_id_len))
        rfail(&r, "HELLO_OK node id is not a valid name");
    else if (!r.err && (t.max_frame < AX_FRAME_MAX_MIN || t.max_frame > AX_FRAME_MAX_LIMIT))
        rfail(&r, "HELLO_OK max_frame outside 1 KiB..64 MiB");
    if ((rc = finish(&r, why)))
        return rc;
    *h = t;
    return 0;
}

int ax_body_ref_get(const void *p, size_t len, ax_wire_ref *ref, const char **why)
{
    ax_rbuf r;
    ax_wire_ref t;
    int rc;
    ax_rbuf_init(&r, p, len);
    ax_get_ref(&r, &t);
    if ((rc = finish(&r, why)))
        return rc;
    *ref = t;
    return 0;
}

int ax_body_target_get(const void *p, size_t len, ax_wire_target *tgt, const char **why)
{
    ax_rbuf r;
    ax_wire_target t;
    int rc;
    ax_rbuf_init(&r, p, len);
    ax_get_target(&r, &t);
    if ((rc = finish(&r, why)))
        return rc;
    *tgt = t;
    return 0;
}

int ax_body_actors_get(const void *p, size_t len, ax_actors_query *q, const char **why)
{
    ax_rbuf r;
    ax_actors_query t;
    int rc;
    memset(&t, 0, sizeof t);
    if (len == 0) {
        *q = t;
        return 0;
    }
    ax_rbuf_init(&r, p, len);
    t.cursor = ax_rbuf_u64(&r);
    t.limit = ax_rbuf_u32(&r);
    ax_rbuf_str(&r, &t.type, &t.type_len);
    ax_rbuf_str(&r, &t.name, &t.name_len);
    ax_rbuf_str(&r, &t.state, &t.state_len);
    ax_rbuf_str(&r, &t.key, &t.key_len);
    if (!r.err && ((t.type_len && ax_name_valid(t.type, t.type_len)) || (t.name_len && ax_name_valid(t.name, t.name_len)) ||
                   (t.state_len && ax_name_valid(t.state, t.state_len)) || (t.key_len && memchr(t.key, 0, t.key_len)) ||
                   t.key_len > AX_KEY_MAX || (t.cursor >> 48) != 0))
        rfail(&r, "ACTORS: bad filter or cursor");
    if ((rc = finish(&r, why)))
        return rc;
    *q = t;
    return 0;
}

void ax_body_actors_put(ax_wbuf *b, const ax_actors_query *q)
{
    ax_wbuf_u64(b, q->cursor);
    ax_wbuf_u32(b, q->limit);
    ax_wbuf_str(b, q->type, q->type_len);
    ax_wbuf_str(b, q->name, q->name_len);
    ax_wbuf_str(b, q->state, q->state_len);
    ax_wbuf_str(b, q->key, q->key_len);
}

int ax_body_exit_get(const void *p, size_t len, ax_wire_target *tgt, const char **reason, size_t *reason_len,
                     const char **why)
{
    ax_rbuf r;
    ax_wire_target t;
    const char *s = NULL;
    size_t n = 0;
    int rc;
    ax_rbuf_init(&r, p, len);
    ax_get_target(&r, &t);
    ax_rbuf_str(&r, &s, &n);
    if (!r.err && ax_name_valid(s, n) != 0)
        rfail(&r, "EXIT reason is not a valid name");
    if ((rc = finish(&r, why)))
        return rc;
    *tgt = t;
    *reason = s;
    *reason_len = n;
    return 0;
}

int ax_body_blob_get(const void *p, size_t len, const void **out, size_t *n, const char **why)
{
    ax_rbuf r;
    const void *q;
    size_t l;
    int rc;
    ax_rbuf_init(&r, p, len);
    ax_rbuf_blob(&r, &q, &l);
    if ((rc = finish(&r, why)))
        return rc;
    *out = q;
    *n = l;
    return 0;
}

int ax_body_plugin_get(const void *p, size_t len, uint8_t type, const char **s, size_t *n,
                       const char **why)
{
    ax_rbuf r;
    const char *q;
    size_t l;
    int rc;
    ax_rbuf_init(&r, p, len);
    ax_rbuf_str(&r, &q, &l);
    if (type == AX_T_PLUGIN_LOAD) {
        if (!r.err && (l < 1 || l > AX_PATH_MAX || memchr(q, 0, l)))
            rfail(&r, "plugin path must be 1..4096 bytes without NUL");
    } else if (type == AX_T_PLUGIN_UNLOAD) {
        if (!r.err && ax_name_valid(q, l))
            rfail(&r, "plugin name is not a valid name");
    } else {
        rfail(&r, "not a PLUGIN_LOAD or PLUGIN_UNLOAD frame");
    }
    if ((rc = finish(&r, why)))
        return rc;
    *s = q;
    *n = l;
    return 0;
}

int ax_body_validate(uint8_t type, const void *p, size_t len, const char **why)
{
    union {
        ax_body_msg msg;
        ax_body_spawn spawn;
        ax_body_error err;
        ax_body_hello hello;
        ax_body_hello_ok hello_ok;
        ax_wire_ref ref;
        ax_wire_target tgt;
    } u;
    const void *q;
    const char *s;
    size_t n;
    switch (type) {
    case AX_T_HELLO: return ax_body_hello_get(p, len, &u.hello, why);
    case AX_T_HELLO_OK: return ax_body_hello_ok_get(p, len, &u.hello_ok, why);
    case AX_T_ERROR: return ax_body_error_get(p, len, &u.err, why);
    case AX_T_SPAWN: return ax_body_spawn_get(p, len, &u.spawn, why);
    case AX_T_REF: return ax_body_ref_get(p, len, &u.ref, why);
    case AX_T_TELL:
    case AX_T_ASK: return ax_body_msg_get(p, len, type, &u.msg, why);
    case AX_T_STOP:
    case AX_T_MONITOR:
    case AX_T_RESOLVE: return ax_body_target_get(p, len, &u.tgt, why);
    case AX_T_EXIT: return ax_body_exit_get(p, len, &u.tgt, &s, &n, why);
    case AX_T_REPLY:
    case AX_T_EVENT:
    case AX_T_JSON: return ax_body_blob_get(p, len, &q, &n, why);
    case AX_T_SUBSCRIBE: {
        ax_rbuf r;
        ax_rbuf_init(&r, p, len);
        ax_rbuf_str(&r, &s, &n);
        if (ax_rbuf_done(&r) != 0) {
            if (why)
                *why = r.why;
            return AX_EPROTO;
        }
        if (n && ax_name_valid(s, n) != 0) {
            if (why)
                *why = "SUBSCRIBE filter is not a valid actor name";
            return AX_EPROTO;
        }
        return 0;
    }
    case AX_T_LOG_LEVEL: {
        ax_rbuf r;
        ax_rbuf_init(&r, p, len);
        ax_rbuf_str(&r, &s, &n);
        if (ax_rbuf_done(&r) != 0) {
            if (why)
                *why = r.why;
            return AX_EPROTO;
        }
        if (ax_name_valid(s, n) != 0 || n > 16) {
            if (why)
                *why = "LOG_LEVEL level must be a name of at most 16 bytes";
            return AX_EPROTO;
        }
        return 0;
    }
    case AX_T_DRAIN: {
        ax_rbuf r;
        ax_rbuf_init(&r, p, len);
        uint32_t ms = ax_rbuf_u32(&r);
        uint8_t fl = ax_rbuf_u8(&r);
        if (ax_rbuf_done(&r) != 0) {
            if (why)
                *why = r.why;
            return AX_EPROTO;
        }
        if (ms > AX_DRAIN_TIMEOUT_MAX || (fl & ~AX_DRAIN_STAY)) {
            if (why)
                *why = "DRAIN timeout_ms must be at most 3600000 and flags only STAY (0x01)";
            return AX_EPROTO;
        }
        return 0;
    }
    case AX_T_DEMONITOR:
        if (len == 8)
            return 0;
        if (why)
            *why = "DEMONITOR body must be a u64 monitor ref";
        return AX_EPROTO;
    case AX_T_PLUGIN_LOAD:
    case AX_T_PLUGIN_UNLOAD: return ax_body_plugin_get(p, len, type, &s, &n, why);
    case AX_T_OK:
    case AX_T_UNSUBSCRIBE:
    case AX_T_ACTORS: {
        ax_actors_query aq;
        return ax_body_actors_get(p, len, &aq, why);
    }
    case AX_T_STATUS:
    case AX_T_PLUGINS:
    case AX_T_NODES:
    case AX_T_SHARDS:
    case AX_T_UNDRAIN:
    case AX_T_CLUSTER_STATUS:
        if (len == 0)
            return 0;
        if (why)
            *why = "body must be empty for this frame type";
        return AX_EPROTO;
    }
    if (why)
        *why = "unknown frame type";
    return AX_EPROTO;
}
