/* Keyed messages between nodes: a (type, key) message for a shard this node does not
 * hold travels as a KEYED record to the node that holds the shard's lease, with the
 * shard epoch the sender believes current. The receiver routes it through its own
 * registry with fencing: a stale epoch (ESTALE) or a shard it no longer serves (EBUSY)
 * is answered as an error, never delivered. */
#include <string.h>

#include "ax_mem.h"
#include "cluster_int.h"
#include "log.h"
#include "workers.h"

#define KEY8(p) ((const char *)(p)), 8

void axd_cl_on_keyed(axd_cluster *cl, axd_cl_inc *inc, const ax_peer_rec *r)
{
    axd_rt *s = cl->s;
    ax_ref ref;
    const char *why = NULL;
    int ask = (r->kflags & AX_PK_ASK) != 0;
    int rc = axd_registry_route(s, r->ktype, r->ktype_len, r->key, r->key_len, r->epoch,
                               !(r->kflags & AX_PK_DIRECT), &ref, &why);
    int elsewhere = !rc && axd_ref_elsewhere(s, ref); /* on its home worker: checked there */
    axd_actor *a = rc || elsewhere ? NULL : axd_actor_get(s, ref);
    uint32_t id = a || elsewhere ? axd_msg_lookup(s, r->msg, r->msg_len) : 0;
    if (!rc && !a && !elsewhere)
        rc = AX_ENOPROC;
    if (!rc && a && !axd_actor_handles(a, id))
        rc = AX_ENOMSG;
    if (rc) {
        if (r->req)
            axd_cl_send_reply(cl, inc, r->req, rc, NULL, 0);
        else
            cl->remote_dropped++;
        return;
    }
    rc = axd_cl_deliver(cl, inc, ref, r, id, ask); /* an ask's errors are answered there */
    if (!ask && r->req)
        axd_cl_send_reply(cl, inc, r->req, rc, NULL, 0); /* acknowledged: queued, or why not */
    else if (!ask && rc)
        cl->remote_dropped++;
}

int axd_cluster_keyed_send(axd_cluster *cl, const char *owner, const char *type, size_t tlen, const char *key,
                          size_t klen, uint64_t epoch, unsigned kflags, const char *msg, size_t mlen, const void *p,
                          size_t n, ax_ref from, axd_pending *pd)
{
    if (!cl)
        return AX_ENOTFOUND;
    axd_rt *s = cl->s;
    char wid[AXD_NODE_ID_MAX + 32];
    uint32_t node;
    /* the lease owner is "name@boot-<hex>"; any session of that boot is the same node */
    snprintf(wid, sizeof wid, "%s-session-1", owner);
    int rc = axd_cluster_node_of(cl, wid, strlen(wid), &node);
    if (rc)
        return rc;
    if (node == 0 || node > cl->n_incs)
        return AX_EINVAL;
    axd_cl_inc *inc = cl->incs[node - 1];
    if (inc->down)
        return AX_ENOCONN;
    ax_peer_rec r = {.epoch = epoch, .kflags = (uint8_t)kflags, .ktype = type, .ktype_len = tlen, .key = key,
                     .key_len = klen, .msg = msg, .msg_len = mlen, .payload = p, .payload_len = n};
    if (from.node == 0) {
        r.from_id = from.id;
        r.from_gen = from.gen;
    }
    if (pd) {
        double rem = ev_timer_remaining(s->loop, &pd->timer);
        r.req = ++cl->next_req;
        r.timeout_ms = rem > 0 ? (uint32_t)(rem * 1000.0) + 1 : s->cfg->ask_timeout_ms;
    }
    rc = axd_cl_queue(cl, inc, AX_PT_KEYED, &r);
    if (rc)
        return rc;
    if (pd) {
        axd_cl_ask *a = ax_malloc(sizeof *a);
        a->req = r.req;
        a->pd_slot = pd->slot;
        a->pd_gen = pd->gen;
        a->deadline = ev_now(s->loop) + r.timeout_ms / 1000.0 + 2 * cl->hb_timeout;
        axd_hmap_put(&inc->asks, KEY8(&a->req), a);
    }
    return AX_OK;
}

void axd_cluster_share_epoch(axd_cluster *cl, uint32_t shard, uint64_t epoch)
{
    if (!cl)
        return;
    ax_peer_rec r = {.shard = shard, .epoch = epoch};
    for (axd_cl_node *nd = cl->nodes; nd; nd = nd->next)
        if (nd->state == NS_UP && nd->inc && !nd->inc->down) {
            axd_cl_queue(cl, nd->inc, AX_PT_EPOCHS, &r);
            axd_cl_flush_node(cl, nd);
        }
}

void axd_cluster_shard_released(axd_cluster *cl, uint32_t shard, uint64_t epoch)
{
    if (!cl)
        return;
    ax_peer_rec r = {.shard = shard, .epoch = epoch};
    for (axd_cl_node *nd = cl->nodes; nd; nd = nd->next)
        if (nd->state == NS_UP && nd->inc && !nd->inc->down && (nd->features & AX_PEER_FEAT_DRAIN)) {
            axd_cl_queue(cl, nd->inc, AX_PT_RELEASED, &r);
            axd_cl_flush_node(cl, nd);
        }
}

void axd_cluster_rtt_metrics(axd_cluster *cl, char **buf, size_t *len, size_t *cap)
{
    const char *name = "axactor_peer_heartbeat_rtt_seconds";
    int head = 0;
    for (axd_cl_node *nd = cl ? cl->nodes : NULL; nd; nd = nd->next) {
        if (nd->gone)
            continue;
        if (!head++)
            axd_prom_head(buf, len, cap, name, "histogram", "heartbeat round trips to the peer");
        char lab[AXD_NODE_ID_MAX + 16];
        snprintf(lab, sizeof lab, "peer=\"%s\"", nd->name); /* node names: [A-Za-z0-9._-] */
        axd_histo_prom(buf, len, cap, name, lab, &nd->h_rtt);
    }
}

uint32_t axd_cluster_live_nodes(axd_cluster *cl)
{
    if (!cl)
        return 1;
    /* this node while it drains: its share is none, the others count without it */
    uint32_t n = cl->s->gate && cl->s->gate->draining(cl->s->gate_ud) ? 0 : 1;
    /* a peer that cannot reach the lease store cannot hold shards: it does not count,
     * so the others' share grows and they take its shards as its leases expire */
    for (axd_cl_node *nd = cl->nodes; nd; nd = nd->next)
        n += nd->state == NS_UP && nd->store_ok && !nd->leaving; /* a draining one hands its shards over */
    return n;
}
