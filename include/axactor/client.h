/* libaxclient: talk to a local axactord over its Unix socket.
 * Every call returns 0 or a negative AX_E* code; axc_errmsg() then says what went wrong
 * (from the daemon's ERROR frame or from the library). No call crashes on a dead daemon
 * or a malformed reply: the connection is marked broken (AX_ECONN) instead.
 * A connection is not thread-safe; use one per thread. */
#ifndef AXACTOR_CLIENT_H
#define AXACTOR_CLIENT_H

#include <stddef.h>
#include <stdint.h>

#include "axactor/errors.h"

#ifdef __cplusplus
extern "C" {
#endif

#define AXC_DEFAULT_SOCKET "/run/axactor/axactord.sock"
#define AXC_SOCKET_ENV "AXACTOR_SOCKET"
#define AXC_NODE_MAX 128

typedef struct axc_conn axc_conn;

/* An actor ref as the daemon reported it. node is the owning node's wire id ("" = the
 * daemon this connection talks to). */
typedef struct axc_ref {
    uint64_t id;
    uint32_t gen;
    char node[AXC_NODE_MAX];
} axc_ref;

/* How a request names its actor. Build with the helpers below; strings are borrowed
 * for the duration of the call. */
typedef struct axc_target {
    int kind; /* 0 ref, 1 name, 2 (type, key) — same values as the wire */
    axc_ref ref;
    const char *name; /* kind 1: actor name; kind 2: type name */
    const char *key;  /* kind 2 */
} axc_target;

axc_target axc_by_ref(const axc_ref *r);
axc_target axc_by_name(const char *name);
axc_target axc_by_key(const char *type, const char *key);

/* Connect to path (NULL: $AXACTOR_SOCKET, else AXC_DEFAULT_SOCKET) and do the HELLO
 * exchange within timeout_ms. On failure *out is NULL and, if errbuf is given, it holds
 * the reason. */
int axc_connect(const char *path, int timeout_ms, axc_conn **out, char *errbuf, size_t errlen);
void axc_close(axc_conn *c); /* accepts NULL; flushes buffered tells (bounded by the timeout) */

/* Message of the last failed call on c (never NULL). */
const char *axc_errmsg(const axc_conn *c);
/* The daemon's node id from the HELLO exchange. */
const char *axc_node_id(const axc_conn *c);
/* Per-call timeout for requests other than ask (default 5000 ms). */
void axc_set_timeout(axc_conn *c, int timeout_ms);
/* 1 if the connection is unusable (daemon gone, malformed stream, connection-level
 * ERROR): every later call fails with AX_ECONN. Tells a caller whether an error was
 * the daemon refusing one request (connection still fine) or the connection dying. */
int axc_is_broken(const axc_conn *c);
/* Largest frame body the daemon accepts (from HELLO_OK); bigger requests fail with
 * AX_ETOOBIG before anything is sent. */
uint32_t axc_max_frame(const axc_conn *c);
/* Pipelined asks sent with axc_send_ask whose result axc_poll_result has not yet
 * handed out. */
size_t axc_pending(const axc_conn *c);

/* Free anything the library returned (replies, JSON documents). Accepts NULL. */
void axc_free(void *p);

/* config_json: NULL or a JSON object of spawn options (see PROTOCOL.md). name may be
 * NULL for an anonymous actor. */
int axc_spawn(axc_conn *c, const char *type, const char *name, const char *config_json,
              axc_ref *out);
/* Acknowledged tell: returns once the message is in the actor's mailbox (or refused:
 * AX_EFULL, AX_ENOPROC, AX_ENOMSG...). */
int axc_tell(axc_conn *c, const axc_target *t, const char *msg, const void *p, size_t n);
/* Fire-and-forget tell: buffered; flushed by axc_flush or any blocking call. */
int axc_tell_noreply(axc_conn *c, const axc_target *t, const char *msg, const void *p, size_t n);
/* Ask and wait up to timeout_ms for the reply. *reply (NUL-terminated for convenience,
 * len excludes the NUL) is freed with axc_free. */
int axc_ask(axc_conn *c, const axc_target *t, const char *msg, const void *p, size_t n,
            int timeout_ms, void **reply, size_t *reply_len);
int axc_stop(axc_conn *c, const axc_target *t);
/* Erlang's exit/2: send the target an exit signal with reason (a name; NULL = "normal").
 * A target that traps exits gets it as "$exit"; "normal" to one that does not is ignored;
 * "kill" is untrappable (the target ends with "killed"); any other reason ends it. Unlike
 * axc_stop, its restart policy applies. Actors of the daemon's own node only (ENOTSUP). */
int axc_exit(axc_conn *c, const axc_target *t, const char *reason);

/* One page of the actors listing (PROTOCOL.md, ACTORS): actors from cursor on (0 = the
 * start) matching the filters (NULL or "" = any; type exact, the others prefixes, state
 * one of running/stopping/restarting), at most limit (0 = the daemon's page size), as
 * {"actors":[...],"next":N}; call again with cursor = next until it is 0. axc_actors is
 * the first page without filters. */
typedef struct axc_actors_query {
    uint64_t cursor;
    uint32_t limit;
    const char *type, *name_prefix, *state, *key_prefix;
} axc_actors_query;
int axc_actors_page(axc_conn *c, const axc_actors_query *q, char **json);

/* ---- keyed actors and request flags ----
 * Flags of axc_tell_ex / axc_ask_ex (the wire flags of the same values):
 *   AXC_NOREPLY  tell only: fire-and-forget, exactly as axc_tell_noreply;
 *   AXC_DIRECT   a (type, key) target reaches only a live keyed actor, else AX_ENOTFOUND
 *                (without it the daemon spawns the keyed actor if there is none).
 * Any other bit is refused with AX_EINVAL before anything is sent. */
#define AXC_NOREPLY 0x1u
#define AXC_DIRECT 0x2u
int axc_tell_ex(axc_conn *c, const axc_target *t, const char *msg, const void *p, size_t n, unsigned flags);
/* axc_ask with flags (AXC_DIRECT); *reply as for axc_ask. */
int axc_ask_ex(axc_conn *c, const axc_target *t, const char *msg, const void *p, size_t n, int timeout_ms,
               unsigned flags, void **reply, size_t *reply_len);
/* The one live actor of (type, key): found, or spawned with config_json (NULL or a JSON
 * object of spawn options, as for axc_spawn; it must not hold "key" itself, AX_EINVAL).
 * Concurrent calls for one (type, key), from any connections, all get the same ref. */
int axc_get_or_spawn(axc_conn *c, const char *type, const char *key, const char *config_json, axc_ref *out);
/* Spawn (key NULL; name optional) or get-or-spawn (key given; no name) with n bytes of
 * spawn argument (at most AXC_SPAWN_ARG_MAX) that the actor reads with ax_spawn_arg, in
 * on_start and later (sent as the config's "arg_hex"; config_json must not hold "arg"). */
#define AXC_SPAWN_ARG_MAX 32768u
int axc_spawn_arg(axc_conn *c, const char *type, const char *name, const char *key, const char *config_json,
                  const void *arg, size_t n, axc_ref *out);
int axc_resolve(axc_conn *c, const axc_target *t, axc_ref *out);

/* Control-plane documents: *json is a NUL-terminated JSON text, freed with axc_free. */
int axc_status(axc_conn *c, char **json);
/* Every cluster member's status document and their sums (PROTOCOL.md "Cluster status"):
 * {"node", "members", "answered", "nodes": [{"node", "status"} | {"node", "error"}],
 * "sum": {...}}; the daemon waits at most 2 s for its peers. A single node: itself. */
int axc_cluster_status(axc_conn *c, char **json);
/* The daemon's log level from now on: "error", "warn", "info" or "debug" (AX_EINVAL
 * with the daemon's message for another word). The change is logged. Until the next
 * restart or reload (log.level). */
int axc_set_log_level(axc_conn *c, const char *level);

/* Drain the node (a cluster member): it takes no shard and hands every one it holds over
 * to the other nodes (their queued messages and waiting asks go with them), within
 * timeout_ms (0: the daemon's cluster.drain_timeout_ms). Blocks until the drain ended
 * and returns its result document in *json (axc_free; NULL: not wanted): "result"
 * ("drained" or "timed out"), "shards", "handed_over", "ms", "handover_ms_avg",
 * "handover_ms_max", "messages_handed_back". Without AXC_DRAIN_STAY the daemon then
 * stops (its connections close); with it, it stays up holding no shard until
 * axc_undrain. EINVAL: not clustered. */
#define AXC_DRAIN_STAY 0x01u
int axc_drain(axc_conn *c, uint32_t timeout_ms, unsigned flags, char **json);
int axc_undrain(axc_conn *c);
int axc_actors(axc_conn *c, char **json);
int axc_plugins(axc_conn *c, char **json);
/* The cluster peers document (NODES; see PROTOCOL.md "Peer protocol"), as for axc_status. */
int axc_nodes(axc_conn *c, char **json);
/* The shards document (SHARDS): every shard with state, owner, epoch, lease expiry and
 * keyed actor count, plus the lease store's state; as for axc_status. */
int axc_shards(axc_conn *c, char **json);
int axc_plugin_load(axc_conn *c, const char *path, char **json);
int axc_plugin_unload(axc_conn *c, const char *name);

/* ---- non-blocking / pipelined use ----
 * axc_fd() is the socket, to watch for reading in the caller's event loop.
 * axc_send_ask queues an ask (written by axc_flush) and gives its request id;
 * axc_poll_result reads one finished result if one is available within timeout_ms
 * (0 = do not wait), returning 1 when *r was filled, 0 when none is ready. */
typedef struct axc_result {
    uint32_t req_id;
    int status;        /* AX_OK or an error code */
    void *data;        /* reply payload (NUL-terminated), or error message; axc_free it */
    size_t len;
} axc_result;

/* Every id from axc_send_ask gets exactly one result: the reply, the daemon's error,
 * AX_ETIMEDOUT (no answer within timeout_ms + 1 s) or, once the connection broke,
 * AX_ECONN; after the last one axc_poll_result returns AX_ECONN itself. */
int axc_fd(const axc_conn *c);
int axc_send_ask(axc_conn *c, const axc_target *t, const char *msg, const void *p, size_t n,
                 int timeout_ms, uint32_t *req_id);
int axc_flush(axc_conn *c);
int axc_poll_result(axc_conn *c, int timeout_ms, axc_result *r);

/* ---- lifecycle events and monitors ----
 * Events are JSON documents (see PROTOCOL.md, "Lifecycle events and monitors"):
 * {"event":"started"|"restarted"|"stopped","id":N,"gen":N,"name":S,"type":S,...},
 * {"event":"down","mref":N,"id":N,"gen":N,"reason":S} for a monitor, and
 * {"event":"lagged","skipped":N} when events were lost because nobody read them fast
 * enough. Events that arrive during other calls are queued on the connection. */

/* Receive lifecycle events of every actor (actor_name NULL or "") or of one actor
 * name; a second call replaces the filter. */
int axc_subscribe(axc_conn *c, const char *actor_name);
int axc_unsubscribe(axc_conn *c);
/* Watch one actor: exactly one "down" event (with the exit reason) follows when it
 * exits, unless axc_demonitor(mref) is called first. A target that does not resolve
 * is refused (AX_ENOPROC). */
int axc_monitor(axc_conn *c, const axc_target *t, uint64_t *mref);
int axc_demonitor(axc_conn *c, uint64_t mref);
/* The next queued or arriving event within timeout_ms (0 = do not wait): 1 and *json
 * (NUL-terminated, freed with axc_free), 0 if none, or an error. */
int axc_next_event(axc_conn *c, int timeout_ms, char **json);
/* Callback form: call cb(json, len, arg) for every event already queued and every one
 * that arrives, without waiting once at least one was handed out; if none is at hand,
 * wait up to timeout_ms (0 = do not wait) for the first. json (NUL-terminated) is
 * borrowed for the duration of the call; cb may call other axc_* functions on c.
 * Returns the number of events dispatched (0 if none), or an error once the
 * connection broke and nothing queued was left. A gap in the stream shows up as a
 * "lagged" event, as with axc_next_event. */
typedef void (*axc_event_cb)(const char *json, size_t len, void *arg);
int axc_dispatch_events(axc_conn *c, int timeout_ms, axc_event_cb cb, void *arg);

#ifdef __cplusplus
}
#endif
#endif
