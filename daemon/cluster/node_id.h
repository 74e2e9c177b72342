/* Node identity: a logical name ("node-a") and the runtime wire id
 * "node-a@boot-<16 lowercase hex>-session-<n>". There is one parser, here: only that
 * exact suffix shape is a session marker, so a logical name that merely contains
 * "@boot-" stays a logical name. Pure code: no I/O, no logging. */
#ifndef AXD_CLUSTER_NODE_ID_H
#define AXD_CLUSTER_NODE_ID_H
#include <stddef.h>
#include <stdint.h>

#define AXD_NODE_BOOT_HEX 16 /* hex digits of the boot part */
#define AXD_NODE_ID_MAX 255  /* a wire id is a name (proto: 1..AX_NAME_MAX bytes) */

typedef struct axd_node_id {
    char name[AXD_NODE_ID_MAX + 1];   /* logical name, NUL-terminated */
    char boot[AXD_NODE_BOOT_HEX + 1]; /* "" when has_session == 0 */
    uint64_t session;                /* >= 1 when has_session */
    int has_session;                 /* 1: a wire id; 0: a bare logical name */
} axd_node_id;

/* Parse s[0..n). A string ending in exactly "@boot-" + 16 lowercase hex digits +
 * "-session-" + a decimal number (1..UINT64_MAX, no leading zero), with a non-empty
 * part before it, is a wire id; any other valid name is a logical name (whole string).
 * Returns 0, or AX_EINVAL if s is not a valid name at all (empty, too long, a byte
 * outside 0x21..0x7e); *out is untouched on failure. */
int axd_node_id_parse(const char *s, size_t n, axd_node_id *out);

/* Write "name@boot-<boot>-session-<session>" into buf. Returns 0, or AX_ETOOBIG if it
 * does not fit in buf or exceeds AXD_NODE_ID_MAX, or AX_EINVAL for a bad boot/session. */
int axd_node_id_format(char *buf, size_t n, const char *name, const char *boot, uint64_t session);

/* Same logical node and same boot (the session may differ): one incarnation. */
int axd_node_id_same_boot(const axd_node_id *a, const axd_node_id *b);

#endif
