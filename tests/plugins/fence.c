/* Test plugin for fencing across failovers (tests/test_cluster_shards.c): a keyed
 * "fence" actor records the shard epoch (ax_ctx_epoch) it runs under at every message,
 * so a test can check that the epochs a key's actor sees never go backwards and grow
 * when the key's shard changes owner.
 *
 * Messages:
 *   epoch  reply the epoch seen for this message, as decimal text
 *   hist   reply "<messages> <lowest> <highest> <decreases>" over this actor's life
 *   inc    record only (for tells)
 *   rec    (payload: the key) append "PID KEY EPOCH MONO_NS" to the file named by
 *          $AX_FENCE_LOG (one write per line, O_APPEND: daemons share the file), reply the epoch
 *   slow   (payload: "KEY MS") record as rec does, then stay busy that long (a handler
 *          that blocks its loop past the lease ttl)
 * Times are CLOCK_MONOTONIC, system-wide: records of several daemons compare.
 * on_stop appends "PID KEY REASON" to $AX_FENCE_STOPLOG.
 *
 * A durable keyed "dfence" (ABI 1.9: its state, a number, is kept in the lease store):
 *   set V        the state becomes V (a decimal); reply V
 *   pause_set V  stop this whole daemon (SIGSTOP to itself) inside the handler, then,
 *                once continued, set V: a write that reaches the store only after the
 *                test let the lease expire and another node take the shard
 *   get          reply the state */
#include <axactor/plugin.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

typedef struct {
    uint64_t n, lo, hi, last, decreases;
} fence;

static uint64_t record(ax_ctx *cx, fence *self)
{
    uint64_t e = ax_ctx_epoch(cx);
    if (self->n && e < self->last)
        self->decreases++;
    if (!self->n || e < self->lo)
        self->lo = e;
    if (e > self->hi)
        self->hi = e;
    self->last = e;
    self->n++;
    return e;
}

static int f_epoch(ax_ctx *cx, fence *self, const ax_msg *m)
{
    (void)m;
    return ax_reply_i64(cx, (int64_t)record(cx, self));
}

static int f_hist(ax_ctx *cx, fence *self, const ax_msg *m)
{
    char buf[96];
    (void)m;
    record(cx, self);
    snprintf(buf, sizeof buf, "%llu %llu %llu %llu", (unsigned long long)self->n, (unsigned long long)self->lo,
             (unsigned long long)self->hi, (unsigned long long)self->decreases);
    return ax_reply_str(cx, buf);
}

static int f_inc(ax_ctx *cx, fence *self, const ax_msg *m)
{
    (void)m;
    record(cx, self);
    return AX_OK;
}

static int64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int log_fd = -2; /* -2: not opened yet; -1: no $AX_FENCE_LOG */

static void rec_line(ax_ctx *cx, fence *self, const ax_msg *m)
{
    uint64_t e = record(cx, self);
    if (log_fd == -2) {
        const char *path = getenv("AX_FENCE_LOG");
        log_fd = path ? open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644) : -1;
    }
    if (log_fd < 0)
        return;
    char line[256];
    int klen = (int)(m->len > 64 ? 64 : m->len);
    int n = snprintf(line, sizeof line, "%ld %.*s %llu %lld\n", (long)getpid(), klen, (const char *)m->data,
                     (unsigned long long)e, (long long)mono_ns());
    if (n > 0 && write(log_fd, line, (size_t)n) < 0)
        return;
}

static int f_rec(ax_ctx *cx, fence *self, const ax_msg *m)
{
    rec_line(cx, self, m);
    return ax_reply_i64(cx, (int64_t)self->last);
}

static int f_slow(ax_ctx *cx, fence *self, const ax_msg *m)
{
    /* payload "KEY MS" */
    const char *p = m->data;
    size_t sp = m->len;
    while (sp > 0 && p[sp - 1] != ' ')
        sp--;
    if (!sp)
        return AX_EINVAL;
    char buf[16];
    size_t n = m->len - sp < sizeof buf - 1 ? m->len - sp : sizeof buf - 1;
    for (size_t i = 0; i < n; i++)
        buf[i] = p[sp + i];
    buf[n] = 0;
    ax_msg km = *m;
    km.len = sp - 1;
    rec_line(cx, self, &km);
    int64_t end = mono_ns() + (int64_t)atoi(buf) * 1000000;
    while (mono_ns() < end)
        ; /* busy: the loop does nothing else meanwhile */
    return ax_reply_str(cx, "ok");
}

/* on_stop: "PID KEY REASON" to $AX_FENCE_STOPLOG (why each keyed actor ended) */
static void f_stop(ax_ctx *cx, fence *self, const char *reason)
{
    (void)self;
    const char *path = getenv("AX_FENCE_STOPLOG");
    const char *key = AX_API_HAS(cx, key) ? ax_api_of(cx)->key(cx) : NULL;
    if (!path || !key)
        return;
    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0)
        return;
    char line[256];
    int n = snprintf(line, sizeof line, "%ld %.64s %.64s\n", (long)getpid(), key, reason);
    if (n > 0 && write(fd, line, (size_t)n) < 0)
        n = 0;
    close(fd);
}

AX_ACTOR_TYPE(fence_type, "fence", fence, NULL, f_stop, AX_MSG("epoch", f_epoch), AX_MSG("hist", f_hist),
              AX_MSG("inc", f_inc), AX_MSG("rec", f_rec), AX_MSG("slow", f_slow));
typedef struct {
    int64_t v;
} dfence;

static int d_encode(ax_ctx *cx, const dfence *d, void *out, size_t cap, size_t *len)
{
    (void)cx;
    int n = snprintf(out, cap, "%lld", (long long)d->v);
    if (n < 0 || (size_t)n >= cap)
        return AX_ETOOBIG;
    *len = (size_t)n;
    return AX_OK;
}

static int d_decode(ax_ctx *cx, dfence *d, const void *p, size_t n)
{
    (void)cx;
    ax_msg m = {.data = p, .len = n};
    return ax_msg_i64(&m, &d->v);
}

static int d_set(ax_ctx *cx, dfence *d, const ax_msg *m)
{
    if (ax_msg_i64(m, &d->v) != AX_OK)
        return ax_reply_error(cx, AX_EINVAL, "set: a decimal");
    return ax_reply_i64(cx, d->v);
}

static int d_pause_set(ax_ctx *cx, dfence *d, const ax_msg *m)
{
    raise(SIGSTOP);
    return d_set(cx, d, m);
}

static int d_get(ax_ctx *cx, dfence *d, const ax_msg *m)
{
    (void)m;
    return ax_reply_i64(cx, d->v);
}

AX_DURABLE_ACTOR_TYPE(dfence_type, "dfence", dfence, NULL, NULL, d_encode, d_decode, AX_MSG("set", d_set),
                      AX_MSG("pause_set", d_pause_set), AX_MSG("get", d_get));

AX_PLUGIN("fence", &fence_type, &dfence_type);
