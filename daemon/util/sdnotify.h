/* The sd_notify protocol without libsystemd: tell systemd (Type=notify) that the daemon
 * is ready, stopping or alive, and read the watchdog interval it expects. Everything is a
 * no-op when the daemon does not run under systemd (NOTIFY_SOCKET / WATCHDOG_USEC unset). */
#ifndef AXD_SDNOTIFY_H
#define AXD_SDNOTIFY_H
#include <stdint.h>

/* Send state ("READY=1", "STOPPING=1", "WATCHDOG=1", "STATUS=...", lines joined by '\n')
 * as one datagram to $NOTIFY_SOCKET ('@' = abstract socket). 0 if sent or if unset;
 * AX_EINVAL for a malformed NOTIFY_SOCKET, AX_EIO if the send failed. */
int axd_sd_notify(const char *state);
/* printf-style axd_sd_notify, e.g. axd_sd_notifyf("STATUS=%zu actors", n). Long states are cut
 * at 4 KiB. */
int axd_sd_notifyf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* $WATCHDOG_USEC if set, valid and (when $WATCHDOG_PID is set) meant for this process;
 * else 0. Send "WATCHDOG=1" at about half this interval. */
uint64_t axd_sd_watchdog_usec(void);

#endif
