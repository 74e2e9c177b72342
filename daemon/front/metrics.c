/* Prometheus text exposition of a node (metrics.h): every number of `axctl status`, the
 * shards (state, epoch, actors), the peers (up, RTT, bytes), mailbox depth and latency
 * histograms (client asks, handlers, handovers, messages waiting for a shard's owner,
 * heartbeat round trips). libmicrohttpd serves it: its connection limits and timeouts are
 * what a hostile client meets; the handler asks worker 0 (ev_async) and waits, bounded. */
#include "metrics.h"

#include <arpa/inet.h>
#include <cjson/cJSON.h>
#include <ev.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ax_mem.h"
#include "histo.h"
#include "log.h"
#include "shard.h"

#define SCRAPE_WAIT_S 5    /* a scrape waits this long for worker 0 before a 503 */
#define HTTP_CONN_LIMIT 16 /* concurrent HTTP connections */
#define HTTP_CONN_TIMEOUT 10

struct axd_metrics {
    axd_front *front;
    struct MHD_Daemon *mhd;
    ev_async wake;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    uint64_t want, done; /* scrape requests made / composed (under mu) */
    char *text;          /* the last text composed (under mu) */
    size_t len;
    int stopping;
};

typedef struct prom {
    char *buf;
    size_t len, cap;
} prom;

#define P(pr, ...) axd_prom_printf(&(pr)->buf, &(pr)->len, &(pr)->cap, __VA_ARGS__)

/* A metric name from a JSON path: [a-zA-Z0-9_] only. */
static void name_of(char *out, size_t n, const char *a, const char *b, const char *suffix)
{
    snprintf(out, n, "axactor_%s%s%s%s", a, b && *b ? "_" : "", b ? b : "", suffix ? suffix : "");
    for (char *p = out; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') || *p == '_'))
            *p = '_';
}

/* A label value, escaped as the text format wants (\\, \", \n). */
static void label_esc(char *out, size_t n, const char *v)
{
    size_t k = 0;
    for (; v && *v && k + 3 < n; v++) {
        if (*v == '\\' || *v == '"') {
            out[k++] = '\\';
            out[k++] = *v;
        } else if (*v == '\n') {
            out[k++] = '\\';
            out[k++] = 'n';
        } else {
            out[k++] = *v;
        }
    }
    out[k] = 0;
}

/* Cumulative values in the status objects besides "counters" (they get _total). */
static int cumulative(const char *k)
{
    static const char *const names[] = {"loads", "loads_found", "load_errors", "writes",  "deletes",
                                        "write_bytes", "write_errors", "fenced", "unchanged", "ops",
                                        "errors", "reconnects", "regressions", "delivered", NULL};
    for (int i = 0; names[i]; i++)
        if (!strcmp(k, names[i]))
            return 1;
    return 0;
}

static void one(prom *pr, const char *name, const char *type, const char *help, double v)
{
    axd_prom_head(&pr->buf, &pr->len, &pr->cap, name, type, help);
    P(pr, "%s %.17g\n", name, v);
}

/* Every number of the status document: counters as counters, the rest as gauges. */
static void status_metrics(prom *pr, cJSON *st)
{
    char name[160], lab[256];
    cJSON *it, *v;
    label_esc(lab, sizeof lab, cJSON_GetStringValue(cJSON_GetObjectItem(st, "node")));
    char ver[64];
    label_esc(ver, sizeof ver, cJSON_GetStringValue(cJSON_GetObjectItem(st, "version")));
    axd_prom_head(&pr->buf, &pr->len, &pr->cap, "axactor_info", "gauge", "the node's wire id and version");
    P(pr, "axactor_info{node=\"%s\",version=\"%s\"} 1\n", lab, ver);
    cJSON_ArrayForEach(it, st)
    {
        if (cJSON_IsNumber(it) && strcmp(it->string, "pid")) {
            if (!strcmp(it->string, "uptime_s"))
                one(pr, "axactor_uptime_seconds", "gauge", "seconds since the daemon started", it->valuedouble);
            else {
                name_of(name, sizeof name, it->string, NULL, NULL);
                one(pr, name, "gauge", "axctl status: the same number", it->valuedouble);
            }
        } else if (cJSON_IsObject(it)) {
            int counters = !strcmp(it->string, "counters");
            cJSON_ArrayForEach(v, it)
            {
                if (cJSON_IsNumber(v)) {
                    int c = counters || cumulative(v->string);
                    name_of(name, sizeof name, counters ? "" : it->string, v->string, c ? "_total" : NULL);
                    if (counters) /* axactor_<counter>_total, not axactor__<counter> */
                        name_of(name, sizeof name, v->string, NULL, "_total");
                    one(pr, name, c ? "counter" : "gauge", "axctl status: the same number", v->valuedouble);
                } else if (cJSON_IsString(v) && (!strcmp(v->string, "state") || !strcmp(v->string, "type"))) {
                    /* a state as a labelled 1: lease_store state="connected", drain state="draining" */
                    name_of(name, sizeof name, it->string, v->string, NULL);
                    label_esc(lab, sizeof lab, v->valuestring);
                    axd_prom_head(&pr->buf, &pr->len, &pr->cap, name, "gauge", "axctl status: the value as a label");
                    P(pr, "%s{%s=\"%s\"} 1\n", name, v->string, lab);
                }
            }
        } else if (cJSON_IsArray(it) && !strcmp(it->string, "per_worker")) {
            const char *fields[] = {"actors", "keyed_actors", "delivered", "xw_full", "xw_dropped", NULL};
            for (int f = 0; fields[f]; f++) {
                int c = strcmp(fields[f], "actors") && strcmp(fields[f], "keyed_actors");
                name_of(name, sizeof name, "worker", fields[f], c ? "_total" : NULL);
                axd_prom_head(&pr->buf, &pr->len, &pr->cap, name, c ? "counter" : "gauge", "per worker thread");
                cJSON_ArrayForEach(v, it)
                {
                    cJSON *w = cJSON_GetObjectItem(v, "worker"), *x = cJSON_GetObjectItem(v, fields[f]);
                    if (cJSON_IsNumber(w) && cJSON_IsNumber(x))
                        P(pr, "%s{worker=\"%d\"} %.17g\n", name, (int)w->valuedouble, x->valuedouble);
                }
            }
        }
    }
}

/* Per shard: is it served here, its epoch (the last known one), its actors here. */
static void shard_metrics(prom *pr, cJSON *doc)
{
    cJSON *arr = cJSON_GetObjectItem(doc, "shards"), *sh;
    if (!cJSON_IsArray(arr))
        return;
    static const struct {
        const char *name, *field, *help;
    } cols[] = {
        {"axactor_shard_owned", NULL, "1 while this node serves the shard (holds its lease)"},
        {"axactor_shard_epoch", "epoch", "the shard's epoch: this node's if it serves it, else the last known"},
        {"axactor_shard_actors", "actors", "keyed actors of the shard on this node"},
    };
    for (size_t c = 0; c < sizeof cols / sizeof cols[0]; c++) {
        axd_prom_head(&pr->buf, &pr->len, &pr->cap, cols[c].name, "gauge", cols[c].help);
        cJSON_ArrayForEach(sh, arr)
        {
            cJSON *k = cJSON_GetObjectItem(sh, "shard");
            if (!cJSON_IsNumber(k))
                continue;
            double v;
            if (!cols[c].field) {
                v = !strcmp(cJSON_GetStringValue(cJSON_GetObjectItem(sh, "state")) ?: "", "owned");
            } else {
                cJSON *x = cJSON_GetObjectItem(sh, cols[c].field);
                if (!cJSON_IsNumber(x))
                    continue;
                v = x->valuedouble;
            }
            P(pr, "%s{shard=\"%d\"} %.17g\n", cols[c].name, (int)k->valuedouble, v);
        }
    }
    static const char *const totals[] = {"acquired_total", "lost_total", "renew_errors", "stall_losses",
                                         "handovers", NULL};
    char name[96];
    for (int i = 0; totals[i]; i++) {
        cJSON *x = cJSON_GetObjectItem(doc, totals[i]);
        if (!cJSON_IsNumber(x))
            continue;
        size_t n = strlen(totals[i]);
        int has = n > 6 && !strcmp(totals[i] + n - 6, "_total");
        snprintf(name, sizeof name, "axactor_shards_%s%s", totals[i], has ? "" : "_total");
        one(pr, name, "counter", "the lease manager (axctl shards --json)", x->valuedouble);
    }
    cJSON *ln = cJSON_GetObjectItem(doc, "live_nodes");
    if (cJSON_IsNumber(ln))
        one(pr, "axactor_live_nodes", "gauge", "nodes counted in the fair share, this one included", ln->valuedouble);
}

/* Per peer: up, draining, reaches the store, RTT, bytes and frames. */
static void peer_metrics(prom *pr, cJSON *doc)
{
    cJSON *arr = cJSON_GetObjectItem(doc, "peers"), *p;
    if (!cJSON_IsArray(arr) || !cJSON_GetArraySize(arr))
        return;
    static const struct {
        const char *name, *field, *type, *help;
    } cols[] = {
        {"axactor_peer_up", "state", "gauge", "1 while the peer's session is up"},
        {"axactor_peer_draining", "draining", "gauge", "1 while the peer drains"},
        {"axactor_peer_store_ok", "store_ok", "gauge", "1 while the peer reaches the lease store"},
        {"axactor_peer_rtt_seconds", "rtt_ms", "gauge", "the last heartbeat round trip"},
        {"axactor_peer_received_bytes_total", "bytes_in", "counter", "bytes received from the peer"},
        {"axactor_peer_sent_bytes_total", "bytes_out", "counter", "bytes sent to the peer"},
        {"axactor_peer_received_frames_total", "frames_in", "counter", "frames received from the peer"},
        {"axactor_peer_sent_frames_total", "frames_out", "counter", "frames sent to the peer"},
        {"axactor_peer_auth_failures_total", "auth_failures", "counter", "failed handshakes with the peer"},
        {"axactor_peer_queued_bytes", "queued_bytes", "gauge", "bytes waiting to be sent to the peer"},
    };
    char lab[160];
    for (size_t c = 0; c < sizeof cols / sizeof cols[0]; c++) {
        axd_prom_head(&pr->buf, &pr->len, &pr->cap, cols[c].name, cols[c].type, cols[c].help);
        cJSON_ArrayForEach(p, arr)
        {
            label_esc(lab, sizeof lab, cJSON_GetStringValue(cJSON_GetObjectItem(p, "name")));
            cJSON *x = cJSON_GetObjectItem(p, cols[c].field);
            double v;
            if (cJSON_IsString(x))
                v = !strcmp(x->valuestring, "up");
            else if (cJSON_IsBool(x))
                v = cJSON_IsTrue(x);
            else if (cJSON_IsNumber(x))
                v = !strcmp(cols[c].field, "rtt_ms") ? x->valuedouble / 1000.0 : x->valuedouble;
            else
                continue;
            P(pr, "%s{peer=\"%s\"} %.17g\n", cols[c].name, lab, v);
        }
    }
}

static void histo(prom *pr, const char *name, const char *help, const char *labels, const axd_histo *h, int head)
{
    if (head)
        axd_prom_head(&pr->buf, &pr->len, &pr->cap, name, "histogram", help);
    axd_histo_prom(&pr->buf, &pr->len, &pr->cap, name, labels, h);
}

char *axd_metrics_text(axd_front *s, size_t *len)
{
    prom pr = {0};
    cJSON *st = axd_front_status_json(s);
    status_metrics(&pr, st);
    cJSON_Delete(st);
    axd_rt_metrics rm;
    axd_runtime_metrics(s->rt, &rm);
    one(&pr, "axactor_mailbox_messages", "gauge", "messages queued in every actor's mailboxes", (double)rm.mailbox_messages);
    one(&pr, "axactor_mailbox_depth_max", "gauge", "the deepest mailbox (messages)", rm.mailbox_max);
    histo(&pr, "axactor_client_ask_seconds", "client asks from request to answer (any outcome)", "", &rm.h_ask, 1);
    histo(&pr, "axactor_handler_seconds", "handler run time (one handler run in 8 is timed)", "", &rm.h_handler, 1);
    if (s->keyed && s->keyed->shards) {
        cJSON *sd = axd_route_shards_json(s->keyed, 1);
        shard_metrics(&pr, sd);
        cJSON_Delete(sd);
        histo(&pr, "axactor_handover_seconds",
              "this node's handovers: from the moment it stopped serving a shard to the store's answer to its release",
              "", axd_shards_handover_histo(s->keyed->shards), 1);
        histo(&pr, "axactor_owner_wait_seconds",
              "keyed messages routed here that had to wait for their shard's next owner (a failover or a handover), "
              "until sent and answered",
              "", &s->keyed->h_hold, 1);
    }
    if (s->cluster) {
        cJSON *nd = axd_cluster_nodes_json(s->rt, s->cluster);
        peer_metrics(&pr, nd);
        cJSON_Delete(nd);
        axd_cluster_rtt_metrics(s->cluster, &pr.buf, &pr.len, &pr.cap);
    }
    *len = pr.len;
    return pr.buf;
}

/* ---------------- HTTP ---------------- */

static void wake_cb(struct ev_loop *loop, ev_async *w, int revents)
{
    (void)loop;
    (void)revents;
    axd_metrics *m = w->data;
    pthread_mutex_lock(&m->mu);
    uint64_t target = m->want;
    int stop = m->stopping;
    pthread_mutex_unlock(&m->mu);
    if (stop || target == m->done)
        return;
    size_t len = 0;
    char *text = axd_metrics_text(m->front, &len); /* on worker 0, without the lock */
    pthread_mutex_lock(&m->mu);
    ax_free(m->text);
    m->text = text;
    m->len = len;
    m->done = target;
    pthread_cond_broadcast(&m->cv);
    pthread_mutex_unlock(&m->mu);
}

static enum MHD_Result reply(struct MHD_Connection *c, unsigned code, const char *type, char *body, size_t n)
{
    struct MHD_Response *r = MHD_create_response_from_buffer(n, body, MHD_RESPMEM_MUST_FREE);
    if (!r) {
        free(body);
        return MHD_NO;
    }
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type);
    enum MHD_Result rc = MHD_queue_response(c, code, r);
    MHD_destroy_response(r);
    return rc;
}

static enum MHD_Result reply_text(struct MHD_Connection *c, unsigned code, const char *msg)
{
    return reply(c, code, "text/plain; charset=utf-8", strdup(msg), strlen(msg));
}

/* libmicrohttpd's thread: GET (or HEAD) /metrics only. */
static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                                  const char *version, const char *upload, size_t *upload_size, void **req)
{
    (void)version, (void)upload;
    axd_metrics *m = cls;
    if (strcmp(method, MHD_HTTP_METHOD_GET) && strcmp(method, MHD_HTTP_METHOD_HEAD))
        return reply_text(c, MHD_HTTP_METHOD_NOT_ALLOWED, "only GET /metrics\n");
    if (*upload_size) { /* a GET with a body: not read, refused */
        *upload_size = 0;
        return MHD_YES;
    }
    if (!*req) { /* the headers are in; answer on the next call (no body to wait for) */
        *req = m;
        return MHD_YES;
    }
    if (strcmp(url, "/metrics"))
        return reply_text(c, MHD_HTTP_NOT_FOUND, "not found: the metrics are at /metrics\n");
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += SCRAPE_WAIT_S;
    pthread_mutex_lock(&m->mu);
    uint64_t mine = ++m->want;
    ev_async_send(m->front->loop, &m->wake);
    int late = 0;
    while (m->done < mine && !m->stopping && !late)
        late = pthread_cond_timedwait(&m->cv, &m->mu, &until) != 0;
    char *body = NULL;
    size_t n = 0;
    if (m->done >= mine && !m->stopping && m->text) {
        body = malloc(m->len ? m->len : 1);
        if (body) {
            memcpy(body, m->text, m->len);
            n = m->len;
        }
    }
    pthread_mutex_unlock(&m->mu);
    if (!body)
        return reply_text(c, MHD_HTTP_SERVICE_UNAVAILABLE,
                          late ? "the daemon did not compose its metrics in time\n" : "the daemon is stopping\n");
    return reply(c, MHD_HTTP_OK, "text/plain; version=0.0.4; charset=utf-8", body, n);
}

axd_metrics *axd_metrics_start(axd_front *s, const char *listen, char *err, size_t errlen)
{
    char host[256], port[8];
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD;
    if (axd_split_hostport(listen, host, sizeof host, port, sizeof port) != 0) {
        snprintf(err, errlen, "metrics.listen '%s': expected IP:port", listen);
        return NULL;
    }
    struct sockaddr_in *v4 = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)&ss;
    if (inet_pton(AF_INET, host, &v4->sin_addr) == 1) {
        v4->sin_family = AF_INET;
        v4->sin_port = htons((uint16_t)atoi(port));
    } else if (inet_pton(AF_INET6, host, &v6->sin6_addr) == 1) {
        v6->sin6_family = AF_INET6;
        v6->sin6_port = htons((uint16_t)atoi(port));
        flags |= MHD_USE_IPv6;
    } else {
        snprintf(err, errlen, "metrics.listen '%s': '%s' is not an IP address", listen, host);
        return NULL;
    }
    axd_metrics *m = ax_calloc(1, sizeof *m);
    m->front = s;
    pthread_mutex_init(&m->mu, NULL);
    pthread_cond_init(&m->cv, NULL);
    ev_async_init(&m->wake, wake_cb);
    m->wake.data = m;
    ev_async_start(s->loop, &m->wake);
    m->mhd = MHD_start_daemon(flags, 0, NULL, NULL, on_request, m, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss,
                              MHD_OPTION_CONNECTION_LIMIT, (unsigned)HTTP_CONN_LIMIT, MHD_OPTION_CONNECTION_TIMEOUT,
                              (unsigned)HTTP_CONN_TIMEOUT, MHD_OPTION_END);
    if (!m->mhd) {
        snprintf(err, errlen, "metrics.listen '%s': cannot listen there (in use, or not an address of this host)",
                 listen);
        ev_async_stop(s->loop, &m->wake);
        pthread_cond_destroy(&m->cv);
        pthread_mutex_destroy(&m->mu);
        ax_free(m);
        return NULL;
    }
    axd_log(AX_LOG_INFO, "metrics", "serving Prometheus metrics on http://%s/metrics", listen);
    return m;
}

void axd_metrics_stop(axd_metrics *m)
{
    if (!m)
        return;
    pthread_mutex_lock(&m->mu);
    m->stopping = 1; /* a scrape waiting for worker 0 (this thread) gets its 503 now */
    pthread_cond_broadcast(&m->cv);
    pthread_mutex_unlock(&m->mu);
    MHD_stop_daemon(m->mhd);
    ev_async_stop(m->front->loop, &m->wake);
    pthread_cond_destroy(&m->cv);
    pthread_mutex_destroy(&m->mu);
    ax_free(m->text);
    ax_free(m);
}
