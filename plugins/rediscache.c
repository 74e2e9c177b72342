/* rediscache: a keyed actor in front of one Redis key, the way a real service does I/O
 * inside axactor (plugin ABI 1.3..1.7):
 *   - its own non-blocking Redis connection (hiredis's async API), driven by the daemon's
 *     loop through ax_io_watch: hiredis's add/del read/write hooks become watches, and
 *     the "redis_io" message calls redisAsyncHandleRead/Write;
 *   - asks answered later, when Redis answers (ax_defer, ax_reply_token);
 *   - Redis errors and a lost connection as business errors (ax_reply_error,
 *     ax_reply_token_error): the actor lives on and reconnects;
 *   - a periodic timer (ax_timer_start) that refreshes the cached value and reconnects.
 *
 * Spawn it keyed by the Redis key, with the spawn argument "HOST:PORT[:REFRESH_MS]"
 * (default 127.0.0.1:6379:1000):
 *   axctl spawn rediscache --key user:42 --arg 127.0.0.1:6379:500
 * Messages:
 *   get          the value from Redis (ENOTFOUND when the key has none; EIO for a Redis
 *                error; ENOCONN when Redis cannot be reached)
 *   set VALUE    SET the key; "OK"
 *   cached       the value as of the last get or refresh, without asking Redis
 *                (ENOTFOUND before there is one)
 *   stats        "gets=N sets=N refreshes=N errors=N connected=0|1"
 * A plugin keeps no globals: its actors may run on any worker. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/async.h>
#include <hiredis/hiredis.h>

#include "axactor/plugin.h"

typedef struct rcache {
    ax_ctx *cx;              /* the handler running now: hiredis calls back inside it */
    redisAsyncContext *ac;   /* NULL while disconnected */
    int connected;
    unsigned want, watched;  /* the readiness hiredis wants, and what the watch asks */
    uint64_t watch;          /* 0: none */
    char host[64];
    int port;
    uint32_t refresh_ms;
    char *cached;
    size_t cached_len;
    int have_cached;
    uint64_t gets, sets, refreshes, errors;
    char lasterr[128];
} rcache;

static const char *key_of(ax_ctx *cx)
{
    const char *k = ax_api_of(cx)->key(cx);
    return k ? k : "";
}

/* ---- the event-loop adapter: hiredis's hooks as watches of the running actor ---- */

static void sync_watch(rcache *st)
{
    if (st->watch && st->watched == st->want)
        return;
    if (st->watch) {
        ax_io_unwatch(st->cx, st->watch);
        st->watch = 0;
    }
    st->watched = 0;
    if (st->want && st->ac && ax_io_watch(st->cx, st->ac->c.fd, st->want, "redis_io", &st->watch) == AX_OK)
        st->watched = st->want;
}

static void ev_add_read(void *p) { rcache *st = p; st->want |= AX_IO_READ; sync_watch(st); }
static void ev_del_read(void *p) { rcache *st = p; st->want &= ~AX_IO_READ; sync_watch(st); }
static void ev_add_write(void *p) { rcache *st = p; st->want |= AX_IO_WRITE; sync_watch(st); }
static void ev_del_write(void *p) { rcache *st = p; st->want &= ~AX_IO_WRITE; sync_watch(st); }
static void ev_cleanup(void *p)
{
    rcache *st = p;
    st->want = 0;
    sync_watch(st);
}

static void on_connect(const redisAsyncContext *ac, int status)
{
    rcache *st = ac->data;
    if (status != REDIS_OK) {
        snprintf(st->lasterr, sizeof st->lasterr, "redis %s:%d: %s", st->host, st->port, ac->errstr);
        st->ac = NULL; /* hiredis frees it after this callback */
        st->connected = 0;
        return;
    }
    st->connected = 1;
}

static void on_disconnect(const redisAsyncContext *ac, int status)
{
    rcache *st = ac->data;
    if (status != REDIS_OK)
        snprintf(st->lasterr, sizeof st->lasterr, "redis %s:%d: %s", st->host, st->port, ac->errstr);
    st->ac = NULL; /* freed by hiredis */
    st->connected = 0;
}

static void connect_redis(rcache *st)
{
    if (st->ac)
        return;
    redisAsyncContext *ac = redisAsyncConnect(st->host, st->port);
    if (!ac)
        return;
    if (ac->err) {
        snprintf(st->lasterr, sizeof st->lasterr, "redis %s:%d: %s", st->host, st->port, ac->errstr);
        redisAsyncFree(ac);
        return;
    }
    st->ac = ac;
    ac->data = st;
    ac->ev.data = st;
    ac->ev.addRead = ev_add_read;
    ac->ev.delRead = ev_del_read;
    ac->ev.addWrite = ev_add_write;
    ac->ev.delWrite = ev_del_write;
    ac->ev.cleanup = ev_cleanup;
    redisAsyncSetConnectCallback(ac, on_connect);
    redisAsyncSetDisconnectCallback(ac, on_disconnect);
    ev_add_write(st); /* the non-blocking connect completes when the socket is writable */
}

/* ---- replies ---- */

typedef struct pending_op {
    rcache *st;
    uint64_t token; /* 0: a refresh (nobody waits) */
    int is_set;
} pending_op;

static void cache_store(rcache *st, const char *p, size_t n)
{
    char *c = malloc(n ? n : 1);
    if (!c)
        return;
    memcpy(c, p, n);
    free(st->cached);
    st->cached = c;
    st->cached_len = n;
    st->have_cached = 1;
}

static void on_reply(redisAsyncContext *ac, void *r, void *privdata)
{
    (void)ac;
    pending_op *op = privdata;
    rcache *st = op->st;
    redisReply *reply = r;
    ax_ctx *cx = st->cx;
    char text[192];
    if (!reply) { /* the connection went away with this command outstanding */
        st->errors++;
        snprintf(text, sizeof text, "%s", st->lasterr[0] ? st->lasterr : "redis: connection lost");
        if (op->token)
            ax_reply_token_error(cx, op->token, AX_ENOCONN, text);
    } else if (reply->type == REDIS_REPLY_ERROR) {
        st->errors++;
        snprintf(text, sizeof text, "redis: %.*s", (int)reply->len, reply->str);
        if (op->token)
            ax_reply_token_error(cx, op->token, AX_EIO, text);
    } else if (op->is_set) {
        if (op->token)
            ax_reply_token(cx, op->token, "OK", 2);
    } else if (reply->type == REDIS_REPLY_NIL) {
        if (op->token)
            ax_reply_token_error(cx, op->token, AX_ENOTFOUND, "redis: the key has no value");
    } else if (reply->type == REDIS_REPLY_STRING) {
        cache_store(st, reply->str, reply->len);
        if (op->token)
            ax_reply_token(cx, op->token, reply->str, reply->len);
    } else if (op->token) {
        ax_reply_token_error(cx, op->token, AX_EIO, "redis: unexpected reply type");
    }
    free(op);
}

/* Send a command; on a refusal the ask (if any) is answered with the error now. */
static int command(ax_ctx *cx, rcache *st, int is_set, const ax_msg *m, int refresh)
{
    connect_redis(st);
    if (!st->ac) {
        st->errors++;
        return refresh ? AX_OK : ax_reply_error(cx, AX_ENOCONN, st->lasterr[0] ? st->lasterr : "redis: not connected");
    }
    pending_op *op = malloc(sizeof *op);
    if (!op)
        return refresh ? AX_OK : ax_reply_error(cx, AX_ENOMEM, "out of memory");
    op->st = st;
    op->is_set = is_set;
    op->token = refresh ? 0 : ax_defer(cx);
    const char *key = key_of(cx);
    int rc = is_set ? redisAsyncCommand(st->ac, on_reply, op, "SET %b %b", key, strlen(key), m->data, m->len)
                    : redisAsyncCommand(st->ac, on_reply, op, "GET %b", key, strlen(key));
    if (rc != REDIS_OK) {
        if (op->token)
            ax_reply_token_error(cx, op->token, AX_ENOCONN, "redis: the connection is closing");
        free(op);
    }
    return AX_OK;
}

/* ---- the actor ---- */

static int rc_start(ax_ctx *cx, rcache *st)
{
    size_t n;
    const char *arg = ax_spawn_arg(cx, &n);
    char buf[96] = "127.0.0.1:6379:1000";
    if (n && n < sizeof buf) {
        memcpy(buf, arg, n);
        buf[n] = 0;
    }
    char *c1 = strchr(buf, ':');
    if (!c1)
        return AX_EINVAL;
    *c1 = 0;
    char *c2 = strchr(c1 + 1, ':');
    if (c2)
        *c2 = 0;
    snprintf(st->host, sizeof st->host, "%s", buf);
    st->port = atoi(c1 + 1);
    st->refresh_ms = c2 ? (uint32_t)atoi(c2 + 1) : 1000;
    if (st->port <= 0 || st->port > 65535 || !st->refresh_ms)
        return AX_EINVAL;
    st->cx = cx;
    connect_redis(st);
    uint64_t id;
    return ax_timer_start(cx, st->refresh_ms, st->refresh_ms, "refresh", NULL, 0, &id);
}

static void rc_stop(ax_ctx *cx, rcache *st, const char *reason)
{
    (void)reason;
    st->cx = cx;
    if (st->ac)
        redisAsyncFree(st->ac); /* outstanding commands are answered ENOCONN */
    st->ac = NULL;
    free(st->cached);
    st->cached = NULL;
}

static int rc_io(ax_ctx *cx, rcache *st, const ax_msg *m)
{
    ax_io_event ev;
    st->cx = cx;
    if (m->len != sizeof ev || !st->ac)
        return AX_OK; /* a notification of a connection that is gone */
    memcpy(&ev, m->data, sizeof ev);
    if (ev.id != st->watch)
        return AX_OK; /* of a watch replaced meanwhile */
    redisAsyncContext *ac = st->ac;
    if (ev.events & (AX_IO_READ | AX_IO_ERROR))
        redisAsyncHandleRead(ac);
    if (st->ac == ac && (ev.events & AX_IO_WRITE))
        redisAsyncHandleWrite(ac);
    return AX_OK;
}

static int rc_get(ax_ctx *cx, rcache *st, const ax_msg *m)
{
    st->cx = cx;
    st->gets++;
    return command(cx, st, 0, m, 0);
}

static int rc_set(ax_ctx *cx, rcache *st, const ax_msg *m)
{
    st->cx = cx;
    st->sets++;
    return command(cx, st, 1, m, 0);
}

static int rc_refresh(ax_ctx *cx, rcache *st, const ax_msg *m)
{
    st->cx = cx;
    st->refreshes++;
    return command(cx, st, 0, m, 1);
}

static int rc_cached(ax_ctx *cx, rcache *st, const ax_msg *m)
{
    (void)m;
    if (!st->have_cached)
        return ax_reply_error(cx, AX_ENOTFOUND, "nothing cached yet");
    return ax_reply(cx, st->cached, st->cached_len);
}

static int rc_stats(ax_ctx *cx, rcache *st, const ax_msg *m)
{
    (void)m;
    char buf[160];
    snprintf(buf, sizeof buf, "gets=%llu sets=%llu refreshes=%llu errors=%llu connected=%d",
             (unsigned long long)st->gets, (unsigned long long)st->sets, (unsigned long long)st->refreshes,
             (unsigned long long)st->errors, st->connected);
    return ax_reply_str(cx, buf);
}

AX_ACTOR_TYPE(rcache_type, "rediscache", rcache, rc_start, rc_stop, AX_MSG("get", rc_get), AX_MSG("set", rc_set),
              AX_MSG("cached", rc_cached), AX_MSG("stats", rc_stats), AX_MSG("refresh", rc_refresh),
              AX_MSG("redis_io", rc_io));

AX_PLUGIN("rediscache", &rcache_type);
