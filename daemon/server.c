/* The daemon's one server state: set-up from the config, the signals that stop it,
 * and the orderly shutdown (stop accepting, stop every actor, answer what is pending,
 * remove the socket). */
#include <errno.h>
#include <openssl/rand.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>

#include "ax_mem.h"
#include "log.h"
#include "server.h"
#include "cluster/cluster.h"

void ax_runtime_stop_all(ax_server *s, const char *reason);

static void signal_cb(struct ev_loop *loop, ev_signal *w, int revents)
{
    (void)loop;
    (void)revents;
    ax_server *s = w->data;
    ax_log(AX_LOG_INFO, "server", "received %s, stopping", strsignal(w->signum));
    ax_server_shutdown(s, "shutdown");
}

/* The wire id: NAME@boot-<hex>-session-<n>; the boot part is fresh at every start. */
static void make_node_id(ax_server *s)
{
    unsigned char r[8];
    char hex[17];
    if (RAND_bytes(r, sizeof r) != 1)
        memset(r, 0, sizeof r);
    for (int i = 0; i < 8; i++)
        snprintf(hex + 2 * i, 3, "%02x", r[i]);
    snprintf(s->node_id, sizeof s->node_id, "%s@boot-%s-session-1", s->cfg.node_name, hex);
}

int ax_server_init(ax_server *s, struct ev_loop *loop, const ax_config *cfg)
{
    memset(s, 0, sizeof *s);
    s->loop = loop;
    s->cfg = *cfg; /* the server now owns the config's strings */
    s->listen_fd = -1;
    ev_set_userdata(loop, s);
    s->started_at = ev_now(loop);
    ax_hash_seed_init();
    make_node_id(s);
    ax_runtime_init(s);
    ev_signal_init(&s->sig_term, signal_cb, SIGTERM);
    ev_signal_init(&s->sig_int, signal_cb, SIGINT);
    s->sig_term.data = s->sig_int.data = s;
    ev_signal_start(loop, &s->sig_term);
    ev_signal_start(loop, &s->sig_int);
    return AX_OK;
}

void ax_server_shutdown(ax_server *s, const char *why)
{
    if (s->stopping)
        return;
    s->stopping = 1;
    ax_log(AX_LOG_INFO, "server", "shutting down: %s", why);
    /* Stop accepting first so no new work arrives, then stop actors (their on_stop
     * runs and queued asks are answered), then flush those answers and close. */
    if (s->listen_fd >= 0) {
        ev_io_stop(s->loop, &s->listen_io);
        ev_timer_stop(s->loop, &s->accept_pause);
    }
    ax_cluster_stop(s); /* peers see CLOSE; remote asks fail before actors stop */
    ax_runtime_stop_all(s, why);
    ax_listener_stop(s);
    /* Release the shard leases so survivors need not wait for them to expire; the
     * loop ends when the releases are answered (or after a grace time). */
    if (!ax_route_stop(s))
        ev_break(s->loop, EVBREAK_ALL);
}

void ax_server_free(ax_server *s)
{
    if (!s || !s->loop)
        return;
    ax_listener_stop(s);
    ax_cluster_stop(s);
    ax_runtime_free(s);
    ax_route_free(s);
    ax_plugins_unload_all(s); /* unregisters their types */
    ax_hmap_free(&s->types);
    ev_signal_stop(s->loop, &s->sig_term);
    ev_signal_stop(s->loop, &s->sig_int);
    ax_config_free(&s->cfg);
    s->loop = NULL;
}
