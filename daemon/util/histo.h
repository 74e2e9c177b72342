/* Fixed-bucket latency histograms for the metrics endpoint: one per thread that observes
 * (no atomics on the hot path), merged when scraped, written in the Prometheus text
 * exposition format. Buckets are seconds, from 50 µs to 30 s, about 2.5 per decade. */
#ifndef AXD_HISTO_H
#define AXD_HISTO_H
#include <stddef.h>
#include <stdint.h>

#define AXD_HISTO_BUCKETS 16

typedef struct axd_histo {
    uint64_t count[AXD_HISTO_BUCKETS + 1]; /* per bucket, the last one +Inf (not cumulative) */
    uint64_t n;
    double sum; /* seconds */
} axd_histo;

extern const double axd_histo_bounds[AXD_HISTO_BUCKETS]; /* upper bounds, seconds */

void axd_histo_observe(axd_histo *h, double seconds);
void axd_histo_add(axd_histo *into, const axd_histo *h);

/* Append `name` as a Prometheus histogram (cumulative _bucket series with le, _sum,
 * _count) to the text at *buf (malloc'd, grown as needed; *len its length). labels: ""
 * or `k="v",...` without braces. The HELP/TYPE lines are written by axd_prom_head. */
void axd_histo_prom(char **buf, size_t *len, size_t *cap, const char *name, const char *labels, const axd_histo *h);
/* "# HELP name help\n# TYPE name type\n" */
void axd_prom_head(char **buf, size_t *len, size_t *cap, const char *name, const char *type, const char *help);
/* printf into the growing text */
void axd_prom_printf(char **buf, size_t *len, size_t *cap, const char *fmt, ...) __attribute__((format(printf, 4, 5)));

#endif
