/* The composition root: one node built from the layers (runtime core, keyed routing,
 * cluster, client front end), the tables between them wired, the signals, reload and the
 * order of start-up and shutdown. Only server.c, main.c and in-process tests include it. */
#ifndef AXD_SERVER_H
#define AXD_SERVER_H

#include <ev.h>

#include "cluster.h"
#include "config.h"
#include "core.h"
#include "front.h"
#include "keyed.h"
#include "workers.h"

struct axd_server;
/* Membership through the lease store (members.c). */
typedef struct axd_members {
    struct axd_server *srv;
    ev_timer tick;
    char record[4096];     /* this node's record (JSON) */
    struct cJSON *last;    /* the members listed last */
    int active, stopped, put_failing;
    int puts_inflight, lists_inflight;
    int del_inflight;      /* the record's delete at shutdown, not answered yet */
    ev_timer finish_w;     /* bounds axd_members_finish */
} axd_members;

typedef struct axd_server {
    struct ev_loop *loop;
    axd_config cfg;          /* owned; every layer reads it through a pointer */
    axd_rt rt;               /* the runtime core */
    axd_keyed keyed;         /* lease manager and keyed routing (zeroed until axd_server_route_start) */
    axd_cluster *cluster;    /* NULL when the cluster is off */
    axd_front front;         /* the client listener */
    axd_workers workers;     /* runtime.workers: worker 0 is rt on loop (zeroed until axd_server_workers_start) */
    axd_members members;     /* cluster.membership (zeroed until axd_members_start) */

    ev_signal sig_term, sig_int, sig_hup;
    /* SIGHUP: read the configuration again (file and flags, validated); installed by
     * main. 0 and *out filled, or AX_ECONFIG with err. NULL: SIGHUP only logs. */
    int (*reload)(void *ud, axd_config *out, char *err, size_t errlen);
    void *reload_ud;
    uint64_t reloads, reload_errors;
    int stopping;
    int exit_code;
    /* drain (axd_server_drain): who waits for its end, and whether the daemon then exits */
    struct axd_drain_waiter {
        void (*done)(void *ud, struct cJSON *result);
        void *ud;
    } drain_waiters[16];
    int n_drain_waiters, drain_exit, drain_signals;
    char drain_why[32];
    struct axd_metrics *metrics; /* metrics.listen (NULL: off) */
} axd_server;

/* A node on loop with cfg (its strings now owned by the server): the runtime is ready
 * (plugins can be loaded into s->rt); keyed routing, the client listener and the cluster
 * start with the calls below. */
int axd_server_init(axd_server *s, struct ev_loop *loop, const axd_config *cfg);
void axd_server_free(axd_server *s);
/* Start the lease manager (over the configured store, or over `store`, which the caller
 * owns: in-process tests sharing one memory store). */
int axd_server_route_start(axd_server *s, struct axd_lease_store *store, char *err, size_t errlen);
/* Start workers 1..n-1 beside s->rt (worker 0) with the types loaded so far (later
 * loads reach every worker); keyed routing, when started, serves their keyed actors.
 * n 1 starts nothing. 0, or an error with err. */
int axd_server_workers_start(axd_server *s, uint32_t n, char *err, size_t errlen);
int axd_server_listener_start(axd_server *s, char *err, size_t errlen);
int axd_server_cluster_start(axd_server *s, char *err, size_t errlen);
/* The same on the in-memory overlay `net` (tests: many nodes in one process). */
int axd_server_cluster_start_mem(axd_server *s, struct axd_ovl_net *net, char *err, size_t errlen);
/* Handle SIGTERM/SIGINT (stop), SIGHUP (reload), ignore SIGUSR1/2: for the daemon's
 * loop only (libev lets one loop own a signal). */
void axd_server_signals_start(axd_server *s);
/* Stop the node: a clustered one drains first (its shards go to the other nodes within
 * cluster.drain_timeout_ms; a second call stops at once), then every actor stops (on_stop
 * runs), clients are closed, the socket removed and the loop ends. */
void axd_server_shutdown(axd_server *s, const char *why);
/* Drain (keyed.h axd_route_drain): hand every shard over and take none; done (may be
 * NULL) gets the result document, borrowed. stay = 0: the daemon then stops. A drain that
 * runs already is joined. AX_EINVAL when the node is not clustered. */
int axd_server_drain(axd_server *s, uint32_t timeout_ms, int stay, void (*done)(void *ud, struct cJSON *result),
                     void *ud);
/* Take shards again after a drain with stay. */
int axd_server_undrain(axd_server *s);
/* Apply what can change at run time from a reloaded configuration (SIGHUP): log level
 * and target, plugins.load additions, cluster.peers additions; what cannot is logged as
 * needing a restart. Returns 0, or AX_ECONFIG (nothing changed) when it cannot be read. */
int axd_server_reload(axd_server *s);
/* After the cluster and keyed routing started: register this node in the lease store and
 * dial the members found there (cluster.membership; a no-op without a cluster or with
 * the memory store). Stop: delete the record (shutdown). */
int axd_members_start(axd_server *s);
/* metrics.listen: serve Prometheus metrics (after the listener and the cluster started);
 * a no-op when it is empty. 0, or an error with err. */
int axd_server_metrics_start(axd_server *s, char *err, size_t errlen);
void axd_members_stop(axd_server *s);
/* After the loop ended: run it until the record's delete sent by axd_members_stop is
 * answered (at most 1 s), so that it is not lost when the store is freed. */
void axd_members_finish(axd_server *s);

#endif
