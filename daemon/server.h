/* The daemon's one server state and the internal types of the actor runtime:
 * actors, envelopes (queued messages), pending asks, actor types and plugins, client
 * connections. Everything runs on one libev loop; nothing here is thread-safe. */
#ifndef AX_SERVER_H
#define AX_SERVER_H

#include <ev.h>
#include <stdint.h>
#include <sys/types.h>

#include "axactor/plugin.h"
#include "config.h"
#include "frame.h"
#include "hmap.h"

struct ax_server;
struct ax_conn;

/* ---- messages ---- */
enum ax_env_kind {
    AX_ENV_USER = 0,  /* a tell or ask from an actor or client */
    AX_ENV_REPLY = 1, /* an ask's reply delivered to the asking actor */
    AX_ENV_STOP = 2,  /* control: stop with reason (data = reason text) */
    AX_ENV_SYS = 3,   /* system message ($exit, $down, $event) for the handler: rides the USER
                       * mailbox in arrival order (never refused for capacity), so it comes
                       * after every message its sender sent earlier (Erlang's signal order) */
    AX_ENV_EXIT = 4,  /* control: an exit signal that ends a non-trapping actor (data = the
                       * reason it exits with); decided when the signal arrived */
    AX_ENV_KILL = 5,  /* control: stop with reason "killed"; untrappable, never restarted */
};

/* A watcher ref with this node value names a client connection (id = slot, gen). */
#define AX_NODE_CLIENT UINT32_MAX

typedef struct ax_env {
    struct ax_env *next;
    ax_msg m;        /* what the handler sees; m.data points into data[] */
    uint8_t kind;    /* enum ax_env_kind */
    uint8_t pooled;  /* allocated from the small-envelope pool */
    uint8_t link_sig; /* an exit signal of the link with m.from: ignored when taken if the
                       * receiver has unlinked meanwhile */
    uint32_t ask;    /* pending-ask slot (0 = no reply wanted) */
    uint32_t ask_gen;
    uint64_t epoch;
    uint8_t data[];
} ax_env;

#define AX_ENV_POOL_PAYLOAD 64 /* payloads up to this size come from the pool */

typedef struct ax_mq {
    ax_env *head, *tail;
    uint32_t len;
} ax_mq;

/* ---- actor types and plugins ---- */
typedef struct ax_handler_ent {
    uint32_t id;
    ax_handler_fn fn;
} ax_handler_ent;

typedef struct ax_plugin ax_plugin;

typedef struct ax_type {
    const ax_actor_type *desc;
    ax_plugin *plugin;     /* NULL for built-in types */
    char *name;
    ax_handler_ent *handlers;
    size_t n_handlers;
    uint32_t live;         /* actors of this type alive now */
} ax_type;

struct ax_plugin {
    char *name;
    char *path;
    void *dl;
    const ax_plugin_desc *desc;
    ax_type **types;
    size_t n_types;
};

/* ---- actors ---- */
enum ax_actor_state { AX_ST_RUNNING = 0, AX_ST_STOPPING = 1, AX_ST_DEAD = 2, AX_ST_RESTARTING = 3 };

typedef struct ax_mon {
    uint64_t mref;
    ax_ref other; /* on the target: the watcher; on the watcher: the target */
} ax_mon;

/* Supervision state, allocated only for actors that use it (keeps idle actors small). */
typedef struct ax_actor_ext {
    ax_ref *links;
    uint32_t n_links, cap_links;
    ax_mon *watchers; /* monitors others hold on this actor */
    uint32_t n_watchers, cap_watchers;
    ax_mon *watching; /* monitors this actor holds */
    uint32_t n_watching, cap_watching;
    double *restart_times; /* ring of the last max_restarts restart times */
    uint32_t restart_head;
    ev_timer backoff;
    struct ax_actor *owner;
    char *restart_reason;
} ax_actor_ext;

typedef struct ax_actor {
    uint32_t slot, gen;
    ax_type *type;
    void *state;
    char *name;            /* registered name, owned; NULL if anonymous */
    ax_mq ctl, user;
    uint32_t cap;          /* user mailbox capacity */
    uint8_t st;            /* enum ax_actor_state */
    uint8_t in_ready;
    uint8_t running;       /* a handler of this actor is on the stack */
    uint8_t trap_exit;
    uint8_t subscribed;    /* receives lifecycle events as "$event" */
    struct ax_actor *ready_next;
    ax_actor_ext *x;
    char *key;             /* keyed actors: "type\0key" registry key (owned), else NULL */
    size_t key_len;
    uint32_t shard;        /* keyed actors: the key's shard */
    struct ax_actor *kprev, *knext; /* keyed actors list (idle reaper) */
    double last_msg;       /* loop time of the last user message (idle reaper) */
    uint64_t processed;
    uint32_t restarts;
    ax_spawn_opts opts;
    double started_at;
} ax_actor;

/* ---- pending asks ---- */
typedef struct ax_pending ax_pending;
/* Called exactly once per pending ask: with the reply (status AX_OK) or an error. */
typedef void (*ax_pending_done)(struct ax_server *s, ax_pending *p, int status, const void *data, size_t n);

struct ax_pending {
    uint32_t slot, gen;
    ev_timer timer;
    ax_pending_done done;
    union {
        struct { uint32_t conn_slot, conn_gen, req_id; } client;
        struct { ax_ref asker; uint32_t reply_msg; uint64_t tag; } actor;
    } u;
    void *ud; /* for the owner of done (e.g. routing keeps the message for a retry) */
};

/* ---- the context handed to plugin code ---- */
struct ax_ctx {
    const ax_api *api; /* must stay first: plugin.h reads it */
    struct ax_server *srv;
    ax_actor *self;
    ax_env *cur;       /* message being handled, NULL in on_start/on_stop */
    int replied;
    const char *fail_reason;
    char fail_buf[128];
    const char *exit_reason; /* the actor stopped itself (ax_stop(self)) */
    char exit_buf[128];
};

/* ---- counters shown by `axctl status` ---- */
typedef struct ax_counters {
    uint64_t spawned, stopped, failed, delivered, tells, asks, replies;
    uint64_t ask_timeouts, mailbox_full, no_handler, late_replies;
    uint64_t clients_accepted, clients_refused, bad_frames;
    uint64_t restarts, links, monitors, downs, events, events_lagged, idle_reaped;
    uint64_t route_retries; /* forwarded keyed messages re-sent after EBUSY/ESTALE */
} ax_counters;

/* A lifecycle-event subscriber: an actor (node 0) or a client (AX_NODE_CLIENT). */
typedef struct ax_event_sub {
    ax_ref who;
    char *filter;     /* actor name to follow, or NULL for all */
    uint64_t lagged;  /* events skipped since the last one delivered */
    uint32_t req_id;  /* clients: the SUBSCRIBE request id, echoed on EVENT frames */
} ax_event_sub;

typedef struct ax_server {
    struct ev_loop *loop;
    ax_config cfg;
    char node_id[128];
    double started_at;

    ax_slots actors;         /* slot -> ax_actor */
    ax_hmap names;           /* registered name -> ax_actor */
    ax_hmap msg_names;       /* message name -> (uintptr_t)id */
    char **msg_by_id;        /* id -> name (owned); index 0 unused */
    uint32_t n_msg_ids, msg_cap;
    ax_hmap types;           /* type name -> ax_type */
    ax_plugin **plugins;
    size_t n_plugins;

    ax_slots pending;        /* slot -> ax_pending */

    ax_actor *ready_head, *ready_tail;
    ev_check run_check;
    ev_idle run_idle;        /* keeps the loop from blocking while actors are ready */

    ax_env *env_pool;
    uint32_t env_pool_len;

    ax_counters ctr;
    ax_api api;
    uint64_t next_mref;
    uint32_t sys_exit_id, sys_down_id, sys_event_id; /* interned "$exit" "$down" "$event" */

    ax_hmap keyed;           /* "type\0key" -> ax_actor (registry) */
    ax_actor *keyed_head;
    ev_timer reaper;
    uint32_t reaper_ms;

    ax_event_sub *subs;
    size_t n_subs, cap_subs;

    struct ax_shards *shards;          /* lease manager (routing.c); NULL before start */
    struct ax_lease_store *lease_store;
    int lease_store_borrowed;          /* ax_route_start_store: the caller frees the store */
    ev_timer shards_grace;
    int shards_stopped;
    struct ax_route_shard *route_shards; /* per shard: cached owner, waiting messages */
    char route_owner[256];               /* this node's lease owner id */
    ev_timer membership;
    double store_down_since;             /* monotonic time the store connection was lost; 0 = up */

    /* client listener (listener.c) */
    int listen_fd;
    ev_io listen_io;
    ax_slots conns;
    struct ax_conn *dirty;   /* connections with output to flush */
    uint32_t n_conns;
    int socket_created;

    ev_signal sig_term, sig_int, sig_hup;
    /* SIGHUP: read the configuration again (file and flags, validated); installed by
     * main. 0 and *out filled, or AX_ECONFIG with err. NULL: SIGHUP only logs. */
    int (*reload)(void *ud, ax_config *out, char *err, size_t errlen);
    void *reload_ud;
    uint64_t reloads, reload_errors;
    ev_timer stop_timer;
    ev_timer accept_pause;
    int stopping;
    int exit_code;
    struct ax_cluster *cluster; /* daemon/cluster/ (NULL when the cluster is off) */
} ax_server;

/* ---- server.c ---- */
int ax_server_init(ax_server *s, struct ev_loop *loop, const ax_config *cfg);
void ax_server_free(ax_server *s);
/* Handle SIGTERM/SIGINT (stop), SIGHUP (reload), ignore SIGUSR1/2: for the daemon's
 * loop only (libev lets one loop own a signal). */
void ax_server_signals_start(ax_server *s);
/* Stop every actor (on_stop runs), close clients, remove the socket, break the loop. */
void ax_server_shutdown(ax_server *s, const char *why);
/* Apply what can change at run time from a reloaded configuration (SIGHUP): log level
 * and target, plugins.load additions, cluster.peers additions; what cannot is logged as
 * needing a restart. Returns 0, or AX_ECONFIG (nothing changed) when it cannot be read. */
int ax_server_reload(ax_server *s);

/* ---- actor.c: the runtime ---- */
void ax_runtime_init(ax_server *s);
void ax_runtime_free(ax_server *s);
/* Intern a message name (plugins only); 0 on an invalid name. */
uint32_t ax_msg_intern(ax_server *s, const char *name, size_t len);
/* Look up without interning (client input); 0 if unknown. */
uint32_t ax_msg_lookup(ax_server *s, const char *name, size_t len);
const char *ax_msg_name(ax_server *s, uint32_t id);

int ax_actor_spawn(ax_server *s, const char *type, size_t type_len, const ax_spawn_opts *o,
                   ax_ref *out, const char **why);
ax_actor *ax_actor_get(ax_server *s, ax_ref r);
ax_actor *ax_actor_by_name(ax_server *s, const char *name, size_t len);
/* Enqueue a user message. On success the envelope is owned by the actor; on failure
 * (AX_EFULL, AX_ENOPROC, AX_ENOMSG) the caller still owns it. */
int ax_actor_deliver(ax_server *s, ax_actor *a, ax_env *e);
/* Ask the actor to stop (control mailbox); reason copied. */
int ax_actor_stop(ax_server *s, ax_actor *a, const char *reason);
/* Does the actor's type handle message id? */
int ax_actor_handles(const ax_actor *a, uint32_t id);

ax_env *ax_env_new(ax_server *s, size_t payload_len);
void ax_env_free(ax_server *s, ax_env *e);

/* Pending asks: create one (timer armed), complete it (exactly once). */
ax_pending *ax_pending_new(ax_server *s, uint32_t timeout_ms, ax_pending_done done);
void ax_pending_complete(ax_server *s, uint32_t slot, uint32_t gen, int status, const void *p, size_t n);

/* JSON documents for the control plane (cJSON; caller frees with cJSON_Delete). */
struct cJSON *ax_runtime_status_json(ax_server *s);
struct cJSON *ax_runtime_actors_json(ax_server *s); /* the first page, no filters */
/* One page of the ACTORS document: actors from slot q->cursor on that match q's filters,
 * at most q->limit (0: AX_ACTORS_PAGE) and about max_bytes of JSON (0: half of
 * client.max_frame), and "next": the cursor of the next page (0 = no more). q NULL: no
 * filters. The daemon never builds a document larger than a frame. */
#define AX_ACTORS_PAGE 1000
#define AX_ACTORS_PAGE_MAX 10000
struct cJSON *ax_runtime_actors_page(ax_server *s, const ax_actors_query *q, size_t max_bytes);
/* Add a keyed actor's key to a document: "key" when it is valid UTF-8 without control
 * characters, else "key_hex" (keys are bytes; JSON documents must stay valid). */
void ax_json_add_key(struct cJSON *o, const ax_actor *a);

/* ---- supervisor.c: restarts, links, monitors ---- */
/* The one exit path of an incarnation. external: stopped from outside (final, no
 * restart). Otherwise the restart policy decides. */
void ax_actor_exit(ax_server *s, ax_actor *a, const char *reason, int external);
int ax_sup_link(ax_server *s, ax_actor *a, ax_ref other, int *noproc);
int ax_sup_unlink(ax_server *s, ax_actor *a, ax_ref other);
/* Monitor target on behalf of watcher (an actor ref or a client ref). */
int ax_sup_monitor(ax_server *s, ax_ref watcher, ax_ref target, uint64_t *mref);
int ax_sup_demonitor(ax_server *s, ax_ref watcher, uint64_t mref, int flush);
/* Deliver a down to a watcher (local actor, client or remote). */
void ax_runtime_deliver_down(ax_server *s, ax_ref watcher, uint64_t mref, ax_ref who, const char *reason);
/* A client went away: remove the monitors it held on local actors. */
void ax_monitors_drop_watcher(ax_server *s, ax_ref watcher);
/* Handle a control EXIT envelope when taken: the actor exits with its reason (restart
 * policy applies), unless it was a link's signal and the link is gone (ignored; e freed).
 * Returns 1 if the actor is gone/restarting. */
int ax_handle_exit_signal(ax_server *s, ax_actor *a, ax_env *e);
/* A "$exit" message about to be handled: 0 if it must be dropped (its link was removed
 * by ax_unlink after it was queued), else 1 (and the link entry is consumed). */
int ax_exit_msg_live(ax_server *s, ax_actor *a, const ax_env *e);
/* Erlang's exit/2: an exit signal with reason from `from` (AX_REF_NONE: a client) to a.
 * "kill": untrappable, a ends with "killed" (restart policy applies); a trapping a gets
 * "$exit"; "normal" to a non-trapping a is ignored; any other reason ends a (restart
 * policy applies). */
int ax_sup_exit(ax_server *s, ax_ref from, ax_actor *a, const char *reason);
void ax_actor_free_ext(ax_server *s, ax_actor *a, const char *reason);
int ax_reason_is_normal(const char *r);

/* ---- registry.c: keyed actors and the idle reaper ---- */
int ax_registry_get_or_spawn(ax_server *s, const char *type, size_t tlen, const char *key, size_t klen,
                             const ax_spawn_opts *o, int spawn, ax_ref *out, const char **why);
/* get_or_spawn (spawn=1, "ensure") or lookup (spawn=0, "direct") for a routed message
 * carrying msg_epoch: refuses with AX_EBUSY / AX_ESTALE when the shard is not ours. */
int ax_registry_route(ax_server *s, const char *type, size_t tlen, const char *key, size_t klen, uint64_t msg_epoch,
                      int spawn, ax_ref *out, const char **why);
void ax_registry_remove(ax_server *s, ax_actor *a);
void ax_registry_init(ax_server *s);
void ax_registry_free(ax_server *s);

/* ---- routing.c: shards, leases and keyed routing ---- */
int ax_route_start(ax_server *s, char *err, size_t errlen);
/* Start routing over a store the caller owns (in-process tests: several nodes sharing one
 * memory store): borrowed, it must outlive ax_route_free, which does not free it. */
int ax_route_start_store(ax_server *s, struct ax_lease_store *store, char *err, size_t errlen);
int ax_route_stop(ax_server *s); /* 1: keep the loop running until the releases finish */
void ax_route_free(ax_server *s);
uint32_t ax_route_shard_of(ax_server *s, const char *key, size_t klen);
/* May this node deliver to key's actor now? 0 and the shard epoch, AX_EBUSY (not served
 * here) or AX_ESTALE (msg_epoch is not the current epoch); msg_epoch 0 = not fenced. */
int ax_route_check(ax_server *s, const char *key, size_t klen, uint64_t msg_epoch, uint64_t *epoch, const char **why);
uint64_t ax_route_actor_epoch(ax_server *s, const ax_actor *a);
/* A keyed message for a shard this node does not serve: forward it to the shard's
 * owner (looked up in the lease store, cached briefly). kflags: AX_PK_DIRECT, AX_PK_ASK
 * (proto/peer.h). pd NULL: fire-and-forget; else completed exactly once (ask: reply;
 * tell: empty OK once the owner queued it; or an error: EBUSY when no node holds the
 * shard now, ESTALE, ENOCONN...). An error return leaves pd untouched. */
int ax_route_send(ax_server *s, const char *type, size_t tlen, const char *key, size_t klen, unsigned kflags,
                  const char *msg, size_t mlen, const void *p, size_t n, ax_ref from, ax_pending *pd);
struct cJSON *ax_route_shards_json(ax_server *s, int all);
void ax_route_status(ax_server *s, struct cJSON *doc); /* adds "shards" and "lease_store" */
/* Does this node reach its lease store (connected, or lost for less than one renew
 * interval)? 1 without a lease manager. Sent in heartbeats: peers count a node in the
 * fair share only while it does. */
int ax_route_store_ok(ax_server *s);
/* Epochs never go backwards: a peer knows `epoch` for shard (EPOCHS record). */
void ax_route_note_epoch(ax_server *s, uint32_t shard, uint64_t epoch, const char *from);
/* The highest epoch known per shard, for shards >= from where one is known (ascending):
 * up to cap pairs; returns how many. */
size_t ax_route_known_epochs(ax_server *s, uint32_t from, uint32_t *sh, uint64_t *ep, size_t cap);

/* ---- events.c: the lifecycle stream ---- */
void ax_event_emit(ax_server *s, ax_actor *a, const char *event, const char *reason);
int ax_events_subscribe(ax_server *s, ax_ref who, const char *filter, size_t flen, uint32_t req_id);
int ax_events_unsubscribe(ax_server *s, ax_ref who);
void ax_events_free(ax_server *s);
/* listener.c: send one event document to a client subscriber; returns 0 if sent, -1
 * if the client is too far behind (the caller counts it as lagged). */
int ax_listener_send_event(ax_server *s, ax_ref client, uint32_t req_id, const char *json, size_t n, int force);
int ax_listener_client_alive(ax_server *s, ax_ref client);

/* ---- actor.c internals shared with the files above ---- */
void ax_actor_terminate(ax_server *s, ax_actor *a, const char *reason);
int ax_actor_start(ax_server *s, ax_actor *a);
void ax_actor_schedule(ax_server *s, ax_actor *a);
void ax_env_drop(ax_server *s, ax_env *e, int status);
void ax_runtime_run(ax_server *s);
void ax_runtime_stop_all(ax_server *s, const char *reason);
ax_actor *ax_actor_get_any(ax_server *s, ax_ref r); /* also RESTARTING/STOPPING */

/* ---- plugin_loader.c ---- */
/* Load a plugin by path (or by name under plugins.dir). On failure nothing stays
 * registered or mapped and *why says what was wrong (static or in errbuf). */
int ax_plugin_load(ax_server *s, const char *path, ax_plugin **out, char *err, size_t errlen);
/* A load requested by a client at run time (PLUGIN_LOAD): allowed by plugins.runtime_load
 * for client_uid, only from plugins.dir or plugins.trusted_dirs (a relative path under
 * plugins.dir), directory and file owned by root or the daemon's user and writable by
 * nobody else; else AX_EPERM saying why, and nothing changes. */
int ax_plugin_load_runtime(ax_server *s, const char *path, uid_t client_uid, ax_plugin **out, char *err,
                           size_t errlen);
int ax_plugin_unload(ax_server *s, const char *name, char *err, size_t errlen);
void ax_plugins_unload_all(ax_server *s);
struct cJSON *ax_plugin_json(const ax_plugin *p);
struct cJSON *ax_plugins_json(ax_server *s);
/* Register a type (plugin may be NULL for built-ins). */
int ax_type_register(ax_server *s, const ax_actor_type *d, ax_plugin *p, ax_type **out, char *err, size_t errlen);
void ax_type_unregister(ax_server *s, ax_type *t);

/* ---- listener.c: the client socket ---- */
int ax_listener_start(ax_server *s, char *err, size_t errlen);
void ax_listener_stop(ax_server *s);
/* Flush output of connections that got replies during this loop iteration. */
void ax_listener_flush(ax_server *s);

#endif
