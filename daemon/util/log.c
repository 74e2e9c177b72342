/* Levelled logging for axactord (see log.h). Each line is built in one buffer and
 * written with one write(2), so lines from a crash or a concurrent writer never
 * interleave mid-line; message bytes are sanitized because they may carry client input. */
#include "log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define LOG_LINE_MAX 2048 /* longer lines are cut and end in "..." */

_Atomic int axd_log_threshold = AX_LOG_INFO;
static int log_journal; /* 0: ISO timestamps; 1: "<prio>" prefixes for journald */

static const char *const level_names[] = {"error", "warn", "info", "debug"};
static const char *const level_tags[] = {"ERROR", "WARN", "INFO", "DEBUG"};
static const char level_prio[] = {'3', '4', '6', '7'}; /* sd-daemon.h: err, warning, info, debug */

static int clamp_level(int level)
{
    return level < AX_LOG_ERROR ? AX_LOG_ERROR : level > AX_LOG_DEBUG ? AX_LOG_DEBUG : level;
}

void axd_log_set_level(int level) { atomic_store_explicit(&axd_log_threshold, clamp_level(level), memory_order_relaxed); }

int axd_log_level_parse(const char *s)
{
    if (!s)
        return -1;
    for (int i = 0; i < 4; i++)
        if (!strcmp(s, level_names[i]))
            return i;
    return -1;
}

const char *axd_log_level_name(int level) { return level_names[clamp_level(level)]; }

/* systemd sets JOURNAL_STREAM=<dev>:<inode> of the stream it connected to stderr (and
 * stdout) when they go to the journal; a stderr redirected elsewhere no longer matches. */
static int stderr_is_journal(void)
{
    const char *js = getenv("JOURNAL_STREAM");
    unsigned long long dev, ino;
    struct stat st;
    if (!js || sscanf(js, "%llu:%llu", &dev, &ino) != 2 || fstat(STDERR_FILENO, &st) != 0)
        return 0;
    return (unsigned long long)st.st_dev == dev && (unsigned long long)st.st_ino == ino;
}

void axd_log_set_target(const char *target)
{
    log_journal = target && (!strcmp(target, "journal") || (!strcmp(target, "auto") && stderr_is_journal()));
}

const char *axd_log_target_name(void) { return log_journal ? "journal" : "stderr"; }

/* Control bytes could forge extra log lines or terminal escapes. */
static void sanitize(char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)p[i] < 0x20 || p[i] == 0x7f)
            p[i] = '?';
}

/* Append to line[*len..room) like snprintf; returns 0 if the text was cut. */
static int append(char *line, size_t *len, size_t room, const char *fmt, va_list ap)
    __attribute__((format(printf, 4, 0)));
static int append(char *line, size_t *len, size_t room, const char *fmt, va_list ap)
{
    int n = vsnprintf(line + *len, room - *len, fmt, ap);
    if (n < 0)
        return 1; /* an encoding error drops this piece, not the line */
    if ((size_t)n < room - *len) {
        *len += (size_t)n;
        return 1;
    }
    *len = room - 1; /* vsnprintf filled the buffer up to its terminating NUL */
    return 0;
}

static int appendf(char *line, size_t *len, size_t room, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int appendf(char *line, size_t *len, size_t room, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int ok = append(line, len, room, fmt, ap);
    va_end(ap);
    return ok;
}

void axd_log_write(int level, const char *subsys, const char *fmt, ...)
{
    char line[LOG_LINE_MAX];
    const size_t room = sizeof line - 1; /* one byte kept for the '\n' */
    int saved_errno = errno;             /* callers log and then still look at errno */
    size_t len = 0;
    int ok;

    level = clamp_level(level);
    if (log_journal) {
        appendf(line, &len, room, "<%c>", level_prio[level]);
    } else {
        struct timespec ts;
        struct tm tm;
        clock_gettime(CLOCK_REALTIME, &ts);
        gmtime_r(&ts.tv_sec, &tm);
        len = strftime(line, room, "%Y-%m-%dT%H:%M:%S", &tm);
        appendf(line, &len, room, ".%03ldZ %s ", ts.tv_nsec / 1000000L, level_tags[level]);
    }
    ok = appendf(line, &len, room, "%s: ", subsys ? subsys : "?");
    if (ok) {
        va_list ap;
        va_start(ap, fmt);
        ok = append(line, &len, room, fmt, ap);
        va_end(ap);
    }
    if (!ok)
        memcpy(line + len - 3, "...", 3);
    sanitize(line, len); /* prefixes are printable already; this is for subsys and message */
    line[len++] = '\n';

    for (size_t off = 0; off < len;) {
        ssize_t w = write(STDERR_FILENO, line + off, len - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            break; /* nowhere to report a failing log sink */
        off += (size_t)w;
    }
    errno = saved_errno;
}
