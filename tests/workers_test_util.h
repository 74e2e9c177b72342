/* Shared by the tests that run a node's workers in-process (test_workers,
 * test_workers_keyed): bounded waits that turn worker 0's loop (the test's thread) while
 * the other workers run on their own. */
#ifndef AX_WORKERS_TEST_UTIL_H
#define AX_WORKERS_TEST_UTIL_H

#include <ev.h>
#include <time.h>
#include <unistd.h>

static inline double wt_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Turn loop until cond holds (bounded: 10 s), then assert it. */
#define WT_WAIT_UNTIL(loop, cond)                                                                         \
    do {                                                                                                  \
        double end_ = wt_now() + 10.0;                                                                    \
        while (!(cond) && wt_now() < end_) {                                                              \
            ev_run((loop), EVRUN_NOWAIT);                                                                 \
            usleep(200);                                                                                  \
        }                                                                                                 \
        ck_assert_msg((cond), "timed out waiting for " #cond);                                            \
    } while (0)

/* Turn loop for ms milliseconds (to see that something does NOT happen). */
static inline void wt_settle(struct ev_loop *loop, int ms)
{
    double end = wt_now() + ms / 1000.0;
    while (wt_now() < end) {
        ev_run(loop, EVRUN_NOWAIT);
        usleep(200);
    }
}

/* A key PREFIX<n> whose home worker in group g is w, written to key (cap bytes); the
 * test fails if none of the first 1000 is. Needs workers.h and check.h. */
#define WT_KEY_ON(g, w, prefix, key, cap)                                                                 \
    do {                                                                                                  \
        for (int i_ = 0; i_ < 1000; i_++) {                                                               \
            snprintf((key), (cap), "%s%d", (prefix), i_);                                                 \
            if (axd_workers_home((g), (key), strlen(key)) == (w))                                         \
                break;                                                                                    \
        }                                                                                                 \
        ck_assert_uint_eq(axd_workers_home((g), (key), strlen(key)), (w));                                \
    } while (0)

#endif
