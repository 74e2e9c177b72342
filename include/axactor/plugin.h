/* The axactor plugin ABI: what an actor plugin (.so loaded by axactord) sees.
 * A plugin exports one descriptor, `axactor_plugin`, made with AX_PLUGIN(); it lists
 * actor types made with AX_ACTOR_TYPE(), each a state struct plus a message table.
 * The daemon calls back through a function table (ax_api) that only grows: a newer
 * daemon runs older plugins; a plugin checks AX_API_HAS() before using a newer entry.
 * Every struct that crosses the boundary starts with its size. */
#ifndef AXACTOR_PLUGIN_H
#define AXACTOR_PLUGIN_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "axactor/errors.h"

#ifdef __cplusplus
extern "C" {
#endif

#define AX_ABI_MAJOR 1
#define AX_ABI_MINOR 9
#define AX_PLUGIN_SYMBOL "axactor_plugin"

#define AX_STR_(x) #x
#define AX_STR(x) AX_STR_(x)
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
#define AX_ENDIAN_ "be"
#else
#define AX_ENDIAN_ "le"
#endif
/* What a plugin must share with the daemon beyond the ABI version: pointer size and
 * byte order. The loader refuses a plugin whose signature differs from its own. */
#define AX_BUILD_SIGNATURE "axactor-abi-" AX_STR(AX_ABI_MAJOR) "/ptr" AX_STR(__SIZEOF_POINTER__) "/" AX_ENDIAN_

#define AX_EXPORT __attribute__((visibility("default")))

/* A reference to an actor incarnation. node 0 is this node; other values index the
 * daemon's peer table (cluster). gen distinguishes incarnations of a slot: a ref to a
 * stopped actor never reaches a newer one (AX_ENOPROC). Restarts keep the ref. */
typedef struct ax_ref {
    uint64_t id;
    uint32_t gen;
    uint32_t node;
} ax_ref;

#define AX_REF_NONE ((ax_ref){0, 0, 0})
static inline int ax_ref_is_none(ax_ref r) { return r.id == 0 && r.gen == 0; }
static inline int ax_ref_eq(ax_ref a, ax_ref b)
{
    return a.id == b.id && a.gen == b.gen && a.node == b.node;
}

typedef struct ax_ctx ax_ctx; /* opaque; valid only during the callback it is passed to */

/* A message as a handler sees it. Borrowed: valid until the handler returns. */
typedef struct ax_msg {
    uint32_t size;       /* sizeof(ax_msg) as built by the daemon */
    uint32_t id;         /* interned name id */
    const char *name;    /* message name, NUL-terminated */
    const void *data;    /* payload bytes (may be NULL when len == 0) */
    size_t len;
    ax_ref from;         /* sending actor, AX_REF_NONE for clients and the system */
    int32_t status;      /* replies (see ax_ask): AX_OK or the error the ask ended with */
    uint64_t tag;        /* replies: the tag given to ax_ask; system messages: monitor ref */
} ax_msg;

/* Handler: return AX_OK, or an error code (an abnormal exit of the actor with reason
 * "error:<ERRNAME>"; the asker, if any, gets the error). An error for the asker that
 * should not end the actor is ax_reply_error (ABI 1.3). */
typedef int (*ax_handler_fn)(ax_ctx *cx, void *self, const ax_msg *m);
typedef int (*ax_start_fn)(ax_ctx *cx, void *self);
typedef void (*ax_stop_fn)(ax_ctx *cx, void *self, const char *reason);

typedef struct ax_msg_def {
    const char *name;
    ax_handler_fn fn;
} ax_msg_def;

/* The state codec of a durable keyed actor type (ABI 1.9; see "Durable keyed actors"
 * below). encode writes the state as bytes into out (at most cap: state.max_bytes) and
 * sets *len; it returns AX_OK, AX_STATE_UNCHANGED when it knows nothing changed since the
 * last call (no write is made), or an error (AX_ETOOBIG when it does not fit). decode
 * gets the bytes encode made, before the first message of an incarnation, and returns
 * AX_OK or an error (the actor then fails to start with reason "state_decode"). */
#define AX_STATE_UNCHANGED 1
typedef int (*ax_encode_fn)(ax_ctx *cx, const void *self, void *out, size_t cap, size_t *len);
typedef int (*ax_decode_fn)(ax_ctx *cx, void *self, const void *p, size_t n);

typedef struct ax_actor_type {
    uint32_t size;          /* sizeof(ax_actor_type) */
    const char *name;       /* type name, unique in the daemon */
    size_t state_size;      /* zeroed before on_start */
    ax_start_fn on_start;   /* may be NULL; an error return fails the spawn */
    ax_stop_fn on_stop;     /* may be NULL; called once per incarnation */
    const ax_msg_def *msgs; /* the message table */
    size_t n_msgs;
    uintptr_t flags;        /* ABI 1.2: AX_TYPE_* (0 in descriptors built before) */
    ax_encode_fn encode;    /* ABI 1.9: durable keyed actors (both NULL: not durable) */
    ax_decode_fn decode;
    void *spare[1];
} ax_actor_type;

/* Actor type flags (ax_actor_type.flags, ABI 1.2). */
/* The plugin keeps mutable globals for this type: the daemon runs all its actors on one
 * worker (thread), wherever they are spawned from. Without it, a type's actors may run
 * on any worker, each actor's handlers always on the same one. */
#define AX_TYPE_SINGLE_WORKER ((uintptr_t)1)

typedef struct ax_plugin_desc {
    uint32_t abi_major;
    uint32_t abi_minor;
    uint32_t size;              /* sizeof(ax_plugin_desc) */
    const char *signature;      /* AX_BUILD_SIGNATURE */
    const char *name;
    const ax_actor_type *const *types;
    size_t n_types;
    void *spare[4];
} ax_plugin_desc;

/* Restart policies (Erlang's): permanent always, transient only after an abnormal
 * exit, temporary never. */
enum ax_restart { AX_RESTART_TEMPORARY = 0, AX_RESTART_TRANSIENT = 1, AX_RESTART_PERMANENT = 2 };
/* What happens to queued user messages when an actor restarts. */
enum ax_mailbox_policy { AX_MAILBOX_KEEP = 0, AX_MAILBOX_DRAIN_AND_DROP = 1 };

typedef struct ax_spawn_opts {
    uint32_t size;             /* sizeof(ax_spawn_opts) */
    const char *name;          /* registered name, or NULL */
    uint32_t mailbox_cap;      /* 0 = daemon default */
    uint8_t restart;           /* enum ax_restart */
    uint8_t mailbox_policy;    /* enum ax_mailbox_policy */
    uint8_t trap_exit;
    uint8_t reserved_;
    uint32_t max_restarts;     /* intensity: at most this many ... */
    uint32_t restart_window_ms;/* ... within this window; 0 = defaults */
    uint32_t backoff_ms;       /* delay before a restart */
    uint32_t idle_timeout_ms;  /* keyed actors: 0 = daemon default, UINT32_MAX = never */
    ax_ref link_to;            /* link atomically at spawn, or AX_REF_NONE */
    /* ABI 1.6: bytes for the new actor, copied at spawn (at most AX_SPAWN_ARG_MAX): it
     * reads them with ax_spawn_arg, in on_start (again at each restart) and later */
    const void *arg;
    size_t arg_len;
} ax_spawn_opts;

#define AX_SPAWN_ARG_MAX 32768

#define AX_SPAWN_OPTS_INIT {.size = sizeof(ax_spawn_opts)}

enum ax_log_level { AX_LOG_ERROR = 0, AX_LOG_WARN = 1, AX_LOG_INFO = 2, AX_LOG_DEBUG = 3 };

/* The daemon's function table. Append only; never reorder. */
typedef struct ax_api {
    uint32_t size;      /* sizeof(ax_api) of the daemon */
    uint32_t abi_minor; /* the daemon's AX_ABI_MINOR */
    /* intern a message name; 0 on an invalid name */
    uint32_t (*msg_id)(ax_ctx *cx, const char *name);
    ax_ref (*self)(ax_ctx *cx);
    /* tell: copy payload and enqueue; AX_EFULL if the mailbox is full, AX_ENOPROC if gone */
    int (*tell)(ax_ctx *cx, ax_ref to, uint32_t msg, const void *p, size_t n);
    /* ask: the reply arrives later as message reply_msg with m->tag = tag and
     * m->status = AX_OK, or an error (AX_ETIMEDOUT, AX_ENOPROC, the handler's error). */
    int (*ask)(ax_ctx *cx, ax_ref to, uint32_t msg, const void *p, size_t n,
               uint32_t timeout_ms, uint32_t reply_msg, uint64_t tag);
    /* reply to the message being handled (if it was an ask; else a no-op returning AX_OK) */
    int (*reply)(ax_ctx *cx, const void *p, size_t n);
    int (*spawn)(ax_ctx *cx, const char *type, const ax_spawn_opts *o, ax_ref *out);
    int (*stop)(ax_ctx *cx, ax_ref who, const char *reason);
    /* fail the running actor with reason (abnormal exit after the handler returns) */
    int (*fail)(ax_ctx *cx, const char *reason);
    int (*lookup)(ax_ctx *cx, const char *name, ax_ref *out);
    void (*log)(ax_ctx *cx, int level, const char *text);
    uint64_t (*epoch)(ax_ctx *cx); /* shard epoch of a keyed actor; 0 if not sharded */
    double (*now)(ax_ctx *cx);     /* event loop time, seconds */
    /* deliver msg to `to` after ms milliseconds (a timer; canceled if to is gone) */
    int (*send_after)(ax_ctx *cx, ax_ref to, uint32_t msg, const void *p, size_t n, uint32_t ms);
    int (*link)(ax_ctx *cx, ax_ref other);
    int (*unlink)(ax_ctx *cx, ax_ref other);
    int (*monitor)(ax_ctx *cx, ax_ref other, uint64_t *mref);
    int (*demonitor)(ax_ctx *cx, uint64_t mref, int flush);
    int (*trap_exit)(ax_ctx *cx, int on);
    int (*get_or_spawn)(ax_ctx *cx, const char *type, const char *key,
                        const ax_spawn_opts *o, ax_ref *out);
    int (*subscribe_events)(ax_ctx *cx, int on); /* lifecycle events as "$event" messages */
    const char *(*key)(ax_ctx *cx); /* the running keyed actor's key, or NULL */
    /* Routed messages to the keyed actor of (type, key), wherever in the cluster its
     * shard lives: "ensure" spawns it if absent; direct != 0 delivers only to a live
     * one (else the reply is AX_ENOTFOUND). A message to another node may still fail
     * there; tell_key then loses it, ask_key's reply carries the error. */
    int (*tell_key)(ax_ctx *cx, const char *type, const char *key, uint32_t msg, const void *p, size_t n,
                    int direct);
    int (*ask_key)(ax_ctx *cx, const char *type, const char *key, uint32_t msg, const void *p, size_t n,
                   uint32_t timeout_ms, uint32_t reply_msg, uint64_t tag, int direct);
    /* ---- ABI 1.1 ---- */
    /* Erlang's exit/2; see ax_exit below. */
    int (*exit)(ax_ctx *cx, ax_ref who, const char *reason);
    /* ---- ABI 1.3 ---- */
    int (*reply_error)(ax_ctx *cx, int code, const char *text); /* see ax_reply_error */
    /* ---- ABI 1.4 ---- */
    uint64_t (*defer)(ax_ctx *cx); /* see ax_defer */
    int (*reply_token)(ax_ctx *cx, uint64_t token, int code, const char *text, const void *p, size_t n);
    /* ---- ABI 1.5 ---- */
    int (*timer_start)(ax_ctx *cx, uint32_t delay_ms, uint32_t interval_ms, uint32_t msg, const void *p, size_t n,
                       uint64_t *id);
    int (*timer_cancel)(ax_ctx *cx, uint64_t id);
    /* ---- ABI 1.6 ---- */
    const void *(*spawn_arg)(ax_ctx *cx, size_t *len); /* see ax_spawn_arg */
    /* ---- ABI 1.7 ---- */
    int (*io_watch)(ax_ctx *cx, int fd, unsigned events, uint32_t msg, uint64_t *id);
    int (*io_unwatch)(ax_ctx *cx, uint64_t id);
    /* ---- ABI 1.8 ---- */
    int (*offload)(ax_ctx *cx, int (*fn)(void *arg, void *out, size_t cap, size_t *len), void (*cleanup)(void *arg),
                   void *arg, uint32_t done_msg, uint64_t tag);
    /* ---- ABI 1.9 ---- */
    int (*persist)(ax_ctx *cx, const void *p, size_t n); /* see ax_persist */
    int (*forget)(ax_ctx *cx);                           /* see ax_forget */
} ax_api;

/* The first member of every ax_ctx is the daemon's function table. */
static inline const ax_api *ax_api_of(ax_ctx *cx) { return *(const ax_api *const *)(void *)cx; }
#define AX_API_HAS(cx, fn) \
    (offsetof(ax_api, fn) + sizeof(((ax_api *)0)->fn) <= ax_api_of(cx)->size && ax_api_of(cx)->fn)

/* ---- convenience wrappers ---- */
static inline uint32_t ax_msg_id(ax_ctx *cx, const char *name) { return ax_api_of(cx)->msg_id(cx, name); }
static inline ax_ref ax_self(ax_ctx *cx) { return ax_api_of(cx)->self(cx); }
static inline int ax_tell_id(ax_ctx *cx, ax_ref to, uint32_t msg, const void *p, size_t n)
{
    return ax_api_of(cx)->tell(cx, to, msg, p, n);
}
static inline int ax_tell(ax_ctx *cx, ax_ref to, const char *msg, const void *p, size_t n)
{
    uint32_t id = ax_msg_id(cx, msg);
    return id ? ax_tell_id(cx, to, id, p, n) : AX_EINVAL;
}
static inline int ax_ask(ax_ctx *cx, ax_ref to, const char *msg, const void *p, size_t n,
                         uint32_t timeout_ms, const char *reply_msg, uint64_t tag)
{
    uint32_t id = ax_msg_id(cx, msg), rid = ax_msg_id(cx, reply_msg);
    if (!id || !rid)
        return AX_EINVAL;
    return ax_api_of(cx)->ask(cx, to, id, p, n, timeout_ms, rid, tag);
}
static inline int ax_reply(ax_ctx *cx, const void *p, size_t n) { return ax_api_of(cx)->reply(cx, p, n); }
/* Reply with a signed integer as decimal text (what axctl prints). */
static inline int ax_reply_i64(ax_ctx *cx, int64_t v)
{
    char buf[24];
    int n = snprintf(buf, sizeof buf, "%lld", (long long)v);
    return ax_reply(cx, buf, (size_t)n);
}
static inline int ax_reply_str(ax_ctx *cx, const char *s)
{
    size_t n = 0;
    while (s[n])
        n++;
    return ax_reply(cx, s, n);
}
static inline int ax_fail(ax_ctx *cx, const char *reason) { return ax_api_of(cx)->fail(cx, reason); }
static inline int ax_spawn(ax_ctx *cx, const char *type, const ax_spawn_opts *o, ax_ref *out)
{
    return ax_api_of(cx)->spawn(cx, type, o, out);
}
/* Stop another actor for good, as a supervisor stops a child: the stop overtakes its
 * queued messages (control mailbox; they are answered ENOPROC), its on_stop runs with
 * `reason` ("normal" if NULL; "kill": untrappable, with "killed"), its links and monitors
 * fire with that reason, and it is NOT restarted, whatever its policy. Stopping itself
 * (who = ax_self(cx)) is different: the actor exits with `reason` once the handler
 * returns and its restart policy decides, as for ax_fail. For Erlang's exit/2 (trappable,
 * restart policy applies) use ax_exit. */
static inline int ax_stop(ax_ctx *cx, ax_ref who, const char *reason) { return ax_api_of(cx)->stop(cx, who, reason); }
/* Erlang's exit/2 (ABI 1.1; AX_ENOTSUP from a 1.0 daemon): send `who` an exit signal with
 * `reason` (a name; NULL = "normal"). A target that traps exits receives it as "$exit"
 * (m->from = the sender) in order after everything the sender sent it before; "normal"
 * to a target that does not trap is ignored; "kill" cannot be trapped: the target ends
 * with reason "killed"; any other reason ends a non-trapping target with that reason.
 * Unlike ax_stop the target's restart policy applies. Local refs only (AX_ENOTSUP for
 * another node's); AX_ENOPROC if the target is gone. */
static inline int ax_exit(ax_ctx *cx, ax_ref who, const char *reason)
{
    if (!AX_API_HAS(cx, exit))
        return AX_ENOTSUP;
    return ax_api_of(cx)->exit(cx, who, reason);
}
/* A business error (ABI 1.3; AX_ENOTSUP from an older daemon): answer the ask being
 * handled with `code` (a negative AX_E* code) and `text` (NULL: the code's own text; at
 * most AX_ERROR_TEXT_MAX bytes are sent). The asker gets both: an actor as m->status with
 * the text as m->data, a client as an ERROR frame with the text, a remote asker through
 * its node. The actor keeps running (returning an error code from a handler instead ends
 * it). A no-op returning AX_OK when the message is not an ask or was answered already;
 * AX_EINVAL for a code that is not negative. */
#define AX_ERROR_TEXT_MAX 1024
static inline int ax_reply_error(ax_ctx *cx, int code, const char *text)
{
    if (!AX_API_HAS(cx, reply_error))
        return AX_ENOTSUP;
    return ax_api_of(cx)->reply_error(cx, code, text);
}

/* Deferred replies (ABI 1.4; 0 / AX_ENOTSUP from an older daemon). ax_defer takes over
 * the answer of the ask being handled and returns a token for it: 0 when the message is
 * not an ask, was answered already, or the actor has AX_TOKENS_MAX open tokens (answer it
 * now then). The handler returns without answering; a later handler of the same actor
 * (any message, a timer, a reply to an ask of its own) answers it once with
 * ax_reply_token or ax_reply_token_error (the text as for ax_reply_error). A token is the
 * actor's: another actor's token, a token answered already and 0 are AX_ENOTFOUND. The
 * asker's own timeout still runs: a token answered after it is dropped (counted as a late
 * reply). When the incarnation ends (stop, failure, restart) its open tokens answer their
 * askers with AX_ENOPROC. Askers may be actors, clients or remote nodes. Only from the
 * actor's own handlers (cx of that actor). */
#define AX_TOKENS_MAX 4096
static inline uint64_t ax_defer(ax_ctx *cx)
{
    return AX_API_HAS(cx, defer) ? ax_api_of(cx)->defer(cx) : 0;
}
static inline int ax_reply_token(ax_ctx *cx, uint64_t token, const void *p, size_t n)
{
    if (!AX_API_HAS(cx, reply_token))
        return AX_ENOTSUP;
    return ax_api_of(cx)->reply_token(cx, token, AX_OK, NULL, p, n);
}
static inline int ax_reply_token_error(ax_ctx *cx, uint64_t token, int code, const char *text)
{
    if (!AX_API_HAS(cx, reply_token))
        return AX_ENOTSUP;
    if (code >= 0)
        return AX_EINVAL;
    return ax_api_of(cx)->reply_token(cx, token, code, text, NULL, 0);
}

/* Timers of the running actor (ABI 1.5; AX_ENOTSUP from an older daemon): after
 * delay_ms, then every interval_ms (0: once), the actor receives message `msg` with a
 * copy of the payload (m->from = AX_REF_NONE, m->tag = the timer id), on its own worker.
 * A tick that finds the mailbox full is skipped (counted as mailbox_full), the timer goes
 * on. *id (never 0) names it for ax_timer_cancel (AX_ENOTFOUND for an unknown id or a
 * one-shot timer that fired). Timers end with the incarnation (stop, failure, restart:
 * a restarted actor starts with none); AX_TIMERS_MAX per actor (then AX_EFULL). */
#define AX_TIMERS_MAX 1024
static inline int ax_timer_start(ax_ctx *cx, uint32_t delay_ms, uint32_t interval_ms, const char *msg, const void *p,
                                 size_t n, uint64_t *id)
{
    if (!AX_API_HAS(cx, timer_start))
        return AX_ENOTSUP;
    uint32_t mid = ax_msg_id(cx, msg);
    return mid ? ax_api_of(cx)->timer_start(cx, delay_ms, interval_ms, mid, p, n, id) : AX_EINVAL;
}
static inline int ax_timer_cancel(ax_ctx *cx, uint64_t id)
{
    if (!AX_API_HAS(cx, timer_cancel))
        return AX_ENOTSUP;
    return ax_api_of(cx)->timer_cancel(cx, id);
}

/* The bytes the running actor was spawned with (ABI 1.6: ax_spawn_opts.arg, a client's
 * spawn config "arg" / "arg_hex", axctl spawn --arg): owned by the daemon, valid while
 * the actor lives, the same for every incarnation. NULL and *len 0 when there are none
 * (or from an older daemon). */
static inline const void *ax_spawn_arg(ax_ctx *cx, size_t *len)
{
    *len = 0;
    return AX_API_HAS(cx, spawn_arg) ? ax_api_of(cx)->spawn_arg(cx, len) : NULL;
}

/* I/O readiness (ABI 1.7; AX_ENOTSUP from an older daemon). ax_io_watch asks for message
 * `msg` when fd (the actor's: the daemon never closes it) is readable (AX_IO_READ) and/or
 * writable (AX_IO_WRITE), on the actor's own worker. The message's payload is an
 * ax_io_event (m->tag = the watch id too). One notification at a time per watch: the
 * next comes only after the actor handled this one (so read or write what is ready, or
 * the same readiness is reported again), and it rides the mailbox beside the signals
 * (never refused for capacity). AX_IO_ERROR: the fd failed under the watch (closed
 * while watched, or an error the loop saw); that watch is then gone. *id (never 0) names
 * it for ax_io_unwatch. Watches end with the incarnation (stop, failure,
 * restart: they are not inherited). AX_IO_WATCHES_MAX per actor (then AX_EFULL); a fd
 * that is not open is AX_EINVAL. Close the fd only after ax_io_unwatch. */
#define AX_IO_READ 1u
#define AX_IO_WRITE 2u
#define AX_IO_ERROR 4u
#define AX_IO_WATCHES_MAX 64
typedef struct ax_io_event {
    int32_t fd;
    uint32_t events; /* AX_IO_READ | AX_IO_WRITE | AX_IO_ERROR that are ready */
    uint64_t id;     /* the watch */
} ax_io_event;
static inline int ax_io_watch(ax_ctx *cx, int fd, unsigned events, const char *msg, uint64_t *id)
{
    if (!AX_API_HAS(cx, io_watch))
        return AX_ENOTSUP;
    uint32_t mid = ax_msg_id(cx, msg);
    return mid ? ax_api_of(cx)->io_watch(cx, fd, events, mid, id) : AX_EINVAL;
}
/* Stop a watch (AX_ENOTFOUND if it is not this actor's, or ended); a notification
 * already queued is still delivered. */
static inline int ax_io_unwatch(ax_ctx *cx, uint64_t id)
{
    if (!AX_API_HAS(cx, io_unwatch))
        return AX_ENOTSUP;
    return ax_api_of(cx)->io_unwatch(cx, id);
}

/* Blocking work off the loop (ABI 1.8; AX_ENOTSUP from an older daemon). fn(arg, out,
 * cap, &len) runs on a thread of the daemon's pool (runtime.offload_threads), where it
 * may block (a file, a syscall, a library without an async API); it MUST NOT call any
 * ax_* function (there is no cx there: the daemon refuses such calls and logs them). It
 * writes up to cap (AX_OFFLOAD_RESULT_MAX) result bytes into out, sets *len, and returns
 * AX_OK or an error code. The actor then receives `done_msg` on its own worker with
 * m->status = that code, the result as payload and m->tag = tag (beside the signals:
 * never refused for capacity). cleanup(arg), if given, then runs on the actor's worker;
 * also when the actor is gone by then (the result is dropped) or when the daemon stops
 * before the job ran (then on the stopping thread). AX_EFULL when runtime.offload_queue
 * jobs are already waiting; on any error the job is not taken and arg stays the
 * caller's. */
#define AX_OFFLOAD_RESULT_MAX 65536
typedef int (*ax_offload_fn)(void *arg, void *out, size_t cap, size_t *len);
static inline int ax_offload(ax_ctx *cx, ax_offload_fn fn, void (*cleanup)(void *arg), void *arg, const char *done_msg,
                             uint64_t tag)
{
    if (!AX_API_HAS(cx, offload))
        return AX_ENOTSUP;
    uint32_t mid = ax_msg_id(cx, done_msg);
    return mid ? ax_api_of(cx)->offload(cx, fn, cleanup, arg, mid, tag) : AX_EINVAL;
}

/* Durable keyed actors (ABI 1.9; AX_ENOTSUP from an older daemon). A type with a decode
 * callback (ax_actor_type.decode) is durable: its keyed actors' state is kept in the
 * lease store (memory or Redis), one record per (type, key). When such an actor is
 * activated on any node (first message after failover, handover, an idle reap, a daemon
 * restart, or a supervisor restart) the daemon loads the record and hands it to decode
 * before the first message; no record: a fresh actor (decode is not called).
 *   After a handler returned AX_OK the daemon calls encode (if the type has one) and
 * writes the bytes when they differ from the last ones written (state.persist =
 * on_change). The handler's replies (ax_reply, ax_reply_error, a token answered, or the
 * plain answer when it returns) go out only once the store confirmed the write: an
 * acknowledged ask is durable. Writes of one actor are applied in order; several
 * messages handled in one turn share one write.
 *   Every write carries the shard's epoch and the store applies it only while that epoch
 * still holds the shard's lease: a paused or cut-off former owner cannot overwrite what
 * a newer owner wrote. A refused write answers its askers with AX_ESTALE and stops the
 * actor with reason "fenced"; a write whose outcome is unknown (the store unreachable)
 * answers them with the store's error and stops it with reason "state_unavailable" (the
 * next activation loads what the store has). A load that fails stops the actor the same
 * way before it handled anything (its queued asks get AX_ENOPROC).
 * ax_persist: write these bytes as the state instead of calling encode for this handler
 * (for a type without encode: it decides itself when to write); AX_ETOOBIG above
 * state.max_bytes, AX_EINVAL from an actor that is not keyed and durable, or outside a
 * handler. ax_forget: delete the actor's record (the delete is fenced and ordered like a
 * write, and acknowledged the same way); the actor runs on with its memory state, which
 * the next change writes again, so a handler usually forgets and then stops itself.
 * Operators delete a record with `axctl forget TYPE KEY` (the routed message "$forget":
 * the record is deleted and the actor, if live, stops with reason "forgotten"). */
static inline int ax_persist(ax_ctx *cx, const void *p, size_t n)
{
    if (!AX_API_HAS(cx, persist))
        return AX_ENOTSUP;
    return ax_api_of(cx)->persist(cx, p, n);
}
static inline int ax_forget(ax_ctx *cx)
{
    if (!AX_API_HAS(cx, forget))
        return AX_ENOTSUP;
    return ax_api_of(cx)->forget(cx);
}

/* The fencing token of a keyed actor: the epoch of its shard's lease on this node (0 for
 * an actor that is not keyed, or without a lease manager). Epochs of a shard only grow,
 * across nodes and restarts: a new owner always holds a larger one. Give it with every
 * write the actor makes elsewhere and have the other side refuse a write whose epoch is
 * below the last it accepted for that key; then a former owner that does not know yet
 * that it lost the shard (paused, partitioned) cannot overwrite what the new owner
 * wrote. A Redis example (one script: the check and the write are atomic):
 *     -- KEYS[1] = the value, KEYS[2] = its epoch; ARGV[1] = value, ARGV[2] = epoch
 *     local cur = tonumber(redis.call('GET', KEYS[2]) or '0')
 *     if tonumber(ARGV[2]) < cur then return redis.error_reply('STALE epoch') end
 *     redis.call('SET', KEYS[2], ARGV[2]); redis.call('SET', KEYS[1], ARGV[1]); return 'OK'
 * and in SQL: UPDATE t SET v = ?, epoch = ? WHERE k = ? AND epoch <= ? (0 rows: stale).
 * A refused write means another node owns the key now: answer the asker with AX_ESTALE
 * (ax_reply_error) and let the message be routed again. */
static inline uint64_t ax_ctx_epoch(ax_ctx *cx) { return ax_api_of(cx)->epoch(cx); }
/* Routed ("ensure") messages to the keyed actor of (type, key) anywhere in the cluster;
 * AX_ENOTSUP from a daemon older than this ABI addition. */
static inline int ax_tell_key(ax_ctx *cx, const char *type, const char *key, const char *msg, const void *p,
                              size_t n)
{
    uint32_t id = ax_msg_id(cx, msg);
    if (!AX_API_HAS(cx, tell_key))
        return AX_ENOTSUP;
    return id ? ax_api_of(cx)->tell_key(cx, type, key, id, p, n, 0) : AX_EINVAL;
}
static inline int ax_ask_key(ax_ctx *cx, const char *type, const char *key, const char *msg, const void *p,
                             size_t n, uint32_t timeout_ms, const char *reply_msg, uint64_t tag)
{
    uint32_t id = ax_msg_id(cx, msg), rid = ax_msg_id(cx, reply_msg);
    if (!AX_API_HAS(cx, ask_key))
        return AX_ENOTSUP;
    if (!id || !rid)
        return AX_EINVAL;
    return ax_api_of(cx)->ask_key(cx, type, key, id, p, n, timeout_ms, rid, tag, 0);
}
static inline void ax_plog(ax_ctx *cx, int level, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static inline void ax_plog(ax_ctx *cx, int level, const char *fmt, ...)
{
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    ax_api_of(cx)->log(cx, level, buf);
}

/* Supervision from plugin code (Erlang semantics; see PROTOCOL.md "Lifecycle events and
 * monitors"). System messages arrive at handlers declared under these names:
 *   "$exit"  a linked actor exited and this actor traps exits: m->from = the actor,
 *            data = the reason ("noproc" when linking to a dead actor);
 *   "$down"  a monitored actor exited: m->tag = the monitor ref, m->from = the actor,
 *            data = its reason ("noproc", or "noconnection" when its node was lost);
 *   "$event" a lifecycle event (after ax_subscribe_events): data = a JSON document.
 * A type without such a handler simply does not receive them. */
static inline int ax_link(ax_ctx *cx, ax_ref other) { return ax_api_of(cx)->link(cx, other); }
static inline int ax_unlink(ax_ctx *cx, ax_ref other) { return ax_api_of(cx)->unlink(cx, other); }
static inline int ax_monitor(ax_ctx *cx, ax_ref other, uint64_t *mref) { return ax_api_of(cx)->monitor(cx, other, mref); }
/* flush != 0: a "$down" for mref already queued is removed too */
static inline int ax_demonitor(ax_ctx *cx, uint64_t mref, int flush) { return ax_api_of(cx)->demonitor(cx, mref, flush); }
static inline int ax_trap_exit(ax_ctx *cx, int on) { return ax_api_of(cx)->trap_exit(cx, on); }
static inline int ax_subscribe_events(ax_ctx *cx, int on) { return ax_api_of(cx)->subscribe_events(cx, on); }
static inline int ax_get_or_spawn(ax_ctx *cx, const char *type, const char *key, const ax_spawn_opts *o, ax_ref *out)
{
    return ax_api_of(cx)->get_or_spawn(cx, type, key, o, out);
}
static inline int ax_lookup(ax_ctx *cx, const char *name, ax_ref *out) { return ax_api_of(cx)->lookup(cx, name, out); }
static inline int ax_send_after(ax_ctx *cx, ax_ref to, const char *msg, const void *p, size_t n, uint32_t ms)
{
    uint32_t id = ax_msg_id(cx, msg);
    return id ? ax_api_of(cx)->send_after(cx, to, id, p, n, ms) : AX_EINVAL;
}

/* Parse a payload as a decimal int64 (optional sign, no spaces). 0 or AX_EINVAL. */
static inline int ax_msg_i64(const ax_msg *m, int64_t *out)
{
    const unsigned char *p = (const unsigned char *)m->data;
    size_t i = 0, n = m->len;
    int neg = 0;
    uint64_t v = 0, lim;
    if (n == 0)
        return AX_EINVAL;
    if (p[0] == '-' || p[0] == '+') {
        neg = p[0] == '-';
        i = 1;
        if (n == 1)
            return AX_EINVAL;
    }
    lim = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
    for (; i < n; i++) {
        if (p[i] < '0' || p[i] > '9')
            return AX_EINVAL;
        if (v > (lim - (uint64_t)(p[i] - '0')) / 10)
            return AX_EINVAL;
        v = v * 10 + (uint64_t)(p[i] - '0');
    }
    *out = neg ? (int64_t)(0 - v) : (int64_t)v;
    return AX_OK;
}

/* ---- declaring actor types and plugins ----
 *   typedef struct { int64_t n; } counter;
 *   static int inc(ax_ctx *cx, counter *self, const ax_msg *m) { self->n++; return AX_OK; }
 *   AX_ACTOR_TYPE(counter_type, "counter", counter, NULL, NULL,
 *                 AX_MSG("inc", inc), AX_MSG("get", get));
 *   AX_PLUGIN("counter", &counter_type);
 * Handlers and hooks take a pointer to the state type; the table stores them as the
 * generic signatures above (same calling convention, the state pointer as void *). */
#define AX_MSG(nm, fn) {(nm), (ax_handler_fn)(void (*)(void))(fn)}

#define AX_ACTOR_TYPE(var, tname, state_t, start_fn, stop_fn, ...)                                   \
    AX_DURABLE_ACTOR_TYPE(var, tname, state_t, start_fn, stop_fn, NULL, NULL, __VA_ARGS__)

/* A durable type (ABI 1.9): as AX_ACTOR_TYPE with a state codec; encode may be NULL
 * (the type calls ax_persist itself). */
#define AX_DURABLE_ACTOR_TYPE(var, tname, state_t, start_fn, stop_fn, encode_fn, decode_fn, ...)          \
    static const ax_msg_def var##_msgs_[] = {__VA_ARGS__};                                           \
    static const ax_actor_type var = {                                                               \
        .size = sizeof(ax_actor_type),                                                               \
        .name = (tname),                                                                             \
        .state_size = sizeof(state_t),                                                               \
        .on_start = (ax_start_fn)(void (*)(void))(start_fn),                                         \
        .on_stop = (ax_stop_fn)(void (*)(void))(stop_fn),                                            \
        .msgs = var##_msgs_,                                                                         \
        .n_msgs = sizeof(var##_msgs_) / sizeof(var##_msgs_[0]),                                      \
        .encode = (ax_encode_fn)(void (*)(void))(encode_fn),                                         \
        .decode = (ax_decode_fn)(void (*)(void))(decode_fn),                                         \
    }

#define AX_PLUGIN(pname, ...)                                                                        \
    static const ax_actor_type *const ax_plugin_types_[] = {__VA_ARGS__};                            \
    AX_EXPORT extern const ax_plugin_desc axactor_plugin;                                            \
    const ax_plugin_desc axactor_plugin = {                                                          \
        .abi_major = AX_ABI_MAJOR,                                                                   \
        .abi_minor = AX_ABI_MINOR,                                                                   \
        .size = sizeof(ax_plugin_desc),                                                              \
        .signature = AX_BUILD_SIGNATURE,                                                             \
        .name = (pname),                                                                             \
        .types = ax_plugin_types_,                                                                   \
        .n_types = sizeof(ax_plugin_types_) / sizeof(ax_plugin_types_[0]),                           \
    }

#ifdef __cplusplus
}
#endif
#endif
