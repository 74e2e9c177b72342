/* A plugin built against the frozen ABI 1.0 headers (tests/abi/1.0), loaded by today's
 * daemon (tests/test_plugin_api.c): what a 1.0 plugin calls must still work.
 *   inc / get         a counter (tell, ask, reply)
 *   later MS          send_after "inc" to itself after MS ms
 *   ask_get NAME      ask actor NAME "get"; the answer arrives as "got" (recorded)
 *   last              the last "got": "STATUS:TEXT"
 *   watch NAME        monitor NAME; its "$down" is recorded like "got" */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "axactor/plugin.h"

#if AX_ABI_MINOR != 0
#error "abi10.c must be built against the frozen ABI 1.0 headers"
#endif

typedef struct c10 {
    int64_t n;
    char last[96];
} c10;

static int c_inc(ax_ctx *cx, c10 *s, const ax_msg *m)
{
    (void)cx, (void)m;
    s->n++;
    return AX_OK;
}

static int c_get(ax_ctx *cx, c10 *s, const ax_msg *m)
{
    (void)m;
    return ax_reply_i64(cx, s->n);
}

static int c_later(ax_ctx *cx, c10 *s, const ax_msg *m)
{
    (void)s;
    int64_t ms;
    if (ax_msg_i64(m, &ms) || ms < 0)
        return AX_EINVAL;
    return ax_send_after(cx, ax_self(cx), "inc", NULL, 0, (uint32_t)ms);
}

static int c_ask_get(ax_ctx *cx, c10 *s, const ax_msg *m)
{
    char name[64];
    size_t n = m->len < sizeof name - 1 ? m->len : sizeof name - 1;
    memcpy(name, m->data, n);
    name[n] = 0;
    ax_ref to;
    int rc = ax_lookup(cx, name, &to);
    if (!rc)
        rc = ax_ask(cx, to, "get", NULL, 0, 3000, "got", 7);
    if (rc)
        snprintf(s->last, sizeof s->last, "%d:refused", rc);
    return AX_OK;
}

static int c_watch(ax_ctx *cx, c10 *s, const ax_msg *m)
{
    (void)s;
    char name[64];
    size_t n = m->len < sizeof name - 1 ? m->len : sizeof name - 1;
    memcpy(name, m->data, n);
    name[n] = 0;
    ax_ref to;
    uint64_t mref;
    int rc = ax_lookup(cx, name, &to);
    return rc ? rc : ax_monitor(cx, to, &mref);
}

static int c_got(ax_ctx *cx, c10 *s, const ax_msg *m)
{
    (void)cx;
    snprintf(s->last, sizeof s->last, "%d:%.*s", (int)m->status, (int)m->len, m->data ? (const char *)m->data : "");
    return AX_OK;
}

static int c_last(ax_ctx *cx, c10 *s, const ax_msg *m)
{
    (void)m;
    return ax_reply_str(cx, s->last);
}

AX_ACTOR_TYPE(c10_type, "c10", c10, NULL, NULL, AX_MSG("inc", c_inc), AX_MSG("get", c_get), AX_MSG("later", c_later),
              AX_MSG("ask_get", c_ask_get), AX_MSG("watch", c_watch), AX_MSG("got", c_got), AX_MSG("$down", c_got),
              AX_MSG("last", c_last));

AX_PLUGIN("abi10", &c10_type);
