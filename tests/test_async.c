/* The asynchronous libaxclient (include/axactor/async.h) through both adapters
 * (axactor/adapters/libev.h and libuv.h) against real daemons: every kind of request is
 * answered through its own callback exactly once with final set; pipelined asks come back
 * whole; monitors and the one subscription follow their documented lifecycle; a daemon
 * SIGKILLed mid-request fails every waiter with ECONN, its monitors with a "noconnection"
 * down, and the reconnect helper re-establishes the connection once it is back; a daemon
 * that stops reading meets a bound (EFULL), never a blocked caller. */

#include <check.h>
#include <ev.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <uv.h>

#include "axactor/adapters/libev.h"
#include "axactor/adapters/libuv.h"
#include "axactor/async.h"
#include "frame.h"
#include "harness.h"

#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

/* ---- two loops behind one driver ---- */

typedef struct drv {
    int uv; /* 0 libev, 1 libuv */
    struct ev_loop *ev;
    ev_timer ev_tick;
    uv_loop_t uvl;
    uv_timer_t uv_tick;
} drv;

static void ev_tick_cb(struct ev_loop *l, ev_timer *w, int e)
{
    (void)l;
    (void)w;
    (void)e;
}

static void uv_tick_cb(uv_timer_t *t) { (void)t; }

static void drv_init(drv *d, int uv)
{
    memset(d, 0, sizeof *d);
    d->uv = uv;
    if (uv) {
        ck_assert_int_eq(uv_loop_init(&d->uvl), 0);
        uv_timer_init(&d->uvl, &d->uv_tick);
        uv_timer_start(&d->uv_tick, uv_tick_cb, 10, 10); /* so that one run returns soon */
    } else {
        d->ev = ev_loop_new(EVFLAG_AUTO);
        ck_assert_ptr_nonnull(d->ev);
        ev_timer_init(&d->ev_tick, ev_tick_cb, 0.01, 0.01);
        ev_timer_start(d->ev, &d->ev_tick);
    }
}

static void drv_attach(drv *d, axc_async *ac)
{
    int rc = d->uv ? axc_libuv_attach(ac, &d->uvl) : axc_libev_attach(ac, d->ev);
    ck_assert_int_eq(rc, 0);
}

static void drv_once(drv *d)
{
    if (d->uv)
        uv_run(&d->uvl, UV_RUN_ONCE);
    else
        ev_run(d->ev, EVRUN_ONCE);
}

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Run the loop until *a >= want (bounded by time). */
static int run_until(drv *d, const int *a, int want, int timeout_ms)
{
    int64_t end = mono_ms() + timeout_ms;
    while (*a < want && mono_ms() < end)
        drv_once(d);
    return *a >= want;
}

static void drv_fini(drv *d)
{
    if (d->uv) {
        uv_timer_stop(&d->uv_tick);
        uv_close((uv_handle_t *)&d->uv_tick, NULL);
        for (int i = 0; i < 20; i++) /* the adapters' handles close asynchronously */
            uv_run(&d->uvl, UV_RUN_NOWAIT);
        ck_assert_int_eq(uv_loop_close(&d->uvl), 0);
    } else {
        ev_timer_stop(d->ev, &d->ev_tick);
        ev_loop_destroy(d->ev);
    }
}

/* ---- what each callback saw ---- */

typedef struct rec {
    int calls, finals, nonfinal;
    int status, kind;
    char data[512];
    uint64_t mref;
    axc_ref ref;
    int *done; /* bumped at the final call */
} rec;

static void rec_cb(axc_async *ac, const axc_reply *r, void *p)
{
    (void)ac;
    rec *x = p;
    x->calls++;
    x->status = r->status;
    x->kind = r->kind;
    ck_assert_ptr_nonnull(r->errmsg);
    snprintf(x->data, sizeof x->data, "%s", r->data ? r->data : r->errmsg);
    if (r->data)
        ck_assert_uint_eq(strlen(r->data), r->len);
    if (r->mref)
        x->mref = r->mref;
    if (r->kind == AXC_R_REF)
        x->ref = r->ref;
    if (r->final) {
        x->finals++;
        ck_assert_int_eq(x->finals, 1);
        if (x->done)
            (*x->done)++;
    } else {
        x->nonfinal++;
    }
}

typedef struct conn_state {
    int connects, connect_errors, disconnects, events;
    int last_status;
    axc_disconnect last;
    char reason[256];
} conn_state;

static void on_connect(axc_async *ac, int status, void *p)
{
    (void)ac;
    conn_state *s = p;
    s->last_status = status;
    if (status == 0)
        s->connects++;
    else
        s->connect_errors++;
}

static void on_disconnect(axc_async *ac, const axc_disconnect *d, void *p)
{
    (void)ac;
    conn_state *s = p;
    s->disconnects++;
    s->last = *d;
    snprintf(s->reason, sizeof s->reason, "%s", d->reason);
    s->last.reason = s->reason;
}

static axc_async *open_async(drv *d, ax_h_daemon *dm, conn_state *cs)
{
    axc_async *ac = NULL;
    char err[256];
    int rc = axc_async_connect(ax_h_sock(dm), 5000, &ac, err, sizeof err);
    ck_assert_msg(rc == 0 && ac, "axc_async_connect: %d %s", rc, err);
    memset(cs, 0, sizeof *cs);
    axc_async_set_connect_cb(ac, on_connect, cs);
    axc_async_set_disconnect_cb(ac, on_disconnect, cs);
    drv_attach(d, ac);
    return ac;
}

#define REC(name, done_ptr)                                                                                            \
    rec name;                                                                                                          \
    memset(&name, 0, sizeof name);                                                                                     \
    name.done = (done_ptr)

static const char *const PLUGINS[] = {"-p", "echo", "-p", "work", NULL};
#define NASK 1000

/* Every request kind, through the driver's loop. */
static void every_request(int uv)
{
    ax_h_daemon *dm = ax_h_start(PLUGINS);
    drv d;
    drv_init(&d, uv);
    conn_state cs;
    axc_async *ac = open_async(&d, dm, &cs);
    int done = 0;

    /* queued before the HELLO exchange: sent after it */
    REC(st, &done);
    ck_assert_int_eq(axc_async_status(ac, rec_cb, &st), 0);
    ck_assert_int_eq(axc_async_is_connected(ac), 0);
    ck_assert(run_until(&d, &done, 1, 5000));
    ck_assert_int_eq(cs.connects, 1);
    ck_assert_int_eq(st.status, 0);
    ck_assert_int_eq(st.kind, AXC_R_JSON);
    ck_assert_msg(st.data[0] == '{', "status: %s", st.data);
    ck_assert_str_ne(axc_async_node_id(ac), "");

    /* spawn, get_or_spawn twice (one actor), spawn_arg */
    done = 0;
    REC(sp, &done);
    REC(g1, &done);
    REC(g2, &done);
    REC(sa, &done);
    ck_assert_int_eq(axc_async_spawn(ac, "echo", "e1", NULL, rec_cb, &sp), 0);
    ck_assert_int_eq(axc_async_get_or_spawn(ac, "work", "k1", NULL, rec_cb, &g1), 0);
    ck_assert_int_eq(axc_async_get_or_spawn(ac, "work", "k1", NULL, rec_cb, &g2), 0);
    ck_assert_int_eq(axc_async_spawn_arg(ac, "work", "wa", NULL, NULL, "xyz", 3, rec_cb, &sa), 0);
    ck_assert(run_until(&d, &done, 4, 5000));
    ck_assert_msg(sp.status == 0 && sp.kind == AXC_R_REF && sp.ref.id, "spawn: %d %s", sp.status, sp.data);
    ck_assert_int_eq(g1.status, 0);
    ck_assert(g1.ref.id == g2.ref.id && g1.ref.gen == g2.ref.gen);
    ck_assert_int_eq(sa.status, 0);

    /* NASK pipelined asks, a tell with its acknowledgement, fire-and-forget tells */
    static rec asks[NASK];
    static char want[NASK][16];
    memset(asks, 0, sizeof asks);
    done = 0;
    axc_target e1 = axc_by_name("e1");
    for (int i = 0; i < NASK; i++) {
        asks[i].done = &done;
        int n = snprintf(want[i], sizeof want[i], "m%d", i);
        ck_assert_int_eq(axc_async_ask(ac, &e1, "echo", want[i], (size_t)n, 5000, 0, rec_cb, &asks[i]), 0);
    }
    REC(tl, &done);
    ck_assert_int_eq(axc_async_tell(ac, &e1, "echo", "t", 1, 0, rec_cb, &tl), 0);
    for (int i = 0; i < 10; i++)
        ck_assert_int_eq(axc_async_tell(ac, &e1, "echo", "f", 1, AXC_NOREPLY, NULL, NULL), 0);
    /* refused at once, never called back: a NOREPLY tell with a callback, a bad name, a bad timeout */
    REC(never, &done);
    ck_assert_int_eq(axc_async_tell(ac, &e1, "echo", "f", 1, AXC_NOREPLY, rec_cb, &never), AX_EINVAL);
    ck_assert_int_eq(axc_async_ask(ac, &e1, "bad name", NULL, 0, 1000, 0, rec_cb, &never), AX_EINVAL);
    ck_assert_int_eq(axc_async_ask(ac, &e1, "echo", NULL, 0, 0, 0, rec_cb, &never), AX_EINVAL);
    ck_assert_str_ne(axc_async_errmsg(ac), "no error");
    REC(cnt, &done);
    ck_assert_int_eq(axc_async_ask(ac, &e1, "count", NULL, 0, 5000, 0, rec_cb, &cnt), 0);
    ck_assert_uint_ge(axc_async_pending(ac), NASK);
    ck_assert(run_until(&d, &done, NASK + 2, 10000));
    for (int i = 0; i < NASK; i++) {
        ck_assert_msg(asks[i].status == 0 && asks[i].kind == AXC_R_DATA, "ask %d: %d %s", i, asks[i].status,
                      asks[i].data);
        ck_assert_str_eq(asks[i].data, want[i]);
    }
    ck_assert_int_eq(tl.status, 0);
    ck_assert_str_eq(cnt.data, "1011"); /* NASK asks + 1 acked tell + 10 fire-and-forget */
    ck_assert_int_eq(never.calls, 0);
    ck_assert_uint_eq(axc_async_pending(ac), 0);

    /* resolve, the documents, the daemon's refusals */
    done = 0;
    REC(rs, &done);
    REC(nd, &done);
    REC(sh, &done);
    REC(pl, &done);
    REC(ap, &done);
    REC(ll, &done);
    REC(llbad, &done);
    REC(noproc, &done);
    REC(dr, &done);
    REC(udr, &done);
    REC(pu, &done);
    REC(pld, &done);
    ck_assert_int_eq(axc_async_resolve(ac, &e1, rec_cb, &rs), 0);
    ck_assert_int_eq(axc_async_nodes(ac, rec_cb, &nd), 0);
    ck_assert_int_eq(axc_async_shards(ac, rec_cb, &sh), 0);
    ck_assert_int_eq(axc_async_plugins(ac, rec_cb, &pl), 0);
    axc_actors_query q = {.type = "work"};
    ck_assert_int_eq(axc_async_actors_page(ac, &q, rec_cb, &ap), 0);
    ck_assert_int_eq(axc_async_set_log_level(ac, "info", rec_cb, &ll), 0);
    ck_assert_int_eq(axc_async_set_log_level(ac, "loud", rec_cb, &llbad), 0);
    axc_target nobody = axc_by_name("nobody");
    ck_assert_int_eq(axc_async_ask(ac, &nobody, "echo", NULL, 0, 1000, 0, rec_cb, &noproc), 0);
    ck_assert_int_eq(axc_async_drain(ac, 1000, 0, rec_cb, &dr), 0);
    ck_assert_int_eq(axc_async_undrain(ac, rec_cb, &udr), 0);
    ck_assert_int_eq(axc_async_plugin_unload(ac, "nosuchplugin", rec_cb, &pu), 0);
    ck_assert_int_eq(axc_async_plugin_load(ac, "/nonexistent/x.so", rec_cb, &pld), 0);
    ck_assert(run_until(&d, &done, 12, 5000));
    ck_assert(rs.status == 0 && rs.ref.id == sp.ref.id);
    ck_assert_msg(pl.status == 0 && strstr(pl.data, "echo"), "plugins: %s", pl.data);
    ck_assert_msg(ap.status == 0 && strstr(ap.data, "\"wa\""), "actors: %s", ap.data);
    ck_assert_int_eq(ll.status, 0);
    ck_assert_int_eq(ll.kind, AXC_R_NONE);
    ck_assert_int_eq(llbad.status, AX_EINVAL);
    ck_assert_int_eq(noproc.status, AX_ENOPROC);
    ck_assert_msg(dr.status == AX_EINVAL, "drain of a single node: %d %s", dr.status, dr.data);
    ck_assert_int_ne(pu.status, 0);
    ck_assert_int_ne(pld.status, 0);
    ck_assert(nd.finals == 1 && sh.finals == 1 && udr.finals == 1);

    /* a monitor: its answer (mref, not final), then the down (final) when the actor stops */
    done = 0;
    REC(mon, &done);
    REC(stp, &done);
    ck_assert_int_eq(axc_async_monitor(ac, &e1, rec_cb, &mon), 0);
    int one = 0;
    while (!mon.calls && one++ < 500)
        drv_once(&d);
    ck_assert_msg(mon.nonfinal == 1 && mon.mref && mon.kind == AXC_R_JSON, "monitor: %d %s", mon.status, mon.data);
    ck_assert_int_eq(axc_async_stop(ac, &e1, rec_cb, &stp), 0);
    ck_assert(run_until(&d, &done, 2, 5000));
    ck_assert_int_eq(stp.status, 0);
    ck_assert_msg(mon.kind == AXC_R_EVENT && strstr(mon.data, "\"down\"") && mon.status == 0, "down: %s", mon.data);

    /* demonitor: its own OK, and the monitor's final call with no down */
    done = 0;
    REC(sp3, &done);
    ck_assert_int_eq(axc_async_spawn(ac, "echo", "e3", NULL, rec_cb, &sp3), 0);
    ck_assert(run_until(&d, &done, 1, 5000));
    done = 0;
    REC(mon3, &done);
    axc_target e3 = axc_by_name("e3");
    ck_assert_int_eq(axc_async_monitor(ac, &e3, rec_cb, &mon3), 0);
    one = 0;
    while (!mon3.calls && one++ < 500)
        drv_once(&d);
    ck_assert_int_eq(mon3.nonfinal, 1);
    REC(dem, &done);
    ck_assert_int_eq(axc_async_demonitor(ac, mon3.mref, rec_cb, &dem), 0);
    ck_assert(run_until(&d, &done, 2, 5000));
    ck_assert_int_eq(dem.status, 0);
    ck_assert(mon3.finals == 1 && mon3.kind == AXC_R_NONE && mon3.status == 0);
    REC(stp3, &done);
    ck_assert_int_eq(axc_async_stop(ac, &e3, rec_cb, &stp3), 0);
    ck_assert(run_until(&d, &done, 3, 5000));
    ck_assert_int_eq(mon3.calls, 2); /* no down after the demonitor */

    /* a subscription: OK (not final), events, and the final call at unsubscribe */
    done = 0;
    REC(sub, &done);
    ck_assert_int_eq(axc_async_subscribe(ac, "e4", rec_cb, &sub), 0);
    one = 0;
    while (!sub.calls && one++ < 500)
        drv_once(&d);
    ck_assert_msg(sub.nonfinal == 1 && sub.status == 0, "subscribe: %d %s", sub.status, sub.data);
    REC(sp4, &done);
    ck_assert_int_eq(axc_async_spawn(ac, "echo", "e4", NULL, rec_cb, &sp4), 0);
    one = 0;
    while (sub.nonfinal < 2 && one++ < 500)
        drv_once(&d);
    ck_assert_msg(sub.kind == AXC_R_EVENT && strstr(sub.data, "\"started\"") && strstr(sub.data, "\"e4\""),
                  "event: %s", sub.data);
    REC(uns, &done);
    ck_assert_int_eq(axc_async_unsubscribe(ac, rec_cb, &uns), 0);
    ck_assert(run_until(&d, &done, 3, 5000)); /* spawn, unsubscribe, and the subscription's end */
    ck_assert(uns.status == 0 && sub.finals == 1 && sub.status == 0);

    ck_assert_int_eq(cs.disconnects, 0);
    axc_async_free(ac);
    ck_assert_int_eq(cs.disconnects, 1); /* the disconnect callback runs for a free, too */
    ck_assert_int_eq(cs.last.status, 0);
    drv_fini(&d);
    ax_h_stop(dm);
}

START_TEST(libev_every_request_answers_through_its_callback_once) { every_request(0); }
END_TEST

START_TEST(libuv_every_request_answers_through_its_callback_once) { every_request(1); }
END_TEST

/* SIGKILL with requests, a monitor and a subscription outstanding; then the reconnect. */
static void killed_mid_request(int uv)
{
    ax_h_daemon *dm = ax_h_start(PLUGINS);
    drv d;
    drv_init(&d, uv);
    conn_state cs;
    axc_async *ac = open_async(&d, dm, &cs);
    axc_async_set_reconnect(ac, 50, 400);
    int done = 0;
    REC(sp, &done);
    ck_assert_int_eq(axc_async_spawn(ac, "work", "w", NULL, rec_cb, &sp), 0);
    ck_assert(run_until(&d, &done, 1, 5000));
    ck_assert_int_eq(sp.status, 0);

    done = 0;
    axc_target w = axc_by_name("w");
    rec deferred[3];
    memset(deferred, 0, sizeof deferred);
    for (int i = 0; i < 3; i++) {
        deferred[i].done = &done;
        ck_assert_int_eq(axc_async_ask(ac, &w, "defer", NULL, 0, 60000, 0, rec_cb, &deferred[i]), 0);
    }
    REC(mon, &done);
    REC(sub, &done);
    ck_assert_int_eq(axc_async_monitor(ac, &w, rec_cb, &mon), 0);
    ck_assert_int_eq(axc_async_subscribe(ac, NULL, rec_cb, &sub), 0);
    REC(hd, &done);
    ck_assert_int_eq(axc_async_ask(ac, &w, "handled", NULL, 0, 5000, 0, rec_cb, &hd), 0);
    ck_assert(run_until(&d, &done, 1, 5000)); /* "handled" answered: the defers were taken */
    ck_assert_str_eq(hd.data, "4");
    ck_assert(mon.nonfinal == 1 && sub.nonfinal == 1);
    ck_assert_uint_eq(axc_async_pending(ac), 5); /* three asks, the monitor, the subscription */

    ax_h_kill(dm);
    ck_assert(run_until(&d, &cs.disconnects, 1, 5000));
    for (int i = 0; i < 3; i++)
        ck_assert_msg(deferred[i].finals == 1 && deferred[i].status == AX_ECONN, "deferred ask %d: %d %s", i,
                      deferred[i].status, deferred[i].data);
    ck_assert_msg(mon.finals == 1 && mon.status == AX_ENOCONN && mon.kind == AXC_R_EVENT &&
                      strstr(mon.data, "\"noconnection\""),
                  "monitor at the loss: %d %s", mon.status, mon.data);
    ck_assert(sub.finals == 1 && sub.status == AX_ECONN);
    ck_assert_uint_eq(cs.last.lost_requests, 3);
    ck_assert_uint_eq(cs.last.lost_monitors, 1);
    ck_assert_int_eq(cs.last.lost_subscription, 1);
    ck_assert_int_eq(cs.last.status, AX_ECONN);
    ck_assert_int_gt(cs.last.reconnect_in_ms, 0);
    ck_assert_int_eq(axc_async_is_connected(ac), 0);
    REC(refused, &done);
    ck_assert_int_eq(axc_async_status(ac, rec_cb, &refused), AX_ECONN);

    /* nobody there: attempts fail and are reported, with backoff */
    ck_assert(run_until(&d, &cs.connect_errors, 2, 5000));
    ck_assert_int_eq(cs.connects, 1);

    ax_h_restart(dm, NULL);
    ck_assert(run_until(&d, &cs.connects, 2, 10000));
    ck_assert_uint_eq(axc_async_reconnects(ac), 1);
    done = 0;
    REC(sp2, &done);
    REC(ask2, &done);
    ck_assert_int_eq(axc_async_spawn(ac, "echo", "again", NULL, rec_cb, &sp2), 0);
    ck_assert(run_until(&d, &done, 1, 5000));
    axc_target ag = axc_by_name("again");
    ck_assert_int_eq(axc_async_ask(ac, &ag, "echo", "back", 4, 5000, 0, rec_cb, &ask2), 0);
    ck_assert(run_until(&d, &done, 2, 5000));
    ck_assert_str_eq(ask2.data, "back");
    ck_assert_int_eq(refused.calls, 0);
    axc_async_free(ac);
    drv_fini(&d);
    ax_h_stop(dm);
}

START_TEST(libev_a_daemon_killed_mid_request_fails_every_waiter_and_reconnects) { killed_mid_request(0); }
END_TEST

START_TEST(libuv_a_daemon_killed_mid_request_fails_every_waiter_and_reconnects) { killed_mid_request(1); }
END_TEST

/* A daemon that stops reading: requests queue up to the bound, then EFULL, without blocking;
 * when it reads again everything is delivered. */
START_TEST(a_daemon_that_stops_reading_meets_a_bound_not_a_blocked_caller)
{
    ax_h_daemon *dm = ax_h_start(PLUGINS);
    drv d;
    drv_init(&d, 0);
    conn_state cs;
    axc_async *ac = open_async(&d, dm, &cs);
    axc_async_set_max_unsent(ac, 1u << 20);
    int done = 0;
    REC(sp, &done);
    ck_assert_int_eq(axc_async_spawn(ac, "echo", "e", NULL, rec_cb, &sp), 0);
    ck_assert(run_until(&d, &done, 1, 5000));
    ck_assert_int_eq(kill(ax_h_pid(dm), SIGSTOP), 0);
    static char blob[60000];
    memset(blob, 'x', sizeof blob);
    axc_target e = axc_by_name("e");
    int sent = 0, rc = 0;
    for (int i = 0; i < 2000 && rc == 0; i++) {
        rc = axc_async_tell(ac, &e, "echo", blob, sizeof blob, AXC_NOREPLY, NULL, NULL);
        if (rc == 0)
            sent++;
        for (int k = 0; k < 2; k++)
            drv_once(&d); /* the loop writes what the socket takes */
    }
    ck_assert_msg(rc == AX_EFULL, "after %d tells: %d %s", sent, rc, axc_async_errmsg(ac));
    ck_assert_uint_ge(axc_async_unsent(ac), 1u << 20);
    ck_assert_int_eq(axc_async_flush(ac), 1); /* some left, and it did not wait */
    ck_assert_int_eq(kill(ax_h_pid(dm), SIGCONT), 0);
    done = 0;
    REC(cnt, &done);
    int64_t end = mono_ms() + 10000;
    while ((rc = axc_async_ask(ac, &e, "count", NULL, 0, 10000, 0, rec_cb, &cnt)) == AX_EFULL && mono_ms() < end)
        drv_once(&d);
    ck_assert_int_eq(rc, 0);
    ck_assert(run_until(&d, &done, 1, 10000));
    ck_assert_int_eq(atoi(cnt.data), sent);
    ck_assert_uint_eq(axc_async_unsent(ac), 0);
    axc_async_free(ac);
    drv_fini(&d);
    ax_h_stop(dm);
}
END_TEST

/* Requests queued before the HELLO answer are checked against the daemon's max_frame once
 * it is known: a too-big one is failed alone (ETOOBIG), the connection is kept. */
START_TEST(a_request_queued_before_hello_that_exceeds_max_frame_fails_alone)
{
    ax_h_daemon *dm = ax_h_start((const char *const[]){"-p", "echo", "--set", "client.max_frame=4096", NULL});
    drv d;
    drv_init(&d, 0);
    conn_state cs;
    axc_async *ac = open_async(&d, dm, &cs);
    int done = 0;
    static char big[10000];
    memset(big, 'b', sizeof big);
    REC(sp, &done);
    REC(bigask, &done);
    REC(small, &done);
    axc_target e = axc_by_name("e");
    ck_assert_int_eq(axc_async_spawn(ac, "echo", "e", NULL, rec_cb, &sp), 0);
    ck_assert_int_eq(axc_async_ask(ac, &e, "echo", big, sizeof big, 5000, 0, rec_cb, &bigask), 0);
    ck_assert_int_eq(axc_async_ask(ac, &e, "echo", "s", 1, 5000, 0, rec_cb, &small), 0);
    ck_assert(run_until(&d, &done, 3, 5000));
    ck_assert_msg(bigask.status == AX_ETOOBIG, "big ask: %d %s", bigask.status, bigask.data);
    ck_assert_str_eq(small.data, "s");
    ck_assert_int_eq(axc_async_is_connected(ac), 1);
    /* after HELLO the limit is checked before anything is queued */
    ck_assert_int_eq(axc_async_ask(ac, &e, "echo", big, sizeof big, 5000, 0, rec_cb, &bigask), AX_ETOOBIG);
    axc_async_free(ac);
    drv_fini(&d);
    ax_h_stop(dm);
}
END_TEST

/* No daemon at the path: the error comes at once, with the reason. An ask whose actor
 * never answers gets the daemon's ETIMEDOUT at its timeout. */
START_TEST(connect_errors_are_immediate_and_asks_time_out)
{
    axc_async *ac = (axc_async *)1;
    char err[256];
    ck_assert_int_eq(axc_async_connect("/nonexistent/ax.sock", 1000, &ac, err, sizeof err), AX_ECONN);
    ck_assert_ptr_null(ac);
    ck_assert_msg(strstr(err, "/nonexistent/ax.sock"), "%s", err);

    ax_h_daemon *dm = ax_h_start(PLUGINS);
    drv d;
    drv_init(&d, 1);
    conn_state cs;
    ac = open_async(&d, dm, &cs);
    int done = 0;
    REC(sp, &done);
    REC(slow, &done);
    ck_assert_int_eq(axc_async_spawn(ac, "work", "w", NULL, rec_cb, &sp), 0);
    ck_assert(run_until(&d, &done, 1, 5000));
    axc_target w = axc_by_name("w");
    ck_assert_int_eq(axc_async_ask(ac, &w, "defer", NULL, 0, 300, 0, rec_cb, &slow), 0);
    ck_assert(run_until(&d, &done, 2, 5000));
    ck_assert_msg(slow.status == AX_ETIMEDOUT, "deferred ask: %d %s", slow.status, slow.data);
    axc_async_free(ac);
    drv_fini(&d);
    ax_h_stop(dm);
}
END_TEST

/* ---- a hostile "daemon": our own listener that answers HELLO its way ---- */

enum { FAKE_GARBAGE, FAKE_REFUSE, FAKE_SILENT, FAKE_HALF_FRAME };

/* Fork a process listening on DIR/fake.sock that accepts one connection, reads the HELLO
 * and answers as `how` says, then waits to be killed. */
static pid_t fake_daemon(int how, char *path, size_t cap)
{
    snprintf(path, cap, "%s/fake.sock", ax_h_tmpdir());
    unlink(path);
    int l = socket(AF_UNIX, SOCK_STREAM, 0);
    ck_assert_int_ge(l, 0);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    ck_assert_uint_lt(strlen(path), sizeof sa.sun_path);
    memcpy(sa.sun_path, path, strlen(path) + 1);
    ck_assert_int_eq(bind(l, (struct sockaddr *)&sa, sizeof sa), 0);
    ck_assert_int_eq(listen(l, 4), 0);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid) {
        close(l);
        return pid;
    }
    int fd = accept(l, NULL, NULL);
    uint8_t in[256];
    if (fd < 0 || read(fd, in, sizeof in) <= 0)
        _exit(1);
    ax_wbuf b;
    ax_wbuf_init(&b);
    if (how != FAKE_SILENT) {
        size_t st;
        if (how == FAKE_REFUSE) {
            st = ax_frame_begin(&b, AX_T_ERROR, 0, 1);
            ax_body_error_put(&b, AX_EPERM, "go away");
        } else {
            st = ax_frame_begin(&b, AX_T_HELLO_OK, 0, 1);
            ax_body_hello_ok h = {.version = AX_PROTO_VERSION, .node_id = "fake", .node_id_len = 4,
                                  .max_frame = AX_FRAME_MAX_DEFAULT};
            ax_body_hello_ok_put(&b, &h);
        }
        ax_frame_end(&b, st, AX_FRAME_MAX_LIMIT);
        if (how == FAKE_GARBAGE) /* then bytes that are no frame at all */
        {
            static const char http[] = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
            ax_wbuf_put(&b, http, sizeof http - 1);
        }
        if (how == FAKE_HALF_FRAME) { /* then half of an answer, and the end */
            size_t s2 = ax_frame_begin(&b, AX_T_JSON, 0, 2);
            ax_wbuf_blob(&b, "{\"a\":1}", 7);
            ax_frame_end(&b, s2, AX_FRAME_MAX_LIMIT);
            b.len -= 4;
        }
        if (write(fd, b.data, b.len) != (ssize_t)b.len)
            _exit(1);
        if (how == FAKE_HALF_FRAME)
            _exit(0);
    }
    for (;;)
        pause();
}

static void fake_end(pid_t pid)
{
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
}

/* A "daemon" that sends garbage, cuts a frame in half, refuses HELLO or never answers it:
 * each ends in a callback with a clear error and every waiting request answered; no crash. */
START_TEST(a_hostile_or_silent_daemon_ends_the_connection_with_a_clear_error)
{
    static const struct {
        int how;
        int want_connect, want_loss;
    } cases[] = {{FAKE_GARBAGE, 0, AX_EPROTO},
                 {FAKE_HALF_FRAME, 0, AX_ECONN},
                 {FAKE_REFUSE, AX_EPERM, 0},
                 {FAKE_SILENT, AX_ETIMEDOUT, 0}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char path[256];
        pid_t pid = fake_daemon(cases[i].how, path, sizeof path);
        drv d;
        drv_init(&d, (int)(i & 1));
        axc_async *ac = NULL;
        char err[256];
        ck_assert_int_eq(axc_async_connect(path, 500, &ac, err, sizeof err), 0);
        conn_state cs;
        memset(&cs, 0, sizeof cs);
        axc_async_set_connect_cb(ac, on_connect, &cs);
        axc_async_set_disconnect_cb(ac, on_disconnect, &cs);
        drv_attach(&d, ac);
        int done = 0;
        REC(st, &done);
        ck_assert_int_eq(axc_async_status(ac, rec_cb, &st), 0);
        ck_assert(run_until(&d, &done, 1, 5000));
        ck_assert_msg(st.status == AX_ECONN, "case %zu: the waiting request: %d %s", i, st.status, st.data);
        if (cases[i].want_connect) {
            ck_assert_int_eq(cs.connects, 0);
            ck_assert_msg(cs.last_status == cases[i].want_connect, "case %zu: connect status %d", i, cs.last_status);
            ck_assert_int_eq(cs.disconnects, 0);
            ck_assert_msg(strlen(axc_async_errmsg(ac)) > 10, "case %zu: %s", i, axc_async_errmsg(ac));
        } else {
            ck_assert_int_eq(cs.connects, 1);
            ck_assert_int_eq(cs.disconnects, 1);
            ck_assert_msg(cs.last.status == cases[i].want_loss, "case %zu: loss status %d (%s)", i, cs.last.status,
                          cs.reason);
            ck_assert_uint_eq(cs.last.lost_requests, 1);
        }
        ck_assert_int_eq(axc_async_is_connected(ac), 0);
        REC(after, &done);
        ck_assert_int_eq(axc_async_status(ac, rec_cb, &after), AX_ECONN);
        axc_async_free(ac);
        drv_fini(&d);
        fake_end(pid);
        unlink(path);
    }
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("async");
    TCase *t = tcase_create("async");
    tcase_set_timeout(t, 60);
    tcase_add_test(t, libev_every_request_answers_through_its_callback_once);
    tcase_add_test(t, libuv_every_request_answers_through_its_callback_once);
    tcase_add_test(t, libev_a_daemon_killed_mid_request_fails_every_waiter_and_reconnects);
    tcase_add_test(t, libuv_a_daemon_killed_mid_request_fails_every_waiter_and_reconnects);
    tcase_add_test(t, a_daemon_that_stops_reading_meets_a_bound_not_a_blocked_caller);
    tcase_add_test(t, a_request_queued_before_hello_that_exceeds_max_frame_fails_alone);
    tcase_add_test(t, connect_errors_are_immediate_and_asks_time_out);
    tcase_add_test(t, a_hostile_or_silent_daemon_ends_the_connection_with_a_clear_error);
    suite_add_tcase(s, t);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
