/* Test and benchmark plugin (bench/bench_local_tell, runtime tests). Two "pingpong"
 * actors bounce "ping"/"pong" for N round trips, or one sends a burst of N one-way
 * "hit" messages to the other, paced by the receiver's "more" credits because user
 * mailboxes are bounded (a full one refuses with AX_EFULL).
 *
 * Messages:
 *   start  PAYLOAD  N round trips with a peer: "ping" to the peer, its "pong" back, ...
 *   burst  PAYLOAD  N one-way "hit"s to the peer, as fast as its mailbox allows
 *          PAYLOAD is either a struct pp_cmd (in-process callers, binary) or decimal
 *          text N (clients, axctl): then the actor spawns a peer of its own type once.
 *   ping            tell "pong" back to the sender (or reply "pong" to a client ask)
 *   pong            one round trip done; the next "ping" unless N are done
 *   hit             count it; every PP_CREDIT hits tell the sender "more"
 *   more            credit from the receiver: send hits until the burst is done or full
 *   hits, rounds    reply the number of hits received / round trips finished
 *   sent            reply the number of hits of the current burst sent so far
 * A burst needs the receiver's mailbox capacity to be at least PP_CREDIT. */
#include <axactor/plugin.h>
#include <string.h>

#define PP_CREDIT 64

/* Binary form of the "start" and "burst" payloads. */
struct pp_cmd {
    ax_ref peer;
    int64_t n;
};

typedef struct {
    ax_ref peer;          /* the peer spawned for text commands */
    int64_t left;         /* round trips still to start */
    int64_t rounds;       /* round trips finished */
    int64_t hits;         /* hits received */
    ax_ref burst_to;      /* current burst's receiver */
    int64_t burst_left;   /* hits of the current burst still to send */
    int64_t burst_sent;
    uint32_t ping_id, pong_id, hit_id, more_id;
} pp;

static void ids(ax_ctx *cx, pp *self)
{
    if (!self->ping_id) {
        self->ping_id = ax_msg_id(cx, "ping");
        self->pong_id = ax_msg_id(cx, "pong");
        self->hit_id = ax_msg_id(cx, "hit");
        self->more_id = ax_msg_id(cx, "more");
    }
}

/* Decode a start/burst payload into (peer, n). */
static int parse_cmd(ax_ctx *cx, pp *self, const ax_msg *m, ax_ref *peer, int64_t *n)
{
    if (m->len == sizeof(struct pp_cmd)) {
        struct pp_cmd c;
        memcpy(&c, m->data, sizeof c);
        *peer = c.peer;
        *n = c.n;
    } else {
        if (ax_msg_i64(m, n) != AX_OK)
            return AX_EINVAL;
        if (ax_ref_is_none(self->peer)) {
            ax_spawn_opts o = AX_SPAWN_OPTS_INIT;
            int rc = ax_spawn(cx, "pingpong", &o, &self->peer);
            if (rc != AX_OK)
                return rc;
        }
        *peer = self->peer;
    }
    return *n >= 0 ? AX_OK : AX_EINVAL;
}

static int start(ax_ctx *cx, pp *self, const ax_msg *m)
{
    ax_ref peer;
    int64_t n;
    int rc = parse_cmd(cx, self, m, &peer, &n);
    if (rc != AX_OK)
        return rc;
    ids(cx, self);
    if (n == 0)
        return AX_OK;
    self->left = n - 1;
    return ax_tell_id(cx, peer, self->ping_id, NULL, 0);
}

static int ping(ax_ctx *cx, pp *self, const ax_msg *m)
{
    if (ax_ref_is_none(m->from))
        return ax_reply_str(cx, "pong");
    ids(cx, self);
    return ax_tell_id(cx, m->from, self->pong_id, NULL, 0);
}

static int pong(ax_ctx *cx, pp *self, const ax_msg *m)
{
    self->rounds++;
    if (self->left > 0) {
        self->left--;
        return ax_tell_id(cx, m->from, self->ping_id, NULL, 0);
    }
    return AX_OK;
}

/* Send hits until the burst is done or the receiver's mailbox is full; a full mailbox
 * is not an error: the receiver's next "more" resumes the burst. */
static int send_hits(ax_ctx *cx, pp *self)
{
    while (self->burst_left > 0) {
        int rc = ax_tell_id(cx, self->burst_to, self->hit_id, NULL, 0);
        if (rc == AX_EFULL)
            return AX_OK;
        if (rc != AX_OK)
            return rc;
        self->burst_left--;
        self->burst_sent++;
    }
    return AX_OK;
}

static int burst(ax_ctx *cx, pp *self, const ax_msg *m)
{
    ax_ref peer;
    int64_t n;
    int rc = parse_cmd(cx, self, m, &peer, &n);
    if (rc != AX_OK)
        return rc;
    ids(cx, self);
    self->burst_to = peer;
    self->burst_left = n;
    self->burst_sent = 0;
    return send_hits(cx, self);
}

static int more(ax_ctx *cx, pp *self, const ax_msg *m)
{
    (void)m;
    return send_hits(cx, self);
}

static int hit(ax_ctx *cx, pp *self, const ax_msg *m)
{
    if (++self->hits % PP_CREDIT == 0 && !ax_ref_is_none(m->from)) {
        ids(cx, self);
        /* Credit is advisory: a sender that is gone or busy does not fail the receiver. */
        (void)ax_tell_id(cx, m->from, self->more_id, NULL, 0);
    }
    return AX_OK;
}

static int hits(ax_ctx *cx, pp *self, const ax_msg *m)
{
    (void)m;
    return ax_reply_i64(cx, self->hits);
}

static int rounds(ax_ctx *cx, pp *self, const ax_msg *m)
{
    (void)m;
    return ax_reply_i64(cx, self->rounds);
}

static int sent(ax_ctx *cx, pp *self, const ax_msg *m)
{
    (void)m;
    return ax_reply_i64(cx, self->burst_sent);
}

AX_ACTOR_TYPE(pp_type, "pingpong", pp, NULL, NULL, AX_MSG("start", start), AX_MSG("burst", burst),
              AX_MSG("ping", ping), AX_MSG("pong", pong), AX_MSG("hit", hit), AX_MSG("more", more),
              AX_MSG("hits", hits), AX_MSG("rounds", rounds), AX_MSG("sent", sent));
AX_PLUGIN("pingpong", &pp_type);
