/* The lease store interface: where a node records that it owns a shard. Two stores
 * implement it: memory (lease_mem.c: one process, shareable by several in-process nodes)
 * and redis (lease_redis.c: hiredis on the libev loop, atomic Lua scripts). The shard
 * manager (shard.h) drives a store; nothing else should. See PROTOCOL.md, "Leases and
 * shards", for the semantics every store must keep. */
#ifndef AXD_LEASE_H
#define AXD_LEASE_H

#include <ev.h>
#include <stdint.h>

#include "axactor/errors.h"

#define AXD_LEASE_NODE_MAX 255u /* longest owner id, bytes */
/* Epochs stay below 2^53 so Lua (doubles) compares them exactly. */
#define AXD_LEASE_EPOCH_MAX ((UINT64_C(1) << 53) - 1)

typedef struct axd_lease_store axd_lease_store;

/* The outcome of one operation, valid only during the callback (copy what you keep).
 *   status  AX_OK: the store answered; the fields below hold its answer.
 *           Otherwise the operation's effect is unknown (it may or may not have been
 *           applied): AX_ECONN (not connected / connection lost), AX_ETIMEDOUT (no reply
 *           within the store's request timeout), AX_EAUTH (authentication failed),
 *           AX_EPROTO (a reply of the wrong shape), AX_ECANCELED (store freed).
 *   granted acquire: 1 = the caller now holds the shard at `epoch`; 0 = held by `owner`.
 *           renew: 1 = extended; 0 = lost (not the holder at that epoch, or expired).
 *           release: 1 = released; 0 = was not the holder at that epoch (nothing done).
 *           get: 1 if the shard is held by someone now.
 *   owner   acquire refused / get: the holder ("" = held by no node: quarantined after
 *           the store lost its data, or not held at all (get, granted 0)).
 *   epoch   acquire granted: the new epoch; refused / get: the holder's epoch, or for a
 *           free shard (get) the last epoch granted (0 = never).
 *   ttl_ms  acquire: the holder's remaining time (granted: the requested ttl);
 *           get: remaining time, -1 none / unknown.
 *   behind  acquire: see the field. */
typedef struct axd_lease_result {
    int status;
    int granted;
    const char *owner;
    size_t owner_len;
    uint64_t epoch;
    int64_t ttl_ms;
    int behind; /* acquire refused: 1 when this very call found the shard's epoch counter
                 * below min_epoch (the store went back) and quarantined the shard at
                 * min_epoch; 0 for a quarantine that was there already */
} axd_lease_result;

/* Called exactly once per accepted operation, always from the loop (never from inside
 * the call that started it). shard is the operation's shard. */
typedef void (*axd_lease_cb)(void *ud, uint32_t shard, const axd_lease_result *r);

/* Connection state for status output. Strings are static or owned by the store and
 * valid until its next operation or loop iteration. */
typedef struct axd_lease_state {
    const char *store;       /* "memory" or "redis" */
    const char *conn;        /* "connected", "connecting", "reconnecting" */
    const char *last_error;  /* "" if none since start */
    uint64_t ops, errors, reconnects;
} axd_lease_state;

/* Keyed actors' state (PROTOCOL.md, "Durable keyed actors"), kept by the same store,
 * one record per (shard, name) where name is the actor's "type\0key". Every operation
 * is fenced: the store applies it only while `epoch` is the epoch of a live lease of the
 * shard (any owner's: epochs are granted once), atomically with that check.
 *   status  AX_OK: done (load: found says whether a record exists, data/len are it);
 *           AX_ESTALE: refused, the epoch does not hold the shard now (nothing changed);
 *           else unknown, as for leases (AX_ECONN, AX_ETIMEDOUT, AX_EIO, AX_ECANCELED...).
 *   records the shard's record count after the operation (-1 unknown). */
typedef struct axd_state_result {
    int status;
    int found;
    const void *data;
    size_t len;
    int64_t records;
} axd_state_result;
typedef void (*axd_state_cb)(void *ud, uint32_t shard, const axd_state_result *r);
#define AXD_STATE_NAME_MAX (255u + 1u + 1024u) /* "type\0key": AX_NAME_MAX + 1 + AX_KEY_MAX */
#define AXD_STATE_VALUE_MAX (64u << 20)             /* the largest record state.max_bytes allows */

/* Cluster membership kept in the same store (the composition root's members.c): each
 * node puts a record under its name with a ttl it renews; listing gives the live ones.
 * A record is an opaque document (JSON) of at most AXD_MEMBER_RECORD_MAX bytes. */
#define AXD_MEMBER_RECORD_MAX 4096
typedef struct axd_member {
    const char *name;
    size_t name_len;
    const char *record;
    size_t record_len;
} axd_member;
/* status as for leases; n members (valid during the callback) when AX_OK. */
typedef void (*axd_member_cb)(void *ud, int status, const axd_member *m, size_t n);

typedef struct axd_lease_ops {
    /* Each returns 0 when the callback will be called, or a negative AX_E* (AX_EINVAL
     * for a bad argument: shard out of range, node empty / too long / containing NUL,
     * ttl 0; AX_ECANCELED after free began) and then the callback is never called.
     * acquire: min_epoch is the highest epoch the caller has seen for the shard; a
     * granted epoch is always above it (so epochs never go backwards, even if the store
     * lost its data). Re-acquiring a shard the store says `node` holds is granted with a
     * new epoch. */
    int (*acquire)(axd_lease_store *st, uint32_t shard, const char *node, uint32_t ttl_ms, uint64_t min_epoch,
                   axd_lease_cb cb, void *ud);
    int (*renew)(axd_lease_store *st, uint32_t shard, const char *node, uint64_t epoch, uint32_t ttl_ms,
                 axd_lease_cb cb, void *ud);
    int (*release)(axd_lease_store *st, uint32_t shard, const char *node, uint64_t epoch, axd_lease_cb cb,
                   void *ud);
    int (*get)(axd_lease_store *st, uint32_t shard, axd_lease_cb cb, void *ud);
    /* As get, with the holder's remaining time even where that costs another round trip
     * (etcd); NULL: get gives it already. For the manager's survey; get is for routing. */
    int (*get_with_ttl)(axd_lease_store *st, uint32_t shard, axd_lease_cb cb, void *ud);
    void (*state)(axd_lease_store *st, axd_lease_state *out);
    /* Keyed state (see axd_state_result): load the record `name`, or write it (data, n;
     * del: delete it instead). Same return and callback rules as the lease operations
     * (AX_EINVAL: shard out of range, epoch 0, name empty or too long, value too long).
     * Operations are applied in the order they were called. */
    int (*state_load)(axd_lease_store *st, uint32_t shard, uint64_t epoch, const char *name, size_t nlen,
                      axd_state_cb cb, void *ud);
    int (*state_write)(axd_lease_store *st, uint32_t shard, uint64_t epoch, const char *name, size_t nlen,
                       const void *data, size_t n, int del, axd_state_cb cb, void *ud);
    /* Membership: put (or renew) name's record for ttl_ms, delete it, list the live ones.
     * Same return and callback rules (AX_EINVAL: name not 1..255 bytes or with NUL, a
     * record too long, ttl 0). */
    int (*member_put)(axd_lease_store *st, const char *name, const char *record, size_t len, uint32_t ttl_ms,
                      axd_member_cb cb, void *ud);
    int (*member_del)(axd_lease_store *st, const char *name, axd_member_cb cb, void *ud);
    int (*member_list)(axd_lease_store *st, axd_member_cb cb, void *ud);
    /* Completes every pending operation with AX_ECANCELED (callbacks run inside free),
     * then frees. Must not be called from inside one of the store's callbacks. */
    void (*free)(axd_lease_store *st);
} axd_lease_ops;

struct axd_lease_store {
    const axd_lease_ops *ops;
    uint32_t n_shards; /* valid shards: 0 .. n_shards-1 */
};

static inline int axd_lease_acquire(axd_lease_store *st, uint32_t shard, const char *node, uint32_t ttl_ms,
                                   uint64_t min_epoch, axd_lease_cb cb, void *ud)
{
    return st->ops->acquire(st, shard, node, ttl_ms, min_epoch, cb, ud);
}
static inline int axd_lease_renew(axd_lease_store *st, uint32_t shard, const char *node, uint64_t epoch,
                                 uint32_t ttl_ms, axd_lease_cb cb, void *ud)
{
    return st->ops->renew(st, shard, node, epoch, ttl_ms, cb, ud);
}
static inline int axd_lease_release(axd_lease_store *st, uint32_t shard, const char *node, uint64_t epoch,
                                   axd_lease_cb cb, void *ud)
{
    return st->ops->release(st, shard, node, epoch, cb, ud);
}
static inline int axd_lease_get(axd_lease_store *st, uint32_t shard, axd_lease_cb cb, void *ud)
{
    return st->ops->get(st, shard, cb, ud);
}
static inline int axd_lease_get_with_ttl(axd_lease_store *st, uint32_t shard, axd_lease_cb cb, void *ud)
{
    return st->ops->get_with_ttl ? st->ops->get_with_ttl(st, shard, cb, ud) : st->ops->get(st, shard, cb, ud);
}
static inline void axd_lease_store_state(axd_lease_store *st, axd_lease_state *out) { st->ops->state(st, out); }
/* Accepts NULL. */
static inline void axd_lease_store_free(axd_lease_store *st)
{
    if (st)
        st->ops->free(st);
}

static inline int axd_state_load(axd_lease_store *st, uint32_t shard, uint64_t epoch, const char *name,
                                 size_t nlen, axd_state_cb cb, void *ud)
{
    return st->ops->state_load(st, shard, epoch, name, nlen, cb, ud);
}
static inline int axd_state_write(axd_lease_store *st, uint32_t shard, uint64_t epoch, const char *name,
                                  size_t nlen, const void *data, size_t n, int del, axd_state_cb cb, void *ud)
{
    return st->ops->state_write(st, shard, epoch, name, nlen, data, n, del, cb, ud);
}

static inline int axd_member_put(axd_lease_store *st, const char *name, const char *record, size_t len,
                                 uint32_t ttl_ms, axd_member_cb cb, void *ud)
{
    return st->ops->member_put(st, name, record, len, ttl_ms, cb, ud);
}
static inline int axd_member_del(axd_lease_store *st, const char *name, axd_member_cb cb, void *ud)
{
    return st->ops->member_del(st, name, cb, ud);
}
static inline int axd_member_list(axd_lease_store *st, axd_member_cb cb, void *ud)
{
    return st->ops->member_list(st, cb, ud);
}

/* Checks shared by the stores: 0 or AX_EINVAL. */
int axd_lease_check_node(const char *node);
int axd_state_check(const axd_lease_store *st, uint32_t shard, uint64_t epoch, size_t nlen, size_t n);

/* ---- memory store (lease_mem.c) ---- */
/* A store in this process, on loop; time is ev_now(loop). Several managers on the same
 * loop may share it (in-process multi-node tests). Caller frees with axd_lease_store_free. */
axd_lease_store *axd_lease_mem_new(struct ev_loop *loop, uint32_t n_shards);
/* Fault injection for tests: while cut, operations from `node` fail with AX_ECONN and
 * change nothing (node NULL: every node). */
void axd_lease_mem_cut(axd_lease_store *st, const char *node, int cut);
/* Fault injection for tests: replies are delivered delay_ms after the operation was
 * applied (the store applies it at once). */
void axd_lease_mem_set_delay(axd_lease_store *st, uint32_t delay_ms);

/* ---- redis store (lease_redis.c) ---- */
typedef struct axd_lease_redis_cfg {
    const char *host;           /* IP address (a host name is resolved blocking, at each connect) */
    uint16_t port;
    const char *password;       /* NULL or "" = no AUTH */
    uint32_t db;                /* SELECT db when non-zero */
    const char *prefix;         /* key prefix, e.g. "axactor:" */
    uint32_t connect_timeout_ms; /* also the bound on one request's round trip */
    int state_fences;           /* a state store of its own (state.store = redis): state operations
                                 * are fenced by per-shard epoch fences, not lease records */
} axd_lease_redis_cfg;

/* Creates the store and starts connecting (never blocks on the network). Strings are
 * copied. NULL + err on a bad configuration. Caller frees with axd_lease_store_free. */
/* The Redis store's decoding of one script reply, for the fuzz target (fuzz/fuzz_redis.c):
 * op 0..9 = acquire, renew, release, get, state load, state write, a group commit of
 * state writes, member put, member delete, member list; 0 with res (ops 0..3) or sr
 * (4..9) filled, or an error with *why. reply is a hiredis redisReply. */
struct redisReply;
struct redisReader;
/* Bound a hiredis reader as the store's connections are: a reply announcing more than
 * 2^18 elements fails the reader instead of allocating them (fuzz target, connections). */
void axd_lease_redis_bound_reader(struct redisReader *r);
int axd_lease_redis_decode(int op, const struct redisReply *reply, axd_lease_result *res, axd_state_result *sr,
                           const char **why);
#define AXD_LEASE_REDIS_OPS 10 /* and 7..9: member put, delete, list */

axd_lease_store *axd_lease_redis_new(struct ev_loop *loop, uint32_t n_shards, const axd_lease_redis_cfg *cfg,
                                   char *err, size_t errlen);

/* ---- etcd store (lease_etcd.c) ----
 * etcd v3's JSON gateway over HTTP (libcurl multi on the loop): leases, membership and
 * keyed state (fenced by the lease key's epoch in one transaction). Strings are copied. */
typedef struct axd_lease_etcd_cfg {
    const char *endpoints;   /* "http://127.0.0.1:2379,http://10.0.0.2:2379" (https:// with TLS) */
    const char *prefix;      /* key prefix, default "axactor/" */
    const char *cacert;      /* TLS: CA file to check the servers with (NULL: the system's) */
    const char *cert, *key;  /* TLS client certificate and its key (both or neither) */
    const char *user;        /* etcd authentication: NULL or "" = none */
    const char *password;
    uint32_t timeout_ms;     /* bound on one request (connect included); 0 = 2000 */
} axd_lease_etcd_cfg;
/* 0, or AX_ECONFIG with a message naming the bad setting. */
int axd_lease_etcd_check(const axd_lease_etcd_cfg *cfg, char *err, size_t errlen);
axd_lease_store *axd_lease_etcd_new(struct ev_loop *loop, uint32_t n_shards, const axd_lease_etcd_cfg *cfg, char *err,
                                    size_t errlen);
/* Fuzzing: decode one etcd answer (JSON) as every step of the store would — a shard read,
 * a timetolive, a keep-alive, a transaction's outcome, a grant's ID, a state load and
 * write, a member listing (under the default prefix) — into out. 0, or AX_EPROTO when
 * it is not a JSON object. */
typedef struct axd_lease_etcd_decoded {
    int held, alive, txn_ok, bad_member;
    uint64_t epoch, last;
    char owner[AXD_LEASE_NODE_MAX + 1];
    size_t owner_len;
    int64_t ttl_ms, lease_id, state_records;
    int state_status[2]; /* write, load */
    size_t state_len, n_members;
} axd_lease_etcd_decoded;
int axd_lease_etcd_decode(const char *json, size_t len, axd_lease_etcd_decoded *out);

#endif
