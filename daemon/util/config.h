/* axactord configuration: an INI-style file ("key = value", "[section]" makes the
 * following keys "section.key", '#' comments, repeatable keys for lists). One table in
 * config.c defines every key with its type, default, bounds and doc line;
 * conf/axactord.conf documents the same keys (tests/test_config.c checks they agree).
 * Command-line flags override file values through axd_config_set(). */
#ifndef AXD_CONFIG_H
#define AXD_CONFIG_H
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

typedef struct axd_config {
    /* [node] */
    char *node_name;           /* node.name, default: the host name */
    /* [client] */
    char *socket_path;         /* client.socket, default /run/axactor/axactord.sock */
    uint32_t socket_mode;      /* client.socket_mode, octal, default 0660 */
    char *socket_group;        /* client.socket_group, default "" (daemon's group) */
    uint32_t max_clients;      /* client.max_clients, default 1024 */
    uint32_t max_frame;        /* client.max_frame, bytes, default 1 MiB */
    uint32_t client_outbuf_max;/* client.outbuf_max, bytes, default 8 MiB */
    uint32_t client_hello_timeout_ms; /* client.hello_timeout_ms, default 10000 */
    /* [log] */
    int log_level;             /* log.level: error|warn|info|debug, default info */
    char *log_target;          /* log.target: stderr|journal, default stderr */
    /* [runtime] */
    uint32_t mailbox_capacity; /* runtime.mailbox_capacity, default 1024 */
    uint32_t workers;          /* runtime.workers, default: the CPUs of the affinity mask */
    uint32_t batch;            /* runtime.batch: messages per actor turn, default 64 */
    uint32_t ask_timeout_ms;   /* runtime.ask_timeout_ms, default 5000 */
    uint32_t max_actors;       /* runtime.max_actors, default 4194304 */
    uint32_t idle_timeout_ms;  /* runtime.idle_timeout_ms: keyed actors, 0 = never, default 300000 */
    uint32_t offload_threads;  /* runtime.offload_threads, default 4 */
    uint32_t offload_queue;    /* runtime.offload_queue, default 1024 */
    uint32_t events_buffer;    /* runtime.events_buffer: per-subscriber lifecycle buffer, default 1024 */
    /* [plugins] */
    char *plugin_dir;          /* plugins.dir: relative plugin names are looked up here */
    char **plugins;            /* plugins.load (repeatable): plugins loaded at start */
    size_t n_plugins;
    char *plugins_runtime_load; /* plugins.runtime_load: off | owner | group, default owner */
    char **plugins_trusted_dirs; /* plugins.trusted_dirs (repeatable): more run-time load dirs */
    size_t n_plugins_trusted_dirs;
    /* [shards] */
    uint32_t shard_count;      /* shards.count: 1..65536, default 256 */
    /* [state]: durable keyed actors (kept in the lease store) */
    char *state_persist;       /* state.persist: on_change|off, default on_change */
    uint32_t state_max_bytes;  /* state.max_bytes: 16..64 MiB, default 1 MiB */
    char *state_store;         /* state.store: lease|redis, default lease */
    char *state_redis_host;    /* state.redis_*: the Redis of state.store = redis */
    uint32_t state_redis_port;
    char *state_redis_password; /* secret */
    char *state_redis_password_file;
    uint32_t state_redis_db;
    char *state_redis_prefix;
    /* [lease] (checked together by axd_shards_config_check in shard.h) */
    char *lease_store;         /* lease.store: memory|redis, default memory */
    uint32_t lease_ttl_ms;     /* lease.ttl_ms, default 10000 */
    uint32_t lease_renew_interval_ms; /* lease.renew_interval_ms, default 3000 */
    uint32_t lease_acquire_interval_ms; /* lease.acquire_interval_ms, 0 = the renew interval */
    uint32_t lease_safety_margin_ms;  /* lease.safety_margin_ms, default 1000 */
    char *redis_host;          /* lease.redis_host, default 127.0.0.1 */
    uint32_t redis_port;       /* lease.redis_port, default 6379 */
    char *redis_password;      /* lease.redis_password, default "" (no AUTH); secret */
    char *redis_password_file; /* lease.redis_password_file: read into redis_password */
    uint32_t redis_db;         /* lease.redis_db, default 0 */
    char *redis_prefix;        /* lease.redis_prefix, default "axactor:" */
    char *lease_store_name;    /* lease.store_name: identity compared in the handshake, default "" */
    uint32_t redis_connect_timeout_ms; /* lease.redis_connect_timeout_ms, default 2000 */
    char *etcd_endpoints;      /* lease.etcd_endpoints: http(s)://HOST:PORT,... */
    char *etcd_prefix;         /* lease.etcd_prefix, default "axactor/" */
    char *etcd_cacert, *etcd_cert, *etcd_key; /* lease.etcd_cacert/_cert/_key: TLS */
    char *etcd_user, *etcd_password; /* lease.etcd_user / _password (secret): etcd authentication */
    char *etcd_password_file;        /* lease.etcd_password_file: read into etcd_password */
    uint32_t etcd_timeout_ms;  /* lease.etcd_timeout_ms, default 2000 */
    /* [cluster] (daemon/cluster/; enabled when listen or peers is set) */
    char *cluster_listen;      /* cluster.listen: "host:port" for peers, default "" (off) */
    char *cluster_advertise;   /* cluster.advertise: published address, default "" (= listen) */
    uint8_t cluster_membership; /* cluster.membership: through the lease store, default true */
    char *metrics_listen; /* metrics.listen: "" = no metrics endpoint */
    uint32_t cluster_drain_timeout_ms; /* cluster.drain_timeout_ms, default 20000 */
    uint32_t cluster_member_ttl_ms; /* cluster.member_ttl_ms, default 6000 */
    char **cluster_peers;      /* cluster.peers (repeatable): "name=host:port" address book */
    size_t n_cluster_peers;
    char *cluster_auth_token;  /* cluster.auth_token: shared secret, default ""; secret */
    char *cluster_auth_token_file; /* cluster.auth_token_file: read into cluster_auth_token */
    uint8_t cluster_allow_insecure; /* cluster.allow_insecure_auth, default false */
    uint32_t cluster_hb_interval_ms;   /* cluster.heartbeat_interval_ms, default 1000 */
    uint32_t cluster_hb_timeout_ms;    /* cluster.heartbeat_timeout_ms, default 5000 */
    uint32_t cluster_connect_timeout_ms; /* cluster.connect_timeout_ms, default 3000 */
    uint32_t cluster_backoff_min_ms;   /* cluster.reconnect_backoff_min_ms, default 100 */
    uint32_t cluster_backoff_max_ms;   /* cluster.reconnect_backoff_max_ms, default 5000 */
    uint32_t cluster_max_frame;        /* cluster.max_frame, bytes, default 1 MiB */
    uint8_t cluster_keepalive;         /* cluster.keepalive, default true */
    uint32_t cluster_keepalive_idle_ms;     /* cluster.keepalive_idle, default 30 s */
    uint32_t cluster_keepalive_interval_ms; /* cluster.keepalive_interval, default 10 s */
    uint32_t cluster_keepalive_probes;      /* cluster.keepalive_probes, default 3 */
    uint8_t cluster_tls;               /* cluster.tls, default false */
    char *cluster_tls_cert, *cluster_tls_key, *cluster_tls_ca; /* PEM paths, default "" */
    /* Where each value came from (owned, see axd_config_origin); NULL = all defaults. */
    struct axd_config_origins *origins;
} axd_config;

/* Fill every field with its default. Returns 0. */
int axd_config_defaults(axd_config *c);
/* Parse a file over the current values. On error returns AX_ECONFIG and writes
 * "PATH:LINE: reason" into err; *c is left unchanged (parse into a copy, then swap). */
int axd_config_load(axd_config *c, const char *path, char *err, size_t errlen);
/* Same, from a string (for tests); name is used in messages. */
int axd_config_load_string(axd_config *c, const char *text, const char *name, char *err, size_t errlen);
/* Set one key ("runtime.batch", "64") as if read from a file; AX_ECONFIG + err on a bad
 * key or value, *c unchanged. */
int axd_config_set(axd_config *c, const char *key, const char *value, char *err, size_t errlen);
/* Where key's value (item-th entry for a list key) was set: "PATH:LINE" for a file line,
 * "command line (KEY)" for a flag (--set or its short form), NULL for the built-in default. Valid until c
 * changes. For messages of checks made after parsing ("PATH:LINE: reason"). */
const char *axd_config_origin(const axd_config *c, const char *key, size_t item);
/* Free owned strings; accepts a zeroed struct; leaves *c zeroed. */
void axd_config_free(axd_config *c);
/* Fill the secrets from where the config says they are: cluster.auth_token_file,
 * lease.redis_password_file, lease.etcd_password_file and state.redis_password_file,
 * else the systemd credentials of the same names without "_file" ("cluster.auth_token",
 * "lease.redis_password", ...) in $CREDENTIALS_DIRECTORY when the key is empty. A file must be
 * a regular file of at most 4 KiB (one trailing newline is dropped). 0, or AX_ECONFIG
 * with "ORIGIN: reason" (the path and errno for a file that cannot be read); both a
 * value and a _file for one secret is an error. */
int axd_config_load_secrets(axd_config *c, char *err, size_t errlen);
/* Write every key with its current value as a valid config file (axactord --print-config);
 * secrets are never written (a comment says whether they are set). */
void axd_config_print(const axd_config *c, FILE *out);
/* The key table, for tests and tools: key i's full name ("runtime.batch"), NULL past the end. */
size_t axd_config_key_count(void);
const char *axd_config_key_name(size_t i);
/* true/yes/on/1 -> 1, false/no/off/0 -> 0 (the file syntax for booleans, for flags and
 * environment variables too). 0, or AX_ECONFIG with *out untouched. */
int axd_config_parse_bool(const char *s, int *out);

/* "host:port" or "[v6]:port" -> host and port strings (0), or -1. */
int axd_split_hostport(const char *s, char *host, size_t hn, char *port, size_t pn);

#endif
