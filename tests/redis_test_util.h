/* Shared by the tests that need loopback ports or a redis-server of their own
 * (test_lease_redis, test_cluster_shards, test_cluster_tcp): a free loopback port, a
 * monotonic clock, a bounded sleep, and a redis-server started on a free port in a temp
 * dir (optionally with a password), killed, restarted and removed. Every wait is bounded. */
#ifndef AX_REDIS_TEST_UTIL_H
#define AX_REDIS_TEST_UTIL_H

#include <check.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static inline double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static inline void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

/* A loopback port nobody listens on now, below the kernel's ephemeral range (32768 and
 * up on Linux): a port the kernel handed out would be handed out again, to any outgoing
 * connection (a daemon's to Redis or to its peers), before the node meant to listen on it
 * has started. Random in [20000, 32000), checked by binding it; bounded tries. */
static inline int free_port(void)
{
    static unsigned seed;
    /* A port handed out is not bound until its daemon (or redis-server) starts: never hand
     * it out twice, or the second user would find it taken (seen: a node's cluster.listen
     * and the test's redis-server picked the same port). */
    static int given[256];
    static unsigned n_given;
    if (!seed)
        seed = (unsigned)getpid() * 2654435761u ^ (unsigned)time(NULL);
    for (int i = 0; i < 1000; i++) {
        seed = seed * 1103515245u + 12345u;
        int port = 20000 + (int)((seed >> 8) % 12000);
        int dup = 0;
        for (unsigned k = 0; k < n_given && k < 256; k++)
            dup |= given[k] == port;
        if (dup)
            continue;
        struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK),
                                 .sin_port = htons((uint16_t)port)};
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        ck_assert_int_ge(fd, 0);
        int ok = bind(fd, (struct sockaddr *)&sa, sizeof sa) == 0;
        close(fd);
        if (ok) {
            given[n_given++ % 256] = port;
            return port;
        }
    }
    ck_abort_msg("no free loopback port in 20000..31999 after 1000 tries");
    return -1;
}

static inline int port_open(int port)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK),
                             .sin_port = htons((uint16_t)port)};
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    int ok = fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0;
    if (fd >= 0)
        close(fd);
    return ok;
}

typedef struct redis_proc {
    pid_t pid;
    int port;
    char dir[64];
    char password[64];
    int aof; /* appendonly yes with appendfsync always: every acknowledged write is on disk */
} redis_proc;

/* (Re)start redis-server on r->port in r->dir; fails the test unless it listens in 5 s. */
static inline void redis_start(redis_proc *r)
{
    char port[16];
    snprintf(port, sizeof port, "%d", r->port);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL); /* a failed test never leaves a server behind */
        if (!freopen("/dev/null", "w", stdout))
            _exit(126);
        const char *argv[20] = {"redis-server", "--port", port, "--bind", "127.0.0.1", "--save", "",
                                "--appendonly", r->aof ? "yes" : "no", "--dir", r->dir};
        int argc = 11;
        if (r->aof) {
            argv[argc++] = "--appendfsync";
            argv[argc++] = "always";
        }
        if (r->password[0]) {
            argv[argc++] = "--requirepass";
            argv[argc++] = r->password;
        }
        argv[argc] = NULL;
        execvp("redis-server", (char *const *)argv);
        _exit(127);
    }
    r->pid = pid;
    for (int i = 0; i < 500 && !port_open(r->port); i++) { /* bounded: 5 s */
        int st;
        ck_assert_msg(waitpid(pid, &st, WNOHANG) == 0, "redis-server exited at start (port %d)", r->port);
        sleep_ms(10);
    }
    ck_assert_msg(port_open(r->port), "redis-server did not listen within 5 s");
}

static inline void redis_kill(redis_proc *r, int sig)
{
    if (r->pid <= 0)
        return;
    kill(r->pid, sig);
    for (int i = 0; i < 500; i++) { /* bounded: 5 s, then SIGKILL */
        if (waitpid(r->pid, NULL, WNOHANG) == r->pid) {
            r->pid = 0;
            return;
        }
        sleep_ms(10);
    }
    kill(r->pid, SIGKILL);
    waitpid(r->pid, NULL, 0);
    r->pid = 0;
}

/* A fresh server on a free port in a new temp dir; password NULL or "" = none; aof:
 * append-only file, fsynced at every write. */
static inline void redis_up_aof(redis_proc *r, const char *password, int aof)
{
    memset(r, 0, sizeof *r);
    r->aof = aof;
    snprintf(r->dir, sizeof r->dir, "/tmp/ax_test_redis.XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(r->dir));
    if (password)
        snprintf(r->password, sizeof r->password, "%s", password);
    r->port = free_port();
    redis_start(r);
}

static inline void redis_up(redis_proc *r, const char *password) { redis_up_aof(r, password, 0); }

static inline void redis_down(redis_proc *r)
{
    char cmd[128];
    redis_kill(r, SIGTERM);
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", r->dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", r->dir);
}

#endif
