/* Plug an asynchronous libaxclient connection (axactor/async.h) into a libuv loop, in the
 * manner of hiredis's adapters/libuv.h. Header only: the program links libuv itself.
 *
 *     axc_async *ac;
 *     if (axc_async_connect(NULL, 0, &ac, err, sizeof err) == 0 && axc_libuv_attach(ac, uv_default_loop()) == 0)
 *         ... axc_async_ask(ac, ...); uv_run(uv_default_loop(), UV_RUN_DEFAULT);
 *
 * libuv closes handles asynchronously: after axc_async_free the adapter's handles are closed
 * and freed by the loop's next iteration (so run the loop once more before uv_loop_close). */
#ifndef AXACTOR_ADAPTERS_LIBUV_H
#define AXACTOR_ADAPTERS_LIBUV_H

#include <stdlib.h>
#include <uv.h>

#include "axactor/async.h"

typedef struct axc_libuv {
    uv_loop_t *loop;
    axc_async *ac; /* NULL once the connection was freed */
    uv_poll_t *poll; /* the current socket's handle (a new one per socket) */
    int events;
    uv_timer_t timer;
} axc_libuv;

static void axc_libuv_free_cb(uv_handle_t *h)
{
    free(h->data == NULL ? (void *)h : h->data);
}

static void axc_libuv_poll_cb(uv_poll_t *p, int status, int events)
{
    axc_libuv *u = (axc_libuv *)p->data;
    if (!u || !u->ac)
        return;
    /* an error on the socket: let the read find out what it is */
    if (status < 0)
        events |= UV_READABLE;
    if ((events & UV_READABLE) && u->ac)
        axc_async_handle_read(u->ac);
    /* the read may have freed the connection (u stays valid until the close callbacks run) */
    if ((events & UV_WRITABLE) && u->ac && u->poll == p)
        axc_async_handle_write(u->ac);
}

static void axc_libuv_timer_cb(uv_timer_t *t)
{
    axc_libuv *u = (axc_libuv *)t->data;
    if (u->ac)
        axc_async_handle_timer(u->ac);
}

static void axc_libuv_update(axc_libuv *u, int events)
{
    u->events = events;
    if (!u->poll)
        return;
    if (events)
        uv_poll_start(u->poll, events, axc_libuv_poll_cb);
    else
        uv_poll_stop(u->poll);
}

static void axc_libuv_close_poll(axc_libuv *u)
{
    if (!u->poll)
        return;
    uv_poll_stop(u->poll);
    u->poll->data = NULL; /* freed by itself in its close callback */
    uv_close((uv_handle_t *)u->poll, axc_libuv_free_cb);
    u->poll = NULL;
}

static void axc_libuv_set_fd(void *data, int fd)
{
    axc_libuv *u = (axc_libuv *)data;
    axc_libuv_close_poll(u);
    u->events = 0;
    if (fd < 0)
        return;
    uv_poll_t *p = (uv_poll_t *)malloc(sizeof *p);
    if (!p)
        return; /* no watching: the connection's deadlines still end its requests */
    if (uv_poll_init(u->loop, p, fd) != 0) {
        free(p);
        return;
    }
    p->data = u;
    u->poll = p;
}

static void axc_libuv_add_read(void *data)
{
    axc_libuv *u = (axc_libuv *)data;
    axc_libuv_update(u, u->events | UV_READABLE);
}

static void axc_libuv_del_read(void *data)
{
    axc_libuv *u = (axc_libuv *)data;
    axc_libuv_update(u, u->events & ~UV_READABLE);
}

static void axc_libuv_add_write(void *data)
{
    axc_libuv *u = (axc_libuv *)data;
    axc_libuv_update(u, u->events | UV_WRITABLE);
}

static void axc_libuv_del_write(void *data)
{
    axc_libuv *u = (axc_libuv *)data;
    axc_libuv_update(u, u->events & ~UV_WRITABLE);
}

static void axc_libuv_set_timer(void *data, int ms)
{
    axc_libuv *u = (axc_libuv *)data;
    uv_timer_stop(&u->timer);
    if (ms >= 0)
        uv_timer_start(&u->timer, axc_libuv_timer_cb, (uint64_t)ms, 0);
}

static void axc_libuv_cleanup(void *data)
{
    axc_libuv *u = (axc_libuv *)data;
    u->ac = NULL;
    axc_libuv_close_poll(u);
    uv_timer_stop(&u->timer);
    /* the adapter itself goes with its timer handle (data: the block to free) */
    u->timer.data = u;
    uv_close((uv_handle_t *)&u->timer, axc_libuv_free_cb);
}

/* 0, or AX_ENOMEM / AX_EINVAL (already attached). */
static inline int axc_libuv_attach(axc_async *ac, uv_loop_t *loop)
{
    axc_libuv *u = (axc_libuv *)calloc(1, sizeof *u);
    if (!u)
        return AX_ENOMEM;
    u->loop = loop;
    u->ac = ac;
    if (uv_timer_init(loop, &u->timer) != 0) {
        free(u);
        return AX_ENOMEM;
    }
    u->timer.data = u;
    axc_async_loop l = {u,
                        axc_libuv_set_fd,
                        axc_libuv_add_read,
                        axc_libuv_del_read,
                        axc_libuv_add_write,
                        axc_libuv_del_write,
                        axc_libuv_set_timer,
                        axc_libuv_cleanup};
    int rc = axc_async_attach(ac, &l);
    if (rc) {
        u->ac = NULL;
        uv_close((uv_handle_t *)&u->timer, axc_libuv_free_cb);
    }
    return rc;
}

#endif
