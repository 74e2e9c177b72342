/* Plug an asynchronous libaxclient connection (axactor/async.h) into a libev loop, in the
 * manner of hiredis's adapters/libev.h. Header only: the program links libev itself.
 *
 *     axc_async *ac;
 *     if (axc_async_connect(NULL, 0, &ac, err, sizeof err) == 0 && axc_libev_attach(ac, EV_DEFAULT) == 0)
 *         ... axc_async_ask(ac, ...); ev_run(EV_DEFAULT, 0);
 *
 * The adapter's watchers are stopped and freed when the connection is (axc_async_free). */
#ifndef AXACTOR_ADAPTERS_LIBEV_H
#define AXACTOR_ADAPTERS_LIBEV_H

#include <ev.h>
#include <stdlib.h>

#include "axactor/async.h"

typedef struct axc_libev {
    struct ev_loop *loop;
    axc_async *ac;
    int fd;
    ev_io rev, wev;
    ev_timer timer;
} axc_libev;

static void axc_libev_read_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)loop;
    (void)revents;
    axc_async_handle_read(((axc_libev *)w->data)->ac);
}

static void axc_libev_write_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)loop;
    (void)revents;
    axc_async_handle_write(((axc_libev *)w->data)->ac);
}

static void axc_libev_timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    axc_async_handle_timer(((axc_libev *)w->data)->ac);
}

static void axc_libev_set_fd(void *data, int fd)
{
    axc_libev *e = (axc_libev *)data;
    ev_io_stop(e->loop, &e->rev);
    ev_io_stop(e->loop, &e->wev);
    e->fd = fd;
    if (fd >= 0) {
        ev_io_set(&e->rev, fd, EV_READ);
        ev_io_set(&e->wev, fd, EV_WRITE);
    }
}

static void axc_libev_add_read(void *data)
{
    axc_libev *e = (axc_libev *)data;
    if (e->fd >= 0)
        ev_io_start(e->loop, &e->rev);
}

static void axc_libev_del_read(void *data)
{
    axc_libev *e = (axc_libev *)data;
    ev_io_stop(e->loop, &e->rev);
}

static void axc_libev_add_write(void *data)
{
    axc_libev *e = (axc_libev *)data;
    if (e->fd >= 0)
        ev_io_start(e->loop, &e->wev);
}

static void axc_libev_del_write(void *data)
{
    axc_libev *e = (axc_libev *)data;
    ev_io_stop(e->loop, &e->wev);
}

static void axc_libev_set_timer(void *data, int ms)
{
    axc_libev *e = (axc_libev *)data;
    ev_timer_stop(e->loop, &e->timer);
    if (ms >= 0) {
        ev_timer_set(&e->timer, ms / 1000.0, 0.);
        ev_timer_start(e->loop, &e->timer);
    }
}

static void axc_libev_cleanup(void *data)
{
    axc_libev *e = (axc_libev *)data;
    ev_io_stop(e->loop, &e->rev);
    ev_io_stop(e->loop, &e->wev);
    ev_timer_stop(e->loop, &e->timer);
    free(e);
}

/* 0, or AX_ENOMEM / AX_EINVAL (already attached). */
static inline int axc_libev_attach(axc_async *ac, struct ev_loop *loop)
{
    axc_libev *e = (axc_libev *)calloc(1, sizeof *e);
    if (!e)
        return AX_ENOMEM;
    e->loop = loop;
    e->ac = ac;
    e->fd = -1;
    ev_io_init(&e->rev, axc_libev_read_cb, -1, EV_READ);
    ev_io_init(&e->wev, axc_libev_write_cb, -1, EV_WRITE);
    ev_timer_init(&e->timer, axc_libev_timer_cb, 0., 0.);
    e->rev.data = e->wev.data = e->timer.data = e;
    axc_async_loop l = {e,
                        axc_libev_set_fd,
                        axc_libev_add_read,
                        axc_libev_del_read,
                        axc_libev_add_write,
                        axc_libev_del_write,
                        axc_libev_set_timer,
                        axc_libev_cleanup};
    int rc = axc_async_attach(ac, &l);
    if (rc)
        free(e);
    return rc;
}

#endif
