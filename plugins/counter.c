/* Example plugin: a counter actor. "inc" adds one, "add N" adds a decimal integer,
 * "get" replies with the value as decimal text, "reset" sets it to zero. */
#include <axactor/plugin.h>

typedef struct {
    int64_t n;
} counter;

static int inc(ax_ctx *cx, counter *self, const ax_msg *m)
{
    (void)cx;
    (void)m;
    self->n++;
    return AX_OK;
}

static int add(ax_ctx *cx, counter *self, const ax_msg *m)
{
    int64_t v;
    if (ax_msg_i64(m, &v) != AX_OK)
        return AX_EINVAL; /* a bad argument fails the message (and the actor) */
    (void)cx;
    self->n += v;
    return AX_OK;
}

static int get(ax_ctx *cx, counter *self, const ax_msg *m)
{
    (void)m;
    return ax_reply_i64(cx, self->n);
}

static int reset(ax_ctx *cx, counter *self, const ax_msg *m)
{
    (void)cx;
    (void)m;
    self->n = 0;
    return AX_OK;
}

AX_ACTOR_TYPE(counter_type, "counter", counter, NULL, NULL,
              AX_MSG("inc", inc), AX_MSG("add", add), AX_MSG("get", get), AX_MSG("reset", reset));
AX_PLUGIN("counter", &counter_type);
