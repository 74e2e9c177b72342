/* Levelled logging for axactord: axd_log(level, subsystem, fmt, ...) checks the level
 * before formatting. Lines go to stderr (journald adds timestamps under systemd) as
 * "<prio>subsystem: message" (sd-daemon priority) when log_target=journal, or with an ISO timestamp
 * when log_target=stderr. Library code (proto/, libaxclient) never logs. */
#ifndef AXD_LOG_H
#define AXD_LOG_H
#include <stdatomic.h>

#include "axactor/plugin.h" /* enum ax_log_level */

/* The current threshold: messages with level > it are dropped before formatting. Any
 * thread reads it; `axctl log-level` changes it at run time. */
extern _Atomic int axd_log_threshold;

void axd_log_set_level(int level);
/* "error", "warn", "info", "debug" -> level; -1 if unknown. */
int axd_log_level_parse(const char *s);
const char *axd_log_level_name(int level);
/* target: "stderr" (timestamps), "journal" (sd-daemon <N> priority prefixes) or "auto"
 * (journal when $JOURNAL_STREAM names our stderr, as systemd sets it for a service whose
 * output goes to the journal; else stderr). */
void axd_log_set_target(const char *target);
/* The target in use: "stderr" or "journal". */
const char *axd_log_target_name(void);

void axd_log_write(int level, const char *subsys, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

#define axd_log(level, subsys, ...)                                                                   \
    do {                                                                                             \
        if ((level) <= atomic_load_explicit(&axd_log_threshold, memory_order_relaxed))              \
            axd_log_write((level), (subsys), __VA_ARGS__);                                            \
    } while (0)

#endif
