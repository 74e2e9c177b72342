/* Checks of a whole configuration that no single line can make: settings that cannot
 * be safe together (a cluster on the per-process memory lease store), peers that cannot
 * work (the same name twice, the node itself), files that cannot be read (TLS, plugins).
 * Run by axactord before it starts and by --check-config. */
#ifndef AXD_CONFIG_CHECK_H
#define AXD_CONFIG_CHECK_H

#include <stddef.h>

#include "config.h"

/* 0, or AX_ECONFIG with "ORIGIN: reason" in err, ORIGIN being where the offending value
 * was set ("PATH:LINE", "command line (KEY)") or "(default)". Reads files (access + open), changes
 * nothing. */
int axd_config_check_deploy(const axd_config *c, char *err, size_t errlen);
/* lease.etcd_endpoints (1..8 of http(s)://HOST:PORT, comma-separated) and the TLS pair
 * (cert and key both or neither): 0, or AX_ECONFIG with the reason in err. */
int axd_config_check_etcd(const char *endpoints, const char *cert, const char *key, char *err, size_t errlen);

/* The identity of the lease store a config names, compared in the peer handshake (nodes
 * on different stores must not form one cluster): "memory", or "redis:HOST:PORT/DB/PREFIX"
 * with bytes outside printable ASCII as %XX. No secret in it (no password). */
void axd_config_store_identity(const axd_config *c, char *buf, size_t n);

/* Is a file or directory safe to trust (a plugin, the socket's directory): owned by root
 * or the daemon's user, writable by nobody else? NULL if so, else AXD_UNTRUSTED_OWNER or
 * AXD_UNTRUSTED_WRITABLE (short texts for messages). */
struct stat;
extern const char AXD_UNTRUSTED_OWNER[], AXD_UNTRUSTED_WRITABLE[];
const char *axd_untrusted(const struct stat *st);

/* The path a plugins.load entry names: itself if it has a '/', else DIR/NAME.so (".so"
 * not doubled). 0, or -1 if it does not fit. */
int axd_plugin_resolve(const char *dir, const char *in, char *out, size_t outlen);

#endif
