/* The clock for safety deadlines (leases, fencing): CLOCK_MONOTONIC read fresh at every
 * call. Never the loop's cached time (ev_now), which is stale after any stall (SIGSTOP,
 * a VM pause, a slow handler, swap) and follows the wall clock's jumps. */
#ifndef AXD_MONOTIME_H
#define AXD_MONOTIME_H

#include <time.h>

/* Seconds since an arbitrary fixed point (boot); system-wide, never goes backwards. */
static inline double axd_mono_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* CLOCK_MONOTONIC_COARSE: a quarter of the cost, up to a kernel tick (or more, right
 * after a stall) behind. Only for admission checks that a precise check repeats before
 * anything runs (routing accepts a keyed message; its handler is checked precisely). */
static inline double axd_mono_coarse_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

#endif
