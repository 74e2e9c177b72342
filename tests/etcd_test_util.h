/* A real etcd for tests: members started on free loopback ports in a temp dir (their data
 * dirs there), killed and restarted by the test, removed at the end. Fast elections
 * (heartbeat 50 ms, election 250 ms) keep etcd's shortest lease at 1 s. */
#ifndef AX_ETCD_TEST_UTIL_H
#define AX_ETCD_TEST_UTIL_H

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "redis_test_util.h" /* free_port, port_open, sleep_ms */

#define ETCD_MAX_MEMBERS 3

typedef struct etcd_proc {
    int n;
    char dir[64];
    pid_t pid[ETCD_MAX_MEMBERS];
    int client_port[ETCD_MAX_MEMBERS], peer_port[ETCD_MAX_MEMBERS];
    char endpoints[256]; /* every member's client URL, comma-separated */
} etcd_proc;

static inline int etcd_available(void) { return system("etcd --version >/dev/null 2>&1") == 0; }

/* AX_TEST_STORE=etcd: a suite of daemons runs on etcd instead of redis-server. */
static inline int store_etcd(void)
{
    const char *s = getenv("AX_TEST_STORE");
    return s && !strcmp(s, "etcd");
}

/* (Re)start member i; with wait, fail the test unless its client port listens in 10 s. */
static inline void etcd_start_member(etcd_proc *e, int i, int wait)
{
    char name[16], data[96], curl[64], purl[64], cluster[512] = "", log[96];
    snprintf(name, sizeof name, "m%d", i);
    snprintf(data, sizeof data, "%s/m%d.etcd", e->dir, i);
    snprintf(log, sizeof log, "%s/m%d.log", e->dir, i);
    snprintf(curl, sizeof curl, "http://127.0.0.1:%d", e->client_port[i]);
    snprintf(purl, sizeof purl, "http://127.0.0.1:%d", e->peer_port[i]);
    for (int k = 0; k < e->n; k++) {
        size_t l = strlen(cluster);
        snprintf(cluster + l, sizeof cluster - l, "%sm%d=http://127.0.0.1:%d", k ? "," : "", k, e->peer_port[k]);
    }
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL); /* a failed test never leaves a server behind */
        if (!freopen(log, "a", stdout) || !freopen(log, "a", stderr))
            _exit(126);
        execlp("etcd", "etcd", "--name", name, "--data-dir", data, "--listen-client-urls", curl,
               "--advertise-client-urls", curl, "--listen-peer-urls", purl, "--initial-advertise-peer-urls", purl,
               "--initial-cluster", cluster, "--initial-cluster-token", e->dir, "--heartbeat-interval", "50",
               "--election-timeout", "250", "--log-level", "warn", (char *)NULL);
        _exit(127);
    }
    e->pid[i] = pid;
    if (!wait)
        return;
    for (int k = 0; k < 1000 && !port_open(e->client_port[i]); k++) { /* bounded: 10 s */
        int st;
        ck_assert_msg(waitpid(pid, &st, WNOHANG) == 0, "etcd member %d exited at start (see %s)", i, log);
        sleep_ms(10);
    }
    ck_assert_msg(port_open(e->client_port[i]), "etcd member %d did not listen within 10 s", i);
}

static inline void etcd_kill_member(etcd_proc *e, int i, int sig)
{
    if (e->pid[i] <= 0)
        return;
    kill(e->pid[i], sig);
    for (int k = 0; k < 500; k++) { /* bounded: 5 s, then SIGKILL */
        if (waitpid(e->pid[i], NULL, WNOHANG) == e->pid[i]) {
            e->pid[i] = 0;
            return;
        }
        sleep_ms(10);
    }
    kill(e->pid[i], SIGKILL);
    waitpid(e->pid[i], NULL, 0);
    e->pid[i] = 0;
}

/* n members (1 or 3), all started and listening. */
static inline void etcd_up(etcd_proc *e, int n)
{
    memset(e, 0, sizeof *e);
    e->n = n;
    snprintf(e->dir, sizeof e->dir, "/tmp/ax_test_etcd.XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(e->dir));
    for (int i = 0; i < n; i++) {
        e->client_port[i] = free_port();
        e->peer_port[i] = free_port();
        size_t l = strlen(e->endpoints);
        snprintf(e->endpoints + l, sizeof e->endpoints - l, "%shttp://127.0.0.1:%d", i ? "," : "", e->client_port[i]);
    }
    for (int i = 0; i < n; i++)
        etcd_start_member(e, i, 0); /* together: each waits for a quorum */
    for (int i = 0; i < n; i++)
        for (int k = 0; k < 1000 && !port_open(e->client_port[i]); k++)
            sleep_ms(10);
    for (int i = 0; i < n; i++)
        ck_assert_msg(port_open(e->client_port[i]), "etcd member %d did not listen within 10 s (logs in %s)", i,
                      e->dir);
}

/* etcdctl ARGS against every member (fails the test if it fails). */
static inline void etcdctl(const etcd_proc *e, const char *args)
{
    char cmd[512];
    snprintf(cmd, sizeof cmd, "ETCDCTL_API=3 etcdctl --endpoints=%s %s >/dev/null 2>&1", e->endpoints, args);
    ck_assert_msg(system(cmd) == 0, "etcdctl %s failed", args);
}

static inline void etcd_down(etcd_proc *e)
{
    for (int i = 0; i < e->n; i++)
        etcd_kill_member(e, i, SIGTERM);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", e->dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", e->dir);
}

#endif
