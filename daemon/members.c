/* Cluster membership through the lease store (PROTOCOL.md, "Membership"): the
 * composition root's, since it joins two layers that do not know each other: the keyed
 * layer's store (axd_member_put/list/del) and the cluster's address book
 * (axd_cluster_member_seen/gone). Every third of cluster.member_ttl_ms the node renews
 * its record {name, wire_id, addr, version, abi, shards, workers} and lists the others:
 * a new member is dialed as a cluster.peers entry would be, one whose record expired or
 * was deleted (a node that stopped) is forgotten. cluster.peers stay as seeds. */
#include <cjson/cJSON.h>
#include <string.h>

#include "ax_build_config.h"
#include "ax_mem.h"
#include "lease.h"
#include "log.h"
#include "server.h"

static void members_tick(struct ev_loop *loop, ev_timer *w, int revents);

/* The address the others dial: cluster.advertise, else cluster.listen unless it is a
 * wildcard (then there is nothing to publish). */
static const char *advertised(const axd_config *c)
{
    if (c->cluster_advertise && *c->cluster_advertise)
        return c->cluster_advertise;
    const char *l = c->cluster_listen ? c->cluster_listen : "";
    if (!*l || !strncmp(l, "0.0.0.0:", 8) || !strncmp(l, "[::]:", 5) || l[0] == ':')
        return NULL;
    return l;
}

static void put_cb(void *ud, int status, const axd_member *m, size_t n)
{
    (void)m, (void)n;
    axd_members *ms = ud;
    ms->puts_inflight--;
    if (status != AX_OK && !ms->put_failing) {
        ms->put_failing = 1;
        axd_log(AX_LOG_WARN, "members", "cannot register in the lease store: %s (retrying)", ax_strerror(status));
    } else if (status == AX_OK) {
        ms->put_failing = 0;
    }
}

static int listed(cJSON *arr, const char *name)
{
    cJSON *it;
    cJSON_ArrayForEach(it, arr)
    {
        const char *n = cJSON_GetStringValue(cJSON_GetObjectItem(it, "name"));
        if (n && !strcmp(n, name))
            return 1;
    }
    return 0;
}

static void list_cb(void *ud, int status, const axd_member *m, size_t n)
{
    axd_members *ms = ud;
    ms->lists_inflight--;
    axd_server *s = ms->srv;
    if (status != AX_OK || ms->stopped || !s->cluster)
        return; /* the store unreachable: keep what we know (peers stay dialed) */
    cJSON *now = cJSON_CreateArray();
    for (size_t i = 0; i < n; i++) {
        char name[AXD_LEASE_NODE_MAX + 1];
        snprintf(name, sizeof name, "%.*s", (int)m[i].name_len, m[i].name);
        cJSON *rec = cJSON_ParseWithLength(m[i].record, m[i].record_len);
        const char *addr = rec ? cJSON_GetStringValue(cJSON_GetObjectItem(rec, "addr")) : NULL;
        const char *rname = rec ? cJSON_GetStringValue(cJSON_GetObjectItem(rec, "name")) : NULL;
        if (!rec || !cJSON_IsObject(rec) || !addr || !rname || strcmp(rname, name)) {
            cJSON_Delete(rec); /* another program's key, or damaged: not a member */
            continue;
        }
        if (strcmp(name, s->cfg.node_name) != 0)
            axd_cluster_member_seen(s->cluster, name, addr);
        cJSON_AddItemToArray(now, rec);
    }
    /* members listed before and not now: gone */
    cJSON *it;
    cJSON_ArrayForEach(it, ms->last)
    {
        const char *name = cJSON_GetStringValue(cJSON_GetObjectItem(it, "name"));
        if (name && !listed(now, name) && strcmp(name, s->cfg.node_name) != 0)
            axd_cluster_member_gone(s->cluster, name);
    }
    cJSON_Delete(ms->last);
    ms->last = now;
    axd_cluster_set_members(s->cluster, cJSON_Duplicate(now, 1));
}

static void members_tick(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop, (void)revents;
    axd_members *ms = w->data;
    axd_lease_store *st = ms->srv->keyed.lease_store;
    if (!st || ms->stopped)
        return;
    if (!ms->puts_inflight && axd_member_put(st, ms->srv->cfg.node_name, ms->record, strlen(ms->record),
                                             ms->srv->cfg.cluster_member_ttl_ms, put_cb, ms) == 0)
        ms->puts_inflight++;
    if (!ms->lists_inflight && axd_member_list(st, list_cb, ms) == 0)
        ms->lists_inflight++;
}

int axd_members_start(axd_server *s)
{
    axd_members *ms = &s->members;
    memset(ms, 0, sizeof *ms);
    ms->srv = s;
    const axd_config *c = &s->cfg;
    if (!s->cluster || !c->cluster_membership || !s->keyed.lease_store)
        return 0;
    if (strcmp(c->lease_store, "redis") != 0 && strcmp(c->lease_store, "etcd") != 0) {
        axd_log(AX_LOG_INFO, "members", "membership through the store is off: the memory lease store is this "
                                       "process's (cluster.peers is the address book)");
        return 0;
    }
    const char *addr = advertised(c);
    if (!addr) {
        axd_log(AX_LOG_WARN, "members", "not registering in the lease store: cluster.listen (%s) is a wildcard; "
                                       "set cluster.advertise to the host:port the others can dial",
               c->cluster_listen);
        addr = "";
    }
    cJSON *rec = cJSON_CreateObject();
    cJSON_AddStringToObject(rec, "name", c->node_name);
    cJSON_AddStringToObject(rec, "wire_id", s->rt.node_id);
    cJSON_AddStringToObject(rec, "addr", addr);
    cJSON_AddStringToObject(rec, "version", AX_VERSION);
    char abi[16];
    snprintf(abi, sizeof abi, "%d.%d", AX_ABI_MAJOR, AX_ABI_MINOR);
    cJSON_AddStringToObject(rec, "abi", abi);
    cJSON_AddNumberToObject(rec, "shards", c->shard_count);
    cJSON_AddNumberToObject(rec, "workers", s->workers.n ? s->workers.n : 1);
    char *txt = cJSON_PrintUnformatted(rec);
    cJSON_Delete(rec);
    snprintf(ms->record, sizeof ms->record, "%s", txt ? txt : "{}");
    cJSON_free(txt);
    ms->active = *addr != 0;
    double every = c->cluster_member_ttl_ms / 3000.0;
    ev_timer_init(&ms->tick, members_tick, 0, every);
    ms->tick.data = ms;
    if (ms->active)
        ev_timer_start(s->loop, &ms->tick);
    axd_log(AX_LOG_INFO, "members", "registering as %s at %s in the lease store (ttl %u ms)", c->node_name, addr,
           c->cluster_member_ttl_ms);
    return 0;
}

static void del_cb(void *ud, int status, const axd_member *m, size_t n)
{
    (void)m, (void)n;
    axd_members *ms = ud;
    ms->del_inflight = 0;
    if (status != AX_OK && status != AX_ECANCELED)
        axd_log(AX_LOG_WARN, "members", "could not delete this node's record from the lease store (%s): the others "
                                       "forget it when it expires",
               ax_errname(status));
}

void axd_members_stop(axd_server *s)
{
    axd_members *ms = &s->members;
    if (ms->stopped || !ms->srv)
        return;
    ms->stopped = 1;
    ev_timer_stop(s->loop, &ms->tick);
    /* leave now: the others forget this node at their next listing, not a ttl later */
    if (ms->active && s->keyed.lease_store &&
        axd_member_del(s->keyed.lease_store, s->cfg.node_name, del_cb, ms) == AX_OK)
        ms->del_inflight = 1;
    cJSON_Delete(ms->last);
    ms->last = NULL;
}

static void finish_timeout(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop, (void)revents;
    axd_members *ms = w->data;
    axd_log(AX_LOG_WARN, "members", "the lease store did not confirm this node's leaving within 1 s: the others "
                                   "forget it when its record expires");
    ms->del_inflight = 0;
}

void axd_members_finish(axd_server *s)
{
    axd_members *ms = &s->members;
    if (!ms->del_inflight)
        return;
    ev_timer_init(&ms->finish_w, finish_timeout, 1.0, 0.);
    ms->finish_w.data = ms;
    ev_timer_start(s->loop, &ms->finish_w);
    for (int i = 0; i < 100000 && ms->del_inflight; i++) /* bounded by the timer; the count is a backstop */
        ev_run(s->loop, EVRUN_ONCE);
    ev_timer_stop(s->loop, &ms->finish_w);
}
