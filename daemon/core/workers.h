/* A node's workers (../shared/DESIGN.md, "Workers"): N runtimes, each on its own thread
 * and libev loop, sharing the node's message table. Worker 0 is the caller's runtime on
 * the caller's loop; workers 1..N-1 get a loop and a thread each. An actor lives on one
 * worker (its ref's id carries the worker in bits 32..47; worker 0 refs are the plain
 * slot, so one worker looks exactly as a runtime alone) and its handlers only run there.
 * Between workers, everything travels through the receiver's bounded inbox (xq.h), in
 * order per sending worker: tells and asks (replies return to the asker's worker, whose
 * timer bounds the ask), stops, exit signals, links, monitors and downs. A full inbox is
 * backpressure: the sender gets AX_EFULL.
 *
 * Semantics that differ from one worker: a tell, stop or exit to an actor on another
 * worker returns AX_OK once queued (an actor that is gone is found there: the message is
 * counted as dropped; an ask gets AX_ENOPROC back), and a link to an actor that is gone
 * there arrives as the noproc exit a trapping actor receives, not as the return value.
 * Registered names are the node's (unique among all workers, found from any: ax_lookup).
 * A keyed actor lives on its key's home worker (its shard's, or by hash without a lease
 * manager): get_or_spawn from another worker is a synchronous call to that worker, so
 * there is exactly one actor per key however workers race. Lifecycle events reach the
 * subscribers of every worker (in order per actor). */
#ifndef AXD_WORKERS_H
#define AXD_WORKERS_H

#include <pthread.h>

#include "core.h"
#include "xq.h"

#define AXD_WORKERS_MAX 256
#define AXD_WORKER_INBOX 65536 /* items per worker inbox */

typedef struct axd_worker {
    axd_rt *rt;            /* worker 0: the caller's; others: owned */
    struct ev_loop *loop;  /* worker 0: the caller's; others: owned */
    axd_xq inbox;
    axd_xq calls;          /* synchronous calls (axd_workers_sync): served even while this
                            * worker itself waits for one, so two workers calling each
                            * other cannot deadlock */
    pthread_t th;
    int started;
} axd_worker;

typedef struct axd_workers {
    uint32_t n;
    axd_worker *w;
    _Atomic int discard;   /* set while tearing down: inbox items are freed, not handled */
} axd_workers;

/* Make n workers (1..AXD_WORKERS_MAX) around rt0 (already initialised, its types
 * registered): workers 1..n-1 get rt0's configuration, node id, message table and actor
 * types, and start their threads. 0, or AX_EINVAL / AX_ENOMEM / AX_EIO with err. */
int axd_workers_start(axd_workers *g, axd_rt *rt0, uint32_t n, char *err, size_t errlen);
/* Run fn(rt, ud) on worker w's thread (soon, in order with what this thread sent w
 * before). From any worker's thread, or the main thread. A call still queued when the
 * workers stop runs then, on the stopping thread (so fn may own ud). */
int axd_workers_call(axd_workers *g, uint32_t w, void (*fn)(axd_rt *rt, void *ud), void *ud);
/* Shutdown, from worker 0's thread: stop every actor on every worker (on_stop runs,
 * queued asks are answered), end and join the threads, then free workers 1..n-1 (rt0
 * stays the caller's). Accepts a group never started (zeroed). */
void axd_workers_stop(axd_workers *g, const char *reason);

/* Run fn(rt, ud) on worker w and wait for it (at most timeout_ms): 0 when it ran, or
 * AX_ETIMEDOUT / AX_EFULL / AX_ENOMEM (then it may still run later: ud must stay valid,
 * so it is copied: ud_size bytes, and fn gets the copy; results come back in the copy,
 * which is copied back to ud when the call completes in time). While waiting, this
 * worker serves calls made to it. From worker `from`'s thread. */
int axd_workers_sync(axd_workers *g, uint32_t from, uint32_t w, void (*fn)(axd_rt *rt, void *ud), void *ud,
                     size_t ud_size, uint32_t timeout_ms);
/* Plugins (plugin_loader.c, on worker 0): give workers 1..n-1 the types of a plugin just
 * loaded on worker 0 (0, or the first worker's error, with nothing left registered), or
 * take them away before an unload (0, or AX_EBUSY when a worker still has live actors of
 * them: then nothing changes). */
int axd_workers_add_types(axd_workers *g, axd_plugin *p, char *err, size_t errlen);
int axd_workers_retire_types(axd_workers *g, axd_plugin *p, char *err, size_t errlen);

/* What a failed axd_workers_sync means to the caller of a spawn made on another worker:
 * AX_ETIMEDOUT or AX_EBUSY (retryable), and why. */
int axd_workers_sync_error(int rc, const char **why);

/* An operation on actor r, run on r's worker (a synchronous call when that is another
 * worker's): AXD_OP_CHECK (is it alive: 0 or AX_ENOPROC), AXD_OP_STOP (stop it with
 * reason), AXD_OP_EXIT (exit/2 with reason, no sender). The operation's result, or a
 * failed call's (*why says which). */
enum { AXD_OP_CHECK = 0, AXD_OP_STOP, AXD_OP_EXIT };
int axd_workers_actor_op(axd_rt *s, ax_ref r, int op, const char *reason, const char **why);

/* The worker a key's actor lives on. */
uint32_t axd_workers_home(const axd_workers *g, const char *key, size_t klen);

/* ---- used by the core (actor.c, supervisor.c) ---- */
static inline uint32_t axd_ref_worker(ax_ref r) { return (uint32_t)(r.id >> 32); }
/* Is r a local actor ref of another worker of this node? */
static inline int axd_ref_elsewhere(const axd_rt *s, ax_ref r)
{
    return r.node == 0 && axd_ref_worker(r) != s->worker;
}
enum axd_xw_kind {
    AXD_XW_ENV = 1,     /* p = axd_env for actor `to` (user, ask, or $down/$exit) */
    AXD_XW_REPLY,       /* p = reply for a pending ask of this worker */
    AXD_XW_STOP,        /* stop `to` with reason */
    AXD_XW_EXIT,        /* exit/2 from `from` to `to` with reason */
    AXD_XW_EXIT_LINK,   /* the exit signal of the link from `from` to `to` */
    AXD_XW_LINK,        /* `from` linked to `to`: add the other side */
    AXD_XW_LINK_FAIL,   /* `from` was gone when `to` linked to it */
    AXD_XW_UNLINK,
    AXD_XW_MONITOR,     /* `from` monitors `to` under mref */
    AXD_XW_DEMONITOR,
    AXD_XW_CALL,        /* p = a function to run on this worker (axd_workers_call) */
    AXD_XW_EVENT,       /* a lifecycle event of actor `to` (another worker's) for our subscribers */
    AXD_XW_DOWN,        /* a down for watcher `to`, a client or another node's actor: worker 0 has them */
};
/* Send an envelope to actor `to` on its worker; on an error the caller still owns e. */
int axd_xw_env(axd_rt *s, ax_ref to, axd_env *e);
/* Answer the ask of envelope e (any worker's); a no-op if e carries no ask. */
void axd_xw_answer(axd_rt *s, const axd_env *e, int status, const void *data, size_t n);
/* A signal (kinds STOP..DEMONITOR) to `to` on its worker. */
int axd_xw_signal(axd_rt *s, uint32_t kind, ax_ref to, ax_ref from, uint64_t mref, const char *reason);

/* A lifecycle event document of actor `who` (name or NULL) for worker w's subscribers. */
void axd_xw_event(axd_rt *s, uint32_t w, ax_ref who, const char *name, const char *doc, size_t n);
/* events.c: deliver an event of another worker's actor to this worker's subscribers. */
void axd_events_deliver(axd_rt *s, ax_ref who, const char *name, const char *doc, size_t n);

/* A down for a watcher that is a client or another node's actor, to the worker that
 * has it: a client's (its ref's worker bits: the worker of its connection), or worker 0,
 * which has the cluster. */
int axd_xw_down_to(axd_rt *s, uint32_t w, ax_ref watcher, uint64_t mref, ax_ref who, const char *reason);

/* The done callback of a pending whose answer goes on to another worker's pending
 * (u.client.conn_slot/conn_gen: that pending; u.client.req_id: its worker). */
void axd_xw_relay_done(axd_rt *s, axd_pending *p, int status, const void *data, size_t n);

/* supervisor.c: the receiving side of the signals above. */
void axd_sup_xw_signal(axd_rt *s, uint32_t kind, ax_ref to, ax_ref from, uint64_t mref, const char *reason);
/* A $down from another worker: 0 if the watcher demonitored meanwhile (drop it). */
int axd_sup_xw_down_live(axd_rt *s, axd_actor *w, uint64_t mref);

#endif
