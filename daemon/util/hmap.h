/* Small containers for the daemon: a string-keyed open-addressing hash map with a
 * per-process random seed (keys come from clients, so collisions must not be
 * predictable), and a slot table that hands out (index, generation) handles. */
#ifndef AXD_HMAP_H
#define AXD_HMAP_H
#include <stddef.h>
#include <stdint.h>

typedef struct axd_hmap_ent {
    const char *key; /* borrowed: owned by the value; must outlive the entry */
    size_t klen;
    uint64_t hash;
    void *val;
} axd_hmap_ent;

typedef struct axd_hmap {
    axd_hmap_ent *ents;
    size_t cap, len, tombs;
} axd_hmap;

void axd_hmap_init(axd_hmap *m);
void axd_hmap_free(axd_hmap *m); /* frees the table, not keys or values; accepts zeroed */
void *axd_hmap_get(const axd_hmap *m, const char *key, size_t klen);
/* Insert or replace; returns the previous value or NULL. */
void *axd_hmap_put(axd_hmap *m, const char *key, size_t klen, void *val);
void *axd_hmap_del(axd_hmap *m, const char *key, size_t klen);
/* Iterate: for (size_t i = 0; (i = axd_hmap_next(m, i, &e)) != 0;) ... */
size_t axd_hmap_next(const axd_hmap *m, size_t i, axd_hmap_ent **e);

/* Keyed 64-bit hash of bytes (SipHash-1-3 with the process seed). */
uint64_t axd_hash(const void *p, size_t n);
void axd_hash_seed_init(void);

/* Slot table: pointers addressed by index with a generation per slot. Index 0 is never
 * used, so a zero handle means "none". Generations start at 1 and grow on reuse. */
typedef struct axd_slots {
    void **ptr;
    uint32_t *gen;
    uint32_t *free_next;
    uint32_t cap, used, free_head, limit;
} axd_slots;

void axd_slots_init(axd_slots *s, uint32_t limit);
void axd_slots_free(axd_slots *s);
/* Returns the new index (>0) and its generation, or 0 when the table is at its limit. */
uint32_t axd_slots_alloc(axd_slots *s, void *p, uint32_t *gen);
void axd_slots_release(axd_slots *s, uint32_t idx); /* bumps the generation */
static inline void *axd_slots_get(const axd_slots *s, uint64_t idx, uint32_t gen)
{
    if (idx == 0 || idx >= s->cap || s->gen[idx] != gen)
        return NULL;
    return s->ptr[idx];
}
#endif
