/* Histograms and the Prometheus text writer for the metrics endpoint (histo.h). */
#include "histo.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "ax_mem.h"

const double axd_histo_bounds[AXD_HISTO_BUCKETS] = {0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025,
                                                    0.005,   0.01,   0.025,   0.05,   0.1,   0.25,
                                                    0.5,     1.0,    5.0,     30.0};

void axd_histo_observe(axd_histo *h, double seconds)
{
    if (!(seconds >= 0))
        seconds = 0; /* NaN or a clock step: counted in the first bucket */
    size_t i = 0;
    while (i < AXD_HISTO_BUCKETS && seconds > axd_histo_bounds[i])
        i++;
    h->count[i]++;
    h->n++;
    h->sum += seconds;
}

void axd_histo_add(axd_histo *into, const axd_histo *h)
{
    for (size_t i = 0; i <= AXD_HISTO_BUCKETS; i++)
        into->count[i] += h->count[i];
    into->n += h->n;
    into->sum += h->sum;
}

void axd_prom_printf(char **buf, size_t *len, size_t *cap, const char *fmt, ...)
{
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        size_t room = *cap - *len;
        int n = vsnprintf(*buf ? *buf + *len : NULL, *buf ? room : 0, fmt, ap);
        va_end(ap);
        if (n < 0)
            return;
        if (*buf && (size_t)n < room) {
            *len += (size_t)n;
            return;
        }
        size_t want = *len + (size_t)n + 1;
        size_t nc = *cap ? *cap : 4096;
        while (nc < want)
            nc *= 2;
        *buf = ax_realloc(*buf, nc);
        *cap = nc;
    }
}

void axd_prom_head(char **buf, size_t *len, size_t *cap, const char *name, const char *type, const char *help)
{
    axd_prom_printf(buf, len, cap, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

void axd_histo_prom(char **buf, size_t *len, size_t *cap, const char *name, const char *labels, const axd_histo *h)
{
    const char *sep = labels && *labels ? "," : "";
    if (!labels)
        labels = "";
    uint64_t cum = 0;
    for (size_t i = 0; i < AXD_HISTO_BUCKETS; i++) {
        cum += h->count[i];
        axd_prom_printf(buf, len, cap, "%s_bucket{%s%sle=\"%g\"} %llu\n", name, labels, sep, axd_histo_bounds[i],
                        (unsigned long long)cum);
    }
    cum += h->count[AXD_HISTO_BUCKETS];
    axd_prom_printf(buf, len, cap, "%s_bucket{%s%sle=\"+Inf\"} %llu\n", name, labels, sep, (unsigned long long)cum);
    if (*labels) {
        axd_prom_printf(buf, len, cap, "%s_sum{%s} %.9g\n%s_count{%s} %llu\n", name, labels, h->sum, name, labels,
                        (unsigned long long)h->n);
    } else {
        axd_prom_printf(buf, len, cap, "%s_sum %.9g\n%s_count %llu\n", name, h->sum, name, (unsigned long long)h->n);
    }
}
