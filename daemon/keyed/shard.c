/* The shard map (a stable key -> shard hash) and the lease manager: which shards this
 * node serves. The rule that keeps two nodes from serving one shard: a lease granted or
 * renewed by a request sent at time t lasts in the store until at least t + ttl, and this
 * node stops serving at t + ttl - safety_margin unless a later renew succeeded. */
#include "shard.h"

#include <stdatomic.h>

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ax_mem.h"
#include "log.h"
#include "histo.h"
#include "monotime.h"

/* ---- the hash ---- */

uint64_t axd_fnv1a64(const void *p, size_t len)
{
    const unsigned char *b = p;
    uint64_t h = UINT64_C(0xcbf29ce484222325);
    for (size_t i = 0; i < len; i++) {
        h ^= b[i];
        h *= UINT64_C(0x100000001b3);
    }
    return h;
}

uint32_t axd_shard_of(const char *key, size_t len, uint32_t n_shards)
{
    uint64_t h = axd_fnv1a64(key, len);
    return n_shards ? (uint32_t)(h ^ (h >> 32)) % n_shards : 0;
}

const char *axd_shard_state_name(int st)
{
    switch (st) {
    case AXD_SHARD_FREE: return "free";
    case AXD_SHARD_ACQUIRING: return "acquiring";
    case AXD_SHARD_OWNED: return "owned";
    case AXD_SHARD_RELEASING: return "releasing";
    }
    return "?";
}

/* ---- config ---- */

int axd_shards_config_check(const axd_config *c, char *err, size_t errlen)
{
    if ((uint64_t)c->lease_renew_interval_ms + c->lease_safety_margin_ms >= c->lease_ttl_ms) {
        if (err && errlen)
            snprintf(err, errlen,
                     "lease.renew_interval_ms (%u) + lease.safety_margin_ms (%u) must be less than "
                     "lease.ttl_ms (%u)",
                     c->lease_renew_interval_ms, c->lease_safety_margin_ms, c->lease_ttl_ms);
        return AX_ECONFIG;
    }
    if (c->shard_count < 1 || c->shard_count > AXD_SHARDS_MAX) {
        if (err && errlen)
            snprintf(err, errlen, "shards.count (%u) must be 1..%u", c->shard_count, AXD_SHARDS_MAX);
        return AX_ECONFIG;
    }
    return 0;
}

void axd_shards_cfg_from_config(axd_shards_cfg *cfg, const axd_config *c, const char *node)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->node = node;
    cfg->n_shards = c->shard_count;
    cfg->ttl_ms = c->lease_ttl_ms;
    cfg->renew_interval_ms = c->lease_renew_interval_ms;
    cfg->acquire_interval_ms = c->lease_acquire_interval_ms;
    cfg->safety_margin_ms = c->lease_safety_margin_ms;
}

axd_lease_store *axd_lease_store_from_config(struct ev_loop *loop, const axd_config *c, char *err, size_t errlen)
{
    if (axd_shards_config_check(c, err, errlen) != 0)
        return NULL;
    if (c->lease_store && !strcmp(c->lease_store, "redis")) {
        axd_lease_redis_cfg rc = {
            .host = c->redis_host,
            .port = (uint16_t)c->redis_port,
            .password = c->redis_password,
            .db = c->redis_db,
            .prefix = c->redis_prefix,
            .connect_timeout_ms = c->redis_connect_timeout_ms,
        };
        return axd_lease_redis_new(loop, c->shard_count, &rc, err, errlen);
    }
    if (c->lease_store && !strcmp(c->lease_store, "etcd")) {
        axd_lease_etcd_cfg ec = {.endpoints = c->etcd_endpoints,
                                 .prefix = c->etcd_prefix,
                                 .cacert = c->etcd_cacert,
                                 .cert = c->etcd_cert,
                                 .key = c->etcd_key,
                                 .user = c->etcd_user,
                                 .password = c->etcd_password,
                                 .timeout_ms = c->etcd_timeout_ms};
        return axd_lease_etcd_new(loop, c->shard_count, &ec, err, errlen);
    }
    axd_lease_store *st = axd_lease_mem_new(loop, c->shard_count);
    if (!st && err && errlen)
        snprintf(err, errlen, "cannot create the memory lease store");
    return st;
}

/* ---- the manager ---- */

#define NAMES_MAX 4096 /* distinct holder names remembered for status output */

typedef struct shard_ent {
    uint8_t st;        /* enum axd_shard_state */
    uint8_t renewing;  /* a renew is in flight */
    uint16_t holder;   /* 1 + index into names; 0 unknown */
    uint32_t seq;      /* bumped on every state change: late replies are recognised */
    uint64_t epoch;    /* owned: our epoch */
    uint64_t seen;     /* highest epoch seen for the shard (min_epoch for acquire) */
    double deadline;   /* owned: stop serving at this monotonic time (axd_mono_now) */
    double renew_due;  /* owned: next renew */
    double held_until; /* free: another node holds it until about then (skip until) */
    double handed_at;  /* releasing: when this node stopped serving it (handover time) */
    uint8_t regressed_logged; /* a regression of this shard was logged (once) */
    uint8_t data_loss_logged; /* the store's loss of this shard's data was logged (once) */
    uint8_t seen_held;        /* the store told this node of a holder of the shard (or granted it):
                               * a quarantine after that means the store lost its epoch counter */
    uint8_t kicked;           /* acquiring: the holder said it released the shard meanwhile, so a
                               * refusal read before that release does not hold the shard back */
    /* What any thread may read (axd_shards_serving_at, _epoch): {epoch, deadline} of an
     * owned shard (epoch 0: not served), under a sequence lock that the manager's thread
     * alone writes (odd while it writes). */
    _Atomic uint32_t pub_seq;
    _Atomic uint64_t pub_epoch;
    _Atomic double pub_deadline;
} shard_ent;

/* Publish e's serving state for readers on other threads: after every change of state,
 * epoch or deadline. */
static void publish(shard_ent *e)
{
    uint32_t s = atomic_load_explicit(&e->pub_seq, memory_order_relaxed);
    atomic_store_explicit(&e->pub_seq, s + 1, memory_order_relaxed);
    atomic_thread_fence(memory_order_release);
    int owned = e->st == AXD_SHARD_OWNED;
    atomic_store_explicit(&e->pub_epoch, owned ? e->epoch : 0, memory_order_relaxed);
    atomic_store_explicit(&e->pub_deadline, owned ? e->deadline : 0.0, memory_order_relaxed);
    atomic_store_explicit(&e->pub_seq, s + 2, memory_order_release);
}

/* Read what publish wrote: the epoch (0 if not served) and the deadline, consistent. */
static uint64_t published(const shard_ent *e, double *deadline)
{
    shard_ent *x = (shard_ent *)e; /* atomics are read, never written, here */
    for (;;) {
        uint32_t s1 = atomic_load_explicit(&x->pub_seq, memory_order_acquire);
        if (s1 & 1)
            continue; /* the manager is writing: it takes a few stores */
        uint64_t ep = atomic_load_explicit(&x->pub_epoch, memory_order_relaxed);
        double dl = atomic_load_explicit(&x->pub_deadline, memory_order_relaxed);
        atomic_thread_fence(memory_order_acquire);
        if (atomic_load_explicit(&x->pub_seq, memory_order_relaxed) == s1) {
            *deadline = dl;
            return ep;
        }
    }
}

enum req_kind { REQ_ACQUIRE, REQ_RENEW, REQ_RELEASE, REQ_SURVEY };

typedef struct req {
    axd_shards *m;
    uint32_t seq;
    uint8_t kind;
    double sent;
    uint64_t min; /* acquire: the min_epoch sent */
} req;

struct axd_shards {
    struct ev_loop *loop;
    axd_lease_store *store;
    axd_shards_cfg cfg;
    char *node;
    axd_shards_cbs cbs;
    shard_ent *sh;
    uint32_t *pref; /* shards in this node's order of preference */
    double ttl, renew, safety, retry, acq_int;
    uint32_t n, n_live, target, owned, acquiring, inflight_acq, cursor, reset_rounds;
    uint32_t inflight; /* requests whose callback has not come back */
    int round_active, started, stopping, stop_pending, dead;
    double next_round, tick_at, last_tick, quantum;
    ev_timer tick, stop_w;
    char **names;
    size_t n_names;
    uint64_t lost_total, acquired_total, renew_errors;
    uint64_t late_losses; /* shards dropped by axd_shards_expire (a stall), not by the timer */
    uint64_t regressions; /* lease records older than a known epoch (the store went back) */
    uint32_t lost_batch;  /* shards lost since the last summary line */
    /* releases waiting for cbs.release_ready (counted in inflight), polled by rel_w */
    uint32_t *relq;
    uint64_t *relq_epoch;
    uint32_t n_relq, cap_relq;
    ev_timer rel_w;
    /* the survey: every shard this node does not hold is looked up in the store now and
     * then (axd_lease_get), so its real holder and epoch are known (axctl shards) */
    ev_timer survey_w;
    uint32_t survey_cursor, survey_inflight;
    int renew_failing;    /* renew failures logged once until a renew succeeds */
    int draining;         /* axd_shards_drain: the share is none, nothing is acquired */
    uint32_t releasing;   /* releases not answered yet (held back or sent) */
    /* handovers: from the moment a shard stopped being served here to its release's answer */
    uint64_t handovers;
    double handover_sum, handover_max;
    axd_histo h_handover;
};

static void schedule(axd_shards *m, double at);
static void pump(axd_shards *m, double now);
static void maybe_stopped(axd_shards *m);

static uint16_t intern_holder(axd_shards *m, const char *s, size_t len)
{
    if (!s || !len)
        return 0;
    for (size_t i = 0; i < m->n_names; i++)
        if (strlen(m->names[i]) == len && !memcmp(m->names[i], s, len))
            return (uint16_t)(i + 1);
    if (m->n_names >= NAMES_MAX || memchr(s, 0, len))
        return 0;
    m->names = ax_realloc(m->names, (m->n_names + 1) * sizeof *m->names);
    m->names[m->n_names++] = ax_strndup(s, len);
    return (uint16_t)m->n_names;
}

static void really_free(axd_shards *m)
{
    ev_timer_stop(m->loop, &m->tick);
    ev_timer_stop(m->loop, &m->stop_w);
    ev_timer_stop(m->loop, &m->rel_w);
    ev_timer_stop(m->loop, &m->survey_w);
    ax_free(m->relq);
    ax_free(m->relq_epoch);
    for (size_t i = 0; i < m->n_names; i++)
        ax_free(m->names[i]);
    ax_free(m->names);
    ax_free(m->sh);
    ax_free(m->pref);
    ax_free(m->node);
    ax_free(m);
}

/* Every time in the manager (sent, deadline, renew_due, rounds) is monotonic and read
 * fresh: a deadline is never checked against a time cached before a stall. */
static double now_fresh(axd_shards *m)
{
    (void)m;
    return axd_mono_now();
}

/* Stop serving shard i (it was OWNED). */
static void lose(axd_shards *m, uint32_t i, const char *reason)
{
    shard_ent *e = &m->sh[i];
    e->st = AXD_SHARD_FREE;
    e->seq++;
    publish(e);
    e->renewing = 0;
    e->held_until = 0;
    e->holder = 0;
    m->owned--;
    m->lost_total++;
    m->lost_batch++;
    axd_log(AX_LOG_DEBUG, "shards", "shard %u epoch %llu: stopped serving (%s)", i, (unsigned long long)e->epoch,
           reason);
    if (m->cbs.on_lost)
        m->cbs.on_lost(m->cbs.ud, i, e->epoch, reason);
}

/* One line for the shards just lost, instead of one per shard. */
static void log_lost(axd_shards *m, const char *reason)
{
    if (!m->lost_batch)
        return;
    axd_log(!strcmp(reason, AXD_SHARD_LOST) ? AX_LOG_WARN : AX_LOG_INFO, "shards",
           "stopped serving %u shard(s) (%s); serving %u of %u", m->lost_batch, reason, m->owned, m->n);
    m->lost_batch = 0;
}

static req *req_new(axd_shards *m, uint32_t i, uint8_t kind, double now)
{
    req *q = ax_malloc(sizeof *q);
    q->m = m;
    q->seq = m->sh[i].seq;
    q->kind = kind;
    q->sent = now;
    return q;
}

/* The request's callback came back: 1 if the manager is gone (q freed, nothing to do). */
static int req_done(req *q)
{
    axd_shards *m = q->m;
    m->inflight--;
    if (q->kind == REQ_ACQUIRE)
        m->inflight_acq--;
    if (m->dead) {
        if (!m->inflight)
            really_free(m);
        ax_free(q);
        return 1;
    }
    return 0;
}

static void release_cb(void *ud, uint32_t i, const axd_lease_result *r)
{
    req *q = ud;
    if (req_done(q))
        return;
    axd_shards *m = q->m;
    shard_ent *e = &m->sh[i];
    m->releasing--;
    if (r->status != AX_OK)
        axd_log(AX_LOG_INFO, "shards", "shard %u: release failed (%s); the lease expires in the store", i,
               ax_strerror(r->status));
    if (e->seq == q->seq && e->st == AXD_SHARD_RELEASING) {
        double dt = now_fresh(m) - e->handed_at;
        if (e->handed_at > 0 && dt >= 0) {
            m->handovers++;
            axd_histo_observe(&m->h_handover, dt);
            m->handover_sum += dt;
            if (dt > m->handover_max)
                m->handover_max = dt;
        }
        e->handed_at = 0;
        if (r->status == AX_OK && m->cbs.on_released) /* the others may take it now */
            m->cbs.on_released(m->cbs.ud, i, q->min);
        e->st = AXD_SHARD_FREE;
        e->seq++;
        publish(e);
        e->holder = 0;
        e->held_until = 0;
    }
    ax_free(q);
    maybe_stopped(m);
}

static void send_release_now(axd_shards *m, uint32_t i, uint64_t epoch, double now);

#define SURVEY_BATCH 512 /* lookups per survey round */

static void survey_cb(void *ud, uint32_t i, const axd_lease_result *r)
{
    req *q = ud;
    if (req_done(q))
        return;
    axd_shards *m = q->m;
    shard_ent *e = &m->sh[i];
    m->survey_inflight--;
    if (r->status == AX_OK && e->seq == q->seq && e->st == AXD_SHARD_FREE) {
        double now = now_fresh(m);
        if (r->epoch > e->seen)
            e->seen = r->epoch;
        if (r->granted && r->owner_len) {
            e->holder = intern_holder(m, r->owner, r->owner_len);
            e->seen_held = 1;
            if (r->ttl_ms > 0)
                e->held_until = now + r->ttl_ms / 1000.0;
        } else if (!r->granted) {
            e->holder = 0;
            e->held_until = 0;
        }
    }
    ax_free(q);
}

static void survey_tick(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    axd_shards *m = w->data;
    if (m->stopping || m->dead || m->survey_inflight)
        return;
    double now = now_fresh(m);
    for (uint32_t k = 0; k < SURVEY_BATCH && k < m->n; k++) {
        uint32_t i = m->survey_cursor++ % m->n;
        if (m->sh[i].st != AXD_SHARD_FREE)
            continue;
        req *q = req_new(m, i, REQ_SURVEY, now);
        m->inflight++;
        if (axd_lease_get_with_ttl(m->store, i, survey_cb, q) != 0) {
            m->inflight--;
            ax_free(q);
            continue;
        }
        m->survey_inflight++;
    }
}

/* Releases held back until the shard's last work (durable state writes) reached the
 * store, or until its local deadline (then the lease is about to expire: what is still
 * in flight is fenced anyway). */
static void rel_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    axd_shards *m = w->data;
    double now = now_fresh(m);
    uint32_t k = 0;
    for (uint32_t j = 0; j < m->n_relq; j++) {
        uint32_t i = m->relq[j];
        if (m->cbs.release_ready(m->cbs.ud, i) || now >= m->sh[i].deadline || m->dead) {
            m->inflight--;
            m->releasing--; /* counted again by send_release_now's request, if sent */
            if (!m->dead && m->sh[i].st == AXD_SHARD_RELEASING) {
                m->releasing++;
                send_release_now(m, i, m->relq_epoch[j], now);
            }
        } else {
            m->relq_epoch[k] = m->relq_epoch[j];
            m->relq[k++] = i;
        }
    }
    m->n_relq = k;
    if (!k)
        ev_timer_stop(m->loop, &m->rel_w);
    if (m->dead && !m->inflight)
        really_free(m);
    else
        maybe_stopped(m);
}

/* Send a release for shard i at epoch (it is no longer served). */
static void send_release(axd_shards *m, uint32_t i, uint64_t epoch, double now)
{
    m->releasing++;
    if (m->cbs.release_ready && !m->cbs.release_ready(m->cbs.ud, i)) {
        shard_ent *e = &m->sh[i];
        e->st = AXD_SHARD_RELEASING;
        e->seq++;
        publish(e);
        e->renewing = 0;
        if (m->n_relq == m->cap_relq) {
            m->cap_relq = m->cap_relq ? 2 * m->cap_relq : 16;
            m->relq = ax_realloc(m->relq, m->cap_relq * sizeof *m->relq);
            m->relq_epoch = ax_realloc(m->relq_epoch, m->cap_relq * sizeof *m->relq_epoch);
        }
        m->relq_epoch[m->n_relq] = epoch;
        m->relq[m->n_relq++] = i;
        m->inflight++;
        if (!ev_is_active(&m->rel_w)) {
            ev_timer_set(&m->rel_w, 0.001, 0.001);
            ev_timer_start(m->loop, &m->rel_w);
        }
        return;
    }
    send_release_now(m, i, epoch, now);
}

static void send_release_now(axd_shards *m, uint32_t i, uint64_t epoch, double now)
{
    shard_ent *e = &m->sh[i];
    e->st = AXD_SHARD_RELEASING;
    e->seq++;
    publish(e);
    e->renewing = 0;
    req *q = req_new(m, i, REQ_RELEASE, now);
    q->min = epoch; /* the epoch released (on_released) */
    m->inflight++;
    if (axd_lease_release(m->store, i, m->node, epoch, release_cb, q) != 0) {
        m->inflight--;
        m->releasing--;
        e->handed_at = 0;
        ax_free(q);
        e->st = AXD_SHARD_FREE;
        e->seq++;
        publish(e);
    }
}

/* Stop serving an OWNED shard and give it back. */
static void hand_back(axd_shards *m, uint32_t i, const char *reason, double now)
{
    uint64_t epoch = m->sh[i].epoch;
    m->sh[i].handed_at = now;
    lose(m, i, reason);
    if (m->sh[i].st == AXD_SHARD_FREE) /* on_lost may have stopped the manager (already released) */
        send_release(m, i, epoch, now);
}

static void renew_cb(void *ud, uint32_t i, const axd_lease_result *r)
{
    req *q = ud;
    if (req_done(q))
        return;
    axd_shards *m = q->m;
    shard_ent *e = &m->sh[i];
    double now = now_fresh(m);
    if (e->seq != q->seq || e->st != AXD_SHARD_OWNED) { /* answered too late: already lost or released */
        ax_free(q);
        maybe_stopped(m);
        return;
    }
    e->renewing = 0;
    if (r->status != AX_OK) {
        m->renew_errors++;
        if (!m->renew_failing)
            axd_log(AX_LOG_WARN, "shards", "renew of shard %u failed (%s); retrying until its deadline in %.0f ms", i,
                   ax_strerror(r->status), (e->deadline - now) * 1000);
        m->renew_failing = 1;
        e->renew_due = now + m->retry;
    } else if (!r->granted) {
        lose(m, i, AXD_SHARD_LOST);
    } else {
        if (m->renew_failing)
            axd_log(AX_LOG_INFO, "shards", "renews succeed again");
        m->renew_failing = 0;
        e->deadline = q->sent + m->ttl - m->safety;
        e->renew_due = q->sent + m->renew;
        publish(e);
    }
    if (e->st == AXD_SHARD_OWNED && now >= e->deadline)
        lose(m, i, AXD_SHARD_LOST);
    log_lost(m, AXD_SHARD_LOST);
    if (e->st == AXD_SHARD_OWNED)
        schedule(m, e->renew_due < e->deadline ? e->renew_due : e->deadline);
    ax_free(q);
}

static void send_renew(axd_shards *m, uint32_t i, double now)
{
    shard_ent *e = &m->sh[i];
    req *q = req_new(m, i, REQ_RENEW, now);
    e->renewing = 1;
    m->inflight++;
    if (axd_lease_renew(m->store, i, m->node, e->epoch, m->cfg.ttl_ms, renew_cb, q) != 0) {
        m->inflight--;
        ax_free(q);
        e->renewing = 0;
        e->renew_due = now + m->retry;
    }
}

/* The store showed (or granted) epoch for shard i although `known` is known: it went back
 * in time for this shard. Counted always, logged loudly once per shard. */
static void regression(axd_shards *m, uint32_t i, uint64_t epoch, uint64_t known, const char *what)
{
    m->regressions++;
    if (m->sh[i].regressed_logged)
        return;
    m->sh[i].regressed_logged = 1;
    char seen[160];
    if (epoch == known)
        snprintf(seen, sizeof seen, "its epoch counter was below the known epoch %llu", (unsigned long long)known);
    else
        snprintf(seen, sizeof seen, "%s epoch %llu, but epoch %llu is known", what, (unsigned long long)epoch,
                 (unsigned long long)known);
    axd_log(AX_LOG_ERROR, "shards",
           "LEASE STORE REGRESSED: shard %u: %s; the store lost lease data (restored from an old copy, or "
           "failed over to a lagging replica). Shard not served until acquired above %llu (after a quarantine "
           "of one ttl)",
           i, seen, (unsigned long long)known);
}

static void acquire_cb(void *ud, uint32_t i, const axd_lease_result *r)
{
    req *q = ud;
    if (req_done(q))
        return;
    axd_shards *m = q->m;
    shard_ent *e = &m->sh[i];
    double now = now_fresh(m);
    if (e->seq != q->seq || e->st != AXD_SHARD_ACQUIRING) { /* cannot happen: ACQUIRING ends only here */
        ax_free(q);
        return;
    }
    m->acquiring--;
    e->st = AXD_SHARD_FREE;
    e->seq++;
    publish(e);
    if (r->status != AX_OK) {
        e->held_until = 0;
        /* The store is unreachable (not this shard's data): end the round rather than
         * fail through every shard; the next poll tries again. */
        if (r->status != AX_EIO && r->status != AX_EPROTO)
            m->round_active = 0;
    } else if (!r->granted) {
        if (r->owner_len && r->epoch < e->seen)
            regression(m, i, r->epoch, e->seen, "is held in the store at");
        else if (!r->owner_len && r->behind)
            /* the store's counter was below what we know: this call quarantined the shard
             * (not a quarantine already there at an epoch we know: nodes starting on a
             * fresh store learn each other's quarantine epochs through EPOCHS) */
            regression(m, i, r->epoch, r->epoch, NULL);
        else if (!r->owner_len && e->seen_held && !e->data_loss_logged) {
            /* quarantined although the store had a holder of the shard before: it lost its
             * epoch counter (emptied, restarted without persistence), not a first use */
            e->data_loss_logged = 1;
            m->regressions++;
            axd_log(AX_LOG_ERROR, "shards",
                   "LEASE STORE LOST ITS DATA: shard %u was at epoch %llu and the store no longer knows it; "
                   "epochs go on above it after a quarantine of one ttl. The durable state records of the "
                   "shard's keyed actors were in that store too: what it lost, they lost (their actors start "
                   "from what the store has now)",
                   i, (unsigned long long)e->seen);
        }
        if (r->epoch > e->seen)
            e->seen = r->epoch;
        if (r->owner_len)
            e->seen_held = 1;
        e->holder = intern_holder(m, r->owner, r->owner_len);
        e->held_until = now + (r->ttl_ms > 0 ? r->ttl_ms / 1000.0 : m->renew);
        if (e->kicked) { /* released since: try again now, from the start of a round */
            e->held_until = 0;
            e->holder = 0;
            m->round_active = 1;
            m->cursor = 0;
        }
    } else {
        e->seen_held = 1;
        int stale = r->epoch < e->seen; /* below a known epoch: the store went back */
        if (stale)
            regression(m, i, r->epoch, e->seen, "was granted at");
        if (r->epoch > e->seen)
            e->seen = r->epoch;
        double deadline = q->sent + m->ttl - m->safety;
        if (m->stopping || now >= deadline || stale) {
            /* Never served: give it straight back (too late to be safe, or shutting down). */
            send_release(m, i, r->epoch, now);
        } else {
            e->st = AXD_SHARD_OWNED;
            e->epoch = r->epoch;
            e->deadline = deadline;
            publish(e);
            e->renew_due = q->sent + m->renew;
            e->holder = intern_holder(m, m->node, strlen(m->node));
            m->owned++;
            m->acquired_total++;
            axd_log(AX_LOG_DEBUG, "shards", "shard %u: acquired at epoch %llu", i, (unsigned long long)r->epoch);
            if (m->owned == m->target)
                axd_log(AX_LOG_INFO, "shards", "serving %u of %u shards (fair share)", m->owned, m->n);
            schedule(m, e->renew_due);
            if (m->cbs.on_acquired)
                m->cbs.on_acquired(m->cbs.ud, i, r->epoch);
        }
    }
    ax_free(q);
    if (!m->dead)
        pump(m, now);
    maybe_stopped(m);
}

static void send_acquire(axd_shards *m, uint32_t i, double now)
{
    shard_ent *e = &m->sh[i];
    e->st = AXD_SHARD_ACQUIRING;
    e->kicked = 0;
    e->seq++;
    publish(e);
    req *q = req_new(m, i, REQ_ACQUIRE, now);
    q->min = e->seen;
    m->inflight++;
    m->inflight_acq++;
    m->acquiring++;
    if (axd_lease_acquire(m->store, i, m->node, m->cfg.ttl_ms, e->seen, acquire_cb, q) != 0) {
        m->inflight--;
        m->inflight_acq--;
        m->acquiring--;
        ax_free(q);
        e->st = AXD_SHARD_FREE;
        e->seq++;
        publish(e);
    }
}

/* Keep up to max_inflight acquires going through this round's candidates. */
static void pump(axd_shards *m, double now)
{
    while (m->round_active && !m->stopping && m->inflight_acq < m->cfg.max_inflight &&
           m->owned + m->acquiring < m->target) {
        if (m->cursor >= m->n) {
            m->round_active = 0;
            break;
        }
        uint32_t i = m->pref[m->cursor++];
        shard_ent *e = &m->sh[i];
        if (e->st == AXD_SHARD_FREE && e->held_until <= now)
            send_acquire(m, i, now);
    }
}

/* Hand over the shards this node likes least while it holds more than its share. */
static void rebalance(axd_shards *m, double now)
{
    for (uint32_t k = m->n; k-- > 0 && m->owned > m->target && !m->stopping;) {
        uint32_t i = m->pref[k];
        if (m->sh[i].st == AXD_SHARD_OWNED)
            hand_back(m, i, AXD_SHARD_HANDOVER, now);
    }
    log_lost(m, AXD_SHARD_HANDOVER);
}

static void schedule(axd_shards *m, double at)
{
    if (m->dead || !isfinite(at))
        return;
    /* Ticks scan every shard: keep them at least a quantum apart (a small part of the
     * safety margin, so deadlines are still met; axd_shards_serving is exact anyway). */
    if (at < m->last_tick + m->quantum)
        at = m->last_tick + m->quantum;
    if (ev_is_active(&m->tick) && m->tick_at <= at)
        return;
    double in = at - now_fresh(m);
    ev_timer_stop(m->loop, &m->tick);
    ev_timer_set(&m->tick, in > 0 ? in : 0, 0);
    ev_timer_start(m->loop, &m->tick);
    m->tick_at = at;
}

static void tick_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    axd_shards *m = w->data;
    double now = now_fresh(m), next = INFINITY;
    m->last_tick = now;

    for (uint32_t i = 0; i < m->n; i++) {
        shard_ent *e = &m->sh[i];
        if (e->st != AXD_SHARD_OWNED)
            continue;
        if (now >= e->deadline) {
            lose(m, i, AXD_SHARD_LOST);
            continue;
        }
        if (!e->renewing && now >= e->renew_due)
            send_renew(m, i, now);
        if (e->st != AXD_SHARD_OWNED)
            continue;
        if (!e->renewing && e->renew_due < next)
            next = e->renew_due;
        if (e->deadline < next)
            next = e->deadline;
    }
    log_lost(m, AXD_SHARD_LOST);
    if (m->started && !m->stopping) {
        rebalance(m, now);
        if (now >= m->next_round) {
            if (m->reset_rounds) {
                m->reset_rounds--;
                for (uint32_t i = 0; i < m->n; i++)
                    m->sh[i].held_until = 0;
            }
            m->round_active = 1;
            m->cursor = 0;
            m->next_round = now + m->acq_int;
        }
        pump(m, now);
        if (m->next_round < next)
            next = m->next_round;
    }
    schedule(m, next);
}

static void stop_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    axd_shards *m = w->data;
    m->stop_pending = 0;
    if (m->cbs.on_stopped)
        m->cbs.on_stopped(m->cbs.ud);
}

static void maybe_stopped(axd_shards *m)
{
    if (m->dead || !m->stopping || m->inflight || m->stop_pending != 1)
        return;
    m->stop_pending = 2; /* notified once, from the loop */
    ev_timer_set(&m->stop_w, 0, 0);
    ev_timer_start(m->loop, &m->stop_w);
}

axd_shards *axd_shards_new(struct ev_loop *loop, axd_lease_store *store, const axd_shards_cfg *cfg,
                         const axd_shards_cbs *cbs, char *err, size_t errlen)
{
    const char *why = NULL;
    if (!loop || !store || !cfg)
        why = "missing loop, store or cfg";
    else if (axd_lease_check_node(cfg->node) != 0)
        why = "node id must be 1..255 bytes";
    else if (cfg->n_shards < 1 || cfg->n_shards > AXD_SHARDS_MAX)
        why = "n_shards must be 1..65536";
    else if (cfg->n_shards > store->n_shards)
        why = "the store has fewer shards than the manager";
    else if (!cfg->ttl_ms || !cfg->renew_interval_ms || !cfg->safety_margin_ms ||
             (uint64_t)cfg->renew_interval_ms + cfg->safety_margin_ms >= cfg->ttl_ms)
        why = "need renew_interval_ms + safety_margin_ms < ttl_ms (all > 0)";
    if (why) {
        if (err && errlen)
            snprintf(err, errlen, "shards: %s", why);
        return NULL;
    }

    axd_shards *m = ax_calloc(1, sizeof *m);
    m->loop = loop;
    m->store = store;
    m->cfg = *cfg;
    m->node = ax_strdup(cfg->node);
    m->cfg.node = m->node;
    if (!m->cfg.max_inflight)
        m->cfg.max_inflight = 256;
    if (!m->cfg.acquire_interval_ms)
        m->cfg.acquire_interval_ms = cfg->renew_interval_ms;
    if (cbs)
        m->cbs = *cbs;
    m->n = cfg->n_shards;
    m->ttl = cfg->ttl_ms / 1000.0;
    m->renew = cfg->renew_interval_ms / 1000.0;
    m->safety = cfg->safety_margin_ms / 1000.0;
    m->acq_int = m->cfg.acquire_interval_ms / 1000.0;
    /* Failed renews are retried a few times before the deadline. */
    m->retry = (m->renew < m->safety ? m->renew : m->safety) / 4;
    if (m->retry < 0.01)
        m->retry = 0.01;
    m->quantum = m->retry / 2;
    m->last_tick = -INFINITY;
    m->n_live = 1;
    m->target = m->n;
    m->sh = ax_calloc(m->n, sizeof *m->sh);

    /* Preference: rendezvous order of FNV-1a(node ":" shard), so nodes starting together
     * go for different shards first, and each hands over the ones it likes least. */
    uint64_t *score = ax_malloc((size_t)m->n * sizeof *score);
    m->pref = ax_malloc((size_t)m->n * sizeof *m->pref);
    for (uint32_t i = 0; i < m->n; i++) {
        char buf[AXD_LEASE_NODE_MAX + 16];
        int len = snprintf(buf, sizeof buf, "%s:%u", m->node, i);
        score[i] = axd_fnv1a64(buf, (size_t)len);
        m->pref[i] = i;
    }
    /* Shell sort by descending score (no qsort context pointer in C11). */
    for (uint32_t gap = m->n / 2; gap > 0; gap /= 2)
        for (uint32_t i = gap; i < m->n; i++) {
            uint32_t v = m->pref[i], j = i;
            for (; j >= gap && score[m->pref[j - gap]] < score[v]; j -= gap)
                m->pref[j] = m->pref[j - gap];
            m->pref[j] = v;
        }
    ax_free(score);

    ev_timer_init(&m->tick, tick_cb, 0, 0);
    m->tick.data = m;
    ev_timer_init(&m->stop_w, stop_cb, 0, 0);
    m->stop_w.data = m;
    ev_timer_init(&m->rel_w, rel_cb, 0, 0);
    m->rel_w.data = m;
    ev_timer_init(&m->survey_w, survey_tick, 0, 0);
    m->survey_w.data = m;
    return m;
}

void axd_shards_start(axd_shards *m)
{
    if (m->started || m->stopping)
        return;
    m->started = 1;
    m->next_round = now_fresh(m);
    schedule(m, m->next_round);
    double every = 2.0 * m->renew;
    ev_timer_set(&m->survey_w, every, every < 1.0 ? 1.0 : every);
    ev_timer_start(m->loop, &m->survey_w);
}

void axd_shards_set_live_nodes(axd_shards *m, uint32_t n)
{
    if (!n)
        n = 1;
    uint32_t target = m->draining ? 0 : (uint32_t)(((uint64_t)m->n + n - 1) / n);
    if (n == m->n_live && target == m->target)
        return;
    axd_log(AX_LOG_INFO, "shards", "%u live node(s): fair share %u of %u shards (own %u)", n, target, m->n, m->owned);
    m->n_live = n;
    m->target = target;
    /* Membership changed: shards may be handed over now, so look again at all of them,
     * this round and the next. */
    m->reset_rounds = 2;
    m->next_round = now_fresh(m);
    if (m->started)
        schedule(m, m->next_round);
}

void axd_shards_drain(axd_shards *m, int on)
{
    if (m->stopping || m->draining == !!on)
        return;
    m->draining = !!on;
    axd_log(AX_LOG_INFO, "shards", on ? "draining: handing over %u shard(s), taking none" : "drain ended: taking shards again (own %u)",
           m->owned);
    m->n_live = 0; /* the next set_live_nodes computes the share again */
    if (on) {
        m->target = 0;
        m->round_active = 0;
        double now = now_fresh(m);
        for (uint32_t i = 0; i < m->n; i++)
            if (m->sh[i].st == AXD_SHARD_OWNED)
                hand_back(m, i, AXD_SHARD_HANDOVER, now);
        log_lost(m, AXD_SHARD_HANDOVER);
    }
}

int axd_shards_draining(const axd_shards *m) { return m->draining; }

uint32_t axd_shards_releasing(const axd_shards *m) { return m->releasing; }

void axd_shards_handovers(const axd_shards *m, uint64_t *n, double *avg_ms, double *max_ms)
{
    *n = m->handovers;
    *avg_ms = m->handovers ? m->handover_sum / (double)m->handovers * 1000.0 : 0;
    *max_ms = m->handover_max * 1000.0;
}

const axd_histo *axd_shards_handover_histo(const axd_shards *m) { return &m->h_handover; }

void axd_shards_kick(axd_shards *m, uint32_t shard)
{
    if (shard >= m->n || !m->started || m->stopping || m->dead || m->draining)
        return;
    shard_ent *e = &m->sh[shard];
    if (e->st == AXD_SHARD_ACQUIRING) /* its answer may have been read before the release */
        e->kicked = 1;
    if (e->st != AXD_SHARD_FREE)
        return;
    e->held_until = 0;
    e->holder = 0;
    e->seq++; /* a survey answer read before the release must not bring the holder back */
    /* a round from the start: another node may win this one, then the next free shard
     * (another released one) is tried, not left for the periodic round */
    m->round_active = 1;
    m->cursor = 0;
    pump(m, now_fresh(m));
}

void axd_shards_stop(axd_shards *m)
{
    if (m->stopping)
        return;
    double now = now_fresh(m);
    m->stopping = 1;
    m->stop_pending = 1;
    m->round_active = 0;
    ev_timer_stop(m->loop, &m->survey_w);
    for (uint32_t i = 0; i < m->n; i++)
        if (m->sh[i].st == AXD_SHARD_OWNED)
            hand_back(m, i, AXD_SHARD_SHUTDOWN, now);
    log_lost(m, AXD_SHARD_SHUTDOWN);
    maybe_stopped(m);
}

void axd_shards_free(axd_shards *m)
{
    if (!m)
        return;
    ev_timer_stop(m->loop, &m->tick);
    ev_timer_stop(m->loop, &m->stop_w);
    ev_timer_stop(m->loop, &m->rel_w);
    ev_timer_stop(m->loop, &m->survey_w);
    m->dead = 1;
    m->inflight -= m->n_relq; /* held-back releases are not sent any more */
    m->n_relq = 0;
    if (!m->inflight)
        really_free(m);
}

int axd_shards_serving_at(axd_shards *m, uint32_t shard, double now, uint64_t *epoch)
{
    if (shard >= m->n)
        return 0;
    double deadline;
    uint64_t ep = published(&m->sh[shard], &deadline); /* any thread */
    if (!ep || now >= deadline)
        return 0;
    if (epoch)
        *epoch = ep;
    return 1;
}

int axd_shards_serving(axd_shards *m, uint32_t shard, uint64_t *epoch)
{
    return axd_shards_serving_at(m, shard, now_fresh(m), epoch);
}

void axd_shards_note_epoch(axd_shards *m, uint32_t shard, uint64_t epoch, const char *from)
{
    if (m->dead || shard >= m->n || !epoch)
        return;
    shard_ent *e = &m->sh[shard];
    if (epoch > e->seen)
        e->seen = epoch;
    if (e->st == AXD_SHARD_OWNED && e->epoch < epoch) {
        axd_log(AX_LOG_ERROR, "shards", "%s knows epoch %llu of shard %u, this node holds it at %llu",
               from ? from : "a peer", (unsigned long long)epoch, shard, (unsigned long long)e->epoch);
        regression(m, shard, e->epoch, epoch, "is held by this node at");
        hand_back(m, shard, AXD_SHARD_REGRESSED, now_fresh(m));
        log_lost(m, AXD_SHARD_REGRESSED);
    }
}

size_t axd_shards_known_epochs(const axd_shards *m, uint32_t from, uint32_t *sh, uint64_t *ep, size_t cap)
{
    size_t k = 0;
    for (uint32_t i = from; i < m->n && k < cap; i++) {
        uint64_t v = m->sh[i].seen > m->sh[i].epoch ? m->sh[i].seen : m->sh[i].epoch;
        if (v) {
            sh[k] = i;
            ep[k++] = v;
        }
    }
    return k;
}

uint64_t axd_shards_regressions(const axd_shards *m) { return m->regressions; }

uint64_t axd_shards_epoch(const axd_shards *m, uint32_t shard)
{
    double deadline;
    return shard < m->n ? published(&m->sh[shard], &deadline) : 0;
}

uint32_t axd_shards_expire(axd_shards *m)
{
    if (m->dead)
        return 0;
    double now = now_fresh(m);
    uint32_t n = 0;
    for (uint32_t i = 0; i < m->n; i++)
        if (m->sh[i].st == AXD_SHARD_OWNED && now >= m->sh[i].deadline) {
            lose(m, i, AXD_SHARD_LOST);
            n++;
        }
    if (n) {
        m->late_losses += n;
        log_lost(m, AXD_SHARD_LOST);
        axd_log(AX_LOG_WARN, "shards",
               "the clock passed the local deadline of %u shard(s) before the lease timer ran (a stall: "
               "SIGSTOP, VM pause, slow handler, swap); they were dropped before anything else ran",
               n);
    }
    return n;
}

int axd_shards_fence_at(axd_shards *m, uint32_t shard, uint64_t msg_epoch, double now, uint64_t *epoch)
{
    uint64_t e;
    if (!axd_shards_serving_at(m, shard, now, &e))
        return AX_EBUSY;
    if (msg_epoch != 0 && msg_epoch != e)
        return AX_ESTALE;
    if (epoch)
        *epoch = e;
    return 0;
}

int axd_shards_fence(axd_shards *m, uint32_t shard, uint64_t msg_epoch)
{
    uint64_t epoch;
    if (!axd_shards_serving(m, shard, &epoch))
        return AX_EBUSY;
    return msg_epoch == 0 || msg_epoch == epoch ? 0 : AX_ESTALE;
}

int axd_shards_info(axd_shards *m, uint32_t shard, axd_shard_info *out)
{
    if (shard >= m->n)
        return AX_EINVAL;
    const shard_ent *e = &m->sh[shard];
    double now = now_fresh(m);
    memset(out, 0, sizeof *out);
    out->state = e->st;
    out->renewing = e->renewing;
    out->epoch = e->st == AXD_SHARD_OWNED ? e->epoch : e->seen;
    out->owner = e->holder ? m->names[e->holder - 1] : "";
    out->expires_in_ms = -1;
    if (e->st == AXD_SHARD_OWNED)
        out->expires_in_ms = (int64_t)((e->deadline - now) * 1000);
    else if (e->st == AXD_SHARD_FREE && e->holder && e->held_until > now)
        out->expires_in_ms = (int64_t)((e->held_until - now) * 1000);
    return 0;
}

uint32_t axd_shards_count_owned(const axd_shards *m) { return m->owned; }
uint32_t axd_shards_target(const axd_shards *m) { return m->target; }

cJSON *axd_shards_json(axd_shards *m, int all)
{
    cJSON *o = cJSON_CreateObject(), *st = cJSON_CreateObject(), *arr = cJSON_CreateArray();
    axd_lease_state ls;
    axd_lease_store_state(m->store, &ls);
    cJSON_AddStringToObject(o, "node", m->node);
    cJSON_AddNumberToObject(o, "n_shards", m->n);
    cJSON_AddNumberToObject(o, "live_nodes", m->n_live);
    cJSON_AddNumberToObject(o, "target", m->target);
    cJSON_AddNumberToObject(o, "owned", m->owned);
    cJSON_AddBoolToObject(o, "stopping", m->stopping);
    cJSON_AddBoolToObject(o, "draining", m->draining);
    cJSON_AddNumberToObject(o, "handovers", (double)m->handovers);
    cJSON_AddNumberToObject(o, "handover_ms_avg", m->handovers ? m->handover_sum / (double)m->handovers * 1000.0 : 0);
    cJSON_AddNumberToObject(o, "handover_ms_max", m->handover_max * 1000.0);
    cJSON_AddNumberToObject(o, "ttl_ms", m->cfg.ttl_ms);
    cJSON_AddNumberToObject(o, "renew_interval_ms", m->cfg.renew_interval_ms);
    cJSON_AddNumberToObject(o, "safety_margin_ms", m->cfg.safety_margin_ms);
    cJSON_AddNumberToObject(o, "acquired_total", (double)m->acquired_total);
    cJSON_AddNumberToObject(o, "lost_total", (double)m->lost_total);
    cJSON_AddNumberToObject(o, "renew_errors", (double)m->renew_errors);
    cJSON_AddNumberToObject(o, "stall_losses", (double)m->late_losses);
    cJSON_AddNumberToObject(o, "store_regressions", (double)m->regressions);
    cJSON_AddStringToObject(st, "type", ls.store ? ls.store : "?");
    cJSON_AddStringToObject(st, "conn", ls.conn ? ls.conn : "?");
    cJSON_AddStringToObject(st, "last_error", ls.last_error ? ls.last_error : "");
    cJSON_AddNumberToObject(st, "ops", (double)ls.ops);
    cJSON_AddNumberToObject(st, "errors", (double)ls.errors);
    cJSON_AddNumberToObject(st, "reconnects", (double)ls.reconnects);
    cJSON_AddItemToObject(o, "store", st);
    for (uint32_t i = 0; i < m->n; i++) {
        axd_shard_info in;
        if (!all && m->sh[i].st == AXD_SHARD_FREE)
            continue;
        axd_shards_info(m, i, &in);
        cJSON *s = cJSON_CreateObject();
        cJSON_AddNumberToObject(s, "shard", i);
        /* free here but held by another node (its last known lease): "held" */
        int held = in.state == AXD_SHARD_FREE && *in.owner && in.expires_in_ms > 0;
        cJSON_AddStringToObject(s, "state", held ? "held" : axd_shard_state_name(in.state));
        cJSON_AddStringToObject(s, "owner", in.owner);
        cJSON_AddNumberToObject(s, "epoch", (double)in.epoch); /* < 2^53: exact as a JSON number */
        cJSON_AddNumberToObject(s, "expires_in_ms", (double)in.expires_in_ms);
        cJSON_AddBoolToObject(s, "renewing", in.renewing);
        cJSON_AddItemToArray(arr, s);
    }
    cJSON_AddItemToObject(o, "shards", arr);
    return o;
}
