/* Example plugin: an echo actor that replies with the payload it was sent ("echo"),
 * and counts what it saw ("count"). */
#include <axactor/plugin.h>

typedef struct {
    uint64_t seen;
} echo;

static int do_echo(ax_ctx *cx, echo *self, const ax_msg *m)
{
    self->seen++;
    return ax_reply(cx, m->data, m->len);
}

static int count(ax_ctx *cx, echo *self, const ax_msg *m)
{
    (void)m;
    return ax_reply_i64(cx, (int64_t)self->seen);
}

AX_ACTOR_TYPE(echo_type, "echo", echo, NULL, NULL, AX_MSG("echo", do_echo), AX_MSG("count", count));
AX_PLUGIN("echo", &echo_type);
