/* libaxclient, asynchronous: every request of client.h without blocking, answered through a
 * per-request callback, driven by the caller's event loop (in the manner of hiredis's async
 * API: an adapter such as axactor/adapters/libev.h or libuv.h plugs a connection into a loop).
 *
 * Rules every callback can rely on:
 * - A request function returns 0 when the request was queued: its callback is then called
 *   exactly once with r->final == 1 (and, for a monitor or a subscription, possibly before
 *   that with final == 0), after which privdata is no longer used. A request function that
 *   returns an error queued nothing and never calls its callback; axc_async_errmsg says why.
 * - Callbacks run only from axc_async_handle_* (that is, from the loop), never from inside a
 *   request function. They may issue requests, and may call axc_async_free.
 * - Nothing here blocks: requests are buffered and written when the socket takes them; the
 *   buffer is bounded (axc_async_set_max_unsent; then AX_EFULL).
 * - Each request has a local deadline (asks: their timeout + 1 s, so that the daemon's own
 *   ETIMEDOUT is the answer seen; others: axc_async_set_timeout, default 5000 ms; drain:
 *   its timeout + 5 s): past it the callback gets AX_ETIMEDOUT and a late answer is dropped.
 * - When the connection breaks (daemon gone, malformed stream, axc_async_disconnect), every
 *   request still waiting gets AX_ECONN (its outcome is unknown), every monitor gets a final
 *   "down" with reason "noconnection" (Erlang's answer for a monitor across a lost link),
 *   the subscription gets AX_ECONN, and then the disconnect callback reports how many of
 *   each were lost. With reconnection on (axc_async_set_reconnect) the connection is then
 *   re-established with backoff and the connect callback runs again; monitors and the
 *   subscription are not re-created by the library (an actor may have died in between:
 *   re-monitor it and learn that from the answer).
 * A connection is not thread-safe: use it from its loop's thread. */
#ifndef AXACTOR_ASYNC_H
#define AXACTOR_ASYNC_H

#include <stddef.h>
#include <stdint.h>

#include "axactor/client.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct axc_async axc_async;

/* What a reply carries (r->kind). */
enum axc_reply_kind {
    AXC_R_NONE = 0, /* status only: an error, or a request answered OK */
    AXC_R_REF = 1,  /* spawn, get_or_spawn, spawn_arg, resolve: r->ref */
    AXC_R_DATA = 2, /* ask: the reply payload in data/len */
    AXC_R_JSON = 3, /* status, nodes, shards, actors, plugins, plugin load, drain; monitor (also r->mref) */
    AXC_R_EVENT = 4 /* a lifecycle event of a subscription, or a monitor's "down" (also r->mref) */
};

/* Everything in a reply is borrowed for the duration of the callback. */
typedef struct axc_reply {
    int status;         /* AX_OK or a negative AX_E* code */
    int kind;           /* enum axc_reply_kind */
    int final;          /* 1: the last call for this request */
    uint32_t req_id;    /* the request's id on the wire */
    const char *errmsg; /* status != 0: why (the daemon's message, or the library's); never NULL */
    const char *data;   /* DATA, JSON, EVENT: NUL-terminated (len excludes the NUL); else NULL */
    size_t len;
    axc_ref ref;        /* REF */
    uint64_t mref;      /* monitor replies and downs */
} axc_reply;

typedef void (*axc_async_cb)(axc_async *ac, const axc_reply *r, void *privdata);
/* status 0: the HELLO exchange succeeded (for the first time, or again after a reconnect:
 * axc_async_reconnects() counts those); else the attempt failed (a reconnect attempt that
 * failed is followed by the next one when reconnection is on). */
typedef void (*axc_async_connect_cb)(axc_async *ac, int status, void *privdata);

typedef struct axc_disconnect {
    int status;                /* AX_ECONN (daemon gone), AX_EPROTO (malformed stream), 0 (axc_async_disconnect) */
    const char *reason;        /* why, one line */
    size_t lost_requests;      /* requests that got AX_ECONN (outcome unknown) */
    size_t lost_monitors;      /* monitors that got a "noconnection" down */
    int lost_subscription;     /* 1 if a subscription was active (or being made) */
    int reconnect_in_ms;       /* the next attempt, or -1: the connection stays closed */
} axc_disconnect;
typedef void (*axc_async_disconnect_cb)(axc_async *ac, const axc_disconnect *d, void *privdata);

/* How an event loop drives a connection: the adapter fills this and passes it to
 * axc_async_attach; the library calls the hooks, the adapter calls axc_async_handle_*.
 * set_fd: the socket to watch from now on (-1: none; read and write interest off). */
typedef struct axc_async_loop {
    void *data;
    void (*set_fd)(void *data, int fd);
    void (*add_read)(void *data);
    void (*del_read)(void *data);
    void (*add_write)(void *data);
    void (*del_write)(void *data);
    /* arm the one timer to fire after ms (replacing an armed one); ms < 0 disarms it */
    void (*set_timer)(void *data, int ms);
    /* the connection is being freed: release everything (called once) */
    void (*cleanup)(void *data);
} axc_async_loop;

/* Start connecting to path (NULL: $AXACTOR_SOCKET, else AXC_DEFAULT_SOCKET): the socket is
 * opened at once (an immediate failure — no daemon there, permission — is returned, *out
 * NULL, errbuf the reason) and the HELLO exchange runs once the connection is attached to a
 * loop, within timeout_ms (<= 0: 5000), ending in the connect callback. Requests may be
 * queued before that: they are sent after HELLO. Free with axc_async_free. */
int axc_async_connect(const char *path, int timeout_ms, axc_async **out, char *errbuf, size_t errlen);
/* Once per connection, before the loop runs. AX_EINVAL if already attached. */
int axc_async_attach(axc_async *ac, const axc_async_loop *loop);
/* The adapter's half: the socket is readable / writable / the timer fired. */
void axc_async_handle_read(axc_async *ac);
void axc_async_handle_write(axc_async *ac);
void axc_async_handle_timer(axc_async *ac);

void axc_async_set_connect_cb(axc_async *ac, axc_async_connect_cb cb, void *privdata);
void axc_async_set_disconnect_cb(axc_async *ac, axc_async_disconnect_cb cb, void *privdata);
/* Events that belong to no request (a "down" of a monitor already given up locally, a
 * connection-level notice): JSON documents, kind AXC_R_EVENT, final 0. NULL drops them. */
void axc_async_set_event_cb(axc_async *ac, axc_async_cb cb, void *privdata);
/* Reconnect after a lost connection, waiting min_ms, then doubling up to max_ms between
 * failed attempts (min_ms <= 0: off, the default). */
void axc_async_set_reconnect(axc_async *ac, int min_ms, int max_ms);
void axc_async_set_timeout(axc_async *ac, int timeout_ms);
/* Bound on bytes queued and not yet written (default 64 MiB): past it requests fail with
 * AX_EFULL, the daemon not reading fast enough (backpressure, not a broken connection). */
void axc_async_set_max_unsent(axc_async *ac, size_t bytes);

/* Close the connection now, as if it broke (callbacks as described above, status 0), and
 * do not reconnect. The connection object stays valid until axc_async_free. */
void axc_async_disconnect(axc_async *ac);
/* Disconnect (if connected), call the loop's cleanup and free. Accepts NULL; safe inside a
 * callback (the free then happens when the callback returns). */
void axc_async_free(axc_async *ac);

const char *axc_async_errmsg(const axc_async *ac); /* the last refused request's reason */
int axc_async_is_connected(const axc_async *ac);   /* 1 after HELLO, until the connection breaks */
const char *axc_async_node_id(const axc_async *ac); /* "" before HELLO */
unsigned axc_async_reconnects(const axc_async *ac); /* successful reconnects so far */
size_t axc_async_pending(const axc_async *ac);      /* requests waiting for an answer */
size_t axc_async_unsent(const axc_async *ac);       /* bytes queued, not yet written */
/* Write what the socket takes now, never waiting: 0 all written, 1 some left (the loop
 * writes the rest when the socket is writable), or AX_ECONN. */
int axc_async_flush(axc_async *ac);

/* ---- requests (the blocking API's arguments, plus cb and privdata) ---- */
int axc_async_spawn(axc_async *ac, const char *type, const char *name, const char *config_json, axc_async_cb cb,
                    void *privdata);
int axc_async_get_or_spawn(axc_async *ac, const char *type, const char *key, const char *config_json,
                           axc_async_cb cb, void *privdata);
int axc_async_spawn_arg(axc_async *ac, const char *type, const char *name, const char *key, const char *config_json,
                        const void *arg, size_t n, axc_async_cb cb, void *privdata);
int axc_async_resolve(axc_async *ac, const axc_target *t, axc_async_cb cb, void *privdata);
/* flags: AXC_DIRECT, AXC_NOREPLY. With AXC_NOREPLY (fire-and-forget) cb must be NULL: no
 * answer comes; without it the callback gets the acknowledgement. */
int axc_async_tell(axc_async *ac, const axc_target *t, const char *msg, const void *p, size_t n, unsigned flags,
                   axc_async_cb cb, void *privdata);
/* flags: AXC_DIRECT. */
int axc_async_ask(axc_async *ac, const axc_target *t, const char *msg, const void *p, size_t n, int timeout_ms,
                  unsigned flags, axc_async_cb cb, void *privdata);
int axc_async_stop(axc_async *ac, const axc_target *t, axc_async_cb cb, void *privdata);
int axc_async_exit(axc_async *ac, const axc_target *t, const char *reason, axc_async_cb cb, void *privdata);
/* The first call (final 0) answers the MONITOR: kind JSON, r->mref. The down follows as
 * kind EVENT with final 1 — the actor's exit, or "noconnection" when the connection broke.
 * If the MONITOR is refused (AX_ENOPROC...), that error is the one final call. */
int axc_async_monitor(axc_async *ac, const axc_target *t, axc_async_cb cb, void *privdata);
/* The demonitor's own callback gets OK (or its error); the monitor's callback then gets its
 * final call with status 0 and kind NONE (no down will follow). */
int axc_async_demonitor(axc_async *ac, uint64_t mref, axc_async_cb cb, void *privdata);
/* One subscription per connection, as on the wire. The first call (final 0, kind NONE)
 * answers the SUBSCRIBE; each event then comes as kind EVENT, final 0. A later subscribe
 * replaces it and an unsubscribe ends it: the old callback then gets its final call
 * (status 0, kind NONE). */
int axc_async_subscribe(axc_async *ac, const char *actor_name, axc_async_cb cb, void *privdata);
int axc_async_unsubscribe(axc_async *ac, axc_async_cb cb, void *privdata);
/* The control documents: kind JSON. */
int axc_async_status(axc_async *ac, axc_async_cb cb, void *privdata);
int axc_async_cluster_status(axc_async *ac, axc_async_cb cb, void *privdata);
int axc_async_nodes(axc_async *ac, axc_async_cb cb, void *privdata);
int axc_async_shards(axc_async *ac, axc_async_cb cb, void *privdata);
int axc_async_plugins(axc_async *ac, axc_async_cb cb, void *privdata);
int axc_async_actors_page(axc_async *ac, const axc_actors_query *q, axc_async_cb cb, void *privdata);
int axc_async_plugin_load(axc_async *ac, const char *path, axc_async_cb cb, void *privdata);
int axc_async_plugin_unload(axc_async *ac, const char *name, axc_async_cb cb, void *privdata);
int axc_async_set_log_level(axc_async *ac, const char *level, axc_async_cb cb, void *privdata);
/* flags: AXC_DRAIN_STAY; the answer (kind JSON) comes when the drain ended. */
int axc_async_drain(axc_async *ac, uint32_t timeout_ms, unsigned flags, axc_async_cb cb, void *privdata);
int axc_async_undrain(axc_async *ac, axc_async_cb cb, void *privdata);

#ifdef __cplusplus
}
#endif
#endif
