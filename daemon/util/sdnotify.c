/* sd_notify(3) and sd_watchdog_enabled(3) reimplemented in a few lines, so the daemon needs
 * no libsystemd: one datagram per state to the socket systemd names in NOTIFY_SOCKET. */
#include "sdnotify.h"

#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "axactor/errors.h"

int axd_sd_notify(const char *state)
{
    const char *path = getenv("NOTIFY_SOCKET");
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    size_t len;
    socklen_t salen;
    int fd, rc = 0;

    if (!path || !*path)
        return 0;
    if (!state)
        return AX_EINVAL;
    len = strlen(path);
    if ((path[0] != '/' && path[0] != '@') || len >= sizeof sa.sun_path)
        return AX_EINVAL; /* vsock and relative addresses are not used by our units */
    memcpy(sa.sun_path, path, len);
    if (path[0] == '@') {
        sa.sun_path[0] = 0; /* abstract namespace: the name is the bytes after the NUL */
        salen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len);
    } else {
        salen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len + 1);
    }
    if ((fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0)) < 0)
        return AX_EIO;
    ssize_t w;
    do
        w = sendto(fd, state, strlen(state), MSG_NOSIGNAL, (struct sockaddr *)&sa, salen);
    while (w < 0 && errno == EINTR);
    if (w < 0 || (size_t)w != strlen(state))
        rc = AX_EIO;
    close(fd);
    return rc;
}

int axd_sd_notifyf(const char *fmt, ...)
{
    char buf[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    return axd_sd_notify(buf);
}

/* A positive decimal with nothing after it, else 0. */
static unsigned long long env_number(const char *name)
{
    const char *s = getenv(name);
    char *end;
    if (!s || *s < '0' || *s > '9')
        return 0;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    return errno || *end ? 0 : v;
}

uint64_t axd_sd_watchdog_usec(void)
{
    /* WATCHDOG_PID guards against a child that inherited the environment. */
    if (getenv("WATCHDOG_PID") && env_number("WATCHDOG_PID") != (unsigned long long)getpid())
        return 0;
    return env_number("WATCHDOG_USEC");
}
