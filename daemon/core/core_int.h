/* The runtime core's private header: what actor.c, supervisor.c, registry.c and
 * events.c share among themselves, and the mailbox operations. Nothing outside
 * daemon/core/ includes it (but the core's own unit test). */
#ifndef AXD_CORE_INT_H
#define AXD_CORE_INT_H

#include "core.h"
#include "mailbox.h"

/* The one exit path of an incarnation. external: stopped from outside (final, no
 * restart). Otherwise the restart policy decides. */
void axd_actor_exit(axd_rt *s, axd_actor *a, const char *reason, int external);
/* Handle a control EXIT envelope when taken: the actor exits with its reason (restart
 * policy applies), unless it was a link's signal and the link is gone (ignored; e freed).
 * Returns 1 if the actor is gone/restarting. */
int axd_handle_exit_signal(axd_rt *s, axd_actor *a, axd_env *e);
/* A "$exit" message about to be handled: 0 if it must be dropped (its link was removed
 * by ax_unlink after it was queued), else 1 (and the link entry is consumed). */
int axd_exit_msg_live(axd_rt *s, axd_actor *a, const axd_env *e);
void axd_actor_free_ext(axd_rt *s, axd_actor *a, const char *reason);
void axd_actor_terminate(axd_rt *s, axd_actor *a, const char *reason);
int axd_actor_start(axd_rt *s, axd_actor *a);
void axd_actor_schedule(axd_rt *s, axd_actor *a);
void axd_env_drop(axd_rt *s, axd_env *e, int status);
/* Run a plugin's on_stop for the incarnation ending with reason (once). */
void axd_actor_call_on_stop(axd_rt *s, axd_actor *a, const char *reason);

/* supervisor.c: free the table of clients' monitors of other workers' actors */
void axd_cmon_free_all(axd_rt *s);

/* A spawn (or get_or_spawn) made on another worker by a synchronous call: the call's
 * struct starts with this header and its spawn argument bytes follow the struct (the
 * call is copied to the other worker whole). axd_xspawn_new makes it (size: the whole
 * call struct, without the argument), the callee reads its options with
 * axd_xspawn_opts, and axd_xspawn_run makes the call, hands back the result and frees
 * it. */
typedef struct axd_xspawn {
    ax_spawn_opts opts; /* opts.name and opts.arg are NULL: the copy's own are set by axd_xspawn_opts */
    int rc;
    ax_ref out;
    const char *why;    /* static text */
    size_t arg_off;     /* where the argument bytes are in the call */
} axd_xspawn;

/* 0 with the options read from o (a plugin's, of any size) into *ro, or AX_EINVAL with
 * why when its spawn argument is not acceptable. */
int axd_spawn_opts_check(const ax_spawn_opts *o, ax_spawn_opts *ro, const char **why);
void *axd_xspawn_new(size_t size, const ax_spawn_opts *ro);
ax_spawn_opts *axd_xspawn_opts(axd_xspawn *x);
int axd_xspawn_run(axd_rt *s, uint32_t w, void (*fn)(axd_rt *, void *), axd_xspawn *x, size_t size, ax_ref *out,
                   const char **why);

/* work.c: business errors, deferred replies and timers of the running actor (the
 * ax_api entries of ABI 1.3 to 1.5), and the end of an incarnation's (idempotent) */
int axd_api_reply_error(ax_ctx *cx, int code, const char *text);
uint64_t axd_api_defer(ax_ctx *cx);
int axd_api_reply_token(ax_ctx *cx, uint64_t token, int code, const char *text, const void *p, size_t n);
int axd_api_timer_start(ax_ctx *cx, uint32_t delay_ms, uint32_t interval_ms, uint32_t msg, const void *p, size_t n,
                        uint64_t *id);
int axd_api_timer_cancel(ax_ctx *cx, uint64_t id);
void axd_actor_work_end(axd_rt *s, axd_actor *a);
int axd_api_io_watch(ax_ctx *cx, int fd, unsigned events, uint32_t msg, uint64_t *id);
int axd_api_io_unwatch(ax_ctx *cx, uint64_t id);
/* run_actor: the actor handled the readiness event of watch id: report the next one */
void axd_io_rearm(axd_rt *s, axd_actor *a, uint64_t id);
/* offload.c */
axd_pool *axd_pool_new(uint32_t threads, uint32_t queue);
void axd_pool_stop(axd_pool *p);  /* running jobs finish, queued ones are dropped */
void axd_pool_free(axd_pool *p);
void axd_offload_q_free(axd_rt *s); /* after the pool stopped */
int axd_offload_in_pool(void);    /* is this thread a pool thread (no plugin API there) */
/* The plugin API refuses calls from an offload thread (plugin.h, ax_offload). */
#define AXD_NOT_FROM_POOL(ret)                                                                                   \
    do {                                                                                                         \
        if (axd_offload_in_pool()) {                                                                             \
            axd_log(AX_LOG_ERROR, "plugin", "%s called from an offload thread: refused (an offload function "     \
                    "must not use the plugin API)", __func__);                                                   \
            return ret;                                                                                          \
        }                                                                                                        \
    } while (0)
int axd_api_offload(ax_ctx *cx, ax_offload_fn fn, void (*cleanup)(void *arg), void *arg, uint32_t done_msg,
                    uint64_t tag);

/* persist.c: durable keyed actors (see there) */
#define AXD_FENCED "fenced"
#define AXD_STATE_UNAVAILABLE "state_unavailable"
#define AXD_FORGOTTEN "forgotten"
typedef struct axd_held { /* an answer waiting for its handler's write */
    uint8_t worker;
    uint32_t ask, ask_gen;
    int status;
    size_t n;
    void *data;
} axd_held;
struct axd_hold { /* a durable actor's turn: its answers and its write */
    axd_held *v;
    uint32_t n, cap;
    int write; /* 0: nothing to write; 1: buf/len; 2: delete */
    void *buf;
    size_t len;
};
/* Is a durable keyed actor (its state is loaded and written)? */
int axd_persist_durable(const axd_rt *s, const axd_actor *a);
/* axd_actor_start: begin loading the state of a durable actor (a->loading until done). */
void axd_persist_activate(axd_rt *s, axd_actor *a);
/* After a handler returned rc: encode and note the turn's write when the state changed.
 * AX_OK, or the encode error (the handler's effect cannot be made durable). */
int axd_persist_after(axd_rt *s, axd_actor *a, ax_ctx *cx, int rc);
/* Send the turn's write with its held answers (or the answers alone); h is emptied. */
void axd_persist_flush(axd_rt *s, axd_actor *a, struct axd_hold *h);
/* "$forget" taken by the runtime: the turn's write becomes the record's delete. */
void axd_persist_forget_msg(ax_ctx *cx);
void axd_persist_free(axd_actor *a);
/* The answer of envelope e from a handler: held for its write when cx->hold, else sent. */
void axd_ctx_answer(ax_ctx *cx, const axd_env *e, int status, const void *data, size_t n);
int axd_api_persist(ax_ctx *cx, const void *p, size_t n);
int axd_api_forget(ax_ctx *cx);

#endif
