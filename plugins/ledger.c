/* Durable keyed actors (plugin ABI 1.9), the example: their state survives failover,
 * handover, idle reaps and restarts, and an acknowledged ask is in the store.
 *
 *   "ledger"   (state codec) a set of request ids: "add" ID (a decimal u64) records it
 *              once (a retried add is not counted twice) and answers the count; "count";
 *              "has" ID answers 1 or 0; "ids" answers them comma-separated; "epoch"
 *              answers the fencing token; "forget" deletes the record and stops.
 *   "dcounter" (state codec) a total: "add" N answers the new total; "get".
 *   "register" (decode only: it writes with ax_persist itself) "set" BYTES, "get".
 *
 *   axctl ask-key ledger acct-7 add 1001      -> 1
 *   axctl ask-key ledger acct-7 add 1001      -> 1   (the same request again)
 *   kill -9 the owner; on the next owner:
 *   axctl ask-key ledger acct-7 count         -> 1
 *   axctl forget ledger acct-7                -> the record is gone */
#include <stdlib.h>
#include <string.h>

#include "axactor/plugin.h"

#define LEDGER_MAGIC 0x4c454431u /* "LED1" */
#define LEDGER_MAX_IDS 100000u

typedef struct ledger {
    uint64_t *ids;
    uint32_t n, cap;
} ledger;

static void put_u32(unsigned char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}
static uint32_t get_u32(const unsigned char *p)
{
    uint32_t v = 0;
    for (int i = 0; i < 4; i++)
        v |= (uint32_t)p[i] << (8 * i);
    return v;
}
static void put_u64(unsigned char *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}
static uint64_t get_u64(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v |= (uint64_t)p[i] << (8 * i);
    return v;
}

static int parse_u64(const ax_msg *m, uint64_t *out)
{
    int64_t v;
    if (ax_msg_i64(m, &v) != AX_OK || v < 0)
        return AX_EINVAL;
    *out = (uint64_t)v;
    return AX_OK;
}

static int ledger_find(const ledger *l, uint64_t id)
{
    for (uint32_t i = 0; i < l->n; i++)
        if (l->ids[i] == id)
            return 1;
    return 0;
}

static int ledger_push(ledger *l, uint64_t id)
{
    if (l->n == LEDGER_MAX_IDS)
        return AX_ETOOBIG;
    if (l->n == l->cap) {
        uint32_t cap = l->cap ? l->cap * 2 : 16;
        uint64_t *v = realloc(l->ids, cap * sizeof *v);
        if (!v)
            return AX_ENOMEM;
        l->ids = v;
        l->cap = cap;
    }
    l->ids[l->n++] = id;
    return AX_OK;
}

static int ledger_encode(ax_ctx *cx, const ledger *l, void *out, size_t cap, size_t *len)
{
    (void)cx;
    size_t need = 8 + (size_t)l->n * 8;
    if (need > cap)
        return AX_ETOOBIG;
    unsigned char *p = out;
    put_u32(p, LEDGER_MAGIC);
    put_u32(p + 4, l->n);
    for (uint32_t i = 0; i < l->n; i++)
        put_u64(p + 8 + 8 * (size_t)i, l->ids[i]);
    *len = need;
    return AX_OK;
}

static int ledger_decode(ax_ctx *cx, ledger *l, const void *data, size_t n)
{
    (void)cx;
    const unsigned char *p = data;
    if (n < 8 || get_u32(p) != LEDGER_MAGIC)
        return AX_EPROTO;
    uint32_t count = get_u32(p + 4);
    if (count > LEDGER_MAX_IDS || n != 8 + (size_t)count * 8)
        return AX_EPROTO;
    for (uint32_t i = 0; i < count; i++)
        if (ledger_push(l, get_u64(p + 8 + 8 * (size_t)i)) != AX_OK)
            return AX_ENOMEM;
    return AX_OK;
}

static void ledger_stop(ax_ctx *cx, ledger *l, const char *reason)
{
    (void)cx, (void)reason;
    free(l->ids);
    l->ids = NULL;
    l->n = l->cap = 0;
}

static int ledger_add(ax_ctx *cx, ledger *l, const ax_msg *m)
{
    uint64_t id;
    if (parse_u64(m, &id) != AX_OK)
        return ax_reply_error(cx, AX_EINVAL, "add: the payload is a request id (decimal)");
    if (!ledger_find(l, id)) {
        int rc = ledger_push(l, id);
        if (rc != AX_OK)
            return ax_reply_error(cx, rc, "add: the ledger is full");
    }
    return ax_reply_i64(cx, l->n);
}

static int ledger_count(ax_ctx *cx, ledger *l, const ax_msg *m)
{
    (void)m;
    return ax_reply_i64(cx, l->n);
}

static int ledger_has(ax_ctx *cx, ledger *l, const ax_msg *m)
{
    uint64_t id;
    if (parse_u64(m, &id) != AX_OK)
        return ax_reply_error(cx, AX_EINVAL, "has: the payload is a request id (decimal)");
    return ax_reply_i64(cx, ledger_find(l, id));
}

static int ledger_ids(ax_ctx *cx, ledger *l, const ax_msg *m)
{
    (void)m;
    size_t cap = (size_t)l->n * 21 + 1, len = 0;
    char *buf = malloc(cap);
    if (!buf)
        return ax_reply_error(cx, AX_ENOMEM, NULL);
    buf[0] = 0;
    for (uint32_t i = 0; i < l->n; i++)
        len += (size_t)snprintf(buf + len, cap - len, i ? ",%llu" : "%llu", (unsigned long long)l->ids[i]);
    int rc = ax_reply(cx, buf, len);
    free(buf);
    return rc;
}

static int ledger_epoch(ax_ctx *cx, ledger *l, const ax_msg *m)
{
    (void)l, (void)m;
    return ax_reply_i64(cx, (int64_t)ax_ctx_epoch(cx));
}

static int ledger_forget(ax_ctx *cx, ledger *l, const ax_msg *m)
{
    (void)l, (void)m;
    int rc = ax_forget(cx);
    if (rc != AX_OK)
        return ax_reply_error(cx, rc, "forget: not a durable keyed actor here");
    ax_stop(cx, ax_self(cx), "normal"); /* after the handler: the delete is acknowledged first */
    return AX_OK;
}

AX_DURABLE_ACTOR_TYPE(ledger_type, "ledger", ledger, NULL, ledger_stop, ledger_encode, ledger_decode,
                      AX_MSG("add", ledger_add), AX_MSG("count", ledger_count), AX_MSG("has", ledger_has),
                      AX_MSG("ids", ledger_ids), AX_MSG("epoch", ledger_epoch), AX_MSG("forget", ledger_forget));

typedef struct dcounter {
    int64_t total;
} dcounter;

static int dcounter_encode(ax_ctx *cx, const dcounter *c, void *out, size_t cap, size_t *len)
{
    (void)cx;
    if (cap < 8)
        return AX_ETOOBIG;
    put_u64(out, (uint64_t)c->total);
    *len = 8;
    return AX_OK;
}

static int dcounter_decode(ax_ctx *cx, dcounter *c, const void *p, size_t n)
{
    (void)cx;
    if (n != 8)
        return AX_EPROTO;
    c->total = (int64_t)get_u64(p);
    return AX_OK;
}

static int dcounter_add(ax_ctx *cx, dcounter *c, const ax_msg *m)
{
    int64_t v = 1;
    if (m->len && ax_msg_i64(m, &v) != AX_OK)
        return ax_reply_error(cx, AX_EINVAL, "add: the payload is an integer");
    c->total += v;
    return ax_reply_i64(cx, c->total);
}

static int dcounter_get(ax_ctx *cx, dcounter *c, const ax_msg *m)
{
    (void)m;
    return ax_reply_i64(cx, c->total);
}

AX_DURABLE_ACTOR_TYPE(dcounter_type, "dcounter", dcounter, NULL, NULL, dcounter_encode, dcounter_decode,
                      AX_MSG("add", dcounter_add), AX_MSG("get", dcounter_get));

#define REGISTER_MAX 4096
typedef struct reg {
    size_t n;
    unsigned char v[REGISTER_MAX];
} reg;

static int reg_decode(ax_ctx *cx, reg *r, const void *p, size_t n)
{
    (void)cx;
    if (n > REGISTER_MAX)
        return AX_EPROTO;
    memcpy(r->v, p, n);
    r->n = n;
    return AX_OK;
}

static int reg_set(ax_ctx *cx, reg *r, const ax_msg *m)
{
    if (m->len > REGISTER_MAX)
        return ax_reply_error(cx, AX_ETOOBIG, "set: at most 4096 bytes");
    int rc = ax_persist(cx, m->data, m->len); /* this handler's write: what set received */
    if (rc != AX_OK)
        return ax_reply_error(cx, rc, "set: cannot persist");
    memcpy(r->v, m->data, m->len);
    r->n = m->len;
    return ax_reply(cx, NULL, 0);
}

static int reg_get(ax_ctx *cx, reg *r, const ax_msg *m)
{
    (void)m;
    return ax_reply(cx, r->v, r->n);
}

AX_DURABLE_ACTOR_TYPE(register_type, "register", reg, NULL, NULL, NULL, reg_decode, AX_MSG("set", reg_set),
                      AX_MSG("get", reg_get));

AX_PLUGIN("ledger", &ledger_type, &dcounter_type, &register_type);
