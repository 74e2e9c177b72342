/* Whole-configuration checks (config_check.h): what must hold between keys, and files
 * that must be readable, each reported at the line (or flag) that set the value. */
#include "config_check.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "axactor/errors.h"

static int failf(char *err, size_t n, const char *origin, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static int failf(char *err, size_t n, const char *origin, const char *fmt, ...)
{
    char why[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
    if (err && n)
        snprintf(err, n, "%s: %s", origin ? origin : "(default)", why);
    return AX_ECONFIG;
}

void axd_config_store_identity(const axd_config *c, char *buf, size_t n)
{
    if (c->lease_store_name && *c->lease_store_name) { /* the operator names it */
        snprintf(buf, n, "%s", c->lease_store_name);
        return;
    }
    if (!c->lease_store || strcmp(c->lease_store, "redis") != 0) {
        snprintf(buf, n, "memory");
        return;
    }
    char raw[600];
    snprintf(raw, sizeof raw, "redis:%s:%u/%u/%s", c->redis_host ? c->redis_host : "", c->redis_port, c->redis_db,
             c->redis_prefix ? c->redis_prefix : "");
    size_t w = 0;
    for (const unsigned char *p = (const unsigned char *)raw; *p && w + 4 < n; p++) {
        if (*p >= 0x20 && *p <= 0x7e && *p != '%')
            buf[w++] = (char)*p;
        else
            w += (size_t)snprintf(buf + w, n - w, "%%%02X", *p);
    }
    buf[w < n ? w : n - 1] = 0;
}

const char AXD_UNTRUSTED_OWNER[] = "is owned by another user";
const char AXD_UNTRUSTED_WRITABLE[] = "is writable by others";

const char *axd_untrusted(const struct stat *st)
{
    if (st->st_uid != 0 && st->st_uid != geteuid())
        return AXD_UNTRUSTED_OWNER;
    if ((st->st_mode & S_IWOTH) || ((st->st_mode & S_IWGRP) && st->st_gid != getegid()))
        return AXD_UNTRUSTED_WRITABLE;
    return NULL;
}

int axd_plugin_resolve(const char *dir, const char *in, char *out, size_t outlen)
{
    int n;
    size_t len = strlen(in);
    if (strchr(in, '/'))
        n = snprintf(out, outlen, "%s", in);
    else
        n = snprintf(out, outlen, "%s/%s%s", dir, in, len > 3 && !strcmp(in + len - 3, ".so") ? "" : ".so");
    return n > 0 && (size_t)n < outlen ? 0 : -1;
}

/* A regular file this process can open for reading; else why not, with errno. */
static const char *unreadable(const char *path, char *buf, size_t n)
{
    struct stat st;
    if (stat(path, &st) != 0) {
        snprintf(buf, n, "%s (errno %d)", strerror(errno), errno);
        return buf;
    }
    if (!S_ISREG(st.st_mode)) {
        snprintf(buf, n, "not a regular file");
        return buf;
    }
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (fd < 0) {
        snprintf(buf, n, "%s (errno %d)", strerror(errno), errno);
        return buf;
    }
    close(fd);
    return NULL;
}

static int cluster_enabled(const axd_config *c)
{
    return (c->cluster_listen && *c->cluster_listen) || c->n_cluster_peers > 0;
}

/* Read a secret from path: regular file, <= 4 KiB, one trailing newline dropped. */
static int read_secret(const char *path, char **out, char *why, size_t wn)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (fd < 0) {
        snprintf(why, wn, "cannot read %s: %s (errno %d)", path, strerror(errno), errno);
        return -1;
    }
    struct stat st;
    char buf[4097];
    ssize_t n = -1;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode))
        snprintf(why, wn, "%s is not a regular file", path);
    else if (st.st_size > 4096)
        snprintf(why, wn, "%s is larger than 4096 bytes (not a secret?)", path);
    else if ((n = read(fd, buf, sizeof buf - 1)) < 0)
        snprintf(why, wn, "cannot read %s: %s (errno %d)", path, strerror(errno), errno);
    close(fd);
    if (n < 0)
        return -1;
    if (n > 0 && buf[n - 1] == '\n')
        n--;
    if (n > 0 && buf[n - 1] == '\r')
        n--;
    buf[n] = 0;
    if (memchr(buf, 0, (size_t)n) || memchr(buf, '\n', (size_t)n)) {
        snprintf(why, wn, "%s holds a NUL byte or more than one line", path);
        return -1;
    }
    *out = strdup(buf);
    return *out ? 0 : -1;
}

/* One secret: key (the value), file_key (its _file), cred (the systemd credential name). */
static int load_secret(axd_config *c, const char *key, char **val, const char *file_key, const char *file,
                       const char *cred, char *err, size_t errlen)
{
    char why[700], path[4200];
    char *v = NULL;
    if (file && *file) {
        if (*val && **val)
            return failf(err, errlen, axd_config_origin(c, file_key, 0), "set %s or %s, not both", key, file_key);
        if (read_secret(file, &v, why, sizeof why) != 0)
            return failf(err, errlen, axd_config_origin(c, file_key, 0), "%s: %s", file_key, why);
    } else if (!(*val && **val)) {
        const char *dir = getenv("CREDENTIALS_DIRECTORY"); /* systemd LoadCredential= */
        if (!dir || !*dir)
            return 0;
        snprintf(path, sizeof path, "%s/%s", dir, cred);
        if (access(path, F_OK) != 0)
            return 0;
        if (read_secret(path, &v, why, sizeof why) != 0)
            return failf(err, errlen, "systemd credential", "%s: %s", cred, why);
    } else {
        return 0;
    }
    char e2[256];
    int rc = axd_config_set(c, key, v, e2, sizeof e2);
    memset(v, 0, strlen(v));
    free(v);
    if (rc != 0)
        return failf(err, errlen, file && *file ? axd_config_origin(c, file_key, 0) : "systemd credential",
                     "the secret read for %s is not valid: %s", key, e2);
    return 0;
}

int axd_config_load_secrets(axd_config *c, char *err, size_t errlen)
{
    if (load_secret(c, "cluster.auth_token", &c->cluster_auth_token, "cluster.auth_token_file",
                    c->cluster_auth_token_file, "cluster.auth_token", err, errlen) != 0)
        return AX_ECONFIG;
    if (load_secret(c, "lease.redis_password", &c->redis_password, "lease.redis_password_file",
                    c->redis_password_file, "lease.redis_password", err, errlen) != 0)
        return AX_ECONFIG;
    if (load_secret(c, "state.redis_password", &c->state_redis_password, "state.redis_password_file",
                    c->state_redis_password_file, "state.redis_password", err, errlen) != 0)
        return AX_ECONFIG;
    if (load_secret(c, "lease.etcd_password", &c->etcd_password, "lease.etcd_password_file", c->etcd_password_file,
                    "lease.etcd_password", err, errlen) != 0)
        return AX_ECONFIG;
    return 0;
}

int axd_config_check_etcd(const char *endpoints, const char *cert, const char *key, char *err, size_t errlen)
{
    const char *p = endpoints;
    int n = 0;
    if (!p || !*p) {
        snprintf(err, errlen, "lease.etcd_endpoints is empty (a comma-separated list of http://HOST:PORT)");
        return AX_ECONFIG;
    }
    while (*p) {
        size_t len = strcspn(p, ",");
        size_t skip = !strncmp(p, "https://", 8) ? 8 : !strncmp(p, "http://", 7) ? 7 : 0;
        const char *colon = skip && len > skip ? memchr(p + skip, ':', len - skip) : NULL;
        int port_ok = colon && colon + 1 < p + len;
        for (const char *d = colon ? colon + 1 : p; port_ok && d < p + len; d++)
            port_ok = *d >= '0' && *d <= '9';
        if (!skip || len <= skip || len > 255 || !port_ok || memchr(p + skip, '/', len - skip)) {
            snprintf(err, errlen, "lease.etcd_endpoints: '%.*s' is not http://HOST:PORT or https://HOST:PORT",
                     (int)(len > 100 ? 100 : len), p);
            return AX_ECONFIG;
        }
        if (++n > 8) {
            snprintf(err, errlen, "lease.etcd_endpoints: at most 8 endpoints");
            return AX_ECONFIG;
        }
        p += len;
        if (*p == ',')
            p++;
    }
    if ((cert && *cert) != (key && *key)) {
        snprintf(err, errlen, "lease.etcd_cert and lease.etcd_key go together (a client certificate and its key)");
        return AX_ECONFIG;
    }
    return 0;
}

int axd_config_check_deploy(const axd_config *c, char *err, size_t errlen)
{
    char buf[256];
    const char *why;

    if (cluster_enabled(c) && c->lease_store && !strcmp(c->lease_store, "memory")) {
        const char *o = axd_config_origin(c, "lease.store", 0);
        if (!o)
            o = axd_config_origin(c, c->n_cluster_peers ? "cluster.peers" : "cluster.listen", 0);
        return failf(err, errlen, o,
                     "the cluster is enabled (cluster.listen or cluster.peers is set) but lease.store = memory: "
                     "the memory store lives inside one daemon, so every node would grant itself the same shards "
                     "and a keyed actor would run on several nodes at once (split brain). Set lease.store = redis "
                     "(with lease.redis_host and lease.redis_port) to the same Redis on every node");
    }

    /* a state store of its own fences by epochs, which must never go back: the memory
     * lease store starts them again at every daemon start */
    if (c->state_store && !strcmp(c->state_store, "redis") && c->lease_store && !strcmp(c->lease_store, "memory")) {
        const char *o = axd_config_origin(c, "state.store", 0);
        return failf(err, errlen, o,
                     "state.store = redis needs lease.store = redis or etcd: the state store refuses a write whose "
                     "shard epoch is below the highest it saw, and the epochs of the memory lease store start again "
                     "at every daemon start, so every write after a restart would be refused. Use state.store = lease "
                     "(state in the memory store, kept until the daemon stops) or a Redis or etcd lease store");
    }
    if (c->lease_store && !strcmp(c->lease_store, "etcd")) {
        char ewhy[256];
        if (axd_config_check_etcd(c->etcd_endpoints, c->etcd_cert, c->etcd_key, ewhy, sizeof ewhy) != 0)
            return failf(err, errlen,
                         axd_config_origin(c, strstr(ewhy, "etcd_cert") ? "lease.etcd_cert" : "lease.etcd_endpoints", 0),
                         "%s", ewhy);
    }

    /* a guessable token is no authentication: at least 16 bytes (32 random hex digits
     * recommended: openssl rand -hex 32) */
    if (cluster_enabled(c) && c->cluster_auth_token && *c->cluster_auth_token &&
        strlen(c->cluster_auth_token) < 16) {
        const char *o = axd_config_origin(c, "cluster.auth_token", 0);
        if (!o)
            o = axd_config_origin(c, "cluster.auth_token_file", 0);
        return failf(err, errlen, o,
                     "cluster.auth_token is %zu bytes: at least 16 are needed (e.g. openssl rand -hex 32)",
                     strlen(c->cluster_auth_token));
    }

    /* peers: one name=host:port per value, each name once, never the node itself */
    for (size_t i = 0; i < c->n_cluster_peers; i++) {
        const char *e = c->cluster_peers[i], *eq = strchr(e, '=');
        size_t nl = eq ? (size_t)(eq - e) : strlen(e);
        const char *o = axd_config_origin(c, "cluster.peers", i);
        if (c->node_name && strlen(c->node_name) == nl && !strncmp(e, c->node_name, nl))
            return failf(err, errlen, o,
                         "cluster.peers: \"%.*s\" is this node's own name (node.name): list the other nodes only",
                         (int)nl, e);
        for (size_t j = 0; j < i; j++) {
            const char *f = c->cluster_peers[j], *feq = strchr(f, '=');
            size_t fl = feq ? (size_t)(feq - f) : strlen(f);
            if (fl == nl && !strncmp(e, f, nl)) {
                const char *o1 = axd_config_origin(c, "cluster.peers", j);
                return failf(err, errlen, o, "cluster.peers: duplicate peer name \"%.*s\" (also set at %s)", (int)nl,
                             e, o1 ? o1 : "(default)");
            }
        }
    }

    if (c->cluster_tls) {
        static const char *const keys[] = {"cluster.tls_cert", "cluster.tls_key", "cluster.tls_ca"};
        const char *paths[] = {c->cluster_tls_cert, c->cluster_tls_key, c->cluster_tls_ca};
        for (int k = 0; k < 3; k++)
            if (paths[k] && *paths[k] && (why = unreadable(paths[k], buf, sizeof buf)))
                return failf(err, errlen, axd_config_origin(c, keys[k], 0), "%s: cannot read %s: %s", keys[k],
                             paths[k], why);
    }

    for (size_t i = 0; i < c->n_plugins; i++) {
        char path[4096];
        const char *o = axd_config_origin(c, "plugins.load", i);
        if (axd_plugin_resolve(c->plugin_dir ? c->plugin_dir : "", c->plugins[i], path, sizeof path) != 0)
            return failf(err, errlen, o, "plugins.load: path too long: \"%.64s\"", c->plugins[i]);
        if ((why = unreadable(path, buf, sizeof buf)))
            return failf(err, errlen, o, "plugins.load: cannot read plugin \"%s\" at %s: %s", c->plugins[i], path, why);
    }
    return 0;
}
