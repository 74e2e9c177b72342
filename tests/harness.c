/* The integration-test harness (see harness.h): real axactord processes in temp dirs,
 * started, awaited, stopped and checked; commands run with captured output; raw frames.
 * Every wait here is bounded both in iterations and in wall-clock time, so a hung daemon
 * fails the test instead of hanging the runner. */
#include "harness.h"

#include "frame.h"

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define H_POLL_MS 10
#define H_START_MS 10000
#define H_STOP_MS 5000
#define H_MAX_DAEMONS 64
#define H_MAX_ARGS 64

struct ax_h_daemon {
    pid_t pid;    /* 0 once reaped */
    int status;   /* wait status once reaped */
    char dir[PATH_MAX];
    char sock[PATH_MAX];
    char log_path[PATH_MAX];
    char *args[H_MAX_ARGS + 1]; /* extra args, owned copies, NULL-terminated */
    char *log;                  /* last ax_h_log text */
    int log_printed;
};

static ax_h_daemon *live[H_MAX_DAEMONS];
static char tmpdir_path[PATH_MAX];
static int atexit_done;

/* ---------- small utilities ---------- */

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

static char *path_buf(void)
{
    static char bufs[8][PATH_MAX];
    static unsigned next;
    return bufs[next++ % 8];
}

static char *read_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    size_t len = 0, cap = 4096;
    char *buf = malloc(cap);
    ck_assert_ptr_nonnull(buf);
    buf[0] = 0;
    if (!f)
        return buf;
    for (;;) {
        if (cap - len < 4096) {
            cap *= 2;
            buf = realloc(buf, cap);
            ck_assert_ptr_nonnull(buf);
        }
        size_t n = fread(buf + len, 1, cap - len - 1, f);
        len += n;
        if (n == 0)
            break;
    }
    buf[len] = 0;
    fclose(f);
    return buf;
}

static int rm_cb(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    remove(p);
    return 0;
}

static void rm_rf(const char *dir)
{
    if (dir && *dir)
        nftw(dir, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
}

static void make_tempdir(char *out, size_t n, const char *prefix)
{
    const char *t = getenv("TMPDIR");
    if (!t || !*t)
        t = "/tmp";
    int len = snprintf(out, n, "%s/%s-XXXXXX", t, prefix);
    ck_assert_msg(len > 0 && (size_t)len < n, "TMPDIR path is too long");
    ck_assert_msg(mkdtemp(out) != NULL, "mkdtemp %s: %s", out, strerror(errno));
}

/* In a forked child: die with the test process, and leave no inherited descriptor but
 * 0, 1 and 2 open across exec. */
static void child_setup(pid_t parent)
{
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent)
        _exit(127);
    struct rlimit rl;
    int max = 4096;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < (rlim_t)max)
        max = (int)rl.rlim_cur;
    for (int fd = 3; fd < max; fd++)
        close(fd);
    signal(SIGPIPE, SIG_DFL);
}

int ax_h_has_sanitizer_report(const char *text)
{
    static const char *const marks[] = {"ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:",
                                        "SUMMARY: UndefinedBehaviorSanitizer", "WARNING: ThreadSanitizer",
                                        "WARNING: MemorySanitizer"};
    if (!text)
        return 0;
    for (size_t i = 0; i < sizeof marks / sizeof marks[0]; i++)
        if (strstr(text, marks[i]))
            return 1;
    return 0;
}

const char *ax_h_build_dir(void)
{
    const char *b = getenv("AX_BUILD_DIR");
    ck_assert_msg(b && *b, "AX_BUILD_DIR is not set (run the test through meson test)");
    return b;
}

const char *ax_h_source_dir(void)
{
    const char *s = getenv("AX_SOURCE_DIR");
    ck_assert_msg(s && *s, "AX_SOURCE_DIR is not set (run the test through meson test)");
    return s;
}

const char *ax_h_build_path(const char *rel)
{
    char *p = path_buf();
    int n = snprintf(p, PATH_MAX, "%s/%s", ax_h_build_dir(), rel);
    ck_assert_msg(n > 0 && n < PATH_MAX, "build path too long");
    return p;
}

static void cleanup_at_exit(void)
{
    atexit_done = 1;
    for (int i = 0; i < H_MAX_DAEMONS; i++) {
        ax_h_daemon *d = live[i];
        if (!d)
            continue;
        if (!d->log_printed && d->pid > 0) {
            /* The test ended (probably failed) with this daemon running: show its log. */
            char *log = read_file(d->log_path);
            fprintf(stderr, "harness: daemon pid %d (%s) left running at exit; its log:\n%s\n", (int)d->pid,
                    d->sock, log);
            free(log);
        }
        ax_h_destroy(d);
    }
    if (tmpdir_path[0]) {
        rm_rf(tmpdir_path);
        tmpdir_path[0] = 0;
    }
}

static void register_daemon(ax_h_daemon *d)
{
    static int registered;
    if (!registered) {
        atexit(cleanup_at_exit);
        registered = 1;
    }
    for (int i = 0; i < H_MAX_DAEMONS; i++) {
        if (!live[i]) {
            live[i] = d;
            return;
        }
    }
    ck_abort_msg("harness: more than %d daemons at once", H_MAX_DAEMONS);
}

static void unregister_daemon(ax_h_daemon *d)
{
    for (int i = 0; i < H_MAX_DAEMONS; i++)
        if (live[i] == d)
            live[i] = NULL;
}

const char *ax_h_tmpdir(void)
{
    if (!tmpdir_path[0]) {
        static int registered;
        make_tempdir(tmpdir_path, sizeof tmpdir_path, "axtest");
        if (!registered) {
            atexit(cleanup_at_exit);
            registered = 1;
        }
    }
    return tmpdir_path;
}

const char *ax_h_write_file(const char *dir, const char *name, const char *text)
{
    char *p = path_buf();
    int n = snprintf(p, PATH_MAX, "%s/%s", dir ? dir : ax_h_tmpdir(), name);
    ck_assert_msg(n > 0 && n < PATH_MAX, "path too long");
    FILE *f = fopen(p, "wb");
    ck_assert_msg(f != NULL, "%s: %s", p, strerror(errno));
    size_t len = strlen(text);
    ck_assert_uint_eq(fwrite(text, 1, len, f), len);
    ck_assert_int_eq(fclose(f), 0);
    return p;
}

/* ---------- daemons ---------- */

const char *ax_h_sock(const ax_h_daemon *d) { return d->sock; }
const char *ax_h_dir(const ax_h_daemon *d) { return d->dir; }
pid_t ax_h_pid(const ax_h_daemon *d) { return d->pid; }

const char *ax_h_log(ax_h_daemon *d)
{
    free(d->log);
    d->log = read_file(d->log_path);
    return d->log;
}

int ax_h_wait_log(ax_h_daemon *d, const char *needle, int timeout_ms)
{
    long long deadline = now_ms() + timeout_ms;
    for (int i = 0; i <= timeout_ms / H_POLL_MS + 1; i++) {
        if (strstr(ax_h_log(d), needle))
            return 1;
        if (now_ms() >= deadline)
            break;
        sleep_ms(H_POLL_MS);
    }
    return strstr(ax_h_log(d), needle) != NULL;
}

int ax_h_exited(ax_h_daemon *d, int *status)
{
    if (d->pid > 0) {
        int st;
        pid_t r = waitpid(d->pid, &st, WNOHANG);
        if (r == d->pid) {
            d->pid = 0;
            d->status = st;
        } else if (r < 0 && errno == ECHILD) {
            d->pid = 0;
            d->status = -1;
        }
    }
    if (d->pid == 0 && status)
        *status = d->status;
    return d->pid == 0;
}

static void print_log(ax_h_daemon *d, const char *why)
{
    fprintf(stderr, "harness: daemon %s: %s; its log (%s):\n%s\n---- end of log ----\n", d->sock, why, d->log_path,
            ax_h_log(d));
    d->log_printed = 1;
}

/* Fail the test because of d: its log was printed; kill it and remove its dir first (a
 * failing check test ends with _exit, so nothing would clean up after it). */
__attribute__((format(printf, 2, 3), noreturn)) static void die(ax_h_daemon *d, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    ax_h_destroy(d);
    ck_abort_msg("%s", msg);
    abort(); /* not reached */
}

static void describe_status(int st, char *buf, size_t n)
{
    if (st == -1)
        snprintf(buf, n, "unknown status (not our child)");
    else if (WIFEXITED(st))
        snprintf(buf, n, "exited with status %d", WEXITSTATUS(st));
    else if (WIFSIGNALED(st))
        snprintf(buf, n, "killed by signal %d (%s)", WTERMSIG(st), strsignal(WTERMSIG(st)));
    else
        snprintf(buf, n, "wait status 0x%x", st);
}

static void check_no_sanitizer_report(ax_h_daemon *d)
{
    if (ax_h_has_sanitizer_report(ax_h_log(d))) {
        print_log(d, "sanitizer report in the log");
        die(d, "daemon %s logged a sanitizer report (see its log above)", d->sock);
    }
}

static void launch(ax_h_daemon *d)
{
    const char *argv[H_MAX_ARGS + 10];
    size_t n = 0;
    const char *exe = ax_h_build_path("daemon/axactord");
    const char *pdir = ax_h_build_path("plugins");
    argv[n++] = exe;
    argv[n++] = "-s";
    argv[n++] = d->sock;
    argv[n++] = "--plugin-dir";
    argv[n++] = pdir;
    /* AX_TEST_WORKERS=N: the suite runs its daemons with N workers (meson registers the
     * integration and cluster suites once per count); a test's own --set still wins */
    static char workers_set[64];
    const char *tw = getenv("AX_TEST_WORKERS");
    if (tw && *tw && strlen(tw) < 8) {
        snprintf(workers_set, sizeof workers_set, "runtime.workers=%s", tw);
        argv[n++] = "--set";
        argv[n++] = workers_set;
    }
    for (size_t i = 0; d->args[i]; i++)
        argv[n++] = d->args[i];
    argv[n] = NULL;

    int logfd = open(d->log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    ck_assert_msg(logfd >= 0, "%s: %s", d->log_path, strerror(errno));
    int nullfd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    ck_assert_int_ge(nullfd, 0);
    fflush(NULL);
    pid_t parent = getpid();
    pid_t pid = fork();
    ck_assert_msg(pid >= 0, "fork: %s", strerror(errno));
    if (pid == 0) {
        if (dup2(nullfd, 0) < 0 || dup2(logfd, 1) < 0 || dup2(logfd, 2) < 0)
            _exit(127);
        child_setup(parent);
        execv(exe, (char *const *)argv);
        dprintf(2, "harness: exec %s: %s\n", exe, strerror(errno));
        _exit(127);
    }
    close(logfd);
    close(nullfd);
    d->pid = pid;
    d->status = 0;

    /* Wait until a real client connection (HELLO included) succeeds. */
    long long deadline = now_ms() + H_START_MS;
    char err[256] = "";
    for (int i = 0; i < H_START_MS / H_POLL_MS + 1; i++) {
        int st;
        if (ax_h_exited(d, &st)) {
            char how[96];
            describe_status(st, how, sizeof how);
            print_log(d, how);
            die(d, "axactord %s before serving %s (log above)", how, d->sock);
        }
        struct stat sb;
        if (lstat(d->sock, &sb) == 0 && S_ISSOCK(sb.st_mode)) {
            axc_conn *c = NULL;
            if (axc_connect(d->sock, 1000, &c, err, sizeof err) == 0) {
                axc_close(c);
                return;
            }
        }
        if (now_ms() >= deadline)
            break;
        sleep_ms(H_POLL_MS);
    }
    print_log(d, "not serving after 10 s");
    die(d, "axactord did not serve %s within %d ms (last connect error: %s)", d->sock, H_START_MS, err);
}

ax_h_daemon *ax_h_start(const char *const *extra_args)
{
    ax_h_daemon *d = calloc(1, sizeof *d);
    ck_assert_ptr_nonnull(d);
    make_tempdir(d->dir, sizeof d->dir, "axd");
    register_daemon(d);
    struct sockaddr_un sa;
    int n = snprintf(d->sock, sizeof d->sock, "%s/ax.sock", d->dir);
    ck_assert_msg(n > 0 && (size_t)n < sizeof sa.sun_path,
                  "socket path %s is too long for a Unix socket; set TMPDIR shorter", d->sock);
    n = snprintf(d->log_path, sizeof d->log_path, "%s/axactord.log", d->dir);
    ck_assert_msg(n > 0 && (size_t)n < sizeof d->log_path, "log path too long");
    size_t i = 0;
    for (; extra_args && extra_args[i]; i++) {
        ck_assert_msg(i < H_MAX_ARGS, "too many daemon arguments");
        d->args[i] = strdup(extra_args[i]);
        ck_assert_ptr_nonnull(d->args[i]);
    }
    d->args[i] = NULL;
    launch(d);
    return d;
}

void ax_h_restart(ax_h_daemon *d, const char *const *extra_args)
{
    ck_assert_msg(ax_h_exited(d, NULL), "ax_h_restart: daemon pid %d is still running", (int)d->pid);
    if (extra_args) {
        for (size_t i = 0; d->args[i]; i++)
            free(d->args[i]);
        size_t i = 0;
        for (; extra_args[i]; i++) {
            ck_assert_msg(i < H_MAX_ARGS, "too many daemon arguments");
            d->args[i] = strdup(extra_args[i]);
            ck_assert_ptr_nonnull(d->args[i]);
        }
        d->args[i] = NULL;
    }
    FILE *f = fopen(d->log_path, "a");
    if (f) {
        fprintf(f, "---- harness: restarting the daemon ----\n");
        fclose(f);
    }
    launch(d);
}

/* Wait for the process to exit, bounded; returns 1 if it was reaped. */
static int wait_exit(ax_h_daemon *d, int timeout_ms)
{
    long long deadline = now_ms() + timeout_ms;
    for (int i = 0; i < timeout_ms / H_POLL_MS + 1; i++) {
        if (ax_h_exited(d, NULL))
            return 1;
        if (now_ms() >= deadline)
            break;
        sleep_ms(H_POLL_MS);
    }
    return ax_h_exited(d, NULL);
}

void ax_h_stop(ax_h_daemon *d) { ax_h_stop_with(d, SIGTERM); }

void ax_h_stop_with(ax_h_daemon *d, int sig)
{
    char how[96];
    if (ax_h_exited(d, NULL)) {
        describe_status(d->status, how, sizeof how);
        print_log(d, how);
        die(d, "ax_h_stop: the daemon had already exited (%s)", how);
    }
    ck_assert_int_eq(kill(d->pid, sig), 0);
    if (!wait_exit(d, H_STOP_MS)) {
        kill(d->pid, SIGKILL);
        wait_exit(d, H_STOP_MS);
        print_log(d, "did not exit within 5 s of the stop signal");
        die(d, "axactord did not exit within %d ms of signal %d", H_STOP_MS, sig);
    }
    describe_status(d->status, how, sizeof how);
    if (d->status == -1 || !WIFEXITED(d->status) || WEXITSTATUS(d->status) != 0) {
        print_log(d, how);
        die(d, "axactord %s after signal %d, expected exit status 0", how, sig);
    }
    check_no_sanitizer_report(d);
    struct stat sb;
    if (lstat(d->sock, &sb) == 0 || errno != ENOENT) {
        print_log(d, "socket left behind");
        die(d, "the socket %s still exists after a clean stop", d->sock);
    }
    ax_h_destroy(d);
}

void ax_h_kill(ax_h_daemon *d)
{
    if (!ax_h_exited(d, NULL)) {
        kill(d->pid, SIGKILL);
        if (!wait_exit(d, H_STOP_MS))
            ck_abort_msg("axactord pid %d survived SIGKILL for %d ms", (int)d->pid, H_STOP_MS);
    }
    check_no_sanitizer_report(d);
}

void ax_h_destroy(ax_h_daemon *d)
{
    if (!d)
        return;
    if (!ax_h_exited(d, NULL)) {
        kill(d->pid, SIGKILL);
        wait_exit(d, H_STOP_MS);
    }
    unregister_daemon(d);
    rm_rf(d->dir);
    for (size_t i = 0; d->args[i]; i++)
        free(d->args[i]);
    free(d->log);
    free(d);
}

axc_conn *ax_h_connect(ax_h_daemon *d)
{
    axc_conn *c = NULL;
    char err[256] = "";
    int rc = axc_connect(d->sock, 5000, &c, err, sizeof err);
    if (rc != 0 || !c) {
        print_log(d, "client connect failed");
        die(d, "axc_connect %s: %d (%s) %s", d->sock, rc, ax_errname(rc), err);
    }
    return c;
}

/* ---------- running commands ---------- */

typedef struct {
    char *p;
    size_t len, cap;
} strbuf;

static void sb_read(strbuf *b, int fd, int *open_)
{
    if (b->cap - b->len < 4096) {
        b->cap = b->cap ? b->cap * 2 : 8192;
        b->p = realloc(b->p, b->cap);
        ck_assert_ptr_nonnull(b->p);
    }
    ssize_t n = read(fd, b->p + b->len, b->cap - b->len - 1);
    if (n > 0)
        b->len += (size_t)n;
    else if (n == 0 || (errno != EINTR && errno != EAGAIN))
        *open_ = 0;
    b->p[b->len] = 0;
}

int ax_h_run(const char *const *argv, char **out, char **err, int timeout_ms)
{
    int po[2], pe[2];
    ck_assert_int_eq(pipe2(po, O_CLOEXEC), 0);
    ck_assert_int_eq(pipe2(pe, O_CLOEXEC), 0);
    int nullfd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    ck_assert_int_ge(nullfd, 0);
    fflush(NULL);
    pid_t parent = getpid();
    pid_t pid = fork();
    ck_assert_msg(pid >= 0, "fork: %s", strerror(errno));
    if (pid == 0) {
        if (dup2(nullfd, 0) < 0 || dup2(po[1], 1) < 0 || dup2(pe[1], 2) < 0)
            _exit(127);
        child_setup(parent);
        execv(argv[0], (char *const *)argv);
        dprintf(2, "harness: exec %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    close(po[1]);
    close(pe[1]);
    close(nullfd);

    strbuf bo = {0}, be = {0};
    int oo = 1, eo = 1, st = 0, reaped = 0;
    long long deadline = now_ms() + timeout_ms;
    sb_read(&bo, -1, &(int){0}); /* allocate both buffers so they are never NULL */
    sb_read(&be, -1, &(int){0});
    for (int iter = 0; (oo || eo) && iter < 1000000; iter++) {
        long long left = deadline - now_ms();
        if (left <= 0)
            break;
        struct pollfd pf[2] = {{oo ? po[0] : -1, POLLIN, 0}, {eo ? pe[0] : -1, POLLIN, 0}};
        int r = poll(pf, 2, (int)(left < 100 ? left : 100));
        if (r < 0 && errno != EINTR)
            break;
        if (oo && (pf[0].revents & (POLLIN | POLLHUP | POLLERR)))
            sb_read(&bo, po[0], &oo);
        if (eo && (pf[1].revents & (POLLIN | POLLHUP | POLLERR)))
            sb_read(&be, pe[0], &eo);
    }
    close(po[0]);
    close(pe[0]);
    /* Output closed (or time ran out): reap within what is left of the timeout. */
    for (int iter = 0; iter < timeout_ms / H_POLL_MS + 2; iter++) {
        pid_t r = waitpid(pid, &st, WNOHANG);
        if (r == pid) {
            reaped = 1;
            break;
        }
        if (now_ms() >= deadline)
            break;
        sleep_ms(r == 0 ? 1 : H_POLL_MS);
    }
    if (!reaped) {
        kill(pid, SIGKILL);
        waitpid(pid, &st, 0);
        fprintf(stderr, "harness: %s timed out; stdout:\n%s\nstderr:\n%s\n", argv[0], bo.p, be.p);
        free(bo.p);
        free(be.p);
        ck_abort_msg("%s did not finish within %d ms", argv[0], timeout_ms);
    }
    if (ax_h_has_sanitizer_report(be.p)) {
        fprintf(stderr, "harness: %s: sanitizer report:\n%s\n", argv[0], be.p);
        free(bo.p);
        free(be.p);
        ck_abort_msg("%s printed a sanitizer report (above)", argv[0]);
    }
    if (out)
        *out = bo.p;
    else
        free(bo.p);
    if (err)
        *err = be.p;
    else
        free(be.p);
    if (WIFEXITED(st))
        return WEXITSTATUS(st);
    return 128 + (WIFSIGNALED(st) ? WTERMSIG(st) : 0);
}

/* ---------- raw protocol ---------- */

int ax_h_raw_connect(const char *path)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    ck_assert_uint_lt(strlen(path), sizeof sa.sun_path);
    strcpy(sa.sun_path, path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ck_assert_int_ge(fd, 0);
    ck_assert_msg(connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0, "connect %s: %s", path, strerror(errno));
    return fd;
}

int ax_h_raw_write(int fd, const void *p, size_t n)
{
    const uint8_t *b = p;
    long long deadline = now_ms() + 5000;
    while (n > 0) {
        struct pollfd pf = {fd, POLLOUT, 0};
        long long left = deadline - now_ms();
        ck_assert_msg(left > 0, "raw write: the peer did not read for 5 s");
        if (poll(&pf, 1, (int)left) <= 0)
            continue;
        ssize_t w = send(fd, b, n, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w > 0) {
            b += w;
            n -= (size_t)w;
        } else if (w < 0 && errno != EINTR && errno != EAGAIN) {
            return -errno;
        }
    }
    return 0;
}

/* Read exactly n bytes before deadline: returns n, the bytes got before EOF/reset, or
 * -1 on timeout. */
static ssize_t read_full(int fd, uint8_t *p, size_t n, long long deadline)
{
    size_t got = 0;
    while (got < n) {
        long long left = deadline - now_ms();
        if (left <= 0)
            return -1;
        struct pollfd pf = {fd, POLLIN, 0};
        if (poll(&pf, 1, (int)left) <= 0)
            continue;
        ssize_t r = recv(fd, p + got, n - got, MSG_DONTWAIT);
        if (r > 0)
            got += (size_t)r;
        else if (r == 0 || (errno != EINTR && errno != EAGAIN))
            return (ssize_t)got; /* EOF, or ECONNRESET: the daemon closed with our bytes unread */
    }
    return (ssize_t)got;
}

int ax_h_raw_read_frame(int fd, int timeout_ms, uint8_t *type, uint32_t *req_id, uint8_t **body, size_t *body_len)
{
    long long deadline = now_ms() + timeout_ms;
    uint8_t hb[AX_FRAME_HDR_SIZE];
    ssize_t r = read_full(fd, hb, sizeof hb, deadline);
    ck_assert_msg(r >= 0, "raw read: no frame within %d ms", timeout_ms);
    if (r == 0)
        return 0;
    ck_assert_msg(r == (ssize_t)sizeof hb, "raw read: connection closed inside a frame header");
    ax_frame_hdr h;
    const char *why = NULL;
    int rc = ax_frame_hdr_decode(hb, sizeof hb, AX_FRAME_MAX_LIMIT, &h, &why);
    ck_assert_msg(rc == 0, "raw read: the daemon sent a bad header: %s", why ? why : "?");
    uint8_t *b = NULL;
    if (h.body_len) {
        b = malloc(h.body_len);
        ck_assert_ptr_nonnull(b);
        r = read_full(fd, b, h.body_len, deadline);
        ck_assert_msg(r == (ssize_t)h.body_len, "raw read: body cut short (%zd of %u bytes)", r, h.body_len);
    }
    *type = h.type;
    if (req_id)
        *req_id = h.req_id;
    if (body_len)
        *body_len = h.body_len;
    if (body)
        *body = b;
    else
        free(b);
    return 1;
}

int ax_h_raw_wait_eof(int fd, int timeout_ms)
{
    long long deadline = now_ms() + timeout_ms;
    uint8_t buf[4096];
    for (int i = 0; i < 100000; i++) {
        long long left = deadline - now_ms();
        if (left <= 0)
            return 0;
        struct pollfd pf = {fd, POLLIN, 0};
        if (poll(&pf, 1, (int)left) <= 0)
            continue;
        ssize_t r = recv(fd, buf, sizeof buf, MSG_DONTWAIT);
        if (r == 0 || (r < 0 && errno != EINTR && errno != EAGAIN))
            return 1;
    }
    return 0;
}

int ax_h_raw_hello(ax_h_daemon *d)
{
    int fd = ax_h_raw_connect(d->sock);
    ax_wbuf b;
    ax_wbuf_init(&b);
    size_t st = ax_frame_begin(&b, AX_T_HELLO, 0, 1);
    ax_body_hello h = {AX_PROTO_VERSION_MIN, AX_PROTO_VERSION, "harness-raw", strlen("harness-raw")};
    ax_body_hello_put(&b, &h);
    ck_assert_int_eq(ax_frame_end(&b, st, AX_FRAME_MAX_DEFAULT), 0);
    ck_assert_int_eq(ax_h_raw_write(fd, b.data, b.len), 0);
    ax_wbuf_free(&b);
    uint8_t type = 0;
    uint32_t req = 0;
    ck_assert_msg(ax_h_raw_read_frame(fd, 5000, &type, &req, NULL, NULL) == 1, "raw HELLO: EOF");
    ck_assert_msg(type == AX_T_HELLO_OK, "raw HELLO answered by %s", ax_frame_type_name(type));
    ck_assert_uint_eq(req, 1);
    return fd;
}
