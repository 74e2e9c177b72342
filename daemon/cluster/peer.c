/* Peers: links over the overlay, the handshake on each, sessions, the dedup of
 * simultaneous connects, reconnects with backoff, heartbeats and failure detection,
 * and the control/data priority of outgoing frames (control queue first, data only
 * while the link's output is below the overlay's low-water mark; heartbeats bypass the
 * queues). Every frame from a link that has not completed the handshake is handled by
 * the handshake state machine only, so no unauthenticated byte reaches actor code. */
#include <stdio.h>
#include <string.h>

#include "ax_mem.h"
#include "cluster_int.h"
#include "log.h"

static void link_close(axd_cl_link *l, int code, const char *why, int send_close);
static void reconnect_cb(struct ev_loop *loop, ev_timer *w, int revents);

const char *axd_cl_state_name(int st)
{
    switch (st) {
    case NS_IDLE: return "idle";
    case NS_CONNECTING: return "connecting";
    case NS_UP: return "up";
    case NS_DISCONNECTED: return "disconnected";
    case NS_DOWN: return "down";
    }
    return "?";
}

static double now_of(axd_cluster *cl) { return ev_now(cl->s->loop); }

axd_cl_node *axd_cl_node_get(axd_cluster *cl, const char *name, int create)
{
    for (axd_cl_node *n = cl->nodes; n; n = n->next)
        if (!strcmp(n->name, name))
            return n;
    if (!create)
        return NULL;
    axd_cl_node *n = ax_calloc(1, sizeof *n);
    snprintf(n->name, sizeof n->name, "%s", name);
    n->cl = cl;
    n->backoff_ms = cl->backoff_min;
    n->since = now_of(cl);
    ev_timer_init(&n->reconnect, reconnect_cb, 0., 0.);
    n->reconnect.data = n;
    n->next = cl->nodes;
    cl->nodes = n;
    return n;
}

/* ---------------- sending ---------------- */

static void count_out(axd_cl_node *n, size_t bytes)
{
    if (n) {
        n->frames_out++;
        n->bytes_out += bytes;
    }
}

/* Seal and send one frame now, ahead of anything queued (heartbeats, CLOSE). */
static void send_direct(axd_cl_link *l, uint8_t type, const void *body, size_t bn)
{
    ax_wbuf b;
    ax_wbuf_init(&b);
    size_t st = ax_peer_frame_begin(&b, type, 0);
    ax_wbuf_put(&b, body, bn);
    if (ax_peer_frame_end(&b, st, l->cl->max_frame) == 0) {
        axd_psess_seal(&l->sess, b.data, b.len);
        if (l->ol->ovl->ops->send(l->ol, b.data, b.len) == 0)
            count_out(l->node, b.len);
    }
    ax_wbuf_free(&b);
}

static void send_raw(axd_cl_link *l, ax_wbuf *b)
{
    if (b->len && l->ol)
        l->ol->ovl->ops->send(l->ol, b->data, b->len);
    b->len = 0;
}

static uint32_t frame_len_at(const uint8_t *p)
{
    return (uint32_t)p[12] << 24 | (uint32_t)p[13] << 16 | (uint32_t)p[14] << 8 | p[15];
}

/* Close the open data batch (fill its body_len). */
static void close_batch(axd_cl_inc *inc, uint32_t max_frame)
{
    if (inc->open_at == SIZE_MAX)
        return;
    ax_peer_frame_end(&inc->dataq, inc->open_at, max_frame);
    inc->open_at = SIZE_MAX;
}

static size_t known_epochs(axd_rt *s, uint32_t from, uint32_t *sh, uint64_t *ep, size_t cap)
{
    return s->gate ? s->gate->known_epochs(s->gate_ud, from, sh, ep, cap) : 0;
}

void axd_cl_send_epochs(axd_cluster *cl, axd_cl_inc *inc)
{
    enum { PER_FRAME = 4096 }; /* 12-byte records: 48 KiB frames */
    uint32_t *sh = ax_malloc(PER_FRAME * sizeof *sh);
    uint64_t *ep = ax_malloc(PER_FRAME * sizeof *ep);
    size_t n = known_epochs(cl->s, 0, sh, ep, PER_FRAME);
    for (uint32_t from = 0; n > 0 && !inc->down;) {
        size_t st = ax_peer_frame_begin(&inc->ctlq, AX_PT_EPOCHS, 0);
        for (size_t i = 0; i < n; i++) {
            ax_peer_rec r = {.shard = sh[i], .epoch = ep[i]};
            ax_peer_rec_put(&inc->ctlq, AX_PT_EPOCHS, &r);
        }
        if (ax_peer_frame_end(&inc->ctlq, st, cl->max_frame) != 0)
            break;
        from = sh[n - 1] + 1;
        n = n == PER_FRAME ? known_epochs(cl->s, from, sh, ep, PER_FRAME) : 0;
    }
    ax_free(sh);
    ax_free(ep);
}

int axd_cl_queue(axd_cluster *cl, axd_cl_inc *inc, uint8_t type, const ax_peer_rec *r)
{
    if (inc->down)
        return AX_ENOCONN;
    if (!ax_peer_type_is_data(type)) {
        if (inc->ctlq.len > AXD_CL_QUEUE_MAX)
            return AX_EFULL;
        size_t st = ax_peer_frame_begin(&inc->ctlq, type, 0);
        ax_peer_rec_put(&inc->ctlq, type, r);
        return ax_peer_frame_end(&inc->ctlq, st, cl->max_frame);
    }
    if (inc->dataq.len > AXD_CL_QUEUE_MAX)
        return AX_EFULL;
    for (int attempt = 0; attempt < 2; attempt++) {
        if (inc->open_at != SIZE_MAX &&
            (inc->open_type != type || inc->dataq.len - inc->open_at - AX_PEER_HDR_SIZE >= AX_PEER_BATCH_BODY))
            close_batch(inc, cl->max_frame);
        if (inc->open_at == SIZE_MAX) {
            inc->open_at = ax_peer_frame_begin(&inc->dataq, type, 0);
            inc->open_type = type;
        }
        size_t before = inc->dataq.len;
        ax_peer_rec_put(&inc->dataq, type, r);
        if (inc->dataq.err) {
            inc->dataq.err = 0;
            inc->dataq.len = before;
            return AX_ENOMEM;
        }
        if (inc->dataq.len - inc->open_at - AX_PEER_HDR_SIZE <= cl->max_frame)
            return 0;
        /* does not fit this batch: retry alone in a new frame, else it is too big */
        inc->dataq.len = before;
        int alone = before == inc->open_at + AX_PEER_HDR_SIZE;
        if (alone) {
            inc->dataq.len = inc->open_at;
            inc->open_at = SIZE_MAX;
            return AX_ETOOBIG;
        }
        close_batch(inc, cl->max_frame);
    }
    return AX_ETOOBIG;
}

/* Push queued frames into the link: every control frame, then data frames while the
 * link's output stays under twice the low-water mark. */
static void push_queue(axd_cl_link *l, ax_wbuf *q, int limited)
{
    const axd_ovl_ops *ops = l->ol->ovl->ops;
    size_t off = 0, cap = 2 * l->ol->ovl->low_water;
    while (q->len - off >= AX_PEER_HDR_SIZE) {
        if (limited && ops->queued(l->ol) >= cap)
            break;
        size_t total = AX_PEER_HDR_SIZE + frame_len_at(q->data + off);
        if (total > q->len - off)
            break; /* cannot happen: frames are complete here */
        axd_psess_seal(&l->sess, q->data + off, total);
        if (ops->send(l->ol, q->data + off, total) != 0)
            break;
        count_out(l->node, total);
        off += total;
    }
    if (off)
        ax_wbuf_consume(q, off);
}

void axd_cl_flush_node(axd_cluster *cl, axd_cl_node *n)
{
    axd_cl_link *l = n->link;
    axd_cl_inc *inc = n->inc;
    if (!l || l->state != LK_UP || !inc || inc->down)
        return;
    if (inc->ctlq.len)
        push_queue(l, &inc->ctlq, 0);
    if (inc->dataq.len) {
        close_batch(inc, cl->max_frame);
        push_queue(l, &inc->dataq, 1);
    }
}

static void flush_cb(struct ev_loop *loop, ev_prepare *w, int revents)
{
    (void)loop;
    (void)revents;
    axd_cluster *cl = w->data;
    for (axd_cl_node *n = cl->nodes; n; n = n->next)
        if (n->inc && (n->inc->ctlq.len || n->inc->dataq.len))
            axd_cl_flush_node(cl, n);
}

/* ---------------- links ---------------- */

static axd_cl_link *link_new(axd_cluster *cl, axd_ovl_link *ol, int outgoing)
{
    axd_cl_link *l = ax_calloc(1, sizeof *l);
    l->cl = cl;
    l->ol = ol;
    l->outgoing = outgoing;
    l->state = LK_HS;
    l->opened_at = now_of(cl);
    ol->ud = l;
    l->next = cl->links;
    if (cl->links)
        cl->links->prev = l;
    cl->links = l;
    return l;
}

static void self_wire_id(axd_cluster *cl, char *buf, size_t n)
{
    if (axd_node_id_format(buf, n, cl->name, cl->boot, ++cl->session_counter) != 0)
        snprintf(buf, n, "%s", cl->s->node_id);
}

static int link_hs_init(axd_cl_link *l, const char *expect)
{
    axd_cluster *cl = l->cl;
    char self[AXD_NODE_ID_MAX + 1];
    self_wire_id(cl, self, sizeof self);
    axd_hs_cfg hc = {.self_id = self,
                    .expect_name = expect,
                    .token = cl->token,
                    .token_len = cl->token_len,
                    .shard_count = cl->shard_count,
                    .store = cl->store_id};
    return axd_hs_init(&l->hs, l->outgoing ? AXD_HS_INITIATOR : AXD_HS_RESPONDER, &hc);
}

static void schedule_reconnect(axd_cl_node *n)
{
    axd_cluster *cl = n->cl;
    if (!n->in_book || cl->stopping || n->link || n->dialing || ev_is_active(&n->reconnect))
        return;
    ev_timer_set(&n->reconnect, n->backoff_ms / 1000.0, 0.);
    ev_timer_start(cl->s->loop, &n->reconnect);
    n->backoff_ms *= 2;
    if (n->backoff_ms > cl->backoff_max)
        n->backoff_ms = cl->backoff_max;
}

static void node_dial(axd_cl_node *n)
{
    axd_cluster *cl = n->cl;
    axd_ovl_link *ol = NULL;
    if (cl->stopping || n->link || n->dialing)
        return;
    if (cl->ovl->ops->connect(cl->ovl, n->name, &ol) != 0) {
        axd_log(AX_LOG_WARN, "cluster", "no address for peer %s", n->name);
        return;
    }
    axd_cl_link *l = link_new(cl, ol, 1);
    l->node = n;
    n->dialing = l;
    if (!n->inc || n->state == NS_IDLE)
        n->state = NS_CONNECTING;
    if (link_hs_init(l, n->name) != 0) {
        link_close(l, AX_EINVAL, "cannot start the handshake", 0);
        return;
    }
    axd_log(AX_LOG_DEBUG, "cluster", "dialing %s", n->name);
}

static void reconnect_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    node_dial(w->data);
}

/* Forget the link (after the overlay closed it or we did). */
static void link_gone(axd_cl_link *l, const char *why)
{
    axd_cluster *cl = l->cl;
    axd_cl_node *n = l->node;
    if (l->state == LK_DEAD)
        return;
    int was_up = l->state == LK_UP;
    l->state = LK_DEAD;
    l->ol = NULL;
    if (n && n->dialing == l)
        n->dialing = NULL;
    if (n && n->link == l) {
        n->link = NULL;
        if (n->state == NS_UP) {
            n->state = NS_DISCONNECTED;
            n->since = now_of(cl);
        }
        if (was_up && !cl->stopping)
            axd_log(AX_LOG_WARN, "cluster", "link to %s lost: %s", n->inc ? n->inc->wire_id : n->name, why);
    }
    if (n && !n->link && !n->dialing && n->state == NS_CONNECTING)
        n->state = n->inc ? (n->inc->down ? NS_DOWN : NS_DISCONNECTED) : NS_IDLE;
    if (n)
        schedule_reconnect(n);
    if (l->prev)
        l->prev->next = l->next;
    else
        cl->links = l->next;
    if (l->next)
        l->next->prev = l->prev;
    axd_hs_clear(&l->hs);
    axd_psess_free(&l->sess);
    ax_free(l);
}

static void link_close(axd_cl_link *l, int code, const char *why, int send_close)
{
    if (l->state == LK_DEAD)
        return;
    if (send_close && l->state == LK_UP && l->ol) {
        ax_wbuf b;
        ax_wbuf_init(&b);
        ax_peer_reason_put(&b, code, why);
        send_direct(l, AX_PT_CLOSE, b.data, b.len);
        ax_wbuf_free(&b);
    }
    axd_ovl_link *ol = l->ol;
    link_gone(l, why);
    if (ol)
        ol->ovl->ops->close(ol);
}

/* ---------------- handshake completion and dedup ---------------- */

static void link_established(axd_cl_link *l)
{
    axd_cluster *cl = l->cl;
    axd_cl_node *n = l->node;
    const axd_node_id *pid = &l->hs.peer;
    double now = now_of(cl);
    cl->handshakes++;
    n->last_error[0] = 0;
    n->store_ok = 1; /* until its first heartbeat says otherwise */
    n->leaving = 0;
    n->features = l->hs.features;
    if (n->inc && strcmp(n->inc->boot, pid->boot) != 0) {
        if (!n->inc->down) {
            axd_log(AX_LOG_WARN, "cluster", "peer %s restarted (was %s): declaring the old incarnation down",
                   n->name, n->inc->wire_id);
            axd_cl_inc_down(cl, n->inc, "restarted");
        }
        n->inc = NULL;
    }
    if (!n->inc)
        n->inc = axd_cl_inc_new(cl, n, pid->boot);
    else if (n->inc->down)
        axd_log(AX_LOG_INFO, "cluster", "peer %s is reachable again", n->name);
    n->inc->down = 0;
    n->inc->session = pid->session;
    snprintf(n->inc->wire_id, sizeof n->inc->wire_id, "%s", l->hs.expect);
    axd_hs_take_session(&l->hs, &l->sess);
    axd_hs_clear(&l->hs);
    l->state = LK_UP;
    if (l->ol)
        l->ol->max_frame = 0; /* authenticated: cluster.max_frame */
    axd_cl_link *old = n->link;
    n->link = l;
    if (n->dialing == l)
        n->dialing = NULL;
    if (old && old != l)
        link_close(old, AX_ESTALE, "replaced by a newer link", 1);
    n->state = NS_UP;
    n->since = now;
    n->last_heard = now;
    n->last_hb = 0;
    n->backoff_ms = cl->backoff_min;
    ev_timer_stop(cl->s->loop, &n->reconnect);
    axd_log(AX_LOG_INFO, "cluster", "peer %s up (session %llu, %s link, %s)", n->inc->wire_id,
           (unsigned long long)n->inc->session, l->outgoing ? "outgoing" : "incoming", l->remote);
    axd_cl_send_epochs(cl, n->inc);
    axd_cl_flush_node(cl, n);
}

/* Responder: the peer proved the token. Keep this link or refuse it as a duplicate:
 * an established link initiated by us stays; one initiated by the peer is replaced
 * (it reconnected); against our own link still in handshake, the link dialed by the
 * node with the lower logical name survives — both ends decide the same way. */
static void responder_ready(axd_cl_link *l, ax_wbuf *out)
{
    axd_cluster *cl = l->cl;
    axd_cl_node *n = axd_cl_node_get(cl, l->hs.peer.name, 1);
    const char *dup = NULL;
    int same_boot = n->inc && !strcmp(n->inc->boot, l->hs.peer.boot);
    if (n->link && n->link->state == LK_UP && same_boot && n->link->outgoing)
        dup = "duplicate connection: an established link dialed by this node exists";
    else if (n->dialing && !n->link) {
        if (strcmp(cl->name, n->name) < 0)
            dup = "duplicate connection: simultaneous connect, the link dialed by the lower name wins";
        else
            link_close(n->dialing, AX_ESTALE, "simultaneous connect lost the tie-break", 0);
    }
    if (dup) {
        axd_log(AX_LOG_DEBUG, "cluster", "refusing a link from %s: %s", l->hs.expect, dup);
        axd_hs_refuse(&l->hs, AX_EEXIST, dup, out);
        send_raw(l, out);
        link_close(l, AX_EEXIST, dup, 0);
        return;
    }
    if (axd_hs_accept(&l->hs, out) != 0) {
        link_close(l, AX_ENOMEM, "cannot accept the handshake", 0);
        return;
    }
    l->node = n;
    send_raw(l, out);
    count_out(n, AX_PEER_HDR_SIZE);
    link_established(l);
}

static void hs_failed(axd_cl_link *l, int rc, ax_wbuf *out)
{
    axd_cluster *cl = l->cl;
    axd_cl_node *n = l->node ? l->node : (l->hs.peer.name[0] ? axd_cl_node_get(cl, l->hs.peer.name, 0) : NULL);
    if (rc == AX_EAUTH) {
        cl->auth_failures++;
        if (n)
            n->auth_failures++;
    }
    int dup = rc == AX_EEXIST && l->hs.refused_by_peer;
    if (n && rc != AX_EEXIST) /* shown in `axctl nodes` until a handshake succeeds */
        snprintf(n->last_error, sizeof n->last_error, "%s", l->hs.why);
    axd_log(dup ? AX_LOG_DEBUG : AX_LOG_WARN, "cluster", "handshake with %s (%s) failed: %s",
           l->hs.peer.name[0] ? l->hs.peer.name : (n ? n->name : "?"), l->remote, l->hs.why);
    send_raw(l, out);
    char why[sizeof l->hs.why];
    snprintf(why, sizeof why, "%s", l->hs.why);
    link_close(l, rc, why, 0);
}

static void on_hs_frame(axd_cl_link *l, const uint8_t *frame, size_t n)
{
    ax_wbuf out;
    ax_wbuf_init(&out);
    uint8_t type = frame[3];
    if (!ax_peer_type_is_handshake(type)) {
        /* A frame that claims an authenticated session on a link that has none:
         * rejected here, before any actor code can see it. */
        l->cl->unauth_frames++;
        axd_log(AX_LOG_WARN, "cluster", "rejected a %s frame from %s: the link is not authenticated",
               ax_peer_type_name(type), l->remote);
    }
    int rc = axd_hs_input(&l->hs, frame, n, &out);
    if (rc < 0) {
        if (!ax_peer_type_is_handshake(type)) {
            axd_cl_node *nd = l->hs.peer.name[0] ? axd_cl_node_get(l->cl, l->hs.peer.name, 0) : l->node;
            l->cl->auth_failures++;
            if (nd)
                nd->auth_failures++;
        }
        hs_failed(l, rc, &out);
    } else if (rc == AXD_HS_READY) {
        if (l->outgoing) {
            send_raw(l, &out);
            link_established(l);
        } else {
            responder_ready(l, &out);
        }
    } else {
        send_raw(l, &out);
    }
    ax_wbuf_free(&out);
}

/* ---------------- authenticated frames ---------------- */

/* A PONG leaves after every frame queued to the peer before its PING arrived: queued
 * frames are pushed first, and data frames the link cannot take yet are followed by the
 * PONG in the data queue. (The drain's barrier relies on it: axd_cl_barrier_done.) */
static void send_pong(axd_cl_link *l, const uint8_t *body, size_t bn)
{
    axd_cl_node *n = l->node;
    axd_cl_inc *inc = n->inc;
    if (n->link == l && inc && !inc->down && (inc->ctlq.len || inc->dataq.len))
        axd_cl_flush_node(l->cl, n);
    if (n->link != l || !inc || inc->down || !inc->dataq.len) {
        send_direct(l, AX_PT_PONG, body, bn);
        return;
    }
    close_batch(inc, l->cl->max_frame);
    size_t st = ax_peer_frame_begin(&inc->dataq, AX_PT_PONG, 0);
    ax_wbuf_put(&inc->dataq, body, bn);
    if (ax_peer_frame_end(&inc->dataq, st, l->cl->max_frame) != 0)
        send_direct(l, AX_PT_PONG, body, bn);
}

static void on_ping(axd_cl_link *l, uint8_t type, const uint8_t *body, size_t bn)
{
    axd_cl_node *n = l->node;
    ax_peer_ping pg;
    if (ax_peer_ping_get(body, bn, &pg, NULL) != 0)
        return;
    double now = now_of(l->cl);
    if (type == AX_PT_PING) {
        if (n->last_hb > 0 && now - n->last_hb > n->hb_gap_max)
            n->hb_gap_max = now - n->last_hb;
        n->last_hb = now;
        n->hb_recv++;
        int ok = (pg.flags & AX_PING_STORE_OK) != 0;
        if (ok != n->store_ok)
            axd_log(ok ? AX_LOG_INFO : AX_LOG_WARN, "cluster",
                   ok ? "peer %s reaches the lease store again: it counts in the fair share"
                      : "peer %s cannot reach the lease store: its shards are taken over as their leases expire",
                   n->name);
        n->store_ok = ok;
        int leaving = (pg.flags & AX_PING_LEAVING) != 0;
        if (leaving != n->leaving)
            axd_log(AX_LOG_INFO, "cluster",
                   leaving ? "peer %s drains: it hands its shards over and does not count in the fair share"
                           : "peer %s takes shards again (drain ended)",
                   n->name);
        n->leaving = leaving;
        send_pong(l, body, bn);
    } else {
        if (pg.id > n->pong_id && pg.id <= n->ping_id)
            n->pong_id = pg.id;
        uint64_t now_us = (uint64_t)(now * 1e6);
        if (now_us >= pg.sent_us) {
            n->rtt_ms = (double)(now_us - pg.sent_us) / 1000.0;
            axd_histo_observe(&n->h_rtt, n->rtt_ms / 1000.0);
        }
    }
}

static void on_up_frame(axd_cl_link *l, const uint8_t *frame, size_t n)
{
    axd_cluster *cl = l->cl;
    axd_cl_node *nd = l->node;
    ax_peer_hdr h;
    if (ax_peer_hdr_decode(frame, n, cl->max_frame, &h, NULL) != 0)
        return;
    int rc = axd_psess_open(&l->sess, &h, frame, n);
    if (rc != 0) {
        if (rc == AX_ESTALE)
            nd->replayed++;
        else
            nd->forged++;
        axd_log(AX_LOG_DEBUG, "cluster", "dropped a %s %s frame from %s", rc == AX_ESTALE ? "replayed" : "forged",
               ax_peer_type_name(h.type), nd->name);
        return;
    }
    nd->frames_in++;
    nd->bytes_in += n;
    const uint8_t *body = frame + AX_PEER_HDR_SIZE;
    if (!ax_peer_type_is_data(h.type))
        nd->last_heard = now_of(cl);
    switch (h.type) {
    case AX_PT_PING:
    case AX_PT_PONG:
        on_ping(l, h.type, body, h.body_len);
        return;
    case AX_PT_CLOSE: {
        ax_peer_reason r;
        char why[160] = "closed";
        if (ax_peer_reason_get(body, h.body_len, &r, NULL) == 0)
            snprintf(why, sizeof why, "%.*s", (int)(r.reason_len > 150 ? 150 : r.reason_len), r.reason);
        int shutdown = ax_peer_reason_get(body, h.body_len, &r, NULL) == 0 && r.code == AX_ECANCELED;
        axd_cl_inc *inc = nd->inc;
        axd_log(AX_LOG_INFO, "cluster", "peer %s closed the link: %s", nd->name, why);
        link_close(l, AX_ECONN, why, 0);
        if (shutdown && inc && !inc->down && !nd->link) {
            axd_cl_inc_down(cl, inc, why);
            nd->state = NS_DOWN;
        }
        return;
    }
    default:
        if (ax_peer_type_is_handshake(h.type)) {
            link_close(l, AX_EPROTO, "handshake frame on an established link", 1);
            return;
        }
        if (nd->inc)
            axd_cl_on_frame(cl, nd->inc, h.type, body, h.body_len);
    }
}

/* ---------------- overlay callbacks ---------------- */

static void cb_open(void *user, axd_ovl_link *ol, int outgoing, const char *to)
{
    axd_cluster *cl = user;
    (void)to;
    ol->max_frame = AX_PEER_HS_MAX_BODY; /* until the handshake authenticated the peer */
    if (outgoing) {
        axd_cl_link *l = ol->ud;
        if (!l)
            return;
        snprintf(l->remote, sizeof l->remote, "%s", ol->ovl->ops->remote(ol));
        ax_wbuf out;
        ax_wbuf_init(&out);
        if (axd_hs_start(&l->hs, &out) == 0)
            send_raw(l, &out);
        ax_wbuf_free(&out);
        return;
    }
    int pending = 0;
    axd_cl_link *oldest = NULL; /* links are prepended: the last pending one is the oldest */
    for (axd_cl_link *k = cl->links; k; k = k->next)
        if (k->state == LK_HS && !k->outgoing) {
            pending++;
            oldest = k;
        }
    if (!cl->stopping && pending >= AXD_CL_HS_MAX && oldest) {
        /* Full of strangers that have not authenticated: the oldest makes room, so a
         * flood of idle connections cannot keep a real peer out (a real handshake takes
         * one round trip; a flood would have to open 256 links within it). */
        if (!cl->hs_full_logged++)
            axd_log(AX_LOG_WARN, "cluster", "%d incoming handshakes pending: dropping the oldest for %s", pending,
                   ol->ovl->ops->remote(ol));
        link_close(oldest, AX_EBUSY, "too many pending handshakes: the oldest made room", 0);
        pending--;
    }
    if (cl->stopping || pending >= AXD_CL_HS_MAX) {
        /* unauthenticated connections are cheap to open: cap them (each also times out) */
        if (!cl->stopping && !cl->hs_full_logged++)
            axd_log(AX_LOG_WARN, "cluster", "%d incoming handshakes pending: refusing more (from %s)", pending,
                   ol->ovl->ops->remote(ol));
        ol->ovl->ops->close(ol);
        return;
    }
    cl->hs_full_logged = 0;
    axd_cl_link *l = link_new(cl, ol, 0);
    snprintf(l->remote, sizeof l->remote, "%s", ol->ovl->ops->remote(ol));
    if (link_hs_init(l, NULL) != 0)
        link_close(l, AX_EINVAL, "cannot start the handshake", 0);
}

static void cb_frame(void *user, axd_ovl_link *ol, const uint8_t *frame, size_t n)
{
    (void)user;
    axd_cl_link *l = ol->ud;
    if (!l || l->state == LK_DEAD)
        return;
    if (l->state == LK_HS) {
        on_hs_frame(l, frame, n);
    } else {
        axd_rt *s = l->cl->s;
        on_up_frame(l, frame, n);
        /* A REPLY may have answered a client: send it now, not after the loop's next
         * wake-up (the runtime's check watcher already ran in this iteration). */
        if (s->sink)
            s->sink->flush(s->sink_ud);
    }
}

static void cb_drain(void *user, axd_ovl_link *ol)
{
    axd_cl_link *l = ol->ud;
    if (l && l->state == LK_UP && l->node)
        axd_cl_flush_node(user, l->node);
}

static void cb_close(void *user, axd_ovl_link *ol, const char *why)
{
    (void)user;
    axd_cl_link *l = ol->ud;
    if (!l)
        return;
    if (l->state == LK_HS) /* TLS refusals matter; refused connects while a peer is away do not */
        axd_log(strncmp(why, "TLS", 3) ? AX_LOG_DEBUG : AX_LOG_WARN, "cluster", "link %s%s%s closed during the handshake: %s",
               l->node ? l->node->name : "", l->node ? " " : "", l->remote[0] ? l->remote : "?", why);
    link_gone(l, why);
}

/* ---------------- heartbeats and failure detection ---------------- */

static void send_ping(axd_cluster *cl, axd_cl_node *n, double now)
{
    if (!n->link || n->link->state != LK_UP)
        return;
    uint8_t body[17];
    uint64_t v[2] = {++n->ping_id, (uint64_t)(now * 1e6)};
    for (int k = 0; k < 2; k++)
        for (int i = 0; i < 8; i++)
            body[8 * k + i] = (uint8_t)(v[k] >> (56 - 8 * i));
    const axd_shard_gate *g = cl->s->gate;
    body[16] = (!g || g->store_ok(cl->s->gate_ud)) ? AX_PING_STORE_OK : 0;
    if (g && (n->features & AX_PEER_FEAT_DRAIN) && g->draining(cl->s->gate_ud))
        body[16] |= AX_PING_LEAVING;
    send_direct(n->link, AX_PT_PING, body, sizeof body);
    n->hb_sent++;
}

void axd_cl_heartbeat_now(axd_cluster *cl)
{
    double now = now_of(cl);
    for (axd_cl_node *n = cl->nodes; n; n = n->next)
        if (n->inc && !n->inc->down)
            send_ping(cl, n, now);
}

static int barrier_peer(const axd_cl_node *n)
{
    return n->inc && !n->inc->down && n->link && n->link->state == LK_UP;
}

void axd_cl_barrier_start(axd_cluster *cl)
{
    double now = now_of(cl);
    for (axd_cl_node *n = cl->nodes; n; n = n->next) {
        n->barrier_id = 0;
        if (!barrier_peer(n))
            continue;
        axd_cl_flush_node(cl, n); /* the RELEASED frames before the PING */
        send_ping(cl, n, now);
        n->barrier_id = n->ping_id;
    }
}

int axd_cl_barrier_done(axd_cluster *cl)
{
    for (axd_cl_node *n = cl->nodes; n; n = n->next)
        if (n->barrier_id && barrier_peer(n) && n->pong_id < n->barrier_id)
            return 0; /* a peer that went down meanwhile is not waited for */
    return 1;
}

static void hb_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    axd_cluster *cl = w->data;
    double now = now_of(cl);
    for (axd_cl_link *l = cl->links, *nx; l; l = nx) {
        nx = l->next;
        if (l->state == LK_HS && now - l->opened_at > 2 * cl->connect_timeout)
            link_close(l, AX_ETIMEDOUT, "handshake timed out", 0);
    }
    for (axd_cl_node *n = cl->nodes; n; n = n->next) {
        axd_cl_inc *inc = n->inc;
        if (inc && !inc->down && now - n->last_heard > cl->hb_timeout) {
            char why[96];
            snprintf(why, sizeof why, "no heartbeat for %.0f ms", (now - n->last_heard) * 1000);
            if (n->link)
                link_close(n->link, AX_ETIMEDOUT, why, 1);
            axd_cl_inc_down(cl, inc, why);
            n->state = NS_DOWN;
            n->since = now;
            continue;
        }
        send_ping(cl, n, now);
        if (inc) { /* asks whose reply can no longer matter */
            axd_hmap_ent *e;
            for (size_t i = 0; (i = axd_hmap_next(&inc->asks, i, &e)) != 0;) {
                axd_cl_ask *a = e->val;
                if (now > a->deadline) {
                    axd_hmap_del(&inc->asks, (const char *)&a->req, sizeof a->req);
                    ax_free(a);
                }
            }
        }
    }
}

/* ---------------- start / stop ---------------- */

int axd_cl_peer_start(axd_cluster *cl)
{
    ev_timer_init(&cl->hb, hb_cb, cl->hb_interval, cl->hb_interval);
    cl->hb.data = cl;
    ev_timer_start(cl->s->loop, &cl->hb);
    ev_prepare_init(&cl->flush, flush_cb);
    cl->flush.data = cl;
    ev_prepare_start(cl->s->loop, &cl->flush);
    for (axd_cl_node *n = cl->nodes; n; n = n->next)
        if (n->in_book)
            node_dial(n);
    return 0;
}

int axd_cluster_member_seen(axd_cluster *cl, const char *name, const char *addr)
{
    if (!cl || !name || !*name || !strcmp(name, cl->name))
        return AX_EINVAL;
    axd_cl_node *n = axd_cl_node_get(cl, name, 0);
    int was_listed = n && n->in_book;
    int rc = axd_cl_add_peer(cl, name, addr);
    if (rc < 0)
        return rc;
    n = axd_cl_node_get(cl, name, 0);
    if (n) {
        if (!was_listed)
            n->from_store = 1;
        if (n->gone) {
            n->gone = 0;
            rc = 1;
        }
    }
    if (rc == 1)
        axd_log(AX_LOG_INFO, "cluster", "member %s at %s (from the store)", name, addr);
    return rc;
}

void axd_cluster_member_gone(axd_cluster *cl, const char *name)
{
    axd_cl_node *n = cl ? axd_cl_node_get(cl, name, 0) : NULL;
    if (!n || !n->from_store || n->gone)
        return; /* cluster.peers entries stay */
    n->gone = 1;
    n->in_book = 0; /* no more dials */
    ev_timer_stop(cl->s->loop, &n->reconnect);
    axd_log(AX_LOG_INFO, "cluster", "member %s left (its record is gone from the store)", name);
}

int axd_cl_add_peer(axd_cluster *cl, const char *name, const char *addr)
{
    if (!cl->ovl->ops->set_peer)
        return AX_ENOTSUP;
    int rc = cl->ovl->ops->set_peer(cl->ovl, name, addr);
    if (rc)
        return rc;
    axd_cl_node *n = axd_cl_node_get(cl, name, 1);
    int added = !n->in_book;
    n->in_book = 1;
    if (added) {
        n->backoff_ms = cl->backoff_min;
        node_dial(n);
    }
    return added ? 1 : 0;
}

void axd_cl_peer_stop(axd_cluster *cl)
{
    cl->stopping = 1;
    while (cl->links)
        link_close(cl->links, AX_ECANCELED, "shutdown", 1);
    ev_timer_stop(cl->s->loop, &cl->hb);
    ev_prepare_stop(cl->s->loop, &cl->flush);
    for (axd_cl_node *n = cl->nodes; n; n = n->next)
        ev_timer_stop(cl->s->loop, &n->reconnect);
}

const axd_ovl_cbs axd_cl_ovl_cbs = {cb_open, cb_frame, cb_drain, cb_close};
