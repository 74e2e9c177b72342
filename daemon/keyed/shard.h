/* Shards and the lease manager. Keys hash to a fixed number of shards with a stable hash
 * (the same on every node, every build, every run); a node serves a shard only while it
 * holds the shard's lease in a lease store (lease.h). The manager acquires up to a fair
 * share of the shards, renews them well before they expire, stops serving a shard (the
 * on_lost callback) at a local deadline that always falls before the store's expiry, and
 * releases on shutdown or handover. Everything runs on one libev loop.
 * See proto/PROTOCOL.md, "Leases and shards". */
#ifndef AXD_SHARD_H
#define AXD_SHARD_H

#include <ev.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "shard_reasons.h"
#include "lease.h"

#define AXD_SHARDS_MAX 65536u

/* FNV-1a, 64 bit, over len bytes. */
uint64_t axd_fnv1a64(const void *p, size_t len);
/* The shard of a key: h = FNV-1a-64(key); (uint32)(h ^ (h >> 32)) % n_shards.
 * Independent of the process hash seed; test vectors in PROTOCOL.md. n_shards >= 1. */
uint32_t axd_shard_of(const char *key, size_t len, uint32_t n_shards);

/* Per-shard state as the manager sees it. */
enum axd_shard_state {
    AXD_SHARD_FREE = 0,      /* not held by this node (another may hold it: see owner) */
    AXD_SHARD_ACQUIRING = 1, /* acquire sent, no answer yet; not served */
    AXD_SHARD_OWNED = 2,     /* held and served until the local deadline */
    AXD_SHARD_RELEASING = 3, /* no longer served; release sent */
};
const char *axd_shard_state_name(int st); /* "free", "acquiring", "owned", "releasing" */

typedef struct axd_shards axd_shards;

typedef struct axd_shards_cfg {
    const char *node;             /* owner id written to the store (copied): use the wire id
                                   * "name@boot-<hex>" so a restarted node is a new owner */
    uint32_t n_shards;            /* 1..AXD_SHARDS_MAX */
    uint32_t ttl_ms;              /* lease time to live in the store */
    uint32_t renew_interval_ms;   /* renew this long after the last successful acquire/renew */
    uint32_t safety_margin_ms;    /* stop serving this long before the lease can expire */
    uint32_t acquire_interval_ms; /* poll for free shards; 0 = renew_interval_ms */
    uint32_t max_inflight;        /* acquires in flight at once; 0 = 256 */
} axd_shards_cfg;

/* Reasons passed to on_lost: AXD_SHARD_LOST, _HANDOVER, _SHUTDOWN, _REGRESSED (core.h: they are the
 * reasons a keyed actor stops with, which the core tells apart from failures). */

typedef struct axd_shards_cbs {
    /* Start serving shard at epoch (fencing token for routed messages). */
    void (*on_acquired)(void *ud, uint32_t shard, uint64_t epoch);
    /* Stop serving shard now: when this returns nothing of the shard may be handled any
     * more (stop its actors with reason `reason`; routing refuses it). The manager may
     * release the lease right after, letting another node take the shard. */
    void (*on_lost)(void *ud, uint32_t shard, uint64_t epoch, const char *reason);
    /* axd_shards_stop finished: every release answered (or failed). May be NULL. */
    void (*on_stopped)(void *ud);
    /* May shard's lease be released now (after on_lost)? 0 holds the release back (the
     * shard stays unserved, "releasing") until it says 1, polled every millisecond, or
     * until the shard's local deadline. For work of the shard still on its way to the
     * store (durable state writes), which a release before it would get refused. May be
     * NULL (release at once). */
    int (*release_ready)(void *ud, uint32_t shard);
    /* The store confirmed the release of shard at epoch (may be NULL): peers may take it. */
    void (*on_released)(void *ud, uint32_t shard, uint64_t epoch);
    void *ud;
} axd_shards_cbs;

/* Check lease/shard settings of a config: renew_interval + safety_margin < ttl.
 * 0, or AX_ECONFIG with a message naming the keys. */
int axd_shards_config_check(const axd_config *c, char *err, size_t errlen);
/* Fill cfg from config (node is borrowed: keep it alive until axd_shards_new returns). */
void axd_shards_cfg_from_config(axd_shards_cfg *cfg, const axd_config *c, const char *node);
/* Create the store that config names ([lease] store = memory | redis). NULL + err on a bad
 * configuration. Caller frees with axd_lease_store_free, after the manager. */
axd_lease_store *axd_lease_store_from_config(struct ev_loop *loop, const axd_config *c, char *err, size_t errlen);

/* Create a manager over store (borrowed: it must outlive the manager, see axd_shards_free).
 * Nothing happens before axd_shards_start. NULL + err on a bad cfg. */
axd_shards *axd_shards_new(struct ev_loop *loop, axd_lease_store *store, const axd_shards_cfg *cfg,
                         const axd_shards_cbs *cbs, char *err, size_t errlen);
/* Start acquiring (asynchronously, from the loop). */
void axd_shards_start(axd_shards *m);
/* Live nodes in the cluster, this one included (>= 1; 0 is taken as 1). The fair share is
 * ceil(n_shards / n): shards above it are handed over, below it are acquired. */
void axd_shards_set_live_nodes(axd_shards *m, uint32_t n);
/* Drain (on): the share becomes none, every owned shard is handed over (on_lost
 * "handover", released once release_ready says so) and none is acquired until the drain
 * ends (off: the share follows set_live_nodes again). */
void axd_shards_drain(axd_shards *m, int on);
int axd_shards_draining(const axd_shards *m);
/* Releases not answered by the store yet (held back or in flight). */
uint32_t axd_shards_releasing(const axd_shards *m);
/* Handovers done so far: count, mean and longest time from the moment a shard stopped
 * being served here to the store's answer to its release, milliseconds. */
void axd_shards_handovers(const axd_shards *m, uint64_t *n, double *avg_ms, double *max_ms);
/* The same as a histogram (seconds), for the metrics. */
struct axd_histo;
const struct axd_histo *axd_shards_handover_histo(const axd_shards *m);
/* Another node released shard: acquire it now if this node is below its share (not at
 * the next round). */
void axd_shards_kick(axd_shards *m, uint32_t shard);
/* Stop acquiring, stop serving every shard (on_lost "shutdown") and release them;
 * on_stopped is called (from the loop) once nothing is in flight. */
void axd_shards_stop(axd_shards *m);
/* Free. Does not call on_lost (call axd_shards_stop first). Requests still in flight keep
 * a part of the manager alive until the store answers or is freed: free the manager
 * before the store. Accepts NULL. Must not be called from inside a manager callback. */
void axd_shards_free(axd_shards *m);

/* Does this node serve shard now? 1 and *epoch (if non-NULL), else 0. Checks the local
 * deadline itself against a fresh CLOCK_MONOTONIC read, so it is exact even between timer
 * runs and after a stall (the loop's cached time is never used for it). */
int axd_shards_serving(axd_shards *m, uint32_t shard, uint64_t *epoch);
/* The same at a monotonic time the caller has just read (axd_mono_now). Both, and
 * axd_shards_epoch, may be called from any thread (workers): they read the {epoch,
 * deadline} the manager publishes under a sequence lock at every change. */
int axd_shards_serving_at(axd_shards *m, uint32_t shard, double now, uint64_t *epoch);
/* Another member knows epoch for shard (heartbeat-time sharing, PROTOCOL.md "Epochs
 * never go backwards"): remembered as the least epoch the next acquisition must exceed;
 * if this node holds the shard at a lower epoch, the store has regressed and it stops
 * serving it at once (on_lost "store_regressed"). from: for the log. */
void axd_shards_note_epoch(axd_shards *m, uint32_t shard, uint64_t epoch, const char *from);
/* The highest epoch known per shard, for shards >= from where one is known, ascending:
 * up to cap pairs into sh/ep; returns how many. */
size_t axd_shards_known_epochs(const axd_shards *m, uint32_t from, uint32_t *sh, uint64_t *ep, size_t cap);
uint64_t axd_shards_regressions(const axd_shards *m);

/* The epoch this node holds shard at (owned, whatever its deadline), else 0: the
 * fencing token of a keyed actor's handler that began before the deadline. */
uint64_t axd_shards_epoch(const axd_shards *m, uint32_t shard);
/* Drop now (on_lost "lease_lost") every owned shard whose local deadline the clock has
 * passed, without waiting for the manager's timer: for a caller that found a deadline
 * passed (after a stall) and must not run anything of those shards. Returns how many. */
uint32_t axd_shards_expire(axd_shards *m);
/* Fencing check for a routed message carrying msg_epoch (0 = not fenced): 0 to accept,
 * AX_EBUSY if this node does not serve the shard (sender re-resolves), AX_ESTALE if the
 * epoch is not the shard's current one here. */
int axd_shards_fence(axd_shards *m, uint32_t shard, uint64_t msg_epoch);
/* The same at monotonic time now, giving the shard's epoch on success (epoch may be
 * NULL). An admission check: the handler is checked again, precisely, before it runs. */
int axd_shards_fence_at(axd_shards *m, uint32_t shard, uint64_t msg_epoch, double now, uint64_t *epoch);

typedef struct axd_shard_info {
    int state;             /* enum axd_shard_state */
    int renewing;          /* a renew is in flight */
    uint64_t epoch;        /* owned: ours; else the highest epoch seen */
    const char *owner;     /* owned: this node; else the holder last seen, "" if unknown */
    int64_t expires_in_ms; /* owned: time to the local deadline; free: holder's estimated
                            * remaining ttl when last seen, -1 unknown */
} axd_shard_info;
/* 0 and *out filled (strings valid until the next manager call), or AX_EINVAL. */
int axd_shards_info(axd_shards *m, uint32_t shard, axd_shard_info *out);
uint32_t axd_shards_count_owned(const axd_shards *m);
uint32_t axd_shards_target(const axd_shards *m);

/* `axctl shards` document: {"node","n_shards","live_nodes","target","owned","stopping",
 * "store":{"type","conn","last_error","ops","errors","reconnects"},"shards":[{"shard",
 * "state","owner","epoch","expires_in_ms","renewing"}]} listing shards that are not
 * free, or every shard if all. Caller frees with cJSON_Delete. */
struct cJSON *axd_shards_json(axd_shards *m, int all);

#endif
