/* The keyed layer as the rest of the daemon sees it: the lease manager of this node's
 * shards over a lease store, and routing of (type, key) messages on top of it. It
 * implements the core's shard gate (installed into the runtime by axd_route_start) and
 * forwards messages for shards held elsewhere through the core's remote table. Uses the
 * core and util only. */
#ifndef AXD_KEYED_H
#define AXD_KEYED_H
#include <ev.h>
#include <stddef.h>
#include <stdint.h>

#include "core.h"

struct cJSON;
struct axd_lease_store;
struct axd_shards;
struct axd_route_shard;

/* Durable state operations of one shard seen by this node (state.c). */
typedef struct axd_route_state_stat {
    uint64_t loads, writes, fenced, errors;
    int64_t records; /* records the store held for the shard at its last answer; -1 unknown */
} axd_route_state_stat;

typedef struct axd_keyed {
    axd_rt *rt;                         /* the runtime whose keyed actors it gates */
    struct ev_loop *loop;
    const axd_config *cfg;
    struct axd_shards *shards;          /* lease manager; NULL before start */
    struct axd_lease_store *lease_store;
    struct axd_lease_store *state_store; /* state.store = redis: durable state there; NULL: in lease_store */
    int lease_store_borrowed;          /* axd_route_start_store: the caller frees the store */
    ev_timer shards_grace;
    int shards_stopped;
    int stopping;
    struct axd_route_shard *route_shards; /* per shard: cached owner, waiting messages */
    char route_owner[256];               /* this node's lease owner id */
    ev_timer membership;
    double store_down_since;             /* monotonic time the store connection was lost; 0 = up */
    int workers_attached;                /* workers 1..n-1 of rt's group fence through us */
    int freeing;                         /* axd_route_free runs: state operations are canceled */
    axd_route_state_stat *state_stats;   /* per shard (worker 0's: the store's callbacks) */
    /* per shard, any worker's thread: state operations sent and not answered yet, and
     * stops of its actors sent to other workers and not done yet; a shard's release
     * waits until both are 0 (axd_route_release_ready) */
    _Atomic uint32_t *state_inflight, *stops_pending;
    /* routing queues held while their shard has no owner that takes them (routing.c) */
    ev_timer route_retry;
    uint32_t *parked, n_parked;          /* shards to look up again at the next retry */
    uint32_t route_vias;                 /* forwarded asks waiting for the owner's answer */
    uint32_t handback_pending;           /* handed-back messages not delivered yet */
    axd_histo h_hold;                    /* how long held messages waited for an owner (seconds) */
    /* drain (axd_route_drain) */
    int draining, drain_running, drain_quiesce;
    int drain_barrier;         /* quiesce: 0 none yet, 1 started (at drain_barrier_t0), 2 done */
    double drain_barrier_t0;
    ev_timer drain_w;
    double drain_t0, drain_deadline;
    uint32_t drain_shards;
    uint64_t drain_handovers0, drain_handed_back0;
    void (*drain_done)(void *ud, struct cJSON *result);
    void *drain_ud;
    struct cJSON *drain_last;            /* the result of the last drain */
} axd_keyed;

/* Start the lease manager for rt (shards.count, lease.* of rt->cfg) and install the
 * shard gate; k is the caller's (zeroed by this call). */
int axd_route_start(axd_keyed *s, axd_rt *rt, char *err, size_t errlen);
/* Start routing over a store the caller owns (in-process tests: several nodes sharing one
 * memory store): borrowed, it must outlive axd_route_free, which does not free it. */
int axd_route_start_store(axd_keyed *s, axd_rt *rt, struct axd_lease_store *store, char *err, size_t errlen);
int axd_route_stop(axd_keyed *s); /* 1: keep the loop running until the releases finish */
/* rt runs workers (workers.h): give workers 1..n-1 the shard gate, so that keyed actors
 * on their home worker are fenced from its thread (published {epoch, deadline}); a lost
 * shard's actors are stopped on every worker. From worker 0, after the group started. */
int axd_route_attach_workers(axd_keyed *s);
void axd_route_free(axd_keyed *s);  /* also a keyed layer never started (zeroed) */
uint32_t axd_route_shard_of(axd_keyed *s, const char *key, size_t klen);
/* May this node deliver to key's actor now? 0 and the shard epoch, AX_EBUSY (not served
 * here) or AX_ESTALE (msg_epoch is not the current epoch); msg_epoch 0 = not fenced. */
int axd_route_check(axd_keyed *s, const char *key, size_t klen, uint64_t msg_epoch, uint64_t *epoch, const char **why);
/* A keyed message for a shard this node does not serve: forward it to the shard's
 * owner (looked up in the lease store, cached briefly). kflags: AX_PK_DIRECT, AX_PK_ASK
 * (proto/peer.h). pd NULL: fire-and-forget; else completed exactly once (ask: reply;
 * tell: empty OK once the owner queued it; or an error: EBUSY when no node holds the
 * shard now, ESTALE, ENOCONN...). An error return leaves pd untouched. */
int axd_route_send(axd_keyed *s, const char *type, size_t tlen, const char *key, size_t klen, unsigned kflags,
                  const char *msg, size_t mlen, const void *p, size_t n, ax_ref from, axd_pending *pd);
struct cJSON *axd_route_shards_json(axd_keyed *s, int all);
void axd_route_status(axd_keyed *s, struct cJSON *doc); /* adds "shards" and "lease_store" */
/* Does this node reach its lease store (connected, or lost for less than one renew
 * interval)? 1 without a lease manager. Sent in heartbeats: peers count a node in the
 * fair share only while it does. */
int axd_route_store_ok(axd_keyed *s);
/* Epochs never go backwards: a peer knows `epoch` for shard (EPOCHS record). */
void axd_route_note_epoch(axd_keyed *s, uint32_t shard, uint64_t epoch, const char *from);
/* The highest epoch known per shard, for shards >= from where one is known (ascending):
 * up to cap pairs; returns how many. */
size_t axd_route_known_epochs(axd_keyed *s, uint32_t from, uint32_t *sh, uint64_t *ep, size_t cap);

/* Drain: take no shard, hand every held one over to the others (their asks and queued
 * messages go to the next owners), tell the peers (heartbeats) and, once done or after
 * timeout_ms, call done with the result document (borrowed: copy what you keep). quiesce:
 * also wait until nothing this node routes is queued or in flight (before an exit).
 * AX_EINVAL without a lease manager, AX_EALREADY while one runs. The node stays drained
 * (no shard) until axd_route_undrain. */
typedef void (*axd_route_drain_done)(void *ud, struct cJSON *result);
int axd_route_drain(axd_keyed *s, uint32_t timeout_ms, int quiesce, axd_route_drain_done done, void *ud);
int axd_route_undrain(axd_keyed *s);
void axd_route_drain_status(axd_keyed *s, struct cJSON *doc); /* adds "drain" */

/* state.c: may the lease of shard be released (no state work of it on its way)? */
int axd_route_release_ready(void *ud, uint32_t shard);
/* state.c: the shard gate's state_load / state_write (core.h), from any worker. */
int axd_route_state_load(void *ud, axd_rt *rt, uint32_t shard, uint64_t epoch, const char *name, size_t nlen,
                         void (*done)(axd_rt *rt, void *dud, int status, int found, const void *data, size_t n),
                         void *dud);
int axd_route_state_write(void *ud, axd_rt *rt, uint32_t shard, uint64_t epoch, const char *name, size_t nlen,
                          const void *data, size_t n, int del,
                          void (*done)(axd_rt *rt, void *dud, int status, int found, const void *data, size_t n),
                          void *dud);

#endif
