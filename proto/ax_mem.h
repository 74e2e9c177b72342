/* One allocation wrapper pair. ax_malloc & co abort on failure (for sizes we control);
 * ax_try_* return NULL (for sizes the network or a client controls, after checking them
 * against a limit). Everything is freed with ax_free, which accepts NULL. */
#ifndef AX_MEM_H
#define AX_MEM_H
#include <stddef.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

static inline void ax_oom(size_t n)
{
    fprintf(stderr, "axactor: out of memory allocating %zu bytes\n", n);
    abort();
}
static inline void *ax_malloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p)
        ax_oom(n);
    return p;
}
static inline void *ax_calloc(size_t k, size_t n)
{
    void *p = calloc(k ? k : 1, n ? n : 1);
    if (!p)
        ax_oom(k * n);
    return p;
}
static inline void *ax_realloc(void *o, size_t n)
{
    void *p = realloc(o, n ? n : 1);
    if (!p)
        ax_oom(n);
    return p;
}
static inline char *ax_strndup(const char *s, size_t n)
{
    char *p = ax_malloc(n + 1);
    memcpy(p, s, n);
    p[n] = 0;
    return p;
}
static inline char *ax_strdup(const char *s) { return ax_strndup(s, strlen(s)); }
static inline void *ax_try_malloc(size_t n) { return malloc(n ? n : 1); }
static inline void *ax_try_realloc(void *o, size_t n) { return realloc(o, n ? n : 1); }
static inline void ax_free(void *p) { free(p); }
#endif
