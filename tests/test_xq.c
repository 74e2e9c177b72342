/* The cross-worker queue (daemon/core/xq.c) with real threads on a real libev loop:
 * every item pushed arrives exactly once, in each producer's order, while several
 * producers race for cells; a full queue refuses (AX_EFULL) and loses nothing; the queue
 * wakes its loop from another thread. Run under ThreadSanitizer in CI (build-tsan). */
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <string.h>

#include "axactor/errors.h"
#include "xq.h"

#include <check.h> /* after plugin.h: check.h defines a `fail` macro */

#define PRODUCERS 3
#define PER_PRODUCER 100000

typedef struct {
    axd_xq *q;
    uint32_t id;
    uint64_t full; /* pushes refused (retried) */
} producer;

static uint64_t next_seq[PRODUCERS];
static uint64_t received, out_of_order;
static struct ev_loop *L;

static void consume(axd_xq *q, const axd_xmsg *it, size_t n, void *ud)
{
    (void)q;
    (void)ud;
    for (size_t i = 0; i < n; i++) {
        uint32_t pid = it[i].kind;
        uint64_t seq = (uint64_t)(uintptr_t)it[i].p;
        if (pid >= PRODUCERS || seq != next_seq[pid])
            out_of_order++;
        else
            next_seq[pid]++;
        received++;
    }
    if (received >= (uint64_t)PRODUCERS * PER_PRODUCER)
        ev_break(L, EVBREAK_ALL);
}

static void *produce(void *arg)
{
    producer *p = arg;
    for (uint64_t s = 0; s < PER_PRODUCER; s++) {
        axd_xmsg m = {.kind = p->id, .to = {s, 0, 0}, .p = (void *)(uintptr_t)s};
        for (int tries = 0; axd_xq_push(p->q, &m) == AX_EFULL; tries++) {
            p->full++;
            if (tries > 10000000)
                return NULL; /* bounded: the test then sees items missing */
            sched_yield();
        }
    }
    return NULL;
}

static void deadline_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)w;
    (void)revents;
    ev_break(loop, EVBREAK_ALL);
}

START_TEST(every_item_arrives_once_in_each_producers_order_across_threads)
{
    axd_xq q;
    memset(next_seq, 0, sizeof next_seq);
    received = out_of_order = 0;
    L = ev_loop_new(EVFLAG_AUTO);
    /* small enough that the producers fill it and meet AX_EFULL */
    ck_assert_int_eq(axd_xq_init(&q, L, 256, 64, consume, NULL), 0);
    ev_timer deadline;
    ev_timer_init(&deadline, deadline_cb, 60., 0.);
    ev_timer_start(L, &deadline);
    producer P[PRODUCERS];
    pthread_t th[PRODUCERS];
    for (uint32_t i = 0; i < PRODUCERS; i++) {
        P[i] = (producer){.q = &q, .id = i};
        ck_assert_int_eq(pthread_create(&th[i], NULL, produce, &P[i]), 0);
    }
    ev_run(L, 0);
    for (int i = 0; i < PRODUCERS; i++)
        pthread_join(th[i], NULL);
    ev_timer_stop(L, &deadline);
    ck_assert_uint_eq(out_of_order, 0);
    ck_assert_uint_eq(received, (uint64_t)PRODUCERS * PER_PRODUCER);
    for (int i = 0; i < PRODUCERS; i++)
        ck_assert_uint_eq(next_seq[i], PER_PRODUCER);
    uint64_t full = 0;
    for (int i = 0; i < PRODUCERS; i++)
        full += P[i].full;
    ck_assert_uint_eq(atomic_load(&q.refused), full);
    axd_xq_free(&q);
    ev_loop_destroy(L);
}
END_TEST

static size_t drained;
static void count_items(axd_xq *q, const axd_xmsg *it, size_t n, void *ud)
{
    (void)q;
    (void)it;
    (void)ud;
    drained += n;
}

START_TEST(a_full_queue_refuses_and_loses_nothing_and_free_hands_over_the_rest)
{
    axd_xq q;
    struct ev_loop *l = ev_loop_new(EVFLAG_AUTO);
    drained = 0;
    ck_assert_int_eq(axd_xq_init(&q, l, 5, 0, count_items, NULL), 0); /* rounded up to 8 */
    for (uintptr_t i = 0; i < 8; i++) {
        axd_xmsg m = {.kind = 1, .p = (void *)i};
        ck_assert_int_eq(axd_xq_push(&q, &m), 0);
    }
    axd_xmsg extra = {.kind = 2};
    ck_assert_int_eq(axd_xq_push(&q, &extra), AX_EFULL);
    ck_assert_uint_eq(atomic_load(&q.refused), 1);
    axd_xmsg out[4];
    ck_assert_uint_eq(axd_xq_pop(&q, out, 4), 4);
    for (uintptr_t i = 0; i < 4; i++)
        ck_assert_ptr_eq(out[i].p, (void *)i); /* in order */
    ck_assert_int_eq(axd_xq_push(&q, &extra), 0); /* room again */
    ev_run(l, EVRUN_NOWAIT);                        /* the wake-up drains the rest */
    ck_assert_uint_eq(drained, 5);
    ck_assert_int_eq(axd_xq_push(&q, &extra), 0);
    axd_xq_free(&q); /* hands over what is still queued */
    ck_assert_uint_eq(drained, 6);
    axd_xq_free(&q); /* twice is harmless */
    ev_loop_destroy(l);
    ck_assert_int_eq(axd_xq_init(&q, NULL, 8, 0, count_items, NULL), AX_EINVAL);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("xq");
    TCase *tc = tcase_create("xq");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, every_item_arrives_once_in_each_producers_order_across_threads);
    tcase_add_test(tc, a_full_queue_refuses_and_loses_nothing_and_free_hands_over_the_rest);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
