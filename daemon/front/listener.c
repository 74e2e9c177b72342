/* The client side of axactord: the Unix socket (mode from config, peer credentials
 * checked), one connection per client, frame decoding, and the dispatch of client
 * requests into the runtime. A malformed or oversize frame gets an ERROR and closes
 * that connection only; other clients keep being served. */
#include <cjson/cJSON.h>
#include <errno.h>
#include <grp.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "ax_mem.h"
#include "config_check.h"
#include "log.h"
#include "peer.h"
#include "front.h"
#include "workers.h"

#define READ_CHUNK 65536
#define PX_WINDOW 16 /* requests a connection may have at worker 0 before it stops being read */

typedef struct axd_conn {
    uint32_t slot, gen;
    int fd;
    axd_front *s;
    ev_io rio, wio;
    ev_timer hello_timer; /* a client that sends no HELLO in time is closed */
    uint8_t *in;
    size_t in_len, in_cap;
    ax_wbuf out;
    uint8_t hello, dirty, paused;
    uint8_t bad_body; /* a request body broke its type's rules: close after answering */
    uint8_t monitored; /* holds monitors: drop them when the connection closes */
    uint8_t proxy;     /* worker 0's stand-in for a connection of another worker (no fd: its
                        * output goes to that worker's connection, px_w/px_slot/px_gen) */
    uint8_t proxied;   /* another worker's connection that has a stand-in on worker 0 */
    uint8_t retrying;  /* a stand-in on the retry list */
    uint32_t px_w, px_slot, px_gen;
    uint32_t px_inflight; /* requests sent to worker 0 that it has not handled yet */
    uint32_t px_acks;     /* (a stand-in) requests handled since its last shipment */
    char px_key[12];   /* the stand-in's key in the main front's proxies map */
    struct axd_conn *dirty_next, *retry_next;
    pid_t pid;
    uid_t uid;
} axd_conn;

static void conn_close(axd_conn *c, const char *why);
static void conn_flush(axd_conn *c);

/* Closed: no socket, and not a stand-in (whose output travels to another worker). */
static int conn_gone(const axd_conn *c) { return c->fd < 0 && !c->proxy; }

static void mark_dirty(axd_conn *c)
{
    if (c->dirty)
        return;
    c->dirty = 1;
    c->dirty_next = c->s->dirty;
    c->s->dirty = c;
}

/* A client as a watcher or subscriber: its connection's worker in bits 32..47 (downs and
 * events for it are sent there), its slot below. */
static ax_ref client_ref(const axd_conn *c)
{
    return (ax_ref){(uint64_t)c->s->worker << 32 | c->slot, c->gen, AXD_NODE_CLIENT};
}

/* ---------- writing responses ---------- */

/* ERROR messages are valid UTF-8 (PROTOCOL.md): bytes a client sent (a key, a path) that
 * are not, and control characters, are written as \xNN instead of echoed. */
static void utf8_escape(const char *in, char *out, size_t cap)
{
    const unsigned char *p = (const unsigned char *)in;
    size_t w = 0;
    while (*p && w + 5 < cap) {
        size_t len = 0;
        if (*p >= 0x20 && *p < 0x7f)
            len = 1;
        else if (*p >= 0xc2 && *p <= 0xdf && (p[1] & 0xc0) == 0x80)
            len = 2;
        else if (*p >= 0xe0 && *p <= 0xef && (p[1] & 0xc0) == 0x80 && (p[2] & 0xc0) == 0x80 &&
                 !(*p == 0xe0 && p[1] < 0xa0) && !(*p == 0xed && p[1] > 0x9f))
            len = 3;
        else if (*p >= 0xf0 && *p <= 0xf4 && (p[1] & 0xc0) == 0x80 && (p[2] & 0xc0) == 0x80 &&
                 (p[3] & 0xc0) == 0x80 && !(*p == 0xf0 && p[1] < 0x90) && !(*p == 0xf4 && p[1] > 0x8f))
            len = 4;
        if (len && w + len < cap) {
            memcpy(out + w, p, len);
            w += len;
            p += len;
        } else {
            w += (size_t)snprintf(out + w, cap - w, "\\x%02x", *p);
            p++;
        }
    }
    out[w] = 0;
}

static void send_error(axd_conn *c, uint32_t req, int code, const char *msg)
{
    if (conn_gone(c))
        return;
    char clean[4 * AX_ERROR_TEXT_MAX + 8]; /* room for an actor's text, escaped */
    utf8_escape(msg ? msg : ax_strerror(code), clean, sizeof clean);
    size_t st = ax_frame_begin(&c->out, AX_T_ERROR, 0, req);
    ax_body_error_put(&c->out, code, clean);
    ax_frame_end(&c->out, st, AX_FRAME_MAX_LIMIT);
    mark_dirty(c);
}

/* An error answer: the text that came with it (an actor's ax_reply_error, or the actor's
 * worker saying why), else `fallback`. */
static void send_error_text(axd_conn *c, uint32_t req, int status, const void *data, size_t n, const char *fallback)
{
    char text[AX_ERROR_TEXT_MAX + 1];
    if (!n) {
        send_error(c, req, status, fallback);
        return;
    }
    size_t tn = n > AX_ERROR_TEXT_MAX ? AX_ERROR_TEXT_MAX : n;
    memcpy(text, data, tn);
    text[tn] = 0;
    for (size_t i = 0; i < tn; i++) /* made valid UTF-8 by send_error */
        if (!text[i])
            text[i] = '?';
    send_error(c, req, status, text);
}

static void send_empty(axd_conn *c, uint8_t type, uint32_t req)
{
    if (conn_gone(c))
        return;
    size_t st = ax_frame_begin(&c->out, type, 0, req);
    ax_frame_end(&c->out, st, AX_FRAME_MAX_LIMIT);
    mark_dirty(c);
}

static void send_ref(axd_conn *c, uint32_t req, ax_ref r)
{
    if (conn_gone(c))
        return;
    size_t st = ax_frame_begin(&c->out, AX_T_REF, 0, req);
    ax_wire_ref wr = {c->s->rt->node_id, strlen(c->s->rt->node_id), r.id, r.gen};
    ax_put_ref(&c->out, &wr);
    ax_frame_end(&c->out, st, AX_FRAME_MAX_LIMIT);
    mark_dirty(c);
}

static void send_blob(axd_conn *c, uint8_t type, uint32_t req, const void *p, size_t n)
{
    if (conn_gone(c))
        return;
    size_t st = ax_frame_begin(&c->out, type, 0, req);
    ax_wbuf_blob(&c->out, p, n);
    if (ax_frame_end(&c->out, st, c->s->cfg->max_frame) != 0) {
        send_error(c, req, AX_ETOOBIG, "response exceeds client.max_frame");
        return;
    }
    mark_dirty(c);
}

static void send_json(axd_conn *c, uint32_t req, cJSON *doc)
{
    char *text = doc ? cJSON_PrintUnformatted(doc) : NULL;
    cJSON_Delete(doc);
    if (!text) {
        send_error(c, req, AX_ENOMEM, NULL);
        return;
    }
    send_blob(c, AX_T_JSON, req, text, strlen(text));
    cJSON_free(text);
}

/* ---------- requests ---------- */

/* A body that breaks its type's rules is a protocol error like a bad header: one
 * ERROR (even for NOREPLY), then the connection closes (see handle_frame). */
static void bad_body(axd_conn *c, uint32_t req, const char *why)
{
    c->s->rt->ctr.bad_frames++;
    axd_log(AX_LOG_WARN, "client", "pid %d: malformed request body (%s); closing the connection", (int)c->pid,
           why ? why : "?");
    send_error(c, req, AX_EPROTO, why ? why : "malformed body");
    c->bad_body = 1;
}

/* Find the actor a target names: 0 and its ref, with *pa the actor when it is this
 * worker's (NULL when it is another worker's: it is looked up there), or an error code
 * and why. For (type, key) targets, ensure spawns the keyed actor when absent (routing
 * "ensure"); DIRECT only finds a live one. */
static int resolve_ex(axd_conn *c, const ax_wire_target *t, int ensure, uint64_t epoch, ax_ref *out, axd_actor **pa,
                      char *why, size_t wlen)
{
    axd_front *s = c->s;
    ax_ref r = AX_REF_NONE;
    *pa = NULL;
    switch (t->kind) {
    case AX_TGT_REF:
        if (t->ref.node_len && (t->ref.node_len != strlen(s->rt->node_id) ||
                                memcmp(t->ref.node, s->rt->node_id, t->ref.node_len) != 0)) {
            snprintf(why, wlen, "ref names node '%.*s', which is not this node (%s)", (int)t->ref.node_len,
                     t->ref.node, s->rt->node_id);
            return AX_ENOTFOUND;
        }
        r = (ax_ref){t->ref.id, t->ref.gen, 0};
        if ((t->ref.id >> 48) == 0 && (axd_ref_worker(r) == s->rt->worker ? (*pa = axd_actor_get(s->rt, r)) != NULL
                                                                           : s->rt->group && axd_ref_worker(r) < s->rt->group->n))
            break;
        snprintf(why, wlen, "no actor @%llu.%u (stopped, or a stale ref)", (unsigned long long)t->ref.id, t->ref.gen);
        return AX_ENOPROC;
    case AX_TGT_NAME:
        if (axd_name_lookup(s->rt, t->name, t->name_len, &r) != 0 ||
            (!axd_ref_elsewhere(s->rt, r) && !(*pa = axd_actor_get(s->rt, r)))) {
            snprintf(why, wlen, "no actor named '%.*s'", (int)t->name_len, t->name);
            return AX_ENOPROC;
        }
        break;
    default: {
        const char *w = NULL;
        int rc = axd_registry_route(s->rt, t->name, t->name_len, t->key, t->key_len, epoch, ensure, &r, &w);
        if (rc) {
            snprintf(why, wlen, "%.*s key '%.*s': %s", (int)t->name_len, t->name, (int)(t->key_len > 64 ? 64 : t->key_len),
                     t->key, w ? w : ax_strerror(rc));
            return rc;
        }
        if (!axd_ref_elsewhere(s->rt, r) && !(*pa = axd_actor_get(s->rt, r))) {
            snprintf(why, wlen, "no such actor"); /* a routed key's actor gone right after routing */
            return AX_ENOPROC;
        }
        break;
    }
    }
    *out = r;
    return 0;
}

/* What an ENOPROC from the target's worker says (as resolve would have said it). */
static const char *gone_why(const ax_wire_target *t, ax_ref to, char *why, size_t wlen)
{
    if (t->kind == AX_TGT_NAME)
        snprintf(why, wlen, "no actor named '%.*s'", (int)t->name_len, t->name);
    else
        snprintf(why, wlen, "no actor @%llu.%u (stopped, or a stale ref)", (unsigned long long)to.id, to.gen);
    return why;
}

static int resolve(axd_conn *c, const ax_wire_target *t, ax_ref *out, axd_actor **pa, char *why, size_t wlen)
{
    return resolve_ex(c, t, 0, 0, out, pa, why, wlen);
}

static axd_front *front_of(axd_rt *rt);
static void proxy_to_main(axd_conn *c, const ax_frame_hdr *h, const uint8_t *body);

static void client_ask_done(axd_rt *rt, axd_pending *p, int status, const void *data, size_t n)
{
    axd_histo_observe(&rt->h_ask, ev_now(rt->loop) - p->t0);
    axd_front *s = front_of(rt);
    if (!s)
        return;
    axd_conn *c = axd_slots_get(&s->conns, p->u.client.conn_slot, p->u.client.conn_gen);
    if (!c)
        return; /* the client left; nobody to answer */
    if (status == AX_OK)
        send_blob(c, AX_T_REPLY, p->u.client.req_id, data, n);
    else
        send_error_text(c, p->u.client.req_id, status, data, n,
                        status == AX_ETIMEDOUT ? "ask timed out" : status == AX_ENOPROC ? "actor stopped before replying"
                                                                                         : ax_strerror(status));
}

/* The pending of a client request on this worker: its answer goes to this connection as
 * the answer to req_id (NULL: too many in flight). */
static axd_pending *client_pending(axd_conn *c, const ax_frame_hdr *h, uint32_t timeout_ms, axd_pending_done done)
{
    axd_pending *p = axd_pending_new(c->s->rt, timeout_ms, done);
    if (p) {
        p->u.client.conn_slot = c->slot;
        p->u.client.conn_gen = c->gen;
        p->u.client.req_id = h->req_id;
    }
    return p;
}

/* TELL/ASK to a REF naming another node's wire id: hand it to the cluster (remote TELL
 * is answered OK once queued for the peer; ASK by the remote actor's REPLY or ERROR). */
static void forward_remote(axd_conn *c, const ax_frame_hdr *h, const ax_body_msg *m, int noreply)
{
    axd_front *s = c->s;
    uint32_t node = 0;
    char wbuf[320];
    int code = axd_cluster_node_of(s->cluster, m->target.ref.node, m->target.ref.node_len, &node);
    if (code || node == 0 || (m->target.ref.id >> 48) != 0) {
        if (!code)
            code = node == 0 ? AX_ENOTFOUND : AX_ENOPROC;
        snprintf(wbuf, sizeof wbuf, "ref names node '%.*s': %s", (int)m->target.ref.node_len, m->target.ref.node,
                 code == AX_ENOCONN ? "that node is down" : "not a peer of this node");
        if (!noreply)
            send_error(c, h->req_id, code, wbuf);
        return;
    }
    ax_ref to = {m->target.ref.id, m->target.ref.gen, node};
    if (h->type == AX_T_TELL) {
        code = axd_cluster_tell_named(s->cluster, to, m->msg, m->msg_len, m->payload, m->payload_len, AX_REF_NONE);
        s->rt->ctr.tells += code == 0;
        if (noreply)
            return;
        if (code)
            send_error(c, h->req_id, code, ax_strerror(code));
        else
            send_empty(c, AX_T_OK, h->req_id);
        return;
    }
    axd_pending *p = client_pending(c, h, m->timeout_ms, client_ask_done);
    if (!p) {
        send_error(c, h->req_id, AX_ENOMEM, "too many asks in flight");
        return;
    }
    code = axd_cluster_ask_named(s->cluster, to, m->msg, m->msg_len, m->payload, m->payload_len, p, m->timeout_ms);
    s->rt->ctr.asks += code == 0;
    if (code)
        axd_pending_complete(s->rt, p->slot, p->gen, code, NULL, 0); /* answers the client */
}

/* An acknowledged TELL that went to another node: OK once the owner queued it. */
static void client_tell_done(axd_rt *rt, axd_pending *p, int status, const void *data, size_t n)
{
    axd_front *s = front_of(rt);
    if (!s)
        return;
    axd_conn *c = axd_slots_get(&s->conns, p->u.client.conn_slot, p->u.client.conn_gen);
    if (!c)
        return;
    if (status == AX_OK)
        send_empty(c, AX_T_OK, p->u.client.req_id);
    else
        send_error_text(c, p->u.client.req_id, status, data, n,
                        status == AX_EBUSY ? "the key's shard has no owner now (failover in progress); retry"
                                           : ax_strerror(status));
}

/* DRAIN is answered when the drain ends (the connection may be gone by then). */
/* A client request answered later, on the connection (slot, gen) if it is still there. */
typedef struct drain_wait {
    axd_front *s;
    uint32_t slot, gen, req_id;
} drain_wait;

static void drain_answer(void *ud, cJSON *result)
{
    drain_wait *dw = ud;
    axd_conn *c = axd_slots_get(&dw->s->conns, dw->slot, dw->gen);
    if (c) {
        send_json(c, dw->req_id, cJSON_Duplicate(result, 1));
        axd_listener_flush(dw->s);
    }
    ax_free(dw);
}

/* ---- cluster status (CLUSTER_STATUS): every member's document and their sums ---- */

/* Add src's numbers into sum (PROTOCOL.md "Cluster status": counts only). */
static void status_sum(cJSON *sum, const cJSON *src, int top)
{
    static const char *const skip_top[] = {"pid", "uptime_s", "plugins", "types", "per_worker", NULL};
    const cJSON *it;
    cJSON_ArrayForEach(it, src)
    {
        const char *k = it->string;
        if (!k)
            continue;
        int skip = 0;
        for (int i = 0; top && skip_top[i]; i++)
            skip |= !strcmp(k, skip_top[i]);
        size_t kl = strlen(k);
        if (skip || !strcmp(k, "count") || !strcmp(k, "target") || (kl > 4 && !strcmp(k + kl - 4, "_avg")))
            continue;
        cJSON *have = cJSON_GetObjectItemCaseSensitive(sum, k);
        if (cJSON_IsObject(it)) {
            if (!have)
                have = cJSON_AddObjectToObject(sum, k);
            if (cJSON_IsObject(have))
                status_sum(have, it, 0);
        } else if (cJSON_IsNumber(it)) {
            int is_max = kl > 4 && !strcmp(k + kl - 4, "_max");
            if (!have)
                cJSON_AddNumberToObject(sum, k, it->valuedouble);
            else if (cJSON_IsNumber(have))
                cJSON_SetNumberValue(have, is_max ? (have->valuedouble > it->valuedouble ? have->valuedouble
                                                                                        : it->valuedouble)
                                                  : have->valuedouble + it->valuedouble);
        }
    }
}

/* The CLUSTER_STATUS document from the peers' entries (owned from here; NULL: none). */
static cJSON *cluster_status_doc(axd_front *s, cJSON *peers)
{
    cJSON *doc = cJSON_CreateObject();
    cJSON_AddStringToObject(doc, "node", s->rt->node_id);
    cJSON *nodes = cJSON_AddArrayToObject(doc, "nodes");
    cJSON *self = cJSON_CreateObject();
    cJSON_AddStringToObject(self, "node", s->rt->node_id);
    cJSON_AddItemToObject(self, "status", axd_front_status_json(s));
    cJSON_AddItemToArray(nodes, self);
    while (peers && cJSON_GetArraySize(peers) > 0)
        cJSON_AddItemToArray(nodes, cJSON_DetachItemFromArray(peers, 0));
    cJSON_Delete(peers);
    cJSON *sum = cJSON_CreateObject();
    int answered = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, nodes)
    {
        const cJSON *st = cJSON_GetObjectItemCaseSensitive(it, "status");
        if (cJSON_IsObject(st)) {
            answered++;
            status_sum(sum, st, 1);
        }
    }
    cJSON_AddNumberToObject(doc, "members", cJSON_GetArraySize(nodes));
    cJSON_AddNumberToObject(doc, "answered", answered);
    cJSON_AddItemToObject(doc, "sum", sum);
    return doc;
}

static void cluster_status_answer(void *ud, cJSON *peers)
{
    drain_wait *w = ud;
    if (peers) { /* NULL: the cluster stopped first (the front may be going too) */
        axd_conn *c = axd_slots_get(&w->s->conns, w->slot, w->gen);
        if (c) {
            send_json(c, w->req_id, cluster_status_doc(w->s, peers));
            axd_listener_flush(w->s);
        } else {
            cJSON_Delete(peers);
        }
    }
    ax_free(w);
}

static void handle_cluster_status(axd_conn *c, const ax_frame_hdr *h, const uint8_t *body)
{
    axd_front *s = c->s;
    if (h->body_len) {
        bad_body(c, h->req_id, "this request has an empty body");
        return;
    }
    if (s->worker) { /* the cluster is worker 0's */
        proxy_to_main(c, h, body);
        return;
    }
    if (!s->cluster) {
        send_json(c, h->req_id, cluster_status_doc(s, NULL));
        return;
    }
    drain_wait *w = ax_malloc(sizeof *w);
    *w = (drain_wait){.s = s, .slot = c->slot, .gen = c->gen, .req_id = h->req_id};
    int rc = axd_cluster_gather_status(s->cluster, cluster_status_answer, w);
    if (rc) {
        ax_free(w);
        send_error(c, h->req_id, rc,
                   rc == AX_EBUSY ? "too many cluster status requests wait already" : "the daemon is stopping");
    }
}

static void handle_drain(axd_conn *c, const ax_frame_hdr *h, const uint8_t *body)
{
    axd_front *s = c->s;
    const char *why = NULL;
    if (ax_body_validate(h->type, body, h->body_len, &why) != 0) {
        bad_body(c, h->req_id, why);
        return;
    }
    if (s->worker) { /* the lease manager is worker 0's */
        proxy_to_main(c, h, body);
        return;
    }
    if (!s->drain || !s->undrain) {
        send_error(c, h->req_id, AX_ENOTSUP, "this daemon cannot drain");
        return;
    }
    int rc;
    if (h->type == AX_T_UNDRAIN) {
        rc = s->undrain(s->drain_ud);
        if (rc)
            send_error(c, h->req_id, rc,
                       rc == AX_EINVAL ? "not clustered: a single node has no shards to hand over"
                                       : "the daemon is stopping");
        else
            send_empty(c, AX_T_OK, h->req_id);
        return;
    }
    ax_rbuf r;
    ax_rbuf_init(&r, body, h->body_len);
    uint32_t ms = ax_rbuf_u32(&r);
    int stay = (ax_rbuf_u8(&r) & AX_DRAIN_STAY) != 0;
    drain_wait *dw = ax_malloc(sizeof *dw);
    *dw = (drain_wait){.s = s, .slot = c->slot, .gen = c->gen, .req_id = h->req_id};
    axd_log(AX_LOG_INFO, "server", "drain%s requested by client pid %d uid %u", stay ? " (stay)" : "", (int)c->pid,
           (unsigned)c->uid);
    rc = s->drain(s->drain_ud, ms ? ms : s->cfg->cluster_drain_timeout_ms, stay, drain_answer, dw);
    if (rc) {
        ax_free(dw);
        send_error(c, h->req_id, rc,
                   rc == AX_EINVAL      ? "not clustered: a single node has no shards to hand over"
                   : rc == AX_EBUSY     ? "too many clients wait for this drain"
                   : rc == AX_ECANCELED ? "the daemon is stopping"
                                        : ax_strerror(rc));
    }
}

static void forward_keyed(axd_conn *c, const ax_frame_hdr *h, const ax_body_msg *m, int noreply)
{
    axd_front *s = c->s;
    int ask = h->type == AX_T_ASK;
    axd_pending *p = NULL;
    if (!noreply) {
        p = client_pending(c, h, ask ? m->timeout_ms : s->cfg->ask_timeout_ms, ask ? client_ask_done : client_tell_done);
        if (!p) {
            send_error(c, h->req_id, AX_ENOMEM, "too many requests in flight");
            return;
        }
    }
    unsigned kflags = (ask ? AX_PK_ASK : 0) | ((h->flags & AX_F_DIRECT) ? AX_PK_DIRECT : 0);
    int rc = axd_route_send(s->keyed, m->target.name, m->target.name_len, m->target.key, m->target.key_len, kflags, m->msg,
                           m->msg_len, m->payload, m->payload_len, AX_REF_NONE, p);
    if (rc) {
        if (p)
            axd_pending_complete(s->rt, p->slot, p->gen, rc, NULL, 0); /* answers the client */
        return;
    }
    if (ask)
        s->rt->ctr.asks++;
    else
        s->rt->ctr.tells++;
}

/* TELL/ASK to an actor of another worker: the envelope travels to that worker's inbox;
 * the answer (the reply, or for an acknowledged TELL "queued" or the error) comes back
 * to this worker's pending, which answers the client on this connection. */
static void forward_worker(axd_conn *c, const ax_frame_hdr *h, const ax_body_msg *m, ax_ref to, uint32_t id,
                           int noreply)
{
    axd_front *s = c->s;
    int ask = h->type == AX_T_ASK;
    char wbuf[320];
    if (!id) { /* a message name no type of this node has */
        s->rt->ctr.no_handler++;
        snprintf(wbuf, sizeof wbuf, "no actor type of this node has a message '%.*s'", (int)m->msg_len, m->msg);
        if (!noreply)
            send_error(c, h->req_id, AX_ENOMSG, wbuf);
        return;
    }
    axd_env *e = axd_env_new(s->rt, m->payload_len);
    if (!e) {
        if (!noreply)
            send_error(c, h->req_id, AX_ENOMEM, "out of memory for the payload");
        return;
    }
    if (m->payload_len)
        memcpy(e->data, m->payload, m->payload_len);
    e->m.id = id;
    e->epoch = m->epoch;
    axd_pending *p = NULL;
    if (!noreply) {
        p = client_pending(c, h, ask ? m->timeout_ms : s->cfg->ask_timeout_ms, ask ? client_ask_done : client_tell_done);
        if (!p) {
            axd_env_free(s->rt, e);
            send_error(c, h->req_id, AX_ENOMEM, "too many requests in flight");
            return;
        }
        e->ask = p->slot;
        e->ask_gen = p->gen;
        e->ack = !ask;
    }
    int rc = axd_xw_env(s->rt, to, e);
    if (rc) {
        e->ask = 0;
        axd_env_free(s->rt, e);
        if (p)
            axd_pending_complete(s->rt, p->slot, p->gen, rc, NULL, 0); /* answers the client */
        return;
    }
    if (ask)
        s->rt->ctr.asks++;
    else
        s->rt->ctr.tells++;
}

static void handle_msg(axd_conn *c, const ax_frame_hdr *h, const uint8_t *body)
{
    axd_front *s = c->s;
    ax_body_msg m;
    const char *why = NULL;
    char wbuf[320];
    int code;
    int noreply = h->type == AX_T_TELL && (h->flags & AX_F_NOREPLY);

    if (ax_body_msg_get(body, h->body_len, h->type, &m, &why) != 0) {
        bad_body(c, h->req_id, why);
        return;
    }
    if (m.target.kind == AX_TGT_REF && m.target.ref.node_len &&
        (m.target.ref.node_len != strlen(s->rt->node_id) || memcmp(m.target.ref.node, s->rt->node_id, m.target.ref.node_len))) {
        if (s->worker)
            proxy_to_main(c, h, body); /* the cluster is worker 0's */
        else
            forward_remote(c, h, &m, noreply); /* a ref on another node: the cluster carries it */
        return;
    }
    ax_ref to;
    axd_actor *a;
    code = resolve_ex(c, &m.target, !(h->flags & AX_F_DIRECT), m.epoch, &to, &a, wbuf, sizeof wbuf);
    if (code == AX_EBUSY && m.target.kind == AX_TGT_KEY && s->worker) {
        proxy_to_main(c, h, body); /* worker 0 has the cluster that forwards it */
        return;
    }
    if (code == AX_EBUSY && m.target.kind == AX_TGT_KEY && s->cluster) {
        forward_keyed(c, h, &m, noreply); /* the key's shard is held by another node */
        return;
    }
    if (code)
        goto refuse;
    uint32_t id = axd_msg_lookup(s->rt, m.msg, m.msg_len);
    if (!a) {
        forward_worker(c, h, &m, to, id, noreply); /* another worker's actor */
        return;
    }
    if (!axd_actor_handles(a, id)) { /* (the words of workers.c on_env, for another worker's actor) */
        code = AX_ENOMSG;
        if (id)
            snprintf(wbuf, sizeof wbuf, "actor type '%s' has no message '%.*s'", a->type->name, (int)m.msg_len, m.msg);
        else
            snprintf(wbuf, sizeof wbuf, "no actor type of this node has a message '%.*s'", (int)m.msg_len, m.msg);
        s->rt->ctr.no_handler++;
        goto refuse;
    }
    axd_env *e = axd_env_new(s->rt, m.payload_len);
    if (!e) {
        code = AX_ENOMEM;
        snprintf(wbuf, sizeof wbuf, "out of memory for a %zu-byte payload", m.payload_len);
        goto refuse;
    }
    if (m.payload_len)
        memcpy(e->data, m.payload, m.payload_len);
    e->m.id = id;
    e->epoch = m.epoch;
    axd_pending *p = NULL;
    if (h->type == AX_T_ASK) {
        p = client_pending(c, h, m.timeout_ms, client_ask_done);
        if (!p) {
            axd_env_free(s->rt, e);
            code = AX_ENOMEM;
            snprintf(wbuf, sizeof wbuf, "too many asks in flight");
            goto refuse;
        }
        e->ask = p->slot;
        e->ask_gen = p->gen;
    }
    code = axd_actor_deliver(s->rt, a, e);
    if (code) {
        e->ask = 0;
        axd_env_free(s->rt, e);
        if (p)
            axd_pending_complete(s->rt, p->slot, p->gen, code,  NULL, 0); /* answers the client */
        else if (!noreply)
            send_error(c, h->req_id, code, code == AX_EFULL ? "mailbox full" : ax_strerror(code));
        return;
    }
    if (h->type == AX_T_ASK) {
        s->rt->ctr.asks++;
    } else {
        s->rt->ctr.tells++;
        if (!noreply)
            send_empty(c, AX_T_OK, h->req_id);
    }
    return;
refuse:
    if (!noreply)
        send_error(c, h->req_id, code, wbuf);
}

/* Spawn options arrive as a JSON object; unknown keys are refused so that a typo is
 * not silently ignored. *key points into the document's copy in keybuf. */
static int json_u32(const cJSON *it, uint32_t lo, uint32_t hi, uint32_t *out)
{
    if (!cJSON_IsNumber(it) || it->valuedouble < lo || it->valuedouble > hi ||
        it->valuedouble != (double)(uint32_t)it->valuedouble)
        return -1;
    *out = (uint32_t)it->valuedouble;
    return 0;
}

static int hexval(int ch)
{
    return ch >= '0' && ch <= '9' ? ch - '0' : ch >= 'a' && ch <= 'f' ? ch - 'a' + 10 : ch >= 'A' && ch <= 'F' ? ch - 'A' + 10 : -1;
}

/* The spawn argument of "arg" (text) or "arg_hex" (bytes, two hex digits each) into
 * argbuf (AX_SPAWN_ARG_MAX bytes): 0, or -1 when it is not one of those or too long. */
static int spawn_arg_of(const cJSON *it, int hex, uint8_t *argbuf, ax_spawn_opts *o)
{
    const char *v = cJSON_GetStringValue(it);
    size_t n = v ? strlen(v) : 0;
    if (!v || (hex ? n % 2 || n / 2 > AX_SPAWN_ARG_MAX : n > AX_SPAWN_ARG_MAX) || o->arg)
        return -1; /* a string, not too long, and only one of arg / arg_hex */
    if (hex) {
        for (size_t i = 0; i < n; i += 2) {
            int hi = hexval((unsigned char)v[i]), lo = hexval((unsigned char)v[i + 1]);
            if (hi < 0 || lo < 0)
                return -1;
            argbuf[i / 2] = (uint8_t)(hi << 4 | lo);
        }
        n /= 2;
    } else if (n) {
        memcpy(argbuf, v, n);
    }
    o->arg = argbuf;
    o->arg_len = n;
    return 0;
}

static int parse_spawn_config(const char *txt, size_t n, ax_spawn_opts *o, char *keybuf, size_t *klen,
                              uint32_t *worker, uint8_t *argbuf, char *why, size_t wlen)
{
    *klen = 0;
    *worker = UINT32_MAX; /* not given: the next worker in turn */
    if (n == 0)
        return AX_OK;
    cJSON *doc = cJSON_ParseWithLength(txt, n);
    if (!doc || !cJSON_IsObject(doc)) {
        cJSON_Delete(doc);
        snprintf(why, wlen, "spawn config is not a JSON object");
        return AX_EINVAL;
    }
    int rc = AX_OK;
    cJSON *it;
    cJSON_ArrayForEach(it, doc)
    {
        const char *k = it->string, *v = cJSON_GetStringValue(it);
        int bad = 0;
        uint32_t u = 0;
        if (strcmp(k, "mailbox_capacity") == 0)
            bad = json_u32(it, 1, 16777216, &o->mailbox_cap);
        else if (strcmp(k, "max_restarts") == 0)
            bad = json_u32(it, 0, 10000, &o->max_restarts);
        else if (strcmp(k, "restart_window_ms") == 0)
            bad = json_u32(it, 0, 86400000, &o->restart_window_ms);
        else if (strcmp(k, "backoff_ms") == 0)
            bad = json_u32(it, 0, 3600000, &o->backoff_ms);
        else if (strcmp(k, "idle_timeout_ms") == 0) {
            bad = json_u32(it, 0, UINT32_MAX - 1, &u);
            o->idle_timeout_ms = u;
        } else if (strcmp(k, "trap_exit") == 0) {
            bad = !cJSON_IsBool(it);
            o->trap_exit = cJSON_IsTrue(it);
        } else if (strcmp(k, "restart") == 0) {
            bad = !v;
            if (v && strcmp(v, "permanent") == 0)
                o->restart = AX_RESTART_PERMANENT;
            else if (v && strcmp(v, "transient") == 0)
                o->restart = AX_RESTART_TRANSIENT;
            else if (v && strcmp(v, "temporary") == 0)
                o->restart = AX_RESTART_TEMPORARY;
            else
                bad = 1;
        } else if (strcmp(k, "mailbox_policy") == 0) {
            if (v && strcmp(v, "keep") == 0)
                o->mailbox_policy = AX_MAILBOX_KEEP;
            else if (v && strcmp(v, "drain_and_drop") == 0)
                o->mailbox_policy = AX_MAILBOX_DRAIN_AND_DROP;
            else
                bad = 1;
        } else if (strcmp(k, "arg") == 0 || strcmp(k, "arg_hex") == 0) {
            bad = spawn_arg_of(it, k[3] == '_', argbuf, o);
        } else if (strcmp(k, "worker") == 0) {
            bad = json_u32(it, 0, AXD_WORKERS_MAX - 1, worker);
        } else if (strcmp(k, "key") == 0) {
            size_t l = v ? strlen(v) : 0;
            bad = !v || ax_key_valid(v, l) != 0;
            if (!bad) {
                memcpy(keybuf, v, l);
                *klen = l;
            }
        } else {
            snprintf(why, wlen, "spawn config: unknown key '%.64s'", k);
            rc = AX_EINVAL;
            break;
        }
        if (bad) {
            snprintf(why, wlen, "spawn config: bad value for '%s'", k);
            rc = AX_EINVAL;
            break;
        }
    }
    cJSON_Delete(doc);
    return rc;
}

static void handle_spawn(axd_conn *c, const ax_frame_hdr *h, const uint8_t *body)
{
    ax_body_spawn sp;
    const char *why = NULL;
    char wbuf[256], name[AX_NAME_MAX + 1], key[AX_KEY_MAX];
    size_t klen;
    ax_spawn_opts o = AX_SPAWN_OPTS_INIT;
    ax_ref r;
    if (ax_body_spawn_get(body, h->body_len, &sp, &why) != 0) {
        bad_body(c, h->req_id, why);
        return;
    }
    uint32_t worker, nw = c->s->rt->group ? c->s->rt->group->n : 1;
    uint8_t argbuf[AX_SPAWN_ARG_MAX]; /* copied by the spawn */
    int rc = parse_spawn_config(sp.config, sp.config_len, &o, key, &klen, &worker, argbuf, wbuf, sizeof wbuf);
    if (!rc && worker != UINT32_MAX && (worker >= nw || klen)) {
        rc = AX_EINVAL;
        if (klen)
            snprintf(wbuf, sizeof wbuf, "spawn config: a keyed actor lives on its key's worker ('worker' is for unkeyed spawns)");
        else
            snprintf(wbuf, sizeof wbuf, "spawn config: worker %u does not exist (this node has %u: 0..%u)", worker, nw, nw - 1);
    }
    if (rc) {
        send_error(c, h->req_id, rc, wbuf);
        return;
    }
    if (klen) {
        if (sp.name_len) {
            send_error(c, h->req_id, AX_EINVAL, "a keyed spawn has no name");
            return;
        }
        rc = axd_registry_get_or_spawn(c->s->rt, sp.type, sp.type_len, key, klen, &o, 1, &r, &why);
        if (rc) {
            snprintf(wbuf, sizeof wbuf, "get_or_spawn %.*s: %s", (int)sp.type_len, sp.type, why ? why : ax_strerror(rc));
            send_error(c, h->req_id, rc, wbuf);
            return;
        }
        send_ref(c, h->req_id, r);
        return;
    }
    if (sp.name_len) {
        memcpy(name, sp.name, sp.name_len);
        name[sp.name_len] = 0;
        o.name = name;
    }
    /* Anonymous and named actors are spread over the workers in turn unless the config
     * names one (a single-worker type's stay on worker 0); keyed ones live on their
     * key's home worker. */
    if (worker == UINT32_MAX)
        worker = atomic_fetch_add_explicit(&c->s->main->next_worker, 1, memory_order_relaxed) % nw;
    rc = axd_actor_spawn_on(c->s->rt, worker, sp.type, sp.type_len,
                            &o, &r, &why);
    if (rc) {
        snprintf(wbuf, sizeof wbuf, "spawn %.*s: %s", (int)sp.type_len, sp.type, why ? why : ax_strerror(rc));
        send_error(c, h->req_id, rc, wbuf);
        return;
    }
    send_ref(c, h->req_id, r);
}


/* MONITOR of a remote ref: the down arrives as an EVENT like a local one, exactly once
 * (the actor's reason, noproc, or noconnection when its node is lost). */
static void monitor_remote(axd_conn *c, const ax_frame_hdr *h, const ax_wire_target *t)
{
    axd_front *s = c->s;
    uint32_t node = 0;
    char doc[128];
    int code = axd_cluster_node_of(s->cluster, t->ref.node, t->ref.node_len, &node);
    if ((code && code != AX_ENOCONN) || (!code && node == 0) || (t->ref.id >> 48) != 0) {
        snprintf(doc, sizeof doc, "ref names node '%.*s': not a peer of this node", (int)(t->ref.node_len > 64 ? 64 : t->ref.node_len), t->ref.node);
        send_error(c, h->req_id, AX_ENOTFOUND, doc);
        return;
    }
    uint64_t mref = ++s->rt->next_mref;
    ax_ref target = {t->ref.id, t->ref.gen, node};
    if (code == AX_ENOCONN)
        axd_runtime_deliver_down(s->rt, client_ref(c), mref, target, "noconnection");
    else
        axd_cluster_monitor(s->cluster, client_ref(c), target, mref);
    int n = snprintf(doc, sizeof doc, "{\"mref\":%llu,\"id\":%llu,\"gen\":%u}", (unsigned long long)mref,
                     (unsigned long long)t->ref.id, t->ref.gen);
    send_blob(c, AX_T_JSON, h->req_id, doc, (size_t)n);
}

static void handle_target_op(axd_conn *c, const ax_frame_hdr *h, const uint8_t *body)
{
    ax_rbuf r;
    ax_wire_target t;
    char wbuf[320];
    int code;
    ax_rbuf_init(&r, body, h->body_len);
    ax_get_target(&r, &t);
    if (ax_rbuf_done(&r) != 0) {
        bad_body(c, h->req_id, r.why);
        return;
    }
    if (h->type == AX_T_MONITOR && t.kind == AX_TGT_REF && t.ref.node_len &&
        (t.ref.node_len != strlen(c->s->rt->node_id) || memcmp(t.ref.node, c->s->rt->node_id, t.ref.node_len))) {
        if (c->s->worker)
            proxy_to_main(c, h, body); /* the cluster is worker 0's */
        else
            monitor_remote(c, h, &t); /* a ref on another node: the cluster watches it */
        return;
    }
    ax_ref to;
    axd_actor *a;
    const char *w = NULL;
    code = resolve(c, &t, &to, &a, wbuf, sizeof wbuf);
    if (!code && !a && h->type != AX_T_STOP) { /* another worker's: is it there? */
        code = axd_workers_actor_op(c->s->rt, to, AXD_OP_CHECK, NULL, &w);
        if (code == AX_ENOPROC)
            gone_why(&t, to, wbuf, sizeof wbuf);
    }
    if (code) {
        send_error(c, h->req_id, code, w ? w : wbuf);
        return;
    }
    if (h->type == AX_T_RESOLVE) {
        send_ref(c, h->req_id, to);
        return;
    }
    if (h->type == AX_T_MONITOR) {
        uint64_t mref;
        axd_sup_monitor(c->s->rt, client_ref(c), to, &mref);
        c->monitored = 1;
        char doc[128];
        int n = snprintf(doc, sizeof doc, "{\"mref\":%llu,\"id\":%llu,\"gen\":%u}", (unsigned long long)mref,
                         (unsigned long long)to.id, to.gen);
        send_blob(c, AX_T_JSON, h->req_id, doc, (size_t)n);
        return;
    }
    code = a ? axd_actor_stop(c->s->rt, a, "stopped") : axd_workers_actor_op(c->s->rt, to, AXD_OP_STOP, "stopped", &w);
    if (code)
        send_error(c, h->req_id, code, code == AX_ENOPROC ? gone_why(&t, to, wbuf, sizeof wbuf) : w);
    else
        send_empty(c, AX_T_OK, h->req_id);
}

/* EXIT: Erlang's exit/2 from a client (no sender ref: m->from is none). */
static void handle_exit(axd_conn *c, const ax_frame_hdr *h, const uint8_t *body)
{
    ax_wire_target t;
    const char *reason, *why = NULL;
    size_t rlen;
    char wbuf[320], rbuf[AX_NAME_MAX + 1];
    int code;
    if (ax_body_exit_get(body, h->body_len, &t, &reason, &rlen, &why) != 0) {
        bad_body(c, h->req_id, why);
        return;
    }
    if (t.kind == AX_TGT_REF && t.ref.node_len &&
        (t.ref.node_len != strlen(c->s->rt->node_id) || memcmp(t.ref.node, c->s->rt->node_id, t.ref.node_len))) {
        send_error(c, h->req_id, AX_ENOTSUP, "exit signals reach actors of this node only (links are node-local)");
        return;
    }
    ax_ref to;
    axd_actor *a;
    code = resolve(c, &t, &to, &a, wbuf, sizeof wbuf);
    if (code) {
        send_error(c, h->req_id, code, wbuf);
        return;
    }
    memcpy(rbuf, reason, rlen);
    rbuf[rlen] = 0;
    const char *w = NULL;
    code = a ? axd_sup_exit(c->s->rt, AX_REF_NONE, a, rbuf) : axd_workers_actor_op(c->s->rt, to, AXD_OP_EXIT, rbuf, &w);
    if (code)
        send_error(c, h->req_id, code, code == AX_ENOPROC ? gone_why(&t, to, wbuf, sizeof wbuf) : w);
    else
        send_empty(c, AX_T_OK, h->req_id);
}

static void handle_plugin(axd_conn *c, const ax_frame_hdr *h, const uint8_t *body)
{
    const char *str, *why = NULL;
    size_t n;
    char arg[AX_PATH_MAX + 1], err[512];
    /* the codec's rules: a path for LOAD, a valid name for UNLOAD (EPROTO and close) */
    if (ax_body_plugin_get(body, h->body_len, h->type, &str, &n, &why) != 0) {
        bad_body(c, h->req_id, why ? why : "bad plugin path or name");
        return;
    }
    memcpy(arg, str, n);
    arg[n] = 0;
    if (h->type == AX_T_PLUGIN_LOAD) {
        axd_plugin *p;
        int rc = axd_plugin_load_runtime(c->s->rt, arg, c->uid, &p, err, sizeof err);
        if (rc) {
            axd_log(AX_LOG_WARN, "plugin", "load refused: %s", err);
            send_error(c, h->req_id, rc, err);
        } else {
            send_json(c, h->req_id, axd_plugin_json(p));
        }
    } else {
        int rc = axd_plugin_unload(c->s->rt, arg, err, sizeof err);
        if (rc)
            send_error(c, h->req_id, rc, err);
        else
            send_empty(c, AX_T_OK, h->req_id);
    }
}

static void handle_hello(axd_conn *c, const ax_frame_hdr *h, const uint8_t *body)
{
    ax_body_hello hb;
    const char *why;
    if (ax_body_hello_get(body, h->body_len, &hb, &why) != 0) {
        send_error(c, h->req_id, AX_EPROTO, why);
        conn_close(c, why);
        return;
    }
    if (hb.max_ver < AX_PROTO_VERSION_MIN || hb.min_ver > AX_PROTO_VERSION || hb.min_ver > hb.max_ver) {
        char m[128];
        snprintf(m, sizeof m, "no common protocol version: client speaks %u..%u, daemon %u..%u", hb.min_ver,
                 hb.max_ver, AX_PROTO_VERSION_MIN, AX_PROTO_VERSION);
        send_error(c, h->req_id, AX_EVERSION, m);
        axd_log(AX_LOG_WARN, "client", "fd %d: %s", c->fd, m);
        conn_close(c, m);
        return;
    }
    c->hello = 1;
    ev_timer_stop(c->s->loop, &c->hello_timer);
    size_t st = ax_frame_begin(&c->out, AX_T_HELLO_OK, 0, h->req_id);
    ax_wbuf_u16(&c->out, hb.max_ver < AX_PROTO_VERSION ? hb.max_ver : AX_PROTO_VERSION);
    ax_wbuf_str(&c->out, c->s->rt->node_id, strlen(c->s->rt->node_id));
    ax_wbuf_u32(&c->out, c->s->cfg->max_frame);
    ax_frame_end(&c->out, st, AX_FRAME_MAX_LIMIT);
    mark_dirty(c);
}

/* Returns 0 to go on reading frames, -1 if the connection was closed. */
static int handle_frame(axd_conn *c, const ax_frame_hdr *h, const uint8_t *body)
{
    if (!c->hello) {
        if (h->type != AX_T_HELLO) {
            c->s->rt->ctr.bad_frames++;
            send_error(c, h->req_id, AX_EPROTO, "the first frame must be HELLO");
            conn_close(c, "first frame was not HELLO");
            return -1;
        }
        handle_hello(c, h, body);
        return c->fd < 0 ? -1 : 0;
    }
    switch (h->type) {
    case AX_T_TELL:
    case AX_T_ASK:
        handle_msg(c, h, body);
        break;
    case AX_T_SPAWN:
        handle_spawn(c, h, body);
        break;
    case AX_T_STOP:
    case AX_T_RESOLVE:
        handle_target_op(c, h, body);
        break;
    case AX_T_EXIT:
        handle_exit(c, h, body);
        break;
    case AX_T_ACTORS: {
        ax_actors_query q;
        const char *why = NULL;
        if (ax_body_actors_get(body, h->body_len, &q, &why) != 0) {
            bad_body(c, h->req_id, why);
            break;
        }
        send_json(c, h->req_id, axd_runtime_actors_page(c->s->rt, &q, 0));
        break;
    }
    case AX_T_STATUS:
    case AX_T_PLUGINS:
    case AX_T_NODES:
    case AX_T_SHARDS:
        if (h->body_len) {
            bad_body(c, h->req_id, "this request has an empty body");
            break;
        }
        if (c->s->worker) { /* the lease manager, the cluster and the plugins are worker 0's */
            proxy_to_main(c, h, body);
            break;
        }
        send_json(c, h->req_id,
                  h->type == AX_T_STATUS   ? axd_front_status_json(c->s)
                  : h->type == AX_T_NODES  ? axd_cluster_nodes_json(c->s->rt, c->s->cluster)
                  : h->type == AX_T_SHARDS ? axd_route_shards_json(c->s->keyed, 1)
                                           : axd_plugins_json(c->s->rt));
        break;
    case AX_T_PLUGIN_LOAD:
    case AX_T_PLUGIN_UNLOAD:
        if (c->s->worker) {
            const char *str, *why = NULL;
            size_t n;
            if (ax_body_plugin_get(body, h->body_len, h->type, &str, &n, &why) != 0)
                bad_body(c, h->req_id, why);
            else
                proxy_to_main(c, h, body); /* plugins load and unload on worker 0 */
            break;
        }
        handle_plugin(c, h, body);
        break;
    case AX_T_MONITOR:
        handle_target_op(c, h, body);
        break;
    case AX_T_LOG_LEVEL: { /* the process's: any worker sets it */
        const char *why = NULL, *lv;
        size_t n;
        if (ax_body_validate(h->type, body, h->body_len, &why) != 0) {
            bad_body(c, h->req_id, why);
            break;
        }
        ax_rbuf r;
        ax_rbuf_init(&r, body, h->body_len);
        ax_rbuf_str(&r, &lv, &n);
        char name[17];
        snprintf(name, sizeof name, "%.*s", (int)n, lv);
        int level = axd_log_level_parse(name);
        if (level < 0) {
            char msg[96];
            snprintf(msg, sizeof msg, "unknown log level '%s' (error, warn, info or debug)", name);
            send_error(c, h->req_id, AX_EINVAL, msg);
            break;
        }
        int was = atomic_load_explicit(&axd_log_threshold, memory_order_relaxed);
        axd_log_set_level(level);
        /* the change itself is always logged, whatever either level */
        axd_log_write(AX_LOG_INFO, "server", "log level %s -> %s (requested by client pid %d uid %u)",
                      axd_log_level_name(was), name, (int)c->pid, (unsigned)c->uid);
        send_empty(c, AX_T_OK, h->req_id);
        break;
    }
    case AX_T_DRAIN:
    case AX_T_UNDRAIN:
        handle_drain(c, h, body);
        break;
    case AX_T_CLUSTER_STATUS:
        handle_cluster_status(c, h, body);
        break;
    case AX_T_DEMONITOR:
    case AX_T_SUBSCRIBE:
    case AX_T_UNSUBSCRIBE: {
        const char *why = NULL;
        if (ax_body_validate(h->type, body, h->body_len, &why) != 0) {
            bad_body(c, h->req_id, why);
            break;
        }
        if (h->type == AX_T_DEMONITOR) {
            ax_rbuf r;
            ax_rbuf_init(&r, body, h->body_len);
            axd_sup_demonitor(c->s->rt, client_ref(c), ax_rbuf_u64(&r), 1);
        } else if (h->type == AX_T_SUBSCRIBE) {
            ax_rbuf r;
            const char *f;
            size_t n;
            ax_rbuf_init(&r, body, h->body_len);
            ax_rbuf_str(&r, &f, &n);
            axd_events_subscribe(c->s->rt, client_ref(c), f, n, h->req_id);
        } else {
            axd_events_unsubscribe(c->s->rt, client_ref(c));
        }
        send_empty(c, AX_T_OK, h->req_id);
        break;
    }
    case AX_T_HELLO:
        c->s->rt->ctr.bad_frames++;
        send_error(c, h->req_id, AX_EPROTO, "HELLO was already exchanged on this connection");
        conn_close(c, "second HELLO");
        return -1;
    default:
        c->s->rt->ctr.bad_frames++;
        send_error(c, h->req_id, AX_EPROTO, "frame type is not a client request");
        conn_close(c, "client sent a daemon-to-client frame type");
        return -1;
    }
    if (c->bad_body) {
        conn_close(c, "malformed request body");
        return -1;
    }
    return 0;
}

/* ---------- connection I/O ---------- */

/* Backpressure, checked after every request: a client whose queued output reached
 * client.outbuf_max is not read (nor are its buffered requests handled) until it drains
 * to half of it, whatever the request mix (a burst of SHARDS or STATUS requests). */
static void pause_input(axd_conn *c)
{
    if (c->paused)
        return;
    c->paused = 1;
    ev_io_stop(c->s->loop, &c->rio);
}

static void process_input(axd_conn *c)
{
    size_t off = 0;
    while (c->fd >= 0 && !c->paused && c->in_len - off >= AX_FRAME_HDR_SIZE) {
        ax_frame_hdr h;
        const char *why = NULL;
        int rc = ax_frame_hdr_decode(c->in + off, c->in_len - off, c->s->cfg->max_frame, &h, &why);
        if (rc == 1)
            break;
        if (rc != 0) {
            c->s->rt->ctr.bad_frames++;
            axd_log(AX_LOG_WARN, "client", "pid %d: bad frame (%s); closing the connection", (int)c->pid, why);
            send_error(c, 0, rc, why);
            conn_close(c, why);
            return;
        }
        if (c->in_len - off < AX_FRAME_HDR_SIZE + (size_t)h.body_len)
            break;
        if (handle_frame(c, &h, c->in + off + AX_FRAME_HDR_SIZE) != 0)
            return;
        off += AX_FRAME_HDR_SIZE + h.body_len;
        if (c->out.len >= c->s->cfg->client_outbuf_max || c->px_inflight >= PX_WINDOW)
            pause_input(c);
    }
    if (off) {
        memmove(c->in, c->in + off, c->in_len - off);
        c->in_len -= off;
    }
}

static void conn_read_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)loop;
    (void)revents;
    axd_conn *c = w->data;
    axd_front *s = c->s;
    if (c->in_len) /* requests left buffered by a pause */
        process_input(c);
    for (int rounds = 0; rounds < 16 && c->fd >= 0 && !c->paused; rounds++) {
        if (c->in_cap - c->in_len < READ_CHUNK) {
            /* never more than one whole max-size frame plus a read chunk */
            size_t ncap = c->in_len + READ_CHUNK;
            size_t limit = AX_FRAME_HDR_SIZE + (size_t)s->cfg->max_frame + READ_CHUNK;
            if (ncap > limit)
                ncap = limit;
            if (ncap > c->in_cap) {
                uint8_t *n = ax_try_realloc(c->in, ncap);
                if (!n) {
                    conn_close(c, "out of memory for input");
                    break;
                }
                c->in = n;
                c->in_cap = ncap;
            }
        }
        ssize_t n = read(c->fd, c->in + c->in_len, c->in_cap - c->in_len);
        if (n > 0) {
            c->in_len += (size_t)n;
            process_input(c);
            if ((size_t)n < READ_CHUNK)
                break;
        } else if (n == 0) {
            conn_close(c, NULL);
            break;
        } else {
            if (errno != EAGAIN && errno != EINTR)
                conn_close(c, strerror(errno));
            break;
        }
    }
    /* Answer in this loop iteration: run what the requests made ready, then write. */
    axd_runtime_run(s->rt);
    axd_listener_flush(s);
}

static void conn_write_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)loop;
    (void)revents;
    conn_flush(w->data);
}

static void px_ship(axd_conn *c);

static void conn_flush(axd_conn *c)
{
    axd_front *s = c->s;
    if (c->proxy) {
        px_ship(c);
        return;
    }
    while (c->fd >= 0 && c->out.len) {
        ssize_t n = send(c->fd, c->out.data, c->out.len, MSG_NOSIGNAL);
        if (n > 0) {
            ax_wbuf_consume(&c->out, (size_t)n);
        } else if (n < 0 && errno == EINTR) {
            continue;
        } else if (n < 0 && errno == EAGAIN) {
            if (!ev_is_active(&c->wio))
                ev_io_start(s->loop, &c->wio);
            break;
        } else {
            conn_close(c, strerror(errno));
            return;
        }
    }
    if (c->fd < 0)
        return;
    if (!c->out.len && ev_is_active(&c->wio))
        ev_io_stop(s->loop, &c->wio);
    /* Backpressure: a client that does not read its replies stops being read. */
    if (!c->paused && c->out.len > s->cfg->client_outbuf_max) {
        pause_input(c);
    } else if (c->paused && c->out.len <= s->cfg->client_outbuf_max / 2 && c->px_inflight < PX_WINDOW / 2) {
        c->paused = 0;
        ev_io_start(s->loop, &c->rio);
        if (c->in_len) /* handle what it sent meanwhile, even if it sends nothing more */
            ev_feed_event(s->loop, &c->rio, EV_READ);
    }
}

void axd_listener_flush(axd_front *s)
{
    while (s->dirty) {
        axd_conn *c = s->dirty;
        s->dirty = c->dirty_next;
        c->dirty = 0;
        c->dirty_next = NULL;
        if (!conn_gone(c))
            conn_flush(c);
        /* A closed connection is freed here, never inside a callback that may still
         * hold it; if closing re-queued it, the next pop frees it. */
        if (conn_gone(c) && !c->dirty && !c->retrying) {
            ax_wbuf_free(&c->out);
            ax_free(c);
        }
    }
}

static void px_close_main(axd_conn *c);

static void conn_close(axd_conn *c, const char *why)
{
    axd_front *s = c->s;
    if (conn_gone(c))
        return;
    if (c->proxy) { /* a stand-in: what it holds on worker 0 goes with it */
        px_ship(c); /* its last output, best effort */
        axd_events_unsubscribe(s->rt, client_ref(c));
        if (c->monitored)
            axd_monitors_drop_watcher(s->rt, client_ref(c));
        axd_hmap_del(&s->proxies, c->px_key, sizeof c->px_key);
        c->proxy = 0;
        axd_slots_release(&s->conns, c->slot);
        ax_wbuf_free(&c->out);
        mark_dirty(c); /* axd_listener_flush frees it */
        return;
    }
    if (c->out.len) /* best effort: the last ERROR frame, if any, without blocking */
        (void)!send(c->fd, c->out.data, c->out.len, MSG_NOSIGNAL | MSG_DONTWAIT);
    ev_io_stop(s->loop, &c->rio);
    ev_io_stop(s->loop, &c->wio);
    ev_timer_stop(s->loop, &c->hello_timer);
    axd_events_unsubscribe(s->rt, client_ref(c));
    if (c->monitored)
        axd_monitors_drop_watcher(s->rt, client_ref(c));
    if (c->proxied)
        px_close_main(c);
    close(c->fd);
    c->fd = -1;
    axd_slots_release(&s->conns, c->slot);
    s->n_conns--;
    atomic_fetch_sub_explicit(&s->main->clients, 1, memory_order_relaxed);
    if (why)
        axd_log(AX_LOG_DEBUG, "client", "pid %d disconnected: %s", (int)c->pid, why);
    ax_wbuf_free(&c->out);
    ax_free(c->in);
    c->in = NULL;
    c->in_len = c->in_cap = 0;
    mark_dirty(c); /* axd_listener_flush frees it */
}

/* ---------- events to clients ---------- */

/* The connection a client ref names, if it is this worker's. */
static axd_conn *conn_of(axd_front *s, ax_ref client)
{
    if ((client.id >> 32) != s->worker)
        return NULL;
    return axd_slots_get(&s->conns, (uint32_t)client.id, client.gen);
}

static int sink_alive(void *ud, ax_ref client) { return conn_of(ud, client) != NULL; }

static int sink_send_event(void *ud, ax_ref client, uint32_t req_id, const char *json, size_t n, int force)
{
    axd_front *s = ud;
    axd_conn *c = conn_of(s, client);
    if (!c || conn_gone(c))
        return -2;
    /* a subscriber that does not read may hold at most half the output bound */
    if (!force && c->out.len > s->cfg->client_outbuf_max / 2)
        return -1;
    send_blob(c, AX_T_EVENT, req_id, json, n);
    return 0;
}

/* ---------- the listening socket ---------- */

static int peer_allowed(axd_front *s, int fd, struct ucred *cr)
{
    socklen_t len = sizeof *cr;
    struct stat st;
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, cr, &len) != 0)
        return 0;
    if (cr->uid == 0 || cr->uid == geteuid())
        return 1;
    if (stat(s->cfg->socket_path, &st) != 0)
        return 0;
    if (cr->gid == st.st_gid)
        return 1;
#ifdef SO_PEERGROUPS
    gid_t groups[256];
    len = sizeof groups;
    if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, groups, &len) == 0) {
        for (size_t i = 0; i < len / sizeof(gid_t); i++)
            if (groups[i] == st.st_gid)
                return 1;
    }
#endif
    return 0;
}

/* Tell a refused client why (one ERROR frame, req_id 0, best effort) and close. */
static void refuse(int fd, int code, const char *msg)
{
    ax_wbuf b;
    ax_wbuf_init(&b);
    size_t st = ax_frame_begin(&b, AX_T_ERROR, 0, 0);
    ax_body_error_put(&b, code, msg);
    if (ax_frame_end(&b, st, AX_FRAME_MAX_LIMIT) == 0)
        (void)!send(fd, b.data, b.len, MSG_NOSIGNAL | MSG_DONTWAIT);
    ax_wbuf_free(&b);
    close(fd);
}

static void hello_timeout_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    axd_conn *c = w->data;
    axd_log(AX_LOG_INFO, "client", "pid %d sent no HELLO within client.hello_timeout_ms (%u ms); closing", (int)c->pid,
           c->s->cfg->client_hello_timeout_ms);
    send_error(c, 0, AX_ETIMEDOUT, "no HELLO within client.hello_timeout_ms");
    conn_close(c, "hello timeout");
}

/* A connection of front s (on s's worker thread): NULL when s has no free slot (fd closed). */
static axd_conn *conn_new(axd_front *s, int fd, pid_t pid, uid_t uid)
{
    axd_conn *c = ax_calloc(1, sizeof *c);
    c->slot = axd_slots_alloc(&s->conns, c, &c->gen);
    if (!c->slot) {
        ax_free(c);
        close(fd);
        return NULL;
    }
    c->fd = fd;
    c->s = s;
    c->pid = pid;
    c->uid = uid;
    ax_wbuf_init(&c->out);
    ev_io_init(&c->rio, conn_read_cb, fd, EV_READ);
    ev_io_init(&c->wio, conn_write_cb, fd, EV_WRITE);
    c->rio.data = c->wio.data = c;
    ev_io_start(s->loop, &c->rio);
    ev_timer_init(&c->hello_timer, hello_timeout_cb, s->cfg->client_hello_timeout_ms / 1000.0, 0.);
    c->hello_timer.data = c;
    ev_timer_start(s->loop, &c->hello_timer);
    s->n_conns++;
    axd_log(AX_LOG_DEBUG, "client", "accepted pid %d uid %d on worker %u", (int)pid, (int)uid, s->worker);
    return c;
}

typedef struct adopt_job {
    int fd;
    pid_t pid;
    uid_t uid;
} adopt_job;

static void adopt_cb(axd_rt *rt, void *ud)
{
    adopt_job *j = ud;
    axd_front *s = front_of(rt);
    if (!s || !conn_new(s, j->fd, j->pid, j->uid)) {
        if (s)
            atomic_fetch_sub_explicit(&s->main->clients, 1, memory_order_relaxed);
        else
            close(j->fd); /* that worker's front is gone: the daemon is stopping */
    }
    ax_free(j);
}

/* Hand an accepted connection to worker w (0, or -1 when its inbox is full: then the
 * caller keeps it). */
static int adopt_on(axd_front *s, uint32_t w, int fd, const struct ucred *cr)
{
    adopt_job *j = ax_malloc(sizeof *j);
    *j = (adopt_job){fd, cr->pid, cr->uid};
    if (axd_workers_call(s->rt->group, w, adopt_cb, j) != 0) {
        ax_free(j);
        return -1;
    }
    return 0;
}

/* ---------- stand-ins: another worker's requests that worker 0 serves ----------
 * The cluster, the lease manager and the plugins are worker 0's. A connection of another
 * worker sends such a request (a TELL, ASK or MONITOR for another node, a keyed request
 * whose shard another node serves, STATUS, NODES, SHARDS, PLUGINS, PLUGIN_LOAD/UNLOAD) to
 * worker 0, where a stand-in connection (one per connection, made on its first such
 * request) handles it as its own; what the stand-in writes is shipped back to the
 * connection's worker, which writes it to the socket. */
typedef struct px_req {
    uint32_t w, slot, gen;
    pid_t pid;
    uid_t uid;
    ax_frame_hdr h;
    uint8_t body[];
} px_req;

typedef struct px_out {
    uint32_t slot, gen;
    uint8_t close;  /* the stand-in closed the connection (a malformed request) */
    uint32_t acks;  /* requests worker 0 handled (they leave the connection's window) */
    size_t n;
    uint8_t data[];
} px_out;

static void px_key(char key[12], uint32_t w, uint32_t slot, uint32_t gen)
{
    memcpy(key, &w, 4);
    memcpy(key + 4, &slot, 4);
    memcpy(key + 8, &gen, 4);
}

static void px_out_cb(axd_rt *rt, void *ud)
{
    px_out *o = ud;
    axd_front *s = front_of(rt);
    axd_conn *c = s ? axd_slots_get(&s->conns, o->slot, o->gen) : NULL;
    if (c && c->fd >= 0) {
        ax_wbuf_put(&c->out, o->data, o->n);
        c->px_inflight = o->acks < c->px_inflight ? c->px_inflight - o->acks : 0;
        mark_dirty(c); /* the flush writes it, and reads the connection again if it paused */
        if (o->close) {
            conn_flush(c);
            conn_close(c, "malformed request body");
        }
    }
    ax_free(o);
}

static void px_retry_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    axd_front *s = w->data;
    axd_conn *list = s->retry;
    s->retry = NULL;
    while (list) {
        axd_conn *c = list;
        list = c->retry_next;
        c->retry_next = NULL;
        c->retrying = 0;
        mark_dirty(c); /* shipped (or freed, if it closed) by the flush */
    }
    axd_listener_flush(s);
}

/* Send a stand-in's output to its connection's worker; a full inbox keeps it for a
 * retry in 1 ms (the output stays queued here meanwhile, in order). */
static void px_ship(axd_conn *c)
{
    axd_front *s = c->s;
    if ((!c->out.len && !c->px_acks) || c->retrying)
        return;
    px_out *o = ax_try_malloc(sizeof *o + c->out.len);
    if (o) {
        o->slot = c->px_slot;
        o->gen = c->px_gen;
        o->close = c->bad_body;
        o->acks = c->px_acks;
        o->n = c->out.len;
        if (c->out.len)
            memcpy(o->data, c->out.data, c->out.len);
        if (axd_workers_call(s->rt->group, c->px_w, px_out_cb, o) == 0) {
            ax_wbuf_consume(&c->out, c->out.len);
            c->px_acks = 0;
            return;
        }
        ax_free(o);
    }
    c->retrying = 1;
    c->retry_next = s->retry;
    s->retry = c;
    if (!ev_is_active(&s->retry_timer))
        ev_timer_start(s->loop, &s->retry_timer);
}

static void px_req_cb(axd_rt *rt, void *ud)
{
    px_req *q = ud;
    axd_front *s = front_of(rt);
    if (!s) {
        ax_free(q);
        return;
    }
    char key[12];
    px_key(key, q->w, q->slot, q->gen);
    axd_conn *c = axd_hmap_get(&s->proxies, key, sizeof key);
    if (!c) {
        c = ax_calloc(1, sizeof *c);
        c->slot = axd_slots_alloc(&s->conns, c, &c->gen);
        if (!c->slot) {
            ax_free(c);
            ax_free(q);
            return; /* no slot: the request is lost, its asker's timeout answers */
        }
        c->fd = -1;
        c->s = s;
        c->proxy = 1;
        c->hello = 1;
        c->px_w = q->w;
        c->px_slot = q->slot;
        c->px_gen = q->gen;
        c->pid = q->pid;
        c->uid = q->uid;
        memcpy(c->px_key, key, sizeof key);
        ax_wbuf_init(&c->out);
        axd_hmap_put(&s->proxies, c->px_key, sizeof c->px_key, c);
    }
    c->px_acks++;
    mark_dirty(c); /* ships the answer, or at least the ack */
    handle_frame(c, &q->h, q->body);
    ax_free(q);
    axd_runtime_run(s->rt);
    axd_listener_flush(s);
}

static void proxy_to_main(axd_conn *c, const ax_frame_hdr *h, const uint8_t *body)
{
    axd_front *s = c->s;
    px_req *q = ax_try_malloc(sizeof *q + h->body_len);
    if (q) {
        *q = (px_req){.w = s->worker, .slot = c->slot, .gen = c->gen, .pid = c->pid, .uid = c->uid, .h = *h};
        if (h->body_len)
            memcpy(q->body, body, h->body_len);
        if (axd_workers_call(s->rt->group, 0, px_req_cb, q) == 0) {
            c->proxied = 1;
            c->px_inflight++;
            return;
        }
        ax_free(q);
    }
    if (!(h->type == AX_T_TELL && (h->flags & AX_F_NOREPLY)))
        send_error(c, h->req_id, AX_EBUSY, "worker 0 cannot take this request now (its inbox is full); retry");
}

typedef struct px_close_job {
    char key[12];
} px_close_job;

static void px_close_cb(axd_rt *rt, void *ud)
{
    px_close_job *j = ud;
    axd_front *s = front_of(rt);
    axd_conn *c = s ? axd_hmap_get(&s->proxies, j->key, sizeof j->key) : NULL;
    if (c)
        conn_close(c, NULL);
    ax_free(j);
}

/* A connection with a stand-in closed: the stand-in closes too (its monitors, its
 * subscription). */
static void px_close_main(axd_conn *c)
{
    px_close_job *j = ax_malloc(sizeof *j);
    px_key(j->key, c->s->worker, c->slot, c->gen);
    if (axd_workers_call(c->s->rt->group, 0, px_close_cb, j) != 0) {
        ax_free(j); /* worker 0 is swamped: the stand-in stays until the daemon stops */
        axd_log(AX_LOG_WARN, "client", "worker 0's inbox is full: a closed connection's stand-in stays");
    }
}

static void accept_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)revents;
    axd_front *s = w->data;
    for (int i = 0; i < 64; i++) {
        int fd = accept4(s->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EMFILE || errno == ENFILE) {
                /* Out of descriptors: stop accepting for a second rather than spin. */
                axd_log(AX_LOG_WARN, "client", "accept: %s; pausing accepts for 1 s", strerror(errno));
                ev_io_stop(loop, &s->listen_io);
                ev_timer_start(loop, &s->accept_pause);
            }
            return;
        }
        struct ucred cr = {0};
        if (!peer_allowed(s, fd, &cr)) {
            s->rt->ctr.clients_refused++;
            axd_log(AX_LOG_WARN, "client", "refused pid %d uid %d gid %d: not root, the daemon's user or the socket's group",
                   (int)cr.pid, (int)cr.uid, (int)cr.gid);
            refuse(fd, AX_EPERM, "permission denied: not root, the daemon's user or in the socket's group");
            continue;
        }
        if (atomic_load_explicit(&s->clients, memory_order_relaxed) >= s->cfg->max_clients) {
            s->rt->ctr.clients_refused++;
            axd_log(AX_LOG_WARN, "client", "refused pid %d: client.max_clients (%u) reached", (int)cr.pid,
                   s->cfg->max_clients);
            refuse(fd, AX_EBUSY, "too many clients (client.max_clients)");
            continue;
        }
        /* connections are spread over the workers in turn; each is served on its own */
        uint32_t wk = s->n_fronts > 1 ? s->next_conn_worker++ % s->n_fronts : 0;
        atomic_fetch_add_explicit(&s->clients, 1, memory_order_relaxed);
        s->rt->ctr.clients_accepted++;
        if (wk && adopt_on(s, wk, fd, &cr) == 0)
            continue;
        if (!conn_new(s, fd, cr.pid, cr.uid))
            atomic_fetch_sub_explicit(&s->clients, 1, memory_order_relaxed);
    }
}

static void accept_pause_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)revents;
    axd_front *s = w->data;
    if (s->listen_fd >= 0)
        ev_io_start(loop, &s->listen_io);
}

/* Refuse to take over a socket another live daemon serves; remove a stale one. */
static int claim_path(const char *path, char *err, size_t errlen)
{
    struct stat st;
    if (lstat(path, &st) != 0)
        return errno == ENOENT ? 0 : (snprintf(err, errlen, "%s: %s", path, strerror(errno)), -1);
    if (!S_ISSOCK(st.st_mode)) {
        snprintf(err, errlen, "%s exists and is not a socket; refusing to remove it", path);
        return -1;
    }
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path);
    int live = fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0;
    if (fd >= 0)
        close(fd);
    if (live) {
        snprintf(err, errlen, "another axactord is already serving %s", path);
        return -1;
    }
    unlink(path);
    return 0;
}

/* The socket's directory must be a real directory owned by the daemon's user or root and
 * writable by nobody else: whoever can write to it can replace the socket with a
 * listener of their own (and capture what root's axctl sends). */
static int check_socket_dir(const char *dir, char *err, size_t errlen)
{
    struct stat st;
    if (lstat(dir, &st) != 0) {
        snprintf(err, errlen, "socket directory %s: %s", dir, strerror(errno));
        return -1;
    }
    if (!S_ISDIR(st.st_mode)) {
        snprintf(err, errlen, "socket directory %s is not a directory (a symlink?); refusing it", dir);
        return -1;
    }
    const char *why = axd_untrusted(&st);
    if (why == AXD_UNTRUSTED_OWNER) {
        snprintf(err, errlen,
                 "socket directory %s is owned by uid %u, not by the daemon's user (uid %u) or root: that user "
                 "could replace the socket; use a directory of the daemon's own",
                 dir, (unsigned)st.st_uid, (unsigned)geteuid());
        return -1;
    }
    if (why) {
        snprintf(err, errlen,
                 "socket directory %s is writable by %s (mode %04o): they could replace the socket; use a "
                 "directory of the daemon's own (mode 0750)",
                 dir, (st.st_mode & S_IWOTH) ? "everyone" : "another group", (unsigned)(st.st_mode & 07777));
        return -1;
    }
    return 0;
}

static void sink_flush(void *ud) { axd_listener_flush(ud); }

/* Close every connection of front s (its own thread) and stop its timers. */
static void front_close_all(axd_front *s)
{
    axd_listener_flush(s);
    for (uint32_t i = 1; i < s->conns.cap; i++) {
        axd_conn *c = s->conns.ptr[i];
        if (c)
            conn_close(c, "daemon stopping");
    }
    for (axd_conn *c = s->retry; c;) { /* stand-ins waiting to ship: nobody to ship to now */
        axd_conn *n = c->retry_next;
        c->retrying = 0;
        c->retry_next = NULL;
        mark_dirty(c);
        c = n;
    }
    s->retry = NULL;
    ev_timer_stop(s->loop, &s->retry_timer);
    axd_listener_flush(s);
}

static const axd_client_sink sink_ops;

/* A worker's front, on that worker's thread at its end (workers.c quit). */
static void sink_stop(void *ud)
{
    axd_front *s = ud;
    front_close_all(s);
    axd_slots_free(&s->conns);
    if (s->rt->sink_ud == s)
        axd_rt_set_sink(s->rt, NULL, NULL);
}

static const axd_client_sink sink_ops = {
    .send_event = sink_send_event, .alive = sink_alive, .flush = sink_flush, .stop = sink_stop};

static axd_front *front_of(axd_rt *rt) { return rt->sink == &sink_ops ? rt->sink_ud : NULL; }

cJSON *axd_front_status_json(axd_front *s)
{
    cJSON *doc = axd_runtime_status_json(s->rt);
    cJSON_AddNumberToObject(doc, "clients", atomic_load_explicit(&s->main->clients, memory_order_relaxed));
    cJSON_AddStringToObject(doc, "log_level",
                            axd_log_level_name(atomic_load_explicit(&axd_log_threshold, memory_order_relaxed)));
    cJSON_AddStringToObject(doc, "log_target", axd_log_target_name());
    axd_route_status(s->keyed, doc);
    axd_route_drain_status(s->keyed, doc);
    return doc;
}

static void front_install_cb(axd_rt *rt, void *ud)
{
    axd_front *f = *(axd_front **)ud;
    axd_rt_set_sink(rt, &sink_ops, f); /* on its own thread */
}

/* A front for each of workers 1..n-1 (their client sink); connections reach them from
 * accept_cb. A worker that cannot install one in time gets no connections. */
static void fronts_start(axd_front *m)
{
    axd_workers *g = m->rt->group;
    if (!g || g->n < 2)
        return;
    m->fronts = ax_calloc(g->n, sizeof *m->fronts);
    m->fronts[0] = m;
    m->n_fronts = 1;
    for (uint32_t k = 1; k < g->n; k++) {
        axd_front *f = ax_calloc(1, sizeof *f);
        f->rt = g->w[k].rt;
        f->loop = g->w[k].loop;
        f->cfg = m->cfg;
        f->keyed = m->keyed;
        f->listen_fd = -1;
        f->worker = k;
        f->main = m;
        axd_slots_init(&f->conns, m->cfg->max_clients + 16);
        ev_timer_init(&f->retry_timer, px_retry_cb, 0.001, 0.);
        f->retry_timer.data = f;
        if (axd_workers_sync(g, 0, k, front_install_cb, &f, sizeof f, 5000) != 0) {
            axd_log(AX_LOG_WARN, "client", "worker %u did not take its client front in time; it serves no clients", k);
            break; /* its front may still be installed later: keep it, give it nothing */
        }
        m->fronts[m->n_fronts++] = f;
    }
}

static void front_stop_cb(axd_rt *rt, void *ud)
{
    (void)ud;
    if (rt->sink == &sink_ops)
        sink_stop(rt->sink_ud);
}

int axd_listener_start(axd_front *s, axd_rt *rt, axd_keyed *keyed, char *err, size_t errlen)
{
    axd_cluster *cl = s->cluster;
    memset(s, 0, sizeof *s);
    s->rt = rt;
    s->loop = rt->loop;
    s->cfg = rt->cfg;
    s->keyed = keyed;
    s->cluster = cl;
    s->listen_fd = -1;
    s->main = s;
    s->n_fronts = 1;
    atomic_init(&s->clients, 0);
    atomic_init(&s->next_worker, 0);
    axd_hmap_init(&s->proxies);
    const char *path = s->cfg->socket_path;
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof sa.sun_path) {
        snprintf(err, errlen, "client.socket path is too long (max %zu bytes)", sizeof sa.sun_path - 1);
        return AX_ECONFIG;
    }
    /* The socket lives in a directory of its own; create it (0750) if missing. */
    char dir[sizeof sa.sun_path];
    strcpy(dir, path);
    char *slash = strrchr(dir, '/');
    if (!slash || slash == dir) {
        snprintf(err, errlen, "client.socket %s must be in a directory of its own (e.g. /run/axactor/)", path);
        return AX_ECONFIG;
    }
    *slash = 0;
    if (mkdir(dir, 0750) != 0 && errno != EEXIST) {
        snprintf(err, errlen, "cannot create socket directory %s: %s", dir, strerror(errno));
        return AX_EIO;
    }
    if (check_socket_dir(dir, err, errlen) != 0)
        return AX_ECONFIG;
    if (claim_path(path, err, errlen) != 0)
        return AX_EIO;
    /* Bind in a private directory (0700) with the final mode from the umask, set the group
     * there, then rename into place: the socket is never visible with other permissions,
     * and nothing is chmod/chowned by a path another user could swap. */
    char priv[sizeof sa.sun_path];
    int n = snprintf(priv, sizeof priv, "%s/.axactord-XXXXXX", dir);
    if (n < 0 || (size_t)n + 3 >= sizeof sa.sun_path) {
        snprintf(err, errlen, "client.socket directory %s is too long for a private bind (max %zu bytes)", dir,
                 sizeof sa.sun_path - 22);
        return AX_ECONFIG;
    }
    if (!mkdtemp(priv)) {
        snprintf(err, errlen, "cannot create a private directory in %s: %s", dir, strerror(errno));
        return AX_EIO;
    }
    size_t pl = strlen(priv); /* fits: checked above */
    memcpy(sa.sun_path, priv, pl);
    memcpy(sa.sun_path + pl, "/s", 3);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        snprintf(err, errlen, "socket: %s", strerror(errno));
        rmdir(priv);
        return AX_EIO;
    }
    mode_t old = umask(0777 & ~(mode_t)s->cfg->socket_mode);
    int rc = bind(fd, (struct sockaddr *)&sa, sizeof sa);
    umask(old);
    const char *what = NULL;
    int code = AX_EIO;
    if (rc != 0) {
        what = "bind";
    } else if (s->cfg->socket_group && *s->cfg->socket_group) {
        struct group *g = getgrnam(s->cfg->socket_group);
        if (!g || chown(sa.sun_path, (uid_t)-1, g->gr_gid) != 0) {
            snprintf(err, errlen, "client.socket_group '%s': %s", s->cfg->socket_group,
                     g ? strerror(errno) : "no such group");
            code = AX_ECONFIG;
            what = "";
        }
    }
    if (!what && rename(sa.sun_path, path) != 0)
        what = "rename into place";
    if (!what && listen(fd, SOMAXCONN) != 0)
        what = "listen";
    if (what) {
        if (*what)
            snprintf(err, errlen, "%s %s: %s", what, path, strerror(errno));
        unlink(sa.sun_path);
        rmdir(priv);
        close(fd);
        return code;
    }
    rmdir(priv);
    s->socket_created = 1;
    s->listen_fd = fd;
    /* room for the stand-ins of the other workers' connections too */
    axd_slots_init(&s->conns, 2 * s->cfg->max_clients + 16);
    ev_timer_init(&s->retry_timer, px_retry_cb, 0.001, 0.);
    s->retry_timer.data = s;
    ev_io_init(&s->listen_io, accept_cb, fd, EV_READ);
    s->listen_io.data = s;
    ev_io_start(s->loop, &s->listen_io);
    ev_timer_init(&s->accept_pause, accept_pause_cb, 1.0, 0.);
    s->accept_pause.data = s;
    axd_rt_set_sink(rt, &sink_ops, s);
    fronts_start(s);
    axd_log(AX_LOG_INFO, "client", "listening on %s (mode %04o)%s", path, s->cfg->socket_mode,
            s->n_fronts > 1 ? ", connections spread over the workers" : "");
    return AX_OK;
}

void axd_listener_pause(axd_front *s)
{
    if (s->listen_fd >= 0) {
        ev_io_stop(s->loop, &s->listen_io);
        ev_timer_stop(s->loop, &s->accept_pause);
    }
}

void axd_listener_stop(axd_front *s)
{
    if (!s->rt)
        return; /* never started */
    if (s->listen_fd >= 0) {
        ev_io_stop(s->loop, &s->listen_io);
        ev_timer_stop(s->loop, &s->accept_pause);
        close(s->listen_fd);
        s->listen_fd = -1;
    }
    /* the other workers' connections, on their threads (if the workers still run; at a
     * shutdown their own end closed them) */
    axd_workers *g = s->rt->group;
    for (uint32_t k = 1; k < s->n_fronts; k++) {
        axd_front *f = s->fronts[k];
        int none = 0;
        if (g && k < g->n && axd_workers_sync(g, 0, k, front_stop_cb, &none, sizeof none, 5000) != 0)
            continue; /* still that worker's: left, not freed */
        axd_slots_free(&f->conns);
        ax_free(f);
    }
    ax_free(s->fronts);
    s->fronts = NULL;
    s->n_fronts = 1;
    front_close_all(s);
    axd_slots_free(&s->conns);
    axd_hmap_free(&s->proxies);
    if (s->socket_created) {
        unlink(s->cfg->socket_path);
        s->socket_created = 0;
    }
    if (s->rt->sink_ud == s)
        axd_rt_set_sink(s->rt, NULL, NULL); /* asks still pending find no client */
}
