/* Internal state of the cluster, shared by peer.c (links, handshakes, sessions,
 * heartbeats, failure detection, dedup, control/data priority) and cluster.c (config,
 * remote tell/ask/monitor, dispatch into the runtime, JSON). Not for other files. */
#ifndef AXD_CLUSTER_INT_H
#define AXD_CLUSTER_INT_H
#include <ev.h>

#include "cluster.h"
#include "handshake.h"
#include "hmap.h"
#include "overlay.h"
#include "peer.h"

#define AXD_CL_QUEUE_MAX (64u << 20) /* unsent bytes per peer incarnation before EFULL */
#define AXD_CL_HS_MAX 256            /* incoming links in their handshake at once */

enum { LK_HS = 0, LK_UP = 1, LK_DEAD = 2 };
enum { NS_IDLE = 0, NS_CONNECTING, NS_UP, NS_DISCONNECTED, NS_DOWN };

typedef struct axd_cluster axd_cluster;
typedef struct axd_cl_node axd_cl_node;
typedef struct axd_cl_inc axd_cl_inc;
typedef struct axd_cl_query axd_cl_query;

typedef struct axd_cl_link {
    axd_cluster *cl;
    axd_ovl_link *ol;
    axd_cl_node *node; /* outgoing: at connect; incoming: once authenticated */
    int outgoing, state;
    axd_hs hs;
    axd_psess sess;
    double opened_at;
    char remote[96];
    struct axd_cl_link *next, *prev;
} axd_cl_link;

/* A remote ask of ours, waiting for its REPLY. */
typedef struct axd_cl_ask {
    uint64_t req;
    uint32_t pd_slot, pd_gen;
    double deadline;
} axd_cl_ask;

/* A monitor held by a local watcher on a remote actor. */
typedef struct axd_cl_rmon {
    uint64_t mref;
    ax_ref watcher, target;
} axd_cl_rmon;

/* A monitor a remote watcher holds on a local actor (lmref: the runtime's mref). */
typedef struct axd_cl_lmon {
    uint64_t rmref, lmref;
    uint32_t inc;
    ax_ref watcher, target;
} axd_cl_lmon;

/* One incarnation (boot) of a logical node: what ax_ref.node indexes. Never freed
 * before the cluster, so a stale ref finds a down incarnation, not a newer one. */
struct axd_cl_inc {
    uint32_t idx;
    axd_cl_node *node;
    char boot[AXD_NODE_BOOT_HEX + 1];
    char wire_id[AXD_NODE_ID_MAX + 1]; /* last authenticated wire id */
    uint64_t session;
    int down;
    ax_wbuf ctlq, dataq;   /* unsealed frames waiting for a link */
    size_t open_at;        /* offset of the open data batch in dataq, or SIZE_MAX */
    uint8_t open_type;
    axd_hmap asks;          /* req (8 bytes) -> axd_cl_ask */
    axd_hmap rmons;         /* mref (8 bytes) -> axd_cl_rmon */
    axd_hmap lmons;         /* remote mref (8 bytes) -> axd_cl_lmon */
};

struct axd_cl_node {
    char name[AXD_NODE_ID_MAX + 1];
    int in_book, state;
    axd_cl_link *link;     /* the established link */
    axd_cl_link *dialing;  /* our outgoing link in connect/handshake */
    axd_cl_inc *inc;       /* current incarnation; NULL before the first handshake */
    double since, last_heard, rtt_ms;
    uint64_t bytes_in, bytes_out, frames_in, frames_out;
    uint64_t auth_failures, replayed, forged, dropped, downs;
    uint64_t hb_sent, hb_recv;
    double hb_gap_max;    /* longest gap between two heartbeats received, seconds */
    char last_error[320]; /* why the last handshake with it failed; "" once a link is up */
    int store_ok;         /* its heartbeats say it reaches the lease store */
    int leaving;          /* its heartbeats say it drains: it does not count in the fair share */
    uint32_t features;    /* AX_PEER_FEAT_* negotiated with it at the last handshake */
    axd_histo h_rtt;      /* heartbeat round trips, seconds (metrics) */
    int from_store;       /* learned from the membership records (not cluster.peers) */
    int gone;             /* its membership record expired or was deleted: not listed, not dialed */
    double last_hb;
    double backoff_ms;
    ev_timer reconnect;
    axd_cluster *cl;
    uint64_t ping_id;
    uint64_t pong_id;    /* the newest PING of ours it answered */
    uint64_t barrier_id; /* the PING of the barrier in progress (0: none) */
    axd_cl_node *next;
};

struct axd_cluster {
    axd_rt *s;
    axd_ovl *ovl;
    char name[AXD_NODE_ID_MAX + 1];
    char boot[AXD_NODE_BOOT_HEX + 1];
    uint64_t session_counter;
    char *token;
    size_t token_len;
    uint32_t shard_count;   /* shards.count, checked in the handshake */
    char store_id[256];     /* lease store identity (axd_config_store_identity), checked too */
    uint32_t max_frame;
    double hb_interval, hb_timeout, connect_timeout, backoff_min, backoff_max;
    axd_cl_node *nodes;
    axd_cl_inc **incs;
    uint32_t n_incs, cap_incs;
    axd_cl_link *links;
    axd_hmap lmons_by_local; /* runtime mref (8 bytes) -> axd_cl_lmon */
    ev_timer hb;
    ev_prepare flush;
    uint64_t next_req;
    uint64_t auth_failures, unauth_frames, late_replies, remote_dropped, handshakes;
    int stopping;
    unsigned hs_full_logged;
    struct cJSON *members;  /* the membership records last listed (axd_cluster_set_members), or NULL */
    axd_cluster_status_src status_src; /* this node's status document (status.c) */
    void *status_ud;
    axd_cl_query *queries;  /* cluster status queries waiting for answers */
    int n_queries;
    uint64_t next_status_req;
};

/* ---- peer.c ---- */
int axd_cl_peer_start(axd_cluster *cl);
void axd_cl_peer_stop(axd_cluster *cl);
axd_cl_node *axd_cl_node_get(axd_cluster *cl, const char *name, int create);
/* Append one record to the incarnation's queues (a control or data frame, batched).
 * AX_ENOCONN (down), AX_EFULL, AX_ETOOBIG. */
int axd_cl_queue(axd_cluster *cl, axd_cl_inc *inc, uint8_t type, const ax_peer_rec *r);
/* A heartbeat to every peer that is up, now (the drain flag changed). */
void axd_cl_heartbeat_now(axd_cluster *cl);
/* The drain's barrier (axd_remote_ops.barrier_start / _done). */
void axd_cl_barrier_start(axd_cluster *cl);
int axd_cl_barrier_done(axd_cluster *cl);
/* Queue the highest epoch this node knows of every shard (EPOCHS frames) for inc. */
void axd_cl_send_epochs(axd_cluster *cl, axd_cl_inc *inc);
/* Put name=addr in the address book at run time and dial it if it is new: 1 added, 0 the
 * address changed (used at the next connect), or an error (AX_ENOTSUP, AX_EINVAL). */
int axd_cl_add_peer(axd_cluster *cl, const char *name, const char *addr);
void axd_cl_flush_node(axd_cluster *cl, axd_cl_node *n);
const char *axd_cl_state_name(int st);
extern const axd_ovl_cbs axd_cl_ovl_cbs;

/* ---- cluster.c (called by peer.c) ---- */
void axd_cl_on_frame(axd_cluster *cl, axd_cl_inc *inc, uint8_t type, const uint8_t *body, size_t n);
/* The incarnation is declared down: fail asks, fire monitors (noconnection), drop queues. */
void axd_cl_inc_down(axd_cluster *cl, axd_cl_inc *inc, const char *why);
axd_cl_inc *axd_cl_inc_new(axd_cluster *cl, axd_cl_node *n, const char *boot);
void axd_cl_send_reply(axd_cluster *cl, axd_cl_inc *inc, uint64_t req, int status, const void *p, size_t n);
/* Deliver a peer record's message (payload, from, epoch) to local actor a. For an ask the
 * runtime's answer, or the delivery error, goes back as REPLY r->req. Returns 0 or the
 * delivery error (for tells, the caller reports or counts it). */
int axd_cl_deliver(axd_cluster *cl, axd_cl_inc *inc, ax_ref to, const ax_peer_rec *r, uint32_t id, int ask);
/* pending-ask completion for asks that came from a peer: sends the REPLY back */
/* The cluster attached to runtime s (its remote table), or NULL. */
axd_cluster *axd_cl_of_rt(axd_rt *s);
void axd_cl_remote_ask_done(axd_rt *s, axd_pending *p, int status, const void *data, size_t n);

/* ---- status.c ---- */
void axd_cl_on_status_req(axd_cluster *cl, axd_cl_inc *inc, const ax_peer_rec *r);
void axd_cl_on_status(axd_cluster *cl, axd_cl_inc *inc, const ax_peer_rec *r);
/* Answer every waiting query as canceled (the cluster stops). */
void axd_cl_status_stop(axd_cluster *cl);
/* ---- keyed.c ---- */
void axd_cl_on_keyed(axd_cluster *cl, axd_cl_inc *inc, const ax_peer_rec *r);

#endif
