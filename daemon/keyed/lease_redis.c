/* The Redis lease store: hiredis' async API on our libev loop (adapters/libev.h), so no
 * call ever blocks the loop on the network. Each operation is one atomic Lua script
 * (EVALSHA; the scripts are loaded on every new connection before any operation, and
 * an EVALSHA that still meets NOSCRIPT, after a SCRIPT FLUSH, is sent again as EVAL).
 * A connection that fails, or leaves a request unanswered for connect_timeout_ms, is
 * dropped (its requests fail) and re-established with exponential backoff. */
#include <hiredis/adapters/libev.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <inttypes.h>
#include <stdarg.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <string.h>

#include "ax_mem.h"
#include "lease.h"
#include "log.h"

/* The scripts. Keys: KEYS[1] = <prefix>shard:<n> (hash {owner, epoch}, PEXPIRE ttl),
 * KEYS[2] = <prefix>epoch:<n> (the last epoch granted; never expires). Epochs travel as
 * decimal strings so Lua's doubles never round them. PROTOCOL.md explains them. */
static const char acquire_lua[] =
    "if redis.replicate_commands then pcall(redis.replicate_commands) end\n"
    "local cur = redis.call('HMGET', KEYS[1], 'owner', 'epoch')\n"
    "if cur[1] and cur[1] ~= ARGV[1] then\n"
    "  return {0, cur[1], cur[2] or '0', redis.call('PTTL', KEYS[1]), 0}\n"
    "end\n"
    "local min = tonumber(ARGV[3])\n"
    "local function quarantine(e, behind)\n" /* the epoch key at e, the shard held by nobody for a ttl */
    "  local s = string.format('%.0f', e)\n"
    "  redis.call('SET', KEYS[2], s)\n"
    "  redis.call('DEL', KEYS[1])\n"
    "  redis.call('HSET', KEYS[1], 'owner', '', 'epoch', s)\n"
    "  redis.call('PEXPIRE', KEYS[1], ARGV[2])\n"
    "  return {0, '', s, tonumber(ARGV[2]), behind}\n"
    "end\n"
    "local last = redis.call('GET', KEYS[2])\n"
    "if not last then\n" /* a fresh (or emptied) Redis: seed from its clock */
    "  local t = redis.call('TIME')\n"
    "  local seed = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"
    "  if seed <= min then seed = min + 1 end\n"
    "  return quarantine(seed, 0)\n"
    "end\n"
    "if tonumber(last) < min then return quarantine(min, 1) end\n" /* Redis went back in time */
    "local n = redis.call('INCR', KEYS[2])\n"
    "if n <= min then redis.call('SET', KEYS[2], string.format('%.0f', min + 1)) end\n"
    "local s = redis.call('GET', KEYS[2])\n"
    "redis.call('DEL', KEYS[1])\n"
    "redis.call('HSET', KEYS[1], 'owner', ARGV[1], 'epoch', s)\n"
    "redis.call('PEXPIRE', KEYS[1], ARGV[2])\n"
    "return {1, ARGV[1], s, tonumber(ARGV[2]), 0}\n";

static const char renew_lua[] =
    "local cur = redis.call('HMGET', KEYS[1], 'owner', 'epoch')\n"
    "if cur[1] == ARGV[1] and cur[2] == ARGV[2] then\n"
    "  redis.call('PEXPIRE', KEYS[1], ARGV[3])\n"
    "  return 1\n"
    "end\n"
    "return 0\n";

static const char release_lua[] =
    "local cur = redis.call('HMGET', KEYS[1], 'owner', 'epoch')\n"
    "if cur[1] == ARGV[1] and cur[2] == ARGV[2] then\n"
    "  redis.call('DEL', KEYS[1])\n"
    "  return 1\n"
    "end\n"
    "return 0\n";

static const char get_lua[] =
    "local cur = redis.call('HMGET', KEYS[1], 'owner', 'epoch')\n"
    "local last = redis.call('GET', KEYS[2]) or '0'\n"
    "if cur[1] then return {cur[1], cur[2] or last, redis.call('PTTL', KEYS[1])} end\n"
    "return {'', last, -1}\n";

/* Keyed state: KEYS[1] = <prefix>shard:<n>, KEYS[2] = <prefix>state:<n> (hash: field
 * "type\0key" -> the state bytes; never expires). ARGV[1] = the writer's epoch, ARGV[2]
 * = the field; the fence is the lease record: a live lease (an owner, not the
 * quarantine's "") at exactly that epoch. Replies: {0} refused (stale epoch), or
 * {1, HLEN, value} (load; value false when absent) / {1, HLEN} (write, delete). */
static const char sload_lua[] =
    "local cur = redis.call('HMGET', KEYS[1], 'owner', 'epoch')\n"
    "if not cur[1] or cur[1] == '' or cur[2] ~= ARGV[1] then return {0} end\n"
    "return {1, redis.call('HLEN', KEYS[2]), redis.call('HGET', KEYS[2], ARGV[2])}\n";

static const char swrite_lua[] = /* ARGV[3] = the value; without it: delete */
    "local cur = redis.call('HMGET', KEYS[1], 'owner', 'epoch')\n"
    "if not cur[1] or cur[1] == '' or cur[2] ~= ARGV[1] then return {0} end\n"
    "if ARGV[3] then redis.call('HSET', KEYS[2], ARGV[2], ARGV[3])\n"
    "else redis.call('HDEL', KEYS[2], ARGV[2]) end\n"
    "return {1, redis.call('HLEN', KEYS[2])}\n";

/* Group commit: the state writes made in one loop iteration go as one script call.
 * KEYS = [shard key, state key] per write; ARGV = [epoch, field, value] per write, then
 * one flag per write ('S' set, 'D' delete). Reply: per write, -1 (refused: stale
 * epoch) or the state hash's HLEN after the call. Each write is fenced on its own (the
 * lease record cannot change during the script, so it is read once per shard). */
static const char mwrite_lua[] = /* each shard's lease read once, each hash's HLEN once */
    "local n = #KEYS / 2\n"
    "local modes = ARGV[#ARGV]\n"
    "local held, out = {}, {}\n"
    "for i = 1, n do\n"
    "  local sk = KEYS[2 * i - 1]\n"
    "  local e = held[sk]\n"
    "  if e == nil then\n"
    "    local cur = redis.call('HMGET', sk, 'owner', 'epoch')\n"
    "    e = (cur[1] and cur[1] ~= '' and cur[2]) or false\n"
    "    held[sk] = e\n"
    "  end\n"
    "  if e ~= ARGV[3 * i - 2] then\n"
    "    out[i] = false\n"
    "  else\n"
    "    if string.sub(modes, i, i) == 'D' then redis.call('HDEL', KEYS[2 * i], ARGV[3 * i - 1])\n"
    "    else redis.call('HSET', KEYS[2 * i], ARGV[3 * i - 1], ARGV[3 * i]) end\n"
    "    out[i] = true\n"
    "  end\n"
    "end\n"
    "local len = {}\n"
    "for i = 1, n do\n"
    "  if out[i] then\n"
    "    local k = KEYS[2 * i]\n"
    "    if not len[k] then len[k] = redis.call('HLEN', k) end\n"
    "    out[i] = len[k]\n"
    "  else out[i] = -1 end\n"
    "end\n"
    "return out\n";

/* Membership: KEYS[1] = <prefix>member:<name> (the record, PEXPIRE ttl), KEYS[2] =
 * <prefix>members (a set of names). List: KEYS[1] = the set, ARGV[1] = "<prefix>member:";
 * names whose record expired are taken out of the set. */
static const char mput_lua[] = /* ARGV = name, record, ttl_ms */
    "redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])\n"
    "redis.call('SADD', KEYS[2], ARGV[1])\n"
    "return 1\n";
static const char mdel_lua[] = /* ARGV = name */
    "redis.call('DEL', KEYS[1])\n"
    "redis.call('SREM', KEYS[2], ARGV[1])\n"
    "return 1\n";
static const char mlist_lua[] =
    "if redis.replicate_commands then pcall(redis.replicate_commands) end\n"
    "local out = {}\n"
    "for _, name in ipairs(redis.call('SMEMBERS', KEYS[1])) do\n"
    "  local v = redis.call('GET', ARGV[1] .. name)\n"
    "  if v then out[#out + 1] = name; out[#out + 1] = v\n"
    "  else redis.call('SREM', KEYS[1], name) end\n"
    "end\n"
    "return out\n";

enum { OP_ACQUIRE, OP_RENEW, OP_RELEASE, OP_GET, OP_SLOAD, OP_SWRITE, OP_MWRITE, OP_MPUT, OP_MDEL, OP_MLIST,
       OP_COUNT };
static const char *const op_names[OP_COUNT] = {"acquire",      "renew",      "release",    "get",
                                               "state load",   "state write", "state writes", "member put",
                                               "member delete", "member list"};
static const char *const op_scripts[OP_COUNT] = {acquire_lua, renew_lua, release_lua, get_lua, sload_lua,
                                                 swrite_lua,  mwrite_lua, mput_lua,    mdel_lua, mlist_lua};
#define MWRITE_MAX 256 /* writes per group commit */

/* A state store of its own (state.store = redis, fence mode): no lease records here, so
 * each shard has a fence, KEYS[1] = <prefix>fence:<n>, the highest epoch that loaded or
 * wrote it. An operation at a lower epoch is refused; one at a higher epoch raises it.
 * The next owner's activation load raises the fence before it writes anything, so a
 * former owner's write that reaches the store after it is refused, and one that came
 * before it is what the new owner loads. */
static const char sload_fence_lua[] =
    "local f = tonumber(redis.call('GET', KEYS[1]) or '0')\n"
    "if tonumber(ARGV[1]) < f then return {0} end\n"
    "if tonumber(ARGV[1]) > f then redis.call('SET', KEYS[1], ARGV[1]) end\n"
    "return {1, redis.call('HLEN', KEYS[2]), redis.call('HGET', KEYS[2], ARGV[2])}\n";

static const char swrite_fence_lua[] =
    "local f = tonumber(redis.call('GET', KEYS[1]) or '0')\n"
    "if tonumber(ARGV[1]) < f then return {0} end\n"
    "if tonumber(ARGV[1]) > f then redis.call('SET', KEYS[1], ARGV[1]) end\n"
    "if ARGV[3] then redis.call('HSET', KEYS[2], ARGV[2], ARGV[3])\n"
    "else redis.call('HDEL', KEYS[2], ARGV[2]) end\n"
    "return {1, redis.call('HLEN', KEYS[2])}\n";

static const char mwrite_fence_lua[] =
    "local n = #KEYS / 2\n"
    "local modes = ARGV[#ARGV]\n"
    "local out = {}\n"
    "for i = 1, n do\n"
    "  local f = tonumber(redis.call('GET', KEYS[2 * i - 1]) or '0')\n"
    "  local e = tonumber(ARGV[3 * i - 2])\n"
    "  if e < f then\n"
    "    out[i] = -1\n"
    "  else\n"
    "    if e > f then redis.call('SET', KEYS[2 * i - 1], ARGV[3 * i - 2]) end\n"
    "    if string.sub(modes, i, i) == 'D' then redis.call('HDEL', KEYS[2 * i], ARGV[3 * i - 1])\n"
    "    else redis.call('HSET', KEYS[2 * i], ARGV[3 * i - 1], ARGV[3 * i]) end\n"
    "    out[i] = redis.call('HLEN', KEYS[2 * i])\n"
    "  end\n"
    "end\n"
    "return out\n";

static const char *const fence_scripts[OP_COUNT] = {acquire_lua, renew_lua,  release_lua,      get_lua,
                                                    sload_fence_lua, swrite_fence_lua, mwrite_fence_lua,
                                                    mput_lua,    mdel_lua,   mlist_lua};

#define BACKOFF_MIN 0.05
#define BACKOFF_MAX 2.0

typedef struct rreq {
    struct rreq *next, *prev; /* in flight on a connection, oldest first; or the fail queue */
    struct redis_store *st;
    uint8_t op, evaled;
    uint32_t shard, ttl_ms;
    uint64_t epoch; /* renew/release: the epoch; acquire: min_epoch */
    uint64_t gen;   /* connection it was sent on */
    int status;     /* fail queue: the error to deliver */
    double sent;
    char *node;
    axd_lease_cb cb;
    void *ud;
    axd_state_cb scb; /* state operations (then cb is NULL) */
    char *name;       /* state: the field, nlen bytes */
    size_t nlen;
    void *data;       /* state write: the value (NULL with del) */
    size_t len;
    int del;
    axd_member_cb mcb;    /* membership operations (name: the member, data: the record) */
    struct rreq *bnext;   /* the writes of a group commit (OP_MWRITE: its members) */
    struct rreq *members;
    uint32_t n_members;
} rreq;

typedef struct redis_store {
    axd_lease_store base;
    struct ev_loop *loop;
    char *host, *password, *prefix;
    uint16_t port;
    uint32_t db;
    double timeout;
    char sha[OP_COUNT][41];
    const char *const *scripts; /* op_scripts, or fence_scripts for a state store of its own */
    const char *fence_key;      /* KEYS[1] of state operations: "shard" or "fence" */

    redisAsyncContext *ac;
    uint64_t gen;          /* of the current (or last) connection */
    uint64_t drop_gen;     /* the connection last dropped, and why (NULL replies) */
    int drop_status;
    int ready;             /* AUTH/SELECT/PING answered on the current connection */
    int ever_ready, freeing;
    double conn_started, backoff;
    double last_tick;      /* the watchdog's last run (loop time) */
    rreq *head, *tail;     /* in flight */
    rreq *bhead, *btail;   /* state writes of this loop iteration, not sent yet (group commit) */
    uint32_t bn;
    ev_prepare bprep;      /* sends them before the loop waits */
    rreq *fail_head, *fail_tail;
    ev_timer watchdog, retry, failw;
    char last_error[256];
    uint64_t ops, errors, reconnects;
} redis_store;

static void rs_connect(redis_store *st);

static void set_error(redis_store *st, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void set_error(redis_store *st, const char *fmt, ...)
{
    char buf[sizeof st->last_error];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (strcmp(buf, st->last_error) != 0) /* logged once per distinct error */
        axd_log(AX_LOG_WARN, "lease", "redis %s:%u: %s", st->host, st->port, buf);
    memcpy(st->last_error, buf, sizeof buf);
}

static void list_push(rreq **head, rreq **tail, rreq *q)
{
    q->next = NULL;
    q->prev = *tail;
    if (*tail)
        (*tail)->next = q;
    else
        *head = q;
    *tail = q;
}

static void list_del(rreq **head, rreq **tail, rreq *q)
{
    if (q->prev)
        q->prev->next = q->next;
    else
        *head = q->next;
    if (q->next)
        q->next->prev = q->prev;
    else
        *tail = q->prev;
    q->next = q->prev = NULL;
}

static void rreq_free(rreq *q)
{
    ax_free(q->node);
    ax_free(q->name);
    ax_free(q->data);
    ax_free(q);
}

static void deliver_state(redis_store *st, rreq *q, axd_state_result *r)
{
    st->ops++;
    if (r->status != AX_OK && r->status != AX_ESTALE)
        st->errors++;
    q->scb(q->ud, q->shard, r);
    rreq_free(q);
}

static void deliver(redis_store *st, rreq *q, axd_lease_result *r)
{
    if (q->mcb) {
        st->ops++;
        if (r->status != AX_OK)
            st->errors++;
        q->mcb(q->ud, r->status, NULL, 0);
        rreq_free(q);
        return;
    }
    if (q->scb) {
        axd_state_result sr = {.status = r->status, .records = -1};
        deliver_state(st, q, &sr);
        return;
    }
    if (!r->owner) {
        r->owner = "";
        r->owner_len = 0;
    }
    st->ops++;
    if (r->status != AX_OK)
        st->errors++;
    q->cb(q->ud, q->shard, r);
    rreq_free(q);
}

/* ---- failing requests that never reached a connection (delivered from the loop) ---- */

static void fail_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    redis_store *st = w->data;
    rreq *last = st->fail_tail; /* not the ones queued by these callbacks */
    while (st->fail_head) {
        rreq *q = st->fail_head;
        list_del(&st->fail_head, &st->fail_tail, q);
        axd_lease_result r = {.status = q->status, .ttl_ms = -1};
        deliver(st, q, &r);
        if (q == last)
            break;
    }
    if (st->fail_head)
        ev_timer_start(loop, &st->failw);
}

static void fail_later(redis_store *st, rreq *q, int status)
{
    q->status = status;
    list_push(&st->fail_head, &st->fail_tail, q);
    if (!ev_is_active(&st->failw)) {
        ev_timer_set(&st->failw, 0, 0);
        ev_timer_start(st->loop, &st->failw);
    }
}

/* ---- connection ---- */

/* Drop the current connection: every request on it fails (status), then reconnect
 * after the backoff. Safe inside a hiredis callback (hiredis defers the free). */
static void drop_conn(redis_store *st, int status)
{
    redisAsyncContext *ac = st->ac;
    if (!ac)
        return;
    st->ac = NULL;
    st->ready = 0;
    st->drop_gen = st->gen;
    st->drop_status = status;
    ev_timer_stop(st->loop, &st->watchdog);
    redisAsyncFree(ac);
    if (!st->freeing) {
        ev_timer_set(&st->retry, st->backoff, 0);
        ev_timer_start(st->loop, &st->retry);
        st->backoff = st->backoff * 2 > BACKOFF_MAX ? BACKOFF_MAX : st->backoff * 2;
    }
}

/* hiredis dropped the connection itself (error or EOF): same as drop_conn, minus the free. */
static void conn_gone(redis_store *st, const redisAsyncContext *ac, const char *why)
{
    if (st->ac != ac)
        return; /* we dropped it ourselves */
    set_error(st, "%s", why && *why ? why : "connection lost");
    st->ac = NULL;
    st->ready = 0;
    st->drop_gen = st->gen;
    st->drop_status = AX_ECONN;
    ev_timer_stop(st->loop, &st->watchdog);
    if (!st->freeing) {
        ev_timer_set(&st->retry, st->backoff, 0);
        ev_timer_start(st->loop, &st->retry);
        st->backoff = st->backoff * 2 > BACKOFF_MAX ? BACKOFF_MAX : st->backoff * 2;
    }
}

static void on_connect(const redisAsyncContext *ac, int status)
{
    redis_store *st = ac->data;
    if (status != REDIS_OK)
        conn_gone(st, ac, ac->errstr); /* hiredis frees ac after this */
}

static void on_disconnect(const redisAsyncContext *ac, int status)
{
    redis_store *st = ac->data;
    conn_gone(st, ac, status == REDIS_OK ? "disconnected" : ac->errstr);
}

static void watchdog_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    redis_store *st = w->data;
    double now = ev_now(loop), last = st->last_tick;
    st->last_tick = now;
    if (!st->ac)
        return;
    if (last > 0 && now - last > 2 * w->repeat + 0.05) {
        /* This process stalled (SIGSTOP, a VM pause, a handler blocking the loop): the
         * replies are likely waiting in the socket. Time the requests from now instead of
         * blaming Redis for our own pause (leases are timed from their sends, not here). */
        for (rreq *q = st->head; q; q = q->next)
            q->sent = now;
        if (!st->ready)
            st->conn_started = now;
        return;
    }
    if (!st->ready && now - st->conn_started >= st->timeout) {
        set_error(st, "no connection within %.0f ms", st->timeout * 1000);
        drop_conn(st, AX_ETIMEDOUT);
    } else if (st->head && now - st->head->sent >= st->timeout) {
        set_error(st, "no reply within %.0f ms", st->timeout * 1000);
        drop_conn(st, AX_ETIMEDOUT);
    }
}

static int reply_is_error(const redisReply *r, const char *prefix)
{
    return r && r->type == REDIS_REPLY_ERROR && r->str && !strncmp(r->str, prefix, strlen(prefix));
}

/* AUTH, SELECT and PING replies: the connection is usable after the PING. */
static void handshake_cb(redisAsyncContext *ac, void *reply, void *privdata)
{
    redis_store *st = ac->data;
    redisReply *r = reply;
    const char *what = privdata;
    if (!r || st->ac != ac)
        return; /* connection going away: its callbacks tell */
    if (r->type == REDIS_REPLY_ERROR) {
        int auth = !strcmp(what, "AUTH") || reply_is_error(r, "NOAUTH") || reply_is_error(r, "WRONGPASS");
        set_error(st, "%s failed: %.200s", what, r->str ? r->str : "error");
        drop_conn(st, auth ? AX_EAUTH : AX_ECONN);
        return;
    }
    if (!strcmp(what, "PING")) {
        st->ready = 1;
        st->backoff = BACKOFF_MIN;
        if (st->ever_ready)
            axd_log(AX_LOG_INFO, "lease", "redis %s:%u: connected again", st->host, st->port);
        st->ever_ready = 1;
        st->last_error[0] = 0;
    }
}

/* hiredis's reader allocates a reply's element array as soon as it reads the count
 * ("*N"), before the elements arrive: a broken or hostile server could make it allocate
 * gigabytes with a dozen bytes. No script of ours answers more than a few hundred
 * thousand elements (a member list), so larger counts are refused: the reader fails and
 * the connection is dropped like any protocol error. */
#define READER_MAX_ELEMENTS (1 << 18)
#if HIREDIS_MAJOR >= 1
typedef size_t reader_count;
#else
typedef int reader_count;
#endif
static redisReplyObjectFunctions bounded_fns;
static void *(*orig_create_array)(const redisReadTask *, reader_count);

static void *bounded_create_array(const redisReadTask *t, reader_count n)
{
    if (n < 0 || (size_t)n > READER_MAX_ELEMENTS)
        return NULL; /* the reader reports "out of memory" and fails */
    return orig_create_array(t, n);
}

void axd_lease_redis_bound_reader(redisReader *r)
{
    if (!r || !r->fn)
        return;
    if (!orig_create_array) { /* once: the library's own functions, wrapped */
        bounded_fns = *r->fn;
        orig_create_array = r->fn->createArray;
        bounded_fns.createArray = bounded_create_array;
    }
    if (r->fn->createArray == orig_create_array)
        r->fn = &bounded_fns;
}

static void rs_connect(redis_store *st)
{
    redisAsyncContext *ac = redisAsyncConnect(st->host, st->port);
    st->gen++;
    st->conn_started = ev_now(st->loop);
    if (!ac) {
        set_error(st, "cannot allocate a connection");
        goto retry;
    }
    if (ac->err) {
        set_error(st, "connect: %s", ac->errstr);
        redisAsyncFree(ac);
        goto retry;
    }
    ac->data = st;
    axd_lease_redis_bound_reader(ac->c.reader);
    if (redisLibevAttach(st->loop, ac) != REDIS_OK) {
        set_error(st, "cannot attach to the event loop");
        redisAsyncFree(ac);
        goto retry;
    }
    redisAsyncSetConnectCallback(ac, on_connect);
    redisAsyncSetDisconnectCallback(ac, on_disconnect);
    st->ac = ac;
    st->ready = 0;
    /* Pipelined before any operation, so operations run authenticated in the right db. */
    if (st->password && *st->password) {
        const char *argv[] = {"AUTH", st->password};
        size_t lens[] = {4, strlen(st->password)};
        redisAsyncCommandArgv(ac, handshake_cb, (void *)"AUTH", 2, argv, lens);
    }
    if (st->db) {
        char db[16];
        int n = snprintf(db, sizeof db, "%u", st->db);
        const char *argv[] = {"SELECT", db};
        size_t lens[] = {6, (size_t)n};
        redisAsyncCommandArgv(ac, handshake_cb, (void *)"SELECT", 2, argv, lens);
    }
    /* Every script loaded before any operation: an EVALSHA then never meets NOSCRIPT on
     * this connection, whose fallback (EVAL) would let the commands pipelined behind it
     * run first (a load overtaking a write). */
    for (int i = 0; i < OP_COUNT; i++) {
        const char *argv[] = {"SCRIPT", "LOAD", st->scripts[i]};
        size_t lens[] = {6, 4, strlen(st->scripts[i])};
        redisAsyncCommandArgv(ac, handshake_cb, (void *)"SCRIPT LOAD", 3, argv, lens);
    }
    redisAsyncCommand(ac, handshake_cb, (void *)"PING", "PING");
    double every = st->timeout / 4;
    ev_timer_set(&st->watchdog, every > 0.005 ? every : 0.005, every > 0.005 ? every : 0.005);
    ev_timer_start(st->loop, &st->watchdog);
    return;
retry:
    ev_timer_set(&st->retry, st->backoff, 0);
    ev_timer_start(st->loop, &st->retry);
    st->backoff = st->backoff * 2 > BACKOFF_MAX ? BACKOFF_MAX : st->backoff * 2;
}

static void retry_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    redis_store *st = w->data;
    if (st->ac || st->freeing)
        return;
    st->reconnects++;
    rs_connect(st);
}

/* ---- replies ---- */

/* Strict decimal u64 (an epoch) from a bulk/status string. */
static int parse_epoch(const redisReply *r, uint64_t *out)
{
    if (!r || (r->type != REDIS_REPLY_STRING && r->type != REDIS_REPLY_STATUS) || !r->str || r->len < 1 ||
        r->len > 16)
        return -1;
    uint64_t v = 0;
    for (size_t i = 0; i < r->len; i++) {
        if (r->str[i] < '0' || r->str[i] > '9')
            return -1;
        v = v * 10 + (uint64_t)(r->str[i] - '0');
    }
    if (v > AXD_LEASE_EPOCH_MAX)
        return -1;
    *out = v;
    return 0;
}

static int parse_owner(const redisReply *r, axd_lease_result *res)
{
    if (!r || r->type != REDIS_REPLY_STRING || r->len > AXD_LEASE_NODE_MAX || (r->len && !r->str) ||
        (r->len && memchr(r->str, 0, r->len)))
        return -1;
    res->owner = r->len ? r->str : "";
    res->owner_len = r->len;
    return 0;
}

/* Fill res from a script's reply; AX_EPROTO (why set) if its shape is wrong. */
static int parse_reply(int op, const redisReply *r, axd_lease_result *res, const char **why)
{
    switch (op) {
    case OP_ACQUIRE:
        if (r->type != REDIS_REPLY_ARRAY || r->elements != 5 || r->element[0]->type != REDIS_REPLY_INTEGER ||
            (r->element[0]->integer != 0 && r->element[0]->integer != 1) ||
            r->element[3]->type != REDIS_REPLY_INTEGER || r->element[4]->type != REDIS_REPLY_INTEGER ||
            (r->element[4]->integer != 0 && r->element[4]->integer != 1) ||
            (r->element[4]->integer && r->element[0]->integer)) {
            *why = "acquire: expected [0|1, owner, epoch, ttl, behind 0|1]";
            return AX_EPROTO;
        }
        if (parse_owner(r->element[1], res) || parse_epoch(r->element[2], &res->epoch)) {
            *why = "acquire: bad owner or epoch";
            return AX_EPROTO;
        }
        res->granted = (int)r->element[0]->integer;
        res->ttl_ms = r->element[3]->integer < 0 ? -1 : r->element[3]->integer;
        res->behind = (int)r->element[4]->integer;
        return 0;
    case OP_RENEW:
    case OP_RELEASE:
        if (r->type != REDIS_REPLY_INTEGER || (r->integer != 0 && r->integer != 1)) {
            *why = "renew/release: expected 0 or 1";
            return AX_EPROTO;
        }
        res->granted = (int)r->integer;
        return 0;
    case OP_GET:
        if (r->type != REDIS_REPLY_ARRAY || r->elements != 3 || r->element[2]->type != REDIS_REPLY_INTEGER ||
            parse_owner(r->element[0], res) || parse_epoch(r->element[1], &res->epoch)) {
            *why = "get: expected [owner, epoch, ttl]";
            return AX_EPROTO;
        }
        res->granted = res->owner_len > 0 && r->element[2]->integer != -2;
        res->ttl_ms = r->element[2]->integer < 0 ? -1 : r->element[2]->integer;
        return 0;
    }
    *why = "unknown operation";
    return AX_EPROTO;
}

static int send_op(redis_store *st, rreq *q, int eval);
static int send_mwrite(redis_store *st, rreq *q, int eval);
static int parse_mwrite(const redisReply *r, uint32_t n);

/* A membership script's reply: 1 (put, delete), or name, record, name, record... (list). */
static int parse_members(int op, const redisReply *r, axd_member **out, size_t *n)
{
    *out = NULL;
    *n = 0;
    if (op != OP_MLIST)
        return r->type == REDIS_REPLY_INTEGER && r->integer == 1 ? 0 : -1;
    if (r->type != REDIS_REPLY_ARRAY || r->elements % 2)
        return -1;
    for (size_t i = 0; i < r->elements; i++) {
        const redisReply *e = r->element[i];
        size_t max = i % 2 ? AXD_MEMBER_RECORD_MAX : AXD_LEASE_NODE_MAX;
        if (e->type != REDIS_REPLY_STRING || e->len > max || (i % 2 == 0 && (!e->len || memchr(e->str, 0, e->len))))
            return -1;
    }
    if (!r->elements)
        return 0;
    axd_member *v = ax_calloc(r->elements / 2, sizeof *v);
    for (size_t i = 0; i < r->elements / 2; i++) {
        v[i].name = r->element[2 * i]->str;
        v[i].name_len = r->element[2 * i]->len;
        v[i].record = r->element[2 * i + 1]->str;
        v[i].record_len = r->element[2 * i + 1]->len;
    }
    *out = v;
    *n = r->elements / 2;
    return 0;
}

static void member_done(redis_store *st, rreq *q, const redisReply *r)
{
    axd_member *v;
    size_t n;
    int status = AX_OK;
    if (parse_members(q->op, r, &v, &n) != 0) {
        status = AX_EPROTO;
        set_error(st, "unexpected reply to %s (type %d)", op_names[q->op], r->type);
        v = NULL;
        n = 0;
    }
    st->ops++;
    if (status != AX_OK)
        st->errors++;
    q->mcb(q->ud, status, v, n);
    ax_free(v);
    rreq_free(q);
}

static int error_status(const redisReply *r)
{
    return reply_is_error(r, "NOAUTH") || reply_is_error(r, "WRONGPASS") ? AX_EAUTH
           : reply_is_error(r, "LOADING")                                 ? AX_ECONN
                                                                          : AX_EIO;
}

/* A group commit answered (r NULL: the connection went): each write gets its own result. */
static void mwrite_done(redis_store *st, rreq *q, const redisReply *r)
{
    int status = AX_OK;
    if (!r)
        status = st->freeing ? AX_ECANCELED : q->gen == st->drop_gen ? st->drop_status : AX_ECONN;
    else if (r->type == REDIS_REPLY_ERROR) {
        status = error_status(r);
        set_error(st, "%s: %.200s", op_names[q->op], r->str ? r->str : "error");
    } else if (parse_mwrite(r, q->n_members) != 0) {
        status = AX_EPROTO;
        set_error(st, "unexpected reply to %s (type %d)", op_names[q->op], r->type);
    }
    uint32_t i = 0;
    for (rreq *m = q->members, *next; m; m = next, i++) {
        next = m->bnext;
        axd_state_result sr = {.status = status, .records = -1};
        if (status == AX_OK) {
            long long v = r->element[i]->integer;
            if (v < 0)
                sr.status = AX_ESTALE;
            else
                sr.records = v;
        }
        deliver_state(st, m, &sr);
    }
    rreq_free(q);
}

/* A state script's reply: {0} (fenced), {1, n} (write) or {1, n, value|nil} (load). */
static int parse_state(int op, const redisReply *r, axd_state_result *sr)
{
    if (r->type != REDIS_REPLY_ARRAY || r->elements < 1 || r->element[0]->type != REDIS_REPLY_INTEGER)
        return -1;
    if (r->element[0]->integer == 0 && r->elements == 1) {
        sr->status = AX_ESTALE;
        return 0;
    }
    if (r->element[0]->integer != 1 || r->elements < 2 || r->element[1]->type != REDIS_REPLY_INTEGER)
        return -1;
    sr->records = r->element[1]->integer;
    if (op == OP_SWRITE)
        return r->elements == 2 ? 0 : -1;
    if (r->elements == 2) /* Lua false (absent) ends the table */
        return 0;
    const redisReply *v = r->element[2];
    if (r->elements != 3)
        return -1;
    if (v->type == REDIS_REPLY_NIL)
        return 0;
    if (v->type != REDIS_REPLY_STRING || v->len > AXD_STATE_VALUE_MAX)
        return -1;
    sr->found = 1;
    sr->data = v->str;
    sr->len = v->len;
    return 0;
}

static void op_cb(redisAsyncContext *ac, void *reply, void *privdata)
{
    rreq *q = privdata;
    redis_store *st = q->st;
    redisReply *r = reply;
    axd_lease_result res = {.status = AX_OK, .ttl_ms = -1};
    const char *why = NULL;

    if (r && !q->evaled && reply_is_error(r, "NOSCRIPT") && st->ac == ac && !st->freeing) {
        q->evaled = 1; /* Redis restarted (or SCRIPT FLUSH): send the body once */
        if ((q->op == OP_MWRITE ? send_mwrite(st, q, 1) : send_op(st, q, 1)) == 0)
            return;
    }
    list_del(&st->head, &st->tail, q);
    if (q->op == OP_MWRITE) {
        mwrite_done(st, q, r);
        return;
    }
    if (q->mcb && r && r->type != REDIS_REPLY_ERROR) {
        member_done(st, q, r);
        return;
    }
    if (q->scb && r && r->type != REDIS_REPLY_ERROR) {
        axd_state_result sr = {.status = AX_OK, .records = -1};
        if (parse_state(q->op, r, &sr) != 0) {
            set_error(st, "unexpected reply to %s (type %d)", op_names[q->op], r->type);
            sr = (axd_state_result){.status = AX_EPROTO, .records = -1};
        }
        deliver_state(st, q, &sr);
        return;
    }
    if (!r) {
        res.status = st->freeing ? AX_ECANCELED : q->gen == st->drop_gen ? st->drop_status : AX_ECONN;
    } else if (r->type == REDIS_REPLY_ERROR) {
        const char *msg = r->str ? r->str : "error";
        res.status = error_status(r);
        set_error(st, "%s: %.200s", op_names[q->op], msg);
    } else if ((res.status = parse_reply(q->op, r, &res, &why)) != 0) {
        set_error(st, "unexpected reply to %s (type %d): %s", op_names[q->op], r->type, why);
        res.owner = NULL;
        res.granted = 0;
    }
    deliver(st, q, &res);
}

/* A group commit's reply: n integers, each -1 (refused) or >= 0 (records after it). */
static int parse_mwrite(const redisReply *r, uint32_t n)
{
    if (r->type != REDIS_REPLY_ARRAY || r->elements != n)
        return -1;
    for (size_t i = 0; i < r->elements; i++)
        if (r->element[i]->type != REDIS_REPLY_INTEGER || r->element[i]->integer < -1)
            return -1;
    return 0;
}

int axd_lease_redis_decode(int op, const redisReply *r, axd_lease_result *res, axd_state_result *sr,
                           const char **why)
{
    *why = NULL;
    if (op == OP_MWRITE) {
        *sr = (axd_state_result){.status = AX_OK, .records = -1};
        if (r->type != REDIS_REPLY_ARRAY || parse_mwrite(r, (uint32_t)r->elements) != 0) {
            *why = "unexpected group commit reply";
            return AX_EPROTO;
        }
        return 0;
    }
    if (op == OP_SLOAD || op == OP_SWRITE) {
        *sr = (axd_state_result){.status = AX_OK, .records = -1};
        if (parse_state(op, r, sr) != 0) {
            *why = "unexpected state script reply";
            return AX_EPROTO;
        }
        return 0;
    }
    if (op == OP_MPUT || op == OP_MDEL || op == OP_MLIST) {
        axd_member *v;
        size_t n;
        *sr = (axd_state_result){.status = AX_OK, .records = -1};
        if (parse_members(op, r, &v, &n) != 0) {
            *why = "unexpected membership reply";
            return AX_EPROTO;
        }
        for (size_t i = 0; i < n; i++) /* every record within the reply */
            if (!v[i].name_len || v[i].name_len > AXD_LEASE_NODE_MAX || v[i].record_len > AXD_MEMBER_RECORD_MAX) {
                ax_free(v);
                *why = "member out of range";
                return AX_EPROTO;
            }
        ax_free(v);
        return 0;
    }
    if (op < 0 || op >= OP_MWRITE) {
        *why = "unknown operation";
        return AX_EINVAL;
    }
    *res = (axd_lease_result){.status = AX_OK, .ttl_ms = -1};
    return parse_reply(op, r, res, why);
}

static int send_op(redis_store *st, rreq *q, int eval)
{
    char shard_key[512], epoch_key[512], ttl[24], epoch[24];
    int kl = snprintf(shard_key, sizeof shard_key, "%s%s:%" PRIu32, st->prefix, q->scb ? st->fence_key : "shard",
                      q->shard);
    int el = snprintf(epoch_key, sizeof epoch_key, "%s%s:%" PRIu32, st->prefix, q->scb ? "state" : "epoch", q->shard);
    int tl = snprintf(ttl, sizeof ttl, "%" PRIu32, q->ttl_ms);
    int pl = snprintf(epoch, sizeof epoch, "%" PRIu64, q->epoch);
    const char *argv[8] = {eval ? "EVAL" : "EVALSHA", eval ? st->scripts[q->op] : st->sha[q->op], "2", shard_key,
                           epoch_key};
    size_t lens[8] = {eval ? 4u : 7u, strlen(argv[1]), 1, (size_t)kl, (size_t)el};
    int argc = 5;
    const char *node = q->node ? q->node : "";
    switch (q->op) {
    case OP_ACQUIRE: /* node, ttl, min_epoch */
        argv[5] = node, lens[5] = strlen(node);
        argv[6] = ttl, lens[6] = (size_t)tl;
        argv[7] = epoch, lens[7] = (size_t)pl;
        argc = 8;
        break;
    case OP_RENEW: /* node, epoch, ttl */
        argv[5] = node, lens[5] = strlen(node);
        argv[6] = epoch, lens[6] = (size_t)pl;
        argv[7] = ttl, lens[7] = (size_t)tl;
        argc = 8;
        break;
    case OP_RELEASE: /* node, epoch */
        argv[5] = node, lens[5] = strlen(node);
        argv[6] = epoch, lens[6] = (size_t)pl;
        argc = 7;
        break;
    case OP_MPUT:
    case OP_MDEL:
    case OP_MLIST: /* keys: the record and the set; the list's: the set, ARGV the record prefix */
        kl = snprintf(shard_key, sizeof shard_key, "%s%s", st->prefix, q->op == OP_MLIST ? "members" : "member:");
        if (q->op != OP_MLIST)
            kl += snprintf(shard_key + kl, sizeof shard_key - (size_t)kl, "%.*s", (int)q->nlen, q->name);
        el = snprintf(epoch_key, sizeof epoch_key, "%s%s", st->prefix, q->op == OP_MLIST ? "member:" : "members");
        lens[3] = (size_t)kl;
        lens[4] = (size_t)el;
        if (q->op == OP_MLIST) {
            argv[2] = "1";
            argv[4] = epoch_key; /* ARGV[1] */
            argc = 5;
        } else {
            argv[5] = q->name, lens[5] = q->nlen;
            argc = 6;
            if (q->op == OP_MPUT) {
                argv[6] = q->data ? q->data : "", lens[6] = q->len;
                argv[7] = ttl, lens[7] = (size_t)tl;
                argc = 8;
            }
        }
        break;
    case OP_SLOAD: /* epoch, field */
    case OP_SWRITE: /* epoch, field[, value] */
        argv[5] = epoch, lens[5] = (size_t)pl;
        argv[6] = q->name, lens[6] = q->nlen;
        argc = 7;
        if (q->op == OP_SWRITE && !q->del) {
            argv[7] = q->data ? q->data : "", lens[7] = q->len;
            argc = 8;
        }
        break;
    default:
        break;
    }
    return redisAsyncCommandArgv(st->ac, op_cb, q, argc, argv, lens) == REDIS_OK ? 0 : -1;
}

static int submit_q(redis_store *st, rreq *q);

static int submit(redis_store *st, uint8_t op, uint32_t shard, const char *node, uint32_t ttl_ms, uint64_t epoch,
                  axd_lease_cb cb, void *ud)
{
    if (st->freeing)
        return AX_ECANCELED;
    if (!cb || shard >= st->base.n_shards || (op != OP_GET && axd_lease_check_node(node) != 0) ||
        ((op == OP_ACQUIRE || op == OP_RENEW) && !ttl_ms) || epoch >= AXD_LEASE_EPOCH_MAX)
        return AX_EINVAL;
    rreq *q = ax_calloc(1, sizeof *q);
    q->st = st;
    q->op = op;
    q->shard = shard;
    q->ttl_ms = ttl_ms;
    q->epoch = epoch;
    q->node = node ? ax_strdup(node) : NULL;
    q->cb = cb;
    q->ud = ud;
    return submit_q(st, q);
}

/* Send a group commit of the writes q->members (n_members of them). */
static int send_mwrite(redis_store *st, rreq *q, int eval)
{
    uint32_t n = q->n_members;
    size_t argc = 4 + 2 * (size_t)n + 3 * (size_t)n;
    const char **argv = ax_malloc(argc * sizeof *argv);
    size_t *lens = ax_malloc(argc * sizeof *lens);
    char *keys = ax_malloc((size_t)n * 2 * 240 + (size_t)n * 24 + 16 + n + 1);
    char *kp = keys, *modes;
    char numkeys[16];
    snprintf(numkeys, sizeof numkeys, "%u", 2 * n);
    argv[0] = eval ? "EVAL" : "EVALSHA";
    argv[1] = eval ? st->scripts[OP_MWRITE] : st->sha[OP_MWRITE];
    argv[2] = numkeys;
    lens[0] = strlen(argv[0]);
    lens[1] = strlen(argv[1]);
    lens[2] = strlen(numkeys);
    size_t k = 3, a = 3 + 2 * (size_t)n;
    uint32_t i = 0;
    for (rreq *m = q->members; m; m = m->bnext, i++) {
        int l1 = snprintf(kp, 240, "%s%s:%" PRIu32, st->prefix, st->fence_key, m->shard);
        argv[k] = kp, lens[k++] = (size_t)l1, kp += l1 + 1;
        int l2 = snprintf(kp, 240, "%sstate:%" PRIu32, st->prefix, m->shard);
        argv[k] = kp, lens[k++] = (size_t)l2, kp += l2 + 1;
        int l3 = snprintf(kp, 24, "%" PRIu64, m->epoch);
        argv[a] = kp, lens[a++] = (size_t)l3, kp += l3 + 1;
        argv[a] = m->name, lens[a++] = m->nlen;
        argv[a] = m->data ? m->data : "", lens[a++] = m->del ? 0 : m->len;
    }
    modes = kp;
    i = 0;
    for (rreq *m = q->members; m; m = m->bnext)
        modes[i++] = m->del ? 'D' : 'S';
    argv[a] = modes, lens[a++] = n;
    int rc = redisAsyncCommandArgv(st->ac, op_cb, q, (int)a, argv, lens) == REDIS_OK ? 0 : -1;
    ax_free(keys);
    ax_free(argv);
    ax_free(lens);
    return rc;
}

/* Send the writes waiting for the group commit (before any other operation: the order
 * of operations on the connection is the order they were made). */
static void flush_batch(redis_store *st)
{
    if (!st->bn)
        return;
    rreq *list = st->bhead;
    uint32_t n = st->bn;
    st->bhead = st->btail = NULL;
    st->bn = 0;
    if (n == 1) {
        list->bnext = NULL;
        if (!st->ac || send_op(st, list, 0) != 0)
            fail_later(st, list, AX_ECONN);
        else
            list_push(&st->head, &st->tail, list);
        return;
    }
    rreq *q = ax_calloc(1, sizeof *q);
    q->st = st;
    q->op = OP_MWRITE;
    q->members = list;
    q->n_members = n;
    q->sent = ev_now(st->loop);
    q->gen = st->gen;
    if (!st->ac || send_mwrite(st, q, 0) != 0) {
        for (rreq *m = list, *next; m; m = next) {
            next = m->bnext;
            m->bnext = NULL;
            fail_later(st, m, AX_ECONN);
        }
        ax_free(q);
        return;
    }
    list_push(&st->head, &st->tail, q);
}

static void bprep_cb(struct ev_loop *loop, ev_prepare *w, int revents)
{
    (void)revents;
    redis_store *st = w->data;
    ev_prepare_stop(loop, w);
    flush_batch(st);
}

static int submit_q(redis_store *st, rreq *q)
{
    if (q->op == OP_SWRITE && st->ac) { /* a group commit at the end of this loop iteration */
        q->st = st;
        q->sent = ev_now(st->loop);
        q->gen = st->gen;
        q->bnext = NULL;
        if (st->btail)
            st->btail->bnext = q;
        else
            st->bhead = q;
        st->btail = q;
        if (++st->bn >= MWRITE_MAX)
            flush_batch(st);
        else if (!ev_is_active(&st->bprep))
            ev_prepare_start(st->loop, &st->bprep);
        return 0;
    }
    flush_batch(st);
    q->st = st;
    q->sent = ev_now(st->loop);
    if (!st->ac) {
        fail_later(st, q, AX_ECONN);
        return 0;
    }
    q->gen = st->gen;
    if (send_op(st, q, 0) != 0) {
        fail_later(st, q, AX_ECONN);
        return 0;
    }
    list_push(&st->head, &st->tail, q);
    return 0;
}

static int state_submit(redis_store *st, uint8_t op, uint32_t shard, uint64_t epoch, const char *name, size_t nlen,
                        const void *data, size_t n, int del, axd_state_cb cb, void *ud)
{
    if (st->freeing)
        return AX_ECANCELED;
    if (!cb || axd_state_check(&st->base, shard, epoch, nlen, del ? 0 : n) || (n && !data && !del))
        return AX_EINVAL;
    rreq *q = ax_calloc(1, sizeof *q);
    q->op = op;
    q->shard = shard;
    q->epoch = epoch;
    q->scb = cb;
    q->ud = ud;
    q->name = ax_malloc(nlen);
    memcpy(q->name, name, nlen);
    q->nlen = nlen;
    q->del = del;
    if (op == OP_SWRITE && !del && n) {
        q->data = ax_malloc(n);
        memcpy(q->data, data, n);
        q->len = n;
    }
    return submit_q(st, q);
}

static int rs_state_load(axd_lease_store *s, uint32_t shard, uint64_t epoch, const char *name, size_t nlen,
                         axd_state_cb cb, void *ud)
{
    return state_submit((redis_store *)s, OP_SLOAD, shard, epoch, name, nlen, NULL, 0, 0, cb, ud);
}

static int rs_state_write(axd_lease_store *s, uint32_t shard, uint64_t epoch, const char *name, size_t nlen,
                          const void *data, size_t n, int del, axd_state_cb cb, void *ud)
{
    return state_submit((redis_store *)s, OP_SWRITE, shard, epoch, name, nlen, data, n, del, cb, ud);
}

static int member_submit(redis_store *st, uint8_t op, const char *name, const char *record, size_t len,
                         uint32_t ttl_ms, axd_member_cb cb, void *ud)
{
    if (st->freeing)
        return AX_ECANCELED;
    if (!cb || (op != OP_MLIST && axd_lease_check_node(name) != 0) || len > AXD_MEMBER_RECORD_MAX ||
        (op == OP_MPUT && !ttl_ms))
        return AX_EINVAL;
    rreq *q = ax_calloc(1, sizeof *q);
    q->op = op;
    q->mcb = cb;
    q->ud = ud;
    q->ttl_ms = ttl_ms;
    if (name) {
        q->nlen = strlen(name);
        q->name = ax_strndup(name, q->nlen);
    }
    if (len) {
        q->data = ax_malloc(len);
        memcpy(q->data, record, len);
        q->len = len;
    }
    return submit_q(st, q);
}

static int rs_member_put(axd_lease_store *s, const char *name, const char *record, size_t len, uint32_t ttl_ms,
                         axd_member_cb cb, void *ud)
{
    return member_submit((redis_store *)s, OP_MPUT, name, record, len, ttl_ms, cb, ud);
}

static int rs_member_del(axd_lease_store *s, const char *name, axd_member_cb cb, void *ud)
{
    return member_submit((redis_store *)s, OP_MDEL, name, NULL, 0, 0, cb, ud);
}

static int rs_member_list(axd_lease_store *s, axd_member_cb cb, void *ud)
{
    return member_submit((redis_store *)s, OP_MLIST, NULL, NULL, 0, 0, cb, ud);
}

static int rs_acquire(axd_lease_store *s, uint32_t shard, const char *node, uint32_t ttl_ms, uint64_t min_epoch,
                      axd_lease_cb cb, void *ud)
{
    return submit((redis_store *)s, OP_ACQUIRE, shard, node, ttl_ms, min_epoch, cb, ud);
}

static int rs_renew(axd_lease_store *s, uint32_t shard, const char *node, uint64_t epoch, uint32_t ttl_ms,
                    axd_lease_cb cb, void *ud)
{
    return submit((redis_store *)s, OP_RENEW, shard, node, ttl_ms, epoch, cb, ud);
}

static int rs_release(axd_lease_store *s, uint32_t shard, const char *node, uint64_t epoch, axd_lease_cb cb,
                      void *ud)
{
    return submit((redis_store *)s, OP_RELEASE, shard, node, 0, epoch, cb, ud);
}

static int rs_get(axd_lease_store *s, uint32_t shard, axd_lease_cb cb, void *ud)
{
    return submit((redis_store *)s, OP_GET, shard, NULL, 0, 0, cb, ud);
}

static void rs_state(axd_lease_store *s, axd_lease_state *out)
{
    redis_store *st = (redis_store *)s;
    memset(out, 0, sizeof *out);
    out->store = "redis";
    out->conn = st->ready ? "connected" : st->ever_ready || st->reconnects ? "reconnecting" : "connecting";
    out->last_error = st->last_error;
    out->ops = st->ops;
    out->errors = st->errors;
    out->reconnects = st->reconnects;
}

static void rs_free(axd_lease_store *s)
{
    redis_store *st = (redis_store *)s;
    st->freeing = 1;
    ev_prepare_stop(st->loop, &st->bprep);
    while (st->bhead) { /* never sent */
        rreq *q = st->bhead;
        st->bhead = q->bnext;
        q->bnext = NULL;
        axd_state_result r = {.status = AX_ECANCELED, .records = -1};
        deliver_state(st, q, &r);
    }
    st->btail = NULL;
    st->bn = 0;
    ev_timer_stop(st->loop, &st->retry);
    ev_timer_stop(st->loop, &st->watchdog);
    ev_timer_stop(st->loop, &st->failw);
    drop_conn(st, AX_ECANCELED); /* its requests come back with AX_ECANCELED */
    while (st->fail_head) {
        rreq *q = st->fail_head;
        list_del(&st->fail_head, &st->fail_tail, q);
        axd_lease_result r = {.status = AX_ECANCELED, .ttl_ms = -1};
        deliver(st, q, &r);
    }
    ax_free(st->host);
    ax_free(st->password);
    ax_free(st->prefix);
    ax_free(st);
}

static const axd_lease_ops redis_ops = {
    .acquire = rs_acquire,
    .renew = rs_renew,
    .release = rs_release,
    .get = rs_get,
    .state = rs_state,
    .state_load = rs_state_load,
    .state_write = rs_state_write,
    .member_put = rs_member_put,
    .member_del = rs_member_del,
    .member_list = rs_member_list,
    .free = rs_free,
};

static int sha1_hex(const char *s, char out[41])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    if (EVP_Digest(s, strlen(s), md, &n, EVP_sha1(), NULL) != 1 || n != 20)
        return -1;
    for (unsigned i = 0; i < n; i++)
        snprintf(out + 2 * i, 3, "%02x", md[i]);
    return 0;
}

axd_lease_store *axd_lease_redis_new(struct ev_loop *loop, uint32_t n_shards, const axd_lease_redis_cfg *cfg,
                                   char *err, size_t errlen)
{
    const char *why = NULL;
    if (!loop || !cfg || !n_shards)
        why = "missing loop, config or shard count";
    else if (!cfg->host || !*cfg->host || strlen(cfg->host) > 255)
        why = "redis host must be 1..255 bytes";
    else if (!cfg->port)
        why = "redis port must be 1..65535";
    else if (cfg->prefix && strlen(cfg->prefix) > 200)
        why = "redis prefix must be at most 200 bytes";
    else if (!cfg->connect_timeout_ms)
        why = "redis connect timeout must be > 0";
    if (why) {
        if (err && errlen)
            snprintf(err, errlen, "lease: %s", why);
        return NULL;
    }
    redis_store *st = ax_calloc(1, sizeof *st);
    st->base.ops = &redis_ops;
    st->base.n_shards = n_shards;
    st->loop = loop;
    st->host = ax_strdup(cfg->host);
    st->password = ax_strdup(cfg->password ? cfg->password : "");
    st->prefix = ax_strdup(cfg->prefix ? cfg->prefix : "");
    st->port = cfg->port;
    st->db = cfg->db;
    st->timeout = cfg->connect_timeout_ms / 1000.0;
    st->backoff = BACKOFF_MIN;
    st->scripts = cfg->state_fences ? fence_scripts : op_scripts;
    st->fence_key = cfg->state_fences ? "fence" : "shard";
    for (int i = 0; i < OP_COUNT; i++) {
        if (sha1_hex(st->scripts[i], st->sha[i]) != 0) {
            if (err && errlen)
                snprintf(err, errlen, "lease: SHA-1 unavailable in OpenSSL");
            ax_free(st->host);
            ax_free(st->password);
            ax_free(st->prefix);
            ax_free(st);
            return NULL;
        }
    }
    ev_timer_init(&st->watchdog, watchdog_cb, 0, 0);
    st->watchdog.data = st;
    ev_timer_init(&st->retry, retry_cb, 0, 0);
    st->retry.data = st;
    ev_timer_init(&st->failw, fail_cb, 0, 0);
    st->failw.data = st;
    ev_prepare_init(&st->bprep, bprep_cb);
    st->bprep.data = st;
    rs_connect(st);
    return &st->base;
}
