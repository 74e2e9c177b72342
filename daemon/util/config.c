/* axactord configuration (see config.h). One table, keys[] below, defines every key:
 * its field, type, default, bounds and doc line. Defaults, parsing, copying, freeing and
 * printing all walk that table, so adding a key is one line here (plus its documentation
 * in conf/axactord.conf, which tests/test_config.c checks). */
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ax_build_config.h"
#include "ax_mem.h"
#include "axactor/errors.h"
#include "frame.h"
#include "log.h"

#define CFG_LINE_MAX 4096       /* longest accepted line, without its '\n' */
#define CFG_FILE_MAX (1u << 20) /* a config file larger than this is a mistake, not a config */

enum ktype {
    K_STR,      /* char *; min..max = length */
    K_LIST,     /* char ** + size_t count at count_off; repeatable; min..max = item length */
    K_UINT,     /* unsigned integer of the field's width */
    K_SIZE,     /* bytes; accepts K/M/G (KiB/MiB/GiB) suffixes */
    K_DURATION, /* milliseconds; accepts ms/s/min/h suffixes */
    K_BOOL,     /* true/false/yes/no/on/off/1/0, stored in a bool/uint8 field */
    K_OCTAL,    /* file mode, octal digits */
    K_LEVEL,    /* log level name, stored as int */
};

typedef struct key_def {
    const char *name; /* "section.key"; keys of one section stay together */
    enum ktype type;
    size_t off, size; /* the field in axd_config */
    size_t count_off; /* K_LIST: its size_t element count */
    const char *def;  /* default as file text, parsed like a file value */
    void (*def_fn)(char *buf, size_t n); /* or a default computed at run time */
    uint64_t min, max;
    const char *(*check)(const char *v); /* strings: NULL if fine, else why not */
    int secret;                          /* never printed by axd_config_print */
    const char *doc;                     /* one line, printed by axd_config_print */
} key_def;

static const char *check_node_name(const char *v);
static const char *check_abs_path(const char *v);
static const char *check_log_target(const char *v);
static void default_node_name(char *buf, size_t n);
static void default_workers(char *buf, size_t n);
static const char *check_listen(const char *v);
static const char *check_metrics_listen(const char *v);
static const char *check_peer_entry(const char *v);
static const char *check_lease_store(const char *v);
static const char *check_store_name(const char *v);
static const char *check_runtime_load(const char *v);
static const char *check_state_persist(const char *v);
static const char *check_state_store(const char *v);

#define FIELD(f) .off = offsetof(axd_config, f), .size = sizeof(((axd_config *)0)->f)
#define KEY(n, t, f, d, lo, hi, ...) {.name = n, .type = t, FIELD(f), .def = d, .min = lo, .max = hi, __VA_ARGS__}

static const key_def keys[] = {
    KEY("node.name", K_STR, node_name, NULL, 1, 63, .def_fn = default_node_name, .check = check_node_name,
        .doc = "logical node name, 1..63 of [A-Za-z0-9._-]; default: the host name"),
    KEY("client.socket", K_STR, socket_path, "/run/axactor/axactord.sock", 1, 107, .check = check_abs_path,
        .doc = "absolute path of the client Unix socket (< 108 bytes)"),
    KEY("client.socket_mode", K_OCTAL, socket_mode, "0660", 0, 0777, .doc = "socket file mode, octal"),
    KEY("client.socket_group", K_STR, socket_group, "", 0, 255,
        .doc = "group owning the socket; empty = the daemon's group"),
    KEY("client.max_clients", K_UINT, max_clients, "1024", 1, 1048576, .doc = "concurrent client connections"),
    KEY("client.max_frame", K_SIZE, max_frame, "1048576", AX_FRAME_MAX_MIN, AX_FRAME_MAX_LIMIT,
        .doc = "largest frame body accepted from a client, bytes"),
    KEY("client.outbuf_max", K_SIZE, client_outbuf_max, "8388608", 65536, 1073741824,
        .doc = "unsent bytes queued to one client before its requests stop being read"),
    KEY("client.hello_timeout_ms", K_DURATION, client_hello_timeout_ms, "10000", 10, 600000,
        .doc = "a client that sends no HELLO this long after connecting is closed, milliseconds"),
    KEY("log.level", K_LEVEL, log_level, "info", 0, 0, .doc = "error, warn, info or debug"),
    KEY("log.target", K_STR, log_target, "auto", 1, 16, .check = check_log_target,
        .doc = "auto (journal when $JOURNAL_STREAM is our stderr, else stderr), stderr (ISO timestamps) or "
               "journal (priority prefixes for journald)"),
    KEY("runtime.mailbox_capacity", K_UINT, mailbox_capacity, "1024", 1, 16777216,
        .doc = "default bound of an actor's user mailbox, messages"),
    KEY("runtime.workers", K_UINT, workers, NULL, 1, 256, .def_fn = default_workers,
        .doc = "worker threads, each with its own event loop and actors; default: the CPUs the daemon may run on"),
    KEY("runtime.batch", K_UINT, batch, "64", 1, 65536, .doc = "messages an actor handles per turn"),
    KEY("runtime.ask_timeout_ms", K_DURATION, ask_timeout_ms, "5000", 1, 86400000,
        .doc = "default ask timeout, milliseconds"),
    KEY("runtime.max_actors", K_UINT, max_actors, "4194304", 1, 1073741824, .doc = "live actors at most"),
    KEY("runtime.idle_timeout_ms", K_DURATION, idle_timeout_ms, "300000", 0, 2592000000u,
        .doc = "stop keyed actors idle this long, milliseconds; 0 = never"),
    KEY("runtime.offload_threads", K_UINT, offload_threads, "4", 1, 256,
        .doc = "threads running plugins' blocking work (ax_offload); started at the first job"),
    KEY("runtime.offload_queue", K_UINT, offload_queue, "1024", 1, 1048576,
        .doc = "offload jobs waiting at most; beyond, ax_offload fails with EFULL"),
    KEY("runtime.events_buffer", K_UINT, events_buffer, "1024", 1, 1048576,
        .doc = "lifecycle events buffered per subscriber"),
    KEY("plugins.dir", K_STR, plugin_dir, AX_PLUGINDIR, 1, AX_PATH_MAX - 1,
        .doc = "directory searched for plugins given by name"),
    KEY("plugins.load", K_LIST, plugins, NULL, 1, AX_PATH_MAX - 1, .count_off = offsetof(axd_config, n_plugins),
        .doc = "plugin loaded at start (name or path); repeat the line for more"),
    KEY("plugins.runtime_load", K_STR, plugins_runtime_load, "owner", 2, 5, .check = check_runtime_load,
        .doc = "who may load plugins at run time: off, owner (root or the daemon's user) or group (any client)"),
    KEY("plugins.trusted_dirs", K_LIST, plugins_trusted_dirs, NULL, 1, AX_PATH_MAX - 1,
        .count_off = offsetof(axd_config, n_plugins_trusted_dirs), .check = check_abs_path,
        .doc = "more directories run-time loads may come from (besides plugins.dir); repeat the line"),
    KEY("shards.count", K_UINT, shard_count, "256", 1, 65536,
        .doc = "number of shards keys hash to; every node of a cluster must agree"),
    KEY("lease.store", K_STR, lease_store, "memory", 1, 16, .check = check_lease_store,
        .doc = "lease store: memory (one node), redis or etcd"),
    KEY("lease.ttl_ms", K_DURATION, lease_ttl_ms, "10000", 100, 3600000,
        .doc = "lease time to live in the store, milliseconds"),
    KEY("lease.renew_interval_ms", K_DURATION, lease_renew_interval_ms, "3000", 10, 3600000,
        .doc = "renew a lease this long after its last acquire/renew, milliseconds"),
    KEY("lease.acquire_interval_ms", K_DURATION, lease_acquire_interval_ms, "0", 0, 3600000,
        .doc = "look for free shards this often, milliseconds; 0 = lease.renew_interval_ms (a released "
               "shard is taken at once: its former owner tells the others)"),
    KEY("lease.safety_margin_ms", K_DURATION, lease_safety_margin_ms, "1000", 10, 3600000,
        .doc = "stop serving a shard this long before its lease can expire, milliseconds"),
    KEY("lease.redis_host", K_STR, redis_host, "127.0.0.1", 1, 255, .doc = "Redis address (an IP address avoids DNS)"),
    KEY("lease.redis_port", K_UINT, redis_port, "6379", 1, 65535, .doc = "Redis TCP port"),
    KEY("lease.redis_password", K_STR, redis_password, "", 0, 512, .secret = 1,
        .doc = "Redis AUTH password; empty = no AUTH (prefer redis_password_file)"),
    KEY("lease.redis_password_file", K_STR, redis_password_file, "", 0, AX_PATH_MAX - 1,
        .doc = "file holding the Redis password (or systemd credential lease.redis_password)"),
    KEY("lease.redis_db", K_UINT, redis_db, "0", 0, 1000000, .doc = "Redis database number (SELECT)"),
    KEY("lease.redis_prefix", K_STR, redis_prefix, "axactor:", 0, 200, .doc = "prefix of every Redis key"),
    KEY("lease.etcd_endpoints", K_STR, etcd_endpoints, "http://127.0.0.1:2379", 1, 2047,
        .doc = "store = etcd: the etcd members' client URLs, comma-separated (http://HOST:PORT or https://)"),
    KEY("lease.etcd_prefix", K_STR, etcd_prefix, "axactor/", 0, 200, .doc = "store = etcd: prefix of every key"),
    KEY("lease.etcd_cacert", K_STR, etcd_cacert, "", 0, AX_PATH_MAX - 1,
        .doc = "store = etcd over https: CA file that signed the members' certificates (empty: the system's)"),
    KEY("lease.etcd_cert", K_STR, etcd_cert, "", 0, AX_PATH_MAX - 1,
        .doc = "store = etcd over https: this node's client certificate (with lease.etcd_key)"),
    KEY("lease.etcd_key", K_STR, etcd_key, "", 0, AX_PATH_MAX - 1,
        .doc = "store = etcd over https: the client certificate's private key"),
    KEY("lease.etcd_user", K_STR, etcd_user, "", 0, 255,
        .doc = "store = etcd with authentication on: the etcd user (empty: no authentication)"),
    KEY("lease.etcd_password", K_STR, etcd_password, "", 0, 512, .secret = 1,
        .doc = "store = etcd: the etcd user's password (prefer etcd_password_file)"),
    KEY("lease.etcd_password_file", K_STR, etcd_password_file, "", 0, AX_PATH_MAX - 1,
        .doc = "file holding the etcd password (or systemd credential lease.etcd_password)"),
    KEY("lease.etcd_timeout_ms", K_DURATION, etcd_timeout_ms, "2000", 10, 600000,
        .doc = "store = etcd: bound on one request to a member (connect included), milliseconds"),
    KEY("lease.store_name", K_STR, lease_store_name, "", 0, 255, .check = check_store_name,
        .doc = "name of the lease store compared between peers; empty: redis:HOST:PORT/DB/PREFIX or "
               "etcd:ENDPOINTS/PREFIX"),
    KEY("state.persist", K_STR, state_persist, "on_change", 3, 9, .check = check_state_persist,
        .doc = "durable keyed actors: on_change (load at activation, write after a change, answer after the "
               "write) or off (their state is not kept)"),
    KEY("state.max_bytes", K_SIZE, state_max_bytes, "1048576", 16, 67108864,
        .doc = "largest state record of one durable keyed actor, bytes"),
    KEY("state.store", K_STR, state_store, "lease", 4, 5, .check = check_state_store,
        .doc = "where durable state is kept: lease (the lease store, fenced by its lease records) or redis "
               "(a Redis of its own, the state.redis_* keys, fenced by per-shard epoch fences)"),
    KEY("state.redis_host", K_STR, state_redis_host, "127.0.0.1", 1, 255,
        .doc = "state.store = redis: Redis address (an IP address avoids DNS)"),
    KEY("state.redis_port", K_UINT, state_redis_port, "6379", 1, 65535, .doc = "state.store = redis: Redis TCP port"),
    KEY("state.redis_password", K_STR, state_redis_password, "", 0, 512, .secret = 1,
        .doc = "state.store = redis: AUTH password; empty = no AUTH (prefer redis_password_file)"),
    KEY("state.redis_password_file", K_STR, state_redis_password_file, "", 0, AX_PATH_MAX - 1,
        .doc = "file holding state.redis_password (or systemd credential state.redis_password)"),
    KEY("state.redis_db", K_UINT, state_redis_db, "0", 0, 1000000,
        .doc = "state.store = redis: database number (SELECT)"),
    KEY("state.redis_prefix", K_STR, state_redis_prefix, "axactor:", 0, 200,
        .doc = "state.store = redis: prefix of every key"),
    KEY("lease.redis_connect_timeout_ms", K_DURATION, redis_connect_timeout_ms, "2000", 10, 600000,
        .doc = "Redis connect timeout, and the longest wait for one reply, milliseconds"),
    KEY("cluster.advertise", K_STR, cluster_advertise, "", 0, 255, .check = check_listen,
        .doc = "host:port the other members dial, published in the lease store; empty = cluster.listen"),
    KEY("cluster.membership", K_BOOL, cluster_membership, "true", 0, 1,
        .doc = "register this node in the lease store and dial the members found there (cluster.peers "
               "become optional seeds); needs lease.store = redis or etcd"),
    KEY("cluster.drain_timeout_ms", K_DURATION, cluster_drain_timeout_ms, "20000", 100, 3600000,
        .doc = "SIGTERM drains first: the shards are handed over to the other nodes within this long "
               "(milliseconds; keep it below systemd's TimeoutStopSec), then the daemon stops"),
    KEY("cluster.member_ttl_ms", K_DURATION, cluster_member_ttl_ms, "6000", 300, 3600000,
        .doc = "a member record lives this long unless renewed (every third of it), milliseconds"),
    KEY("metrics.listen", K_STR, metrics_listen, "", 0, 255, .check = check_metrics_listen,
        .doc = "IP:port of the Prometheus endpoint (GET /metrics); empty = off. It is not "
               "authenticated: bind it to loopback or a management network"),
    KEY("cluster.listen", K_STR, cluster_listen, "", 0, 255, .check = check_listen,
        .doc = "host:port peers connect to; empty = accept no peers"),
    KEY("cluster.peers", K_LIST, cluster_peers, NULL, 3, 320, .count_off = offsetof(axd_config, n_cluster_peers),
        .check = check_peer_entry, .doc = "address book entry name=host:port; repeat the line for more"),
    KEY("cluster.auth_token", K_STR, cluster_auth_token, "", 0, 1024, .secret = 1,
        .doc = "shared secret every node of the cluster holds (prefer auth_token_file)"),
    KEY("cluster.auth_token_file", K_STR, cluster_auth_token_file, "", 0, AX_PATH_MAX - 1,
        .doc = "file holding auth_token (or systemd credential cluster.auth_token)"),
    KEY("cluster.allow_insecure_auth", K_BOOL, cluster_allow_insecure, "false", 0, 1,
        .doc = "run a cluster without auth_token (no authentication: tests only)"),
    KEY("cluster.heartbeat_interval_ms", K_DURATION, cluster_hb_interval_ms, "1000", 10, 600000,
        .doc = "heartbeat period on the control channel, milliseconds"),
    KEY("cluster.heartbeat_timeout_ms", K_DURATION, cluster_hb_timeout_ms, "5000", 20, 3600000,
        .doc = "declare a peer down after this long without a heartbeat, milliseconds"),
    KEY("cluster.connect_timeout_ms", K_DURATION, cluster_connect_timeout_ms, "3000", 10, 600000,
        .doc = "TCP connect (and handshake) timeout, milliseconds"),
    KEY("cluster.reconnect_backoff_min_ms", K_DURATION, cluster_backoff_min_ms, "100", 1, 3600000,
        .doc = "first reconnect delay, milliseconds; doubles up to the max"),
    KEY("cluster.reconnect_backoff_max_ms", K_DURATION, cluster_backoff_max_ms, "5000", 1, 3600000,
        .doc = "longest reconnect delay, milliseconds"),
    KEY("cluster.max_frame", K_SIZE, cluster_max_frame, "1048576", AX_FRAME_MAX_MIN, AX_FRAME_MAX_LIMIT,
        .doc = "largest peer frame body sent or accepted, bytes"),
    KEY("cluster.keepalive", K_BOOL, cluster_keepalive, "true", 0, 1, .doc = "TCP keepalive on peer links"),
    KEY("cluster.keepalive_idle", K_DURATION, cluster_keepalive_idle_ms, "30000", 1000, 86400000,
        .doc = "idle time before the first keepalive probe, milliseconds (whole seconds)"),
    KEY("cluster.keepalive_interval", K_DURATION, cluster_keepalive_interval_ms, "10000", 1000, 86400000,
        .doc = "time between keepalive probes, milliseconds (whole seconds)"),
    KEY("cluster.keepalive_probes", K_UINT, cluster_keepalive_probes, "3", 1, 127,
        .doc = "unanswered keepalive probes before the link is dropped"),
    KEY("cluster.tls", K_BOOL, cluster_tls, "false", 0, 1, .doc = "TLS on peer links (needs tls_cert, tls_key, tls_ca)"),
    KEY("cluster.tls_cert", K_STR, cluster_tls_cert, "", 0, AX_PATH_MAX - 1, .doc = "PEM certificate of this node"),
    KEY("cluster.tls_key", K_STR, cluster_tls_key, "", 0, AX_PATH_MAX - 1, .doc = "PEM private key of this node"),
    KEY("cluster.tls_ca", K_STR, cluster_tls_ca, "", 0, AX_PATH_MAX - 1,
        .doc = "PEM CA bundle peers' certificates are verified against"),
};
#define NKEYS (sizeof keys / sizeof keys[0])

/* Per key: where its value was last set; per list key also one origin per item. */
struct axd_config_origins {
    char *key[NKEYS];
    char **items[NKEYS];
    size_t n_items[NKEYS];
};

static void origins_free(struct axd_config_origins *o)
{
    if (!o)
        return;
    for (size_t i = 0; i < NKEYS; i++) {
        ax_free(o->key[i]);
        for (size_t j = 0; j < o->n_items[i]; j++)
            ax_free(o->items[i][j]);
        ax_free(o->items[i]);
    }
    ax_free(o);
}

static struct axd_config_origins *origins_copy(const struct axd_config_origins *o)
{
    if (!o)
        return NULL;
    struct axd_config_origins *d = ax_calloc(1, sizeof *d);
    for (size_t i = 0; i < NKEYS; i++) {
        d->key[i] = o->key[i] ? ax_strdup(o->key[i]) : NULL;
        d->n_items[i] = o->n_items[i];
        d->items[i] = o->n_items[i] ? ax_malloc(o->n_items[i] * sizeof *d->items[i]) : NULL;
        for (size_t j = 0; j < o->n_items[i]; j++)
            d->items[i][j] = ax_strdup(o->items[i][j]);
    }
    return d;
}

size_t axd_config_key_count(void) { return NKEYS; }
const char *axd_config_key_name(size_t i) { return i < NKEYS ? keys[i].name : NULL; }

/* ---- value checks ---- */

static int name_char(char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '.' ||
           ch == '_' || ch == '-';
}

static const char *check_node_name(const char *v)
{
    if (strchr(v, '@'))
        return "'@' is reserved for wire ids (name@boot-...)";
    for (; *v; v++)
        if (!name_char(*v))
            return "only A-Z a-z 0-9 . _ - are allowed";
    return NULL;
}

static const char *check_abs_path(const char *v) { return v[0] == '/' ? NULL : "must be an absolute path"; }

/* "host:port" / "[v6]:port" with a port 1..65535 (the cluster overlay parses it again). */
static const char *check_hostport(const char *v)
{
    const char *colon = v[0] == '[' ? strstr(v, "]:") : strrchr(v, ':');
    if (!colon || colon == v)
        return "must be host:port";
    colon += v[0] == '[' ? 2 : 1;
    size_t n = strlen(colon);
    if (!n || n > 5 || strspn(colon, "0123456789") != n || atoi(colon) < 1 || atoi(colon) > 65535)
        return "port must be 1..65535";
    return NULL;
}

static const char *check_listen(const char *v) { return *v ? check_hostport(v) : NULL; }

int axd_split_hostport(const char *s, char *host, size_t hn, char *port, size_t pn)
{
    const char *colon;
    if (s[0] == '[') {
        const char *rb = strchr(s, ']');
        if (!rb || rb[1] != ':')
            return -1;
        snprintf(host, hn, "%.*s", (int)(rb - s - 1), s + 1);
        colon = rb + 1;
    } else {
        colon = strrchr(s, ':');
        if (!colon || colon == s)
            return -1;
        snprintf(host, hn, "%.*s", (int)(colon - s), s);
    }
    if (!colon[1] || strspn(colon + 1, "0123456789") != strlen(colon + 1) || strlen(colon + 1) > 5)
        return -1;
    snprintf(port, pn, "%s", colon + 1);
    return atoi(port) <= 65535 ? 0 : -1;
}

/* metrics.listen: empty (off), or a numeric address and a port (no name to resolve) */
static const char *check_metrics_listen(const char *v)
{
    if (!*v)
        return NULL;
    const char *why = check_hostport(v);
    if (why)
        return why;
    char host[256], port[8];
    unsigned char buf[16];
    if (axd_split_hostport(v, host, sizeof host, port, sizeof port) != 0 ||
        (inet_pton(AF_INET, host, buf) != 1 && inet_pton(AF_INET6, host, buf) != 1))
        return "must be an IP address and a port, e.g. 127.0.0.1:9464 or [::1]:9464 (no host names)";
    return NULL;
}

static const char *check_peer_entry(const char *v)
{
    const char *eq = strchr(v, '=');
    if (!eq || eq == v || eq - v > 63)
        return "must be name=host:port";
    for (const char *p = v; p < eq; p++)
        if (!name_char(*p))
            return "node names use only A-Z a-z 0-9 . _ -";
    if (strpbrk(eq + 1, ", \t;"))
        return "one peer per value: repeat cluster.peers (one line each) instead of a list";
    return check_hostport(eq + 1);
}

static const char *check_log_target(const char *v)
{
    return !strcmp(v, "auto") || !strcmp(v, "stderr") || !strcmp(v, "journal") ? NULL
                                                                                : "must be auto, stderr or journal";
}

static const char *check_state_store(const char *v)
{
    return !strcmp(v, "lease") || !strcmp(v, "redis") ? NULL : "must be lease or redis";
}

static const char *check_state_persist(const char *v)
{
    return !strcmp(v, "on_change") || !strcmp(v, "off") ? NULL : "must be on_change or off";
}

static const char *check_runtime_load(const char *v)
{
    return !strcmp(v, "off") || !strcmp(v, "owner") || !strcmp(v, "group") ? NULL : "must be off, owner or group";
}

static const char *check_store_name(const char *v)
{
    for (; *v; v++)
        if ((unsigned char)*v < 0x21 || (unsigned char)*v > 0x7e)
            return "printable ASCII without spaces";
    return NULL;
}

static const char *check_lease_store(const char *v)
{
    return !strcmp(v, "memory") || !strcmp(v, "redis") || !strcmp(v, "etcd") ? NULL : "must be memory, redis or etcd";
}

/* The host name, made into a valid node name: systemd may hand us anything. */
/* As many workers as CPUs this process may run on (its affinity mask: taskset, systemd
 * CPUAffinity=, a container's cpuset), at most 256. */
static void default_workers(char *buf, size_t n)
{
    cpu_set_t set;
    int cpus = sched_getaffinity(0, sizeof set, &set) == 0 ? CPU_COUNT(&set) : 1;
    snprintf(buf, n, "%d", cpus < 1 ? 1 : cpus > 256 ? 256 : cpus);
}

static void default_node_name(char *buf, size_t n)
{
    char host[256] = "";
    size_t len = 0;
    if (gethostname(host, sizeof host - 1) != 0)
        host[0] = 0;
    for (const char *h = host; *h && len < 63 && len + 1 < n; h++)
        buf[len++] = name_char(*h) ? *h : '-';
    buf[len] = 0;
    if (!len)
        snprintf(buf, n, "node");
}

/* ---- typed field access ---- */

static void *field(const axd_config *c, const key_def *k) { return (char *)c + k->off; }

static void put_uint(void *p, size_t size, uint64_t v)
{
    uint8_t u8 = (uint8_t)v;
    uint16_t u16 = (uint16_t)v;
    uint32_t u32 = (uint32_t)v;
    memcpy(p, size == 1 ? (void *)&u8 : size == 2 ? (void *)&u16 : size == 4 ? (void *)&u32 : (void *)&v, size);
}

static uint64_t get_uint(const void *p, size_t size)
{
    uint8_t u8;
    uint16_t u16;
    uint32_t u32;
    uint64_t u64;
    switch (size) {
    case 1: memcpy(&u8, p, 1); return u8;
    case 2: memcpy(&u16, p, 2); return u16;
    case 4: memcpy(&u32, p, 4); return u32;
    default: memcpy(&u64, p, 8); return u64;
    }
}

static char ***list_items(const axd_config *c, const key_def *k) { return field(c, k); }
static size_t *list_count(const axd_config *c, const key_def *k) { return (size_t *)((char *)c + k->count_off); }

static void list_clear(axd_config *c, const key_def *k)
{
    char **items = *list_items(c, k);
    for (size_t i = 0; i < *list_count(c, k); i++)
        ax_free(items[i]);
    ax_free(items);
    *list_items(c, k) = NULL;
    *list_count(c, k) = 0;
}

/* ---- value parsing ---- */

static int fail(char *err, size_t n, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail(char *err, size_t n, const char *fmt, ...)
{
    if (err && n) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, n, fmt, ap);
        va_end(ap);
    }
    return AX_ECONFIG;
}

typedef struct unit {
    const char *suffix;
    uint64_t mul;
} unit;
static const unit no_units[] = {{"", 1}, {NULL, 0}};
static const unit size_units[] = {{"", 1},          {"K", 1u << 10}, {"KiB", 1u << 10}, {"M", 1u << 20},
                                  {"MiB", 1u << 20}, {"G", 1u << 30}, {"GiB", 1u << 30}, {NULL, 0}};
static const unit ms_units[] = {{"", 1}, {"ms", 1}, {"s", 1000}, {"min", 60000}, {"h", 3600000}, {NULL, 0}};

/* Decimal digits and an optional unit suffix. 0 ok, -1 malformed, -2 overflow. */
static int parse_number(const char *v, const unit *units, uint64_t *out)
{
    uint64_t n = 0;
    const char *p = v;
    int over = 0;
    for (; *p >= '0' && *p <= '9'; p++) {
        if (n > (UINT64_MAX - 9) / 10)
            over = 1;
        n = n * 10 + (uint64_t)(*p - '0');
    }
    if (p == v)
        return -1;
    for (const unit *u = units; u->suffix; u++)
        if (!strcmp(p, u->suffix)) {
            if (over || n > UINT64_MAX / u->mul)
                return -2;
            *out = n * u->mul;
            return 0;
        }
    return -1;
}

int axd_config_parse_bool(const char *s, int *out)
{
    static const char *const t[] = {"true", "yes", "on", "1"}, *const f[] = {"false", "no", "off", "0"};
    for (size_t i = 0; s && i < 4; i++) {
        if (!strcmp(s, t[i]) || !strcmp(s, f[i])) {
            *out = !strcmp(s, t[i]);
            return 0;
        }
    }
    return AX_ECONFIG;
}

/* Set key k from text v. For lists, replace drops the current items first (a file's first
 * line for a list replaces what it inherits; later lines and axd_config_set append) and an
 * empty value clears the list. On error *c is unchanged and why says "key: reason". */
static int set_value(axd_config *c, const key_def *k, const char *v, int replace, char *why, size_t n)
{
    uint64_t num = 0;
    int rc;

    for (const char *p = v; *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            return fail(why, n, "%s: control character in value", k->name);

    switch (k->type) {
    case K_STR:
    case K_LIST: {
        size_t len = strlen(v);
        const char *bad;
        if (k->type == K_LIST && !len) {
            list_clear(c, k);
            return 0;
        }
        if (len < k->min || len > k->max)
            return fail(why, n, "%s: must be %llu..%llu bytes long, got %zu", k->name, (unsigned long long)k->min,
                        (unsigned long long)k->max, len);
        if (k->check && (bad = k->check(v)))
            return fail(why, n, "%s: %s: \"%.64s\"", k->name, bad, v);
        if (k->type == K_STR) {
            char **slot = field(c, k);
            ax_free(*slot);
            *slot = ax_strdup(v);
        } else {
            if (replace)
                list_clear(c, k);
            size_t cnt = *list_count(c, k);
            char **items = ax_realloc(*list_items(c, k), (cnt + 1) * sizeof *items);
            items[cnt] = ax_strdup(v);
            *list_items(c, k) = items;
            *list_count(c, k) = cnt + 1;
        }
        return 0;
    }
    case K_UINT:
    case K_SIZE:
    case K_DURATION: {
        const unit *units = k->type == K_SIZE ? size_units : k->type == K_DURATION ? ms_units : no_units;
        const char *what = k->type == K_SIZE ? " bytes" : k->type == K_DURATION ? " ms" : "";
        rc = parse_number(v, units, &num);
        if (rc == -1)
            return fail(why, n, "%s: not a number%s: \"%.64s\"", k->name,
                        k->type == K_SIZE       ? " (suffixes: K M G)"
                        : k->type == K_DURATION ? " (suffixes: ms s min h)"
                                                : "",
                        v);
        if (rc == -2 || num < k->min || num > k->max)
            return fail(why, n, "%s: \"%.64s\" is out of range %llu..%llu%s", k->name, v,
                        (unsigned long long)k->min, (unsigned long long)k->max, what);
        put_uint(field(c, k), k->size, num);
        return 0;
    }
    case K_OCTAL: {
        size_t len = strspn(v, "01234567");
        if (!len || v[len] || len > 8)
            return fail(why, n, "%s: not an octal mode: \"%.64s\"", k->name, v);
        num = strtoull(v, NULL, 8);
        if (num < k->min || num > k->max)
            return fail(why, n, "%s: %s is out of range %04llo..%04llo", k->name, v, (unsigned long long)k->min,
                        (unsigned long long)k->max);
        put_uint(field(c, k), k->size, num);
        return 0;
    }
    case K_BOOL: {
        int b;
        if (axd_config_parse_bool(v, &b) != 0)
            return fail(why, n, "%s: not a boolean (true/false/yes/no/on/off/1/0): \"%.64s\"", k->name, v);
        put_uint(field(c, k), k->size, (uint64_t)b);
        return 0;
    }
    case K_LEVEL: {
        int level = axd_log_level_parse(v);
        if (level < 0)
            return fail(why, n, "%s: must be error, warn, info or debug: \"%.64s\"", k->name, v);
        memcpy(field(c, k), &level, sizeof level);
        return 0;
    }
    }
    return fail(why, n, "%s: unsupported key type", k->name);
}

/* Record where key k got its value (after a successful set_value); the list's item
 * origins follow its items (cleared, appended). */
static void note_origin(axd_config *c, const key_def *k, const char *origin)
{
    size_t i = (size_t)(k - keys);
    if (!origin)
        return;
    if (!c->origins)
        c->origins = ax_calloc(1, sizeof *c->origins);
    struct axd_config_origins *o = c->origins;
    ax_free(o->key[i]);
    o->key[i] = ax_strdup(origin);
    if (k->type != K_LIST)
        return;
    size_t want = *list_count(c, k);
    while (o->n_items[i] > want)
        ax_free(o->items[i][--o->n_items[i]]);
    if (o->n_items[i] < want) {
        o->items[i] = ax_realloc(o->items[i], want * sizeof *o->items[i]);
        while (o->n_items[i] < want)
            o->items[i][o->n_items[i]++] = ax_strdup(origin);
    }
}

static const key_def *find_key(const char *name)
{
    for (size_t i = 0; i < NKEYS; i++)
        if (!strcmp(keys[i].name, name))
            return &keys[i];
    return NULL;
}

static int section_known(const char *s)
{
    size_t len = strlen(s);
    for (size_t i = 0; i < NKEYS; i++)
        if (!strncmp(keys[i].name, s, len) && keys[i].name[len] == '.')
            return 1;
    return 0;
}

/* ---- whole configs ---- */

void axd_config_free(axd_config *c)
{
    if (!c)
        return;
    for (const key_def *k = keys; k < keys + NKEYS; k++) {
        if (k->type == K_STR)
            ax_free(*(char **)field(c, k));
        else if (k->type == K_LIST)
            list_clear(c, k);
    }
    origins_free(c->origins);
    memset(c, 0, sizeof *c);
}

/* Deep copy: every owned pointer is a table key, so the table says what to duplicate. */
static void config_copy(axd_config *dst, const axd_config *src)
{
    *dst = *src;
    for (const key_def *k = keys; k < keys + NKEYS; k++) {
        if (k->type == K_STR) {
            char *s = *(char **)field(src, k);
            *(char **)field(dst, k) = s ? ax_strdup(s) : NULL;
        } else if (k->type == K_LIST) {
            size_t cnt = *list_count(src, k);
            char **items = cnt ? ax_malloc(cnt * sizeof *items) : NULL;
            for (size_t i = 0; i < cnt; i++)
                items[i] = ax_strdup((*list_items(src, k))[i]);
            *list_items(dst, k) = items;
        }
    }
    dst->origins = origins_copy(src->origins);
}

int axd_config_defaults(axd_config *c)
{
    memset(c, 0, sizeof *c);
    for (const key_def *k = keys; k < keys + NKEYS; k++) {
        char buf[256], why[256];
        const char *v = k->def;
        if (k->def_fn) {
            k->def_fn(buf, sizeof buf);
            v = buf;
        }
        if (v && set_value(c, k, v, 1, why, sizeof why) != 0) {
            fprintf(stderr, "axactord: built-in default is invalid: %s\n", why); /* a build bug */
            abort();
        }
    }
    return 0;
}

int axd_config_set(axd_config *c, const char *key, const char *value, char *err, size_t errlen)
{
    const key_def *k = key ? find_key(key) : NULL;
    if (!k)
        return fail(err, errlen, "unknown key \"%.128s\"", key ? key : "");
    if (!value)
        return fail(err, errlen, "%s: missing value", k->name);
    int rc = set_value(c, k, value, 0, err, errlen);
    if (rc == 0) {
        char origin[160];
        snprintf(origin, sizeof origin, "command line (%s)", k->name);
        note_origin(c, k, origin);
    }
    return rc;
}

const char *axd_config_origin(const axd_config *c, const char *key, size_t item)
{
    const key_def *k = key ? find_key(key) : NULL;
    if (!k || !c->origins)
        return NULL;
    size_t i = (size_t)(k - keys);
    if (k->type == K_LIST)
        return item < c->origins->n_items[i] ? c->origins->items[i][item] : NULL;
    return c->origins->key[i];
}

static char *trim(char *s)
{
    char *e = s + strlen(s);
    while (*s == ' ' || *s == '\t' || *s == '\r')
        s++;
    while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r'))
        *--e = 0;
    return s;
}

/* A value after '=': "quoted" with \" and \\ escapes, or bare up to a '#' comment. */
static int parse_value(char *v, char **out, char *why, size_t n)
{
    if (*v != '"') {
        char *hash = strchr(v, '#');
        if (hash)
            *hash = 0;
        *out = trim(v);
        return 0;
    }
    char *w = v, *r = v + 1;
    for (; *r != '"'; r++) {
        if (!*r)
            return fail(why, n, "unterminated quoted value");
        if (*r == '\\') {
            r++;
            if (!*r)
                return fail(why, n, "unterminated quoted value");
            if (*r != '"' && *r != '\\')
                return fail(why, n, "unknown escape \\%c in quoted value (only \\\" and \\\\)", *r);
        }
        *w++ = *r;
    }
    *w = 0;
    r = trim(r + 1);
    if (*r && *r != '#')
        return fail(why, n, "unexpected text after closing quote");
    *out = v;
    return 0;
}

typedef struct parser {
    axd_config *c;
    const char *name; /* file name, for origins */
    char section[64];
    unsigned seen[NKEYS]; /* line a key was first set on; 0 = not yet */
} parser;

static int parse_line(parser *p, char *line, unsigned lineno, char *why, size_t n)
{
    char *s = trim(line), *eq, *key, *value = NULL, full[CFG_LINE_MAX + 80];
    const key_def *k;
    int rc;

    if (!*s || *s == '#' || *s == ';')
        return 0;
    for (const char *q = s; *q; q++)
        if (((unsigned char)*q < 0x20 && *q != '\t') || *q == 0x7f)
            return fail(why, n, "control character (0x%02x) in line", (unsigned char)*q);
    if (*s == '[') {
        char *end = strchr(s, ']');
        if (!end)
            return fail(why, n, "unterminated section header");
        if (*trim(end + 1))
            return fail(why, n, "unexpected text after section header");
        *end = 0;
        s = trim(s + 1);
        if (!*s)
            return fail(why, n, "empty section name");
        if (!section_known(s) || strlen(s) >= sizeof p->section)
            return fail(why, n, "unknown section [%.64s]", s);
        strcpy(p->section, s);
        return 0;
    }
    if (!(eq = strchr(s, '=')))
        return fail(why, n, "missing '=' (expected key = value)");
    *eq = 0;
    key = trim(s);
    if (!*key)
        return fail(why, n, "empty key");
    if ((rc = parse_value(trim(eq + 1), &value, why, n)) != 0)
        return rc;
    snprintf(full, sizeof full, "%s%s%s", p->section, *p->section ? "." : "", key);
    if (!(k = find_key(full)))
        return fail(why, n, "unknown key \"%.128s\"", full);
    size_t i = (size_t)(k - keys);
    if (k->type != K_LIST && p->seen[i])
        return fail(why, n, "duplicate key \"%s\" (first set on line %u)", k->name, p->seen[i]);
    rc = set_value(p->c, k, value, !p->seen[i], why, n);
    if (rc == 0) {
        char origin[AX_PATH_MAX + 16];
        snprintf(origin, sizeof origin, "%s:%u", p->name, lineno);
        note_origin(p->c, k, origin);
    }
    if (!p->seen[i])
        p->seen[i] = lineno;
    return rc;
}

/* Parse text[0..len) into a copy of *c; swap it in only if every line was good. */
static int parse_text(axd_config *c, const char *text, size_t len, const char *name, char *err, size_t errlen)
{
    axd_config tmp;
    parser p = {.c = &tmp, .name = name};
    char line[CFG_LINE_MAX + 1], why[512];
    unsigned lineno = 0;
    int rc = 0;

    config_copy(&tmp, c);
    for (size_t off = 0; off < len && rc == 0;) {
        const char *nl = memchr(text + off, '\n', len - off);
        size_t ll = nl ? (size_t)(nl - (text + off)) : len - off;
        lineno++;
        if (memchr(text + off, 0, ll))
            rc = fail(why, sizeof why, "NUL byte in file");
        else if (ll > CFG_LINE_MAX)
            rc = fail(why, sizeof why, "line longer than %d bytes", CFG_LINE_MAX);
        else {
            memcpy(line, text + off, ll);
            line[ll] = 0;
            rc = parse_line(&p, line, lineno, why, sizeof why);
        }
        off += ll + (nl != NULL);
    }
    if (rc != 0) {
        fail(err, errlen, "%s:%u: %s", name, lineno, why);
        axd_config_free(&tmp);
        return AX_ECONFIG;
    }
    axd_config_free(c);
    *c = tmp;
    return 0;
}

int axd_config_load_string(axd_config *c, const char *text, const char *name, char *err, size_t errlen)
{
    return parse_text(c, text ? text : "", text ? strlen(text) : 0, name ? name : "(string)", err, errlen);
}

int axd_config_load(axd_config *c, const char *path, char *err, size_t errlen)
{
    size_t len = 0, cap = 16384;
    char *buf;
    int fd, rc;

    if (!path)
        return fail(err, errlen, "no config path");
    if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
        return fail(err, errlen, "%s: %s", path, strerror(errno));
    buf = ax_malloc(cap);
    for (;;) {
        if (len == cap) {
            if (cap > CFG_FILE_MAX) {
                rc = fail(err, errlen, "%s: larger than %u bytes", path, CFG_FILE_MAX);
                goto out;
            }
            buf = ax_realloc(buf, cap *= 2);
        }
        ssize_t r = read(fd, buf + len, cap - len);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            rc = fail(err, errlen, "%s: %s", path, strerror(errno));
            goto out;
        }
        if (r == 0)
            break;
        len += (size_t)r;
    }
    rc = parse_text(c, buf, len, path, err, errlen);
out:
    ax_free(buf);
    close(fd);
    return rc;
}

static void print_quoted(FILE *out, const char *s)
{
    fputc('"', out);
    for (; s && *s; s++) {
        if (*s == '"' || *s == '\\')
            fputc('\\', out);
        fputc(*s, out);
    }
    fputc('"', out);
}

void axd_config_print(const axd_config *c, FILE *out)
{
    size_t sec_len = 0;
    const char *sec = "";

    fputs("# axactord configuration: every key with its current value (axactord --print-config).\n", out);
    for (const key_def *k = keys; k < keys + NKEYS; k++) {
        const char *key = strchr(k->name, '.') + 1; /* every table key has a section */
        size_t sl = (size_t)(key - 1 - k->name);
        if (sl != sec_len || strncmp(sec, k->name, sl)) {
            fprintf(out, "\n[%.*s]\n", (int)sl, k->name);
            sec = k->name;
            sec_len = sl;
        }
        void *f = field(c, k);
        if (k->secret) { /* secrets never leave the daemon: not even --print-config */
            const char *v = *(char **)f;
            fprintf(out, "# %s\n# %s: %s\n", k->doc, key, v && *v ? "set (not shown)" : "not set");
            continue;
        }
        if (k->type == K_UINT || k->type == K_SIZE || k->type == K_DURATION)
            fprintf(out, "# %s (%llu..%llu)\n", k->doc, (unsigned long long)k->min, (unsigned long long)k->max);
        else
            fprintf(out, "# %s\n", k->doc);
        switch (k->type) {
        case K_STR:
            fprintf(out, "%s = ", key);
            print_quoted(out, *(char **)f);
            fputc('\n', out);
            break;
        case K_LIST:
            if (!*list_count(c, k))
                fprintf(out, "%s =\n", key); /* an empty list line clears inherited items */
            for (size_t i = 0; i < *list_count(c, k); i++) {
                fprintf(out, "%s = ", key);
                print_quoted(out, (*list_items(c, k))[i]);
                fputc('\n', out);
            }
            break;
        case K_UINT:
        case K_SIZE:
        case K_DURATION:
            fprintf(out, "%s = %llu\n", key, (unsigned long long)get_uint(f, k->size));
            break;
        case K_OCTAL:
            fprintf(out, "%s = %04llo\n", key, (unsigned long long)get_uint(f, k->size));
            break;
        case K_BOOL:
            fprintf(out, "%s = %s\n", key, get_uint(f, k->size) ? "true" : "false");
            break;
        case K_LEVEL: {
            int level;
            memcpy(&level, f, sizeof level);
            fprintf(out, "%s = %s\n", key, axd_log_level_name(level));
            break;
        }
        }
    }
}
