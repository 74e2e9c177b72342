/* The transport interface of the cluster: an overlay carries whole peer frames between
 * named nodes over links. Two implementations: overlay_mem.c (many nodes inside one
 * process, for deterministic tests, with fault injection) and overlay_tcp.c (TCP with a
 * static address book, connect timeout, keepalive, optional TLS). The overlay knows
 * nothing of sessions or authentication: it frames bytes (checking the peer header's
 * magic and body size before buffering a body) and reports link events; peer.c does
 * the rest. Everything runs on the owning server's libev loop. */
#ifndef AX_CLUSTER_OVERLAY_H
#define AX_CLUSTER_OVERLAY_H
#include <ev.h>
#include <stddef.h>
#include <stdint.h>

typedef struct ax_ovl ax_ovl;
typedef struct ax_ovl_link ax_ovl_link;

/* Events from the overlay to its user (peer.c). l->ud is the user's. */
typedef struct ax_ovl_cbs {
    /* A link is open: an outgoing connect completed, or an incoming one was accepted
     * (outgoing = 0, to = NULL). The user sets l->ud here. */
    void (*on_open)(void *user, ax_ovl_link *l, int outgoing, const char *to);
    /* One whole frame (header + body); the header passed magic and max_frame checks.
     * The bytes are valid until the callback returns. */
    void (*on_frame)(void *user, ax_ovl_link *l, const uint8_t *frame, size_t n);
    /* The queued output fell below the low-water mark: the user may push more data. */
    void (*on_drain)(void *user, ax_ovl_link *l);
    /* The link is gone (peer closed, I/O error, connect failure or timeout, bad framing).
     * Not called for ax_ovl_close. l is freed after the callback returns. */
    void (*on_close)(void *user, ax_ovl_link *l, const char *why);
} ax_ovl_cbs;

typedef struct ax_ovl_ops {
    const char *name; /* "memory", "tcp" */
    /* Start connecting to the node with logical name `to`. Completion is reported by
     * on_open (or on_close with a reason). AX_ENOTFOUND if `to` has no address. */
    int (*connect)(ax_ovl *o, const char *to, ax_ovl_link **out);
    /* Queue bytes (whole frames) for sending; the overlay copies them. AX_ECONN if the
     * link is closing. */
    int (*send)(ax_ovl_link *l, const void *p, size_t n);
    size_t (*queued)(const ax_ovl_link *l); /* bytes accepted by send and not yet written */
    /* Close now, after trying to write what is queued (best effort); no on_close. */
    void (*close)(ax_ovl_link *l);
    void (*free)(ax_ovl *o); /* closes every link (no callbacks) */
    /* A description of the far end for logs and `axctl nodes` ("127.0.0.1:7401"). */
    const char *(*remote)(const ax_ovl_link *l);
    /* Add (or change the address of) an address-book entry at run time (SIGHUP reload).
     * NULL if the overlay has no address book. 0 or AX_EINVAL. */
    int (*set_peer)(ax_ovl *o, const char *name, const char *addr);
} ax_ovl_ops;

/* Common head of every overlay and link implementation. */
struct ax_ovl {
    const ax_ovl_ops *ops;
    struct ev_loop *loop;
    ax_ovl_cbs cbs;
    void *user;
    uint32_t max_frame; /* largest body accepted */
    size_t low_water;   /* on_drain fires when queued() drops below this */
};

struct ax_ovl_link {
    ax_ovl *ovl;
    void *ud;
    int outgoing;
    uint32_t max_frame; /* largest body accepted on this link; 0 = the overlay's max_frame
                         * (the cluster keeps it small until the peer authenticated) */
};

/* ---- TCP (overlay_tcp.c) ---- */
typedef struct ax_ovl_tcp_cfg {
    const char *listen;        /* "host:port", or NULL/"" to only dial out */
    const char *const *book;   /* address book: "name=host:port" entries */
    size_t n_book;
    uint32_t connect_timeout_ms;
    int keepalive;             /* SO_KEEPALIVE on every link */
    uint32_t keepalive_idle_s, keepalive_interval_s, keepalive_probes;
    /* TLS (OpenSSL): off when tls == 0. */
    int tls;
    const char *tls_cert, *tls_key, *tls_ca;
} ax_ovl_tcp_cfg;

/* Create the TCP overlay (listening at once if cfg->listen). AX_ECONFIG/AX_EIO with a
 * message in err. The listening port actually bound is in *bound_port if non-NULL. */
int ax_ovl_tcp_new(struct ev_loop *loop, const ax_ovl_tcp_cfg *cfg, const ax_ovl_cbs *cbs, void *user,
                   uint32_t max_frame, ax_ovl **out, char *err, size_t errlen);

/* ---- memory (overlay_mem.c) ---- */
typedef struct ax_ovl_net ax_ovl_net; /* the shared "network" of one test process */

ax_ovl_net *ax_ovl_net_new(uint64_t seed);
void ax_ovl_net_free(ax_ovl_net *n); /* after every node's overlay is freed */
/* Attach a node named `name` on `loop` to the network. */
int ax_ovl_mem_new(ax_ovl_net *n, struct ev_loop *loop, const char *name, const ax_ovl_cbs *cbs, void *user,
                   uint32_t max_frame, ax_ovl **out);
/* Fault injection, per direction from -> to (names; "*" = every node):
 * drop: drop each frame with probability permille/1000 (seeded, deterministic);
 * delay: deliver frames delay_ms later (order preserved);
 * partition: blocked = 1 drops every frame and refuses connects from -> to;
 * heal: every fault between the two cleared (both directions). */
void ax_ovl_net_drop(ax_ovl_net *n, const char *from, const char *to, unsigned permille);
void ax_ovl_net_delay(ax_ovl_net *n, const char *from, const char *to, unsigned delay_ms);
void ax_ovl_net_partition(ax_ovl_net *n, const char *from, const char *to, int blocked);
void ax_ovl_net_partition2(ax_ovl_net *n, const char *a, const char *b); /* both ways */
void ax_ovl_net_heal(ax_ovl_net *n, const char *a, const char *b);
/* Cut every open link between a and b now (like a connection reset). */
void ax_ovl_net_reset(ax_ovl_net *n, const char *a, const char *b);
/* Frames dropped by faults so far. */
uint64_t ax_ovl_net_dropped(const ax_ovl_net *n);

#endif
