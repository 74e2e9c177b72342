/* The in-memory overlay: many nodes of one test process on one simulated network,
 * each on its own libev loop. Frames travel through per-link inboxes delivered by a
 * timer on the receiver's loop (never re-entrantly from send), in order. Faults per
 * direction: drop with a probability from a seeded PRNG (deterministic), delay,
 * partition (frames dropped, connects refused), heal, reset. */
#include <stdio.h>
#include <string.h>

#include "ax_mem.h"
#include "overlay.h"
#include "peer.h"

typedef struct mem_ovl mem_ovl;

typedef struct mem_item {
    struct mem_item *next;
    double at;
    int close;  /* a close notice, not a frame */
    size_t n;
    uint8_t data[];
} mem_item;

typedef struct mem_link {
    axd_ovl_link pub;
    mem_ovl *o;
    struct mem_link *peer;
    int dead, in_cb, opened, notified;
    mem_item *head, *tail;
    double last_at;
    ev_timer t;
    char remote[80];
    struct mem_link *next, *prev;
} mem_link;

struct mem_ovl {
    axd_ovl pub;
    axd_ovl_net *net;
    char name[64];
    mem_link *links;
    mem_ovl *next;
};

typedef struct fault {
    char from[64], to[64];
    unsigned drop, delay_ms;
    int blocked;
    struct fault *next;
} fault;

struct axd_ovl_net {
    mem_ovl *nodes;
    fault *faults;
    uint64_t rng, dropped;
};

static const axd_ovl_ops mem_ops;

static uint64_t rng_next(axd_ovl_net *n)
{
    uint64_t x = n->rng; /* xorshift64* */
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    n->rng = x;
    return x * 2685821657736338717ull;
}

static int match(const char *pat, const char *name) { return !strcmp(pat, "*") || !strcmp(pat, name); }

/* The effective fault from -> to (the first matching rule of each kind wins). */
static void fault_of(axd_ovl_net *n, const char *from, const char *to, unsigned *drop, unsigned *delay, int *blocked)
{
    *drop = *delay = 0;
    *blocked = 0;
    for (fault *f = n->faults; f; f = f->next) {
        if (!match(f->from, from) || !match(f->to, to))
            continue;
        if (f->blocked)
            *blocked = 1;
        if (f->drop > *drop)
            *drop = f->drop;
        if (f->delay_ms > *delay)
            *delay = f->delay_ms;
    }
}

static fault *fault_get(axd_ovl_net *n, const char *from, const char *to)
{
    for (fault *f = n->faults; f; f = f->next)
        if (!strcmp(f->from, from) && !strcmp(f->to, to))
            return f;
    fault *f = ax_calloc(1, sizeof *f);
    snprintf(f->from, sizeof f->from, "%s", from);
    snprintf(f->to, sizeof f->to, "%s", to);
    f->next = n->faults;
    n->faults = f;
    return f;
}

axd_ovl_net *axd_ovl_net_new(uint64_t seed)
{
    axd_ovl_net *n = ax_calloc(1, sizeof *n);
    n->rng = seed ? seed : 0x9e3779b97f4a7c15ull;
    return n;
}

void axd_ovl_net_free(axd_ovl_net *n)
{
    if (!n)
        return;
    while (n->faults) {
        fault *f = n->faults;
        n->faults = f->next;
        ax_free(f);
    }
    ax_free(n);
}

void axd_ovl_net_drop(axd_ovl_net *n, const char *from, const char *to, unsigned permille)
{
    fault_get(n, from, to)->drop = permille > 1000 ? 1000 : permille;
}

void axd_ovl_net_delay(axd_ovl_net *n, const char *from, const char *to, unsigned delay_ms)
{
    fault_get(n, from, to)->delay_ms = delay_ms;
}

void axd_ovl_net_partition(axd_ovl_net *n, const char *from, const char *to, int blocked)
{
    fault_get(n, from, to)->blocked = blocked;
}

void axd_ovl_net_partition2(axd_ovl_net *n, const char *a, const char *b)
{
    axd_ovl_net_partition(n, a, b, 1);
    axd_ovl_net_partition(n, b, a, 1);
}

void axd_ovl_net_heal(axd_ovl_net *n, const char *a, const char *b)
{
    for (fault **pp = &n->faults; *pp;) {
        fault *f = *pp;
        if ((!strcmp(f->from, a) && !strcmp(f->to, b)) || (!strcmp(f->from, b) && !strcmp(f->to, a))) {
            *pp = f->next;
            ax_free(f);
        } else {
            pp = &f->next;
        }
    }
}

uint64_t axd_ovl_net_dropped(const axd_ovl_net *n) { return n->dropped; }

/* ---------------- links ---------------- */

static void link_free(mem_link *l)
{
    mem_ovl *o = l->o;
    ev_timer_stop(o->pub.loop, &l->t);
    if (l->prev)
        l->prev->next = l->next;
    else if (o->links == l)
        o->links = l->next;
    if (l->next)
        l->next->prev = l->prev;
    while (l->head) {
        mem_item *it = l->head;
        l->head = it->next;
        ax_free(it);
    }
    if (l->peer)
        l->peer->peer = NULL;
    ax_free(l);
}

static void arm(mem_link *l)
{
    if (!l->head || l->dead)
        return;
    double wait = l->head->at - ev_time();
    ev_timer_stop(l->o->pub.loop, &l->t);
    ev_timer_set(&l->t, wait > 0 ? wait : 0., 0.);
    ev_timer_start(l->o->pub.loop, &l->t);
}

static void push(mem_link *l, mem_item *it)
{
    if (it->at < l->last_at)
        it->at = l->last_at; /* order is preserved under delay changes */
    l->last_at = it->at;
    it->next = NULL;
    if (l->tail)
        l->tail->next = it;
    else
        l->head = it;
    l->tail = it;
    arm(l);
}

static void notify_close(mem_link *l, const char *why)
{
    mem_item *it = ax_calloc(1, sizeof *it + strlen(why) + 1);
    it->close = 1;
    it->at = ev_time();
    it->n = strlen(why);
    memcpy(it->data, why, it->n + 1);
    push(l, it);
}

static void fire_close(mem_link *l, const char *why)
{
    if (l->dead)
        return;
    l->dead = 1;
    if (l->peer) {
        l->peer->peer = NULL;
        l->peer = NULL;
    }
    axd_ovl *o = &l->o->pub;
    l->in_cb++;
    if (l->opened || l->pub.outgoing)
        o->cbs.on_close(o->user, &l->pub, why);
    l->in_cb--;
}

static void timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    mem_link *l = w->data;
    axd_ovl *o = &l->o->pub;
    double now = ev_time();
    l->in_cb++;
    if (!l->opened && !l->dead) {
        l->opened = 1;
        o->cbs.on_open(o->user, &l->pub, l->pub.outgoing, l->pub.outgoing ? l->remote + 4 : NULL);
    }
    while (!l->dead && l->head && l->head->at <= now) {
        mem_item *it = l->head;
        l->head = it->next;
        if (!l->head)
            l->tail = NULL;
        if (it->close) {
            fire_close(l, (const char *)it->data);
        } else {
            ax_peer_hdr h;
            const char *why = "bad frame";
            if (ax_peer_hdr_decode(it->data, it->n, o->max_frame, &h, &why) != 0 ||
                it->n != AX_PEER_HDR_SIZE + (size_t)h.body_len)
                fire_close(l, why);
            else
                o->cbs.on_frame(o->user, &l->pub, it->data, it->n);
        }
        ax_free(it);
    }
    l->in_cb--;
    if (l->dead) {
        if (!l->in_cb)
            link_free(l);
        return;
    }
    arm(l);
}

static mem_link *link_new(mem_ovl *o, int outgoing, const char *remote)
{
    mem_link *l = ax_calloc(1, sizeof *l);
    l->pub.ovl = &o->pub;
    l->pub.outgoing = outgoing;
    l->o = o;
    snprintf(l->remote, sizeof l->remote, "mem:%s", remote);
    ev_timer_init(&l->t, timer_cb, 0., 0.);
    l->t.data = l;
    l->next = o->links;
    if (o->links)
        o->links->prev = l;
    o->links = l;
    return l;
}

static mem_ovl *find_node(axd_ovl_net *n, const char *name)
{
    for (mem_ovl *o = n->nodes; o; o = o->next)
        if (!strcmp(o->name, name))
            return o;
    return NULL;
}

static int mem_connect(axd_ovl *po, const char *to, axd_ovl_link **out)
{
    mem_ovl *o = (mem_ovl *)po;
    unsigned drop, delay;
    int blocked;
    mem_ovl *dst = find_node(o->net, to);
    mem_link *a = link_new(o, 1, to);
    *out = &a->pub;
    fault_of(o->net, o->name, to, &drop, &delay, &blocked);
    int blocked_back;
    fault_of(o->net, to, o->name, &drop, &delay, &blocked_back);
    if (!dst || blocked || blocked_back) {
        notify_close(a, dst ? "connect: partitioned" : "connect: no such node");
        return 0;
    }
    mem_link *b = link_new(dst, 0, o->name);
    a->peer = b;
    b->peer = a;
    ev_timer_set(&a->t, 0., 0.);
    ev_timer_start(o->pub.loop, &a->t);
    ev_timer_set(&b->t, 0., 0.);
    ev_timer_start(dst->pub.loop, &b->t);
    return 0;
}

static int mem_send(axd_ovl_link *pl, const void *p, size_t n)
{
    mem_link *l = (mem_link *)pl;
    if (l->dead)
        return AX_ECONN;
    if (!l->peer)
        return 0; /* the far end is gone; its close notice is on the way */
    mem_ovl *o = l->o, *dst = l->peer->o;
    const uint8_t *b = p;
    size_t off = 0;
    while (n - off >= AX_PEER_HDR_SIZE) {
        size_t total = AX_PEER_HDR_SIZE + ((size_t)b[off + 12] << 24 | (size_t)b[off + 13] << 16 |
                                           (size_t)b[off + 14] << 8 | b[off + 15]);
        if (total > n - off)
            total = n - off; /* a torn frame: deliver it as is; the receiver rejects it */
        unsigned drop, delay;
        int blocked;
        fault_of(o->net, o->name, dst->name, &drop, &delay, &blocked);
        if (blocked || (drop && rng_next(o->net) % 1000 < drop)) {
            o->net->dropped++;
        } else {
            mem_item *it = ax_malloc(sizeof *it + total);
            it->close = 0;
            it->n = total;
            it->at = ev_time() + delay / 1000.0;
            memcpy(it->data, b + off, total);
            push(l->peer, it);
        }
        off += total;
    }
    return 0;
}

static size_t mem_queued(const axd_ovl_link *l)
{
    (void)l;
    return 0;
}

static void mem_close(axd_ovl_link *pl)
{
    mem_link *l = (mem_link *)pl;
    if (l->dead)
        return;
    l->dead = 1;
    if (l->peer) {
        notify_close(l->peer, "connection closed by the peer");
        l->peer->peer = NULL;
        l->peer = NULL;
    }
    if (!l->in_cb)
        link_free(l);
}

static const char *mem_remote(const axd_ovl_link *pl) { return ((const mem_link *)pl)->remote; }

static void mem_free(axd_ovl *po)
{
    mem_ovl *o = (mem_ovl *)po;
    if (!o)
        return;
    while (o->links) {
        mem_link *l = o->links;
        if (l->peer) {
            notify_close(l->peer, "connection closed by the peer");
            l->peer->peer = NULL;
            l->peer = NULL;
        }
        link_free(l);
    }
    for (mem_ovl **pp = &o->net->nodes; *pp; pp = &(*pp)->next)
        if (*pp == o) {
            *pp = o->next;
            break;
        }
    ax_free(o);
}

void axd_ovl_net_reset(axd_ovl_net *n, const char *a, const char *b)
{
    mem_ovl *oa = find_node(n, a);
    if (!oa)
        return;
    for (mem_link *l = oa->links; l; l = l->next) {
        if (l->dead || !l->peer || strcmp(l->peer->o->name, b))
            continue;
        notify_close(l->peer, "connection reset");
        notify_close(l, "connection reset");
        l->peer->peer = NULL;
        l->peer = NULL;
    }
}

static const axd_ovl_ops mem_ops = {
    .name = "memory",
    .connect = mem_connect,
    .send = mem_send,
    .queued = mem_queued,
    .close = mem_close,
    .free = mem_free,
    .remote = mem_remote,
};

int axd_ovl_mem_new(axd_ovl_net *n, struct ev_loop *loop, const char *name, const axd_ovl_cbs *cbs, void *user,
                   uint32_t max_frame, axd_ovl **out)
{
    if (!n || !name || find_node(n, name))
        return AX_EEXIST;
    mem_ovl *o = ax_calloc(1, sizeof *o);
    o->pub.ops = &mem_ops;
    o->pub.loop = loop;
    o->pub.cbs = *cbs;
    o->pub.user = user;
    o->pub.max_frame = max_frame;
    o->pub.low_water = 256u << 10;
    o->net = n;
    snprintf(o->name, sizeof o->name, "%s", name);
    o->next = n->nodes;
    n->nodes = o;
    *out = &o->pub;
    return 0;
}
