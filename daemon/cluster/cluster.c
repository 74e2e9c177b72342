/* The cluster glue: config -> overlay -> peers; remote tell/ask/monitor (refs with
 * node != 0 index this node's table of peer incarnations); incoming records dispatched
 * into the runtime (only bytes cross: message names are looked up, never interned from
 * the wire); peer loss failing asks with ENOCONN and firing monitors with noconnection
 * exactly once; the `axctl nodes` document. */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <string.h>

#include "ax_mem.h"
#include "cluster_int.h"
#include "config_check.h"
#include "log.h"
#include "workers.h"

#define KEY8(p) ((const char *)(p)), 8


static int cluster_enabled(const axd_config *c)
{
    return (c->cluster_listen && *c->cluster_listen) || c->n_cluster_peers > 0;
}

int axd_cluster_config_check(const axd_config *c, char *err, size_t errlen)
{
    if (!cluster_enabled(c))
        return 0;
    if ((!c->cluster_auth_token || !*c->cluster_auth_token) && !c->cluster_allow_insecure) {
        snprintf(err, errlen,
                 "the cluster is enabled (cluster.listen or cluster.peers is set) but cluster.auth_token is "
                 "empty: refusing to run an unauthenticated cluster. Set cluster.auth_token to the same secret "
                 "on every node, or cluster.allow_insecure_auth = true (tests only)");
        return AX_ECONFIG;
    }
    if (c->cluster_backoff_min_ms > c->cluster_backoff_max_ms) {
        snprintf(err, errlen, "cluster.reconnect_backoff_min_ms (%u) exceeds cluster.reconnect_backoff_max_ms (%u)",
                 c->cluster_backoff_min_ms, c->cluster_backoff_max_ms);
        return AX_ECONFIG;
    }
    if (c->cluster_hb_timeout_ms <= c->cluster_hb_interval_ms) {
        snprintf(err, errlen, "cluster.heartbeat_timeout_ms (%u) must exceed cluster.heartbeat_interval_ms (%u)",
                 c->cluster_hb_timeout_ms, c->cluster_hb_interval_ms);
        return AX_ECONFIG;
    }
    if (c->cluster_tls && (!*c->cluster_tls_cert || !*c->cluster_tls_key || !*c->cluster_tls_ca)) {
        snprintf(err, errlen, "cluster.tls = true needs cluster.tls_cert, cluster.tls_key and cluster.tls_ca");
        return AX_ECONFIG;
    }
    return 0;
}

/* ---------------- incarnations ---------------- */

static axd_cl_inc *inc_get(axd_cluster *cl, uint32_t node)
{
    return cl && node >= 1 && node <= cl->n_incs ? cl->incs[node - 1] : NULL;
}

axd_cl_inc *axd_cl_inc_new(axd_cluster *cl, axd_cl_node *n, const char *boot)
{
    if (cl->n_incs == cl->cap_incs) {
        cl->cap_incs = cl->cap_incs ? 2 * cl->cap_incs : 16;
        cl->incs = ax_realloc(cl->incs, cl->cap_incs * sizeof *cl->incs);
    }
    axd_cl_inc *inc = ax_calloc(1, sizeof *inc);
    inc->idx = ++cl->n_incs; /* never reused, so a stale ref cannot reach a newer boot */
    inc->node = n;
    snprintf(inc->boot, sizeof inc->boot, "%s", boot);
    inc->open_at = SIZE_MAX;
    ax_wbuf_init(&inc->ctlq);
    ax_wbuf_init(&inc->dataq);
    axd_hmap_init(&inc->asks);
    axd_hmap_init(&inc->rmons);
    axd_hmap_init(&inc->lmons);
    cl->incs[inc->idx - 1] = inc;
    return inc;
}

/* Take every value out of a map (so callbacks that run while they are handled see a
 * consistent, empty map). Caller frees the array. */
static void **drain_map(axd_hmap *m, size_t *count)
{
    void **v = ax_malloc((m->len + 1) * sizeof *v);
    size_t k = 0;
    axd_hmap_ent *e;
    for (size_t i = 0; (i = axd_hmap_next(m, i, &e)) != 0;)
        v[k++] = e->val;
    axd_hmap_free(m);
    axd_hmap_init(m);
    *count = k;
    return v;
}

void axd_cl_inc_down(axd_cluster *cl, axd_cl_inc *inc, const char *why)
{
    if (inc->down)
        return;
    inc->down = 1;
    inc->node->downs++;
    if (!cl->stopping)
        axd_log(AX_LOG_WARN, "cluster", "peer %s is down: %s", inc->wire_id, why);
    ax_wbuf_free(&inc->ctlq);
    ax_wbuf_free(&inc->dataq);
    inc->open_at = SIZE_MAX;
    size_t n;
    void **v = drain_map(&inc->asks, &n);
    for (size_t i = 0; i < n; i++) {
        axd_cl_ask *a = v[i];
        axd_pending_complete(cl->s, a->pd_slot, a->pd_gen, AX_ENOCONN, NULL, 0);
        ax_free(a);
    }
    ax_free(v);
    v = drain_map(&inc->rmons, &n);
    for (size_t i = 0; i < n; i++) {
        axd_cl_rmon *m = v[i];
        axd_runtime_deliver_down(cl->s, m->watcher, m->mref, m->target, "noconnection");
        ax_free(m);
    }
    ax_free(v);
    v = drain_map(&inc->lmons, &n);
    for (size_t i = 0; i < n; i++) {
        axd_cl_lmon *m = v[i];
        axd_hmap_del(&cl->lmons_by_local, KEY8(&m->lmref));
        ax_free(m);
    }
    ax_free(v);
}

static void inc_free(axd_cl_inc *inc)
{
    ax_wbuf_free(&inc->ctlq);
    ax_wbuf_free(&inc->dataq);
    axd_hmap_free(&inc->asks);
    axd_hmap_free(&inc->rmons);
    axd_hmap_free(&inc->lmons);
    ax_free(inc);
}

/* ---------------- start / stop ---------------- */

static axd_cluster *cluster_new(axd_rt *s, char *err, size_t errlen)
{
    const axd_config *c = s->cfg;
    axd_node_id self;
    if (axd_cluster_config_check(c, err, errlen) != 0)
        return NULL;
    if (axd_node_id_parse(s->node_id, strlen(s->node_id), &self) != 0 || !self.has_session) {
        snprintf(err, errlen, "node id %s has no boot/session suffix", s->node_id);
        return NULL;
    }
    axd_cluster *cl = ax_calloc(1, sizeof *cl);
    cl->s = s;
    snprintf(cl->name, sizeof cl->name, "%s", self.name);
    snprintf(cl->boot, sizeof cl->boot, "%s", self.boot);
    cl->session_counter = self.session;
    cl->token = ax_strdup(c->cluster_auth_token ? c->cluster_auth_token : "");
    cl->token_len = strlen(cl->token);
    cl->shard_count = c->shard_count;
    axd_config_store_identity(c, cl->store_id, sizeof cl->store_id);
    cl->max_frame = c->cluster_max_frame;
    cl->hb_interval = c->cluster_hb_interval_ms / 1000.0;
    cl->hb_timeout = c->cluster_hb_timeout_ms / 1000.0;
    cl->connect_timeout = c->cluster_connect_timeout_ms / 1000.0;
    cl->backoff_min = c->cluster_backoff_min_ms;
    cl->backoff_max = c->cluster_backoff_max_ms;
    axd_hmap_init(&cl->lmons_by_local);
    if (!cl->token_len)
        axd_log(AX_LOG_WARN, "cluster",
               "cluster.allow_insecure_auth = true and no auth_token: peers are NOT authenticated");
    for (size_t i = 0; i < c->n_cluster_peers; i++) {
        const char *e = c->cluster_peers[i], *eq = strchr(e, '=');
        char name[AXD_NODE_ID_MAX + 1];
        snprintf(name, sizeof name, "%.*s", (int)(eq ? eq - e : 0), e);
        if (!*name || !strcmp(name, cl->name))
            continue; /* one config for every node may list this node too */
        axd_cl_node_get(cl, name, 1)->in_book = 1;
    }
    return cl;
}

int axd_cluster_reload_peers(axd_cluster *cl, char *const *peers, size_t n)
{
    int added = 0;
    if (!cl) {
        if (n)
            axd_log(AX_LOG_WARN, "cluster", "reload: cluster.peers set but the cluster is off; it needs a restart");
        return 0;
    }
    for (size_t i = 0; i < n; i++) {
        const char *e = peers[i], *eq = strchr(e, '=');
        char name[AXD_NODE_ID_MAX + 1];
        snprintf(name, sizeof name, "%.*s", (int)(eq ? eq - e : 0), e);
        if (!eq || !*name || !strcmp(name, cl->name))
            continue;
        int rc = axd_cl_add_peer(cl, name, eq + 1);
        if (rc == 1) {
            added++;
            axd_log(AX_LOG_INFO, "cluster", "reload: new peer %s at %s", name, eq + 1);
        } else if (rc < 0) {
            axd_log(AX_LOG_WARN, "cluster", "reload: peer %s at %s not added: %s", name, eq + 1, ax_strerror(rc));
        }
    }
    for (axd_cl_node *nd = cl->nodes; nd; nd = nd->next) {
        int listed = 0;
        for (size_t i = 0; i < n && !listed; i++)
            listed = !strncmp(peers[i], nd->name, strlen(nd->name)) && peers[i][strlen(nd->name)] == '=';
        if (nd->in_book && !listed)
            axd_log(AX_LOG_WARN, "cluster", "reload: peer %s is no longer listed; removing a peer needs a restart",
                   nd->name);
    }
    return added;
}

static void cluster_free(axd_cluster *cl)
{
    cJSON_Delete(cl->members);
    cl->members = NULL;
    while (cl->nodes) {
        axd_cl_node *n = cl->nodes;
        cl->nodes = n->next;
        ax_free(n);
    }
    for (uint32_t i = 0; i < cl->n_incs; i++) {
        axd_cl_inc *inc = cl->incs[i];
        size_t n;
        void **v = drain_map(&inc->asks, &n);
        for (size_t k = 0; k < n; k++)
            ax_free(v[k]);
        ax_free(v);
        v = drain_map(&inc->rmons, &n);
        for (size_t k = 0; k < n; k++)
            ax_free(v[k]);
        ax_free(v);
        v = drain_map(&inc->lmons, &n);
        for (size_t k = 0; k < n; k++)
            ax_free(v[k]);
        ax_free(v);
        inc_free(inc);
    }
    ax_free(cl->incs);
    axd_hmap_free(&cl->lmons_by_local);
    if (cl->token) {
        memset(cl->token, 0, cl->token_len);
        ax_free(cl->token);
    }
    ax_free(cl);
}

static const axd_remote_ops remote_ops;

static int cluster_run(axd_rt *s, axd_cluster *cl, axd_cluster **out)
{
    *out = cl;
    axd_rt_set_remote(s, &remote_ops, cl);
    axd_cl_peer_start(cl);
    size_t book = 0;
    for (axd_cl_node *n = cl->nodes; n; n = n->next)
        book += n->in_book;
    axd_log(AX_LOG_INFO, "cluster", "cluster on the %s overlay as %s: listening on %s, %zu peer(s) in the address book",
           cl->ovl->ops->name, cl->name, *s->cfg->cluster_listen ? s->cfg->cluster_listen : "(nothing)", book);
    return 0;
}

int axd_cluster_start(axd_rt *s, axd_cluster **out, char *err, size_t errlen)
{
    *out = NULL;
    const axd_config *c = s->cfg;
    if (!cluster_enabled(c))
        return 0;
    axd_cluster *cl = cluster_new(s, err, errlen);
    if (!cl)
        return AX_ECONFIG;
    axd_ovl_tcp_cfg tc = {
        .listen = c->cluster_listen,
        .book = (const char *const *)c->cluster_peers,
        .n_book = c->n_cluster_peers,
        .connect_timeout_ms = c->cluster_connect_timeout_ms,
        .keepalive = c->cluster_keepalive,
        .keepalive_idle_s = c->cluster_keepalive_idle_ms / 1000,
        .keepalive_interval_s = c->cluster_keepalive_interval_ms / 1000,
        .keepalive_probes = c->cluster_keepalive_probes,
        .tls = c->cluster_tls,
        .tls_cert = c->cluster_tls_cert,
        .tls_key = c->cluster_tls_key,
        .tls_ca = c->cluster_tls_ca,
    };
    int rc = axd_ovl_tcp_new(s->loop, &tc, &axd_cl_ovl_cbs, cl, cl->max_frame, &cl->ovl, err, errlen);
    if (rc) {
        cluster_free(cl);
        return rc;
    }
    return cluster_run(s, cl, out);
}

int axd_cluster_start_mem(axd_rt *s, axd_ovl_net *net, axd_cluster **out, char *err, size_t errlen)
{
    *out = NULL;
    axd_cluster *cl = cluster_new(s, err, errlen);
    if (!cl)
        return AX_ECONFIG;
    int rc = axd_ovl_mem_new(net, s->loop, cl->name, &axd_cl_ovl_cbs, cl, cl->max_frame, &cl->ovl);
    if (rc) {
        snprintf(err, errlen, "memory overlay: %s", ax_strerror(rc));
        cluster_free(cl);
        return rc;
    }
    return cluster_run(s, cl, out);
}

void axd_cluster_stop(axd_cluster *cl)
{
    if (!cl)
        return;
    axd_cl_peer_stop(cl);
    axd_cl_status_stop(cl);
    /* Nothing more can arrive: asks still waiting fail now. */
    for (uint32_t i = 0; i < cl->n_incs; i++)
        axd_cl_inc_down(cl, cl->incs[i], "this node is stopping");
    if (cl->ovl)
        cl->ovl->ops->free(cl->ovl);
    if (cl->s->remote_ud == cl)
        axd_rt_set_remote(cl->s, NULL, NULL);
    cluster_free(cl);
}

/* ---------------- remote messaging ---------------- */

static int target_inc(axd_cluster *cl, ax_ref to, axd_cl_inc **out)
{
    axd_cl_inc *inc = inc_get(cl, to.node);
    if (!inc)
        return AX_ENOPROC;
    if (inc->down)
        return AX_ENOCONN;
    *out = inc;
    return 0;
}

int axd_cluster_tell_named(axd_cluster *cl, ax_ref to, const char *msg, size_t msg_len, const void *p, size_t n,
                          ax_ref from)
{
    axd_cl_inc *inc;
    int rc = target_inc(cl, to, &inc);
    if (rc)
        return rc;
    if (ax_name_valid(msg, msg_len) != 0)
        return AX_EINVAL;
    ax_peer_rec r = {.to_id = to.id, .to_gen = to.gen, .msg = msg, .msg_len = msg_len, .payload = p, .payload_len = n};
    if (from.node == 0) { /* only a local actor can be named on the wire */
        r.from_id = from.id;
        r.from_gen = from.gen;
    }
    return axd_cl_queue(cl, inc, AX_PT_TELL, &r); /* the caller counts it */
}

int axd_cluster_tell(axd_cluster *cl, ax_ref to, uint32_t msg_id, const void *p, size_t n, ax_ref from)
{
    if (!cl)
        return AX_ENOPROC;
    const char *name = axd_msg_name(cl->s, msg_id);
    return axd_cluster_tell_named(cl, to, name, strlen(name), p, n, from);
}

static int ask_named(axd_cluster *cl, ax_ref to, const char *msg, size_t msg_len, const void *p, size_t n,
                     axd_pending *pd, uint32_t timeout_ms, ax_ref from)
{
    axd_cl_inc *inc;
    int rc = target_inc(cl, to, &inc);
    if (rc)
        return rc;
    if (ax_name_valid(msg, msg_len) != 0 || !pd)
        return AX_EINVAL;
    ax_peer_rec r = {.req = ++cl->next_req, .to_id = to.id, .to_gen = to.gen, .timeout_ms = timeout_ms ? timeout_ms : 1,
                     .msg = msg, .msg_len = msg_len, .payload = p, .payload_len = n};
    if (from.node == 0) { /* the asking actor, so the handler sees m->from */
        r.from_id = from.id;
        r.from_gen = from.gen;
    }
    rc = axd_cl_queue(cl, inc, AX_PT_ASK, &r);
    if (rc)
        return rc;
    axd_cl_ask *a = ax_malloc(sizeof *a);
    a->req = r.req;
    a->pd_slot = pd->slot;
    a->pd_gen = pd->gen;
    a->deadline = ev_now(cl->s->loop) + r.timeout_ms / 1000.0 + 2 * cl->hb_timeout;
    axd_hmap_put(&inc->asks, KEY8(&a->req), a);
    return 0;
}

int axd_cluster_ask_named(axd_cluster *cl, ax_ref to, const char *msg, size_t msg_len, const void *p, size_t n,
                         axd_pending *pd, uint32_t timeout_ms)
{
    return ask_named(cl, to, msg, msg_len, p, n, pd, timeout_ms, AX_REF_NONE);
}

int axd_cluster_ask(axd_cluster *cl, ax_ref to, uint32_t msg_id, const void *p, size_t n, axd_pending *pd, ax_ref from)
{
    if (!cl)
        return AX_ENOPROC;
    const char *name = axd_msg_name(cl->s, msg_id);
    double rem = pd ? ev_timer_remaining(cl->s->loop, &pd->timer) : 0;
    uint32_t ms = rem > 0 ? (uint32_t)(rem * 1000.0) + 1 : cl->s->cfg->ask_timeout_ms;
    return ask_named(cl, to, name, strlen(name), p, n, pd, ms, from);
}

/* ---------------- remote monitors ---------------- */

int axd_cluster_monitor(axd_cluster *cl, ax_ref watcher, ax_ref target, uint64_t mref)
{
    axd_cl_inc *inc = inc_get(cl, target.node);
    if (!inc || inc->down) {
        axd_runtime_deliver_down(cl->s, watcher, mref, target, inc ? "noconnection" : "noproc");
        return AX_OK;
    }
    ax_peer_rec r = {.mref = mref, .from_id = watcher.id, .from_gen = watcher.gen, .to_id = target.id,
                     .to_gen = target.gen};
    int rc = axd_cl_queue(cl, inc, AX_PT_MONITOR, &r);
    if (rc)
        return rc;
    axd_cl_rmon *m = ax_malloc(sizeof *m);
    m->mref = mref;
    m->watcher = watcher;
    m->target = target;
    ax_free(axd_hmap_put(&inc->rmons, KEY8(&m->mref), m));
    return AX_OK;
}

int axd_cluster_demonitor(axd_cluster *cl, ax_ref target, uint64_t mref)
{
    axd_cl_inc *inc = inc_get(cl, target.node);
    if (!inc)
        return AX_OK;
    axd_cl_rmon *m = axd_hmap_del(&inc->rmons, KEY8(&mref));
    if (!m)
        return AX_OK;
    ax_free(m);
    ax_peer_rec r = {.mref = mref};
    if (!inc->down)
        axd_cl_queue(cl, inc, AX_PT_DEMONITOR, &r);
    return AX_OK;
}

int axd_cluster_demonitor_mref(axd_cluster *cl, ax_ref watcher, uint64_t mref)
{
    for (uint32_t i = 0; cl && i < cl->n_incs; i++) {
        axd_cl_rmon *m = axd_hmap_get(&cl->incs[i]->rmons, KEY8(&mref));
        if (m && ax_ref_eq(m->watcher, watcher))
            return axd_cluster_demonitor(cl, m->target, mref);
    }
    return AX_OK;
}

void axd_cluster_deliver_down(axd_cluster *cl, ax_ref watcher, uint64_t mref, ax_ref who, const char *reason)
{
    (void)watcher;
    if (!cl)
        return;
    axd_cl_lmon *m = axd_hmap_del(&cl->lmons_by_local, KEY8(&mref));
    if (!m)
        return; /* demonitored, or the watcher's node is gone */
    axd_cl_inc *inc = inc_get(cl, m->inc);
    if (inc) {
        axd_hmap_del(&inc->lmons, KEY8(&m->rmref));
        size_t rl = strlen(reason ? reason : "");
        ax_peer_rec r = {.mref = m->rmref, .to_id = who.id, .to_gen = who.gen, .msg = rl ? reason : "normal",
                         .msg_len = rl ? (rl > 1024 ? 1024 : rl) : 6};
        axd_cl_queue(cl, inc, AX_PT_DOWN, &r);
    }
    ax_free(m);
}

/* ---------------- incoming records ---------------- */

void axd_cl_send_reply(axd_cluster *cl, axd_cl_inc *inc, uint64_t req, int status, const void *p, size_t n)
{
    ax_peer_rec r = {.req = req, .status = status, .payload = p, .payload_len = n};
    int rc = axd_cl_queue(cl, inc, AX_PT_REPLY, &r);
    if (rc == AX_ETOOBIG) {
        r.status = AX_ETOOBIG;
        r.payload_len = 0;
        axd_cl_queue(cl, inc, AX_PT_REPLY, &r);
    }
}

/* The runtime finished an ask that came from a peer: send the REPLY back. */
void axd_cl_remote_ask_done(axd_rt *s, axd_pending *p, int status, const void *data, size_t n)
{
    axd_cluster *cl = axd_cl_of_rt(s);
    axd_cl_inc *inc = inc_get(cl, p->u.client.conn_slot);
    uint64_t req = (uint64_t)p->u.client.req_id << 32 | p->u.client.conn_gen;
    if (inc && !inc->down)
        axd_cl_send_reply(cl, inc, req, status, data, n); /* an error's n: its text (ax_reply_error) */
}

int axd_cl_deliver(axd_cluster *cl, axd_cl_inc *inc, ax_ref to, const ax_peer_rec *r, uint32_t id, int ask)
{
    axd_rt *s = cl->s;
    axd_env *e = axd_env_new(s, r->payload_len);
    axd_pending *pd = e && ask ? axd_pending_new(s, r->timeout_ms, axd_cl_remote_ask_done) : NULL;
    if (!e || (ask && !pd)) {
        axd_env_free(s, e);
        if (ask)
            axd_cl_send_reply(cl, inc, r->req, AX_ENOMEM, NULL, 0);
        return AX_ENOMEM;
    }
    if (r->payload_len)
        memcpy(e->data, r->payload, r->payload_len);
    e->m.id = id;
    e->epoch = r->epoch;
    if (r->from_id)
        e->m.from = (ax_ref){r->from_id, r->from_gen, inc->idx};
    if (pd) {
        pd->u.client.conn_slot = inc->idx;
        pd->u.client.conn_gen = (uint32_t)r->req;
        pd->u.client.req_id = (uint32_t)(r->req >> 32);
        e->ask = pd->slot;
        e->ask_gen = pd->gen;
    }
    int rc = axd_deliver(s, to, e); /* an actor of another worker answers through worker 0 */
    if (rc) {
        e->ask = 0;
        axd_env_free(s, e);
        if (pd)
            axd_pending_complete(s, pd->slot, pd->gen, rc, NULL, 0); /* sends the error back */
    }
    return rc;
}

static void on_tell(axd_cluster *cl, axd_cl_inc *inc, const ax_peer_rec *r)
{
    axd_rt *s = cl->s;
    ax_ref to = {r->to_id, r->to_gen, 0};
    if ((!axd_ref_elsewhere(s, to) && !axd_actor_get(s, to)) ||
        axd_cl_deliver(cl, inc, to, r, axd_msg_lookup(s, r->msg, r->msg_len), 0) != 0)
        cl->remote_dropped++;
}

static void on_ask(axd_cluster *cl, axd_cl_inc *inc, const ax_peer_rec *r)
{
    axd_rt *s = cl->s;
    ax_ref to = {r->to_id, r->to_gen, 0};
    if (!axd_ref_elsewhere(s, to) && !axd_actor_get(s, to)) {
        axd_cl_send_reply(cl, inc, r->req, AX_ENOPROC, NULL, 0);
        return;
    }
    axd_cl_deliver(cl, inc, to, r, axd_msg_lookup(s, r->msg, r->msg_len), 1); /* errors are answered */
}

static void on_reply(axd_cluster *cl, axd_cl_inc *inc, const ax_peer_rec *r)
{
    axd_cl_ask *a = axd_hmap_del(&inc->asks, KEY8(&r->req));
    if (!a) {
        cl->late_replies++;
        return;
    }
    uint32_t slot = a->pd_slot, gen = a->pd_gen;
    ax_free(a);
    axd_pending_complete(cl->s, slot, gen, r->status, r->payload, r->payload_len);
}

static void on_monitor(axd_cluster *cl, axd_cl_inc *inc, const ax_peer_rec *r)
{
    axd_rt *s = cl->s;
    ax_ref target = {r->to_id, r->to_gen, 0}, watcher = {r->from_id, r->from_gen, inc->idx};
    axd_actor *a = axd_ref_elsewhere(s, target) ? NULL : axd_actor_get_any(s, target);
    if (!axd_ref_elsewhere(s, target) && (!a || a->st == AXD_ST_STOPPING)) { /* elsewhere: its worker answers noproc */
        ax_peer_rec d = {.mref = r->mref, .to_id = r->to_id, .to_gen = r->to_gen, .msg = "noproc", .msg_len = 6};
        axd_cl_queue(cl, inc, AX_PT_DOWN, &d);
        return;
    }
    uint64_t lmref = 0;
    if (axd_sup_monitor(s, watcher, target, &lmref) != AX_OK)
        return;
    axd_cl_lmon *m = ax_malloc(sizeof *m);
    m->rmref = r->mref;
    m->lmref = lmref;
    m->inc = inc->idx;
    m->watcher = watcher;
    m->target = target;
    axd_cl_lmon *old = axd_hmap_put(&inc->lmons, KEY8(&m->rmref), m);
    if (old) {
        axd_hmap_del(&cl->lmons_by_local, KEY8(&old->lmref));
        ax_free(old);
    }
    axd_hmap_put(&cl->lmons_by_local, KEY8(&m->lmref), m);
}

static void on_demonitor(axd_cluster *cl, axd_cl_inc *inc, const ax_peer_rec *r)
{
    axd_cl_lmon *m = axd_hmap_del(&inc->lmons, KEY8(&r->mref));
    if (!m)
        return;
    axd_hmap_del(&cl->lmons_by_local, KEY8(&m->lmref));
    axd_sup_demonitor(cl->s, m->watcher, m->lmref, 0);
    ax_free(m);
}

static void on_down(axd_cluster *cl, axd_cl_inc *inc, const ax_peer_rec *r)
{
    axd_cl_rmon *m = axd_hmap_del(&inc->rmons, KEY8(&r->mref));
    if (!m)
        return; /* demonitored meanwhile: nothing to deliver */
    char reason[1025];
    snprintf(reason, sizeof reason, "%.*s", (int)r->msg_len, r->msg);
    axd_runtime_deliver_down(cl->s, m->watcher, m->mref, m->target, reason);
    ax_free(m);
}

void axd_cl_on_frame(axd_cluster *cl, axd_cl_inc *inc, uint8_t type, const uint8_t *body, size_t n)
{
    ax_rbuf rb;
    ax_peer_rec r;
    const char *why = NULL;
    int rc;
    ax_rbuf_init(&rb, body, n);
    while (!inc->down && (rc = ax_peer_rec_next(&rb, type, &r, &why)) == 1) {
        switch (type) {
        case AX_PT_TELL: on_tell(cl, inc, &r); break;
        case AX_PT_ASK: on_ask(cl, inc, &r); break;
        case AX_PT_REPLY: on_reply(cl, inc, &r); break;
        case AX_PT_MONITOR: on_monitor(cl, inc, &r); break;
        case AX_PT_DEMONITOR: on_demonitor(cl, inc, &r); break;
        case AX_PT_DOWN: on_down(cl, inc, &r); break;
        case AX_PT_KEYED: axd_cl_on_keyed(cl, inc, &r); break;
        case AX_PT_EPOCHS:
            if (cl->s->gate)
                cl->s->gate->note_epoch(cl->s->gate_ud, r.shard, r.epoch, inc->wire_id);
            break;
        case AX_PT_RELEASED:
            if (cl->s->gate)
                cl->s->gate->released(cl->s->gate_ud, r.shard, r.epoch, inc->wire_id);
            break;
        case AX_PT_STATUS_REQ: axd_cl_on_status_req(cl, inc, &r); break;
        case AX_PT_STATUS: axd_cl_on_status(cl, inc, &r); break;
        default: return;
        }
    }
    if (rc < 0)
        axd_log(AX_LOG_WARN, "cluster", "malformed %s frame from %s: %s (rest of the frame dropped)",
               ax_peer_type_name(type), inc->wire_id, why ? why : "?");
}

/* ---------------- names and documents ---------------- */

int axd_cluster_node_of(axd_cluster *cl, const char *wire_id, size_t len, uint32_t *node)
{
    axd_node_id id;
    if (axd_node_id_parse(wire_id, len, &id) != 0)
        return AX_ENOTFOUND;
    if (cl && !strcmp(id.name, cl->name) && (!id.has_session || !strcmp(id.boot, cl->boot))) {
        *node = 0;
        return 0;
    }
    if (!cl)
        return AX_ENOTFOUND;
    int found_down = 0;
    for (uint32_t i = cl->n_incs; i-- > 0;) {
        axd_cl_inc *inc = cl->incs[i];
        if (strcmp(inc->node->name, id.name) || (id.has_session && strcmp(inc->boot, id.boot)))
            continue;
        if (!inc->down) {
            *node = inc->idx;
            return 0;
        }
        found_down = 1;
        if (!id.has_session)
            break;
    }
    return found_down ? AX_ENOCONN : AX_ENOTFOUND;
}

const char *axd_cluster_node_wire_id(axd_cluster *cl, uint32_t node)
{
    axd_cl_inc *inc = inc_get(cl, node);
    return inc ? inc->wire_id : "";
}

cJSON *axd_cluster_nodes_json(axd_rt *s, axd_cluster *cl)
{
    cJSON *doc = cJSON_CreateObject();
    cJSON_AddStringToObject(doc, "node", s->node_id);
    cJSON_AddBoolToObject(doc, "cluster", cl != NULL);
    cJSON *arr = cJSON_AddArrayToObject(doc, "peers");
    if (!cl)
        return doc;
    cJSON_AddStringToObject(doc, "overlay", cl->ovl->ops->name);
    cJSON_AddNumberToObject(doc, "auth_failures", (double)cl->auth_failures);
    cJSON_AddNumberToObject(doc, "unauthenticated_frames", (double)cl->unauth_frames);
    cJSON_AddNumberToObject(doc, "handshakes", (double)cl->handshakes);
    cJSON_AddNumberToObject(doc, "remote_dropped", (double)cl->remote_dropped);
    int links = 0;
    for (axd_cl_link *l = cl->links; l; l = l->next)
        links++;
    cJSON_AddNumberToObject(doc, "links", links); /* established and in handshake */
    double now = ev_now(s->loop);
    if (cl->members)
        cJSON_AddItemToObject(doc, "members", cJSON_Duplicate(cl->members, 1));
    for (axd_cl_node *n = cl->nodes; n; n = n->next) {
        if (n->gone && n->state != NS_UP)
            continue; /* a member that left */
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "name", n->name);
        cJSON_AddStringToObject(o, "wire_id", n->inc ? n->inc->wire_id : "");
        cJSON_AddNumberToObject(o, "session", n->inc ? (double)n->inc->session : 0);
        cJSON_AddNumberToObject(o, "ref_node", n->inc ? n->inc->idx : 0);
        cJSON_AddStringToObject(o, "state", axd_cl_state_name(n->state));
        cJSON_AddNumberToObject(o, "since_s", now - n->since);
        cJSON_AddStringToObject(o, "address", n->link ? n->link->remote : "");
        cJSON_AddNumberToObject(o, "rtt_ms", n->rtt_ms);
        cJSON_AddNumberToObject(o, "bytes_in", (double)n->bytes_in);
        cJSON_AddNumberToObject(o, "bytes_out", (double)n->bytes_out);
        cJSON_AddNumberToObject(o, "frames_in", (double)n->frames_in);
        cJSON_AddNumberToObject(o, "frames_out", (double)n->frames_out);
        cJSON_AddNumberToObject(o, "auth_failures", (double)n->auth_failures);
        cJSON_AddStringToObject(o, "last_error", n->last_error);
        cJSON_AddBoolToObject(o, "store_ok", n->state == NS_UP && n->store_ok);
        cJSON_AddBoolToObject(o, "draining", n->state == NS_UP && n->leaving);
        cJSON_AddNumberToObject(o, "replayed", (double)n->replayed);
        cJSON_AddNumberToObject(o, "forged", (double)n->forged);
        cJSON_AddNumberToObject(o, "downs", (double)n->downs);
        cJSON_AddNumberToObject(o, "heartbeats_sent", (double)n->hb_sent);
        cJSON_AddNumberToObject(o, "heartbeats_received", (double)n->hb_recv);
        cJSON_AddNumberToObject(o, "heartbeat_gap_max_ms", n->hb_gap_max * 1000);
        cJSON_AddNumberToObject(o, "queued_bytes", n->inc ? (double)(n->inc->ctlq.len + n->inc->dataq.len) : 0);
        cJSON_AddItemToArray(arr, o);
    }
    return doc;
}

void axd_cluster_set_members(axd_cluster *cl, cJSON *members)
{
    if (!cl) {
        cJSON_Delete(members);
        return;
    }
    cJSON_Delete(cl->members);
    cl->members = members;
}

/* ---------------- the core's remote table ---------------- */

static int rm_tell(void *ud, ax_ref to, uint32_t msg, const void *p, size_t n, ax_ref from)
{
    return axd_cluster_tell(ud, to, msg, p, n, from);
}

static int rm_ask(void *ud, ax_ref to, uint32_t msg, const void *p, size_t n, axd_pending *pd, ax_ref from)
{
    return axd_cluster_ask(ud, to, msg, p, n, pd, from);
}

static int rm_monitor(void *ud, ax_ref watcher, ax_ref target, uint64_t mref)
{
    return axd_cluster_monitor(ud, watcher, target, mref);
}

static int rm_demonitor_mref(void *ud, ax_ref watcher, uint64_t mref)
{
    return axd_cluster_demonitor_mref(ud, watcher, mref);
}

static void rm_deliver_down(void *ud, ax_ref watcher, uint64_t mref, ax_ref who, const char *reason)
{
    axd_cluster_deliver_down(ud, watcher, mref, who, reason);
}

static int rm_keyed_send(void *ud, const char *owner, const char *type, size_t tlen, const char *key, size_t klen,
                         uint64_t epoch, unsigned kflags, const char *msg, size_t mlen, const void *p, size_t n,
                         ax_ref from, axd_pending *pd)
{
    return axd_cluster_keyed_send(ud, owner, type, tlen, key, klen, epoch, kflags, msg, mlen, p, n, from, pd);
}

static uint32_t rm_live_nodes(void *ud) { return axd_cluster_live_nodes(ud); }

static void rm_share_epoch(void *ud, uint32_t shard, uint64_t epoch) { axd_cluster_share_epoch(ud, shard, epoch); }

static void rm_shard_released(void *ud, uint32_t shard, uint64_t epoch) { axd_cluster_shard_released(ud, shard, epoch); }

static void rm_heartbeat_now(void *ud)
{
    if (ud)
        axd_cl_heartbeat_now(ud);
}

static void rm_barrier_start(void *ud)
{
    if (ud)
        axd_cl_barrier_start(ud);
}

static int rm_barrier_done(void *ud) { return ud ? axd_cl_barrier_done(ud) : 1; }

static const axd_remote_ops remote_ops = {
    .tell = rm_tell,
    .ask = rm_ask,
    .monitor = rm_monitor,
    .demonitor_mref = rm_demonitor_mref,
    .deliver_down = rm_deliver_down,
    .keyed_send = rm_keyed_send,
    .live_nodes = rm_live_nodes,
    .share_epoch = rm_share_epoch,
    .shard_released = rm_shard_released,
    .heartbeat_now = rm_heartbeat_now,
    .barrier_start = rm_barrier_start,
    .barrier_done = rm_barrier_done,
};

axd_cluster *axd_cl_of_rt(axd_rt *s) { return s->remote == &remote_ops ? s->remote_ud : NULL; }
