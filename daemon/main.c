/* axactord: parse the command line and the config, load the configured plugins, open
 * the client socket, tell systemd we are ready, and run the loop until SIGTERM/SIGINT. */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ax_build_config.h"
#include "ax_mem.h"
#include "config_check.h"
#include "log.h"
#include "sdnotify.h"
#include "server.h"
#include "shard.h"

enum { OPT_CHECK = 256, OPT_PRINT, OPT_PLUGIN_DIR, OPT_SET };

static void usage(FILE *f)
{
    fprintf(f,
"Usage: axactord [OPTIONS]\n"
"\n"
"axactord is the axactor actor-runtime daemon: it loads actor plugins (.so), runs their\n"
"actors on worker threads (runtime.workers, an event loop each), and serves clients\n"
"(libaxclient, axctl) on a Unix socket. Clustered (cluster.listen), daemons find each\n"
"other through the lease store and share keyed actors by shard leases.\n"
"\n"
"Without --config it runs on the embedded defaults (see --print-config); the packaged\n"
"service passes --config " AX_SYSCONFDIR "/axactor/axactord.conf.\n"
"\n"
"Options:\n"
"  -c, --config PATH       read configuration from PATH (INI: key = value, [section])\n"
"      --check-config      validate the configuration (file and flags) and exit:\n"
"                          0 if valid, 1 with \"PATH:LINE: reason\" on stderr if not\n"
"      --print-config      print the effective configuration as a config file and exit\n"
"  -s, --socket PATH       client socket path (client.socket)\n"
"  -n, --name NAME         logical node name (node.name)\n"
"  -p, --plugin PATH|NAME  load a plugin at start (plugins.load; repeatable). A bare\n"
"                          NAME is looked up as <plugins.dir>/NAME.so\n"
"      --plugin-dir DIR    directory for bare plugin names (plugins.dir)\n"
"  -l, --log-level LEVEL   error, warn, info or debug (log.level)\n"
"      --set KEY=VALUE     set any configuration key, e.g. --set runtime.batch=128\n"
"  -h, --help              show this help and exit\n"
"  -V, --version           show the version and exit\n"
"\n"
"Flags override the file. Signals: SIGTERM and SIGINT stop every actor (on_stop runs),\n"
"answer pending requests, release the shard leases, remove the socket and exit 0. A\n"
"clustered node drains first, as `axctl drain`: it takes no more shards and hands every\n"
"one it holds to the other nodes (queued messages and waiting asks go with them) within\n"
"cluster.drain_timeout_ms; a second signal stops at once.\n"
"SIGHUP reads the file and the flags again: a bad configuration is refused (logged, the\n"
"running one stays); log.level and log.target change at once, plugins newly listed in\n"
"plugins.load are loaded, new cluster.peers are dialed (a changed address is used at the\n"
"next connect); other changed keys are logged as needing a restart. Logs go to stderr,\n"
"in the journal's format (priorities, no timestamps) when systemd connected it to the\n"
"journal (log.target = auto); there is no log file to reopen; `axctl log-level LEVEL`\n"
"changes the level at run time. SIGUSR1 and SIGUSR2 are ignored.\n"
"\n"
"Exit status: 0 clean stop; 1 configuration or start-up error; 2 usage error.\n"
"Under systemd (Type=notify) READY=1 is sent once the socket serves.\n");
}

/* Where the configuration comes from: the file, then the flags in order. Kept for SIGHUP,
 * which reads both again. */
typedef struct cfg_source {
    const char *path;
    struct { const char *key; char *val; } sets[128];
    size_t nsets;
} cfg_source;

static int load_config(const cfg_source *src, axd_config *cfg, int check, char *err, size_t errlen)
{
    axd_config_defaults(cfg);
    if (src->path && axd_config_load(cfg, src->path, err, errlen) != 0)
        goto bad;
    for (size_t i = 0; i < src->nsets; i++)
        if (axd_config_set(cfg, src->sets[i].key, src->sets[i].val, err, errlen) != 0)
            goto bad;
    if (axd_config_load_secrets(cfg, err, errlen) != 0)
        goto bad;
    /* Secure by default: a cluster without auth_token (and without allow_insecure_auth)
     * is refused here, before anything starts; --check-config reports it too. */
    if (check && (axd_cluster_config_check(cfg, err, errlen) != 0 || axd_shards_config_check(cfg, err, errlen) != 0 ||
                  axd_config_check_deploy(cfg, err, errlen) != 0))
        goto bad;
    return 0;
bad:
    axd_config_free(cfg);
    return AX_ECONFIG;
}

static int reload_config(void *ud, axd_config *out, char *err, size_t errlen)
{
    return load_config(ud, out, 1, err, errlen);
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"config", required_argument, 0, 'c'},   {"check-config", no_argument, 0, OPT_CHECK},
        {"print-config", no_argument, 0, OPT_PRINT}, {"socket", required_argument, 0, 's'},
        {"name", required_argument, 0, 'n'},     {"plugin", required_argument, 0, 'p'},
        {"plugin-dir", required_argument, 0, OPT_PLUGIN_DIR}, {"log-level", required_argument, 0, 'l'},
        {"set", required_argument, 0, OPT_SET},  {"help", no_argument, 0, 'h'},
        {"version", no_argument, 0, 'V'},        {0, 0, 0, 0},
    };
    static cfg_source src; /* flags are applied after the file, in order: kept as pairs */
    int check = 0, print = 0, opt;
    char err[512];

    while ((opt = getopt_long(argc, argv, "c:s:n:p:l:hV", opts, NULL)) != -1) {
        const char *key = NULL;
        char *val = optarg;
        switch (opt) {
        case 'c': src.path = optarg; break;
        case OPT_CHECK: check = 1; break;
        case OPT_PRINT: print = 1; break;
        case 's': key = "client.socket"; break;
        case 'n': key = "node.name"; break;
        case 'p': key = "plugins.load"; break;
        case OPT_PLUGIN_DIR: key = "plugins.dir"; break;
        case 'l': key = "log.level"; break;
        case OPT_SET: {
            char *eq = strchr(optarg, '=');
            if (!eq || eq == optarg) {
                fprintf(stderr, "axactord: --set needs KEY=VALUE, got '%s'\n", optarg);
                return 2;
            }
            *eq = 0;
            key = optarg;
            val = eq + 1;
            break;
        }
        case 'h': usage(stdout); return 0;
        case 'V': printf("axactord %s (plugin ABI %d.%d, protocol %u)\n", AX_VERSION, AX_ABI_MAJOR, AX_ABI_MINOR, AX_PROTO_VERSION); return 0;
        default: usage(stderr); return 2;
        }
        if (key) {
            if (src.nsets == sizeof src.sets / sizeof src.sets[0]) {
                fprintf(stderr, "axactord: too many configuration flags\n");
                return 2;
            }
            src.sets[src.nsets].key = key;
            src.sets[src.nsets++].val = val;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "axactord: unexpected argument '%s' (see --help)\n", argv[optind]);
        return 2;
    }

    axd_config cfg;
    if (load_config(&src, &cfg, !print, err, sizeof err) != 0) {
        fprintf(stderr, "axactord: %s\n", err);
        return 1;
    }
    if (check || print) {
        if (print)
            axd_config_print(&cfg, stdout);
        else
            printf("%s: configuration OK\n", src.path ? src.path : "(embedded defaults)");
        axd_config_free(&cfg);
        return 0;
    }

    axd_log_set_level(cfg.log_level);
    axd_log_set_target(cfg.log_target);
    signal(SIGPIPE, SIG_IGN);

    struct ev_loop *loop = ev_default_loop(EVFLAG_AUTO);
    if (!loop) {
        fprintf(stderr, "axactord: cannot initialise the event loop\n");
        axd_config_free(&cfg);
        return 1;
    }
    static axd_server server; /* the daemon's one server state */
    axd_server_init(&server, loop, &cfg);
    server.reload = reload_config;
    server.reload_ud = &src;
    axd_server_signals_start(&server);
    int rc = 0;
    for (size_t i = 0; i < server.cfg.n_plugins; i++) {
        if (axd_plugin_load(&server.rt, server.cfg.plugins[i], NULL, err, sizeof err) != 0) {
            axd_log(AX_LOG_ERROR, "plugin", "cannot load configured plugin: %s", err);
            rc = 1;
            goto out;
        }
    }
    if (axd_server_route_start(&server, NULL, err, sizeof err) != 0) {
        axd_log(AX_LOG_ERROR, "shard", "%s", err);
        rc = 1;
        goto out;
    }
    if (server.cfg.lease_store && strcmp(server.cfg.lease_store, "memory") == 0) {
        /* The embedded store grants at once: let the first acquisitions land before
         * serving, so keyed requests right after READY find their shards (bounded). */
        for (int i = 0; i < 1000 && axd_shards_count_owned(server.keyed.shards) < axd_shards_target(server.keyed.shards); i++)
            ev_run(loop, EVRUN_NOWAIT);
    }
    if (axd_server_workers_start(&server, server.cfg.workers, err, sizeof err) != 0) {
        axd_log(AX_LOG_ERROR, "server", "%s", err);
        rc = 1;
        goto out;
    }
    if (axd_server_listener_start(&server, err, sizeof err) != 0) {
        axd_log(AX_LOG_ERROR, "server", "%s", err);
        rc = 1;
        goto out;
    }
    if (axd_server_cluster_start(&server, err, sizeof err) != 0) {
        axd_log(AX_LOG_ERROR, "cluster", "%s", err);
        rc = 1;
        goto out;
    }
    axd_members_start(&server);
    if (axd_server_metrics_start(&server, err, sizeof err) != 0) {
        axd_log(AX_LOG_ERROR, "metrics", "%s", err);
        rc = 1;
        goto out;
    }
    axd_log(AX_LOG_INFO, "server", "axactord %s serving as %s", AX_VERSION, server.rt.node_id);
    axd_sd_notify("READY=1\nSTATUS=serving");
    ev_run(loop, 0);
    axd_sd_notify("STOPPING=1");
    axd_members_finish(&server); /* the record's delete, if the loop ended before its answer */
    rc = server.exit_code;
out:
    axd_server_free(&server);
    ev_loop_destroy(loop);
    return rc;
}
