/* Levelled logging for axactord: ax_log(level, subsystem, fmt, ...) checks the level
 * before formatting. Lines go to stderr (journald adds timestamps under systemd) as
 * "<prio>subsystem: message" (sd-daemon priority) when log_target=journal, or with an ISO timestamp
 * when log_target=stderr. Library code (proto/, libaxclient) never logs. */
#ifndef AX_LOG_H
#define AX_LOG_H
#include "axactor/plugin.h" /* enum ax_log_level */

/* The current threshold: messages with level > it are dropped before formatting. */
extern int ax_log_threshold;

void ax_log_set_level(int level);
/* "error", "warn", "info", "debug" -> level; -1 if unknown. */
int ax_log_level_parse(const char *s);
const char *ax_log_level_name(int level);
/* target: "stderr" (timestamps) or "journal" (sd-daemon <N> priority prefixes). */
void ax_log_set_target(const char *target);

void ax_log_write(int level, const char *subsys, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

#define ax_log(level, subsys, ...)                                                                   \
    do {                                                                                             \
        if ((level) <= ax_log_threshold)                                                             \
            ax_log_write((level), (subsys), __VA_ARGS__);                                            \
    } while (0)

#endif
