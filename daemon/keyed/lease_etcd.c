/* The etcd lease store: etcd v3's JSON gateway (POST /v3/...) over HTTP with libcurl's multi
 * interface on our libev loop, so nothing blocks the loop on the network. A shard's lease is
 * two keys attached to one etcd lease (granted with the shard's ttl, kept alive by renew,
 * revoked on release); the epoch is a per-shard counter key that the same transaction that
 * takes the shard compares (by its mod revision) and raises, so epochs only grow, also
 * across etcd restarts (Raft keeps them). Keys, for shard n (PROTOCOL.md "etcd store"):
 *   <prefix>lease/<n>   the holder's epoch (decimal), attached to the holder's etcd lease
 *   <prefix>owner/<n>   the holder's owner id ("" while quarantined), same lease
 *   <prefix>epoch/<n>   the last epoch granted (decimal), no lease
 *   <prefix>member/<name> a member's record, attached to its own etcd lease
 *   <prefix>state/<n>/<type\0key> a durable keyed actor's state, no lease
 * Several endpoints: an operation that cannot reach one fails (AX_ECONN, effect unknown)
 * and the next operation goes to the next endpoint. A state operation is one transaction
 * conditioned on the lease key holding the writer's epoch; a shard's state operations are
 * sent one at a time, so they apply in call order. */
#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <inttypes.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ax_mem.h"
#include "config_check.h"
#include "lease.h"
#include "log.h"

#define ETCD_EP_MAX 8
#define ETCD_RESP_MAX (4u << 20) /* a member listing of many records fits; more is refused */
#define ETCD_KEY_MAX 512
#define MEMBER_LEASES 8
/* etcd deletes an expired lease's keys at its next sweep (every 500 ms): a bound on the lag */
#define ETCD_SWEEP_MS 600

typedef struct etcd_store etcd_store;
typedef struct eop eop;

/* One operation in flight, one HTTP request at a time (its steps chain). */
enum { OP_ACQUIRE, OP_RENEW, OP_RELEASE, OP_GET, OP_MPUT, OP_MDEL, OP_MLIST, OP_SLOAD, OP_SWRITE, OP_REVOKE, OP_AUTH };

struct eop {
    etcd_store *st;
    int op, step;
    uint32_t shard;
    char node[AXD_LEASE_NODE_MAX + 1];
    uint32_t ttl_ms;
    uint64_t epoch, min_epoch;
    int64_t lease_id;         /* the etcd lease this operation granted or uses */
    int64_t old_lease;        /* acquire: the lease id the shard had here before */
    int64_t seen_epoch_rev;   /* acquire: mod revision of the epoch key (0: absent) */
    int64_t seen_lease_rev;   /* acquire: mod revision of the lease key (0: absent) */
    int rounds;
    int behind; /* acquire: quarantining at min_epoch (the store's counter was below it) */
    int want_ttl; /* get: the holder's remaining time too (timetolive) */
    int ep;                   /* the endpoint the request in flight went to */
    char *record;             /* member put: the record; state write: the value */
    size_t record_len;
    char *sname;              /* state: the record's name ("type\0key") */
    size_t sname_len;
    int del;                  /* state write: delete instead */
    axd_state_cb scb;
    eop *qnext;               /* state: the next operation of the same shard */
    axd_lease_cb cb;
    axd_member_cb mcb;
    void *ud;
    /* the HTTP request in flight (path and body kept to send it again after a new token) */
    char path[40];
    char *text;
    int auth_retry;           /* sent again once with a fresh token */
    eop *await_next;          /* waiting for the auth token */
    CURL *easy;
    struct curl_slist *hdrs;
    char *resp;
    size_t resp_len, resp_cap;
    int too_big;
    char errbuf[CURL_ERROR_SIZE];
    eop *prev, *next;
};

/* Per-socket watcher that libcurl asks for. */
typedef struct esock {
    ev_io io;
    etcd_store *st;
} esock;

struct etcd_store {
    axd_lease_store base;
    struct ev_loop *loop;
    CURLM *multi;
    ev_timer timer;
    char *endpoints[ETCD_EP_MAX];
    int n_endpoints, cur;
    char prefix[201];
    char *cacert, *cert, *key;
    char *user, *password;    /* etcd authentication (a token from /v3/auth/authenticate) */
    char *token;
    int authing;
    eop *await_head, *await_tail;
    uint32_t timeout_ms;
    int64_t *shard_lease; /* the etcd lease each shard was granted under here (0: none) */
    eop **sq_head, **sq_tail; /* per shard: state operations, applied one at a time in call order */
    eop *mq_head, *mq_tail;   /* member puts and deletes, one at a time in call order (a delete
                               * must not pass a put in flight: the record would come back) */
    eop *ops;
    int freeing;
    uint64_t n_ops, n_errors, n_failovers;
    char last_error[256];
    int ok_once, ok_now;
    struct {
        int used;
        char name[AXD_LEASE_NODE_MAX + 1];
        int64_t id;
    } mleases[MEMBER_LEASES];
};

/* ---- small helpers ---- */

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* base64 of n bytes into a cJSON string item. */
static cJSON *b64(const void *p, size_t n)
{
    size_t cap = 4 * ((n + 2) / 3) + 1;
    char *o = ax_malloc(cap);
    EVP_EncodeBlock((unsigned char *)o, p, (int)n);
    cJSON *s = cJSON_CreateString(o);
    ax_free(o);
    return s;
}

/* Decode a base64 string (at most cap bytes out): length, or -1. */
static long unb64(const char *s, unsigned char *out, size_t cap)
{
    size_t n = strlen(s);
    if (n % 4 || n / 4 * 3 > cap + 2)
        return -1;
    if (!n)
        return 0;
    unsigned char *tmp = ax_malloc(n / 4 * 3 + 1);
    int len = EVP_DecodeBlock(tmp, (const unsigned char *)s, (int)n);
    if (len < 0) {
        ax_free(tmp);
        return -1;
    }
    if (s[n - 1] == '=')
        len--;
    if (n > 1 && s[n - 2] == '=')
        len--;
    if ((size_t)len > cap) {
        ax_free(tmp);
        return -1;
    }
    memcpy(out, tmp, (size_t)len);
    ax_free(tmp);
    return len;
}

static void key_of(const etcd_store *st, char *out, size_t cap, const char *kind, uint32_t shard)
{
    snprintf(out, cap, "%s%s/%" PRIu32, st->prefix, kind, shard);
}

static cJSON *key_item(const char *k) { return b64(k, strlen(k)); }

/* int64 fields come as decimal strings (proto3 JSON); absent means 0. */
static int64_t i64_of(const cJSON *o, const char *name)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
    if (cJSON_IsString(v))
        return strtoll(v->valuestring, NULL, 10);
    if (cJSON_IsNumber(v)) /* in range before the conversion (a hostile 1e99 is no int64) */
        return v->valuedouble >= 9.2e18 ? INT64_MAX : v->valuedouble <= -9.2e18 ? INT64_MIN : (int64_t)v->valuedouble;
    return 0;
}

/* The decimal epoch in a value (1..2^53-1), else 0. */
static uint64_t epoch_of(const char *s, size_t n)
{
    if (!n || n > 16)
        return 0;
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return 0;
        v = v * 10 + (uint64_t)(s[i] - '0');
    }
    return v <= AXD_LEASE_EPOCH_MAX ? v : 0;
}

/* ---- requests built as cJSON ---- */

static cJSON *req_range(const char *k)
{
    cJSON *r = cJSON_CreateObject(), *o = cJSON_AddObjectToObject(r, "request_range");
    cJSON_AddItemToObject(o, "key", key_item(k));
    return r;
}

static cJSON *req_put(const char *k, const char *v, size_t vlen, int64_t lease)
{
    cJSON *r = cJSON_CreateObject(), *o = cJSON_AddObjectToObject(r, "request_put");
    cJSON_AddItemToObject(o, "key", key_item(k));
    cJSON_AddItemToObject(o, "value", b64(v, vlen));
    if (lease) {
        char id[24];
        snprintf(id, sizeof id, "%" PRId64, lease);
        cJSON_AddStringToObject(o, "lease", id);
    }
    return r;
}

static cJSON *req_delete(const char *k)
{
    cJSON *r = cJSON_CreateObject(), *o = cJSON_AddObjectToObject(r, "request_delete_range");
    cJSON_AddItemToObject(o, "key", key_item(k));
    return r;
}

/* A compare: target "MOD" (mod_revision) or "VALUE", result EQUAL. */
static cJSON *cmp_mod(const char *k, int64_t rev)
{
    cJSON *c = cJSON_CreateObject();
    cJSON_AddItemToObject(c, "key", key_item(k));
    cJSON_AddStringToObject(c, "target", "MOD");
    cJSON_AddStringToObject(c, "result", "EQUAL");
    char v[24];
    snprintf(v, sizeof v, "%" PRId64, rev);
    cJSON_AddStringToObject(c, "mod_revision", v);
    return c;
}

static cJSON *cmp_value(const char *k, const char *v, size_t n)
{
    cJSON *c = cJSON_CreateObject();
    cJSON_AddItemToObject(c, "key", key_item(k));
    cJSON_AddStringToObject(c, "target", "VALUE");
    cJSON_AddStringToObject(c, "result", "EQUAL");
    cJSON_AddItemToObject(c, "value", b64(v, n));
    return c;
}

/* The key's value is not v (a missing key fails every VALUE compare in etcd). */
static cJSON *cmp_value_ne(const char *k, const char *v, size_t n)
{
    cJSON *c = cmp_value(k, v, n);
    cJSON_ReplaceItemInObject(c, "result", cJSON_CreateString("NOT_EQUAL"));
    return c;
}

/* {"ID": "<id>"}: the body of the lease keep-alive, time-to-live and revoke calls. */
static cJSON *lease_id_body(int64_t id)
{
    char v[24];
    snprintf(v, sizeof v, "%" PRId64, id);
    cJSON *b = cJSON_CreateObject();
    cJSON_AddStringToObject(b, "ID", v);
    return b;
}

static cJSON *txn_new(cJSON **cmp, cJSON **succ)
{
    cJSON *t = cJSON_CreateObject();
    *cmp = cJSON_AddArrayToObject(t, "compare");
    *succ = cJSON_AddArrayToObject(t, "success");
    return t;
}

/* ---- the HTTP engine: libcurl multi on libev ---- */

static void op_step(eop *q, int status, cJSON *resp);
static void op_free(eop *q);

static size_t on_body(char *p, size_t sz, size_t nm, void *ud)
{
    eop *q = ud;
    size_t n = sz * nm;
    if (q->resp_len + n > ETCD_RESP_MAX) {
        q->too_big = 1;
        return 0; /* aborts the transfer */
    }
    if (q->resp_len + n + 1 > q->resp_cap) {
        size_t cap = q->resp_cap ? q->resp_cap : 1024;
        while (cap < q->resp_len + n + 1)
            cap *= 2;
        char *r = ax_try_realloc(q->resp, cap);
        if (!r)
            return 0;
        q->resp = r;
        q->resp_cap = cap;
    }
    memcpy(q->resp + q->resp_len, p, n);
    q->resp_len += n;
    q->resp[q->resp_len] = 0;
    return n;
}

static void note_error(etcd_store *st, const eop *q, const char *a, const char *b)
{
    if (q->op == OP_REVOKE && !st->user)
        return; /* a lease given back that had expired already */
    char m[256];
    snprintf(m, sizeof m, "%s: %s", a, b);
    if (strcmp(m, st->last_error) != 0)
        axd_log(AX_LOG_WARN, "lease", "etcd: %s", m);
    snprintf(st->last_error, sizeof st->last_error, "%s", m);
}

static int send_now(eop *q);
static eop *op_new(etcd_store *st, int op, uint32_t shard);

/* Ask for a token (user, password); the operations waiting for it go when it comes. */
static int authenticate(etcd_store *st)
{
    if (st->authing)
        return 0;
    eop *a = op_new(st, OP_AUTH, 0);
    cJSON *b = cJSON_CreateObject();
    cJSON_AddStringToObject(b, "name", st->user);
    cJSON_AddStringToObject(b, "password", st->password ? st->password : "");
    a->text = cJSON_PrintUnformatted(b);
    cJSON_Delete(b);
    snprintf(a->path, sizeof a->path, "/v3/auth/authenticate");
    int rc = a->text ? send_now(a) : AX_ENOMEM;
    if (rc) {
        op_free(a);
        return rc;
    }
    st->authing = 1;
    return 0;
}

static void await_token(eop *q)
{
    etcd_store *st = q->st;
    q->await_next = NULL;
    if (st->await_tail)
        st->await_tail->await_next = q;
    else
        st->await_head = q;
    st->await_tail = q;
}

/* The token came (status 0) or could not be had: the waiting operations go, or fail. */
static void auth_done(etcd_store *st, int status)
{
    st->authing = 0;
    eop *q = st->await_head;
    st->await_head = st->await_tail = NULL;
    while (q) {
        eop *n = q->await_next;
        int rc = status ? status : send_now(q);
        if (rc)
            op_step(q, rc, NULL);
        q = n;
    }
}

/* POST body (taken) to path on the current endpoint; the answer comes to op_step. */
static int post(eop *q, const char *path, cJSON *body)
{
    etcd_store *st = q->st;
    if (q->text)
        cJSON_free(q->text);
    q->text = cJSON_PrintUnformatted(body);
    cJSON_Delete(body);
    if (!q->text)
        return AX_ENOMEM;
    snprintf(q->path, sizeof q->path, "%s", path);
    q->auth_retry = 0;
    if (st->user && !st->token) {
        int rc = authenticate(st);
        if (rc)
            return rc;
        await_token(q);
        return 0;
    }
    return send_now(q);
}

static int send_now(eop *q)
{
    etcd_store *st = q->st;
    char url[600];
    q->ep = st->cur;
    snprintf(url, sizeof url, "%s%s", st->endpoints[q->ep], q->path);
    CURL *e = curl_easy_init();
    if (!e)
        return AX_ENOMEM;
    q->resp_len = 0;
    q->too_big = 0;
    q->errbuf[0] = 0;
    q->hdrs = curl_slist_append(NULL, "Content-Type: application/json");
    if (st->token && q->op != OP_AUTH) {
        char h[600];
        snprintf(h, sizeof h, "Authorization: %s", st->token);
        q->hdrs = curl_slist_append(q->hdrs, h);
    }
    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_COPYPOSTFIELDS, q->text);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, q->hdrs);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, q);
    curl_easy_setopt(e, CURLOPT_PRIVATE, q);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, q->errbuf);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)st->timeout_ms);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long)st->timeout_ms);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    if (st->cacert)
        curl_easy_setopt(e, CURLOPT_CAINFO, st->cacert);
    if (st->cert)
        curl_easy_setopt(e, CURLOPT_SSLCERT, st->cert);
    if (st->key)
        curl_easy_setopt(e, CURLOPT_SSLKEY, st->key);
    q->easy = e;
    if (curl_multi_add_handle(st->multi, e) != CURLM_OK) {
        curl_easy_cleanup(e);
        curl_slist_free_all(q->hdrs);
        q->easy = NULL;
        q->hdrs = NULL;
        return AX_ENOMEM;
    }
    return 0;
}

static void request_done(etcd_store *st, CURL *e, CURLcode res)
{
    eop *q = NULL;
    curl_easy_getinfo(e, CURLINFO_PRIVATE, (char **)&q);
    long code = 0;
    curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &code);
    curl_multi_remove_handle(st->multi, e);
    curl_easy_cleanup(e);
    curl_slist_free_all(q->hdrs);
    q->easy = NULL;
    q->hdrs = NULL;
    int status = AX_OK;
    cJSON *doc = NULL;
    const char *ep = st->endpoints[q->ep];
    if (res != CURLE_OK) {
        status = res == CURLE_OPERATION_TIMEDOUT ? AX_ETIMEDOUT : q->too_big ? AX_ETOOBIG : AX_ECONN;
        note_error(st, q, ep, q->errbuf[0] ? q->errbuf : curl_easy_strerror(res));
        if (st->n_endpoints > 1 && status != AX_ETOOBIG && st->cur == q->ep) { /* the next operation: the next one */
            st->cur = (st->cur + 1) % st->n_endpoints;
            st->n_failovers++;
        }
        st->ok_now = 0;
    } else {
        doc = q->resp_len ? cJSON_ParseWithLength(q->resp, q->resp_len) : NULL;
        if (code == 401 && st->user && q->op != OP_AUTH && !q->auth_retry) {
            /* the token expired (or etcd restarted): a new one, then this request again */
            cJSON_Delete(doc);
            ax_free(st->token);
            st->token = NULL;
            q->auth_retry = 1;
            int rc = authenticate(st);
            if (rc)
                op_step(q, rc, NULL);
            else
                await_token(q);
            return;
        }
        if (code == 401 || code == 403 || (q->op == OP_AUTH && code != 200)) {
            const cJSON *m = cJSON_GetObjectItemCaseSensitive(doc, "message");
            status = AX_EAUTH;
            note_error(st, q, ep, cJSON_IsString(m) ? m->valuestring : "authentication refused (HTTP 401/403)");
        } else if (code != 200 || !cJSON_IsObject(doc)) {
            const cJSON *m = cJSON_GetObjectItemCaseSensitive(doc, "message");
            const char *mt = cJSON_IsString(m) ? m->valuestring : "";
            status = code != 200 ? AX_EIO : AX_EPROTO;
            if (strstr(mt, "user name is empty") || strstr(mt, "permission denied") || strstr(mt, "auth"))
                status = AX_EAUTH; /* authentication on and no (or a wrong) user */
            note_error(st, q, ep, cJSON_IsString(m) ? m->valuestring : "an answer that is not a JSON object");
        } else {
            st->ok_now = st->ok_once = 1;
        }
    }
    if (q->op == OP_AUTH) {
        const cJSON *t = status ? NULL : cJSON_GetObjectItemCaseSensitive(doc, "token");
        if (cJSON_IsString(t) && *t->valuestring && strlen(t->valuestring) < 500) {
            st->token = ax_strdup(t->valuestring);
        } else if (!status) {
            status = AX_EAUTH;
            note_error(st, q, ep, "the authentication answer holds no token");
        }
        cJSON_Delete(doc);
        op_free(q);
        auth_done(st, status ? (status == AX_EAUTH || status == AX_EIO ? AX_EAUTH : status) : 0);
        return;
    }
    if (status && q->op == OP_REVOKE) { /* giving back a lease that expired already: nothing to say */
        cJSON_Delete(doc);
        op_free(q);
        return;
    }
    if (status) {
        st->n_errors++;
        cJSON_Delete(doc);
        doc = NULL;
    }
    op_step(q, status, doc);
    cJSON_Delete(doc);
}

static void check_done(etcd_store *st)
{
    CURLMsg *m;
    int left;
    while ((m = curl_multi_info_read(st->multi, &left)))
        if (m->msg == CURLMSG_DONE)
            request_done(st, m->easy_handle, m->data.result);
}

static void io_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)loop;
    esock *s = (esock *)w;
    int running, act = (revents & EV_READ ? CURL_CSELECT_IN : 0) | (revents & EV_WRITE ? CURL_CSELECT_OUT : 0);
    etcd_store *st = s->st;
    curl_multi_socket_action(st->multi, w->fd, act, &running);
    check_done(st);
}

static void timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    etcd_store *st = w->data;
    int running;
    curl_multi_socket_action(st->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    check_done(st);
}

static int multi_timer(CURLM *m, long ms, void *ud)
{
    (void)m;
    etcd_store *st = ud;
    ev_timer_stop(st->loop, &st->timer);
    if (ms >= 0) {
        ev_timer_set(&st->timer, ms / 1000.0, 0.);
        ev_timer_start(st->loop, &st->timer);
    }
    return 0;
}

static int multi_sock(CURL *e, curl_socket_t fd, int what, void *ud, void *sockp)
{
    (void)e;
    etcd_store *st = ud;
    esock *s = sockp;
    if (what == CURL_POLL_REMOVE) {
        if (s) {
            ev_io_stop(st->loop, &s->io);
            ax_free(s);
            curl_multi_assign(st->multi, fd, NULL);
        }
        return 0;
    }
    int ev = (what & CURL_POLL_IN ? EV_READ : 0) | (what & CURL_POLL_OUT ? EV_WRITE : 0);
    if (!s) {
        s = ax_malloc(sizeof *s);
        s->st = st;
        ev_io_init(&s->io, io_cb, fd, ev);
        curl_multi_assign(st->multi, fd, s);
    } else {
        ev_io_stop(st->loop, &s->io);
        ev_io_set(&s->io, fd, ev);
    }
    ev_io_start(st->loop, &s->io);
    return 0;
}

/* ---- operations ---- */

static eop *op_new(etcd_store *st, int op, uint32_t shard)
{
    eop *q = ax_malloc(sizeof *q);
    memset(q, 0, sizeof *q);
    q->st = st;
    q->op = op;
    q->shard = shard;
    q->next = st->ops;
    if (st->ops)
        st->ops->prev = q;
    st->ops = q;
    st->n_ops++;
    return q;
}

static void op_free(eop *q)
{
    etcd_store *st = q->st;
    if (q->prev)
        q->prev->next = q->next;
    else
        st->ops = q->next;
    if (q->next)
        q->next->prev = q->prev;
    ax_free(q->resp);
    ax_free(q->record);
    ax_free(q->sname);
    if (q->text)
        cJSON_free(q->text);
    ax_free(q);
}

static void lease_answer(eop *q, int status, int granted, const char *owner, uint64_t epoch, int64_t ttl)
{
    axd_lease_result r = {.status = status, .granted = granted, .owner = owner ? owner : "",
                          .owner_len = owner ? strlen(owner) : 0, .epoch = epoch, .ttl_ms = ttl,
                          .behind = status == AX_OK && !granted && q->behind};
    if (q->cb)
        q->cb(q->ud, q->shard, &r);
    op_free(q);
}

/* Fire and forget: give an etcd lease back (its keys go with it). */
static void lease_revoke(etcd_store *st, int64_t id)
{
    if (!id || st->freeing)
        return;
    eop *q = op_new(st, OP_REVOKE, 0);
    cJSON *b = lease_id_body(id);
    if (post(q, "/v3/lease/revoke", b))
        op_free(q);
}

/* The kv of the i-th response of a txn (a range), or NULL. */
static const cJSON *txn_kv(const cJSON *resp, int i)
{
    const cJSON *rs = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(resp, "responses"), i);
    const cJSON *rr = cJSON_GetObjectItemCaseSensitive(rs, "response_range");
    return cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(rr, "kvs"), 0);
}

/* The value of kv decoded into buf (NUL-terminated): its length, or -1 (absent / bad). */
static long kv_value(const cJSON *kv, char *buf, size_t cap)
{
    if (!kv)
        return -1;
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(kv, "value");
    long n = cJSON_IsString(v) ? unb64(v->valuestring, (unsigned char *)buf, cap - 1) : 0;
    if (n < 0)
        return -1;
    buf[n] = 0;
    return n;
}

static int txn_ok(const cJSON *resp) { return cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(resp, "succeeded")); }

/* What a read of a shard's three keys (read_shard) answered. */
typedef struct shard_read {
    int has_lease;                     /* the lease key exists (held, by a node or the quarantine) */
    uint64_t held;                     /* its epoch (0: not a valid epoch) */
    int has_owner;                     /* the owner key is valid (no NUL, not too long) */
    char owner[AXD_LEASE_NODE_MAX + 1]; /* "" for the quarantine */
    int has_epoch_key;
    uint64_t last;                     /* the epoch counter (0: absent or not a valid epoch) */
    int64_t lease_rev, epoch_rev;      /* mod revisions of the lease and epoch keys (0: absent) */
    int64_t lease_id;                  /* the etcd lease the lease key is attached to */
} shard_read;

static void decode_shard(const cJSON *resp, shard_read *r)
{
    memset(r, 0, sizeof *r);
    const cJSON *kl = txn_kv(resp, 0), *ko = txn_kv(resp, 1), *ke = txn_kv(resp, 2);
    char lv[32], ev[32];
    long lvn = kv_value(kl, lv, sizeof lv), ovn = kv_value(ko, r->owner, sizeof r->owner),
         evn = kv_value(ke, ev, sizeof ev);
    r->has_lease = kl != NULL;
    r->held = lvn > 0 ? epoch_of(lv, (size_t)lvn) : 0;
    r->has_owner = ovn >= 0 && strlen(r->owner) == (size_t)ovn; /* a NUL inside: not a name */
    if (!r->has_owner)
        r->owner[0] = 0;
    r->has_epoch_key = ke != NULL;
    r->last = evn > 0 ? epoch_of(ev, (size_t)evn) : 0;
    r->lease_rev = kl ? i64_of(kl, "mod_revision") : 0;
    r->epoch_rev = ke ? i64_of(ke, "mod_revision") : 0;
    r->lease_id = kl ? i64_of(kl, "lease") : 0;
}

/* A txn whose compares say: the shard's lease key holds epoch, and its owner key holds
 * node (node NULL: any node — not the quarantine's ""). *succ gets the success list. */
static cJSON *txn_holder(const etcd_store *st, uint32_t shard, uint64_t epoch, const char *node, cJSON **succ)
{
    char kl[ETCD_KEY_MAX], ko[ETCD_KEY_MAX], v[24];
    key_of(st, kl, sizeof kl, "lease", shard);
    key_of(st, ko, sizeof ko, "owner", shard);
    snprintf(v, sizeof v, "%" PRIu64, epoch);
    cJSON *cmp, *t = txn_new(&cmp, succ);
    cJSON_AddItemToArray(cmp, cmp_value(kl, v, strlen(v)));
    cJSON_AddItemToArray(cmp, node ? cmp_value(ko, node, strlen(node)) : cmp_value_ne(ko, "", 0));
    return t;
}

/* Read a shard's three keys (one txn, no compare). */
static int read_shard(eop *q)
{
    char k[ETCD_KEY_MAX];
    cJSON *cmp, *succ, *t = txn_new(&cmp, &succ);
    key_of(q->st, k, sizeof k, "lease", q->shard);
    cJSON_AddItemToArray(succ, req_range(k));
    key_of(q->st, k, sizeof k, "owner", q->shard);
    cJSON_AddItemToArray(succ, req_range(k));
    key_of(q->st, k, sizeof k, "epoch", q->shard);
    cJSON_AddItemToArray(succ, req_range(k));
    return post(q, "/v3/kv/txn", t);
}

static int grant(eop *q, uint32_t ttl_ms)
{
    cJSON *b = cJSON_CreateObject();
    cJSON_AddNumberToObject(b, "TTL", (double)((ttl_ms + 999) / 1000)); /* etcd counts seconds */
    return post(q, "/v3/lease/grant", b);
}

/* Put the shard's lease keys at epoch e for owner (under q->lease_id), conditioned on the
 * revisions read; the epoch key gets epoch_key_value. */
static int take_shard(eop *q, uint64_t e, const char *owner, uint64_t epoch_key_value)
{
    char kl[ETCD_KEY_MAX], ko[ETCD_KEY_MAX], ke[ETCD_KEY_MAX], v[24], ve[24];
    key_of(q->st, kl, sizeof kl, "lease", q->shard);
    key_of(q->st, ko, sizeof ko, "owner", q->shard);
    key_of(q->st, ke, sizeof ke, "epoch", q->shard);
    snprintf(v, sizeof v, "%" PRIu64, e);
    snprintf(ve, sizeof ve, "%" PRIu64, epoch_key_value);
    cJSON *cmp, *succ, *t = txn_new(&cmp, &succ);
    cJSON_AddItemToArray(cmp, cmp_mod(ke, q->seen_epoch_rev));
    cJSON_AddItemToArray(cmp, cmp_mod(kl, q->seen_lease_rev));
    cJSON_AddItemToArray(succ, req_put(ke, ve, strlen(ve), 0));
    cJSON_AddItemToArray(succ, req_put(kl, v, strlen(v), q->lease_id));
    cJSON_AddItemToArray(succ, req_put(ko, owner, strlen(owner), q->lease_id));
    q->epoch = e;
    return post(q, "/v3/kv/txn", t);
}

/* The remaining time of a holder's lease from etcd's timetolive answer: whole seconds
 * left (0: less than one; -1 once expired), plus etcd's expiry sweep; -1 if none. */
static int64_t holder_ttl_ms(const cJSON *resp)
{
    int64_t ttl = i64_of(resp, "TTL");
    if (ttl > 366 * 86400) /* no lease of ours is that long: a broken answer, kept finite */
        ttl = 366 * 86400;
    return ttl >= 0 ? (ttl + 1) * 1000 + ETCD_SWEEP_MS : -1;
}

enum { A_GRANT, A_READ, A_TAKE, A_QUARANTINE, A_TTL };

static void acquire_step(eop *q, int status, cJSON *resp)
{
    etcd_store *st = q->st;
    int rc = 0;
    if (status) {
        if (q->step != A_GRANT && q->lease_id && q->step != A_QUARANTINE)
            lease_revoke(st, q->lease_id);
        lease_answer(q, status, 0, "", 0, -1);
        return;
    }
    switch (q->step) {
    case A_GRANT:
        q->lease_id = i64_of(resp, "ID");
        if (!q->lease_id) {
            lease_answer(q, AX_EPROTO, 0, "", 0, -1);
            return;
        }
        q->step = A_READ;
        rc = read_shard(q);
        break;
    case A_READ: {
        shard_read sr;
        decode_shard(resp, &sr);
        q->seen_lease_rev = sr.lease_rev;
        q->seen_epoch_rev = sr.epoch_rev;
        if (sr.has_lease && (!sr.has_owner || strcmp(sr.owner, q->node) != 0)) { /* held by another (or quarantined) */
            lease_revoke(st, q->lease_id);
            q->lease_id = 0; /* ours is given back; the holder's is only looked at */
            snprintf(q->node, sizeof q->node, "%s", sr.owner);
            q->epoch = sr.held;
            q->step = A_TTL;
            cJSON *b = lease_id_body(sr.lease_id);
            rc = post(q, "/v3/lease/timetolive", b);
            break;
        }
        uint64_t last = sr.last;
        if (!sr.has_epoch_key || !last) { /* a fresh (or emptied) store: quarantine one ttl, seeded from the clock */
            uint64_t seed = (uint64_t)wall_ms();
            if (seed <= q->min_epoch)
                seed = q->min_epoch + 1;
            q->step = A_QUARANTINE;
            rc = take_shard(q, seed, "", seed);
        } else if (last < q->min_epoch) { /* the store is behind what the caller saw */
            q->step = A_QUARANTINE;
            q->behind = 1;
            rc = take_shard(q, q->min_epoch, "", q->min_epoch);
        } else {
            q->old_lease = st->shard_lease[q->shard];
            q->step = A_TAKE;
            rc = take_shard(q, last + 1, q->node, last + 1);
        }
        break;
    }
    case A_TAKE:
        if (txn_ok(resp)) {
            st->shard_lease[q->shard] = q->lease_id;
            if (q->old_lease && q->old_lease != q->lease_id)
                lease_revoke(st, q->old_lease); /* the keys moved to the new lease */
            lease_answer(q, AX_OK, 1, q->node, q->epoch, q->ttl_ms);
            return;
        }
        /* the keys changed since we read them (a race): read again, once */
        if (q->rounds++ < 1) {
            q->step = A_READ;
            rc = read_shard(q);
            break;
        }
        lease_revoke(st, q->lease_id);
        lease_answer(q, AX_EBUSY, 0, "", 0, -1);
        return;
    case A_QUARANTINE:
        if (!txn_ok(resp)) {
            lease_revoke(st, q->lease_id);
            lease_answer(q, AX_EBUSY, 0, "", 0, -1);
            return;
        }
        /* until the keys are gone: the lease's whole seconds, plus etcd's expiry sweep */
        lease_answer(q, AX_OK, 0, "", q->epoch, (int64_t)(q->ttl_ms + 999) / 1000 * 1000 + ETCD_SWEEP_MS);
        return;
    case A_TTL: {
        int64_t ttl = holder_ttl_ms(resp);
        lease_answer(q, AX_OK, 0, q->node, q->epoch, ttl >= 0 ? ttl : 1);
        return;
    }
    }
    if (rc)
        lease_answer(q, rc, 0, "", 0, -1);
}

static int check_op(etcd_store *st, uint32_t shard, const char *node, uint32_t ttl)
{
    if (st->freeing)
        return AX_ECANCELED;
    if (shard >= st->base.n_shards || (node && axd_lease_check_node(node)) || !ttl)
        return AX_EINVAL;
    return 0;
}

/* A lease operation on shard for node (NULL: none) at epoch, answered to cb. */
static eop *lease_op_new(etcd_store *st, int op, uint32_t shard, const char *node, uint64_t epoch, uint32_t ttl_ms,
                         axd_lease_cb cb, void *ud)
{
    eop *q = op_new(st, op, shard);
    if (node)
        snprintf(q->node, sizeof q->node, "%s", node);
    q->epoch = epoch;
    q->ttl_ms = ttl_ms;
    q->cb = cb;
    q->ud = ud;
    return q;
}

/* The first request of q was sent (rc 0), or q goes (it was never accepted). */
static int started(eop *q, int rc)
{
    if (rc)
        op_free(q);
    return rc;
}

static int es_acquire(axd_lease_store *s, uint32_t shard, const char *node, uint32_t ttl_ms, uint64_t min_epoch,
                      axd_lease_cb cb, void *ud)
{
    etcd_store *st = (etcd_store *)s;
    int rc = check_op(st, shard, node, ttl_ms);
    if (rc)
        return rc;
    eop *q = lease_op_new(st, OP_ACQUIRE, shard, node, 0, ttl_ms, cb, ud);
    q->min_epoch = min_epoch;
    return started(q, grant(q, ttl_ms));
}

enum { R_KEEPALIVE, R_CHECK };

/* A keep-alive's answer: the etcd lease still lives ({"result":{"TTL":"2",...}}). */
static int keepalive_alive(const cJSON *resp)
{
    const cJSON *res = cJSON_GetObjectItemCaseSensitive(resp, "result");
    return i64_of(res ? res : resp, "TTL") > 0;
}

static void renew_step(eop *q, int status, cJSON *resp)
{
    if (status) {
        lease_answer(q, status, 0, "", 0, -1);
        return;
    }
    if (q->step == R_KEEPALIVE) {
        if (!keepalive_alive(resp)) { /* the etcd lease is gone: so is the shard */
            lease_answer(q, AX_OK, 0, "", q->epoch, -1);
            return;
        }
        /* alive: and its keys still say this node at this epoch */
        cJSON *succ, *t = txn_holder(q->st, q->shard, q->epoch, q->node, &succ);
        q->step = R_CHECK;
        int rc = post(q, "/v3/kv/txn", t);
        if (rc)
            lease_answer(q, rc, 0, "", 0, -1);
        return;
    }
    lease_answer(q, AX_OK, txn_ok(resp), q->node, q->epoch, txn_ok(resp) ? (int64_t)q->ttl_ms : -1);
}

static int es_renew(axd_lease_store *s, uint32_t shard, const char *node, uint64_t epoch, uint32_t ttl_ms,
                    axd_lease_cb cb, void *ud)
{
    etcd_store *st = (etcd_store *)s;
    int rc = check_op(st, shard, node, ttl_ms);
    if (rc)
        return rc;
    eop *q = lease_op_new(st, OP_RENEW, shard, node, epoch, ttl_ms, cb, ud);
    q->lease_id = st->shard_lease[shard];
    return started(q, post(q, "/v3/lease/keepalive", lease_id_body(q->lease_id)));
}

static void release_step(eop *q, int status, cJSON *resp)
{
    if (status) {
        lease_answer(q, status, 0, "", 0, -1);
        return;
    }
    int ok = txn_ok(resp);
    if (ok && q->st->shard_lease[q->shard]) {
        lease_revoke(q->st, q->st->shard_lease[q->shard]);
        q->st->shard_lease[q->shard] = 0;
    }
    lease_answer(q, AX_OK, ok, q->node, q->epoch, -1);
}

static int es_release(axd_lease_store *s, uint32_t shard, const char *node, uint64_t epoch, axd_lease_cb cb,
                      void *ud)
{
    etcd_store *st = (etcd_store *)s;
    int rc = check_op(st, shard, node, 1);
    if (rc)
        return rc;
    eop *q = lease_op_new(st, OP_RELEASE, shard, node, epoch, 0, cb, ud);
    char kl[ETCD_KEY_MAX], ko[ETCD_KEY_MAX];
    key_of(st, kl, sizeof kl, "lease", shard);
    key_of(st, ko, sizeof ko, "owner", shard);
    cJSON *succ, *t = txn_holder(st, shard, epoch, node, &succ);
    cJSON_AddItemToArray(succ, req_delete(kl));
    cJSON_AddItemToArray(succ, req_delete(ko));
    return started(q, post(q, "/v3/kv/txn", t));
}

enum { G_READ, G_TTL };

/* get: the shard's keys, then for a held shard the holder's remaining time (so that
 * `axctl shards` on any node shows it held, and the manager knows when it frees). */
static void get_step(eop *q, int status, cJSON *resp)
{
    if (status) {
        lease_answer(q, status, 0, "", 0, -1);
        return;
    }
    if (q->step == G_TTL) {
        lease_answer(q, AX_OK, 1, q->node, q->epoch, holder_ttl_ms(resp));
        return;
    }
    shard_read sr;
    decode_shard(resp, &sr);
    if (!sr.has_lease || !sr.held) {
        lease_answer(q, AX_OK, 0, "", sr.last, -1);
        return;
    }
    snprintf(q->node, sizeof q->node, "%s", sr.owner);
    q->epoch = sr.held;
    if (!q->want_ttl) { /* routing: who, not for how long */
        lease_answer(q, AX_OK, 1, q->node, q->epoch, -1);
        return;
    }
    int64_t id = sr.lease_id;
    q->step = G_TTL;
    if (!id || post(q, "/v3/lease/timetolive", lease_id_body(id)))
        lease_answer(q, AX_OK, 1, q->node, q->epoch, -1); /* held, for how long unknown */
}

static int get_op(axd_lease_store *s, uint32_t shard, int want_ttl, axd_lease_cb cb, void *ud)
{
    etcd_store *st = (etcd_store *)s;
    int rc = check_op(st, shard, NULL, 1);
    if (rc)
        return rc;
    eop *q = lease_op_new(st, OP_GET, shard, NULL, 0, 0, cb, ud);
    q->want_ttl = want_ttl;
    return started(q, read_shard(q));
}

static int es_get(axd_lease_store *s, uint32_t shard, axd_lease_cb cb, void *ud) { return get_op(s, shard, 0, cb, ud); }

static int es_get_with_ttl(axd_lease_store *s, uint32_t shard, axd_lease_cb cb, void *ud)
{
    return get_op(s, shard, 1, cb, ud);
}

/* ---- membership ---- */

static int member_send(eop *q);

static void member_answer(eop *q, int status, const axd_member *m, size_t n)
{
    etcd_store *st = q->st;
    axd_member_cb cb = q->mcb;
    void *ud = q->ud;
    int queued = q->op == OP_MPUT || q->op == OP_MDEL;
    if (queued) {
        st->mq_head = q->qnext;
        if (!q->qnext)
            st->mq_tail = NULL;
    }
    op_free(q);
    if (cb)
        cb(ud, status, m, n);
    /* then the next put or delete (freeing answers them all itself) */
    if (!queued || st->freeing || !(q = st->mq_head))
        return;
    int rc = member_send(q);
    if (rc)
        member_answer(q, rc, NULL, 0); /* answers it and goes on to the next */
}

static void mput_step(eop *q, int status, cJSON *resp)
{
    if (status) {
        member_answer(q, status, NULL, 0);
        return;
    }
    if (q->step == 0) { /* granted: put the record under it */
        q->lease_id = i64_of(resp, "ID");
        char k[ETCD_KEY_MAX];
        snprintf(k, sizeof k, "%smember/%s", q->st->prefix, q->node);
        cJSON *b = req_put(k, q->record, q->record_len, q->lease_id);
        cJSON *body = cJSON_DetachItemFromObject(b, "request_put");
        cJSON_Delete(b);
        q->step = 1;
        int rc = post(q, "/v3/kv/put", body);
        if (rc)
            member_answer(q, rc, NULL, 0);
        return;
    }
    /* the record is under the new lease: the previous one can go */
    if (q->old_lease)
        lease_revoke(q->st, q->old_lease);
    member_answer(q, AX_OK, NULL, 0);
}

/* The etcd lease this store put member `name` under last (a node puts its own record). */
static int64_t *member_lease_slot(etcd_store *st, const char *name)
{
    for (int i = 0; i < MEMBER_LEASES; i++)
        if (st->mleases[i].used && !strcmp(st->mleases[i].name, name))
            return &st->mleases[i].id;
    for (int i = 0; i < MEMBER_LEASES; i++)
        if (!st->mleases[i].used) {
            st->mleases[i].used = 1;
            snprintf(st->mleases[i].name, sizeof st->mleases[i].name, "%s", name);
            return &st->mleases[i].id;
        }
    return NULL;
}

/* Start a queued member put (grant, then put under it) or delete. */
static int member_send(eop *q)
{
    if (q->op == OP_MPUT) {
        int64_t *slot = member_lease_slot(q->st, q->node);
        q->old_lease = slot ? *slot : 0; /* as the put before this one left it */
        return grant(q, q->ttl_ms);
    }
    char k[ETCD_KEY_MAX];
    snprintf(k, sizeof k, "%smember/%s", q->st->prefix, q->node);
    cJSON *b = req_delete(k);
    cJSON *body = cJSON_DetachItemFromObject(b, "request_delete_range");
    cJSON_Delete(b);
    return post(q, "/v3/kv/deleterange", body);
}

static int member_enqueue(eop *q)
{
    etcd_store *st = q->st;
    if (st->mq_tail) { /* after the earlier ones */
        st->mq_tail->qnext = q;
        st->mq_tail = q;
        return 0;
    }
    int rc = member_send(q);
    if (rc) {
        op_free(q);
        return rc;
    }
    st->mq_head = st->mq_tail = q;
    return 0;
}

static int es_member_put(axd_lease_store *s, const char *name, const char *record, size_t len, uint32_t ttl_ms,
                         axd_member_cb cb, void *ud)
{
    etcd_store *st = (etcd_store *)s;
    if (st->freeing)
        return AX_ECANCELED;
    if (!name || !*name || strlen(name) > AXD_LEASE_NODE_MAX || len > AXD_MEMBER_RECORD_MAX || !ttl_ms)
        return AX_EINVAL;
    eop *q = op_new(st, OP_MPUT, 0);
    snprintf(q->node, sizeof q->node, "%s", name);
    q->record = ax_malloc(len + 1);
    memcpy(q->record, record, len);
    q->record_len = len;
    q->ttl_ms = ttl_ms;
    q->mcb = cb;
    q->ud = ud;
    return member_enqueue(q);
}

/* A member put's grant answered: remember the lease for the next put (see mput_step). */
static void mput_note_lease(eop *q)
{
    int64_t *slot = member_lease_slot(q->st, q->node);
    if (slot && q->lease_id)
        *slot = q->lease_id;
}

static void mdel_step(eop *q, int status, cJSON *resp)
{
    (void)resp;
    int64_t *slot = member_lease_slot(q->st, q->node);
    if (slot && *slot) {
        lease_revoke(q->st, *slot);
        *slot = 0;
    }
    member_answer(q, status, NULL, 0);
}

static int es_member_del(axd_lease_store *s, const char *name, axd_member_cb cb, void *ud)
{
    etcd_store *st = (etcd_store *)s;
    if (st->freeing)
        return AX_ECANCELED;
    if (!name || !*name || strlen(name) > AXD_LEASE_NODE_MAX)
        return AX_EINVAL;
    eop *q = op_new(st, OP_MDEL, 0);
    snprintf(q->node, sizeof q->node, "%s", name);
    q->mcb = cb;
    q->ud = ud;
    return member_enqueue(q);
}

/* A member listing: the records under `<prefix>member/` (plen: that prefix's length).
 * Each entry takes one slot of *buf; entries whose key or record is not valid (not
 * base64, a name too long or holding a NUL, a record too long) are left out. The count;
 * *m and *buf are the caller's to free. */
#define MEMBER_SLOT (AXD_LEASE_NODE_MAX + 1 + AXD_MEMBER_RECORD_MAX + 1)
static size_t decode_members(const cJSON *resp, size_t plen, axd_member **mout, char **bout)
{
    const cJSON *kvs = cJSON_GetObjectItemCaseSensitive(resp, "kvs"), *kv;
    int n = cJSON_IsArray(kvs) ? cJSON_GetArraySize(kvs) : 0;
    axd_member *m = ax_calloc((size_t)(n ? n : 1), sizeof *m);
    char *buf = ax_malloc((size_t)(n ? n : 1) * MEMBER_SLOT);
    size_t k = 0;
    const cJSON *list = n ? kvs : NULL; /* an object's members are no listing */
    cJSON_ArrayForEach(kv, list)
    {
        char key[ETCD_KEY_MAX + 1];
        const cJSON *ks = cJSON_GetObjectItemCaseSensitive(kv, "key");
        long kn = cJSON_IsString(ks) ? unb64(ks->valuestring, (unsigned char *)key, ETCD_KEY_MAX) : -1;
        if (kn <= (long)plen || (size_t)kn - plen > AXD_LEASE_NODE_MAX || memchr(key + plen, 0, (size_t)kn - plen))
            continue;
        char *slot = buf + k * MEMBER_SLOT, *rec = slot + AXD_LEASE_NODE_MAX + 1;
        long rn = kv_value(kv, rec, AXD_MEMBER_RECORD_MAX + 1);
        if (rn < 0)
            continue;
        memcpy(slot, key + plen, (size_t)kn - plen);
        m[k] = (axd_member){.name = slot, .name_len = (size_t)kn - plen, .record = rec, .record_len = (size_t)rn};
        k++;
    }
    *mout = m;
    *bout = buf;
    return k;
}

static void mlist_step(eop *q, int status, cJSON *resp)
{
    if (status) {
        member_answer(q, status, NULL, 0);
        return;
    }
    axd_member *m;
    char *buf;
    size_t k = decode_members(resp, strlen(q->st->prefix) + strlen("member/"), &m, &buf);
    member_answer(q, AX_OK, m, k);
    ax_free(m);
    ax_free(buf);
}

static int es_member_list(axd_lease_store *s, axd_member_cb cb, void *ud)
{
    etcd_store *st = (etcd_store *)s;
    if (st->freeing)
        return AX_ECANCELED;
    eop *q = op_new(st, OP_MLIST, 0);
    q->mcb = cb;
    q->ud = ud;
    char k[ETCD_KEY_MAX], end[ETCD_KEY_MAX];
    snprintf(k, sizeof k, "%smember/", st->prefix);
    snprintf(end, sizeof end, "%s", k);
    end[strlen(end) - 1]++; /* "member/" -> "member0": the range of every key under the prefix */
    cJSON *b = cJSON_CreateObject();
    cJSON_AddItemToObject(b, "key", key_item(k));
    cJSON_AddItemToObject(b, "range_end", key_item(end));
    int rc = post(q, "/v3/kv/range", b);
    if (rc) {
        op_free(q);
        return rc;
    }
    return 0;
}

/* ---- keyed state: records fenced by the lease key, per shard in call order ---- */

/* The record's key: <prefix>state/<n>/<name bytes> (names hold a NUL: keys are bytes). */
static cJSON *state_key(const etcd_store *st, uint32_t shard, const char *name, size_t nlen, int prefix_end)
{
    char head[ETCD_KEY_MAX];
    int hl = snprintf(head, sizeof head, "%sstate/%" PRIu32 "/", st->prefix, shard);
    size_t n = (size_t)hl + nlen;
    char *k = ax_malloc(n + 1);
    memcpy(k, head, (size_t)hl);
    if (nlen)
        memcpy(k + hl, name, nlen);
    if (prefix_end) /* the end of the range of every record of the shard: "/" + 1 */
        k[hl - 1]++;
    cJSON *item = b64(k, n);
    ax_free(k);
    return item;
}

static cJSON *state_count(const etcd_store *st, uint32_t shard)
{
    cJSON *r = cJSON_CreateObject(), *o = cJSON_AddObjectToObject(r, "request_range");
    cJSON_AddItemToObject(o, "key", state_key(st, shard, NULL, 0, 0));
    cJSON_AddItemToObject(o, "range_end", state_key(st, shard, NULL, 0, 1));
    cJSON_AddBoolToObject(o, "count_only", 1);
    return r;
}

/* One transaction: if the lease key holds q's epoch, the load, put or delete of the
 * record, and the shard's record count. */
static int send_state(eop *q)
{
    etcd_store *st = q->st;
    /* a live lease of a node: the quarantine's (owner "") may stand at an epoch once granted */
    cJSON *succ, *t = txn_holder(st, q->shard, q->epoch, NULL, &succ);
    cJSON *one = cJSON_CreateObject();
    cJSON *o = cJSON_AddObjectToObject(one, q->op == OP_SLOAD ? "request_range"
                                            : q->del          ? "request_delete_range"
                                                              : "request_put");
    cJSON_AddItemToObject(o, "key", state_key(st, q->shard, q->sname, q->sname_len, 0));
    if (q->op == OP_SWRITE && !q->del)
        cJSON_AddItemToObject(o, "value", b64(q->record ? q->record : "", q->record_len));
    cJSON_AddItemToArray(succ, one);
    cJSON_AddItemToArray(succ, state_count(st, q->shard));
    return post(q, "/v3/kv/txn", t);
}

static void state_answer(eop *q, int status, int found, const void *data, size_t len, int64_t records)
{
    etcd_store *st = q->st;
    uint32_t shard = q->shard;
    axd_state_result r = {.status = status, .found = found, .data = data, .len = len, .records = records};
    axd_state_cb cb = q->scb;
    void *ud = q->ud;
    st->sq_head[shard] = q->qnext;
    if (!q->qnext)
        st->sq_tail[shard] = NULL;
    op_free(q);
    if (cb)
        cb(ud, shard, &r);
    /* then the shard's next state operation (freeing answers them all itself) */
    if (st->freeing || !(q = st->sq_head[shard]))
        return;
    int rc = send_state(q);
    if (rc)
        state_answer(q, rc, 0, NULL, 0, -1); /* answers it and goes on to the next */
}

/* A state transaction's answer: AX_ESTALE (fenced), AX_EPROTO (a value that is not
 * base64), AX_ENOMEM, or AX_OK with the record count (-1 unknown) and, for a load, the
 * record (*data, the caller's to free; NULL when there is none). */
static int decode_state(const cJSON *resp, int load, int *found, unsigned char **data, size_t *len, int64_t *records)
{
    *found = 0;
    *data = NULL;
    *len = 0;
    *records = -1;
    if (!txn_ok(resp)) /* the lease key does not hold this epoch: fenced */
        return AX_ESTALE;
    const cJSON *rs = cJSON_GetObjectItemCaseSensitive(resp, "responses");
    const cJSON *cnt = cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(rs, 1), "response_range");
    *records = cnt ? i64_of(cnt, "count") : -1;
    if (*records < -1)
        *records = -1;
    const cJSON *kv = load ? txn_kv(resp, 0) : NULL;
    if (!kv)
        return AX_OK;
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(kv, "value");
    const char *b = cJSON_IsString(v) ? v->valuestring : "";
    size_t cap = strlen(b) / 4 * 3 + 3;
    unsigned char *d = ax_try_malloc(cap);
    long n = d ? unb64(b, d, cap) : -1;
    if (n < 0 || (size_t)n > AXD_STATE_VALUE_MAX) {
        int rc = d ? AX_EPROTO : AX_ENOMEM;
        ax_free(d);
        *records = -1;
        return rc;
    }
    *found = 1;
    *data = d;
    *len = (size_t)n;
    return AX_OK;
}

static void state_step(eop *q, int status, cJSON *resp)
{
    if (status) {
        state_answer(q, status, 0, NULL, 0, -1);
        return;
    }
    int found;
    unsigned char *data;
    size_t len;
    int64_t records;
    int rc = decode_state(resp, q->op == OP_SLOAD, &found, &data, &len, &records);
    state_answer(q, rc, found, data, len, records);
    ax_free(data);
}

static int state_enqueue(etcd_store *st, int op, uint32_t shard, uint64_t epoch, const char *name, size_t nlen,
                         const void *data, size_t n, int del, axd_state_cb cb, void *ud)
{
    if (st->freeing)
        return AX_ECANCELED;
    if (axd_state_check(&st->base, shard, epoch, nlen, n) || !name || (n && !data))
        return AX_EINVAL;
    eop *q = op_new(st, op, shard);
    q->epoch = epoch;
    q->sname = ax_malloc(nlen);
    memcpy(q->sname, name, nlen);
    q->sname_len = nlen;
    if (n) {
        q->record = ax_try_malloc(n);
        if (!q->record) {
            op_free(q);
            return AX_ENOMEM;
        }
        memcpy(q->record, data, n);
    }
    q->record_len = n;
    q->del = del;
    q->scb = cb;
    q->ud = ud;
    if (st->sq_tail[shard]) { /* after the shard's earlier ones */
        st->sq_tail[shard]->qnext = q;
        st->sq_tail[shard] = q;
        return 0;
    }
    int rc = send_state(q);
    if (rc) {
        op_free(q);
        return rc;
    }
    st->sq_head[shard] = st->sq_tail[shard] = q;
    return 0;
}

static int es_state_load(axd_lease_store *s, uint32_t shard, uint64_t epoch, const char *name, size_t nlen,
                         axd_state_cb cb, void *ud)
{
    return state_enqueue((etcd_store *)s, OP_SLOAD, shard, epoch, name, nlen, NULL, 0, 0, cb, ud);
}

static int es_state_write(axd_lease_store *s, uint32_t shard, uint64_t epoch, const char *name, size_t nlen,
                          const void *data, size_t n, int del, axd_state_cb cb, void *ud)
{
    return state_enqueue((etcd_store *)s, OP_SWRITE, shard, epoch, name, nlen, data, n, del, cb, ud);
}

static void op_step(eop *q, int status, cJSON *resp)
{
    switch (q->op) {
    case OP_ACQUIRE: acquire_step(q, status, resp); break;
    case OP_RENEW: renew_step(q, status, resp); break;
    case OP_RELEASE: release_step(q, status, resp); break;
    case OP_GET: get_step(q, status, resp); break;
    case OP_MPUT:
        if (!status && q->step == 0)
            q->lease_id = i64_of(resp, "ID"), mput_note_lease(q);
        mput_step(q, status, resp);
        break;
    case OP_MDEL: mdel_step(q, status, resp); break;
    case OP_MLIST: mlist_step(q, status, resp); break;
    case OP_SLOAD:
    case OP_SWRITE: state_step(q, status, resp); break;
    default: op_free(q);
    }
}

static void es_state(axd_lease_store *s, axd_lease_state *out)
{
    etcd_store *st = (etcd_store *)s;
    memset(out, 0, sizeof *out);
    out->store = "etcd";
    out->conn = st->ok_now ? "connected" : st->ok_once ? "reconnecting" : "connecting";
    out->last_error = st->last_error;
    out->ops = st->n_ops;
    out->errors = st->n_errors;
    out->reconnects = st->n_failovers;
}

static void es_free(axd_lease_store *s)
{
    etcd_store *st = (etcd_store *)s;
    st->freeing = 1;
    while (st->ops) {
        eop *q = st->ops;
        if (q->easy) {
            curl_multi_remove_handle(st->multi, q->easy);
            curl_easy_cleanup(q->easy);
            curl_slist_free_all(q->hdrs);
            q->easy = NULL;
        }
        if (q->op <= OP_GET) {
            lease_answer(q, AX_ECANCELED, 0, "", 0, -1);
        } else if (q->op <= OP_MLIST) {
            if (q->op != OP_MLIST) { /* each queued one is on the list too: answered in its turn */
                q->qnext = NULL;
                st->mq_head = st->mq_tail = q;
            }
            member_answer(q, AX_ECANCELED, NULL, 0);
        } else if (q->op <= OP_SWRITE) {
            q->qnext = NULL; /* each queued one is on the list too: answered in its turn */
            st->sq_head[q->shard] = q;
            state_answer(q, AX_ECANCELED, 0, NULL, 0, -1);
        } else {
            op_free(q);
        }
    }
    ev_timer_stop(st->loop, &st->timer);
    curl_multi_cleanup(st->multi);
    for (int i = 0; i < st->n_endpoints; i++)
        ax_free(st->endpoints[i]);
    ax_free(st->cacert);
    ax_free(st->cert);
    ax_free(st->key);
    ax_free(st->user);
    if (st->password) {
        memset(st->password, 0, strlen(st->password));
        ax_free(st->password);
    }
    ax_free(st->token);
    ax_free(st->shard_lease);
    ax_free(st->sq_head);
    ax_free(st->sq_tail);
    ax_free(st);
}

static const axd_lease_ops etcd_ops = {
    .acquire = es_acquire,
    .renew = es_renew,
    .release = es_release,
    .get = es_get,
    .get_with_ttl = es_get_with_ttl,
    .state = es_state,
    .state_load = es_state_load,
    .state_write = es_state_write,
    .member_put = es_member_put,
    .member_del = es_member_del,
    .member_list = es_member_list,
    .free = es_free,
};

static char *dup_or_null(const char *s) { return s && *s ? ax_strdup(s) : NULL; }

int axd_lease_etcd_check(const axd_lease_etcd_cfg *cfg, char *err, size_t errlen)
{
    return axd_config_check_etcd(cfg->endpoints, cfg->cert, cfg->key, err, errlen);
}

axd_lease_store *axd_lease_etcd_new(struct ev_loop *loop, uint32_t n_shards, const axd_lease_etcd_cfg *cfg, char *err,
                                    size_t errlen)
{
    if (axd_lease_etcd_check(cfg, err, errlen) != 0)
        return NULL;
    if (!n_shards) {
        snprintf(err, errlen, "no shards");
        return NULL;
    }
    static int curl_ready;
    if (!curl_ready) { /* once, before any thread could call libcurl */
        curl_global_init(CURL_GLOBAL_DEFAULT);
        curl_ready = 1;
    }
    etcd_store *st = ax_calloc(1, sizeof *st);
    st->base.ops = &etcd_ops;
    st->base.n_shards = n_shards;
    st->loop = loop;
    st->timeout_ms = cfg->timeout_ms ? cfg->timeout_ms : 2000;
    snprintf(st->prefix, sizeof st->prefix, "%s", cfg->prefix ? cfg->prefix : "axactor/");
    st->cacert = dup_or_null(cfg->cacert);
    st->cert = dup_or_null(cfg->cert);
    st->key = dup_or_null(cfg->key);
    st->user = dup_or_null(cfg->user);
    st->password = dup_or_null(cfg->password);
    for (const char *p = cfg->endpoints; *p;) {
        size_t len = strcspn(p, ",");
        char *e = ax_malloc(len + 1);
        memcpy(e, p, len);
        e[len] = 0;
        st->endpoints[st->n_endpoints++] = e;
        p += len;
        if (*p == ',')
            p++;
    }
    st->shard_lease = ax_calloc(n_shards, sizeof *st->shard_lease);
    st->sq_head = ax_calloc(n_shards, sizeof *st->sq_head);
    st->sq_tail = ax_calloc(n_shards, sizeof *st->sq_tail);
    st->multi = curl_multi_init();
    curl_multi_setopt(st->multi, CURLMOPT_SOCKETFUNCTION, multi_sock);
    curl_multi_setopt(st->multi, CURLMOPT_SOCKETDATA, st);
    curl_multi_setopt(st->multi, CURLMOPT_TIMERFUNCTION, multi_timer);
    curl_multi_setopt(st->multi, CURLMOPT_TIMERDATA, st);
    ev_timer_init(&st->timer, timer_cb, 0., 0.);
    st->timer.data = st;
    return &st->base;
}

int axd_lease_etcd_decode(const char *json, size_t len, axd_lease_etcd_decoded *out)
{
    memset(out, 0, sizeof *out);
    cJSON *doc = cJSON_ParseWithLength(json, len);
    if (!cJSON_IsObject(doc)) {
        cJSON_Delete(doc);
        return AX_EPROTO;
    }
    shard_read sr;
    decode_shard(doc, &sr);
    out->held = sr.has_lease;
    out->epoch = sr.held;
    out->last = sr.last;
    out->owner_len = strlen(sr.owner);
    memcpy(out->owner, sr.owner, out->owner_len + 1);
    out->ttl_ms = holder_ttl_ms(doc);
    out->alive = keepalive_alive(doc);
    out->txn_ok = txn_ok(doc);
    out->lease_id = i64_of(doc, "ID");
    for (int load = 0; load < 2; load++) {
        unsigned char *data;
        int found;
        size_t n;
        int64_t records;
        out->state_status[load] = decode_state(doc, load, &found, &data, &n, &records);
        if (found) {
            out->state_len = n;
            volatile unsigned char sink = 0;
            for (size_t i = 0; i < n; i++) /* the bytes are really there */
                sink ^= data[i];
            (void)sink;
        }
        out->state_records = records;
        ax_free(data);
    }
    axd_member *m;
    char *buf;
    out->n_members = decode_members(doc, strlen("axactor/member/"), &m, &buf);
    for (size_t i = 0; i < out->n_members; i++)
        if (m[i].name_len > AXD_LEASE_NODE_MAX || m[i].record_len > AXD_MEMBER_RECORD_MAX ||
            memchr(m[i].name, 0, m[i].name_len))
            out->bad_member = 1;
    ax_free(m);
    ax_free(buf);
    cJSON_Delete(doc);
    return AX_OK;
}
