/* The Prometheus endpoint (metrics.listen): GET /metrics over HTTP, served by
 * libmicrohttpd on a thread of its own; every scrape is composed on worker 0's loop (the
 * node's state is that thread's), handed over under a mutex. */
#ifndef AXD_METRICS_H
#define AXD_METRICS_H

#include <stddef.h>

#include "front.h"

typedef struct axd_metrics axd_metrics;

/* Serve metrics for front s (worker 0's) on listen ("IP:port"). NULL with err on a bad
 * address or a port that cannot be bound. */
axd_metrics *axd_metrics_start(axd_front *s, const char *listen, char *err, size_t errlen);
/* Stop serving (a scrape in progress is answered 503) and free. NULL is fine. From
 * worker 0's thread. */
void axd_metrics_stop(axd_metrics *m);
/* The exposition text now (malloc'd, *len bytes; the caller frees). Worker 0's thread. */
char *axd_metrics_text(axd_front *s, size_t *len);

#endif
