/* The axactor frame codec, shared by axactord and libaxclient (and the fuzzers).
 * A frame is a fixed 16-byte big-endian header followed by a body; bodies are built
 * and read with the bounds-checked ax_wbuf/ax_rbuf below. Constants here must match
 * proto/PROTOCOL.md (checked by tests/test_proto_spec.c). This code never logs: it
 * returns AX_E* codes and, on decode errors, a static string that says what was wrong. */
#ifndef AX_PROTO_FRAME_H
#define AX_PROTO_FRAME_H

#include <stddef.h>
#include <stdint.h>

#include "axactor/errors.h"

#define AX_FRAME_MAGIC 0x4158u /* "AX" */
#define AX_PROTO_VERSION 1u
#define AX_PROTO_VERSION_MIN 1u
#define AX_FRAME_HDR_SIZE 16u
#define AX_FRAME_MAX_DEFAULT (1u << 20) /* 1 MiB body, default max_frame */
#define AX_FRAME_MAX_LIMIT (64u << 20)  /* highest configurable max_frame */
#define AX_FRAME_MAX_MIN 1024u          /* lowest configurable max_frame */
#define AX_STR_MAX 65535u               /* a str is u16-length-prefixed */
#define AX_NAME_MAX 255u                /* actor, type, message, plugin names */
#define AX_KEY_MAX 1024u                /* registry key: 1..AX_KEY_MAX bytes, no NUL */
#define AX_CONFIG_MAX 65536u            /* SPAWN config_json blob */
#define AX_PATH_MAX 4096u               /* PLUGIN_LOAD path */

/* Frame types. Client plane 0x01-0x3f; 0x40-0x7f reserved for the peer protocol. */
enum ax_frame_type {
    AX_T_HELLO = 0x01,     /* c->d  u16 min_ver, u16 max_ver, str client_name */
    AX_T_HELLO_OK = 0x02,  /* d->c  u16 version, str node_id, u32 max_frame */
    AX_T_ERROR = 0x03,     /* d->c  i32 code, str message */
    AX_T_OK = 0x04,        /* d->c  (empty body) */
    AX_T_SPAWN = 0x10,     /* c->d  str type, str name, blob config_json */
    AX_T_REF = 0x11,       /* d->c  ref */
    AX_T_TELL = 0x12,      /* c->d  target, u64 epoch, str msg, blob payload */
    AX_T_ASK = 0x13,       /* c->d  target, u64 epoch, str msg, blob payload, u32 timeout_ms */
    AX_T_REPLY = 0x14,     /* d->c  blob payload */
    AX_T_STOP = 0x15,      /* c->d  target */
    AX_T_RESOLVE = 0x16,   /* c->d  target  -> REF */
    AX_T_EXIT = 0x17,      /* c->d  target, str reason -> OK (Erlang's exit/2) */
    AX_T_STATUS = 0x20,    /* c->d  (empty) -> JSON */
    AX_T_ACTORS = 0x21,    /* c->d  (empty) -> JSON */
    AX_T_PLUGINS = 0x22,   /* c->d  (empty) -> JSON */
    AX_T_PLUGIN_LOAD = 0x23,   /* c->d  str path -> JSON (the loaded plugin) */
    AX_T_PLUGIN_UNLOAD = 0x24, /* c->d  str name -> OK */
    AX_T_SHARDS = 0x2a,      /* c->d  (empty) -> JSON: shards, owners, epochs (axctl shards) */
    AX_T_NODES = 0x25,       /* c->d  (empty) -> JSON: cluster peers (axctl nodes) */
    AX_T_SUBSCRIBE = 0x26,   /* c->d  str actor_name_filter ("" = all) -> OK, then EVENTs */
    AX_T_UNSUBSCRIBE = 0x27, /* c->d  (empty) -> OK */
    AX_T_MONITOR = 0x28,     /* c->d  target -> JSON {"mref","id","gen"}; a down is an EVENT */
    AX_T_DEMONITOR = 0x29,   /* c->d  u64 mref -> OK */
    AX_T_LOG_LEVEL = 0x2b,   /* c->d  str level (error|warn|info|debug) -> OK */
    AX_T_DRAIN = 0x2c,       /* c->d  u32 timeout_ms (0 = the daemon's), u8 flags (AX_DRAIN_*) -> JSON, once done */
    AX_T_UNDRAIN = 0x2d,     /* c->d  (empty) -> OK */
    AX_T_CLUSTER_STATUS = 0x2e, /* c->d  (empty) -> JSON (every member's status and their sums) */
    AX_T_JSON = 0x2f,      /* d->c  blob json_document (UTF-8, not NUL-terminated) */
    AX_T_EVENT = 0x30,     /* d->c  blob json_document: lifecycle event, down, lagged */
};

#define AX_DRAIN_STAY 0x01u /* DRAIN: the daemon stays up (without shards) instead of stopping */
#define AX_DRAIN_TIMEOUT_MAX 3600000u

/* Frame flags (u16). Unknown flags are a decode error in version 1. */
#define AX_F_NOREPLY 0x0001u /* TELL: the sender wants no OK/ERROR back */
#define AX_F_DIRECT 0x0002u  /* TELL/ASK to a (type, key) target: deliver only to a live
                                 actor (else ENOTFOUND); without it the actor is spawned */
#define AX_F_KNOWN_MASK 0x0003u

typedef struct ax_frame_hdr {
    uint8_t version;
    uint8_t type;
    uint16_t flags;
    uint32_t req_id;   /* chosen by the requester, echoed in the response; 0 = none */
    uint32_t body_len; /* bytes following the header */
} ax_frame_hdr;

/* Encode hdr into out[AX_FRAME_HDR_SIZE] (magic and reserved filled in). */
void ax_frame_hdr_encode(const ax_frame_hdr *hdr, uint8_t out[AX_FRAME_HDR_SIZE]);

/* Decode and validate a header from len bytes at p.
 * Returns 0 and fills *hdr; AX_EPROTO for a bad magic/version/type/flags/reserved, or
 * AX_ETOOBIG for body_len > max_body; 1 if len < AX_FRAME_HDR_SIZE (need more bytes).
 * On error *why (if non-NULL) gets a static message; *hdr is untouched. */
int ax_frame_hdr_decode(const uint8_t *p, size_t len, uint32_t max_body, ax_frame_hdr *hdr,
                        const char **why);

/* Returns 1 if type is a frame type of the client plane that version 1 knows. */
int ax_frame_type_known(uint8_t type);
/* Name of a frame type for logs ("TELL"); "?" for unknown. */
const char *ax_frame_type_name(uint8_t type);

/* ---- growable output buffer ---- */
typedef struct ax_wbuf {
    uint8_t *data;
    size_t len, cap;
    int err; /* sticky: first AX_ENOMEM / AX_ETOOBIG hit while writing */
} ax_wbuf;

void ax_wbuf_init(ax_wbuf *b);
void ax_wbuf_free(ax_wbuf *b); /* accepts a zeroed or freed buffer */
int ax_wbuf_reserve(ax_wbuf *b, size_t extra);
void ax_wbuf_put(ax_wbuf *b, const void *p, size_t n);
void ax_wbuf_u8(ax_wbuf *b, uint8_t v);
void ax_wbuf_u16(ax_wbuf *b, uint16_t v);
void ax_wbuf_u32(ax_wbuf *b, uint32_t v);
void ax_wbuf_u64(ax_wbuf *b, uint64_t v);
void ax_wbuf_str(ax_wbuf *b, const char *s, size_t n);   /* sets err=AX_ETOOBIG if n > 65535 */
void ax_wbuf_blob(ax_wbuf *b, const void *p, size_t n);  /* u32 length + bytes */
/* Drop the first n bytes (after they were written to a socket). */
void ax_wbuf_consume(ax_wbuf *b, size_t n);

/* Start a frame: reserves the header, returns its offset; ax_frame_end fills body_len.
 * ax_frame_end returns AX_ETOOBIG if the body exceeds max_body (the frame is removed).
 * If b->err was set while the frame was written, ax_frame_end removes the frame, clears
 * b->err and returns it: earlier complete frames stay intact, and the caller can still
 * queue an ERROR frame instead. */
size_t ax_frame_begin(ax_wbuf *b, uint8_t type, uint16_t flags, uint32_t req_id);
int ax_frame_end(ax_wbuf *b, size_t start, uint32_t max_body);

/* ---- bounds-checked reader over a received body ---- */
typedef struct ax_rbuf {
    const uint8_t *p;
    size_t len, off;
    int err; /* sticky AX_EPROTO once any read overran */
    const char *why; /* static description of the first error */
} ax_rbuf;

void ax_rbuf_init(ax_rbuf *r, const void *p, size_t len);
uint8_t ax_rbuf_u8(ax_rbuf *r);
uint16_t ax_rbuf_u16(ax_rbuf *r);
uint32_t ax_rbuf_u32(ax_rbuf *r);
uint64_t ax_rbuf_u64(ax_rbuf *r);
/* str / blob: *out points into the body (not NUL-terminated). */
void ax_rbuf_str(ax_rbuf *r, const char **out, size_t *n);
void ax_rbuf_blob(ax_rbuf *r, const void **out, size_t *n);
/* Returns 0 if no error so far and every byte was consumed, else AX_EPROTO
 * (why = "trailing bytes" if bytes remain). */
int ax_rbuf_done(ax_rbuf *r);

/* ---- typed bodies ---- */

/* A ref names one actor incarnation: node is the wire id of its node ("" = the
 * node that receives the frame), id its slot, gen its generation. A target is how a
 * request names the actor: by ref, by registered name, or by (type, key). */
enum ax_target_kind { AX_TGT_REF = 0, AX_TGT_NAME = 1, AX_TGT_KEY = 2 };

typedef struct ax_wire_ref {
    const char *node;
    size_t node_len;
    uint64_t id;
    uint32_t gen;
} ax_wire_ref;

typedef struct ax_wire_target {
    uint8_t kind;
    ax_wire_ref ref;      /* AX_TGT_REF */
    const char *name;     /* AX_TGT_NAME: name; AX_TGT_KEY: type name */
    size_t name_len;
    const char *key;      /* AX_TGT_KEY */
    size_t key_len;
} ax_wire_target;

/* Wire layouts (see PROTOCOL.md):
 *   ref    = str node, u64 id, u32 gen
 *   target = u8 kind, then ref | str name | str type, str key */
void ax_put_ref(ax_wbuf *b, const ax_wire_ref *r);
void ax_get_ref(ax_rbuf *r, ax_wire_ref *out);
void ax_put_target(ax_wbuf *b, const ax_wire_target *t);
void ax_get_target(ax_rbuf *r, ax_wire_target *out); /* unknown kind -> AX_EPROTO */

typedef struct ax_body_msg { /* TELL and ASK */
    ax_wire_target target;
    uint64_t epoch;      /* shard epoch for fencing; 0 = not fenced */
    const char *msg;
    size_t msg_len;
    const void *payload;
    size_t payload_len;
    uint32_t timeout_ms; /* ASK only */
} ax_body_msg;

/* Encode/decode whole bodies. decode returns 0 or AX_EPROTO with *why set, and
 * validates: names 1..AX_NAME_MAX bytes with no NUL; for ASK timeout_ms > 0. */
void ax_body_msg_put(ax_wbuf *b, uint8_t type, const ax_body_msg *m);
int ax_body_msg_get(const void *p, size_t len, uint8_t type, ax_body_msg *m, const char **why);

typedef struct ax_body_spawn {
    const char *type;
    size_t type_len;
    const char *name;   /* may be empty: anonymous actor */
    size_t name_len;
    const char *config; /* JSON object or empty; see PROTOCOL.md for keys */
    size_t config_len;
} ax_body_spawn;
void ax_body_spawn_put(ax_wbuf *b, const ax_body_spawn *s);
int ax_body_spawn_get(const void *p, size_t len, ax_body_spawn *s, const char **why);

typedef struct ax_body_error {
    int32_t code;
    const char *msg;
    size_t msg_len;
} ax_body_error;
void ax_body_error_put(ax_wbuf *b, int32_t code, const char *msg);
int ax_body_error_get(const void *p, size_t len, ax_body_error *e, const char **why);

typedef struct ax_body_hello {
    uint16_t min_ver, max_ver;
    const char *name;
    size_t name_len;
} ax_body_hello;
typedef struct ax_body_hello_ok {
    uint16_t version;
    const char *node_id;
    size_t node_id_len;
    uint32_t max_frame;
} ax_body_hello_ok;
int ax_body_hello_get(const void *p, size_t len, ax_body_hello *h, const char **why);
int ax_body_hello_ok_get(const void *p, size_t len, ax_body_hello_ok *h, const char **why);

/* Decode the body of any client-plane frame (used by the fuzzer and as a
 * pre-dispatch validity check): 0 if well formed for its type, else AX_EPROTO. */
int ax_body_validate(uint8_t type, const void *p, size_t len, const char **why);

/* Check a name: 1..AX_NAME_MAX bytes, printable ASCII without spaces. 0 or AX_EINVAL. */
int ax_name_valid(const char *s, size_t n);
/* Check a registry key: 1..AX_KEY_MAX bytes, any byte but NUL. 0 or AX_EINVAL. */
int ax_key_valid(const char *s, size_t n);

/* The remaining bodies. Pointers returned point into p. */
void ax_body_hello_put(ax_wbuf *b, const ax_body_hello *h);
void ax_body_hello_ok_put(ax_wbuf *b, const ax_body_hello_ok *h);
int ax_body_ref_get(const void *p, size_t len, ax_wire_ref *r, const char **why);       /* REF */
int ax_body_target_get(const void *p, size_t len, ax_wire_target *t, const char **why); /* STOP, RESOLVE */
/* ACTORS query (an empty body = the first page, no filters): u64 cursor (0 = from the
 * start), u32 limit (0 = the daemon's default page), str type (exact), str name_prefix,
 * str state, str key_prefix (each empty = any). */
typedef struct ax_actors_query {
    uint64_t cursor;
    uint32_t limit;
    const char *type, *name, *state, *key;
    size_t type_len, name_len, state_len, key_len;
} ax_actors_query;
int ax_body_actors_get(const void *p, size_t len, ax_actors_query *q, const char **why);
void ax_body_actors_put(ax_wbuf *b, const ax_actors_query *q);

/* EXIT: target, str reason (a valid name). */
int ax_body_exit_get(const void *p, size_t len, ax_wire_target *t, const char **reason, size_t *reason_len,
                     const char **why);
int ax_body_blob_get(const void *p, size_t len, const void **out, size_t *n,
                     const char **why); /* REPLY, JSON */
/* PLUGIN_LOAD (path: 1..AX_PATH_MAX bytes, no NUL) or PLUGIN_UNLOAD (a valid name). */
int ax_body_plugin_get(const void *p, size_t len, uint8_t type, const char **s, size_t *n,
                       const char **why);

/* Version negotiation: the highest version in [min_ver, max_ver] that this build
 * speaks, or AX_EVERSION if the ranges do not overlap. */
int ax_proto_negotiate(uint16_t min_ver, uint16_t max_ver);

#endif
