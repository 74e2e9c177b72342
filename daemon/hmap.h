/* Small containers for the daemon: a string-keyed open-addressing hash map with a
 * per-process random seed (keys come from clients, so collisions must not be
 * predictable), and a slot table that hands out (index, generation) handles. */
#ifndef AX_HMAP_H
#define AX_HMAP_H
#include <stddef.h>
#include <stdint.h>

typedef struct ax_hmap_ent {
    const char *key; /* borrowed: owned by the value; must outlive the entry */
    size_t klen;
    uint64_t hash;
    void *val;
} ax_hmap_ent;

typedef struct ax_hmap {
    ax_hmap_ent *ents;
    size_t cap, len, tombs;
} ax_hmap;

void ax_hmap_init(ax_hmap *m);
void ax_hmap_free(ax_hmap *m); /* frees the table, not keys or values; accepts zeroed */
void *ax_hmap_get(const ax_hmap *m, const char *key, size_t klen);
/* Insert or replace; returns the previous value or NULL. */
void *ax_hmap_put(ax_hmap *m, const char *key, size_t klen, void *val);
void *ax_hmap_del(ax_hmap *m, const char *key, size_t klen);
/* Iterate: for (size_t i = 0; (i = ax_hmap_next(m, i, &e)) != 0;) ... */
size_t ax_hmap_next(const ax_hmap *m, size_t i, ax_hmap_ent **e);

/* Keyed 64-bit hash of bytes (SipHash-1-3 with the process seed). */
uint64_t ax_hash(const void *p, size_t n);
void ax_hash_seed_init(void);

/* Slot table: pointers addressed by index with a generation per slot. Index 0 is never
 * used, so a zero handle means "none". Generations start at 1 and grow on reuse. */
typedef struct ax_slots {
    void **ptr;
    uint32_t *gen;
    uint32_t *free_next;
    uint32_t cap, used, free_head, limit;
} ax_slots;

void ax_slots_init(ax_slots *s, uint32_t limit);
void ax_slots_free(ax_slots *s);
/* Returns the new index (>0) and its generation, or 0 when the table is at its limit. */
uint32_t ax_slots_alloc(ax_slots *s, void *p, uint32_t *gen);
void ax_slots_release(ax_slots *s, uint32_t idx); /* bumps the generation */
static inline void *ax_slots_get(const ax_slots *s, uint64_t idx, uint32_t gen)
{
    if (idx == 0 || idx >= s->cap || s->gen[idx] != gen)
        return NULL;
    return s->ptr[idx];
}
#endif
