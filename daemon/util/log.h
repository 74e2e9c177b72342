/* Levelled logging for axactord: axd_log(level, subsystem, fmt, ...) checks the level
 * before formatting. Lines go to stderr (journald adds timestamps under systemd) as
 * "<prio>subsystem: message" (sd-daemon priority) when log_target=journal, or with an ISO timestamp
 * when log_target=stderr. Library code (proto/, libaxclient) never logs. */
#ifndef AXD_LOG_H
#define AXD_LOG_H
#include "axactor/plugin.h" /* enum ax_log_level */

/* The current threshold: messages with level > it are dropped before formatting. */
extern int axd_log_threshold;

void axd_log_set_level(int level);
/* "error", "warn", "info", "debug" -> level; -1 if unknown. */
int axd_log_level_parse(const char *s);
const char *axd_log_level_name(int level);
/* target: "stderr" (timestamps) or "journal" (sd-daemon <N> priority prefixes). */
void axd_log_set_target(const char *target);

void axd_log_write(int level, const char *subsys, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

#define axd_log(level, subsys, ...)                                                                   \
    do {                                                                                             \
        if ((level) <= axd_log_threshold)                                                             \
            axd_log_write((level), (subsys), __VA_ARGS__);                                            \
    } while (0)

#endif
