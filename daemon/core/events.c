/* The lifecycle stream: "started", "restarted" (with the restart count and reason)
 * and "stopped" (with the reason) for every actor, in order per actor, to actor and
 * client subscribers. A slow subscriber never slows the daemon: its buffer is bounded
 * (runtime.events_buffer for actors, the client's output buffer for clients), events
 * past it are skipped and the next delivered event is preceded by a "lagged" marker. */
#include <cjson/cJSON.h>
#include <string.h>

#include "ax_mem.h"
#include "log.h"
#include "core_int.h"
#include "workers.h"

static int sub_index(axd_rt *s, ax_ref who)
{
    for (size_t i = 0; i < s->n_subs; i++)
        if (ax_ref_eq(s->subs[i].who, who))
            return (int)i;
    return -1;
}

int axd_events_subscribe(axd_rt *s, ax_ref who, const char *filter, size_t flen, uint32_t req_id)
{
    int i = sub_index(s, who);
    if (i < 0) {
        if (s->n_subs == s->cap_subs) {
            s->cap_subs = s->cap_subs ? s->cap_subs * 2 : 8;
            s->subs = ax_realloc(s->subs, s->cap_subs * sizeof *s->subs);
        }
        i = (int)s->n_subs++;
        memset(&s->subs[i], 0, sizeof s->subs[i]);
        s->subs[i].who = who;
        atomic_store_explicit(&s->subs_published, (uint32_t)s->n_subs, memory_order_release);
    }
    ax_free(s->subs[i].filter);
    s->subs[i].filter = flen ? ax_strndup(filter, flen) : NULL;
    s->subs[i].req_id = req_id;
    if (who.node == 0) {
        axd_actor *a = axd_actor_get_any(s, who);
        if (a)
            a->subscribed = 1;
    }
    return AX_OK;
}

int axd_events_unsubscribe(axd_rt *s, ax_ref who)
{
    int i = sub_index(s, who);
    if (i < 0)
        return AX_ENOTFOUND;
    ax_free(s->subs[i].filter);
    s->subs[i] = s->subs[--s->n_subs];
    atomic_store_explicit(&s->subs_published, (uint32_t)s->n_subs, memory_order_release);
    return AX_OK;
}

void axd_events_free(axd_rt *s)
{
    for (size_t i = 0; i < s->n_subs; i++)
        ax_free(s->subs[i].filter);
    ax_free(s->subs);
    s->subs = NULL;
    s->n_subs = s->cap_subs = 0;
}

static char *event_doc(axd_rt *s, axd_actor *a, const char *event, const char *reason)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "event", event);
    cJSON_AddNumberToObject(o, "id", (double)axd_ref(s, a).id);
    cJSON_AddNumberToObject(o, "gen", a->gen);
    cJSON_AddStringToObject(o, "name", a->name ? a->name : "");
    cJSON_AddStringToObject(o, "type", a->type->name);
    if (a->key)
        axd_json_add_key(o, a);
    if (reason)
        cJSON_AddStringToObject(o, "reason", reason);
    if (strcmp(event, "restarted") == 0)
        cJSON_AddNumberToObject(o, "restarts", a->restarts);
    cJSON_AddNumberToObject(o, "time", ev_now(s->loop));
    char *txt = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return txt;
}

/* Deliver one document to an actor subscriber; -1 if its buffer is full or it is gone. */
static int to_actor(axd_rt *s, axd_event_sub *sub, const char *doc, size_t n)
{
    axd_actor *a = axd_actor_get_any(s, sub->who);
    if (!a)
        return -2;
    if (a->ctl.len >= s->cfg->events_buffer)
        return -1;
    axd_env *e = axd_env_new(s, n);
    if (!e)
        return -1;
    memcpy(e->data, doc, n);
    e->kind = AXD_ENV_SYS;
    e->m.id = s->sys_event_id;
    if (axd_actor_deliver(s, a, e) != 0) {
        axd_env_free(s, e);
        return -1;
    }
    return 0;
}

static int to_sub(axd_rt *s, axd_event_sub *sub, const char *doc, size_t n)
{
    if (sub->who.node == AXD_NODE_CLIENT) {
        if (!s->sink || !s->sink->alive(s->sink_ud, sub->who))
            return -2;
        return s->sink->send_event(s->sink_ud, sub->who, sub->req_id, doc, n, 0);
    }
    return to_actor(s, sub, doc, n);
}

/* Deliver one event of actor `who` (registered name `name`, or NULL) to this worker's
 * subscribers; doc is built on first need by build(bud) when *docp is NULL. */
static void deliver(axd_rt *s, ax_ref who, const char *name, char **docp, size_t *np,
                    char *(*build)(void *), void *bud)
{
    for (size_t i = 0; i < s->n_subs;) {
        axd_event_sub *sub = &s->subs[i];
        if (sub->filter && (!name || strcmp(sub->filter, name) != 0)) {
            i++;
            continue;
        }
        if (ax_ref_eq(sub->who, who)) {
            i++; /* an actor does not hear about itself */
            continue;
        }
        if (!*docp) {
            *docp = build(bud);
            if (!*docp)
                return;
            *np = strlen(*docp);
        }
        int rc = 0;
        if (sub->lagged) {
            char lag[96];
            int ln = snprintf(lag, sizeof lag, "{\"event\":\"lagged\",\"skipped\":%llu}", (unsigned long long)sub->lagged);
            rc = to_sub(s, sub, lag, (size_t)ln);
            if (rc == 0)
                sub->lagged = 0;
        }
        if (rc == 0)
            rc = to_sub(s, sub, *docp, *np);
        if (rc == -2) { /* subscriber gone: drop it */
            ax_free(sub->filter);
            s->subs[i] = s->subs[--s->n_subs];
            atomic_store_explicit(&s->subs_published, (uint32_t)s->n_subs, memory_order_release);
            continue;
        }
        if (rc == -1) {
            sub->lagged++;
            s->ctr.events_lagged++;
        }
        i++;
    }
}

typedef struct emit_ctx {
    axd_rt *s;
    axd_actor *a;
    const char *event, *reason;
} emit_ctx;

static char *build_doc(void *ud)
{
    emit_ctx *e = ud;
    return event_doc(e->s, e->a, e->event, e->reason);
}

void axd_event_emit(axd_rt *s, axd_actor *a, const char *event, const char *reason)
{
    axd_workers *g = s->group;
    int others = 0;
    for (uint32_t w = 0; g && w < g->n; w++)
        others |= w != s->worker && atomic_load_explicit(&g->w[w].rt->subs_published, memory_order_acquire) > 0;
    if (!s->n_subs && !others)
        return;
    emit_ctx ec = {s, a, event, reason};
    char *doc = NULL;
    size_t n = 0;
    s->ctr.events++;
    ax_ref me = axd_ref(s, a);
    deliver(s, me, a->name, &doc, &n, build_doc, &ec);
    /* subscribers on other workers: the document travels to each (in order per actor) */
    for (uint32_t w = 0; others && w < g->n; w++) {
        if (w == s->worker || !atomic_load_explicit(&g->w[w].rt->subs_published, memory_order_acquire))
            continue;
        if (!doc && !(doc = build_doc(&ec)))
            break;
        n = strlen(doc);
        axd_xw_event(s, w, me, a->name, doc, n);
    }
    cJSON_free(doc);
}

static char *no_build(void *ud)
{
    (void)ud;
    return NULL;
}

void axd_events_deliver(axd_rt *s, ax_ref who, const char *name, const char *doc, size_t n)
{
    char *d = (char *)doc;
    deliver(s, who, name, &d, &n, no_build, NULL);
}
