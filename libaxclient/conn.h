/* libaxclient internals shared by the blocking client (client.c) and the asynchronous one
 * (async.c): the connection's codec state and the request encoders and answer decoders.
 * Not installed; nothing here is exported (the version script exports axc_* only, and
 * these names start with cl_). */
#ifndef AXCLIENT_CONN_H
#define AXCLIENT_CONN_H

#include <stddef.h>
#include <stdint.h>

#include "axactor/client.h"
#include "frame.h"

#define AXC_EXPORT __attribute__((visibility("default")))

#define DEFAULT_TIMEOUT_MS 5000
/* The daemon answers an ask with ETIMEDOUT at its deadline; we wait this much longer
 * so that its answer, not ours, is the one the caller sees. */
#define ASK_GRACE_MS 1000
/* Buffered fire-and-forget tells are pushed to the socket past this size. */
#define FLUSH_AT (64u * 1024u)
/* Initial read buffer: most replies fit; it grows (up to max_frame) only for big ones. */
#define RB_MIN (16u * 1024u)
#define RB_KEEP (256u * 1024u)
#define CLIENT_NAME_MAX 64
/* Events queued while nobody reads them; past this they are counted and dropped, and
 * axc_next_event reports the gap as a "lagged" event. */
#define EVQ_MAX 4096

enum { PE_FREE = 0, PE_WAIT = 1, PE_DONE = 2 };

/* One pipelined ask (axc_send_ask) from send until its result is handed out. */
typedef struct pend {
    uint32_t id;
    uint8_t state;
    int timeout_ms;
    int64_t deadline; /* local give-up time (monotonic ms) */
    axc_result res;   /* valid when state == PE_DONE */
} pend;

/* A decoded frame header and its body, pointing into the read buffer: valid only until
 * the next read from the socket. */
typedef struct rframe {
    ax_frame_hdr h;
    const uint8_t *body;
} rframe;

struct axc_conn {
    int fd;
    int broken;
    int async; /* driven by async.c: it reads and dispatches every frame itself */
    int timeout_ms;
    int64_t rcvtimeo_ms; /* value last set with SO_RCVTIMEO (-1: none yet) */
    uint32_t next_id;
    uint32_t max_frame; /* body limit, both ways: the daemon's value from HELLO_OK */
    ax_wbuf out;
    uint8_t *rb;
    size_t rb_off, rb_len, rb_cap;
    size_t rb_need; /* size of the partial frame at rb_off once its header is known */
    pend *pq;       /* ring of pipelined asks, oldest first; pq_cap is a power of two */
    size_t pq_cap, pq_head, pq_count, pq_waiting, pq_done;
    char **evq; /* ring of queued EVENT documents, oldest first; evq_cap a power of two */
    size_t evq_cap, evq_head, evq_count;
    uint64_t ev_skipped;
    char *node_id;
    char err[512];
    char dead[512]; /* why the connection broke */
};

/* ---- connection state and errors ---- */
int64_t cl_now_ms(void);
void cl_sanitize(char *s);
/* Set c->err (one printable line) and return code. */
__attribute__((format(printf, 3, 4))) int cl_seterr(axc_conn *c, int code, const char *fmt, ...);
/* The same, and mark the connection broken (every later call: AX_ECONN). */
__attribute__((format(printf, 3, 4))) int cl_broken(axc_conn *c, int code, const char *fmt, ...);
int cl_usable(axc_conn *c);
uint32_t cl_next_id(axc_conn *c);
/* malloc'd NUL-terminated copy of n bytes, NULL when out of memory; ax_free it. */
char *cl_copy(const void *p, size_t n);
/* A connection with no socket yet: codec state only (async.c opens its own socket). */
axc_conn *cl_conn_new(void);

/* ---- the socket ----
 * cl_parse: 1 = one frame in *f (valid until the next cl_recv), 0 = need more bytes,
 * < 0 = malformed (broken). cl_recv: > 0 read, 0 nothing now, < 0 broken.
 * cl_send: 1 = everything written, 0 = would block, < 0 broken. */
int cl_parse(axc_conn *c, rframe *f);
int cl_recv(axc_conn *c, int flags);
int cl_send(axc_conn *c);
/* Non-blocking Unix-socket connect of c->fd to path: 0 connected, 1 in progress (wait
 * for writable, then cl_connect_done), AX_EBUSY backlog full (try again), < 0 error. */
int cl_connect_start(axc_conn *c, const char *path);
int cl_connect_done(axc_conn *c, const char *path);

/* ---- encoders: each checks its arguments (c->err says why) and queues one frame in
 * c->out with request id id, or queues nothing and returns the error ---- */
int cl_end_frame(axc_conn *c, size_t mark, size_t start);
int cl_check_name(axc_conn *c, const char *what, const char *s, size_t *len);
int cl_check_flags(axc_conn *c, unsigned flags, unsigned allowed, const char *what);
int cl_target_wire(axc_conn *c, const axc_target *t, ax_wire_target *w, size_t *size);
int cl_put_msg(axc_conn *c, uint8_t type, uint16_t flags, uint32_t id, const axc_target *t, const char *msg,
               const void *p, size_t n, uint32_t timeout_ms);
int cl_put_simple(axc_conn *c, uint8_t type, uint32_t id, const char *s1, size_t n1);
int cl_put_hello(axc_conn *c, uint32_t id);
int cl_put_spawn(axc_conn *c, uint32_t id, const char *type, const char *name, const char *config_json);
int cl_put_get_or_spawn(axc_conn *c, uint32_t id, const char *type, const char *key, const char *config_json);
int cl_put_spawn_arg(axc_conn *c, uint32_t id, const char *type, const char *name, const char *key,
                     const char *config_json, const void *arg, size_t n);
/* STOP, RESOLVE, MONITOR: a body that is one target. */
int cl_put_target_req(axc_conn *c, uint8_t type, uint32_t id, const axc_target *t);
int cl_put_exit(axc_conn *c, uint32_t id, const axc_target *t, const char *reason);
int cl_put_demonitor(axc_conn *c, uint32_t id, uint64_t mref);
int cl_put_actors(axc_conn *c, uint32_t id, const axc_actors_query *q);
int cl_put_drain(axc_conn *c, uint32_t id, uint32_t timeout_ms, unsigned flags);
int cl_put_subscribe(axc_conn *c, uint32_t id, const char *actor_name);
int cl_put_log_level(axc_conn *c, uint32_t id, const char *level);
int cl_put_plugin_load(axc_conn *c, uint32_t id, const char *path);
int cl_put_plugin_unload(axc_conn *c, uint32_t id, const char *name);
/* An ask's timeout as sent (clamped) or AX_EINVAL for timeout_ms <= 0. */
int cl_ask_timeout(axc_conn *c, int timeout_ms, int *out);

/* ---- answer decoders (a non-ERROR frame f answering what) ---- */
int cl_get_error(axc_conn *c, const rframe *f, int *code, const char **msg, size_t *len);
int cl_expect(axc_conn *c, const rframe *f, uint8_t type, const char *what);
int cl_get_ok(axc_conn *c, const rframe *f, const char *what);
int cl_get_ref(axc_conn *c, const rframe *f, const char *what, axc_ref *out);
int cl_get_blob(axc_conn *c, const rframe *f, uint8_t type, const char *what, char **out, size_t *len);
/* The blob of f without a copy (borrowed from the read buffer). */
int cl_peek_blob(axc_conn *c, const rframe *f, uint8_t type, const char *what, const void **p, size_t *n);
/* HELLO_OK (or ERROR) answering the HELLO with id: sets node_id and max_frame. */
int cl_hello_answer(axc_conn *c, const char *path, const rframe *f, uint32_t id);
int cl_json_u64(const char *doc, const char *key, uint64_t *out);

#endif
