/* The cluster as the rest of the daemon sees it: start/stop from the config, remote
 * tell/ask/monitor through refs whose node != 0 (an index into this node's table of
 * peer incarnations), name resolution of wire ids for the client plane, and the
 * `axctl nodes` document. Everything else of the cluster is internal (cluster_int.h). */
#ifndef AXD_CLUSTER_H
#define AXD_CLUSTER_H
#include <stddef.h>
#include <stdint.h>

#include "core.h"

struct axd_ovl_net;
typedef struct axd_cluster axd_cluster;
struct cJSON;

/* Secure by default: when the cluster is enabled (cluster.listen or cluster.peers set)
 * and there is no cluster.auth_token, the daemon must not start unless
 * cluster.allow_insecure_auth = true. Returns 0, or AX_ECONFIG with the message. */
int axd_cluster_config_check(const axd_config *cfg, char *err, size_t errlen);

/* Start the cluster if enabled (a no-op otherwise): TCP overlay, listener, dialing the
 * address book. AX_ECONFIG/AX_EIO with err on failure (the daemon exits 1). */
int axd_cluster_start(axd_rt *s, axd_cluster **out, char *err, size_t errlen);
/* Same on the in-memory overlay `net` (tests: many nodes in one process). */
int axd_cluster_start_mem(axd_rt *s, struct axd_ovl_net *net, axd_cluster **out, char *err, size_t errlen);
/* Close every link (peers see CLOSE), fail pending remote asks, free. Accepts a server
 * without a cluster. */
void axd_cluster_stop(axd_cluster *cl);

/* Remote messaging. `to.node` names a peer incarnation. tell: AX_OK once queued for the
 * peer; AX_ENOCONN if the node is down; AX_EFULL if its outbound queue is full;
 * AX_ETOOBIG above cluster.max_frame. ask: on AX_OK the cluster completes pd exactly
 * once (reply, remote error, or AX_ENOCONN when the node is declared down; pd's own
 * timer still bounds it); on an error return pd is untouched (the caller completes or
 * frees it). */
int axd_cluster_tell(axd_cluster *cl, ax_ref to, uint32_t msg_id, const void *p, size_t n, ax_ref from);
int axd_cluster_ask(axd_cluster *cl, ax_ref to, uint32_t msg_id, const void *p, size_t n, axd_pending *pd, ax_ref from);
/* The same with a message name (client plane: names are not interned from clients). */
int axd_cluster_tell_named(axd_cluster *cl, ax_ref to, const char *msg, size_t msg_len, const void *p, size_t n,
                          ax_ref from);
int axd_cluster_ask_named(axd_cluster *cl, ax_ref to, const char *msg, size_t msg_len, const void *p, size_t n,
                         axd_pending *pd, uint32_t timeout_ms);

/* Remote monitors: watcher (local) monitors target (remote) under mref (allocated by
 * the runtime). A `$down` arrives exactly once through axd_runtime_deliver_down: with the
 * actor's exit reason, "noproc", or "noconnection" when the node is lost. */
int axd_cluster_monitor(axd_cluster *cl, ax_ref watcher, ax_ref target, uint64_t mref);
int axd_cluster_demonitor(axd_cluster *cl, ax_ref target, uint64_t mref);
/* The same when only the watcher and mref are known (client DEMONITOR); a no-op if
 * mref is not a remote monitor of watcher. */
int axd_cluster_demonitor_mref(axd_cluster *cl, ax_ref watcher, uint64_t mref);
/* The runtime calls this for a down whose watcher is remote (watcher.node != 0 and not
 * AXD_NODE_CLIENT): a local actor watched from another node exited. */
void axd_cluster_deliver_down(axd_cluster *cl, ax_ref watcher, uint64_t mref, ax_ref who, const char *reason);

/* Map a wire id (from a client's REF) to the node value of a ref: 0 if it is this node,
 * an incarnation index if it is a live peer of the same boot (any session), or
 * AX_ENOTFOUND / AX_ENOCONN (known but down). */
int axd_cluster_node_of(axd_cluster *cl, const char *wire_id, size_t len, uint32_t *node);
/* The wire id of a ref's node ("" for 0 / unknown). */
const char *axd_cluster_node_wire_id(axd_cluster *cl, uint32_t node);

/* Keyed routing (keyed.c): send a (type, key) message to the node whose lease owner id
 * is `owner` ("name@boot-<hex>"), fenced by epoch. pd NULL: fire-and-forget tell; else
 * pd completes exactly once: for an ask (kflags AX_PK_ASK) with the reply, for a tell
 * with an empty OK once the owner queued it, or with the owner's error (EBUSY, ESTALE,
 * ENOTFOUND for DIRECT...) or AX_ENOCONN. An error return leaves pd untouched. */
int axd_cluster_keyed_send(axd_cluster *cl, const char *owner, const char *type, size_t tlen, const char *key,
                          size_t klen, uint64_t epoch, unsigned kflags, const char *msg, size_t mlen, const void *p,
                          size_t n, ax_ref from, axd_pending *pd);
/* Nodes up now, this one included (>= 1): the fair-share divisor of the shard manager. */
uint32_t axd_cluster_live_nodes(axd_cluster *cl);
/* SIGHUP: apply a reloaded cluster.peers: new entries are added and dialed, changed
 * addresses are used at the next connect; removing a peer needs a restart (logged).
 * Returns how many were added. */
int axd_cluster_reload_peers(axd_cluster *cl, char *const *peers, size_t n);
/* The peers' heartbeat round-trip histograms in the Prometheus text format (histo.h). */
void axd_cluster_rtt_metrics(axd_cluster *cl, char **buf, size_t *len, size_t *cap);
/* Tell every peer that is up that this node released its lease of shard at epoch
 * (RELEASED): they may acquire it now, not at their next round. */
void axd_cluster_shard_released(axd_cluster *cl, uint32_t shard, uint64_t epoch);
/* Tell every peer that is up the epoch this node now holds shard at (EPOCHS). */
void axd_cluster_share_epoch(axd_cluster *cl, uint32_t shard, uint64_t epoch);

/* Cluster-wide status (status.c). The source makes this node's status document (a new
 * cJSON object the caller frees) for a peer's STATUS_REQ. gather asks every peer that is
 * up and calls cb once, within 2 s, with a cJSON array (owned by cb) of one entry per known
 * peer — {"node", "status": doc} or {"node", "error": why} — or with NULL when the cluster
 * stops first. AX_EINVAL (no cluster), AX_EBUSY (16 queries wait), AX_ECANCELED (stopping). */
typedef struct cJSON *(*axd_cluster_status_src)(void *ud);
typedef void (*axd_cluster_status_cb)(void *ud, struct cJSON *nodes);
void axd_cluster_set_status_source(axd_cluster *cl, axd_cluster_status_src src, void *ud);
int axd_cluster_gather_status(axd_cluster *cl, axd_cluster_status_cb cb, void *ud);

/* {"node": ..., "peers": [{name, wire_id, session, state, rtt_ms, bytes_in, ...}]} */
struct cJSON *axd_cluster_nodes_json(axd_rt *s, axd_cluster *cl); /* cl NULL: the cluster is off */
/* Membership through the store (the composition root's members.c): a member listed
 * there, at addr (host:port), is dialed like a cluster.peers entry (1 added, 0 known, or
 * an error); a member no longer listed is forgotten (not dialed, not in NODES) unless
 * cluster.peers names it. set_members hands over the listing (a cJSON array, owned from
 * now on) that NODES shows as "members". */
int axd_cluster_member_seen(axd_cluster *cl, const char *name, const char *addr);
void axd_cluster_member_gone(axd_cluster *cl, const char *name);
void axd_cluster_set_members(axd_cluster *cl, struct cJSON *members);

#endif
