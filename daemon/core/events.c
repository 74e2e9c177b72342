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
    cJSON_AddNumberToObject(o, "id", a->slot);
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

void axd_event_emit(axd_rt *s, axd_actor *a, const char *event, const char *reason)
{
    if (!s->n_subs)
        return;
    char *doc = NULL;
    size_t n = 0;
    s->ctr.events++;
    for (size_t i = 0; i < s->n_subs;) {
        axd_event_sub *sub = &s->subs[i];
        if (sub->filter && (!a->name || strcmp(sub->filter, a->name) != 0)) {
            i++;
            continue;
        }
        if (sub->who.node == 0 && sub->who.id == a->slot && sub->who.gen == a->gen) {
            i++; /* an actor does not hear about itself */
            continue;
        }
        if (!doc) {
            doc = event_doc(s, a, event, reason);
            if (!doc)
                return;
            n = strlen(doc);
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
            rc = to_sub(s, sub, doc, n);
        if (rc == -2) { /* subscriber gone: drop it */
            ax_free(sub->filter);
            s->subs[i] = s->subs[--s->n_subs];
            continue;
        }
        if (rc == -1) {
            sub->lagged++;
            s->ctr.events_lagged++;
        }
        i++;
    }
    cJSON_free(doc);
}
