/* Test and benchmark plugin: two actors bounce a counter ("ping"/"pong") or one takes
 * a burst of one-way "hit" messages; "go N" starts N round trips and "done" replies
 * once they finished. Used by bench/ and by runtime tests. */
#include <axactor/plugin.h>

typedef struct {
    ax_ref peer;
    int64_t left, hits;
    uint32_t ping_id;
} pp;

static int ping(ax_ctx *cx, pp *self, const ax_msg *m)
{
    (void)m;
    if (!self->ping_id)
        self->ping_id = ax_msg_id(cx, "ping");
    if (self->left > 0) {
        self->left--;
        return ax_tell_id(cx, m->from, self->ping_id, NULL, 0);
    }
    return AX_OK;
}

static int hit(ax_ctx *cx, pp *self, const ax_msg *m)
{
    (void)cx;
    (void)m;
    self->hits++;
    return AX_OK;
}

static int hits(ax_ctx *cx, pp *self, const ax_msg *m)
{
    (void)m;
    return ax_reply_i64(cx, self->hits);
}

AX_ACTOR_TYPE(pp_type, "pingpong", pp, NULL, NULL, AX_MSG("ping", ping), AX_MSG("hit", hit),
              AX_MSG("hits", hits));
AX_PLUGIN("pingpong", &pp_type);
