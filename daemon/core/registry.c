/* The keyed registry: exactly one live actor per (type, key), found or spawned by
 * get_or_spawn, and the idle reaper that stops keyed actors which received no message
 * for their idle timeout (reason "idle"). Keys are stored as "type\0key". */
#include <string.h>

#include "ax_mem.h"
#include "log.h"
#include "core_int.h"
#include "workers.h"

int axd_actor_spawn_keyed(axd_rt *s, axd_type *t, const char *key, size_t key_len, const ax_spawn_opts *o,
                         ax_ref *out, const char **why);

#define REAPER_MIN_MS 20
#define REAPER_MAX_MS 1000

static uint32_t idle_ms(const axd_rt *s, const axd_actor *a)
{
    uint32_t v = a->opts.idle_timeout_ms;
    if (v == UINT32_MAX)
        return 0; /* never */
    return v ? v : s->cfg->idle_timeout_ms;
}

static void reaper_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)revents;
    axd_rt *s = w->data;
    double now = ev_now(loop);
    axd_actor *next;
    for (axd_actor *a = s->keyed_head; a; a = next) {
        next = a->knext;
        uint32_t ms = idle_ms(s, a);
        /* busy = something queued or running: never reaped, whatever the timestamps say */
        if (!ms || a->st != AXD_ST_RUNNING || a->user.len || a->ctl.len || a->running)
            continue;
        if ((now - a->last_msg) * 1000.0 >= ms) {
            s->ctr.idle_reaped++;
            axd_actor_stop(s, a, "idle");
        }
    }
}

/* Re-arm the reaper at a quarter of the smallest idle timeout in use (bounded). */
static void reaper_arm(axd_rt *s, uint32_t timeout_ms)
{
    if (!timeout_ms)
        return;
    uint32_t iv = timeout_ms / 4;
    if (iv < REAPER_MIN_MS)
        iv = REAPER_MIN_MS;
    if (iv > REAPER_MAX_MS)
        iv = REAPER_MAX_MS;
    if (s->reaper_ms && s->reaper_ms <= iv)
        return;
    s->reaper_ms = iv;
    ev_timer_stop(s->loop, &s->reaper);
    ev_timer_set(&s->reaper, iv / 1000.0, iv / 1000.0);
    ev_timer_start(s->loop, &s->reaper);
}

void axd_registry_init(axd_rt *s)
{
    axd_hmap_init(&s->keyed);
    ev_timer_init(&s->reaper, reaper_cb, 1., 1.);
    s->reaper.data = s;
    s->reaper_ms = 0;
}

void axd_registry_free(axd_rt *s)
{
    ev_timer_stop(s->loop, &s->reaper);
    axd_hmap_free(&s->keyed);
}

void axd_registry_remove(axd_rt *s, axd_actor *a)
{
    if (!a->key)
        return;
    if (axd_hmap_get(&s->keyed, a->key, a->key_len) == a)
        axd_hmap_del(&s->keyed, a->key, a->key_len);
    if (a->kprev)
        a->kprev->knext = a->knext;
    else if (s->keyed_head == a)
        s->keyed_head = a->knext;
    if (a->knext)
        a->knext->kprev = a->kprev;
    a->kprev = a->knext = NULL;
}

/* Find or spawn; msg_epoch fences a routed message (0 = not fenced). The shard check
 * is done once here, for both entry points. */
static int get_or_spawn(axd_rt *s, const char *type, size_t tlen, const char *key, size_t klen,
                        uint64_t msg_epoch, const ax_spawn_opts *o, int spawn, ax_ref *out, const char **why);

/* get_or_spawn on the key's home worker, called from another (workers.c). */
typedef struct home_call {
    axd_xspawn x; /* first */
    char type[AX_NAME_MAX + 1];
    char key[AX_KEY_MAX];
    size_t tlen, klen;
    uint64_t msg_epoch;
    int spawn;
} home_call;

static void home_cb(axd_rt *s, void *ud)
{
    home_call *c = ud;
    c->x.rc = get_or_spawn(s, c->type, c->tlen, c->key, c->klen, c->msg_epoch, axd_xspawn_opts(&c->x), c->spawn,
                           &c->x.out, &c->x.why);
}

static int get_or_spawn_home(axd_rt *s, uint32_t home, const char *type, size_t tlen, const char *key, size_t klen,
                             uint64_t msg_epoch, const ax_spawn_opts *o, int spawn, ax_ref *out, const char **why)
{
    ax_spawn_opts ro;
    if (axd_spawn_opts_check(o, &ro, why) != 0)
        return AX_EINVAL;
    home_call *c = axd_xspawn_new(sizeof *c, &ro); /* keyed actors are found by key, not name */
    memcpy(c->type, type, tlen);
    memcpy(c->key, key, klen);
    c->tlen = tlen;
    c->klen = klen;
    c->msg_epoch = msg_epoch;
    c->spawn = spawn;
    return axd_xspawn_run(s, home, home_cb, &c->x, sizeof *c, out, why);
}

static int get_or_spawn(axd_rt *s, const char *type, size_t tlen, const char *key, size_t klen,
                        uint64_t msg_epoch, const ax_spawn_opts *o, int spawn, ax_ref *out, const char **why)
{
    const char *dummy;
    char buf[AX_NAME_MAX + 1 + AX_KEY_MAX];
    if (!why)
        why = &dummy;
    if (tlen == 0 || tlen > AX_NAME_MAX || klen == 0 || klen > AX_KEY_MAX || memchr(key, 0, klen)) {
        *why = "invalid type or key";
        return AX_EINVAL;
    }
    if (s->group && s->group->n > 1) { /* one actor per key on the node: its home worker's */
        axd_type *pt = axd_hmap_get(&s->types, type, tlen);
        uint32_t home = pt && (pt->flags & AX_TYPE_SINGLE_WORKER) ? 0 : axd_workers_home(s->group, key, klen);
        if (home != s->worker)
            return get_or_spawn_home(s, home, type, tlen, key, klen, msg_epoch, o, spawn, out, why);
    }
    uint64_t epoch = 0;
    int frc = s->gate ? s->gate->check(s->gate_ud, key, klen, msg_epoch, &epoch, why) : AX_OK;
    if (frc)
        return frc; /* this node does not serve the key's shard now */
    memcpy(buf, type, tlen);
    buf[tlen] = 0;
    memcpy(buf + tlen + 1, key, klen);
    size_t blen = tlen + 1 + klen;
    axd_actor *a = axd_hmap_get(&s->keyed, buf, blen);
    if (a && a->st != AXD_ST_DEAD && a->st != AXD_ST_STOPPING) {
        *out = axd_ref(s, a);
        return AX_OK;
    }
    if (!spawn) {
        *why = "no live actor for this key";
        return AX_ENOTFOUND;
    }
    axd_type *t = axd_hmap_get(&s->types, type, tlen);
    if (!t) {
        *why = "unknown actor type";
        return AX_ENOTYPE;
    }
    if (a) /* a stopping incarnation still holds the key: the new one replaces it */
        axd_registry_remove(s, a);
    ax_spawn_opts opts;
    axd_spawn_opts_read(&opts, o);
    opts.name = NULL; /* keyed actors are found by key, not name */
    int rc = axd_actor_spawn_keyed(s, t, buf, blen, &opts, out, why);
    if (rc == AX_OK) {
        uint32_t ms = opts.idle_timeout_ms == UINT32_MAX ? 0 : opts.idle_timeout_ms ? opts.idle_timeout_ms : s->cfg->idle_timeout_ms;
        reaper_arm(s, ms);
    }
    return rc;
}

int axd_registry_get_or_spawn(axd_rt *s, const char *type, size_t tlen, const char *key, size_t klen,
                             const ax_spawn_opts *o, int spawn, ax_ref *out, const char **why)
{
    return get_or_spawn(s, type, tlen, key, klen, 0, o, spawn, out, why);
}

int axd_registry_route(axd_rt *s, const char *type, size_t tlen, const char *key, size_t klen, uint64_t msg_epoch,
                      int spawn, ax_ref *out, const char **why)
{
    return get_or_spawn(s, type, tlen, key, klen, msg_epoch, NULL, spawn, out, why);
}
