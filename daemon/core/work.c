/* What an actor incarnation holds besides its state (ABI 1.3 to 1.7, plugin.h): business
 * errors, deferred-reply tokens, timers and I/O watches. Tokens, timers and watches belong
 * to one incarnation: axd_actor_work_end (on stop, failure, restart) answers the open
 * tokens with ENOPROC and stops the timers and watches. Everything here runs on the
 * actor's worker. */
#include <fcntl.h>
#include <string.h>

#include "ax_mem.h"
#include "core_int.h"
#include "log.h"
#include "workers.h"

typedef struct axd_token {
    uint64_t id;
    uint32_t ask, ask_gen;
    uint8_t ask_worker;
} axd_token;

typedef struct axd_atimer {
    ev_timer t;
    struct axd_atimer *next, *prev;
    axd_rt *s;
    axd_actor *a;
    uint64_t id;
    uint32_t msg;
    size_t n;
    uint8_t data[];
} axd_atimer;

typedef struct axd_iow {
    ev_io io;
    struct axd_iow *next, *prev;
    axd_rt *s;
    axd_actor *a;
    uint64_t id;
    uint32_t msg;
    uint8_t queued; /* a notification is on its way to the actor: not re-armed until handled */
} axd_iow;

struct axd_actor_work {
    axd_token *tokens;
    uint32_t n_tokens, cap_tokens;
    axd_atimer *timers;
    uint32_t n_timers;
    axd_iow *watches;
    uint32_t n_watches;
    uint64_t next_id; /* tokens and timer ids, never 0 */
};

static axd_actor_work *work_of(axd_actor *a)
{
    if (!a->w)
        a->w = ax_calloc(1, sizeof *a->w);
    return a->w;
}

/* The text an error answer carries: the plugin's, or the code's own; bounded. */
static size_t error_text(int code, const char *text, const char **out)
{
    *out = text ? text : ax_strerror(code);
    size_t n = strlen(*out);
    return n > AX_ERROR_TEXT_MAX ? AX_ERROR_TEXT_MAX : n;
}

int axd_api_reply_error(ax_ctx *cx, int code, const char *text)
{
    AXD_NOT_FROM_POOL(AX_EINVAL);
    if (code >= 0)
        return AX_EINVAL;
    if (!cx->cur || !cx->cur->ask || cx->replied)
        return AX_OK;
    cx->replied = 1;
    const char *t;
    size_t n = error_text(code, text, &t);
    axd_ctx_answer(cx, cx->cur, code, t, n);
    return AX_OK;
}

uint64_t axd_api_defer(ax_ctx *cx)
{
    AXD_NOT_FROM_POOL(0);
    if (!cx->self || !cx->cur || !cx->cur->ask || cx->replied)
        return 0;
    axd_actor_work *w = work_of(cx->self);
    if (w->n_tokens >= AX_TOKENS_MAX)
        return 0;
    if (w->n_tokens == w->cap_tokens) {
        w->cap_tokens = w->cap_tokens ? 2 * w->cap_tokens : 8;
        w->tokens = ax_realloc(w->tokens, w->cap_tokens * sizeof *w->tokens);
    }
    axd_token *k = &w->tokens[w->n_tokens++];
    k->id = ++w->next_id;
    k->ask = cx->cur->ask;
    k->ask_gen = cx->cur->ask_gen;
    k->ask_worker = cx->cur->ask_worker;
    cx->replied = 1; /* answered through the token, not when the handler returns */
    return k->id;
}

int axd_api_reply_token(ax_ctx *cx, uint64_t token, int code, const char *text, const void *p, size_t n)
{
    AXD_NOT_FROM_POOL(AX_EINVAL);
    if (!cx->self)
        return AX_EINVAL;
    if (code > 0)
        return AX_EINVAL;
    axd_actor_work *w = cx->self->w;
    for (uint32_t i = 0; token && w && i < w->n_tokens; i++) {
        if (w->tokens[i].id != token)
            continue;
        axd_env back = {.ask = w->tokens[i].ask, .ask_gen = w->tokens[i].ask_gen,
                        .ask_worker = w->tokens[i].ask_worker};
        w->tokens[i] = w->tokens[--w->n_tokens];
        cx->srv->ctr.replies++;
        if (code == AX_OK) {
            axd_ctx_answer(cx, &back, AX_OK, p, n);
        } else {
            const char *t;
            size_t tn = error_text(code, text, &t);
            axd_ctx_answer(cx, &back, code, t, tn);
        }
        return AX_OK;
    }
    return AX_ENOTFOUND; /* not this actor's, answered already, or 0 */
}

/* ---------------- timers ---------------- */

static void timer_unlink(axd_actor_work *w, axd_atimer *t)
{
    if (t->prev)
        t->prev->next = t->next;
    else
        w->timers = t->next;
    if (t->next)
        t->next->prev = t->prev;
    w->n_timers--;
}

static void atimer_cb(struct ev_loop *loop, ev_timer *ev, int revents)
{
    (void)loop;
    (void)revents;
    axd_atimer *t = ev->data;
    axd_rt *s = t->s;
    axd_actor *a = t->a;
    axd_env *e = axd_env_new(s, t->n);
    if (e) {
        if (t->n)
            memcpy(e->data, t->data, t->n);
        e->m.id = t->msg;
        e->m.tag = t->id;
        if (axd_actor_deliver(s, a, e) != 0)
            axd_env_free(s, e); /* a full mailbox skips this tick (counted there) */
    }
    if (!ev_is_active(&t->t)) { /* one-shot: done */
        timer_unlink(a->w, t);
        ax_free(t);
    }
}

int axd_api_timer_start(ax_ctx *cx, uint32_t delay_ms, uint32_t interval_ms, uint32_t msg, const void *p, size_t n,
                        uint64_t *id)
{
    AXD_NOT_FROM_POOL(AX_EINVAL);
    axd_rt *s = cx->srv;
    if (!cx->self || !msg || !axd_msg_valid(s->msgs, msg) || (n && !p))
        return AX_EINVAL;
    axd_actor_work *w = work_of(cx->self);
    if (w->n_timers >= AX_TIMERS_MAX)
        return AX_EFULL;
    axd_atimer *t = ax_try_malloc(sizeof *t + n);
    if (!t)
        return AX_ENOMEM;
    memset(t, 0, sizeof *t);
    t->s = s;
    t->a = cx->self;
    t->id = ++w->next_id;
    t->msg = msg;
    t->n = n;
    if (n)
        memcpy(t->data, p, n);
    ev_timer_init(&t->t, atimer_cb, delay_ms / 1000.0, interval_ms / 1000.0);
    t->t.data = t;
    ev_timer_start(s->loop, &t->t);
    t->next = w->timers;
    if (w->timers)
        w->timers->prev = t;
    w->timers = t;
    w->n_timers++;
    if (id)
        *id = t->id;
    return AX_OK;
}

int axd_api_timer_cancel(ax_ctx *cx, uint64_t id)
{
    AXD_NOT_FROM_POOL(AX_EINVAL);
    axd_actor_work *w = cx->self ? cx->self->w : NULL;
    for (axd_atimer *t = w ? w->timers : NULL; t; t = t->next) {
        if (t->id != id)
            continue;
        ev_timer_stop(cx->srv->loop, &t->t);
        timer_unlink(w, t);
        ax_free(t);
        return AX_OK;
    }
    return AX_ENOTFOUND;
}

/* ---------------- I/O watches ---------------- */

static void iow_unlink(axd_actor_work *w, axd_iow *x)
{
    if (x->prev)
        x->prev->next = x->next;
    else
        w->watches = x->next;
    if (x->next)
        x->next->prev = x->prev;
    w->n_watches--;
}

static void iow_cb(struct ev_loop *loop, ev_io *io, int revents)
{
    axd_iow *x = io->data;
    axd_rt *s = x->s;
    axd_actor *a = x->a;
    ev_io_stop(loop, io); /* one notification at a time: re-armed when handled */
    ax_io_event ev = {.fd = io->fd, .id = x->id,
                      .events = ((revents & EV_READ) ? AX_IO_READ : 0) | ((revents & EV_WRITE) ? AX_IO_WRITE : 0) |
                                ((revents & EV_ERROR) ? AX_IO_ERROR : 0)};
    axd_env *e = axd_env_new(s, sizeof ev);
    if (e) {
        memcpy(e->data, &ev, sizeof ev);
        e->m.id = x->msg;
        e->m.tag = x->id;
        e->kind = AXD_ENV_SYS; /* beside the signals: never refused for capacity */
        e->io = !(revents & EV_ERROR);
        if (axd_actor_deliver(s, a, e) != 0)
            axd_env_free(s, e);
        else
            x->queued = 1;
    }
    if (revents & EV_ERROR) { /* the loop gave up on this fd: the watch ends */
        iow_unlink(a->w, x);
        ax_free(x);
    } else if (!x->queued) {
        ev_io_start(loop, io); /* could not queue it: try at the next readiness */
    }
}

int axd_api_io_watch(ax_ctx *cx, int fd, unsigned events, uint32_t msg, uint64_t *id)
{
    AXD_NOT_FROM_POOL(AX_EINVAL);
    axd_rt *s = cx->srv;
    if (!cx->self || !msg || !axd_msg_valid(s->msgs, msg) || fd < 0 || !events || (events & ~(AX_IO_READ | AX_IO_WRITE)))
        return AX_EINVAL;
    if (fcntl(fd, F_GETFD) < 0)
        return AX_EINVAL; /* not an open descriptor */
    axd_actor_work *w = work_of(cx->self);
    if (w->n_watches >= AX_IO_WATCHES_MAX)
        return AX_EFULL;
    axd_iow *x = ax_try_malloc(sizeof *x);
    if (!x)
        return AX_ENOMEM;
    memset(x, 0, sizeof *x);
    x->s = s;
    x->a = cx->self;
    x->id = ++w->next_id;
    x->msg = msg;
    ev_io_init(&x->io, iow_cb, fd, ((events & AX_IO_READ) ? EV_READ : 0) | ((events & AX_IO_WRITE) ? EV_WRITE : 0));
    x->io.data = x;
    ev_io_start(s->loop, &x->io);
    x->next = w->watches;
    if (w->watches)
        w->watches->prev = x;
    w->watches = x;
    w->n_watches++;
    if (id)
        *id = x->id;
    return AX_OK;
}

int axd_api_io_unwatch(ax_ctx *cx, uint64_t id)
{
    AXD_NOT_FROM_POOL(AX_EINVAL);
    axd_actor_work *w = cx->self ? cx->self->w : NULL;
    for (axd_iow *x = w ? w->watches : NULL; x; x = x->next) {
        if (x->id != id)
            continue;
        ev_io_stop(cx->srv->loop, &x->io);
        iow_unlink(w, x);
        ax_free(x);
        return AX_OK;
    }
    return AX_ENOTFOUND;
}

void axd_io_rearm(axd_rt *s, axd_actor *a, uint64_t id)
{
    for (axd_iow *x = a->w ? a->w->watches : NULL; x; x = x->next)
        if (x->id == id) {
            x->queued = 0;
            if (!ev_is_active(&x->io))
                ev_io_start(s->loop, &x->io);
            return;
        }
}

/* ---------------- the end of an incarnation ---------------- */

void axd_actor_work_end(axd_rt *s, axd_actor *a)
{
    axd_actor_work *w = a->w;
    if (!w)
        return;
    a->w = NULL;
    for (uint32_t i = 0; i < w->n_tokens; i++) { /* nobody will answer these now */
        axd_env back = {.ask = w->tokens[i].ask, .ask_gen = w->tokens[i].ask_gen, .ask_worker = w->tokens[i].ask_worker};
        axd_xw_answer(s, &back, AX_ENOPROC, NULL, 0);
    }
    for (axd_atimer *t = w->timers, *next; t; t = next) {
        next = t->next;
        ev_timer_stop(s->loop, &t->t);
        ax_free(t);
    }
    for (axd_iow *x = w->watches, *next; x; x = next) {
        next = x->next;
        ev_io_stop(s->loop, &x->io);
        ax_free(x);
    }
    ax_free(w->tokens);
    ax_free(w);
}
