/* The memory lease store: the embedded default for one node, and the store in-process
 * multi-node tests share. Same semantics as the Redis store (lease.h): time from the
 * loop, replies delivered from the loop (never inside the call), fault injection for
 * tests (cut a node off, delay replies). */
#include <math.h>
#include <string.h>

#include "ax_mem.h"
#include "hmap.h"
#include "lease.h"
#include "monotime.h"

typedef struct mem_shard {
    char *owner;     /* NULL: not held */
    uint64_t epoch;  /* last epoch granted; never goes down */
    double expires;  /* monotonic time (axd_mono_now) the lease ends */
    axd_hmap states; /* keyed state: name -> mem_rec */
} mem_shard;

typedef struct mem_rec {
    size_t nlen, len;
    char *name; /* owned; the map's key */
    void *data;
} mem_rec;

typedef struct mem_reply {
    struct mem_reply *next;
    double due;
    axd_lease_cb cb;
    void *ud;
    uint32_t shard;
    axd_lease_result r;
    char *owner; /* owned copy behind r.owner */
    axd_state_cb scb; /* a state operation's reply (then cb is NULL) */
    axd_state_result sr;
    void *sdata;      /* owned copy behind sr.data */
    axd_member_cb mcb; /* a membership operation's reply */
    int mstatus;
    axd_member *mv;   /* owned, with the strings */
    size_t mn;
} mem_reply;

typedef struct mem_member {
    char *name, *record;
    size_t record_len;
    double expires; /* axd_mono_now() */
} mem_member;

typedef struct mem_store {
    axd_lease_store base;
    struct ev_loop *loop;
    mem_shard *shards;
    mem_reply *head, *tail;
    ev_timer timer;
    uint32_t delay_ms;
    int cut_all, freeing;
    char **cut;
    size_t n_cut;
    uint64_t ops, errors;
    mem_member *members;
    size_t n_members;
} mem_store;

int axd_lease_check_node(const char *node)
{
    if (!node)
        return AX_EINVAL;
    size_t n = strlen(node);
    return n >= 1 && n <= AXD_LEASE_NODE_MAX ? 0 : AX_EINVAL;
}

static void mem_arm(mem_store *m)
{
    ev_timer_stop(m->loop, &m->timer);
    if (!m->head)
        return;
    double in = m->head->due - ev_now(m->loop);
    ev_timer_set(&m->timer, in > 0 ? in : 0, 0);
    ev_timer_start(m->loop, &m->timer);
}

static void mem_reply_free(mem_reply *r)
{
    for (size_t i = 0; i < r->mn; i++) {
        ax_free((char *)r->mv[i].name);
        ax_free((char *)r->mv[i].record);
    }
    ax_free(r->mv);
    ax_free(r->owner);
    ax_free(r->sdata);
    ax_free(r);
}

static void mem_timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    mem_store *m = w->data;
    double now = ev_now(loop);
    size_t budget = 0;

    /* Only replies queued before this run: a callback that retries at once must not
     * keep this loop spinning. */
    for (mem_reply *r = m->head; r; r = r->next)
        budget++;
    while (budget-- && m->head && m->head->due <= now) {
        mem_reply *r = m->head;
        m->head = r->next;
        if (!m->head)
            m->tail = NULL;
        if (r->mcb)
            r->mcb(r->ud, r->mstatus, r->mv, r->mn);
        else if (r->scb)
            r->scb(r->ud, r->shard, &r->sr);
        else
            r->cb(r->ud, r->shard, &r->r);
        mem_reply_free(r);
    }
    mem_arm(m);
}

/* Queue a reply (kept sorted by due time, FIFO among equals). */
static void mem_reply_insert(mem_store *m, mem_reply *r, int status);
static void mem_reply_queue(mem_store *m, uint32_t shard, axd_lease_cb cb, void *ud, const axd_lease_result *res)
{
    mem_reply *r = ax_calloc(1, sizeof *r);
    r->cb = cb;
    r->ud = ud;
    r->shard = shard;
    r->r = *res;
    r->owner = ax_strndup(res->owner ? res->owner : "", res->owner ? res->owner_len : 0);
    r->r.owner = r->owner;
    r->r.owner_len = strlen(r->owner);
    mem_reply_insert(m, r, res->status);
}

static void mem_state_reply(mem_store *m, uint32_t shard, axd_state_cb cb, void *ud, const axd_state_result *res)
{
    mem_reply *r = ax_calloc(1, sizeof *r);
    r->scb = cb;
    r->ud = ud;
    r->shard = shard;
    r->sr = *res;
    if (res->found && res->len) {
        r->sdata = ax_malloc(res->len);
        memcpy(r->sdata, res->data, res->len);
    }
    r->sr.data = r->sdata;
    mem_reply_insert(m, r, res->status);
}

static void mem_reply_insert(mem_store *m, mem_reply *r, int status)
{
    mem_reply **pp = &m->head;
    r->due = ev_now(m->loop) + m->delay_ms / 1000.0;
    if (m->tail && m->tail->due <= r->due) /* the usual case: O(1) */
        pp = &m->tail->next;
    while (*pp && (*pp)->due <= r->due)
        pp = &(*pp)->next;
    r->next = *pp;
    *pp = r;
    if (!r->next)
        m->tail = r;
    m->ops++;
    if (status != AX_OK)
        m->errors++;
    if (m->head == r)
        mem_arm(m);
}

static int mem_is_cut(const mem_store *m, const char *node)
{
    if (m->cut_all)
        return 1;
    for (size_t i = 0; node && i < m->n_cut; i++)
        if (!strcmp(m->cut[i], node))
            return 1;
    return 0;
}

/* The shard with its lease expired lazily. */
static mem_shard *mem_shard_at(mem_store *m, uint32_t shard)
{
    mem_shard *s = &m->shards[shard];
    if (s->owner && axd_mono_now() >= s->expires) {
        ax_free(s->owner);
        s->owner = NULL;
    }
    return s;
}

static int64_t mem_ttl_left(mem_store *m, const mem_shard *s)
{
    return (int64_t)ceil((s->expires - axd_mono_now()) * 1000.0);
}

/* Common argument checks; on a cut node queues AX_ECONN and returns 1. */
static int mem_pre(mem_store *m, uint32_t shard, const char *node, int need_node, axd_lease_cb cb, void *ud,
                   int *rc)
{
    *rc = 0;
    if (m->freeing) {
        *rc = AX_ECANCELED;
        return 1;
    }
    if (!cb || shard >= m->base.n_shards || (need_node && axd_lease_check_node(node) != 0)) {
        *rc = AX_EINVAL;
        return 1;
    }
    if (mem_is_cut(m, need_node ? node : NULL)) {
        axd_lease_result r = {.status = AX_ECONN, .ttl_ms = -1};
        mem_reply_queue(m, shard, cb, ud, &r);
        return 1;
    }
    return 0;
}

static int mem_acquire(axd_lease_store *st, uint32_t shard, const char *node, uint32_t ttl_ms, uint64_t min_epoch,
                       axd_lease_cb cb, void *ud)
{
    mem_store *m = (mem_store *)st;
    int rc;
    if (!ttl_ms || min_epoch >= AXD_LEASE_EPOCH_MAX)
        return AX_EINVAL;
    if (mem_pre(m, shard, node, 1, cb, ud, &rc))
        return rc;
    mem_shard *s = mem_shard_at(m, shard);
    axd_lease_result r = {.status = AX_OK, .ttl_ms = -1};
    if (s->owner && strcmp(s->owner, node) != 0) {
        r.owner = s->owner;
        r.owner_len = strlen(s->owner);
        r.epoch = s->epoch;
        r.ttl_ms = mem_ttl_left(m, s);
    } else if (s->epoch < min_epoch) {
        /* the caller knows a newer epoch than this store: it went back in time; quarantine
         * the shard for one ttl (a lease granted before may still be served until then) */
        s->epoch = min_epoch;
        ax_free(s->owner);
        s->owner = ax_strdup("");
        s->expires = axd_mono_now() + ttl_ms / 1000.0;
        r.owner = "";
        r.owner_len = 0;
        r.epoch = min_epoch;
        r.ttl_ms = ttl_ms;
        r.behind = 1;
    } else {
        uint64_t e = (s->epoch > min_epoch ? s->epoch : min_epoch) + 1;
        if (e > AXD_LEASE_EPOCH_MAX) {
            r.status = AX_ETOOBIG;
        } else {
            ax_free(s->owner);
            s->owner = ax_strdup(node);
            s->epoch = e;
            s->expires = axd_mono_now() + ttl_ms / 1000.0;
            r.granted = 1;
            r.owner = node;
            r.owner_len = strlen(node);
            r.epoch = e;
            r.ttl_ms = ttl_ms;
        }
    }
    mem_reply_queue(m, shard, cb, ud, &r);
    return 0;
}

static int mem_renew(axd_lease_store *st, uint32_t shard, const char *node, uint64_t epoch, uint32_t ttl_ms,
                     axd_lease_cb cb, void *ud)
{
    mem_store *m = (mem_store *)st;
    int rc;
    if (!ttl_ms)
        return AX_EINVAL;
    if (mem_pre(m, shard, node, 1, cb, ud, &rc))
        return rc;
    mem_shard *s = mem_shard_at(m, shard);
    axd_lease_result r = {.status = AX_OK, .epoch = s->epoch, .ttl_ms = -1};
    if (s->owner && !strcmp(s->owner, node) && s->epoch == epoch) {
        s->expires = axd_mono_now() + ttl_ms / 1000.0;
        r.granted = 1;
        r.ttl_ms = ttl_ms;
    }
    mem_reply_queue(m, shard, cb, ud, &r);
    return 0;
}

static int mem_release(axd_lease_store *st, uint32_t shard, const char *node, uint64_t epoch, axd_lease_cb cb,
                       void *ud)
{
    mem_store *m = (mem_store *)st;
    int rc;
    if (mem_pre(m, shard, node, 1, cb, ud, &rc))
        return rc;
    mem_shard *s = mem_shard_at(m, shard);
    axd_lease_result r = {.status = AX_OK, .epoch = s->epoch, .ttl_ms = -1};
    if (s->owner && !strcmp(s->owner, node) && s->epoch == epoch) {
        ax_free(s->owner);
        s->owner = NULL;
        r.granted = 1;
    }
    mem_reply_queue(m, shard, cb, ud, &r);
    return 0;
}

static int mem_get(axd_lease_store *st, uint32_t shard, axd_lease_cb cb, void *ud)
{
    mem_store *m = (mem_store *)st;
    int rc;
    if (mem_pre(m, shard, NULL, 0, cb, ud, &rc))
        return rc;
    mem_shard *s = mem_shard_at(m, shard);
    axd_lease_result r = {.status = AX_OK, .epoch = s->epoch, .ttl_ms = -1};
    if (s->owner) {
        r.granted = 1;
        r.owner = s->owner;
        r.owner_len = strlen(s->owner);
        r.ttl_ms = mem_ttl_left(m, s);
    }
    mem_reply_queue(m, shard, cb, ud, &r);
    return 0;
}

int axd_state_check(const axd_lease_store *st, uint32_t shard, uint64_t epoch, size_t nlen, size_t n)
{
    return shard < st->n_shards && epoch && epoch <= AXD_LEASE_EPOCH_MAX && nlen && nlen <= AXD_STATE_NAME_MAX &&
                   n <= AXD_STATE_VALUE_MAX
               ? 0
               : AX_EINVAL;
}

/* The fence: is epoch the epoch of a live lease of the shard now? */
static int mem_fenced(mem_store *m, uint32_t shard, uint64_t epoch)
{
    mem_shard *s = mem_shard_at(m, shard);
    return !(s->owner && *s->owner && s->epoch == epoch);
}

static int mem_state_load(axd_lease_store *st, uint32_t shard, uint64_t epoch, const char *name, size_t nlen,
                          axd_state_cb cb, void *ud)
{
    mem_store *m = (mem_store *)st;
    if (m->freeing)
        return AX_ECANCELED;
    if (!cb || axd_state_check(st, shard, epoch, nlen, 0))
        return AX_EINVAL;
    axd_state_result r = {.status = AX_OK, .records = -1};
    if (m->cut_all) {
        r.status = AX_ECONN;
    } else if (mem_fenced(m, shard, epoch)) {
        r.status = AX_ESTALE;
    } else {
        mem_rec *rec = axd_hmap_get(&m->shards[shard].states, name, nlen);
        r.records = (int64_t)m->shards[shard].states.len;
        if (rec) {
            r.found = 1;
            r.data = rec->data;
            r.len = rec->len;
        }
    }
    mem_state_reply(m, shard, cb, ud, &r);
    return 0;
}

static void mem_rec_free(mem_rec *rec)
{
    if (!rec)
        return;
    ax_free(rec->name);
    ax_free(rec->data);
    ax_free(rec);
}

static int mem_state_write(axd_lease_store *st, uint32_t shard, uint64_t epoch, const char *name, size_t nlen,
                           const void *data, size_t n, int del, axd_state_cb cb, void *ud)
{
    mem_store *m = (mem_store *)st;
    if (m->freeing)
        return AX_ECANCELED;
    if (!cb || axd_state_check(st, shard, epoch, nlen, del ? 0 : n) || (n && !data))
        return AX_EINVAL;
    axd_state_result r = {.status = AX_OK, .records = -1};
    if (m->cut_all) {
        r.status = AX_ECONN;
    } else if (mem_fenced(m, shard, epoch)) {
        r.status = AX_ESTALE;
    } else {
        axd_hmap *h = &m->shards[shard].states;
        if (del) {
            mem_rec_free(axd_hmap_del(h, name, nlen));
        } else {
            mem_rec *rec = ax_calloc(1, sizeof *rec);
            rec->nlen = nlen;
            rec->name = ax_malloc(nlen);
            memcpy(rec->name, name, nlen);
            rec->len = n;
            rec->data = n ? ax_malloc(n) : NULL;
            if (n)
                memcpy(rec->data, data, n);
            mem_rec_free(axd_hmap_put(h, rec->name, nlen, rec));
        }
        r.records = (int64_t)h->len;
    }
    mem_state_reply(m, shard, cb, ud, &r);
    return 0;
}

/* ---- membership ---- */

static void mem_member_reply(mem_store *m, axd_member_cb cb, void *ud, int status, axd_member *mv, size_t mn)
{
    mem_reply *r = ax_calloc(1, sizeof *r);
    r->mcb = cb;
    r->ud = ud;
    r->mstatus = status;
    r->mv = mv;
    r->mn = mn;
    mem_reply_insert(m, r, status);
}

static int member_args_ok(const char *name, size_t len)
{
    return axd_lease_check_node(name) == 0 && len <= AXD_MEMBER_RECORD_MAX;
}

static void mem_members_expire(mem_store *m)
{
    double now = axd_mono_now();
    for (size_t i = 0; i < m->n_members;) {
        if (now >= m->members[i].expires) {
            ax_free(m->members[i].name);
            ax_free(m->members[i].record);
            m->members[i] = m->members[--m->n_members];
        } else {
            i++;
        }
    }
}

static int mem_member_put(axd_lease_store *st, const char *name, const char *record, size_t len, uint32_t ttl_ms,
                          axd_member_cb cb, void *ud)
{
    mem_store *m = (mem_store *)st;
    if (m->freeing)
        return AX_ECANCELED;
    if (!cb || !ttl_ms || !member_args_ok(name, len) || (len && !record))
        return AX_EINVAL;
    if (mem_is_cut(m, name)) {
        mem_member_reply(m, cb, ud, AX_ECONN, NULL, 0);
        return 0;
    }
    mem_members_expire(m);
    mem_member *e = NULL;
    for (size_t i = 0; i < m->n_members && !e; i++)
        if (!strcmp(m->members[i].name, name))
            e = &m->members[i];
    if (!e) {
        m->members = ax_realloc(m->members, (m->n_members + 1) * sizeof *m->members);
        e = &m->members[m->n_members++];
        e->name = ax_strdup(name);
        e->record = NULL;
    }
    ax_free(e->record);
    e->record = ax_strndup(record ? record : "", len);
    e->record_len = len;
    e->expires = axd_mono_now() + ttl_ms / 1000.0;
    mem_member_reply(m, cb, ud, AX_OK, NULL, 0);
    return 0;
}

static int mem_member_del(axd_lease_store *st, const char *name, axd_member_cb cb, void *ud)
{
    mem_store *m = (mem_store *)st;
    if (m->freeing)
        return AX_ECANCELED;
    if (!cb || !member_args_ok(name, 0))
        return AX_EINVAL;
    for (size_t i = 0; i < m->n_members; i++)
        if (!strcmp(m->members[i].name, name)) {
            ax_free(m->members[i].name);
            ax_free(m->members[i].record);
            m->members[i] = m->members[--m->n_members];
            break;
        }
    mem_member_reply(m, cb, ud, AX_OK, NULL, 0);
    return 0;
}

static int mem_member_list(axd_lease_store *st, axd_member_cb cb, void *ud)
{
    mem_store *m = (mem_store *)st;
    if (m->freeing)
        return AX_ECANCELED;
    if (!cb)
        return AX_EINVAL;
    if (m->cut_all) {
        mem_member_reply(m, cb, ud, AX_ECONN, NULL, 0);
        return 0;
    }
    mem_members_expire(m);
    axd_member *mv = m->n_members ? ax_calloc(m->n_members, sizeof *mv) : NULL;
    for (size_t i = 0; i < m->n_members; i++) {
        mv[i].name = ax_strdup(m->members[i].name);
        mv[i].name_len = strlen(mv[i].name);
        mv[i].record = ax_strndup(m->members[i].record, m->members[i].record_len);
        mv[i].record_len = m->members[i].record_len;
    }
    mem_member_reply(m, cb, ud, AX_OK, mv, m->n_members);
    return 0;
}

static void mem_state(axd_lease_store *st, axd_lease_state *out)
{
    mem_store *m = (mem_store *)st;
    memset(out, 0, sizeof *out);
    out->store = "memory";
    out->conn = m->cut_all ? "reconnecting" : "connected";
    out->last_error = m->cut_all ? "cut off (test fault injection)" : "";
    out->ops = m->ops;
    out->errors = m->errors;
}

static void mem_free(axd_lease_store *st)
{
    mem_store *m = (mem_store *)st;
    m->freeing = 1;
    ev_timer_stop(m->loop, &m->timer);
    while (m->head) {
        mem_reply *r = m->head;
        m->head = r->next;
        if (!m->head)
            m->tail = NULL;
        axd_lease_result c = {.status = AX_ECANCELED, .owner = "", .ttl_ms = -1};
        axd_state_result sc = {.status = AX_ECANCELED, .records = -1};
        if (r->mcb)
            r->mcb(r->ud, AX_ECANCELED, NULL, 0);
        else if (r->scb)
            r->scb(r->ud, r->shard, &sc);
        else
            r->cb(r->ud, r->shard, &c);
        mem_reply_free(r);
    }
    for (size_t i = 0; i < m->n_members; i++) {
        ax_free(m->members[i].name);
        ax_free(m->members[i].record);
    }
    ax_free(m->members);
    for (uint32_t i = 0; i < m->base.n_shards; i++) {
        ax_free(m->shards[i].owner);
        axd_hmap_ent *e;
        for (size_t j = 0; (j = axd_hmap_next(&m->shards[i].states, j, &e)) != 0;)
            mem_rec_free(e->val);
        axd_hmap_free(&m->shards[i].states);
    }
    for (size_t i = 0; i < m->n_cut; i++)
        ax_free(m->cut[i]);
    ax_free(m->cut);
    ax_free(m->shards);
    ax_free(m);
}

static const axd_lease_ops mem_ops = {
    .acquire = mem_acquire,
    .renew = mem_renew,
    .release = mem_release,
    .get = mem_get,
    .state = mem_state,
    .state_load = mem_state_load,
    .state_write = mem_state_write,
    .member_put = mem_member_put,
    .member_del = mem_member_del,
    .member_list = mem_member_list,
    .free = mem_free,
};

axd_lease_store *axd_lease_mem_new(struct ev_loop *loop, uint32_t n_shards)
{
    if (!loop || n_shards == 0)
        return NULL;
    mem_store *m = ax_calloc(1, sizeof *m);
    m->base.ops = &mem_ops;
    m->base.n_shards = n_shards;
    m->loop = loop;
    m->shards = ax_calloc(n_shards, sizeof *m->shards);
    for (uint32_t i = 0; i < n_shards; i++)
        axd_hmap_init(&m->shards[i].states);
    ev_timer_init(&m->timer, mem_timer_cb, 0, 0);
    m->timer.data = m;
    return &m->base;
}

void axd_lease_mem_cut(axd_lease_store *st, const char *node, int cut)
{
    mem_store *m = (mem_store *)st;
    if (!node) {
        m->cut_all = !!cut;
        return;
    }
    for (size_t i = 0; i < m->n_cut; i++) {
        if (!strcmp(m->cut[i], node)) {
            if (!cut) {
                ax_free(m->cut[i]);
                m->cut[i] = m->cut[--m->n_cut];
            }
            return;
        }
    }
    if (cut) {
        m->cut = ax_realloc(m->cut, (m->n_cut + 1) * sizeof *m->cut);
        m->cut[m->n_cut++] = ax_strdup(node);
    }
}

void axd_lease_mem_set_delay(axd_lease_store *st, uint32_t delay_ms) { ((mem_store *)st)->delay_ms = delay_ms; }
