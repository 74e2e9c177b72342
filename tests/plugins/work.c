/* Test plugin for the ABI 1.3..1.5 calls: business errors, deferred replies, timers.
 *   find NAME       "found", or ax_reply_error(ENOTFOUND, "no such user: NAME") for "missing"
 *   handled         how many messages this incarnation handled (it survives a business error)
 *   defer           take the ask over with ax_defer; nothing is answered now
 *   defer_twice     ax_defer twice on one ask: reply the second's token (must be 0)
 *   answer TEXT     answer the oldest open token with TEXT; reply "ok" or the error name
 *   answer_err      answer the oldest open token with ax_reply_token_error(EBUSY, "later, please")
 *   answer_again    answer the token answered last once more; reply the error name
 *   tokens          open tokens
 *   every MS        start a periodic timer "tick" every MS ms; reply its id
 *   once MS         a one-shot timer "tick" after MS ms; reply its id
 *   cancel ID       ax_timer_cancel; reply "ok" or the error name
 *   ticks           ticks received (payload of the last one after a colon)
 *   crash           fail (a permanent actor restarts: tokens answer ENOPROC, timers end)
 *   ask NAME MSG    ask actor NAME message MSG (payload "missing"); the answer arrives as "got"
 *   got             (the answer) recorded as "STATUS:TEXT"
 *   last            the last "got"
 *   arg             the spawn argument as on_start saw it, after "<starts>:"
 *   child NAME TEXT spawn a work actor NAME with spawn argument TEXT (ax_spawn_opts.arg)
 *   pipe            make a pipe and watch its read end ("readable"); reply the watch id
 *   put TEXT        write TEXT into the pipe (as another party would)
 *   readable        (the watch's message) read what is there
 *   io              "EVENTS:BYTES:ERRORS:<what was read>"
 *   unwatch         ax_io_unwatch the pipe's watch; reply "ok" or the error name
 *   close_watched   close the read end while it is still watched (bad use)
 *   slow MS         ax_offload a job sleeping MS ms (result "slept MS"); its "done" is
 *                   recorded as "got" is ("STATUS:TEXT" in last)
 *   fill N MS       offload N such jobs; reply "ACCEPTED:FIRST_ERROR"
 *   cleanups        how many offload cleanups ran (all actors of the plugin)
 *   done_count      how many "done" this actor received
 *   abuse           offload a job that calls the plugin API from the pool thread; its
 *                   result is that call's return (it must be refused)
 * For bench/bench_plugin_api:
 *   nop             reply "1" at once
 *   dnop            ax_defer, tell itself "flush"; "flush" answers the token with "1"
 *   onop            ax_offload a no-op whose "onop_done" answers the token with "1"
 *   many_watches N  N more watches of the pipe's read end; reply "TAKEN:FIRST_ERROR"
 *   many_timers N   N timers (an hour away); reply "TAKEN:FIRST_ERROR" */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stdatomic.h>
#include <time.h>
#include <unistd.h>

#include "axactor/plugin.h"

typedef struct work {
    int64_t handled, ticks;
    uint64_t tokens[64];
    int n_tokens;
    uint64_t last_answered;
    char last[160];
    char last_tick[32];
    uint8_t arg[256];
    size_t arg_len;
    int starts;
    int rfd, wfd;
    uint64_t watch;
    int io_events, io_errors;
    size_t io_bytes;
    char io_data[128];
    int dones;
} work;

static _Atomic int g_cleanups; /* offload cleanups (they run on the actors' workers) */

/* (plugins see no daemon symbols: ax_errname is libaxproto's) */
static const char *ename(int rc)
{
    switch (rc) {
    case AX_OK: return "OK";
    case AX_ENOTFOUND: return "ENOTFOUND";
    case AX_EBUSY: return "EBUSY";
    case AX_ENOPROC: return "ENOPROC";
    case AX_EINVAL: return "EINVAL";
    case AX_EFULL: return "EFULL";
    case AX_ENOTSUP: return "ENOTSUP";
    case AX_ETIMEDOUT: return "ETIMEDOUT";
    case AX_EIO: return "EIO";
    default: return "E?";
    }
}

static const char *text_of(const ax_msg *m, char *buf, size_t cap)
{
    size_t n = m->len < cap - 1 ? m->len : cap - 1;
    if (n)
        memcpy(buf, m->data, n);
    buf[n] = 0;
    return buf;
}

static int w_find(ax_ctx *cx, work *w, const ax_msg *m)
{
    char name[64], text[96];
    w->handled++;
    text_of(m, name, sizeof name);
    if (!strcmp(name, "missing")) {
        snprintf(text, sizeof text, "no such user: %s", name);
        return ax_reply_error(cx, AX_ENOTFOUND, text);
    }
    return ax_reply_str(cx, "found");
}

static int w_handled(ax_ctx *cx, work *w, const ax_msg *m)
{
    (void)m;
    return ax_reply_i64(cx, ++w->handled);
}

static int w_defer(ax_ctx *cx, work *w, const ax_msg *m)
{
    (void)m;
    w->handled++;
    uint64_t t = ax_defer(cx);
    if (t && w->n_tokens < 64)
        w->tokens[w->n_tokens++] = t;
    return AX_OK;
}

static int w_defer_twice(ax_ctx *cx, work *w, const ax_msg *m)
{
    (void)m;
    w->handled++;
    uint64_t a = ax_defer(cx), b = ax_defer(cx);
    int rc = ax_reply_token(cx, a, b ? "second token" : "0", b ? 12 : 1);
    return rc;
}

/* Take the oldest open token out (0: none). */
static uint64_t oldest_token(work *w)
{
    if (!w->n_tokens)
        return 0;
    uint64_t t = w->tokens[0];
    memmove(w->tokens, w->tokens + 1, (size_t)(--w->n_tokens) * sizeof w->tokens[0]);
    return t;
}

static int w_answer(ax_ctx *cx, work *w, const ax_msg *m)
{
    char text[64];
    w->handled++;
    uint64_t t = oldest_token(w);
    if (!t)
        return ax_reply_str(cx, "ENOTFOUND");
    text_of(m, text, sizeof text);
    int rc = ax_reply_token(cx, t, text, strlen(text));
    w->last_answered = t;
    return ax_reply_str(cx, rc ? ename(rc) : "ok");
}

static int w_answer_err(ax_ctx *cx, work *w, const ax_msg *m)
{
    (void)m;
    w->handled++;
    uint64_t t = oldest_token(w);
    if (!t)
        return ax_reply_str(cx, "ENOTFOUND");
    int rc = ax_reply_token_error(cx, t, AX_EBUSY, "later, please");
    w->last_answered = t;
    return ax_reply_str(cx, rc ? ename(rc) : "ok");
}

static int w_answer_again(ax_ctx *cx, work *w, const ax_msg *m)
{
    (void)m;
    w->handled++;
    int rc = ax_reply_token(cx, w->last_answered, "again", 5);
    return ax_reply_str(cx, rc ? ename(rc) : "ok");
}

static int w_tokens(ax_ctx *cx, work *w, const ax_msg *m)
{
    (void)m;
    return ax_reply_i64(cx, w->n_tokens);
}

static int start_timer(ax_ctx *cx, const ax_msg *m, int periodic)
{
    char buf[32];
    int ms = (int)strtol(text_of(m, buf, sizeof buf), NULL, 10);
    uint64_t id = 0;
    int rc = ax_timer_start(cx, (uint32_t)ms, periodic ? (uint32_t)ms : 0, "tick", "tock", 4, &id);
    if (rc)
        return ax_reply_error(cx, rc, "timer_start failed");
    return ax_reply_i64(cx, (int64_t)id);
}

static int w_every(ax_ctx *cx, work *w, const ax_msg *m)
{
    w->handled++;
    return start_timer(cx, m, 1);
}

static int w_once(ax_ctx *cx, work *w, const ax_msg *m)
{
    w->handled++;
    return start_timer(cx, m, 0);
}

static int w_cancel(ax_ctx *cx, work *w, const ax_msg *m)
{
    int64_t id;
    w->handled++;
    if (ax_msg_i64(m, &id))
        return AX_EINVAL;
    int rc = ax_timer_cancel(cx, (uint64_t)id);
    return ax_reply_str(cx, rc ? ename(rc) : "ok");
}

static int w_tick(ax_ctx *cx, work *w, const ax_msg *m)
{
    (void)cx;
    w->ticks++;
    text_of(m, w->last_tick, sizeof w->last_tick);
    return AX_OK;
}

static int w_ticks(ax_ctx *cx, work *w, const ax_msg *m)
{
    (void)m;
    char buf[64];
    snprintf(buf, sizeof buf, "%lld:%s", (long long)w->ticks, w->last_tick);
    return ax_reply_str(cx, buf);
}

static int w_crash(ax_ctx *cx, work *w, const ax_msg *m)
{
    (void)cx, (void)w, (void)m;
    return AX_EFAILED;
}

static int w_ask(ax_ctx *cx, work *w, const ax_msg *m)
{
    char buf[128], *sp;
    w->handled++;
    text_of(m, buf, sizeof buf);
    sp = strchr(buf, ' ');
    if (!sp)
        return AX_EINVAL;
    *sp = 0;
    ax_ref to;
    int rc = ax_lookup(cx, buf, &to);
    if (!rc)
        rc = ax_ask(cx, to, sp + 1, "missing", 7, 3000, "got", 1);
    if (rc)
        snprintf(w->last, sizeof w->last, "%s:refused", ename(rc));
    return AX_OK;
}

static int w_got(ax_ctx *cx, work *w, const ax_msg *m)
{
    (void)cx;
    char text[128];
    snprintf(w->last, sizeof w->last, "%s:%s", ename(m->status), text_of(m, text, sizeof text));
    return AX_OK;
}

static int w_last(ax_ctx *cx, work *w, const ax_msg *m)
{
    (void)m;
    return ax_reply_str(cx, w->last);
}

/* on_start, also at each restart: the state is fresh, the spawn argument the same */
static int w_start(ax_ctx *cx, work *w)
{
    size_t n;
    const void *p = ax_spawn_arg(cx, &n);
    if (n > sizeof w->arg)
        return AX_EINVAL;
    if (n)
        memcpy(w->arg, p, n);
    w->arg_len = n;
    w->starts = 1;
    w->rfd = w->wfd = -1;
    return AX_OK;
}

static void w_stop(ax_ctx *cx, work *w, const char *reason)
{
    (void)cx, (void)reason;
    if (w->rfd >= 0)
        close(w->rfd);
    if (w->wfd >= 0)
        close(w->wfd);
}

static int w_pipe(ax_ctx *cx, work *w, const ax_msg *m)
{
    (void)m;
    int p[2];
    if (w->rfd >= 0 || pipe2(p, O_NONBLOCK | O_CLOEXEC) != 0)
        return ax_reply_error(cx, AX_EBUSY, "pipe");
    w->rfd = p[0];
    w->wfd = p[1];
    int rc = ax_io_watch(cx, w->rfd, AX_IO_READ, "readable", &w->watch);
    return rc ? ax_reply_error(cx, rc, "io_watch failed") : ax_reply_i64(cx, (int64_t)w->watch);
}

static int w_put(ax_ctx *cx, work *w, const ax_msg *m)
{
    ssize_t n = w->wfd >= 0 ? write(w->wfd, m->data, m->len) : -1;
    return n == (ssize_t)m->len ? ax_reply_str(cx, "ok") : ax_reply_error(cx, AX_EIO, "write");
}

static int w_readable(ax_ctx *cx, work *w, const ax_msg *m)
{
    (void)cx;
    ax_io_event ev;
    if (m->len != sizeof ev)
        return AX_EINVAL;
    memcpy(&ev, m->data, sizeof ev);
    w->io_events++;
    if (ev.events & AX_IO_ERROR) {
        w->io_errors++;
        return AX_OK;
    }
    char buf[64];
    ssize_t n;
    while (ev.fd == w->rfd && (n = read(w->rfd, buf, sizeof buf)) > 0) {
        size_t have = strlen(w->io_data), room = sizeof w->io_data - 1 - have;
        size_t k = (size_t)n < room ? (size_t)n : room;
        memcpy(w->io_data + have, buf, k);
        w->io_data[have + k] = 0;
        w->io_bytes += (size_t)n;
    }
    return AX_OK;
}

static int w_io(ax_ctx *cx, work *w, const ax_msg *m)
{
    (void)m;
    char buf[200];
    snprintf(buf, sizeof buf, "%d:%zu:%d:%s", w->io_events, w->io_bytes, w->io_errors, w->io_data);
    return ax_reply_str(cx, buf);
}

static int w_unwatch(ax_ctx *cx, work *w, const ax_msg *m)
{
    (void)m;
    int rc = ax_io_unwatch(cx, w->watch);
    return ax_reply_str(cx, rc ? ename(rc) : "ok");
}

static int w_close_watched(ax_ctx *cx, work *w, const ax_msg *m)
{
    (void)m;
    if (w->rfd >= 0)
        close(w->rfd);
    w->rfd = -1;
    return ax_reply_str(cx, "closed");
}

static int w_arg(ax_ctx *cx, work *w, const ax_msg *m)
{
    (void)m;
    uint8_t buf[300];
    int k = snprintf((char *)buf, sizeof buf, "%d:", w->starts);
    memcpy(buf + k, w->arg, w->arg_len);
    return ax_reply(cx, buf, (size_t)k + w->arg_len);
}

static int w_child(ax_ctx *cx, work *w, const ax_msg *m)
{
    char buf[128], *sp;
    w->handled++;
    text_of(m, buf, sizeof buf);
    sp = strchr(buf, ' ');
    if (!sp)
        return AX_EINVAL;
    *sp = 0;
    ax_spawn_opts o = AX_SPAWN_OPTS_INIT;
    o.name = buf;
    o.arg = sp + 1;
    o.arg_len = strlen(sp + 1);
    ax_ref r;
    int rc = ax_spawn(cx, "work", &o, &r);
    return rc ? ax_reply_error(cx, rc, "spawn failed") : ax_reply_str(cx, "spawned");
}

typedef struct slow_job {
    int ms;
    const ax_api *api; /* abuse: the table a pool thread must not use */
} slow_job;

static int slow_fn(void *arg, void *out, size_t cap, size_t *len)
{
    slow_job *j = arg;
    struct timespec ts = {j->ms / 1000, (long)(j->ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
    int n = snprintf(out, cap, "slept %d", j->ms);
    *len = (size_t)n;
    return AX_OK;
}

static int abuse_fn(void *arg, void *out, size_t cap, size_t *len)
{
    slow_job *j = arg;
    struct { const ax_api *api; } fake = {j->api}; /* no real cx exists on a pool thread */
    int rc = j->api->tell((ax_ctx *)(void *)&fake, AX_REF_NONE, 1, NULL, 0);
    int n = snprintf(out, cap, "%s", ename(rc));
    *len = (size_t)n;
    return AX_OK;
}

static void slow_cleanup(void *arg)
{
    free(arg);
    g_cleanups++;
}

static int offload_one(ax_ctx *cx, int ms, ax_offload_fn fn)
{
    slow_job *j = malloc(sizeof *j);
    j->ms = ms;
    j->api = ax_api_of(cx);
    int rc = ax_offload(cx, fn, slow_cleanup, j, "done", (uint64_t)ms);
    if (rc)
        free(j); /* not taken: still ours */
    return rc;
}

static int w_slow(ax_ctx *cx, work *w, const ax_msg *m)
{
    int64_t ms;
    w->handled++;
    if (ax_msg_i64(m, &ms) || ms < 0)
        return AX_EINVAL;
    int rc = offload_one(cx, (int)ms, slow_fn);
    return rc ? ax_reply_error(cx, rc, "offload refused") : ax_reply_str(cx, "queued");
}

static int w_fill(ax_ctx *cx, work *w, const ax_msg *m)
{
    char buf[32];
    int n = 0, ms = 0, ok = 0, first = AX_OK;
    w->handled++;
    text_of(m, buf, sizeof buf);
    if (sscanf(buf, "%d %d", &n, &ms) != 2)
        return AX_EINVAL;
    for (int i = 0; i < n; i++) {
        int rc = offload_one(cx, ms, slow_fn);
        if (!rc)
            ok++;
        else if (first == AX_OK)
            first = rc;
    }
    char out[48];
    snprintf(out, sizeof out, "%d:%s", ok, ename(first));
    return ax_reply_str(cx, out);
}

static int w_done(ax_ctx *cx, work *w, const ax_msg *m)
{
    w->dones++;
    return w_got(cx, w, m);
}

static int w_done_count(ax_ctx *cx, work *w, const ax_msg *m)
{
    (void)m;
    return ax_reply_i64(cx, w->dones);
}

static int w_cleanups(ax_ctx *cx, work *w, const ax_msg *m)
{
    (void)w, (void)m;
    return ax_reply_i64(cx, g_cleanups);
}

static int w_abuse(ax_ctx *cx, work *w, const ax_msg *m)
{
    (void)m;
    w->handled++;
    int rc = offload_one(cx, 0, abuse_fn);
    return rc ? ax_reply_error(cx, rc, "offload refused") : ax_reply_str(cx, "queued");
}

static int w_nop(ax_ctx *cx, work *w, const ax_msg *m)
{
    (void)w, (void)m;
    return ax_reply(cx, "1", 1);
}

static int w_dnop(ax_ctx *cx, work *w, const ax_msg *m)
{
    (void)w, (void)m;
    uint64_t t = ax_defer(cx);
    return ax_tell(cx, ax_self(cx), "flush", &t, sizeof t);
}

static int w_flush(ax_ctx *cx, work *w, const ax_msg *m)
{
    (void)w;
    uint64_t t;
    if (m->len != sizeof t)
        return AX_EINVAL;
    memcpy(&t, m->data, sizeof t);
    ax_reply_token(cx, t, "1", 1);
    return AX_OK;
}

static int nop_fn(void *arg, void *out, size_t cap, size_t *len)
{
    (void)arg, (void)cap;
    memcpy(out, "1", 1);
    *len = 1;
    return AX_OK;
}

static int w_onop(ax_ctx *cx, work *w, const ax_msg *m)
{
    (void)w, (void)m;
    uint64_t t = ax_defer(cx);
    int rc = ax_offload(cx, nop_fn, NULL, NULL, "onop_done", t);
    if (rc)
        ax_reply_token_error(cx, t, rc, "offload refused");
    return AX_OK;
}

static int w_onop_done(ax_ctx *cx, work *w, const ax_msg *m)
{
    (void)w;
    ax_reply_token(cx, m->tag, m->data, m->len);
    return AX_OK;
}

static int w_many(ax_ctx *cx, work *w, const ax_msg *m, int watches)
{
    int64_t n;
    if (ax_msg_i64(m, &n) || n < 0)
        return AX_EINVAL;
    int ok = 0, first = AX_OK;
    for (int64_t i = 0; i < n; i++) {
        uint64_t id;
        int rc = watches ? ax_io_watch(cx, w->rfd, AX_IO_READ, "readable", &id)
                         : ax_timer_start(cx, 3600000, 0, "tick", NULL, 0, &id);
        if (!rc)
            ok++;
        else if (first == AX_OK)
            first = rc;
    }
    char out[48];
    snprintf(out, sizeof out, "%d:%s", ok, ename(first));
    return ax_reply_str(cx, out);
}

static int w_many_watches(ax_ctx *cx, work *w, const ax_msg *m) { return w_many(cx, w, m, 1); }
static int w_many_timers(ax_ctx *cx, work *w, const ax_msg *m) { return w_many(cx, w, m, 0); }

AX_ACTOR_TYPE(work_type, "work", work, w_start, w_stop, AX_MSG("many_watches", w_many_watches),
              AX_MSG("many_timers", w_many_timers), AX_MSG("nop", w_nop), AX_MSG("dnop", w_dnop),
              AX_MSG("flush", w_flush), AX_MSG("onop", w_onop), AX_MSG("onop_done", w_onop_done), AX_MSG("slow", w_slow), AX_MSG("fill", w_fill),
              AX_MSG("done", w_done), AX_MSG("done_count", w_done_count), AX_MSG("cleanups", w_cleanups),
              AX_MSG("abuse", w_abuse), AX_MSG("arg", w_arg), AX_MSG("child", w_child),
              AX_MSG("pipe", w_pipe), AX_MSG("put", w_put), AX_MSG("readable", w_readable), AX_MSG("io", w_io),
              AX_MSG("unwatch", w_unwatch), AX_MSG("close_watched", w_close_watched), AX_MSG("find", w_find), AX_MSG("handled", w_handled),
              AX_MSG("defer", w_defer), AX_MSG("defer_twice", w_defer_twice), AX_MSG("answer", w_answer),
              AX_MSG("answer_err", w_answer_err), AX_MSG("answer_again", w_answer_again), AX_MSG("tokens", w_tokens),
              AX_MSG("every", w_every), AX_MSG("once", w_once), AX_MSG("cancel", w_cancel), AX_MSG("tick", w_tick),
              AX_MSG("ticks", w_ticks), AX_MSG("crash", w_crash), AX_MSG("ask", w_ask), AX_MSG("got", w_got),
              AX_MSG("last", w_last));

AX_PLUGIN("work", &work_type);
