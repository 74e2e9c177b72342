/* Durable keyed actors (plugin.h, "Durable keyed actors"; PROTOCOL.md, "Durable keyed
 * actors"): the state of a keyed actor whose type has a decode callback is kept in the
 * lease store, reached through the shard gate (state_load / state_write, fenced by the
 * shard epoch the actor was activated at).
 *   Activation: axd_actor_start (first start and every restart) begins a load; until it
 * completes the actor is `loading` and nothing of it runs (messages queue); then decode
 * gets the record, or the actor starts fresh.
 *   Deletes ("$forget", ax_forget) are writes of a record's absence.
 *   Writes: while a durable actor's handlers run, their answers are held (ax_ctx.hold);
 * after a handler returned AX_OK the daemon encodes the state and, when it changed,
 * notes the bytes as the turn's write (several handlers of one turn share one write).
 * At the end of the turn (or before the actor exits) the write goes to the store with
 * the held answers; they are sent when the store confirms it. A refused (fenced) write
 * answers them AX_ESTALE and stops the actor ("fenced"), an unknown outcome answers
 * them with the store's error and stops it ("state_unavailable"). */
#include <string.h>

#include "ax_mem.h"
#include "core_int.h"
#include "log.h"
#include "monotime.h"
#include "workers.h"


/* The bytes last written for an actor (what encode is compared with). */
typedef struct axd_pstate {
    void *last;
    size_t len;
    int known; /* last is what the store has (or will have) */
} axd_pstate;

typedef struct pstore_write {
    ax_ref actor;
    axd_held *v;
    uint32_t n;
    int del;
    size_t bytes;
} pstore_write;

typedef struct pload {
    ax_ref actor;
    uint32_t gen_restarts; /* the incarnation it is for (a->restarts) */
    double t0;
} pload;

int axd_persist_durable(const axd_rt *s, const axd_actor *a)
{
    return a->key && a->type->decode && s->gate && s->gate->state_load && strcmp(s->cfg->state_persist, "off") != 0;
}

static void held_release(axd_rt *s, axd_held *v, uint32_t n, int status)
{
    for (uint32_t i = 0; i < n; i++) {
        axd_env back = {.ask = v[i].ask, .ask_gen = v[i].ask_gen, .ask_worker = v[i].worker};
        if (status == AX_OK)
            axd_xw_answer(s, &back, v[i].status, v[i].data, v[i].n);
        else
            axd_xw_answer(s, &back, status, ax_strerror(status), strlen(ax_strerror(status)));
        ax_free(v[i].data);
    }
    ax_free(v);
}

void axd_ctx_answer(ax_ctx *cx, const axd_env *e, int status, const void *data, size_t n)
{
    struct axd_hold *h = cx->hold;
    if (!e->ask)
        return;
    if (!h) {
        axd_xw_answer(cx->srv, e, status, data, n);
        return;
    }
    if (h->n == h->cap) {
        h->cap = h->cap ? h->cap * 2 : 8;
        h->v = ax_realloc(h->v, h->cap * sizeof *h->v);
    }
    axd_held *x = &h->v[h->n++];
    x->worker = e->ask_worker;
    x->ask = e->ask;
    x->ask_gen = e->ask_gen;
    x->status = status;
    x->n = n;
    x->data = n ? ax_malloc(n) : NULL;
    if (n)
        memcpy(x->data, data, n);
}

/* ---- writes ---- */

static void stop_incarnation(axd_rt *s, ax_ref r, const char *reason)
{
    axd_actor *a = axd_actor_get_any(s, r);
    if (a && a->st != AXD_ST_DEAD)
        axd_actor_stop(s, a, reason);
}

static void write_done(axd_rt *s, void *ud, int status, int found, const void *data, size_t n)
{
    (void)found, (void)data, (void)n;
    pstore_write *w = ud;
    if (!s) { /* the runtime is gone (teardown): nobody to answer */
        for (uint32_t i = 0; i < w->n; i++)
            ax_free(w->v[i].data);
        ax_free(w->v);
        ax_free(w);
        return;
    }
    if (status == AX_OK) {
        if (w->del)
            s->ctr.state_deletes++;
        else
            s->ctr.state_writes++;
        s->ctr.state_write_bytes += w->bytes;
        held_release(s, w->v, w->n, AX_OK);
    } else {
        if (status == AX_ESTALE)
            s->ctr.state_fenced++;
        else
            s->ctr.state_write_errors++;
        axd_actor *a = axd_actor_get_any(s, w->actor);
        axd_log(status == AX_ESTALE ? AX_LOG_WARN : AX_LOG_ERROR, "state",
               "%s @%u.%u: state write %s: %s", a ? a->type->name : "actor", (unsigned)w->actor.id,
               w->actor.gen, status == AX_ESTALE ? "refused (fenced: the shard has a newer owner)" : "failed",
               ax_strerror(status));
        held_release(s, w->v, w->n, status);
        stop_incarnation(s, w->actor, status == AX_ESTALE ? AXD_FENCED : AXD_STATE_UNAVAILABLE);
        /* what the store has is unknown now: a later turn must write whatever it has */
        if (a && a->ps)
            a->ps->known = 0;
    }
    ax_free(w);
}

void axd_persist_flush(axd_rt *s, axd_actor *a, struct axd_hold *h)
{
    if (!h->write) {
        held_release(s, h->v, h->n, AX_OK);
    } else {
        pstore_write *w = ax_calloc(1, sizeof *w);
        w->actor = axd_ref(s, a);
        w->v = h->v;
        w->n = h->n;
        w->del = h->write == 2;
        w->bytes = w->del ? 0 : h->len;
        int rc = s->gate->state_write(s->gate_ud, s, a->shard, a->epoch, a->key, a->key_len, h->buf, h->len, w->del,
                                      write_done, w);
        if (rc != 0)
            write_done(s, w, rc, 0, NULL, 0);
    }
    ax_free(h->buf);
    memset(h, 0, sizeof *h);
}

static void pstate_set(axd_actor *a, const void *p, size_t n)
{
    if (!a->ps)
        a->ps = ax_calloc(1, sizeof *a->ps);
    ax_free(a->ps->last);
    a->ps->last = n ? ax_malloc(n) : NULL;
    if (n)
        memcpy(a->ps->last, p, n);
    a->ps->len = n;
    a->ps->known = 1;
}

/* Note bytes as the turn's write (they replace an earlier handler's of the turn). */
static void hold_note(struct axd_hold *h, axd_actor *a, const void *p, size_t n, int del)
{
    ax_free(h->buf);
    h->buf = NULL;
    h->len = 0;
    h->write = del ? 2 : 1;
    if (!del) {
        h->buf = n ? ax_malloc(n) : NULL;
        if (n)
            memcpy(h->buf, p, n);
        h->len = n;
        pstate_set(a, p, n);
    } else if (a->ps) {
        a->ps->known = 0;
    }
}

static void *encode_buf(axd_rt *s)
{
    if (!s->state_buf)
        s->state_buf = ax_malloc(s->cfg->state_max_bytes);
    return s->state_buf;
}

/* Encode the state (codec types) into the scratch buffer: AX_OK and *len, AX_STATE_UNCHANGED, or an error. */
static int encode_state(axd_rt *s, axd_actor *a, size_t *len)
{
    ax_ctx cx;
    memset(&cx, 0, sizeof cx);
    cx.api = &s->api;
    cx.srv = s;
    cx.self = a;
    *len = 0;
    int rc = a->type->encode(&cx, a->state, encode_buf(s), s->cfg->state_max_bytes, len);
    if (rc == AX_OK && *len > s->cfg->state_max_bytes)
        rc = AX_ETOOBIG;
    return rc;
}

int axd_persist_after(axd_rt *s, axd_actor *a, ax_ctx *cx, int rc)
{
    struct axd_hold *h = cx->hold;
    if (rc != AX_OK || !a->type->encode || h->write == 2 || (h->write == 1 && cx->persisted))
        return 0;
    size_t len = 0;
    int er = encode_state(s, a, &len);
    if (er == AX_STATE_UNCHANGED) {
        s->ctr.state_unchanged++;
        return 0;
    }
    if (er != AX_OK) {
        axd_log(AX_LOG_ERROR, "state", "%s @%u.%u: encode failed: %s (state.max_bytes = %u)", a->type->name,
               a->slot, a->gen, ax_strerror(er), s->cfg->state_max_bytes);
        return er;
    }
    if (a->ps && a->ps->known && a->ps->len == len && (!len || !memcmp(a->ps->last, s->state_buf, len))) {
        s->ctr.state_unchanged++;
        return 0;
    }
    hold_note(h, a, s->state_buf, len, 0);
    return 0;
}

int axd_api_persist(ax_ctx *cx, const void *p, size_t n)
{
    AXD_NOT_FROM_POOL(AX_EINVAL);
    if (!cx->hold || !cx->self || !cx->cur)
        return AX_EINVAL;
    if (n > cx->srv->cfg->state_max_bytes)
        return AX_ETOOBIG;
    if (n && !p)
        return AX_EINVAL;
    hold_note(cx->hold, cx->self, p, n, 0);
    cx->persisted = 1;
    return AX_OK;
}

int axd_api_forget(ax_ctx *cx)
{
    AXD_NOT_FROM_POOL(AX_EINVAL);
    if (!cx->hold || !cx->self || !cx->cur)
        return AX_EINVAL;
    hold_note(cx->hold, cx->self, NULL, 0, 1);
    return AX_OK;
}

void axd_persist_forget_msg(ax_ctx *cx)
{
    hold_note(cx->hold, cx->self, NULL, 0, 1);
}

/* ---- loads ---- */

static void load_done(axd_rt *s, void *ud, int status, int found, const void *data, size_t n)
{
    pload *l = ud;
    if (!s) { /* the runtime is gone (teardown) */
        ax_free(l);
        return;
    }
    axd_actor *a = axd_actor_get_any(s, l->actor);
    double us = (axd_mono_now() - l->t0) * 1e6;
    if (!a || a->st == AXD_ST_DEAD || !a->loading || a->restarts != l->gen_restarts) {
        ax_free(l);
        return; /* gone (or a newer incarnation's load is on its way) */
    }
    ax_free(l);
    a->loading = 0;
    const char *reason = NULL;
    if (status == AX_OK) {
        s->ctr.state_loads++;
        s->ctr.state_load_us_total += (uint64_t)us;
        if ((uint64_t)us > s->ctr.state_load_us_max)
            s->ctr.state_load_us_max = (uint64_t)us;
    }
    if (status != AX_OK) {
        s->ctr.state_load_errors++;
        if (status == AX_ESTALE)
            s->ctr.state_fenced++;
        axd_log(AX_LOG_WARN, "state", "%s @%u.%u: state load %s: %s", a->type->name, a->slot, a->gen,
               status == AX_ESTALE ? "refused (fenced: the shard has a newer owner)" : "failed", ax_strerror(status));
        reason = status == AX_ESTALE ? AXD_FENCED : AXD_STATE_UNAVAILABLE;
    } else if (found) {
        s->ctr.state_loads_found++;
        ax_ctx cx;
        memset(&cx, 0, sizeof cx);
        cx.api = &s->api;
        cx.srv = s;
        cx.self = a;
        a->running = 1;
        int rc = a->type->decode(&cx, a->state, data, n);
        a->running = 0;
        if (rc != AX_OK) {
            axd_log(AX_LOG_ERROR, "state", "%s @%u.%u: decode of its %zu state bytes failed: %s", a->type->name,
                   a->slot, a->gen, n, ax_strerror(rc));
            reason = "state_decode";
        } else {
            pstate_set(a, data, n);
        }
    } else if (a->type->encode) {
        size_t len = 0; /* a fresh actor: what it is now is what "unchanged" means */
        if (encode_state(s, a, &len) == AX_OK)
            pstate_set(a, s->state_buf, len);
    }
    if (reason) {
        axd_actor_exit(s, a, reason, 1);
        return;
    }
    if (a->ctl.len || a->user.len)
        axd_actor_schedule(s, a);
}

void axd_persist_activate(axd_rt *s, axd_actor *a)
{
    if (!axd_persist_durable(s, a))
        return;
    if (a->ps)
        a->ps->known = 0;
    pload *l = ax_calloc(1, sizeof *l);
    l->actor = axd_ref(s, a);
    l->gen_restarts = a->restarts;
    l->t0 = axd_mono_now();
    a->loading = 1;
    int rc = s->gate->state_load(s->gate_ud, s, a->shard, a->epoch, a->key, a->key_len, load_done, l);
    if (rc != 0) {
        ax_free(l);
        a->loading = 0;
        s->ctr.state_load_errors++;
        axd_log(AX_LOG_WARN, "state", "%s @%u.%u: state load not started: %s", a->type->name, a->slot, a->gen,
               ax_strerror(rc));
        axd_actor_stop(s, a, AXD_STATE_UNAVAILABLE);
    }
}

void axd_persist_free(axd_actor *a)
{
    if (!a->ps)
        return;
    ax_free(a->ps->last);
    ax_free(a->ps);
    a->ps = NULL;
}
