/* The runtime core, the bottom layer of the daemon: actors, envelopes (queued
 * messages), mailboxes, scheduling, pending asks, supervision, the registry of names and
 * keys, the lifecycle stream, actor types, plugins and the plugin function table. It
 * includes nothing above it (daemon/keyed, daemon/cluster, daemon/front): it reaches them
 * through the tables below. One runtime runs on one libev loop; nothing here is
 * thread-safe. */
#ifndef AXD_CORE_H
#define AXD_CORE_H

#include <ev.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>
#include <sys/types.h>

#include "axactor/plugin.h"
#include "config.h"
#include "frame.h"
#include "histo.h"
#include "hmap.h"
#include "shard_reasons.h"

struct axd_pending;
struct axd_rt;

/* ---- messages ---- */
enum axd_env_kind {
    AXD_ENV_USER = 0,  /* a tell or ask from an actor or client */
    AXD_ENV_REPLY = 1, /* an ask's reply delivered to the asking actor */
    AXD_ENV_STOP = 2,  /* control: stop with reason (data = reason text) */
    AXD_ENV_SYS = 3,   /* system message ($exit, $down, $event) for the handler: rides the USER
                       * mailbox in arrival order (never refused for capacity), so it comes
                       * after every message its sender sent earlier (Erlang's signal order) */
    AXD_ENV_EXIT = 4,  /* control: an exit signal that ends a non-trapping actor (data = the
                       * reason it exits with); decided when the signal arrived */
    AXD_ENV_KILL = 5,  /* control: stop with reason "killed"; untrappable, never restarted */
};

/* A watcher ref with this node value names a client connection (id = slot, gen). */
#define AXD_NODE_CLIENT UINT32_MAX

typedef struct axd_env {
    struct axd_env *next;
    ax_msg m;        /* what the handler sees; m.data points into data[] */
    uint8_t kind;    /* enum axd_env_kind */
    uint8_t pooled;  /* allocated from the small-envelope pool */
    uint8_t link_sig; /* an exit signal of the link with m.from: ignored when taken if the
                       * receiver has unlinked meanwhile */
    uint8_t ask_worker; /* the worker whose pending ask `ask` is (the one that made e) */
    uint8_t io;         /* an I/O readiness event of watch m.tag: re-armed once handled */
    uint8_t ack;        /* a tell whose sender waits for "queued": the receiving worker
                         * answers the pending `ask` with OK once e is in the mailbox (or
                         * with the error), and the actor sees a plain tell */
    uint32_t ask;    /* pending-ask slot (0 = no reply wanted) */
    uint32_t ask_gen;
    uint64_t epoch;
    uint8_t data[];
} axd_env;

#define AXD_ENV_POOL_PAYLOAD 64 /* payloads up to this size come from the pool */

typedef struct axd_mq {
    axd_env *head, *tail;
    uint32_t len;
} axd_mq;

/* ---- actor types and plugins ---- */
typedef struct axd_handler_ent {
    uint32_t id;
    ax_handler_fn fn;
} axd_handler_ent;

typedef struct axd_plugin axd_plugin;

typedef struct axd_type {
    const ax_actor_type *desc;
    axd_plugin *plugin;     /* NULL for built-in types */
    char *name;
    axd_handler_ent *handlers;
    size_t n_handlers;
    uint32_t live;         /* actors of this type alive now */
    uintptr_t flags;       /* AX_TYPE_* (descriptors of ABI 1.2 and later; else 0) */
    ax_encode_fn encode;   /* ABI 1.9 codec; decode != NULL: a durable type */
    ax_decode_fn decode;
    uint32_t forget_id;    /* durable types: the id of "$forget" (else 0) */
} axd_type;

struct axd_plugin {
    char *name;
    char *path;
    void *dl;
    const ax_plugin_desc *desc;
    axd_type **types;
    size_t n_types;
};

/* ---- actors ---- */
enum axd_actor_state { AXD_ST_RUNNING = 0, AXD_ST_STOPPING = 1, AXD_ST_DEAD = 2, AXD_ST_RESTARTING = 3 };

typedef struct axd_mon {
    uint64_t mref;
    ax_ref other; /* on the target: the watcher; on the watcher: the target */
} axd_mon;

/* Supervision state, allocated only for actors that use it (keeps idle actors small). */
typedef struct axd_actor_ext {
    ax_ref *links;
    uint32_t n_links, cap_links;
    axd_mon *watchers; /* monitors others hold on this actor */
    uint32_t n_watchers, cap_watchers;
    axd_mon *watching; /* monitors this actor holds */
    uint32_t n_watching, cap_watching;
    double *restart_times; /* ring of the last max_restarts restart times */
    uint32_t restart_head;
    ev_timer backoff;
    struct axd_actor *owner;
    char *restart_reason;
} axd_actor_ext;

typedef struct axd_actor_work axd_actor_work; /* work.c: tokens, timers */
typedef struct axd_pool axd_pool;             /* offload.c: the node's offload threads */
struct axd_xq;

typedef struct axd_actor {
    uint32_t slot, gen;
    axd_type *type;
    void *state;
    char *name;            /* registered name, owned; NULL if anonymous */
    axd_mq ctl, user;
    uint32_t cap;          /* user mailbox capacity */
    uint8_t st;            /* enum axd_actor_state */
    uint8_t in_ready;
    uint8_t running;       /* a handler of this actor is on the stack */
    uint8_t trap_exit;
    uint8_t subscribed;    /* receives lifecycle events as "$event" */
    struct axd_actor *ready_next;
    axd_actor_ext *x;
    axd_actor_work *w;     /* this incarnation's deferred-reply tokens and timers, or NULL */
    char *key;             /* keyed actors: "type\0key" registry key (owned), else NULL */
    size_t key_len;
    uint32_t shard;        /* keyed actors: the key's shard */
    uint64_t epoch;        /* keyed actors: the shard epoch it was activated at (it ends with it) */
    uint8_t loading;       /* durable: its state load is in flight; nothing of it runs before */
    struct axd_pstate *ps; /* durable keyed actors: the bytes last written (persist.c) */
    struct axd_actor *kprev, *knext; /* keyed actors list (idle reaper) */
    double last_msg;       /* loop time of the last user message (idle reaper) */
    uint64_t processed;
    uint32_t restarts;
    ax_spawn_opts opts;    /* opts.arg: NULL (the copy is arg below) */
    void *arg;             /* the spawn argument, owned (ax_spawn_arg) */
    size_t arg_len;
    double started_at;
} axd_actor;

/* ---- pending asks ---- */
#define AXD_HANDLER_SAMPLE 8 /* one handler run in this many is timed (axd_rt.h_handler) */

typedef struct axd_pending axd_pending;
/* Called exactly once per pending ask: with the reply (status AX_OK) or an error. */
typedef void (*axd_pending_done)(struct axd_rt *s, axd_pending *p, int status, const void *data, size_t n);

struct axd_pending {
    uint32_t slot, gen;
    ev_timer timer;
    axd_pending_done done;
    union {
        struct { uint32_t conn_slot, conn_gen, req_id; } client;
        struct { ax_ref asker; uint32_t reply_msg; uint64_t tag; } actor;
    } u;
    void *ud; /* for the owner of done (e.g. routing keeps the message for a retry) */
    double t0; /* loop time it was made (latency histograms) */
};

/* ---- the context handed to plugin code ---- */
struct ax_ctx {
    const ax_api *api; /* must stay first: plugin.h reads it */
    struct axd_rt *srv;
    axd_actor *self;
    axd_env *cur;       /* message being handled, NULL in on_start/on_stop */
    int replied;
    const char *fail_reason;
    char fail_buf[128];
    const char *exit_reason; /* the actor stopped itself (ax_stop(self)) */
    char exit_buf[128];
    struct axd_hold *hold;   /* a durable actor's handler: its answers wait for the write (persist.c) */
    int persisted;           /* ax_persist was called by this handler */
};

/* ---- counters shown by `axctl status` ---- */
typedef struct axd_counters {
    uint64_t spawned, stopped, failed, delivered, tells, asks, replies;
    uint64_t ask_timeouts, mailbox_full, no_handler, late_replies;
    uint64_t clients_accepted, clients_refused, bad_frames;
    uint64_t restarts, links, monitors, downs, events, events_lagged, idle_reaped;
    uint64_t route_retries; /* forwarded keyed messages re-sent after EBUSY/ESTALE */
    uint64_t route_held;    /* keyed messages that waited for their shard's next owner */
    uint64_t route_handed_back; /* messages a shard's actors had queued, sent on to its next owner */
    uint64_t route_hold_expired; /* held longer than the hold time: answered EBUSY (or a tell dropped) */
    uint64_t xw_full;    /* items refused by another worker's full inbox (the sender got AX_EFULL) */
    uint64_t xw_dropped; /* cross-worker items for actors gone there, or replies that could not be sent */
    /* durable keyed actors (persist.c) */
    uint64_t state_loads, state_loads_found, state_load_errors, state_load_us_total, state_load_us_max;
    uint64_t state_writes, state_deletes, state_write_bytes, state_write_errors, state_fenced, state_unchanged;
} axd_counters;

/* A lifecycle-event subscriber: an actor (node 0) or a client (AXD_NODE_CLIENT). */
typedef struct axd_event_sub {
    ax_ref who;
    char *filter;     /* actor name to follow, or NULL for all */
    uint64_t lagged;  /* events skipped since the last one delivered */
    uint32_t req_id;  /* clients: the SUBSCRIBE request id, echoed on EVENT frames */
} axd_event_sub;

/* ---- what the core reaches above it: tables the composition root installs ----
 * The core knows neither the client listener, nor the cluster, nor the lease manager;
 * it calls them only through these (each NULL when that layer is absent: a runtime with
 * no peers, no clients, or no lease manager, as tests/test_runtime builds it). */

/* Remote delivery to other nodes (implemented by daemon/cluster/). `to.node` names a peer
 * incarnation. Return values as axd_cluster_tell/ask/monitor (cluster.h). */
typedef struct axd_remote_ops {
    int (*tell)(void *ud, ax_ref to, uint32_t msg, const void *p, size_t n, ax_ref from);
    int (*ask)(void *ud, ax_ref to, uint32_t msg, const void *p, size_t n, struct axd_pending *pd, ax_ref from);
    int (*monitor)(void *ud, ax_ref watcher, ax_ref target, uint64_t mref);
    int (*demonitor_mref)(void *ud, ax_ref watcher, uint64_t mref);
    /* a local actor watched from another node exited */
    void (*deliver_down)(void *ud, ax_ref watcher, uint64_t mref, ax_ref who, const char *reason);
    /* keyed forwarding (used by daemon/keyed/): send a (type, key) message to the node
     * whose lease owner id is `owner`, fenced by epoch; as axd_cluster_keyed_send */
    int (*keyed_send)(void *ud, const char *owner, const char *type, size_t tlen, const char *key, size_t klen,
                      uint64_t epoch, unsigned kflags, const char *msg, size_t mlen, const void *p, size_t n,
                      ax_ref from, struct axd_pending *pd);
    uint32_t (*live_nodes)(void *ud); /* nodes up now, this one included (>= 1) */
    void (*share_epoch)(void *ud, uint32_t shard, uint64_t epoch);
    /* this node released its lease of shard (a drain, a handover): peers may take it now */
    void (*shard_released)(void *ud, uint32_t shard, uint64_t epoch);
    void (*heartbeat_now)(void *ud); /* the drain flag changed: tell the peers now */
    /* A barrier with every peer that is up (a drain before exiting): start it, then poll
     * until done (1) — every such peer answered a PING sent at the start, and a peer
     * answers only after everything it had queued to this node, so whatever it sent
     * before it heard this node's RELEASED frames has arrived. */
    void (*barrier_start)(void *ud);
    int (*barrier_done)(void *ud);
} axd_remote_ops;

/* The client sink (implemented by daemon/front/): refs with node AXD_NODE_CLIENT. */
typedef struct axd_client_sink {
    /* send one event document (or a down) to a client; 0 if sent, -1 if the client is
     * too far behind (force: send anyway) */
    int (*send_event)(void *ud, ax_ref client, uint32_t req_id, const char *json, size_t n, int force);
    int (*alive)(void *ud, ax_ref client);
    void (*flush)(void *ud); /* write out what this loop iteration queued */
    void (*stop)(void *ud);  /* this worker is ending: close its clients (may be NULL) */
} axd_client_sink;

/* The shard gate (implemented by daemon/keyed/): which shard a key is in, may this node
 * serve it now and at which epoch, and forwarding a keyed message to its owner. */
typedef struct axd_shard_gate {
    uint32_t (*shard_of)(void *ud, const char *key, size_t klen);
    /* 0 and the shard epoch, AX_EBUSY (not served here) or AX_ESTALE (msg_epoch is not
     * the current epoch); msg_epoch 0 = not fenced */
    int (*check)(void *ud, const char *key, size_t klen, uint64_t msg_epoch, uint64_t *epoch, const char **why);
    /* is the shard served now, by a fresh monotonic clock read (never a cached time), and
     * at which epoch (*epoch); any worker's thread */
    int (*serving)(void *ud, uint32_t shard, uint64_t *epoch);
    /* drop every shard whose local deadline passed (their actors get a stop) */
    void (*expire)(void *ud);
    uint64_t (*epoch)(void *ud, uint32_t shard); /* the shard's current fencing token */
    /* a keyed message for a shard this node does not serve: to its owner; as axd_route_send */
    int (*forward)(void *ud, const char *type, size_t tlen, const char *key, size_t klen, unsigned kflags,
                   const char *msg, size_t mlen, const void *p, size_t n, ax_ref from, struct axd_pending *pd);
    /* for the cluster: heartbeats carry store_ok; EPOCHS records feed note_epoch */
    int (*store_ok)(void *ud);
    void (*note_epoch)(void *ud, uint32_t shard, uint64_t epoch, const char *from);
    /* for the cluster: this node drains (heartbeats say so); a peer released shard */
    int (*draining)(void *ud);
    void (*released)(void *ud, uint32_t shard, uint64_t epoch, const char *from);
    size_t (*known_epochs)(void *ud, uint32_t from, uint32_t *sh, uint64_t *ep, size_t cap);
    /* Durable keyed actors (persist.c): load or write (del: delete) the state record
     * `name` ("type\0key") of shard, fenced by epoch, from worker rt's thread; done runs
     * later on rt's thread (never inside the call) with AX_OK (found, data, n: a load's
     * record), AX_ESTALE (fenced: the epoch does not hold the shard's lease) or the
     * store's error. 0 when done will run, else the error (done never runs). done with
     * rt NULL: the runtime is gone (teardown): free dud, nothing else. May be NULL (no
     * durable state: nothing is loaded or written). */
    int (*state_load)(void *ud, struct axd_rt *rt, uint32_t shard, uint64_t epoch, const char *name, size_t nlen,
                      void (*done)(struct axd_rt *rt, void *dud, int status, int found, const void *data, size_t n),
                      void *dud);
    int (*state_write)(void *ud, struct axd_rt *rt, uint32_t shard, uint64_t epoch, const char *name, size_t nlen,
                       const void *data, size_t n, int del,
                       void (*done)(struct axd_rt *rt, void *dud, int status, int found, const void *data, size_t n),
                       void *dud);
} axd_shard_gate;

/* ---- message names: one table per node, shared by its workers ----
 * Plugins keep message ids in their state (even in globals), so an id means the same name
 * on every worker. Interning and lookups take the mutex; ids are never removed, and an
 * id's name is written before the count that makes the id valid is published. */
#define AXD_MSG_IDS_MAX 65535
typedef struct axd_msgtab {
    pthread_mutex_t mu;
    axd_hmap names;           /* name -> (uintptr_t)id, under mu */
    char **by_id;             /* AXD_MSG_IDS_MAX + 1 entries, allocated once; index 0 unused */
    _Atomic uint32_t n;       /* ids 1..n are valid */
    _Atomic uint32_t users;   /* runtimes using it; the last one frees it */
} axd_msgtab;

/* Registered names: one table per node too (a name is unique among all workers' actors
 * and found from any worker). Entries hold the actor's ref; under mu. */
typedef struct axd_nametab {
    pthread_mutex_t mu;
    axd_hmap refs;            /* name -> heap ax_ref */
    _Atomic uint32_t users;
} axd_nametab;

/* Is id a message id of this node? */
static inline int axd_msg_valid(const struct axd_msgtab *t, uint32_t id)
{
    return id && id <= atomic_load_explicit(&((struct axd_msgtab *)t)->n, memory_order_acquire);
}

/* ---- the runtime: one event loop's actors ---- */
typedef struct axd_rt {
    struct ev_loop *loop;
    const axd_config *cfg;   /* the node's configuration (owned by the composition root) */
    char node_id[128];
    double started_at;

    axd_slots actors;         /* slot -> axd_actor */
    axd_hmap names;           /* registered name -> axd_actor */
    struct axd_msgtab *msgs; /* message names <-> ids: one table for the node (workers share it) */
    struct axd_nametab *regnames; /* registered name -> ref, for the node (workers share it) */
    axd_hmap types;           /* type name -> axd_type */
    axd_plugin **plugins;
    size_t n_plugins;

    axd_slots pending;        /* slot -> axd_pending */

    axd_actor *ready_head, *ready_tail;
    ev_check run_check;
    ev_idle run_idle;        /* keeps the loop from blocking while actors are ready */

    axd_env *env_pool;
    uint32_t env_pool_len;

    axd_counters ctr;
    /* this worker's latency histograms (metrics): client asks from request to answer, and
     * handler run time (one handler in AXD_HANDLER_SAMPLE timed) */
    axd_histo h_ask, h_handler;
    ax_api api;
    uint64_t next_mref;
    axd_hmap client_mons;     /* mref -> axd_cmon: clients' monitors of other workers' actors */
    axd_pool *pool;           /* the node's offload pool (worker 0's; shared) */
    struct axd_xq *offload_q; /* offload results for this worker's actors (made at its first offload) */
    uint32_t sys_exit_id, sys_down_id, sys_event_id; /* interned "$exit" "$down" "$event" */
    void *state_buf;          /* durable actors' encode scratch, state.max_bytes (persist.c) */

    axd_hmap keyed;           /* "type\0key" -> axd_actor (registry) */
    axd_actor *keyed_head;
    ev_timer reaper;
    uint32_t reaper_ms;

    axd_event_sub *subs;
    size_t n_subs, cap_subs;
    _Atomic uint32_t subs_published; /* n_subs, for other workers (do they send us events?) */

    int stopping;            /* shutting down: exits are final, nothing restarts */

    uint32_t worker;               /* this runtime's index among the node's workers (0 alone) */
    struct axd_workers *group;     /* workers.h; NULL: a runtime alone */

    const axd_remote_ops *remote;   void *remote_ud;
    const axd_client_sink *sink;    void *sink_ud;
    const axd_shard_gate *gate;     void *gate_ud;
} axd_rt;

/* Install (or, with NULL, remove) a layer's table. */
void axd_rt_set_remote(axd_rt *s, const axd_remote_ops *ops, void *ud);
void axd_rt_set_sink(axd_rt *s, const axd_client_sink *ops, void *ud);
void axd_rt_set_gate(axd_rt *s, const axd_shard_gate *ops, void *ud);
/* ---- actor.c: the runtime ---- */
/* A runtime on loop with cfg (which must outlive it) and this node's wire id; no layer
 * above is installed yet. */
void axd_runtime_init(axd_rt *s, struct ev_loop *loop, const axd_config *cfg, const char *node_id);
/* Worker `worker` of first's node (workers.c): on its own loop, sharing first's
 * configuration, node id and message table. */
void axd_runtime_init_worker(axd_rt *s, struct ev_loop *loop, const axd_rt *first, uint32_t worker);
/* A spawn's options as this daemon reads them: the defaults, then what the caller's
 * (maybe older, smaller) struct sets. */
static inline void axd_spawn_opts_read(ax_spawn_opts *dst, const ax_spawn_opts *o)
{
    *dst = (ax_spawn_opts)AX_SPAWN_OPTS_INIT;
    if (o)
        memcpy(dst, o, o->size < sizeof *dst ? o->size : sizeof *dst);
    dst->size = sizeof *dst;
}

/* The ref of local actor a: its slot, with the worker in bits 32..47 of the id. */
static inline ax_ref axd_ref(const axd_rt *s, const struct axd_actor *a)
{
    return (ax_ref){(uint64_t)s->worker << 32 | a->slot, a->gen, 0};
}
void axd_runtime_free(axd_rt *s);
/* Intern a message name (plugins only); 0 on an invalid name. */
uint32_t axd_msg_intern(axd_rt *s, const char *name, size_t len);
/* Look up without interning (client input); 0 if unknown. */
uint32_t axd_msg_lookup(axd_rt *s, const char *name, size_t len);
const char *axd_msg_name(axd_rt *s, uint32_t id);

int axd_actor_spawn(axd_rt *s, const char *type, size_t type_len, const ax_spawn_opts *o,
                   ax_ref *out, const char **why);
/* The same on worker w (a synchronous call when w is another worker; a single-worker
 * type's actors are made on worker 0 whatever w says; w is ignored without workers). */
int axd_actor_spawn_on(axd_rt *s, uint32_t w, const char *type, size_t type_len, const ax_spawn_opts *o,
                       ax_ref *out, const char **why);
axd_actor *axd_actor_get(axd_rt *s, ax_ref r);
axd_actor *axd_actor_by_name(axd_rt *s, const char *name, size_t len); /* this worker's actors only */
/* The ref registered under name on any worker of the node: 0, or AX_ENOTFOUND. */
int axd_name_lookup(axd_rt *s, const char *name, size_t len, ax_ref *out);
/* Enqueue a user message. On success the envelope is owned by the actor; on failure
 * (AX_EFULL, AX_ENOPROC, AX_ENOMSG) the caller still owns it. */
int axd_actor_deliver(axd_rt *s, axd_actor *a, axd_env *e);
/* The same for a local ref of any worker of this node (another worker's actor gets it
 * through that worker's inbox: AX_OK once queued). On an error the caller still owns e. */
int axd_deliver(axd_rt *s, ax_ref to, axd_env *e);
/* Ask the actor to stop (control mailbox); reason copied. */
int axd_actor_stop(axd_rt *s, axd_actor *a, const char *reason);
/* Take out of a's user mailbox, in order, the messages no handler has seen (not
 * replies, signals, I/O events) into out; returns how many (the caller owns them). */
uint32_t axd_actor_take_unhandled(axd_actor *a, axd_mq *out);
/* Does the actor's type handle message id? */
int axd_actor_handles(const axd_actor *a, uint32_t id);

axd_env *axd_env_new(axd_rt *s, size_t payload_len);
void axd_env_free(axd_rt *s, axd_env *e);

/* Pending asks: create one (timer armed), complete it (exactly once). */
axd_pending *axd_pending_new(axd_rt *s, uint32_t timeout_ms, axd_pending_done done);
void axd_pending_complete(axd_rt *s, uint32_t slot, uint32_t gen, int status, const void *p, size_t n);

/* JSON documents for the control plane (cJSON; caller frees with cJSON_Delete). */
struct cJSON *axd_runtime_status_json(axd_rt *s);
/* What the metrics endpoint needs of every worker: histograms merged, mailboxes summed. */
typedef struct axd_rt_metrics {
    axd_histo h_ask, h_handler;
    uint64_t mailbox_messages; /* queued in every actor's mailboxes */
    uint32_t mailbox_max;      /* the deepest mailbox */
} axd_rt_metrics;
void axd_runtime_metrics(axd_rt *s, axd_rt_metrics *out);
struct cJSON *axd_runtime_actors_json(axd_rt *s); /* the first page, no filters */
/* One page of the ACTORS document: actors from slot q->cursor on that match q's filters,
 * at most q->limit (0: AXD_ACTORS_PAGE) and about max_bytes of JSON (0: half of
 * client.max_frame), and "next": the cursor of the next page (0 = no more). q NULL: no
 * filters. The daemon never builds a document larger than a frame. */
#define AXD_ACTORS_PAGE 1000
#define AXD_ACTORS_PAGE_MAX 10000
struct cJSON *axd_runtime_actors_page(axd_rt *s, const ax_actors_query *q, size_t max_bytes);
/* Add a keyed actor's key to a document: "key" when it is valid UTF-8 without control
 * characters, else "key_hex" (keys are bytes; JSON documents must stay valid). */
void axd_json_add_key(struct cJSON *o, const axd_actor *a);

/* ---- supervisor.c: restarts, links, monitors ---- */
int axd_sup_link(axd_rt *s, axd_actor *a, ax_ref other, int *noproc);
int axd_sup_unlink(axd_rt *s, axd_actor *a, ax_ref other);
/* Monitor target on behalf of watcher (an actor ref or a client ref). */
int axd_sup_monitor(axd_rt *s, ax_ref watcher, ax_ref target, uint64_t *mref);
int axd_sup_demonitor(axd_rt *s, ax_ref watcher, uint64_t mref, int flush);
/* Deliver a down to a watcher (local actor, client or remote). */
void axd_runtime_deliver_down(axd_rt *s, ax_ref watcher, uint64_t mref, ax_ref who, const char *reason);
/* A client went away: remove the monitors it held on local actors. */
void axd_monitors_drop_watcher(axd_rt *s, ax_ref watcher);
/* Erlang's exit/2: an exit signal with reason from `from` (AX_REF_NONE: a client) to a.
 * "kill": untrappable, a ends with "killed" (restart policy applies); a trapping a gets
 * "$exit"; "normal" to a non-trapping a is ignored; any other reason ends a (restart
 * policy applies). */
int axd_sup_exit(axd_rt *s, ax_ref from, axd_actor *a, const char *reason);
int axd_reason_is_normal(const char *r);

/* ---- registry.c: keyed actors and the idle reaper ---- */
int axd_registry_get_or_spawn(axd_rt *s, const char *type, size_t tlen, const char *key, size_t klen,
                             const ax_spawn_opts *o, int spawn, ax_ref *out, const char **why);
/* get_or_spawn (spawn=1, "ensure") or lookup (spawn=0, "direct") for a routed message
 * carrying msg_epoch: refuses with AX_EBUSY / AX_ESTALE when the shard is not ours. */
int axd_registry_route(axd_rt *s, const char *type, size_t tlen, const char *key, size_t klen, uint64_t msg_epoch,
                      int spawn, ax_ref *out, const char **why);
void axd_registry_remove(axd_rt *s, axd_actor *a);
void axd_registry_init(axd_rt *s);
void axd_registry_free(axd_rt *s);

/* ---- events.c: the lifecycle stream ---- */
void axd_event_emit(axd_rt *s, axd_actor *a, const char *event, const char *reason);
int axd_events_subscribe(axd_rt *s, ax_ref who, const char *filter, size_t flen, uint32_t req_id);
int axd_events_unsubscribe(axd_rt *s, ax_ref who);
void axd_events_free(axd_rt *s);
/* ---- actor.c: running the runtime (the loop does it; tests step it) ---- */
void axd_runtime_run(axd_rt *s);
void axd_runtime_stop_all(axd_rt *s, const char *reason);
axd_actor *axd_actor_get_any(axd_rt *s, ax_ref r); /* also RESTARTING/STOPPING */

/* ---- plugin_loader.c ---- */
/* Load a plugin by path (or by name under plugins.dir). On failure nothing stays
 * registered or mapped and *why says what was wrong (static or in errbuf). */
int axd_plugin_load(axd_rt *s, const char *path, axd_plugin **out, char *err, size_t errlen);
/* A load requested by a client at run time (PLUGIN_LOAD): allowed by plugins.runtime_load
 * for client_uid, only from plugins.dir or plugins.trusted_dirs (a relative path under
 * plugins.dir), directory and file owned by root or the daemon's user and writable by
 * nobody else; else AX_EPERM saying why, and nothing changes. */
int axd_plugin_load_runtime(axd_rt *s, const char *path, uid_t client_uid, axd_plugin **out, char *err,
                           size_t errlen);
int axd_plugin_unload(axd_rt *s, const char *name, char *err, size_t errlen);
void axd_plugins_unload_all(axd_rt *s);
struct cJSON *axd_plugin_json(const axd_plugin *p);
struct cJSON *axd_plugins_json(axd_rt *s);
/* Register a type (plugin may be NULL for built-ins). */
int axd_type_register(axd_rt *s, const ax_actor_type *d, axd_plugin *p, axd_type **out, char *err, size_t errlen);
void axd_type_unregister(axd_rt *s, axd_type *t);

#endif
