/* Unit tests for daemon/sdnotify.c: the state reaches a datagram socket named by
 * NOTIFY_SOCKET (path or '@' abstract), nothing happens when it is unset, and
 * WATCHDOG_USEC is honoured only for this process. */
#include <check.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "axactor/errors.h"
#include "sdnotify.h"

/* Bind a datagram socket at name ('@' = abstract); returns its fd. */
static int listen_at(const char *name)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    size_t len = strlen(name);
    socklen_t salen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len + (name[0] != '@'));
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    ck_assert_int_ge(fd, 0);
    memcpy(sa.sun_path, name, len);
    if (name[0] == '@')
        sa.sun_path[0] = 0;
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&sa, salen), 0);
    return fd;
}

static void expect_datagram(int fd, const char *want)
{
    char buf[256];
    ssize_t n = recv(fd, buf, sizeof buf - 1, MSG_DONTWAIT);
    ck_assert_int_eq(n, (ssize_t)strlen(want));
    buf[n] = 0;
    ck_assert_str_eq(buf, want);
}

START_TEST(notify_without_socket_is_a_noop)
{
    unsetenv("NOTIFY_SOCKET");
    ck_assert_int_eq(axd_sd_notify("READY=1"), 0);
    setenv("NOTIFY_SOCKET", "", 1);
    ck_assert_int_eq(axd_sd_notify("READY=1"), 0);
}
END_TEST

START_TEST(notify_reaches_path_socket)
{
    char dir[] = "/tmp/ax_sdnotify.XXXXXX", path[128];
    ck_assert_ptr_nonnull(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/notify", dir);
    int fd = listen_at(path);
    setenv("NOTIFY_SOCKET", path, 1);
    ck_assert_int_eq(axd_sd_notify("READY=1"), 0);
    expect_datagram(fd, "READY=1");
    ck_assert_int_eq(axd_sd_notifyf("STATUS=%d actors\nWATCHDOG=1", 3), 0);
    expect_datagram(fd, "STATUS=3 actors\nWATCHDOG=1");
    close(fd);
    unlink(path);
    rmdir(dir);
    ck_assert_int_eq(axd_sd_notify("READY=1"), AX_EIO); /* nobody listening any more */
}
END_TEST

START_TEST(notify_reaches_abstract_socket)
{
    char name[64];
    snprintf(name, sizeof name, "@ax_sdnotify_test_%ld", (long)getpid());
    int fd = listen_at(name);
    setenv("NOTIFY_SOCKET", name, 1);
    ck_assert_int_eq(axd_sd_notify("STOPPING=1"), 0);
    expect_datagram(fd, "STOPPING=1");
    close(fd);
}
END_TEST

START_TEST(notify_refuses_malformed_socket)
{
    char longpath[200];
    setenv("NOTIFY_SOCKET", "relative/path", 1);
    ck_assert_int_eq(axd_sd_notify("READY=1"), AX_EINVAL);
    memset(longpath, 'a', sizeof longpath - 1);
    longpath[0] = '/';
    longpath[sizeof longpath - 1] = 0;
    setenv("NOTIFY_SOCKET", longpath, 1);
    ck_assert_int_eq(axd_sd_notify("READY=1"), AX_EINVAL);
}
END_TEST

START_TEST(watchdog_usec_is_for_this_process_only)
{
    char pid[32];
    unsetenv("WATCHDOG_USEC");
    unsetenv("WATCHDOG_PID");
    ck_assert_uint_eq(axd_sd_watchdog_usec(), 0);
    setenv("WATCHDOG_USEC", "30000000", 1);
    ck_assert_uint_eq(axd_sd_watchdog_usec(), 30000000);
    snprintf(pid, sizeof pid, "%ld", (long)getpid());
    setenv("WATCHDOG_PID", pid, 1);
    ck_assert_uint_eq(axd_sd_watchdog_usec(), 30000000);
    snprintf(pid, sizeof pid, "%ld", (long)getpid() + 1);
    setenv("WATCHDOG_PID", pid, 1);
    ck_assert_uint_eq(axd_sd_watchdog_usec(), 0);
    unsetenv("WATCHDOG_PID");
    setenv("WATCHDOG_USEC", "12x", 1);
    ck_assert_uint_eq(axd_sd_watchdog_usec(), 0);
    setenv("WATCHDOG_USEC", "-5", 1);
    ck_assert_uint_eq(axd_sd_watchdog_usec(), 0);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("sdnotify");
    TCase *tc = tcase_create("sdnotify");
    tcase_add_test(tc, notify_without_socket_is_a_noop);
    tcase_add_test(tc, notify_reaches_path_socket);
    tcase_add_test(tc, notify_reaches_abstract_socket);
    tcase_add_test(tc, notify_refuses_malformed_socket);
    tcase_add_test(tc, watchdog_usec_is_for_this_process_only);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
