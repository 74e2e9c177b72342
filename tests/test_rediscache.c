/* The rediscache example plugin (plugins/rediscache.c) against a real redis-server this
 * test starts on a free port: values read and written through a keyed actor whose Redis
 * connection runs on the daemon's loop (ax_io_watch), answered by deferred replies; a
 * value written behind its back shows up in the cache at the next refresh (a timer);
 * Redis errors and a dead Redis are business errors (the actor lives on) and it
 * reconnects once Redis is back. With 1 and 2 workers (AX_TEST_WORKERS). */
#include "axactor/client.h"
#include "harness.h"
#include "redis_test_util.h"

#include <check.h>
#include <hiredis/hiredis.h>
#include <string.h>

static redis_proc R;

/* A plain client of the same Redis: the outside world. */
static void redis_cmd(const char *fmt, const char *a, const char *b)
{
    redisContext *rc = redisConnect("127.0.0.1", R.port);
    ck_assert_msg(rc && !rc->err, "redis connect: %s", rc ? rc->errstr : "oom");
    redisReply *r = b ? redisCommand(rc, fmt, a, b) : redisCommand(rc, fmt, a);
    ck_assert_ptr_nonnull(r);
    freeReplyObject(r);
    redisFree(rc);
}

static char *ask_key(axc_conn *c, const char *key, const char *msg, const char *payload, int *rc)
{
    axc_target t = axc_by_key("rediscache", key);
    void *v = NULL;
    size_t n = 0;
    *rc = axc_ask(c, &t, msg, payload, payload ? strlen(payload) : 0, 3000, &v, &n);
    return *rc ? NULL : v;
}

static void expect(axc_conn *c, const char *key, const char *msg, const char *payload, const char *want)
{
    int rc;
    char *v = ask_key(c, key, msg, payload, &rc);
    ck_assert_msg(rc == 0 && !strcmp(v, want), "%s %s: %s, want %s", key, msg, rc ? axc_errmsg(c) : v, want);
    axc_free(v);
}

static void expect_err(axc_conn *c, const char *key, const char *msg, int code, const char *text_part)
{
    int rc;
    char *v = ask_key(c, key, msg, NULL, &rc);
    axc_free(v);
    ck_assert_msg(rc == code && strstr(axc_errmsg(c), text_part), "%s %s: %s (%s), want %s ~ %s", key, msg,
                  ax_errname(rc), axc_errmsg(c), ax_errname(code), text_part);
}

static void spawn_cache(axc_conn *c, const char *key, int refresh_ms)
{
    char arg[64];
    snprintf(arg, sizeof arg, "127.0.0.1:%d:%d", R.port, refresh_ms);
    axc_ref r;
    int rc = axc_spawn_arg(c, "rediscache", NULL, key, NULL, arg, strlen(arg), &r);
    ck_assert_msg(rc == 0, "spawn rediscache %s: %s (%s)", key, ax_errname(rc), axc_errmsg(c));
}

START_TEST(values_go_through_redis_and_the_cache_follows_it)
{
    redis_up(&R, NULL);
    ax_h_daemon *d = ax_h_start((const char *const[]){"-p", "rediscache", NULL});
    axc_conn *c = ax_h_connect(d);
    spawn_cache(c, "user:1", 100);
    expect_err(c, "user:1", "get", AX_ENOTFOUND, "no value");
    expect_err(c, "user:1", "cached", AX_ENOTFOUND, "nothing cached");
    expect(c, "user:1", "set", "alice", "OK");
    expect(c, "user:1", "get", NULL, "alice");
    /* written behind the actor's back: the refresh timer brings it into the cache */
    redis_cmd("SET %s %s", "user:1", "bob");
    int rc = 0;
    char *v = NULL;
    for (int i = 0; i < 300; i++) {
        v = ask_key(c, "user:1", "cached", NULL, &rc);
        if (v && !strcmp(v, "bob"))
            break;
        axc_free(v);
        v = NULL;
        sleep_ms(10);
    }
    ck_assert_msg(v != NULL, "the cache never saw the outside write");
    axc_free(v);
    /* pipelined asks: each answered when Redis answers, none lost */
    axc_target t = axc_by_key("rediscache", "user:1");
    uint32_t ids[100];
    for (int i = 0; i < 100; i++)
        ck_assert_int_eq(axc_send_ask(c, &t, "get", NULL, 0, 5000, &ids[i]), 0);
    ck_assert_int_eq(axc_flush(c), 0);
    for (int i = 0; i < 100; i++) {
        axc_result res;
        ck_assert_int_eq(axc_poll_result(c, 5000, &res), 1);
        ck_assert_msg(res.status == 0 && !strcmp(res.data, "bob"), "pipelined get %d: %d", i, res.status);
        axc_free(res.data);
    }
    /* a Redis error (the key holds a list) is the asker's error; the actor lives on */
    redis_cmd("DEL %s", "user:2", NULL);
    redis_cmd("LPUSH %s %s", "user:2", "x");
    spawn_cache(c, "user:2", 1000);
    expect_err(c, "user:2", "get", AX_EIO, "WRONGTYPE");
    expect(c, "user:2", "stats", NULL, "gets=1 sets=0 refreshes=0 errors=1 connected=1");
    axc_close(c);
    ax_h_stop(d);
    redis_down(&R);
}
END_TEST

START_TEST(a_dead_redis_is_an_error_and_the_actor_reconnects_when_it_is_back)
{
    redis_up(&R, NULL);
    ax_h_daemon *d = ax_h_start((const char *const[]){"-p", "rediscache", NULL});
    axc_conn *c = ax_h_connect(d);
    spawn_cache(c, "k", 50);
    expect(c, "k", "set", "v1", "OK");
    expect(c, "k", "get", NULL, "v1"); /* now cached */
    redis_kill(&R, SIGKILL);
    int rc;
    char *v = ask_key(c, "k", "get", NULL, &rc);
    axc_free(v);
    ck_assert_msg(rc == AX_ENOCONN, "get with redis dead: %s (%s)", ax_errname(rc), axc_errmsg(c));
    ck_assert_msg(strstr(axc_errmsg(c), "redis"), "%s", axc_errmsg(c));
    expect(c, "k", "cached", NULL, "v1"); /* the actor is alive and still has its cache */
    redis_start(&R);                      /* same port, empty */
    v = NULL;
    for (int i = 0; i < 300; i++) { /* the refresh timer reconnects */
        v = ask_key(c, "k", "set", "v2", &rc);
        if (v)
            break;
        sleep_ms(10);
    }
    ck_assert_msg(v != NULL, "no reconnection within 3 s: %s", axc_errmsg(c));
    axc_free(v);
    expect(c, "k", "get", NULL, "v2");
    axc_close(c);
    ax_h_stop(d);
    redis_down(&R);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("rediscache");
    TCase *tc = tcase_create("redis");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, values_go_through_redis_and_the_cache_follows_it);
    tcase_add_test(tc, a_dead_redis_is_an_error_and_the_actor_reconnects_when_it_is_back);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
