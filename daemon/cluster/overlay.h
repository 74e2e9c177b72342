/* The transport interface of the cluster: an overlay carries whole peer frames between
 * named nodes over links. Two implementations: overlay_mem.c (many nodes inside one
 * process, for deterministic tests, with fault injection) and overlay_tcp.c (TCP with a
 * static address book, connect timeout, keepalive, optional TLS). The overlay knows
 * nothing of sessions or authentication: it frames bytes (checking the peer header's
 * magic and body size before buffering a body) and reports link events; peer.c does
 * the rest. Everything runs on the owning server's libev loop. */
#ifndef AXD_CLUSTER_OVERLAY_H
#define AXD_CLUSTER_OVERLAY_H
#include <ev.h>
#include <stddef.h>
#include <stdint.h>

typedef struct axd_ovl axd_ovl;
typedef struct axd_ovl_link axd_ovl_link;

/* Events from the overlay to its user (peer.c). l->ud is the user's. */
typedef struct axd_ovl_cbs {
    /* A link is open: an outgoing connect completed, or an incoming one was accepted
     * (outgoing = 0, to = NULL). The user sets l->ud here. */
    void (*on_open)(void *user, axd_ovl_link *l, int outgoing, const char *to);
    /* One whole frame (header + body); the header passed magic and max_frame checks.
     * The bytes are valid until the callback returns. */
    void (*on_frame)(void *user, axd_ovl_link *l, const uint8_t *frame, size_t n);
    /* The queued output fell below the low-water mark: the user may push more data. */
    void (*on_drain)(void *user, axd_ovl_link *l);
    /* The link is gone (peer closed, I/O error, connect failure or timeout, bad framing).
     * Not called for axd_ovl_close. l is freed after the callback returns. */
    void (*on_close)(void *user, axd_ovl_link *l, const char *why);
} axd_ovl_cbs;

typedef struct axd_ovl_ops {
    const char *name; /* "memory", "tcp" */
    /* Start connecting to the node with logical name `to`. Completion is reported by
     * on_open (or on_close with a reason). AX_ENOTFOUND if `to` has no address. */
    int (*connect)(axd_ovl *o, const char *to, axd_ovl_link **out);
    /* Queue bytes (whole frames) for sending; the overlay copies them. AX_ECONN if the
     * link is closing. */
    int (*send)(axd_ovl_link *l, const void *p, size_t n);
    size_t (*queued)(const axd_ovl_link *l); /* bytes accepted by send and not yet written */
    /* Close now, after trying to write what is queued (best effort); no on_close. */
    void (*close)(axd_ovl_link *l);
    void (*free)(axd_ovl *o); /* closes every link (no callbacks) */
    /* A description of the far end for logs and `axctl nodes` ("127.0.0.1:7401"). */
    const char *(*remote)(const axd_ovl_link *l);
    /* Add (or change the address of) an address-book entry at run time (SIGHUP reload).
     * NULL if the overlay has no address book. 0 or AX_EINVAL. */
    int (*set_peer)(axd_ovl *o, const char *name, const char *addr);
} axd_ovl_ops;

/* Common head of every overlay and link implementation. */
struct axd_ovl {
    const axd_ovl_ops *ops;
    struct ev_loop *loop;
    axd_ovl_cbs cbs;
    void *user;
    uint32_t max_frame; /* largest body accepted */
    size_t low_water;   /* on_drain fires when queued() drops below this */
};

struct axd_ovl_link {
    axd_ovl *ovl;
    void *ud;
    int outgoing;
    uint32_t max_frame; /* largest body accepted on this link; 0 = the overlay's max_frame
                         * (the cluster keeps it small until the peer authenticated) */
};

/* ---- TCP (overlay_tcp.c) ---- */
typedef struct axd_ovl_tcp_cfg {
    const char *listen;        /* "host:port", or NULL/"" to only dial out */
    const char *const *book;   /* address book: "name=host:port" entries */
    size_t n_book;
    uint32_t connect_timeout_ms;
    int keepalive;             /* SO_KEEPALIVE on every link */
    uint32_t keepalive_idle_s, keepalive_interval_s, keepalive_probes;
    /* TLS (OpenSSL): off when tls == 0. */
    int tls;
    const char *tls_cert, *tls_key, *tls_ca;
} axd_ovl_tcp_cfg;

/* Create the TCP overlay (listening at once if cfg->listen). AX_ECONFIG/AX_EIO with a
 * message in err. The listening port actually bound is in *bound_port if non-NULL. */
int axd_ovl_tcp_new(struct ev_loop *loop, const axd_ovl_tcp_cfg *cfg, const axd_ovl_cbs *cbs, void *user,
                   uint32_t max_frame, axd_ovl **out, char *err, size_t errlen);

/* ---- memory (overlay_mem.c) ---- */
typedef struct axd_ovl_net axd_ovl_net; /* the shared "network" of one test process */

axd_ovl_net *axd_ovl_net_new(uint64_t seed);
void axd_ovl_net_free(axd_ovl_net *n); /* after every node's overlay is freed */
/* Attach a node named `name` on `loop` to the network. */
int axd_ovl_mem_new(axd_ovl_net *n, struct ev_loop *loop, const char *name, const axd_ovl_cbs *cbs, void *user,
                   uint32_t max_frame, axd_ovl **out);
/* Fault injection, per direction from -> to (names; "*" = every node):
 * drop: drop each frame with probability permille/1000 (seeded, deterministic);
 * delay: deliver frames delay_ms later (order preserved);
 * partition: blocked = 1 drops every frame and refuses connects from -> to;
 * heal: every fault between the two cleared (both directions). */
void axd_ovl_net_drop(axd_ovl_net *n, const char *from, const char *to, unsigned permille);
void axd_ovl_net_delay(axd_ovl_net *n, const char *from, const char *to, unsigned delay_ms);
void axd_ovl_net_partition(axd_ovl_net *n, const char *from, const char *to, int blocked);
void axd_ovl_net_partition2(axd_ovl_net *n, const char *a, const char *b); /* both ways */
void axd_ovl_net_heal(axd_ovl_net *n, const char *a, const char *b);
/* Cut every open link between a and b now (like a connection reset). */
void axd_ovl_net_reset(axd_ovl_net *n, const char *a, const char *b);
/* Frames dropped by faults so far. */
uint64_t axd_ovl_net_dropped(const axd_ovl_net *n);

#endif
