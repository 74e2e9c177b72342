/* Cluster-wide status (client frame CLUSTER_STATUS, `axctl status --cluster`): ask every
 * peer that is up for its status document (STATUS_REQ), gather the answers (STATUS) for
 * at most AXD_CL_STATUS_WAIT_MS, and hand them to the front end, which adds its own and
 * the sums. The documents come from the status source the composition root installs. */
#include <cjson/cJSON.h>
#include <string.h>

#include "ax_mem.h"
#include "cluster_int.h"
#include "log.h"

#define AXD_CL_STATUS_WAIT_MS 2000
#define AXD_CL_STATUS_QUERIES_MAX 16

struct axd_cl_query {
    uint64_t req;
    axd_cluster *cl;
    ev_timer timer;
    cJSON *nodes; /* one entry per known peer */
    int waiting;  /* entries still without an answer */
    axd_cluster_status_cb cb;
    void *ud;
    axd_cl_query *next;
};

void axd_cluster_set_status_source(axd_cluster *cl, axd_cluster_status_src src, void *ud)
{
    if (!cl)
        return;
    cl->status_src = src;
    cl->status_ud = ud;
}

static void query_unlink(axd_cluster *cl, axd_cl_query *q)
{
    for (axd_cl_query **pp = &cl->queries; *pp; pp = &(*pp)->next)
        if (*pp == q) {
            *pp = q->next;
            cl->n_queries--;
            return;
        }
}

/* Answer the front end with what arrived (nodes NULL: the cluster is stopping). */
static void query_finish(axd_cluster *cl, axd_cl_query *q, int canceled)
{
    ev_timer_stop(cl->s->loop, &q->timer);
    query_unlink(cl, q);
    cJSON *nodes = q->nodes;
    q->nodes = NULL;
    if (canceled) {
        cJSON_Delete(nodes);
        nodes = NULL;
    }
    q->cb(q->ud, nodes);
    ax_free(q);
}

static void query_timeout(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    axd_cl_query *q = w->data;
    query_finish(q->cl, q, 0);
}

static cJSON *entry(cJSON *nodes, const char *node, const char *error)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "node", node);
    if (error)
        cJSON_AddStringToObject(o, "error", error);
    cJSON_AddItemToArray(nodes, o);
    return o;
}

int axd_cluster_gather_status(axd_cluster *cl, axd_cluster_status_cb cb, void *ud)
{
    if (!cl)
        return AX_EINVAL;
    if (cl->stopping)
        return AX_ECANCELED;
    if (cl->n_queries >= AXD_CL_STATUS_QUERIES_MAX)
        return AX_EBUSY;
    axd_cl_query *q = ax_malloc(sizeof *q);
    memset(q, 0, sizeof *q);
    q->cl = cl;
    q->cb = cb;
    q->ud = ud;
    q->req = ++cl->next_status_req;
    q->nodes = cJSON_CreateArray();
    char late[64];
    snprintf(late, sizeof late, "no answer within %d ms", AXD_CL_STATUS_WAIT_MS);
    ax_peer_rec r = {.req = q->req};
    for (axd_cl_node *nd = cl->nodes; nd; nd = nd->next) {
        if (nd->gone && nd->state != NS_UP)
            continue; /* a member that left */
        if (nd->state != NS_UP || !nd->inc || nd->inc->down) {
            entry(q->nodes, nd->name, "not connected");
        } else if (!(nd->features & AX_PEER_FEAT_STATUS)) {
            entry(q->nodes, nd->inc->wire_id, "peer does not support cluster status (an older version)");
        } else if (axd_cl_queue(cl, nd->inc, AX_PT_STATUS_REQ, &r) != 0) {
            entry(q->nodes, nd->inc->wire_id, "its link's queue is full");
        } else {
            cJSON_AddBoolToObject(entry(q->nodes, nd->inc->wire_id, late), "waiting", 1);
            q->waiting++;
            axd_cl_flush_node(cl, nd);
        }
    }
    q->next = cl->queries;
    cl->queries = q;
    cl->n_queries++;
    if (!q->waiting) {
        query_finish(cl, q, 0);
        return 0;
    }
    ev_timer_init(&q->timer, query_timeout, AXD_CL_STATUS_WAIT_MS / 1000.0, 0.);
    q->timer.data = q;
    ev_timer_start(cl->s->loop, &q->timer);
    return 0;
}

void axd_cl_on_status_req(axd_cluster *cl, axd_cl_inc *inc, const ax_peer_rec *r)
{
    if (!cl->status_src)
        return;
    cJSON *doc = cl->status_src(cl->status_ud);
    char *text = doc ? cJSON_PrintUnformatted(doc) : NULL;
    cJSON_Delete(doc);
    if (!text)
        return;
    ax_peer_rec a = {.req = r->req, .payload = text, .payload_len = strlen(text)};
    int rc = axd_cl_queue(cl, inc, AX_PT_STATUS, &a);
    if (rc)
        axd_log(AX_LOG_WARN, "cluster", "cannot answer %s's status request: %s", inc->wire_id, ax_strerror(rc));
    else
        axd_cl_flush_node(cl, inc->node);
    cJSON_free(text);
}

void axd_cl_on_status(axd_cluster *cl, axd_cl_inc *inc, const ax_peer_rec *r)
{
    axd_cl_query *q = cl->queries;
    while (q && q->req != r->req)
        q = q->next;
    if (!q)
        return; /* late: the query was answered without it */
    cJSON *e = NULL, *it;
    cJSON_ArrayForEach(it, q->nodes)
    {
        const cJSON *n = cJSON_GetObjectItemCaseSensitive(it, "node");
        if (cJSON_IsString(n) && !strcmp(n->valuestring, inc->wire_id) &&
            cJSON_GetObjectItemCaseSensitive(it, "waiting")) {
            e = it;
            break;
        }
    }
    if (!e)
        return; /* not asked, or answered twice */
    cJSON_DeleteItemFromObjectCaseSensitive(e, "waiting");
    cJSON_DeleteItemFromObjectCaseSensitive(e, "error");
    cJSON *doc = cJSON_ParseWithLength(r->payload, r->payload_len);
    if (cJSON_IsObject(doc)) {
        cJSON_AddItemToObject(e, "status", doc);
    } else {
        cJSON_Delete(doc);
        cJSON_AddStringToObject(e, "error", "malformed status");
        axd_log(AX_LOG_WARN, "cluster", "%s answered a status request with a document that does not parse",
                inc->wire_id);
    }
    if (--q->waiting == 0)
        query_finish(cl, q, 0);
}

void axd_cl_status_stop(axd_cluster *cl)
{
    while (cl->queries)
        query_finish(cl, cl->queries, 1);
}
