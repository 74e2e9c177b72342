/* Test plugin for fencing across failovers (tests/test_cluster_shards.c): a keyed
 * "fence" actor records the shard epoch (ax_ctx_epoch) it runs under at every message,
 * so a test can check that the epochs a key's actor sees never go backwards and grow
 * when the key's shard changes owner.
 *
 * Messages:
 *   epoch  reply the epoch seen for this message, as decimal text
 *   hist   reply "<messages> <lowest> <highest> <decreases>" over this actor's life
 *   inc    record only (for tells) */
#include <axactor/plugin.h>
#include <stdio.h>

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

AX_ACTOR_TYPE(fence_type, "fence", fence, NULL, NULL, AX_MSG("epoch", f_epoch), AX_MSG("hist", f_hist),
              AX_MSG("inc", f_inc));
AX_PLUGIN("fence", &fence_type);
