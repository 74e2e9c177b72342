/* bench_lease_store: what a lease operation costs on each shared store, in the same run:
 * a redis-server and a one-member etcd started here (temp dirs, loopback, free ports),
 * the daemon's own store code driving each (lease_redis.c, lease_etcd.c) on one libev
 * loop, one operation at a time: acquire (of free shards, past their first quarantine),
 * renew and get, N of each; p50/p99 latency and the ratio etcd / redis. The peer here is
 * the other store: there is no outside figure for these operations.
 *
 * usage: bench_lease_store [-n OPS]   (needs redis-server and etcd on PATH) */
#include <ev.h>
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

#include "lease.h"

#define SHARDS 256

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t sl = sizeof sa;
    if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof sa) || getsockname(fd, (struct sockaddr *)&sa, &sl))
        exit(1);
    close(fd);
    return ntohs(sa.sin_port);
}

static int port_open(int port)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK),
                             .sin_port = htons((uint16_t)port)};
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    int ok = fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0;
    if (fd >= 0)
        close(fd);
    return ok;
}

static pid_t spawn(char *const argv[], int port)
{
    pid_t pid = fork();
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (!freopen("/dev/null", "w", stdout) || !freopen("/dev/null", "w", stderr))
            _exit(126);
        execvp(argv[0], argv);
        _exit(127);
    }
    for (int i = 0; i < 1000 && !port_open(port); i++) /* bounded: 10 s */
        usleep(10000);
    if (!port_open(port)) {
        fprintf(stderr, "bench_lease_store: %s did not listen on %d\n", argv[0], port);
        kill(pid, SIGKILL);
        exit(1);
    }
    return pid;
}

typedef struct one {
    int done, status, granted;
    uint64_t epoch;
} one;

static void cb(void *ud, uint32_t shard, const axd_lease_result *r)
{
    (void)shard;
    one *o = ud;
    o->done = 1;
    o->status = r->status;
    o->granted = r->granted;
    o->epoch = r->epoch;
}

static one wait_one(struct ev_loop *loop, one *o)
{
    double end = now_s() + 5;
    while (!o->done && now_s() < end)
        ev_run(loop, EVRUN_ONCE);
    if (!o->done || o->status) {
        fprintf(stderr, "bench_lease_store: an operation failed (%d)\n", o->done ? o->status : -999);
        exit(1);
    }
    return *o;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

typedef struct fig {
    double p50[3], p99[3];
} fig;

static void measure(struct ev_loop *loop, axd_lease_store *st, int n, fig *f)
{
    one o;
    /* every shard once: fresh counters quarantine a shard for one ttl */
    for (uint32_t s = 0; s < SHARDS; s++) {
        memset(&o, 0, sizeof o);
        axd_lease_acquire(st, s, "warm", 1000, 0, cb, &o);
        wait_one(loop, &o);
    }
    double end = now_s() + 2.5;
    while (now_s() < end)
        ev_run(loop, EVRUN_ONCE | EVRUN_NOWAIT), usleep(1000);
    double *lat = malloc((size_t)n * sizeof *lat);
    uint64_t epoch[SHARDS] = {0};
    for (int kind = 0; kind < 3; kind++) {
        for (int i = 0; i < n; i++) {
            uint32_t s = (uint32_t)(i % SHARDS);
            memset(&o, 0, sizeof o);
            double t0 = now_s();
            if (kind == 0)
                axd_lease_acquire(st, s, "bench", 30000, 0, cb, &o); /* a holder re-acquires: granted */
            else if (kind == 1)
                axd_lease_renew(st, s, "bench", epoch[s], 30000, cb, &o);
            else
                axd_lease_get(st, s, cb, &o);
            wait_one(loop, &o);
            lat[i] = now_s() - t0;
            if (kind == 0) {
                if (!o.granted) {
                    fprintf(stderr, "bench_lease_store: acquire of shard %u not granted\n", s);
                    exit(1);
                }
                epoch[s] = o.epoch;
            }
            if (kind == 1 && !o.granted) {
                fprintf(stderr, "bench_lease_store: renew of shard %u refused\n", s);
                exit(1);
            }
        }
        qsort(lat, (size_t)n, sizeof *lat, cmp_double);
        f->p50[kind] = lat[n / 2] * 1e3;
        f->p99[kind] = lat[n * 99 / 100] * 1e3;
    }
    free(lat);
}

int main(int argc, char **argv)
{
    int n = 2000;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-n") && i + 1 < argc)
            n = atoi(argv[++i]);
        else {
            fprintf(stderr, "usage: %s [-n OPS]\n", argv[0]);
            return 2;
        }
    }
    if (n < 100)
        n = 100;
    char dir[] = "/tmp/axbench-lease.XXXXXX";
    if (!mkdtemp(dir))
        return 1;
    int rport = free_port(), cport = free_port(), pport = free_port();
    char rp[16], curl[64], purl[64], cluster[96], data[128];
    snprintf(rp, sizeof rp, "%d", rport);
    snprintf(curl, sizeof curl, "http://127.0.0.1:%d", cport);
    snprintf(purl, sizeof purl, "http://127.0.0.1:%d", pport);
    snprintf(cluster, sizeof cluster, "b=%s", purl);
    snprintf(data, sizeof data, "%s/etcd", dir);
    char *rargv[] = {"redis-server", "--port", rp, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                     "--dir", dir, NULL};
    char *eargv[] = {"etcd", "--name", "b", "--data-dir", data, "--listen-client-urls", curl,
                     "--advertise-client-urls", curl, "--listen-peer-urls", purl, "--initial-advertise-peer-urls", purl,
                     "--initial-cluster", cluster, NULL};
    pid_t rpid = spawn(rargv, rport), epid = spawn(eargv, cport);
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    char err[256] = "";
    axd_lease_redis_cfg rc = {.host = "127.0.0.1", .port = (uint16_t)rport, .prefix = "b:", .connect_timeout_ms = 2000};
    axd_lease_etcd_cfg ec = {.endpoints = curl, .prefix = "b/", .timeout_ms = 2000};
    axd_lease_store *rs = axd_lease_redis_new(loop, SHARDS, &rc, err, sizeof err);
    axd_lease_store *es = axd_lease_etcd_new(loop, SHARDS, &ec, err, sizeof err);
    if (!rs || !es) {
        fprintf(stderr, "bench_lease_store: %s\n", err);
        return 1;
    }
    fig fr, fe;
    measure(loop, rs, n, &fr);
    measure(loop, es, n, &fe);
    static const char *const names[] = {"acquire", "renew", "get"};
    printf("# lease store operations, one at a time, %d each (redis-server and a 1-member etcd 3.4 on loopback)\n", n);
    for (int k = 0; k < 3; k++)
        printf("lease_%s: redis p50 %.3f ms p99 %.3f ms; etcd p50 %.3f ms p99 %.3f ms; ratio etcd/redis p50 %.1f\n",
               names[k], fr.p50[k], fr.p99[k], fe.p50[k], fe.p99[k], fe.p50[k] / fr.p50[k]);
    axd_lease_store_free(rs);
    axd_lease_store_free(es);
    ev_loop_destroy(loop);
    kill(rpid, SIGTERM);
    kill(epid, SIGTERM);
    waitpid(rpid, NULL, 0);
    waitpid(epid, NULL, 0);
    char cmd[96];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    return system(cmd) == 0 ? 0 : 1;
}
