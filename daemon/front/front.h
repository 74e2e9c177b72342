/* The client front end: the Unix socket listener, request dispatch and the control
 * documents (status, actors, nodes, shards, plugins). It implements the core's client
 * sink (installed by axd_listener_start) and uses the core, keyed routing and the
 * cluster. */
#ifndef AXD_FRONT_H
#define AXD_FRONT_H

#include <ev.h>
#include <stdatomic.h>

#include "cluster.h"
#include "core.h"
#include "keyed.h"

struct axd_conn;

typedef struct axd_front {
    axd_rt *rt;
    struct ev_loop *loop;
    const axd_config *cfg;
    axd_keyed *keyed;        /* routing of keyed requests, the shards document */
    axd_cluster *cluster;    /* NULL while the cluster is off (set by the composition root) */
    int listen_fd;
    ev_io listen_io;
    axd_slots conns;
    struct axd_conn *dirty;  /* connections with output to flush */
    uint32_t n_conns;
    _Atomic uint32_t next_worker; /* worker 0's: where the next anonymous or named spawn goes */
    int socket_created;
    ev_timer accept_pause;
    /* workers: one front per worker, each serving its own connections on its thread */
    uint32_t worker;         /* the worker of this front */
    struct axd_front *main;  /* worker 0's front (this one, on worker 0) */
    struct axd_conn *retry;  /* stand-ins whose output waits for room in a full inbox */
    ev_timer retry_timer;
    /* worker 0's front only */
    struct axd_front **fronts; /* n_fronts, [0] = this one */
    uint32_t n_fronts, next_conn_worker;
    _Atomic uint32_t clients;  /* connections of every worker (client.max_clients) */
    axd_hmap proxies;          /* (worker, slot, gen) -> stand-in of another worker's connection */
    /* DRAIN / UNDRAIN (set by the composition root; NULL: refused): as axd_server_drain */
    int (*drain)(void *ud, uint32_t timeout_ms, int stay, void (*done)(void *dud, struct cJSON *result), void *dud);
    int (*undrain)(void *ud);
    void *drain_ud;
} axd_front;

/* Bind client.socket and accept; installs the client sink into rt. keyed stays the
 * caller's; s->cluster is set by the caller while a cluster runs. With workers started
 * (rt->group), every worker gets a front of its own and accepted connections are spread
 * over them; a request only worker 0 can serve (the cluster, the lease manager, plugins)
 * travels there and its answer comes back to the connection's worker. */
int axd_listener_start(axd_front *s, axd_rt *rt, axd_keyed *keyed, char *err, size_t errlen);
/* Stop accepting (the socket stays until axd_listener_stop). */
void axd_listener_pause(axd_front *s);
void axd_listener_stop(axd_front *s);
/* Flush output of connections that got replies during this loop iteration. */
void axd_listener_flush(axd_front *s);
/* The STATUS document: the runtime's, with the clients and the shards added. */
struct cJSON *axd_front_status_json(axd_front *s);

#endif
