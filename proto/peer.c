/* The peer protocol codec (see peer.h and PROTOCOL.md "Peer protocol"). Input is
 * hostile: every read is bounds-checked through ax_rbuf, sizes are checked before use. */
#include "peer.h"

#include <string.h>

static void be16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}
static void be32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (24 - 8 * i));
}
static void be64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (56 - 8 * i));
}
static uint16_t rd16(const uint8_t *p) { return (uint16_t)(p[0] << 8 | p[1]); }
static uint32_t rd32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}
static uint64_t rd64(const uint8_t *p) { return (uint64_t)rd32(p) << 32 | rd32(p + 4); }

const char *ax_peer_type_name(uint8_t type)
{
    switch (type) {
    case AX_PT_HELLO: return "HELLO";
    case AX_PT_HELLO_ACK: return "HELLO_ACK";
    case AX_PT_AUTH: return "AUTH";
    case AX_PT_AUTH_OK: return "AUTH_OK";
    case AX_PT_REFUSE: return "REFUSE";
    case AX_PT_PING: return "PING";
    case AX_PT_PONG: return "PONG";
    case AX_PT_CLOSE: return "CLOSE";
    case AX_PT_MONITOR: return "MONITOR";
    case AX_PT_DEMONITOR: return "DEMONITOR";
    case AX_PT_DOWN: return "DOWN";
    case AX_PT_EPOCHS: return "EPOCHS";
    case AX_PT_RELEASED: return "RELEASED";
    case AX_PT_STATUS_REQ: return "STATUS_REQ";
    case AX_PT_STATUS: return "STATUS";
    case AX_PT_TELL: return "TELL";
    case AX_PT_ASK: return "ASK";
    case AX_PT_REPLY: return "REPLY";
    case AX_PT_KEYED: return "KEYED";
    }
    return "?";
}

int ax_peer_type_known(uint8_t type) { return ax_peer_type_name(type)[0] != '?'; }
int ax_peer_type_is_handshake(uint8_t type) { return type >= AX_PT_HELLO && type <= AX_PT_REFUSE; }
int ax_peer_type_is_data(uint8_t type) { return type >= 0x60 && type <= 0x7f; }

void ax_peer_hdr_encode(const ax_peer_hdr *h, uint8_t out[AX_PEER_HDR_SIZE])
{
    be16(out, AX_PEER_MAGIC);
    out[2] = h->version;
    out[3] = h->type;
    be16(out + 4, h->flags);
    be16(out + 6, 0);
    be32(out + 8, h->session);
    be32(out + 12, h->body_len);
    be64(out + 16, h->seq);
    memcpy(out + AX_PEER_MAC_OFF, h->mac, AX_PEER_MAC_SIZE);
}

int ax_peer_hdr_decode(const uint8_t *p, size_t len, uint32_t max_body, ax_peer_hdr *h, const char **why)
{
    const char *w = NULL;
    int rc = AX_EPROTO;
    if (len < AX_PEER_HDR_SIZE)
        return 1;
    if (rd16(p) != AX_PEER_MAGIC)
        w = "bad magic (not an axactor peer frame)";
    else if (p[2] < AX_PEER_VERSION_MIN || p[2] > AX_PEER_VERSION)
        w = "unsupported peer protocol version";
    else if (!ax_peer_type_known(p[3]))
        w = "unknown peer frame type";
    else if (rd16(p + 4) != 0)
        w = "unknown flags";
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
    h->version = p[2];
    h->type = p[3];
    h->flags = 0;
    h->session = rd32(p + 8);
    h->body_len = rd32(p + 12);
    h->seq = rd64(p + 16);
    memcpy(h->mac, p + AX_PEER_MAC_OFF, AX_PEER_MAC_SIZE);
    return 0;
}

size_t ax_peer_frame_begin(ax_wbuf *b, uint8_t type, uint32_t session)
{
    size_t start = b->len;
    ax_peer_hdr h;
    memset(&h, 0, sizeof h);
    h.version = AX_PEER_VERSION;
    h.type = type;
    h.session = session;
    if (ax_wbuf_reserve(b, AX_PEER_HDR_SIZE))
        return start;
    ax_peer_hdr_encode(&h, b->data + b->len);
    b->len += AX_PEER_HDR_SIZE;
    return start;
}

int ax_peer_frame_end(ax_wbuf *b, size_t start, uint32_t max_body)
{
    int rc = b->err;
    if (!rc && (start > b->len || b->len - start < AX_PEER_HDR_SIZE))
        return AX_EINVAL;
    if (!rc) {
        size_t body = b->len - start - AX_PEER_HDR_SIZE;
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

/* ---- bodies ---- */

static void rbuf_fixed(ax_rbuf *r, size_t n, const uint8_t **out)
{
    if (r->err)
        return;
    if (r->len - r->off < n) {
        r->err = AX_EPROTO;
        r->why = "field runs past the end of the body";
        return;
    }
    *out = r->p + r->off;
    r->off += n;
}

static int fail(ax_rbuf *r, const char *w)
{
    if (!r->err) {
        r->err = AX_EPROTO;
        r->why = w;
    }
    return AX_EPROTO;
}

static int finish(ax_rbuf *r, const char **why)
{
    if (ax_rbuf_done(r) != 0) {
        if (why)
            *why = r->why ? r->why : "malformed body";
        return AX_EPROTO;
    }
    return 0;
}

void ax_peer_hello_put(ax_wbuf *b, const ax_peer_hello *h)
{
    ax_wbuf_u16(b, h->min_ver);
    ax_wbuf_u16(b, h->max_ver);
    ax_wbuf_u32(b, h->features);
    ax_wbuf_str(b, h->wire_id, h->wire_id_len);
    ax_wbuf_str(b, h->to_name, h->to_name_len);
    ax_wbuf_put(b, h->nonce, AX_PEER_NONCE_SIZE);
    ax_wbuf_u32(b, h->shard_count);
    ax_wbuf_str(b, h->store, h->store_len);
}

/* The lease store identity: 1..255 printable ASCII bytes. */
static int store_id_valid(const char *s, size_t n)
{
    if (!n || n > AX_PEER_STORE_MAX)
        return 0;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 || (unsigned char)s[i] > 0x7e)
            return 0;
    return 1;
}

int ax_peer_hello_get(const void *p, size_t n, ax_peer_hello *h, const char **why)
{
    ax_rbuf r;
    ax_peer_hello t;
    const uint8_t *nonce = NULL;
    ax_rbuf_init(&r, p, n);
    t.min_ver = ax_rbuf_u16(&r);
    t.max_ver = ax_rbuf_u16(&r);
    t.features = ax_rbuf_u32(&r);
    ax_rbuf_str(&r, &t.wire_id, &t.wire_id_len);
    ax_rbuf_str(&r, &t.to_name, &t.to_name_len);
    rbuf_fixed(&r, AX_PEER_NONCE_SIZE, &nonce);
    t.shard_count = ax_rbuf_u32(&r);
    ax_rbuf_str(&r, &t.store, &t.store_len);
    if (!r.err) {
        if (t.min_ver < 1 || t.min_ver > t.max_ver)
            fail(&r, "HELLO: bad version range");
        else if (!t.shard_count || !store_id_valid(t.store, t.store_len))
            fail(&r, "HELLO: bad shard count or lease store identity");
        else if (ax_name_valid(t.wire_id, t.wire_id_len) != 0)
            fail(&r, "HELLO: wire id is not a valid name");
        else if (t.to_name_len && ax_name_valid(t.to_name, t.to_name_len) != 0)
            fail(&r, "HELLO: to_name is not a valid name");
    }
    if (finish(&r, why))
        return AX_EPROTO;
    t.nonce = nonce;
    *h = t;
    return 0;
}

void ax_peer_hello_ack_put(ax_wbuf *b, const ax_peer_hello_ack *h)
{
    ax_wbuf_u16(b, h->version);
    ax_wbuf_u32(b, h->features);
    ax_wbuf_str(b, h->wire_id, h->wire_id_len);
    ax_wbuf_put(b, h->nonce, AX_PEER_NONCE_SIZE);
    ax_wbuf_put(b, h->proof, AX_PEER_PROOF_SIZE);
    ax_wbuf_u32(b, h->shard_count);
    ax_wbuf_str(b, h->store, h->store_len);
}

int ax_peer_hello_ack_get(const void *p, size_t n, ax_peer_hello_ack *h, const char **why)
{
    ax_rbuf r;
    ax_peer_hello_ack t;
    const uint8_t *nonce = NULL, *proof = NULL;
    ax_rbuf_init(&r, p, n);
    t.version = ax_rbuf_u16(&r);
    t.features = ax_rbuf_u32(&r);
    ax_rbuf_str(&r, &t.wire_id, &t.wire_id_len);
    rbuf_fixed(&r, AX_PEER_NONCE_SIZE, &nonce);
    rbuf_fixed(&r, AX_PEER_PROOF_SIZE, &proof);
    t.shard_count = ax_rbuf_u32(&r);
    ax_rbuf_str(&r, &t.store, &t.store_len);
    if (!r.err) {
        if (t.version < 1)
            fail(&r, "HELLO_ACK: version 0");
        else if (!t.shard_count || !store_id_valid(t.store, t.store_len))
            fail(&r, "HELLO_ACK: bad shard count or lease store identity");
        else if (ax_name_valid(t.wire_id, t.wire_id_len) != 0)
            fail(&r, "HELLO_ACK: wire id is not a valid name");
    }
    if (finish(&r, why))
        return AX_EPROTO;
    t.nonce = nonce;
    t.proof = proof;
    *h = t;
    return 0;
}

int ax_peer_auth_get(const void *p, size_t n, const uint8_t **proof, const char **why)
{
    ax_rbuf r;
    const uint8_t *q = NULL;
    ax_rbuf_init(&r, p, n);
    rbuf_fixed(&r, AX_PEER_PROOF_SIZE, &q);
    if (finish(&r, why))
        return AX_EPROTO;
    *proof = q;
    return 0;
}

void ax_peer_reason_put(ax_wbuf *b, int32_t code, const char *reason)
{
    size_t n = reason ? strlen(reason) : 0;
    ax_wbuf_u32(b, (uint32_t)code);
    ax_wbuf_str(b, reason, n > 1024 ? 1024 : n);
}

int ax_peer_reason_get(const void *p, size_t n, ax_peer_reason *out, const char **why)
{
    ax_rbuf r;
    ax_peer_reason t;
    ax_rbuf_init(&r, p, n);
    t.code = (int32_t)ax_rbuf_u32(&r);
    ax_rbuf_str(&r, &t.reason, &t.reason_len);
    if (!r.err && (t.code >= 0 || t.reason_len > 1024))
        fail(&r, "REFUSE/CLOSE: code must be negative, reason at most 1024 bytes");
    if (finish(&r, why))
        return AX_EPROTO;
    *out = t;
    return 0;
}

int ax_peer_ping_get(const void *p, size_t n, ax_peer_ping *pg, const char **why)
{
    ax_rbuf r;
    ax_peer_ping t;
    ax_rbuf_init(&r, p, n);
    t.id = ax_rbuf_u64(&r);
    t.sent_us = ax_rbuf_u64(&r);
    t.flags = ax_rbuf_u8(&r);
    if (!r.err && (t.flags & ~AX_PING_KNOWN))
        fail(&r, "PING: unknown flags");
    if (finish(&r, why))
        return AX_EPROTO;
    *pg = t;
    return 0;
}

void ax_peer_rec_put(ax_wbuf *b, uint8_t type, const ax_peer_rec *r)
{
    switch (type) {
    case AX_PT_MONITOR:
        ax_wbuf_u64(b, r->mref);
        ax_wbuf_u64(b, r->from_id);
        ax_wbuf_u32(b, r->from_gen);
        ax_wbuf_u64(b, r->to_id);
        ax_wbuf_u32(b, r->to_gen);
        break;
    case AX_PT_DEMONITOR:
        ax_wbuf_u64(b, r->mref);
        break;
    case AX_PT_EPOCHS:
    case AX_PT_RELEASED:
        ax_wbuf_u32(b, r->shard);
        ax_wbuf_u64(b, r->epoch);
        break;
    case AX_PT_STATUS_REQ:
        ax_wbuf_u64(b, r->req);
        break;
    case AX_PT_STATUS:
        ax_wbuf_u64(b, r->req);
        ax_wbuf_blob(b, r->payload, r->payload_len);
        break;
    case AX_PT_DOWN:
        ax_wbuf_u64(b, r->mref);
        ax_wbuf_u64(b, r->to_id);
        ax_wbuf_u32(b, r->to_gen);
        ax_wbuf_str(b, r->msg, r->msg_len);
        break;
    case AX_PT_ASK:
        ax_wbuf_u64(b, r->req);
        /* fall through */
    case AX_PT_TELL:
        ax_wbuf_u64(b, r->to_id);
        ax_wbuf_u32(b, r->to_gen);
        ax_wbuf_u64(b, r->from_id);
        ax_wbuf_u32(b, r->from_gen);
        if (type == AX_PT_ASK)
            ax_wbuf_u32(b, r->timeout_ms);
        ax_wbuf_str(b, r->msg, r->msg_len);
        ax_wbuf_blob(b, r->payload, r->payload_len);
        break;
    case AX_PT_REPLY:
        ax_wbuf_u64(b, r->req);
        ax_wbuf_u32(b, (uint32_t)r->status);
        ax_wbuf_blob(b, r->payload, r->payload_len);
        break;
    case AX_PT_KEYED:
        ax_wbuf_u64(b, r->req);
        ax_wbuf_u64(b, r->epoch);
        ax_wbuf_u8(b, r->kflags);
        ax_wbuf_str(b, r->ktype, r->ktype_len);
        ax_wbuf_str(b, r->key, r->key_len);
        ax_wbuf_u64(b, r->from_id);
        ax_wbuf_u32(b, r->from_gen);
        ax_wbuf_u32(b, r->timeout_ms);
        ax_wbuf_str(b, r->msg, r->msg_len);
        ax_wbuf_blob(b, r->payload, r->payload_len);
        break;
    default:
        if (!b->err)
            b->err = AX_EINVAL;
    }
}

int ax_peer_rec_next(ax_rbuf *r, uint8_t type, ax_peer_rec *out, const char **why)
{
    ax_peer_rec t;
    if (r->err)
        goto bad;
    if (r->off == r->len)
        return 0;
    memset(&t, 0, sizeof t);
    switch (type) {
    case AX_PT_MONITOR:
        t.mref = ax_rbuf_u64(r);
        t.from_id = ax_rbuf_u64(r);
        t.from_gen = ax_rbuf_u32(r);
        t.to_id = ax_rbuf_u64(r);
        t.to_gen = ax_rbuf_u32(r);
        break;
    case AX_PT_DEMONITOR:
        t.mref = ax_rbuf_u64(r);
        break;
    case AX_PT_EPOCHS:
    case AX_PT_RELEASED:
        t.shard = ax_rbuf_u32(r);
        t.epoch = ax_rbuf_u64(r);
        if (!r->err && (t.epoch == 0 || t.epoch >= (1ull << 53)))
            fail(r, type == AX_PT_EPOCHS ? "EPOCHS: epoch must be 1..2^53-1" : "RELEASED: epoch must be 1..2^53-1");
        break;
    case AX_PT_STATUS_REQ:
        t.req = ax_rbuf_u64(r);
        if (!r->err && t.req == 0)
            fail(r, "STATUS_REQ: req is 0");
        break;
    case AX_PT_STATUS:
        t.req = ax_rbuf_u64(r);
        ax_rbuf_blob(r, &t.payload, &t.payload_len);
        if (!r->err && (t.req == 0 || t.payload_len == 0 || memchr(t.payload, 0, t.payload_len)))
            fail(r, "STATUS: req 0, or the document is empty or holds a NUL");
        break;
    case AX_PT_DOWN:
        t.mref = ax_rbuf_u64(r);
        t.to_id = ax_rbuf_u64(r);
        t.to_gen = ax_rbuf_u32(r);
        ax_rbuf_str(r, &t.msg, &t.msg_len);
        if (!r->err && (t.msg_len == 0 || t.msg_len > 1024 || memchr(t.msg, 0, t.msg_len)))
            fail(r, "DOWN: reason must be 1..1024 bytes without NUL");
        break;
    case AX_PT_ASK:
        t.req = ax_rbuf_u64(r);
        /* fall through */
    case AX_PT_TELL:
        t.to_id = ax_rbuf_u64(r);
        t.to_gen = ax_rbuf_u32(r);
        t.from_id = ax_rbuf_u64(r);
        t.from_gen = ax_rbuf_u32(r);
        if (type == AX_PT_ASK)
            t.timeout_ms = ax_rbuf_u32(r);
        ax_rbuf_str(r, &t.msg, &t.msg_len);
        ax_rbuf_blob(r, &t.payload, &t.payload_len);
        if (!r->err && ax_name_valid(t.msg, t.msg_len) != 0)
            fail(r, "TELL/ASK: message name is not a valid name");
        else if (!r->err && type == AX_PT_ASK && t.timeout_ms == 0)
            fail(r, "ASK: timeout_ms is 0");
        break;
    case AX_PT_REPLY:
        t.req = ax_rbuf_u64(r);
        t.status = (int32_t)ax_rbuf_u32(r);
        ax_rbuf_blob(r, &t.payload, &t.payload_len);
        if (!r->err && t.status > 0)
            fail(r, "REPLY: positive status");
        break;
    case AX_PT_KEYED:
        t.req = ax_rbuf_u64(r);
        t.epoch = ax_rbuf_u64(r);
        t.kflags = ax_rbuf_u8(r);
        ax_rbuf_str(r, &t.ktype, &t.ktype_len);
        ax_rbuf_str(r, &t.key, &t.key_len);
        t.from_id = ax_rbuf_u64(r);
        t.from_gen = ax_rbuf_u32(r);
        t.timeout_ms = ax_rbuf_u32(r);
        ax_rbuf_str(r, &t.msg, &t.msg_len);
        ax_rbuf_blob(r, &t.payload, &t.payload_len);
        if (r->err)
            break;
        if (t.kflags & ~AX_PK_KNOWN)
            fail(r, "KEYED: unknown flags");
        else if (ax_name_valid(t.ktype, t.ktype_len) != 0 || ax_key_valid(t.key, t.key_len) != 0)
            fail(r, "KEYED: invalid type name or key");
        else if (ax_name_valid(t.msg, t.msg_len) != 0)
            fail(r, "KEYED: message name is not a valid name");
        else if ((t.kflags & AX_PK_ASK) && (t.req == 0 || t.timeout_ms == 0))
            fail(r, "KEYED: an ask needs a request id and a timeout");
        break;
    default:
        fail(r, "frame type has no records");
    }
    if (r->err)
        goto bad;
    *out = t;
    return 1;
bad:
    if (why)
        *why = r->why ? r->why : "malformed record";
    return AX_EPROTO;
}

static int records_validate(uint8_t type, const void *p, size_t n, const char **why)
{
    ax_rbuf r;
    ax_peer_rec rec;
    int rc, count = 0;
    ax_rbuf_init(&r, p, n);
    while ((rc = ax_peer_rec_next(&r, type, &rec, why)) == 1)
        count++;
    if (rc < 0)
        return rc;
    if (!count) {
        if (why)
            *why = "frame carries no record";
        return AX_EPROTO;
    }
    return 0;
}

int ax_peer_body_validate(uint8_t type, const void *p, size_t n, const char **why)
{
    union {
        ax_peer_hello h;
        ax_peer_hello_ack a;
        ax_peer_reason r;
        ax_peer_ping g;
        const uint8_t *proof;
    } u;
    switch (type) {
    case AX_PT_HELLO: return ax_peer_hello_get(p, n, &u.h, why);
    case AX_PT_HELLO_ACK: return ax_peer_hello_ack_get(p, n, &u.a, why);
    case AX_PT_AUTH: return ax_peer_auth_get(p, n, &u.proof, why);
    case AX_PT_REFUSE:
    case AX_PT_CLOSE: return ax_peer_reason_get(p, n, &u.r, why);
    case AX_PT_PING:
    case AX_PT_PONG: return ax_peer_ping_get(p, n, &u.g, why);
    case AX_PT_AUTH_OK:
        if (n) {
            if (why)
                *why = "AUTH_OK has an empty body";
            return AX_EPROTO;
        }
        return 0;
    case AX_PT_MONITOR:
    case AX_PT_DEMONITOR:
    case AX_PT_EPOCHS:
    case AX_PT_RELEASED:
    case AX_PT_STATUS_REQ:
    case AX_PT_STATUS:
    case AX_PT_DOWN:
    case AX_PT_TELL:
    case AX_PT_ASK:
    case AX_PT_REPLY:
    case AX_PT_KEYED: return records_validate(type, p, n, why);
    }
    if (why)
        *why = "unknown peer frame type";
    return AX_EPROTO;
}
