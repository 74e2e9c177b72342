/* String hash map (linear probing, tombstones) and generation-checked slot table.
 * The hash is SipHash-1-3 keyed from getrandom(2) once per process, so clients that choose
 * actor names or keys cannot aim for collisions. */
#include "hmap.h"

#include <pthread.h>
#include <string.h>
#include <sys/random.h>

#include "ax_mem.h"

static uint64_t seed_k0 = 0x736f6d6570736575ull, seed_k1 = 0x646f72616e646f6dull;

static void seed_once(void)
{
    uint64_t k[2];
    if (getrandom(k, sizeof k, 0) == (ssize_t)sizeof k) {
        seed_k0 = k[0];
        seed_k1 = k[1];
    }
}

void axd_hash_seed_init(void)
{
    /* Once per process: maps hashed under the old seed would become unreadable (several
     * servers share a process in the in-memory cluster tests, workers share one seed). */
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, seed_once);
}

#define ROTL(x, b) (uint64_t)(((x) << (b)) | ((x) >> (64 - (b))))
#define SIPROUND                                                                                     \
    do {                                                                                             \
        v0 += v1; v1 = ROTL(v1, 13); v1 ^= v0; v0 = ROTL(v0, 32);                                    \
        v2 += v3; v3 = ROTL(v3, 16); v3 ^= v2;                                                       \
        v0 += v3; v3 = ROTL(v3, 21); v3 ^= v0;                                                       \
        v2 += v1; v1 = ROTL(v1, 17); v1 ^= v2; v2 = ROTL(v2, 32);                                    \
    } while (0)

uint64_t axd_hash(const void *data, size_t n)
{
    const uint8_t *p = data;
    uint64_t v0 = 0x736f6d6570736575ull ^ seed_k0, v1 = 0x646f72616e646f6dull ^ seed_k1;
    uint64_t v2 = 0x6c7967656e657261ull ^ seed_k0, v3 = 0x7465646279746573ull ^ seed_k1;
    uint64_t b = (uint64_t)n << 56, m;
    size_t i, left = n & 7, end = n - left;
    for (i = 0; i < end; i += 8) {
        memcpy(&m, p + i, 8);
        v3 ^= m;
        SIPROUND;
        v0 ^= m;
    }
    for (size_t j = 0; j < left; j++)
        b |= (uint64_t)p[end + j] << (8 * j);
    v3 ^= b;
    SIPROUND;
    v0 ^= b;
    v2 ^= 0xff;
    SIPROUND;
    SIPROUND;
    SIPROUND;
    return v0 ^ v1 ^ v2 ^ v3;
}

#define TOMB ((const char *)1)

void axd_hmap_init(axd_hmap *m) { memset(m, 0, sizeof *m); }
void axd_hmap_free(axd_hmap *m)
{
    if (!m)
        return;
    ax_free(m->ents);
    memset(m, 0, sizeof *m);
}

static axd_hmap_ent *find(const axd_hmap *m, const char *key, size_t klen, uint64_t h)
{
    if (!m->cap)
        return NULL;
    size_t mask = m->cap - 1;
    for (size_t i = h & mask;; i = (i + 1) & mask) {
        axd_hmap_ent *e = &m->ents[i];
        if (!e->key)
            return NULL;
        if (e->key != TOMB && e->hash == h && e->klen == klen && memcmp(e->key, key, klen) == 0)
            return e;
    }
}

void *axd_hmap_get(const axd_hmap *m, const char *key, size_t klen)
{
    axd_hmap_ent *e = find(m, key, klen, axd_hash(key, klen));
    return e ? e->val : NULL;
}

static void grow(axd_hmap *m)
{
    size_t ncap = m->cap ? m->cap * 2 : 16;
    if (m->len * 2 < m->cap)
        ncap = m->cap; /* mostly tombstones: rehash in place size */
    axd_hmap_ent *old = m->ents;
    size_t ocap = m->cap;
    m->ents = ax_calloc(ncap, sizeof *m->ents);
    m->cap = ncap;
    m->len = m->tombs = 0;
    for (size_t i = 0; i < ocap; i++) {
        if (old[i].key && old[i].key != TOMB) {
            size_t j = old[i].hash & (ncap - 1);
            while (m->ents[j].key)
                j = (j + 1) & (ncap - 1);
            m->ents[j] = old[i];
            m->len++;
        }
    }
    ax_free(old);
}

void *axd_hmap_put(axd_hmap *m, const char *key, size_t klen, void *val)
{
    uint64_t h = axd_hash(key, klen);
    axd_hmap_ent *e = find(m, key, klen, h);
    if (e) {
        void *old = e->val;
        e->key = key;
        e->val = val;
        return old;
    }
    if ((m->len + m->tombs + 1) * 4 >= m->cap * 3)
        grow(m);
    size_t mask = m->cap - 1, i = h & mask;
    while (m->ents[i].key && m->ents[i].key != TOMB)
        i = (i + 1) & mask;
    if (m->ents[i].key == TOMB)
        m->tombs--;
    m->ents[i] = (axd_hmap_ent){key, klen, h, val};
    m->len++;
    return NULL;
}

void *axd_hmap_del(axd_hmap *m, const char *key, size_t klen)
{
    axd_hmap_ent *e = find(m, key, klen, axd_hash(key, klen));
    if (!e)
        return NULL;
    void *old = e->val;
    e->key = TOMB;
    e->val = NULL;
    m->len--;
    m->tombs++;
    return old;
}

size_t axd_hmap_next(const axd_hmap *m, size_t i, axd_hmap_ent **e)
{
    for (; i < m->cap; i++) {
        if (m->ents[i].key && m->ents[i].key != TOMB) {
            *e = &m->ents[i];
            return i + 1;
        }
    }
    return 0;
}

void axd_slots_init(axd_slots *s, uint32_t limit)
{
    memset(s, 0, sizeof *s);
    s->limit = limit;
}

void axd_slots_free(axd_slots *s)
{
    if (!s)
        return;
    ax_free(s->ptr);
    ax_free(s->gen);
    ax_free(s->free_next);
    memset(s, 0, sizeof *s);
}

uint32_t axd_slots_alloc(axd_slots *s, void *p, uint32_t *gen)
{
    uint32_t idx;
    if (s->free_head) {
        idx = s->free_head;
        s->free_head = s->free_next[idx];
    } else {
        if (s->used + 1 >= s->cap) {
            if (s->cap > s->limit)
                return 0;
            uint32_t ncap = s->cap ? s->cap * 2 : 64;
            if (ncap > s->limit + 1)
                ncap = s->limit + 1;
            if (ncap <= s->used + 1)
                return 0;
            s->ptr = ax_realloc(s->ptr, ncap * sizeof *s->ptr);
            s->gen = ax_realloc(s->gen, ncap * sizeof *s->gen);
            s->free_next = ax_realloc(s->free_next, ncap * sizeof *s->free_next);
            for (uint32_t i = s->cap; i < ncap; i++) {
                s->ptr[i] = NULL;
                s->gen[i] = 1;
                s->free_next[i] = 0;
            }
            s->cap = ncap;
        }
        idx = ++s->used;
    }
    s->ptr[idx] = p;
    *gen = s->gen[idx];
    return idx;
}

void axd_slots_release(axd_slots *s, uint32_t idx)
{
    if (idx == 0 || idx >= s->cap || !s->ptr[idx])
        return;
    s->ptr[idx] = NULL;
    if (++s->gen[idx] == 0)
        s->gen[idx] = 1;
    s->free_next[idx] = s->free_head;
    s->free_head = idx;
}
