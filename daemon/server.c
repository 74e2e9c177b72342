/* The daemon's one server state: set-up from the config, the signals that stop it,
 * and the orderly shutdown (stop accepting, stop every actor, answer what is pending,
 * remove the socket). */
#include <errno.h>
#include <openssl/rand.h>
#include <cjson/cJSON.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>

#include "ax_mem.h"
#include "log.h"
#include "sdnotify.h"
#include "server.h"
#include "metrics.h"

static void hup_cb(struct ev_loop *loop, ev_signal *w, int revents)
{
    (void)loop;
    (void)revents;
    axd_server *s = w->data;
    axd_log(AX_LOG_INFO, "server", "received SIGHUP: reloading the configuration");
    axd_sd_notify("RELOADING=1");
    axd_server_reload(s);
    axd_sd_notify("READY=1");
}

static int str_differs(const char *a, const char *b) { return strcmp(a ? a : "", b ? b : ""); }

static int list_has(char *const *v, size_t n, const char *x)
{
    for (size_t i = 0; i < n; i++)
        if (!strcmp(v[i], x))
            return 1;
    return 0;
}

/* Exchange two configs' lists (the running one takes the reloaded one's). */
static void swap_list(char ***a, size_t *an, char ***b, size_t *bn)
{
    char **v = *a;
    size_t n = *an;
    *a = *b;
    *an = *bn;
    *b = v;
    *bn = n;
}

int axd_server_reload(axd_server *s)
{
    char err[768];
    axd_config nc;
    if (!s->reload) {
        axd_log(AX_LOG_WARN, "server", "reload: no configuration source; nothing changed");
        return AX_ECONFIG;
    }
    if (s->reload(s->reload_ud, &nc, err, sizeof err) != 0) {
        s->reload_errors++;
        axd_log(AX_LOG_ERROR, "server", "reload refused, the running configuration stays: %s", err);
        return AX_ECONFIG;
    }
    s->reloads++;
    /* what needs a restart: named, not applied */
    struct { const char *key; int differs; } fixed[] = {
        {"node.name", str_differs(nc.node_name, s->cfg.node_name)},
        {"client.socket", str_differs(nc.socket_path, s->cfg.socket_path)},
        {"shards.count", nc.shard_count != s->cfg.shard_count},
        {"lease.store", str_differs(nc.lease_store, s->cfg.lease_store)},
        {"lease.redis_host", str_differs(nc.redis_host, s->cfg.redis_host)},
        {"lease.redis_port", nc.redis_port != s->cfg.redis_port},
        {"cluster.listen", str_differs(nc.cluster_listen, s->cfg.cluster_listen)},
        {"cluster.auth_token", str_differs(nc.cluster_auth_token, s->cfg.cluster_auth_token)},
        {"runtime.mailbox_capacity", nc.mailbox_capacity != s->cfg.mailbox_capacity},
        {"runtime.workers", nc.workers != s->cfg.workers},
        {"state.persist", str_differs(nc.state_persist, s->cfg.state_persist)},
        {"state.max_bytes", nc.state_max_bytes != s->cfg.state_max_bytes},
    };
    for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++)
        if (fixed[i].differs)
            axd_log(AX_LOG_WARN, "server", "reload: %s changed; it takes effect at the next restart", fixed[i].key);
    /* log level and target */
    if (nc.log_level != s->cfg.log_level || str_differs(nc.log_target, s->cfg.log_target)) {
        axd_log_set_level(nc.log_level);
        axd_log_set_target(nc.log_target);
        s->cfg.log_level = nc.log_level;
        char *t = s->cfg.log_target;
        s->cfg.log_target = nc.log_target;
        nc.log_target = t;
        axd_log(AX_LOG_INFO, "server", "reload: log level %s, target %s", axd_log_level_name(s->cfg.log_level),
               s->cfg.log_target);
    }
    /* plugins.load additions (a plugin already loaded stays; removals need plugins unload) */
    int loaded = 0;
    for (size_t i = 0; i < nc.n_plugins; i++) {
        if (list_has(s->cfg.plugins, s->cfg.n_plugins, nc.plugins[i]))
            continue;
        if (axd_plugin_load(&s->rt, nc.plugins[i], NULL, err, sizeof err) == 0) {
            loaded++;
            axd_log(AX_LOG_INFO, "plugin", "reload: loaded %s", nc.plugins[i]);
        } else {
            axd_log(AX_LOG_ERROR, "plugin", "reload: cannot load %s: %s", nc.plugins[i], err);
        }
    }
    swap_list(&s->cfg.plugins, &s->cfg.n_plugins, &nc.plugins, &nc.n_plugins);
    /* cluster.peers additions and address changes */
    int peers = axd_cluster_reload_peers(s->cluster, nc.cluster_peers, nc.n_cluster_peers);
    if (s->cluster)
        swap_list(&s->cfg.cluster_peers, &s->cfg.n_cluster_peers, &nc.cluster_peers, &nc.n_cluster_peers);
    axd_config_free(&nc); /* frees what was swapped out */
    axd_log(AX_LOG_INFO, "server", "configuration reloaded: %d plugin(s) loaded, %d peer(s) added", loaded, peers);
    return 0;
}

static void signal_cb(struct ev_loop *loop, ev_signal *w, int revents)
{
    (void)loop;
    (void)revents;
    axd_server *s = w->data;
    axd_log(AX_LOG_INFO, "server", "received %s, stopping", strsignal(w->signum));
    axd_server_shutdown(s, "shutdown");
}

/* The wire id: NAME@boot-<hex>-session-<n>; the boot part is fresh at every start. */
static void make_node_id(const axd_config *cfg, char *out, size_t len)
{
    unsigned char r[8];
    char hex[17];
    if (RAND_bytes(r, sizeof r) != 1)
        memset(r, 0, sizeof r);
    for (int i = 0; i < 8; i++)
        snprintf(hex + 2 * i, 3, "%02x", r[i]);
    snprintf(out, len, "%s@boot-%s-session-1", cfg->node_name, hex);
}

int axd_server_init(axd_server *s, struct ev_loop *loop, const axd_config *cfg)
{
    char node_id[sizeof s->rt.node_id];
    memset(s, 0, sizeof *s);
    s->loop = loop;
    s->cfg = *cfg; /* the server now owns the config's strings */
    s->front.listen_fd = -1;
    make_node_id(&s->cfg, node_id, sizeof node_id);
    axd_runtime_init(&s->rt, loop, &s->cfg, node_id);
    ev_signal_init(&s->sig_term, signal_cb, SIGTERM);
    ev_signal_init(&s->sig_int, signal_cb, SIGINT);
    ev_signal_init(&s->sig_hup, hup_cb, SIGHUP);
    s->sig_term.data = s->sig_int.data = s->sig_hup.data = s;
    return AX_OK;
}

int axd_server_route_start(axd_server *s, struct axd_lease_store *store, char *err, size_t errlen)
{
    return store ? axd_route_start_store(&s->keyed, &s->rt, store, err, errlen)
                 : axd_route_start(&s->keyed, &s->rt, err, errlen);
}

int axd_server_workers_start(axd_server *s, uint32_t n, char *err, size_t errlen)
{
    if (n <= 1)
        return 0;
    int rc = axd_workers_start(&s->workers, &s->rt, n, err, errlen);
    if (rc)
        return rc;
    if (s->keyed.rt && axd_route_attach_workers(&s->keyed) != 0) {
        snprintf(err, errlen, "cannot attach keyed routing to the workers");
        axd_workers_stop(&s->workers, "shutdown");
        return AX_ENOMEM;
    }
    axd_log(AX_LOG_INFO, "server", "%u workers", n);
    return 0;
}

static int front_drain(void *ud, uint32_t timeout_ms, int stay, void (*done)(void *dud, cJSON *result), void *dud)
{
    return axd_server_drain(ud, timeout_ms, stay, done, dud);
}

static int front_undrain(void *ud) { return axd_server_undrain(ud); }

int axd_server_listener_start(axd_server *s, char *err, size_t errlen)
{
    s->front.cluster = s->cluster;
    int rc = axd_listener_start(&s->front, &s->rt, &s->keyed, err, errlen);
    s->front.drain = front_drain; /* worker 0's front serves DRAIN */
    s->front.undrain = front_undrain;
    s->front.drain_ud = s;
    return rc;
}

int axd_server_metrics_start(axd_server *s, char *err, size_t errlen)
{
    if (!s->cfg.metrics_listen || !*s->cfg.metrics_listen)
        return 0;
    s->metrics = axd_metrics_start(&s->front, s->cfg.metrics_listen, err, errlen);
    return s->metrics ? 0 : AX_ECONFIG;
}

/* A peer's STATUS_REQ gets what a client's STATUS would. */
static cJSON *status_source(void *ud)
{
    return axd_front_status_json(&((axd_server *)ud)->front);
}

int axd_server_cluster_start(axd_server *s, char *err, size_t errlen)
{
    int rc = axd_cluster_start(&s->rt, &s->cluster, err, errlen);
    s->front.cluster = s->cluster;
    axd_cluster_set_status_source(s->cluster, status_source, s);
    return rc;
}

int axd_server_cluster_start_mem(axd_server *s, struct axd_ovl_net *net, char *err, size_t errlen)
{
    int rc = axd_cluster_start_mem(&s->rt, net, &s->cluster, err, errlen);
    s->front.cluster = s->cluster;
    axd_cluster_set_status_source(s->cluster, status_source, s);
    return rc;
}

static void cluster_stop(axd_server *s)
{
    axd_cluster_stop(s->cluster);
    s->cluster = NULL;
    s->front.cluster = NULL;
}

void axd_server_signals_start(axd_server *s)
{
    /* one loop may own a signal: the daemon's, not the in-process test nodes' */
    ev_signal_start(s->loop, &s->sig_term);
    ev_signal_start(s->loop, &s->sig_int);
    ev_signal_start(s->loop, &s->sig_hup);
    /* SIGUSR1/SIGUSR2 mean nothing to axactord: ignored rather than fatal */
    signal(SIGUSR1, SIG_IGN);
    signal(SIGUSR2, SIG_IGN);
}

static void shutdown_now(axd_server *s, const char *why);

static void drained_cb(void *ud, cJSON *result)
{
    axd_server *s = ud;
    int n = s->n_drain_waiters;
    s->n_drain_waiters = 0;
    for (int i = 0; i < n; i++)
        s->drain_waiters[i].done(s->drain_waiters[i].ud, result);
    if (s->drain_exit)
        shutdown_now(s, s->drain_why[0] ? s->drain_why : "drained");
}

int axd_server_drain(axd_server *s, uint32_t timeout_ms, int stay, void (*done)(void *ud, cJSON *result), void *ud)
{
    if (s->stopping)
        return AX_ECANCELED;
    if (!s->cluster || !s->keyed.shards)
        return AX_EINVAL;
    if (done && s->n_drain_waiters >= (int)(sizeof s->drain_waiters / sizeof s->drain_waiters[0]))
        return AX_EBUSY;
    if (!s->keyed.drain_running) {
        /* before an exit, also until what this node routes was answered */
        int rc = axd_route_drain(&s->keyed, timeout_ms, !stay, drained_cb, s);
        if (rc)
            return rc;
    }
    if (!stay) {
        s->drain_exit = 1;
        axd_listener_pause(&s->front); /* no new clients for a node on its way out */
    }
    if (done) {
        s->drain_waiters[s->n_drain_waiters].done = done;
        s->drain_waiters[s->n_drain_waiters++].ud = ud;
    }
    return AX_OK;
}

int axd_server_undrain(axd_server *s)
{
    if (s->stopping || s->drain_exit)
        return AX_ECANCELED; /* on its way out */
    if (!s->cluster || !s->keyed.shards)
        return AX_EINVAL;
    return axd_route_undrain(&s->keyed);
}

void axd_server_shutdown(axd_server *s, const char *why)
{
    if (s->stopping)
        return;
    /* A clustered node hands its shards over first (its asks and queued messages go
     * with them); a second signal does not wait for that. */
    if (s->cluster && s->keyed.shards && !s->drain_signals++) {
        snprintf(s->drain_why, sizeof s->drain_why, "%s", why);
        if (axd_server_drain(s, s->cfg.cluster_drain_timeout_ms, 0, NULL, NULL) == AX_OK)
            return;
    }
    shutdown_now(s, why);
}

static void shutdown_now(axd_server *s, const char *why)
{
    if (s->stopping)
        return;
    s->stopping = 1;
    s->rt.stopping = 1; /* exits from now on are final */
    axd_metrics_stop(s->metrics); /* before anything it reads goes */
    s->metrics = NULL;
    axd_log(AX_LOG_INFO, "server", "shutting down: %s", why);
    /* Stop accepting first so no new work arrives, then stop actors (their on_stop
     * runs and queued asks are answered), then flush those answers and close. */
    axd_listener_pause(&s->front);
    axd_members_stop(s); /* leave: the others forget this node now */
    cluster_stop(s); /* peers see CLOSE; remote asks fail before actors stop */
    if (s->workers.n) /* every worker's actors, then the threads end */
        axd_workers_stop(&s->workers, why);
    else
        axd_runtime_stop_all(&s->rt, why);
    axd_listener_stop(&s->front);
    /* Release the shard leases so survivors need not wait for them to expire; the
     * loop ends when the releases are answered (or after a grace time). */
    if (!axd_route_stop(&s->keyed))
        ev_break(s->loop, EVBREAK_ALL);
}

void axd_server_free(axd_server *s)
{
    if (!s || !s->loop)
        return;
    axd_metrics_stop(s->metrics);
    s->metrics = NULL;
    axd_listener_stop(&s->front);
    axd_members_stop(s);
    cluster_stop(s);
    axd_workers_stop(&s->workers, "shutdown"); /* a no-op when never started, or stopped */
    axd_runtime_free(&s->rt);
    axd_route_free(&s->keyed);
    axd_plugins_unload_all(&s->rt); /* unregisters their types */
    axd_hmap_free(&s->rt.types);
    ev_signal_stop(s->loop, &s->sig_term);
    ev_signal_stop(s->loop, &s->sig_int);
    ev_signal_stop(s->loop, &s->sig_hup);
    axd_config_free(&s->cfg);
    s->loop = NULL;
}
