/* Keyed routing on top of the shard leases: a (type, key) target hashes (by key) to a
 * shard; this node delivers to the keyed actor only while it holds the shard's lease,
 * checks the message's epoch against the shard's (fencing), and stops the shard's
 * actors with the manager's reason (lease_lost, handover, shutdown) the moment it stops
 * serving it. Without a lease manager (not started) every shard is local. */
#include <cjson/cJSON.h>
#include <string.h>

#include "ax_mem.h"
#include "log.h"
#include "server.h"
#include "shard.h"

#define SHARDS_STOP_GRACE 2.0 /* seconds to wait for lease releases at shutdown */

static uint32_t actor_shard(ax_server *s, const ax_actor *a)
{
    const char *key = a->key + strlen(a->key) + 1;
    size_t klen = a->key_len - strlen(a->key) - 1;
    return ax_shard_of(key, klen, s->cfg.shard_count);
}

static void on_acquired(void *ud, uint32_t shard, uint64_t epoch)
{
    (void)ud;
    ax_log(AX_LOG_DEBUG, "shard", "serving shard %u at epoch %llu", shard, (unsigned long long)epoch);
}

static void on_lost(void *ud, uint32_t shard, uint64_t epoch, const char *reason)
{
    ax_server *s = ud;
    uint32_t n = 0;
    /* From now on deliveries are refused (the actor is STOPPING) and the stop runs
     * before any queued user message (control mailbox first). */
    for (ax_actor *a = s->keyed_head; a; a = a->knext) {
        if (a->st != AX_ST_DEAD && a->st != AX_ST_STOPPING && actor_shard(s, a) == shard) {
            ax_actor_stop(s, a, reason);
            n++;
        }
    }
    ax_log(strcmp(reason, AX_SHARD_LOST) == 0 ? AX_LOG_WARN : AX_LOG_DEBUG, "shard",
           "stopped serving shard %u (epoch %llu): %s; %u actors stopped", shard, (unsigned long long)epoch, reason, n);
}

static void on_stopped(void *ud)
{
    ax_server *s = ud;
    s->shards_stopped = 1;
    if (s->stopping)
        ev_break(s->loop, EVBREAK_ALL);
}

int ax_route_start(ax_server *s, char *err, size_t errlen)
{
    s->lease_store = ax_lease_store_from_config(s->loop, &s->cfg, err, errlen);
    if (!s->lease_store)
        return AX_ECONFIG;
    /* the owner id is the wire id without the session part: a restarted node (new
     * boot hex) is a new owner, a re-handshake of the same process is not */
    char owner[sizeof s->node_id];
    snprintf(owner, sizeof owner, "%s", s->node_id);
    char *sess = strstr(owner, "-session-");
    if (sess)
        *sess = 0;
    ax_shards_cfg sc;
    ax_shards_cfg_from_config(&sc, &s->cfg, owner);
    ax_shards_cbs cb = {.on_acquired = on_acquired, .on_lost = on_lost, .on_stopped = on_stopped, .ud = s};
    s->shards = ax_shards_new(s->loop, s->lease_store, &sc, &cb, err, errlen);
    if (!s->shards) {
        ax_lease_store_free(s->lease_store);
        s->lease_store = NULL;
        return AX_ECONFIG;
    }
    ax_shards_start(s->shards);
    ax_log(AX_LOG_INFO, "shard", "%u shards, lease store %s, ttl %u ms", s->cfg.shard_count, s->cfg.lease_store,
           s->cfg.lease_ttl_ms);
    return AX_OK;
}

/* Begin releasing the leases. Returns 1 if the caller must keep the loop running
 * until on_stopped (bounded by a grace timer), 0 if nothing is left to wait for. */
static void grace_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)w;
    (void)revents;
    ax_log(AX_LOG_WARN, "shard", "lease releases not confirmed within %.0f s; exiting anyway", SHARDS_STOP_GRACE);
    ev_break(loop, EVBREAK_ALL);
}

int ax_route_stop(ax_server *s)
{
    if (!s->shards || s->shards_stopped)
        return 0;
    ax_shards_stop(s->shards);
    if (s->shards_stopped)
        return 0;
    ev_timer_init(&s->shards_grace, grace_cb, SHARDS_STOP_GRACE, 0.);
    ev_timer_start(s->loop, &s->shards_grace);
    return 1;
}

void ax_route_free(ax_server *s)
{
    if (ev_is_active(&s->shards_grace))
        ev_timer_stop(s->loop, &s->shards_grace);
    ax_shards_free(s->shards); /* manager before store */
    s->shards = NULL;
    ax_lease_store_free(s->lease_store);
    s->lease_store = NULL;
}

uint32_t ax_route_shard_of(ax_server *s, const char *key, size_t klen)
{
    return ax_shard_of(key, klen, s->cfg.shard_count);
}

int ax_route_check(ax_server *s, const char *key, size_t klen, uint64_t msg_epoch, uint64_t *epoch, const char **why)
{
    *epoch = 0;
    if (!s->shards)
        return AX_OK;
    uint32_t shard = ax_shard_of(key, klen, s->cfg.shard_count);
    int rc = ax_shards_fence(s->shards, shard, msg_epoch);
    if (rc == AX_EBUSY)
        *why = "the key's shard is not served by this node now (retry: it may be moving)";
    else if (rc == AX_ESTALE)
        *why = "stale shard epoch: the shard changed owner; re-resolve";
    if (rc)
        return rc;
    ax_shards_serving(s->shards, shard, epoch);
    return AX_OK;
}

uint64_t ax_route_actor_epoch(ax_server *s, const ax_actor *a)
{
    uint64_t e = 0;
    if (!a->key || !s->shards)
        return 0;
    ax_shards_serving(s->shards, actor_shard(s, a), &e);
    return e;
}

cJSON *ax_route_shards_json(ax_server *s, int all)
{
    if (!s->shards) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "error", "no lease manager");
        return o;
    }
    cJSON *doc = ax_shards_json(s->shards, all);
    uint32_t *count = ax_calloc(s->cfg.shard_count, sizeof *count);
    for (ax_actor *a = s->keyed_head; a; a = a->knext)
        if (a->st != AX_ST_DEAD)
            count[actor_shard(s, a)]++;
    cJSON *arr = cJSON_GetObjectItem(doc, "shards"), *it;
    cJSON_ArrayForEach(it, arr)
    {
        cJSON *sh = cJSON_GetObjectItem(it, "shard");
        if (cJSON_IsNumber(sh) && sh->valuedouble >= 0 && sh->valuedouble < s->cfg.shard_count)
            cJSON_AddNumberToObject(it, "actors", count[(uint32_t)sh->valuedouble]);
    }
    ax_free(count);
    return doc;
}

void ax_route_status(ax_server *s, cJSON *doc)
{
    cJSON *o = cJSON_AddObjectToObject(doc, "shards");
    cJSON_AddNumberToObject(o, "count", s->cfg.shard_count);
    if (!s->shards)
        return;
    ax_lease_state ls;
    ax_lease_store_state(s->lease_store, &ls);
    cJSON_AddNumberToObject(o, "owned", ax_shards_count_owned(s->shards));
    cJSON_AddNumberToObject(o, "target", ax_shards_target(s->shards));
    cJSON *st = cJSON_AddObjectToObject(doc, "lease_store");
    cJSON_AddStringToObject(st, "type", ls.store ? ls.store : "?");
    cJSON_AddStringToObject(st, "state", ls.conn ? ls.conn : "?");
    cJSON_AddStringToObject(st, "last_error", ls.last_error ? ls.last_error : "");
    cJSON_AddNumberToObject(st, "ops", (double)ls.ops);
    cJSON_AddNumberToObject(st, "errors", (double)ls.errors);
    cJSON_AddNumberToObject(st, "reconnects", (double)ls.reconnects);
}
