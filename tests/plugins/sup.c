/* Test plugin for supervision (tests/test_supervision.c): one actor type "sup" whose
 * messages make it crash, fail or exit with a chosen reason, link to and monitor other
 * actors, trap exits, count the "$exit", "$down" and "$event" messages it gets, and hold
 * the daemon busy so that messages queue up behind it.
 *
 * A TARGET payload is an actor name or "@ID.GEN". Queries reply decimal text and are
 * not counted as handled; every other message counts in "get".
 *   crash            return AX_EFAILED (abnormal exit "error:EFAILED")
 *   fail [REASON]    ax_fail with REASON (default "failed")
 *   exit [REASON]    ax_stop(self, REASON) (default "normal"): the restart policy applies
 *   hit              count it; reply the new count
 *   seq N            N must be the next number of this incarnation's sequence (from 0)
 *   slow MS          busy-loop MS milliseconds (the daemon's loop is held, too)
 *   link TARGET      link; reply 0 or the error code
 *   monitor TARGET   monitor; reply the mref
 *   demonitor MREF   demonitor with flush; reply 0 or the error code
 *   kill TARGET      stop TARGET with reason "kill"; reply 0 or the error code
 *   trap 1|0         trap exits on or off
 *   subscribe        receive lifecycle events as "$event" messages
 *   churn N          spawn N anonymous "sup" actors and stop each; reply N
 *   spawnkeep N      spawn N anonymous "sup" actors that stay; reply N
 *   note X           append "X," to the trail (what arrived, in order)
 *   report TARGET    tell TARGET "note result", then exit with ax_fail "done" (a worker
 *                    that sends its result and then dies)
 *   xexit TARGET R   ax_exit(TARGET, R) (Erlang's exit/2); reply 0 or the error code
 *   unlink TARGET    unlink; reply 0 or the error code
 * "$exit" appends "EXIT:<reason>," and "$down" "DOWN#<mref>:<reason>," to the trail.
 * Queries: get (handled count), seqnext, seqbad, downs, exits, events, last (the reason
 * of the last "$down" or "$exit"), trail. */
#include <axactor/plugin.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

typedef struct {
    int64_t handled;
    int64_t seq_next, seq_bad;
    int64_t downs, exits, events;
    char last[128];
    char trail[1024];
} sup;

static void trail_add(sup *self, const char *piece)
{
    size_t used = strlen(self->trail), n = strlen(piece);
    if (used + n + 1 < sizeof self->trail)
        memcpy(self->trail + used, piece, n + 1);
}

/* The api entries plugin.h has no wrapper for; AX_ENOTSUP from an older daemon. */
static inline int sup_lookup(ax_ctx *cx, const char *name, ax_ref *out)
{
    return ax_api_of(cx)->lookup(cx, name, out);
}
static inline int sup_link(ax_ctx *cx, ax_ref r)
{
    return AX_API_HAS(cx, link) ? ax_api_of(cx)->link(cx, r) : AX_ENOTSUP;
}
static inline int sup_monitor(ax_ctx *cx, ax_ref r, uint64_t *mref)
{
    return AX_API_HAS(cx, monitor) ? ax_api_of(cx)->monitor(cx, r, mref) : AX_ENOTSUP;
}
static inline int sup_demonitor(ax_ctx *cx, uint64_t mref, int flush)
{
    return AX_API_HAS(cx, demonitor) ? ax_api_of(cx)->demonitor(cx, mref, flush) : AX_ENOTSUP;
}
static inline int sup_trap_exit(ax_ctx *cx, int on)
{
    return AX_API_HAS(cx, trap_exit) ? ax_api_of(cx)->trap_exit(cx, on) : AX_ENOTSUP;
}
static inline int sup_subscribe_events(ax_ctx *cx, int on)
{
    return AX_API_HAS(cx, subscribe_events) ? ax_api_of(cx)->subscribe_events(cx, on) : AX_ENOTSUP;
}

/* The payload as a C string, truncated to fit. */
static const char *payload(const ax_msg *m, char *buf, size_t cap)
{
    size_t n = m->len < cap - 1 ? m->len : cap - 1;
    if (n)
        memcpy(buf, m->data, n);
    buf[n] = 0;
    return buf;
}

static int parse_u64(const char *s, uint64_t *out)
{
    uint64_t v = 0;
    if (!*s)
        return AX_EINVAL;
    for (; *s; s++) {
        if (*s < '0' || *s > '9' || v > UINT64_MAX / 10)
            return AX_EINVAL;
        v = v * 10 + (uint64_t)(*s - '0');
    }
    *out = v;
    return AX_OK;
}

/* NAME through the api's lookup, or a literal @ID.GEN. */
static int sup_resolve(ax_ctx *cx, const ax_msg *m, ax_ref *out)
{
    char buf[256]; /* a name is at most 255 bytes */
    const char *s = payload(m, buf, sizeof buf);
    if (s[0] == '@') {
        char *dot = strchr(buf, '.');
        uint64_t id, gen;
        if (!dot)
            return AX_EINVAL;
        *dot = 0;
        if (parse_u64(buf + 1, &id) || parse_u64(dot + 1, &gen) || gen > UINT32_MAX)
            return AX_EINVAL;
        *out = (ax_ref){id, (uint32_t)gen, 0};
        return AX_OK;
    }
    return sup_lookup(cx, s, out);
}

static void note(sup *self, const ax_msg *m)
{
    size_t n = m->len < sizeof self->last - 1 ? m->len : sizeof self->last - 1;
    if (n)
        memcpy(self->last, m->data, n);
    self->last[n] = 0;
}

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int crash(ax_ctx *cx, sup *self, const ax_msg *m)
{
    (void)cx, (void)m;
    self->handled++;
    return AX_EFAILED;
}

static int fail(ax_ctx *cx, sup *self, const ax_msg *m)
{
    char buf[128];
    self->handled++;
    return ax_fail(cx, m->len ? payload(m, buf, sizeof buf) : "failed");
}

static int do_exit(ax_ctx *cx, sup *self, const ax_msg *m)
{
    char buf[128];
    self->handled++;
    return ax_stop(cx, ax_self(cx), m->len ? payload(m, buf, sizeof buf) : "normal");
}

static int hit(ax_ctx *cx, sup *self, const ax_msg *m)
{
    (void)m;
    return ax_reply_i64(cx, ++self->handled);
}

static int seq(ax_ctx *cx, sup *self, const ax_msg *m)
{
    int64_t v;
    (void)cx;
    self->handled++;
    if (ax_msg_i64(m, &v) != AX_OK)
        v = -1;
    if (v != self->seq_next)
        self->seq_bad++;
    self->seq_next = (v >= 0 ? v : self->seq_next) + 1;
    return AX_OK;
}

static int slow(ax_ctx *cx, sup *self, const ax_msg *m)
{
    int64_t ms;
    (void)cx;
    self->handled++;
    if (ax_msg_i64(m, &ms) != AX_OK || ms < 0 || ms > 60000)
        return AX_EINVAL;
    int64_t end = mono_ms() + ms;
    while (mono_ms() < end)
        ;
    return AX_OK;
}

static int do_link(ax_ctx *cx, sup *self, const ax_msg *m)
{
    ax_ref r;
    self->handled++;
    int rc = sup_resolve(cx, m, &r);
    if (rc == AX_OK)
        rc = sup_link(cx, r);
    return ax_reply_i64(cx, rc);
}

static int do_monitor(ax_ctx *cx, sup *self, const ax_msg *m)
{
    ax_ref r;
    uint64_t mref = 0;
    self->handled++;
    int rc = sup_resolve(cx, m, &r);
    if (rc == AX_OK)
        rc = sup_monitor(cx, r, &mref);
    return rc == AX_OK ? ax_reply_i64(cx, (int64_t)mref) : ax_reply_i64(cx, rc);
}

static int do_demonitor(ax_ctx *cx, sup *self, const ax_msg *m)
{
    char buf[32];
    uint64_t mref;
    self->handled++;
    int rc = parse_u64(payload(m, buf, sizeof buf), &mref);
    if (rc == AX_OK)
        rc = sup_demonitor(cx, mref, 1);
    return ax_reply_i64(cx, rc);
}

static int do_kill(ax_ctx *cx, sup *self, const ax_msg *m)
{
    ax_ref r;
    self->handled++;
    int rc = sup_resolve(cx, m, &r);
    if (rc == AX_OK)
        rc = ax_stop(cx, r, "kill");
    return ax_reply_i64(cx, rc);
}

static int trap(ax_ctx *cx, sup *self, const ax_msg *m)
{
    self->handled++;
    return sup_trap_exit(cx, m->len == 1 && *(const char *)m->data == '1');
}

static int subscribe(ax_ctx *cx, sup *self, const ax_msg *m)
{
    (void)m;
    self->handled++;
    return sup_subscribe_events(cx, 1);
}

static int churn(ax_ctx *cx, sup *self, const ax_msg *m)
{
    int64_t n;
    self->handled++;
    if (ax_msg_i64(m, &n) != AX_OK || n < 0 || n > 1000000)
        return AX_EINVAL;
    for (int64_t i = 0; i < n; i++) {
        ax_spawn_opts o = AX_SPAWN_OPTS_INIT;
        ax_ref r;
        int rc = ax_spawn(cx, "sup", &o, &r);
        if (rc == AX_OK)
            rc = ax_stop(cx, r, "normal");
        if (rc != AX_OK)
            return rc;
    }
    return ax_reply_i64(cx, n);
}

static int spawnkeep(ax_ctx *cx, sup *self, const ax_msg *m)
{
    int64_t n;
    self->handled++;
    if (ax_msg_i64(m, &n) != AX_OK || n < 0 || n > 2000000)
        return AX_EINVAL;
    for (int64_t i = 0; i < n; i++) {
        ax_spawn_opts o = AX_SPAWN_OPTS_INIT;
        ax_ref r;
        int rc = ax_spawn(cx, "sup", &o, &r);
        if (rc != AX_OK)
            return rc;
    }
    return ax_reply_i64(cx, n);
}

static int on_exit_msg(ax_ctx *cx, sup *self, const ax_msg *m)
{
    (void)cx;
    self->exits++;
    note(self, m);
    char piece[160];
    snprintf(piece, sizeof piece, "EXIT:%s,", self->last);
    trail_add(self, piece);
    return AX_OK;
}

static int on_down(ax_ctx *cx, sup *self, const ax_msg *m)
{
    (void)cx;
    self->downs++;
    note(self, m);
    char piece[180];
    snprintf(piece, sizeof piece, "DOWN#%llu:%s,", (unsigned long long)m->tag, self->last);
    trail_add(self, piece);
    return AX_OK;
}

static int do_note(ax_ctx *cx, sup *self, const ax_msg *m)
{
    char buf[128];
    (void)cx;
    self->handled++;
    char piece[140];
    snprintf(piece, sizeof piece, "%s,", payload(m, buf, sizeof buf));
    trail_add(self, piece);
    return AX_OK;
}

static int report(ax_ctx *cx, sup *self, const ax_msg *m)
{
    ax_ref r;
    self->handled++;
    int rc = sup_resolve(cx, m, &r);
    if (rc == AX_OK)
        rc = ax_tell(cx, r, "note", "result", 6);
    if (rc != AX_OK)
        return rc;
    return ax_fail(cx, "done");
}

/* Payload "TARGET REASON": the message with only TARGET, and REASON in buf. */
static int split_target(const ax_msg *m, ax_msg *tm, char *reason, size_t cap)
{
    const char *p = m->data, *sp = m->len ? memchr(p, ' ', m->len) : NULL;
    if (!sp)
        return AX_EINVAL;
    *tm = *m;
    tm->len = (size_t)(sp - p);
    size_t n = m->len - tm->len - 1;
    if (!n || n >= cap)
        return AX_EINVAL;
    memcpy(reason, sp + 1, n);
    reason[n] = 0;
    return AX_OK;
}

static int xexit(ax_ctx *cx, sup *self, const ax_msg *m)
{
    ax_msg tm;
    ax_ref r;
    char reason[128];
    self->handled++;
    int rc = split_target(m, &tm, reason, sizeof reason);
    if (rc == AX_OK)
        rc = sup_resolve(cx, &tm, &r);
    if (rc == AX_OK)
        rc = ax_exit(cx, r, reason);
    return ax_reply_i64(cx, rc);
}

static int do_unlink(ax_ctx *cx, sup *self, const ax_msg *m)
{
    ax_ref r;
    self->handled++;
    int rc = sup_resolve(cx, m, &r);
    if (rc == AX_OK)
        rc = ax_unlink(cx, r);
    return ax_reply_i64(cx, rc);
}

static int q_trail(ax_ctx *cx, sup *self, const ax_msg *m)
{
    (void)m;
    return ax_reply_str(cx, self->trail);
}

static int on_event(ax_ctx *cx, sup *self, const ax_msg *m)
{
    (void)cx, (void)m;
    self->events++;
    return AX_OK;
}

#define QUERY(nm, field)                                                                                           \
    static int q_##nm(ax_ctx *cx, sup *self, const ax_msg *m)                                                      \
    {                                                                                                              \
        (void)m;                                                                                                   \
        return ax_reply_i64(cx, self->field);                                                                      \
    }
QUERY(get, handled)
QUERY(seqnext, seq_next)
QUERY(seqbad, seq_bad)
QUERY(downs, downs)
QUERY(exits, exits)
QUERY(events, events)

static int q_last(ax_ctx *cx, sup *self, const ax_msg *m)
{
    (void)m;
    return ax_reply_str(cx, self->last);
}

AX_ACTOR_TYPE(sup_type, "sup", sup, NULL, NULL, AX_MSG("crash", crash), AX_MSG("fail", fail),
              AX_MSG("exit", do_exit), AX_MSG("hit", hit), AX_MSG("seq", seq), AX_MSG("slow", slow),
              AX_MSG("link", do_link), AX_MSG("monitor", do_monitor), AX_MSG("demonitor", do_demonitor),
              AX_MSG("kill", do_kill), AX_MSG("trap", trap), AX_MSG("subscribe", subscribe),
              AX_MSG("churn", churn), AX_MSG("$exit", on_exit_msg), AX_MSG("$down", on_down),
              AX_MSG("$event", on_event), AX_MSG("get", q_get), AX_MSG("seqnext", q_seqnext),
              AX_MSG("seqbad", q_seqbad), AX_MSG("downs", q_downs), AX_MSG("exits", q_exits),
              AX_MSG("events", q_events), AX_MSG("last", q_last), AX_MSG("note", do_note),
              AX_MSG("report", report), AX_MSG("xexit", xexit), AX_MSG("unlink", do_unlink),
              AX_MSG("trail", q_trail), AX_MSG("spawnkeep", spawnkeep));

AX_PLUGIN("sup", &sup_type);
