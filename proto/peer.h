/* The axactor peer protocol codec (node to node, see PROTOCOL.md "Peer protocol"):
 * the fixed 40-byte peer frame header (type, session, sequence number, MAC) and the
 * bodies of the handshake, control and data frames. Pure and crypto-free: the MAC is
 * computed and checked by daemon/cluster/handshake.c; this code only places it.
 * Never logs; decode errors return AX_EPROTO/AX_ETOOBIG with a static *why.
 * Constants here must match PROTOCOL.md (tests/test_cluster_codec.c checks). */
#ifndef AX_PROTO_PEER_H
#define AX_PROTO_PEER_H

#include <stddef.h>
#include <stdint.h>

#include "frame.h"

#define AX_PEER_MAGIC 0x4150u /* "AP" */
#define AX_PEER_VERSION 1u
#define AX_PEER_VERSION_MIN 1u
#define AX_PEER_HDR_SIZE 40u
#define AX_PEER_MAC_OFF 24u  /* the MAC covers header bytes [0, 24) and the body */
#define AX_PEER_MAC_SIZE 16u /* HMAC-SHA256 truncated to 16 bytes */
#define AX_PEER_NONCE_SIZE 32u
#define AX_PEER_PROOF_SIZE 32u
#define AX_PEER_MAX_FRAME_DEFAULT (1u << 20)
#define AX_PEER_BATCH_BODY (64u << 10) /* a sender closes a data batch at this body size */

/* Feature flags exchanged in HELLO; the session uses the common subset. */
#define AX_PEER_FEAT_BATCH 0x00000001u   /* data frames carry several records */
#define AX_PEER_FEAT_MONITOR 0x00000002u /* remote monitors (MONITOR/DEMONITOR/DOWN) */
#define AX_PEER_FEAT_DRAIN 0x00000004u   /* PING flag LEAVING and RELEASED frames (drain) */
#define AX_PEER_FEAT_STATUS 0x00000008u  /* STATUS_REQ / STATUS frames (cluster-wide status) */
#define AX_PEER_FEAT_KNOWN 0x0000000fu

/* Peer frame types, 0x40-0x7f. 0x40-0x47 handshake (unauthenticated, session 0,
 * seq 0, MAC zero) except AUTH_OK; 0x48-0x5f control; 0x60-0x7f data. */
enum ax_peer_type {
    AX_PT_HELLO = 0x40,     /* u16 min_ver, u16 max_ver, u32 features, str wire_id, str to_name, nonce,
                             * u32 shard_count, str store */
    AX_PT_HELLO_ACK = 0x41, /* u16 version, u32 features, str wire_id, nonce, proof, u32 shard_count, str store */
    AX_PT_AUTH = 0x42,      /* proof */
    AX_PT_AUTH_OK = 0x43,   /* (empty) - the first authenticated frame */
    AX_PT_REFUSE = 0x44,    /* i32 code, str reason */
    AX_PT_PING = 0x48,      /* u64 id, u64 sent_us, u8 flags (AX_PING_*) */
    AX_PT_PONG = 0x49,      /* u64 id, u64 sent_us, u8 flags (echoed) */
    AX_PT_CLOSE = 0x4a,     /* i32 code, str reason */
    AX_PT_MONITOR = 0x50,   /* records: u64 mref, u64 watcher_id, u32 watcher_gen, u64 target_id, u32 target_gen */
    AX_PT_DEMONITOR = 0x51, /* records: u64 mref */
    AX_PT_DOWN = 0x52,      /* records: u64 mref, u64 target_id, u32 target_gen, str reason */
    AX_PT_EPOCHS = 0x53,    /* records: u32 shard, u64 epoch (highest epoch the sender knows) */
    AX_PT_RELEASED = 0x54,  /* records: u32 shard, u64 epoch (the sender released its lease of the shard) */
    AX_PT_STATUS_REQ = 0x55, /* records: u64 req (the sender asks for the receiver's status document) */
    AX_PT_STATUS = 0x56,     /* records: u64 req, blob json (the receiver's answer: its status document) */
    AX_PT_TELL = 0x60,      /* records: u64 to_id, u32 to_gen, u64 from_id, u32 from_gen, str msg, blob payload */
    AX_PT_ASK = 0x61,       /* records: u64 req, u64 to_id, u32 to_gen, u64 from_id, u32 from_gen, u32 timeout_ms, str msg, blob payload */
    AX_PT_REPLY = 0x62,     /* records: u64 req, i32 status, blob payload */
    AX_PT_KEYED = 0x63,     /* records: u64 req, u64 epoch, u8 kflags, str type, str key, u64 from_id, u32 from_gen, u32 timeout_ms, str msg, blob payload */
};

int ax_peer_type_known(uint8_t type);
const char *ax_peer_type_name(uint8_t type); /* "?" if unknown */
int ax_peer_type_is_handshake(uint8_t type);   /* HELLO..REFUSE */
int ax_peer_type_is_data(uint8_t type);        /* TELL, ASK, REPLY: the data plane */

typedef struct ax_peer_hdr {
    uint8_t version;
    uint8_t type;
    uint16_t flags;   /* none defined: MUST be 0 */
    uint32_t session; /* sender's session number; 0 on unauthenticated frames */
    uint32_t body_len;
    uint64_t seq;     /* per direction, strictly increasing from 1; 0 unauthenticated */
    uint8_t mac[AX_PEER_MAC_SIZE];
} ax_peer_hdr;

void ax_peer_hdr_encode(const ax_peer_hdr *h, uint8_t out[AX_PEER_HDR_SIZE]);
/* 0 ok; 1 need more bytes; AX_EPROTO bad magic/version/type/flags/reserved;
 * AX_ETOOBIG body_len > max_body. *h untouched on error. */
int ax_peer_hdr_decode(const uint8_t *p, size_t len, uint32_t max_body, ax_peer_hdr *h, const char **why);

/* Start a frame in b (header reserved, MAC zero); ax_peer_frame_end fills body_len.
 * end returns AX_ETOOBIG (frame removed) above max_body, or b->err (frame removed). */
size_t ax_peer_frame_begin(ax_wbuf *b, uint8_t type, uint32_t session);
int ax_peer_frame_end(ax_wbuf *b, size_t start, uint32_t max_body);

#define AX_PEER_STORE_MAX 255 /* lease store identity in HELLO / HELLO_ACK */
/* Largest body accepted before the peer authenticated: what HELLO, HELLO_ACK, AUTH or a
 * REFUSE can need, not cluster.max_frame (strangers must not make a node buffer MiBs). */
#define AX_PEER_HS_MAX_BODY 2048u

/* ---- bodies ---- */
typedef struct ax_peer_hello {
    uint16_t min_ver, max_ver;
    uint32_t features;
    const char *wire_id; /* sender's wire id (a valid name with a session suffix) */
    size_t wire_id_len;
    const char *to_name; /* the logical name the sender wants to reach; may be empty */
    size_t to_name_len;
    const uint8_t *nonce; /* AX_PEER_NONCE_SIZE bytes */
    uint32_t shard_count; /* the sender's shards.count (must agree in a cluster) */
    const char *store;    /* the sender's lease store identity (printable, <= 255 bytes) */
    size_t store_len;
} ax_peer_hello;
void ax_peer_hello_put(ax_wbuf *b, const ax_peer_hello *h);
int ax_peer_hello_get(const void *p, size_t n, ax_peer_hello *h, const char **why);

typedef struct ax_peer_hello_ack {
    uint16_t version;
    uint32_t features;
    const char *wire_id;
    size_t wire_id_len;
    const uint8_t *nonce; /* AX_PEER_NONCE_SIZE */
    const uint8_t *proof; /* AX_PEER_PROOF_SIZE */
    uint32_t shard_count; /* as in HELLO */
    const char *store;
    size_t store_len;
} ax_peer_hello_ack;
void ax_peer_hello_ack_put(ax_wbuf *b, const ax_peer_hello_ack *h);
int ax_peer_hello_ack_get(const void *p, size_t n, ax_peer_hello_ack *h, const char **why);

int ax_peer_auth_get(const void *p, size_t n, const uint8_t **proof, const char **why);

typedef struct ax_peer_reason { /* REFUSE, CLOSE */
    int32_t code;
    const char *reason;
    size_t reason_len;
} ax_peer_reason;
void ax_peer_reason_put(ax_wbuf *b, int32_t code, const char *reason);
int ax_peer_reason_get(const void *p, size_t n, ax_peer_reason *r, const char **why);

#define AX_PING_STORE_OK 0x01u /* the sender reaches its lease store (it counts in the fair share) */
#define AX_PING_LEAVING 0x02u  /* the sender drains: it takes no shard and does not count in the fair share */
#define AX_PING_KNOWN 0x03u
typedef struct ax_peer_ping {
    uint64_t id, sent_us;
    uint8_t flags;
} ax_peer_ping;
int ax_peer_ping_get(const void *p, size_t n, ax_peer_ping *pg, const char **why);

/* Records of control and data frames. A body is a sequence of one or more records of
 * the frame's type; the reader yields them one at a time. */
typedef struct ax_peer_rec {
    uint32_t shard; /* EPOCHS, RELEASED */
    uint64_t req, mref; /* req: ASK, REPLY, KEYED, STATUS_REQ, STATUS */
    uint64_t to_id, from_id; /* MONITOR: watcher = from, target = to; DOWN: target = to */
    uint32_t to_gen, from_gen;
    uint32_t timeout_ms;
    int32_t status;
    const char *msg; /* TELL/ASK message name; DOWN reason */
    size_t msg_len;
    const void *payload;
    size_t payload_len;
    /* KEYED: a message routed by (type, key) to the node holding the key's shard */
    const char *ktype, *key;
    size_t ktype_len, key_len;
    uint64_t epoch;  /* the shard epoch the sender believes current; 0 = not fenced */
    uint8_t kflags;  /* AX_PK_DIRECT, AX_PK_ASK */
} ax_peer_rec;

#define AX_PK_DIRECT 0x01u /* deliver only to a live keyed actor (else ENOTFOUND) */
#define AX_PK_ASK 0x02u    /* an ask: REPLY after the handler; else req != 0 asks for an
                            * acknowledgement (REPLY, empty) once the message is queued */
#define AX_PK_KNOWN 0x03u
/* Append one record of type to b (the caller has begun a frame of that type). */
void ax_peer_rec_put(ax_wbuf *b, uint8_t type, const ax_peer_rec *r);
/* Read the next record: 1 = got one, 0 = end of body, AX_EPROTO = malformed (why set).
 * Message names must be valid names; DOWN reasons 1..1024 bytes without NUL; ASK timeout > 0. */
int ax_peer_rec_next(ax_rbuf *r, uint8_t type, ax_peer_rec *out, const char **why);

/* Validate the body of any peer frame type (fuzzer, tests): 0 or AX_EPROTO. */
int ax_peer_body_validate(uint8_t type, const void *p, size_t n, const char **why);

#endif
