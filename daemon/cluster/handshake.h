/* The peer handshake and session crypto, as a pure state machine over whole frames
 * (testable without sockets): HELLO with a version range and feature flags -> highest
 * common version or REFUSE; mutual challenge/response (HMAC-SHA256 over both nonces and
 * both wire ids, keyed by the shared auth_token); session keys from HKDF-SHA256; then
 * every frame is sealed with a per-direction sequence number and a truncated
 * HMAC-SHA256, and opened with a constant-time MAC check and replay/reorder rejection.
 * No I/O, no logging: failures leave a code and a message in the axd_hs. */
#ifndef AXD_CLUSTER_HANDSHAKE_H
#define AXD_CLUSTER_HANDSHAKE_H
#include <stddef.h>
#include <stdint.h>

#include "node_id.h"
#include "peer.h"

#define AXD_HS_TOKEN_MAX 1024

/* An authenticated session: one per direction pair, owned by a link. */
typedef struct axd_psess {
    struct evp_mac_ctx_st *tx, *rx; /* keyed HMAC-SHA256 contexts (OpenSSL EVP_MAC_CTX) */
    uint32_t tx_session, rx_session; /* session numbers of this node / of the peer */
    uint64_t tx_seq, rx_seq;         /* last sealed / last accepted sequence number */
    uint64_t replayed, forged;       /* frames dropped by axd_psess_open */
} axd_psess;

/* Seal a complete frame (header + body, as built by ax_peer_frame_begin/_end) in
 * place: next sequence number, the sender's session, the MAC. */
void axd_psess_seal(axd_psess *s, uint8_t *frame, size_t n);
/* Check a received frame whose header h was decoded from frame[0..n): 0 if genuine
 * and newer than every frame accepted so far; AX_EAUTH if the MAC or the session does
 * not match (forged, or for another session); AX_ESTALE if replayed or reordered.
 * Counts the drops. Compares MACs with CRYPTO_memcmp. */
int axd_psess_open(axd_psess *s, const ax_peer_hdr *h, const uint8_t *frame, size_t n);
void axd_psess_free(axd_psess *s); /* accepts a zeroed session; leaves it zeroed */

enum { AXD_HS_INITIATOR = 1, AXD_HS_RESPONDER = 2 };
enum { AXD_HS_MORE = 0, AXD_HS_READY = 1 };

typedef struct axd_hs_cfg {
    const char *self_id;     /* this node's wire id for this handshake (with its session) */
    const char *expect_name; /* initiator: logical name the address book expects; NULL = any */
    const void *token;       /* the shared auth_token (may be empty in insecure mode) */
    size_t token_len;
    uint16_t min_ver, max_ver; /* 0,0 = AX_PEER_VERSION_MIN..AX_PEER_VERSION */
    uint32_t features;         /* 0 = AX_PEER_FEAT_KNOWN */
    const uint8_t *nonce;      /* tests only: a fixed nonce; NULL = RAND_bytes */
    uint32_t shard_count;      /* shards.count; 0 = 1. A peer with another count is refused */
    const char *store;         /* lease store identity (axd_lease_store_identity); NULL = "memory".
                                * A peer on another store is refused */
} axd_hs_cfg;

typedef struct axd_hs {
    int role, state;
    char self_id[AXD_NODE_ID_MAX + 1];
    char expect[AXD_NODE_ID_MAX + 1];
    axd_node_id self, peer; /* peer: known after HELLO (responder) / HELLO_ACK (initiator) */
    uint16_t min_ver, max_ver, version;
    uint32_t features; /* ours before the handshake, the common set after */
    uint32_t peer_features;
    uint8_t key[32];   /* SHA-256 of the token: the HMAC/HKDF key material */
    uint32_t shard_count;
    char store[AX_PEER_STORE_MAX + 1];
    uint8_t nonce_a[AX_PEER_NONCE_SIZE], nonce_b[AX_PEER_NONCE_SIZE];
    axd_psess sess;     /* the session being built; take it with axd_hs_take_session */
    int code;          /* on failure: AX_E* */
    int refused_by_peer; /* the failure came in a REFUSE from the peer */
    char why[320];     /* on failure: what went wrong, for both logs */
} axd_hs;

/* Set up (copies everything it needs from cfg). AX_EINVAL for a self_id without a
 * session suffix, a token longer than AXD_HS_TOKEN_MAX, or a bad range. */
int axd_hs_init(axd_hs *h, int role, const axd_hs_cfg *cfg);
/* Initiator: write HELLO to out. */
int axd_hs_start(axd_hs *h, ax_wbuf *out);
/* Feed one whole received frame (header + body). Returns AXD_HS_MORE (frames to send
 * may have been written to out); AXD_HS_READY: the peer is authenticated — the
 * initiator's session is established, the responder must now call axd_hs_accept (or
 * axd_hs_refuse, e.g. for a duplicate connection); or a negative AX_E* with h->why set,
 * after which out may hold a REFUSE to send before closing the link. */
int axd_hs_input(axd_hs *h, const uint8_t *frame, size_t n, ax_wbuf *out);
/* Responder after AXD_HS_READY: write the sealed AUTH_OK; the session is established. */
int axd_hs_accept(axd_hs *h, ax_wbuf *out);
/* Write a REFUSE (code < 0, reason) and mark the handshake failed. */
void axd_hs_refuse(axd_hs *h, int code, const char *reason, ax_wbuf *out);
/* Move the established session out (the axd_hs keeps none). */
void axd_hs_take_session(axd_hs *h, axd_psess *out);
/* Wipe keys and free what the handshake holds; accepts a zeroed axd_hs. */
void axd_hs_clear(axd_hs *h);

/* Exposed for tests: the two proofs and the session keys for a given transcript. */
int axd_hs_derive(const uint8_t key[32], uint16_t version, uint32_t features, const char *id_a,
                 const char *id_b, const uint8_t *nonce_a, const uint8_t *nonce_b, uint8_t proof_a[32],
                 uint8_t proof_b[32], uint8_t k_a2b[32], uint8_t k_b2a[32]);

#endif
