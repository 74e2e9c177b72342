/* The plugin API for actors that do real work (ABI 1.3..1.5, include/axactor/plugin.h),
 * against a real daemon with tests/plugins/work.c: business errors that leave the actor
 * running, deferred replies answered from later handlers (to clients and to actors; an
 * unanswered token times out for its asker, an incarnation's end answers ENOPROC), and
 * timers (periodic, one-shot, canceled, gone with the incarnation), durable keyed actors
 * on one node (state codecs, ax_persist, ax_forget, "$forget", state.max_bytes,
 * state.persist = off). Run with 1 and 2
 * workers (AX_TEST_WORKERS). */
#include "axactor/client.h"
#include "axactor/plugin.h"
#include "harness.h"

#include <check.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static const char *const WORK[] = {"-p", "work", NULL};

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* Ask and return the reply text (caller frees), or NULL with *rc the error. */
static char *ask(axc_conn *c, const char *name, const char *msg, const char *payload, int timeout_ms, int *rc)
{
    axc_target t = axc_by_name(name);
    void *r = NULL;
    size_t n = 0;
    *rc = axc_ask(c, &t, msg, payload, payload ? strlen(payload) : 0, timeout_ms, &r, &n);
    return *rc ? NULL : r;
}

static void expect(axc_conn *c, const char *name, const char *msg, const char *payload, const char *want)
{
    int rc;
    char *v = ask(c, name, msg, payload, 5000, &rc);
    ck_assert_msg(rc == 0, "ask %s %s %s: %s (%s)", name, msg, payload ? payload : "", ax_errname(rc), axc_errmsg(c));
    ck_assert_msg(!strcmp(v, want), "ask %s %s %s: '%s', want '%s'", name, msg, payload ? payload : "", v, want);
    axc_free(v);
}

static void spawn(axc_conn *c, const char *name, const char *cfg)
{
    axc_ref r;
    int rc = axc_spawn(c, "work", name, cfg, &r);
    ck_assert_msg(rc == 0, "spawn %s: %s (%s)", name, ax_errname(rc), axc_errmsg(c));
}

/* Wait (bounded) until ask name msg answers want. */
static void wait_for(axc_conn *c, const char *name, const char *msg, const char *want, int ms)
{
    char *v = NULL;
    for (int i = 0; i < ms / 10; i++) {
        int rc;
        v = ask(c, name, msg, NULL, 2000, &rc);
        if (v && !strcmp(v, want)) {
            axc_free(v);
            return;
        }
        axc_free(v);
        sleep_ms(10);
    }
    int rc;
    v = ask(c, name, msg, NULL, 2000, &rc);
    ck_abort_msg("%s %s: '%s' after %d ms, want '%s'", name, msg, v ? v : ax_errname(rc), ms, want);
}

START_TEST(a_business_error_reaches_the_asker_with_its_text_and_the_actor_lives_on)
{
    ax_h_daemon *d = ax_h_start(WORK);
    axc_conn *c = ax_h_connect(d);
    spawn(c, "u", NULL);
    expect(c, "u", "find", "alice", "found");
    int rc;
    char *v = ask(c, "u", "find", "missing", 5000, &rc);
    ck_assert_ptr_null(v);
    ck_assert_int_eq(rc, AX_ENOTFOUND);
    ck_assert_str_eq(axc_errmsg(c), "no such user: missing");
    expect(c, "u", "handled", NULL, "3"); /* the same incarnation: nothing restarted it */
    /* an actor asker gets the code as m->status and the text as the payload */
    spawn(c, "asker", NULL);
    expect(c, "asker", "ask", "u find", "");
    wait_for(c, "asker", "last", "ENOTFOUND:no such user: missing", 3000);
    axc_close(c);
    ax_h_stop(d);
}
END_TEST

START_TEST(a_deferred_reply_is_answered_from_a_later_message_once)
{
    ax_h_daemon *d = ax_h_start(WORK);
    axc_conn *c = ax_h_connect(d), *c2 = ax_h_connect(d);
    spawn(c, "svc", NULL);
    /* c asks "defer" and waits; c2 makes the actor answer it */
    axc_target t = axc_by_name("svc");
    uint32_t id;
    ck_assert_int_eq(axc_send_ask(c, &t, "defer", NULL, 0, 5000, &id), 0);
    ck_assert_int_eq(axc_flush(c), 0);
    wait_for(c2, "svc", "tokens", "1", 3000);
    axc_result r;
    ck_assert_int_eq(axc_poll_result(c, 100, &r), 0); /* not answered yet */
    expect(c2, "svc", "answer", "later answer", "ok");
    ck_assert_int_eq(axc_poll_result(c, 3000, &r), 1);
    ck_assert_uint_eq(r.req_id, id);
    ck_assert_int_eq(r.status, AX_OK);
    ck_assert_mem_eq(r.data, "later answer", 12);
    axc_free(r.data);
    /* a token answered twice: the second is an error */
    expect(c2, "svc", "answer_again", NULL, "ENOTFOUND");
    /* an error through a token, with its text */
    ck_assert_int_eq(axc_send_ask(c, &t, "defer", NULL, 0, 5000, &id), 0);
    ck_assert_int_eq(axc_flush(c), 0);
    wait_for(c2, "svc", "tokens", "1", 3000);
    expect(c2, "svc", "answer_err", NULL, "ok");
    ck_assert_int_eq(axc_poll_result(c, 3000, &r), 1);
    ck_assert_int_eq(r.status, AX_EBUSY);
    ck_assert_str_eq((const char *)r.data, "later, please"); /* an error's result carries its message */
    axc_free(r.data);
    /* one ask, one token: a second ax_defer on the same ask gets 0 */
    expect(c, "svc", "defer_twice", NULL, "0");
    /* an actor asker gets its deferred reply as its reply message */
    spawn(c, "asker", NULL);
    expect(c, "asker", "ask", "svc defer", "");
    wait_for(c2, "svc", "tokens", "1", 3000);
    expect(c2, "svc", "answer", "to an actor", "ok");
    wait_for(c, "asker", "last", "OK:to an actor", 3000);
    axc_close(c2);
    axc_close(c);
    ax_h_stop(d);
}
END_TEST

START_TEST(an_unanswered_token_times_out_and_the_end_of_the_incarnation_answers_enoproc)
{
    ax_h_daemon *d = ax_h_start(WORK);
    axc_conn *c = ax_h_connect(d), *c2 = ax_h_connect(d);
    spawn(c, "svc", "{\"restart\":\"permanent\"}");
    int rc;
    char *v = ask(c, "svc", "defer", NULL, 200, &rc); /* nobody answers: the asker's timeout */
    ck_assert_ptr_null(v);
    ck_assert_int_eq(rc, AX_ETIMEDOUT);
    expect(c2, "svc", "answer", "too late", "ok"); /* the token was still open: a late reply, dropped */
    /* open tokens when the actor fails (and restarts): their askers hear ENOPROC */
    axc_target t = axc_by_name("svc");
    uint32_t id;
    ck_assert_int_eq(axc_send_ask(c, &t, "defer", NULL, 0, 5000, &id), 0);
    ck_assert_int_eq(axc_flush(c), 0);
    wait_for(c2, "svc", "tokens", "1", 3000);
    v = ask(c2, "svc", "crash", NULL, 2000, &rc);
    ck_assert_int_eq(rc, AX_EFAILED);
    axc_result r;
    ck_assert_int_eq(axc_poll_result(c, 3000, &r), 1);
    ck_assert_uint_eq(r.req_id, id);
    ck_assert_int_eq(r.status, AX_ENOPROC);
    axc_free(r.data);
    expect(c2, "svc", "tokens", NULL, "0"); /* the new incarnation has none */
    /* and when it is stopped */
    ck_assert_int_eq(axc_send_ask(c, &t, "defer", NULL, 0, 5000, &id), 0);
    ck_assert_int_eq(axc_flush(c), 0);
    wait_for(c2, "svc", "tokens", "1", 3000);
    ck_assert_int_eq(axc_stop(c2, &t), 0);
    ck_assert_int_eq(axc_poll_result(c, 3000, &r), 1);
    ck_assert_int_eq(r.status, AX_ENOPROC);
    axc_free(r.data);
    axc_close(c2);
    axc_close(c);
    ax_h_stop(d);
}
END_TEST

START_TEST(timers_tick_stop_when_canceled_and_end_with_the_incarnation)
{
    ax_h_daemon *d = ax_h_start(WORK);
    axc_conn *c = ax_h_connect(d);
    spawn(c, "tk", "{\"restart\":\"permanent\"}");
    int rc;
    char *id = ask(c, "tk", "every", "20", 2000, &rc);
    ck_assert_msg(id != NULL, "every: %s (%s)", ax_errname(rc), axc_errmsg(c));
    /* a periodic timer ticks, with its payload */
    char *v = NULL;
    long ticks = 0;
    for (int i = 0; i < 300 && ticks < 5; i++) {
        sleep_ms(10);
        v = ask(c, "tk", "ticks", NULL, 2000, &rc);
        ticks = v ? strtol(v, NULL, 10) : 0;
        if (ticks >= 5)
            ck_assert_msg(strstr(v, ":tock"), "%s", v);
        axc_free(v);
    }
    ck_assert_int_ge(ticks, 5);
    /* canceled: no more ticks; a second cancel is ENOTFOUND */
    expect(c, "tk", "cancel", id, "ok");
    expect(c, "tk", "cancel", id, "ENOTFOUND");
    axc_free(id);
    v = ask(c, "tk", "ticks", NULL, 2000, &rc);
    long at_cancel = strtol(v, NULL, 10);
    axc_free(v);
    sleep_ms(120);
    v = ask(c, "tk", "ticks", NULL, 2000, &rc);
    ck_assert_int_eq(strtol(v, NULL, 10), at_cancel);
    axc_free(v);
    /* one-shot: fires once, then its id is unknown */
    id = ask(c, "tk", "once", "10", 2000, &rc);
    ck_assert_ptr_nonnull(id);
    char want[32];
    snprintf(want, sizeof want, "%ld:tock", at_cancel + 1);
    wait_for(c, "tk", "ticks", want, 3000);
    expect(c, "tk", "cancel", id, "ENOTFOUND");
    axc_free(id);
    /* timers end with the incarnation: after a restart nothing ticks */
    id = ask(c, "tk", "every", "20", 2000, &rc);
    axc_free(id);
    v = ask(c, "tk", "crash", NULL, 2000, &rc);
    ck_assert_int_eq(rc, AX_EFAILED);
    sleep_ms(120);
    expect(c, "tk", "ticks", NULL, "0:");
    axc_close(c);
    ax_h_stop(d);
}
END_TEST

START_TEST(spawn_arguments_reach_on_start_at_every_incarnation)
{
    ax_h_daemon *d = ax_h_start(WORK);
    axc_conn *c = ax_h_connect(d);
    const uint8_t bin[] = {'a', 0, 0xff, '"', '\\', 'z'};
    axc_ref r;
    ck_assert_int_eq(axc_spawn_arg(c, "work", "b", NULL, "{\"restart\":\"permanent\"}", bin, sizeof bin, &r), 0);
    axc_target t = axc_by_name("b");
    void *v = NULL;
    size_t n = 0;
    ck_assert_int_eq(axc_ask(c, &t, "arg", NULL, 0, 3000, &v, &n), 0);
    ck_assert_uint_eq(n, 2 + sizeof bin);
    ck_assert_mem_eq(v, "1:", 2);
    ck_assert_mem_eq((char *)v + 2, bin, sizeof bin);
    axc_free(v);
    /* a restart runs on_start again, with the same argument */
    int rc;
    axc_free(ask(c, "b", "crash", NULL, 2000, &rc));
    ck_assert_int_eq(rc, AX_EFAILED);
    ck_assert_int_eq(axc_ask(c, &t, "arg", NULL, 0, 3000, &v, &n), 0);
    ck_assert_uint_eq(n, 2 + sizeof bin);
    ck_assert_mem_eq((char *)v + 2, bin, sizeof bin);
    axc_free(v);
    /* keyed (get_or_spawn: the argument of the spawn that made it), the spawn config's
     * "arg", axctl spawn --arg, and an actor spawning another with ax_spawn_opts.arg */
    ck_assert_int_eq(axc_spawn_arg(c, "work", NULL, "k1", NULL, "keyed", 5, &r), 0);
    axc_target tk = axc_by_key("work", "k1");
    ck_assert_int_eq(axc_ask(c, &tk, "arg", NULL, 0, 3000, &v, &n), 0);
    ck_assert_str_eq(v, "1:keyed");
    axc_free(v);
    ck_assert_int_eq(axc_spawn(c, "work", "j", "{\"arg\":\"as json\"}", &r), 0);
    expect(c, "j", "arg", NULL, "1:as json");
    const char *argv[] = {ax_h_build_path("libaxclient/axctl"), "-s", ax_h_sock(d), "spawn", "work", "x", "--arg",
                          "from axctl", NULL};
    char *out = NULL;
    ck_assert_int_eq(ax_h_run(argv, &out, NULL, 10000), 0);
    free(out);
    expect(c, "x", "arg", NULL, "1:from axctl");
    expect(c, "x", "child", "kid from a parent", "spawned");
    expect(c, "kid", "arg", NULL, "1:from a parent");
    /* no argument: none; too long or both forms: refused, nothing spawned */
    ck_assert_int_eq(axc_spawn(c, "work", "none", NULL, &r), 0);
    expect(c, "none", "arg", NULL, "1:");
    static uint8_t big[AXC_SPAWN_ARG_MAX + 1];
    ck_assert_int_eq(axc_spawn_arg(c, "work", "big", NULL, NULL, big, sizeof big, &r), AX_EINVAL);
    ck_assert_int_eq(axc_spawn(c, "work", "two", "{\"arg\":\"a\",\"arg_hex\":\"62\"}", &r), AX_EINVAL);
    ck_assert_int_eq(axc_spawn(c, "work", "odd", "{\"arg_hex\":\"6\"}", &r), AX_EINVAL);
    axc_close(c);
    ax_h_stop(d);
}
END_TEST

START_TEST(an_io_watch_reports_readiness_once_per_handling_and_ends_with_the_actor)
{
    ax_h_daemon *d = ax_h_start(WORK);
    axc_conn *c = ax_h_connect(d);
    spawn(c, "io", "{\"restart\":\"permanent\"}");
    int rc;
    char *id = ask(c, "io", "pipe", NULL, 2000, &rc);
    ck_assert_msg(id != NULL, "pipe: %s (%s)", ax_errname(rc), axc_errmsg(c));
    axc_free(id);
    expect(c, "io", "put", "hello", "ok");
    wait_for(c, "io", "io", "1:5:0:hello", 3000);
    /* level-triggered readiness is reported again only after the actor handled it */
    expect(c, "io", "put", " world", "ok");
    wait_for(c, "io", "io", "2:11:0:hello world", 3000);
    sleep_ms(50);
    expect(c, "io", "io", NULL, "2:11:0:hello world"); /* nothing ready: no more events */
    /* unwatched: data stays unread */
    expect(c, "io", "unwatch", NULL, "ok");
    expect(c, "io", "unwatch", NULL, "ENOTFOUND");
    expect(c, "io", "put", "!", "ok");
    sleep_ms(50);
    expect(c, "io", "io", NULL, "2:11:0:hello world");
    /* watches end with the incarnation (on_stop closes the pipe; nothing leaks or fires) */
    axc_free(ask(c, "io", "crash", NULL, 2000, &rc));
    ck_assert_int_eq(rc, AX_EFAILED);
    expect(c, "io", "io", NULL, "0:0:0:");
    /* bad use: the fd closed while watched; the daemon lives, the watch is gone or reported */
    id = ask(c, "io", "pipe", NULL, 2000, &rc);
    axc_free(id);
    expect(c, "io", "close_watched", NULL, "closed");
    expect(c, "io", "many_watches", "1", "0:EINVAL"); /* a fd that is not open: refused */
    axc_free(ask(c, "io", "put", "x", 2000, &rc)); /* no reader now: EPIPE, as a business error */
    ck_assert_int_eq(rc, AX_EIO);
    sleep_ms(50);
    char *v = ask(c, "io", "unwatch", NULL, 2000, &rc);
    ck_assert_msg(v && (!strcmp(v, "ok") || !strcmp(v, "ENOTFOUND")), "%s", v ? v : ax_errname(rc));
    axc_free(v);
    spawn(c, "after", NULL);
    expect(c, "after", "find", "x", "found");
    /* limits: AX_IO_WATCHES_MAX watches and AX_TIMERS_MAX timers per actor, then EFULL */
    axc_free(ask(c, "after", "pipe", NULL, 2000, &rc)); /* its first watch */
    expect(c, "after", "many_watches", "70", "63:EFULL");
    expect(c, "after", "many_timers", "1030", "1024:EFULL");
    axc_free(ask(c, "after", "crash", NULL, 2000, &rc)); /* temporary: all of it ends with it */
    ck_assert_int_eq(rc, AX_EFAILED);
    axc_close(c);
    ax_h_stop(d);
}
END_TEST

START_TEST(offloaded_work_returns_to_its_actor_a_full_queue_is_efull_and_cleanup_always_runs)
{
    ax_h_daemon *d = ax_h_start((const char *const[]){"-p", "work", "--set", "runtime.offload_threads=1", "--set",
                                                      "runtime.offload_queue=2", NULL});
    axc_conn *c = ax_h_connect(d);
    spawn(c, "o", NULL);
    expect(c, "o", "slow", "10", "queued");
    wait_for(c, "o", "last", "OK:slept 10", 3000);
    expect(c, "o", "cleanups", NULL, "1");
    /* the handler is not held up by a blocking job: it answers while the job sleeps */
    expect(c, "o", "slow", "300", "queued");
    expect(c, "o", "handled", NULL, "3");
    wait_for(c, "o", "last", "OK:slept 300", 3000);
    /* one thread, two waiting: of five jobs submitted at once two or three are taken (the
     * thread may have taken the first off the queue meanwhile), the rest are EFULL */
    int rc;
    char *v = ask(c, "o", "fill", "5 150", 3000, &rc);
    ck_assert_msg(v && (!strcmp(v, "2:EFULL") || !strcmp(v, "3:EFULL")), "fill: %s", v ? v : ax_errname(rc));
    int taken = v[0] - '0';
    axc_free(v);
    char want[16];
    snprintf(want, sizeof want, "%d", 2 + taken);
    wait_for(c, "o", "done_count", want, 5000);
    expect(c, "o", "cleanups", NULL, want);
    /* a job whose actor is gone when it completes: dropped, its cleanup still runs */
    spawn(c, "gone", NULL);
    expect(c, "gone", "slow", "200", "queued");
    axc_target tg = axc_by_name("gone");
    ck_assert_int_eq(axc_stop(c, &tg), 0);
    snprintf(want, sizeof want, "%d", 3 + taken);
    wait_for(c, "o", "cleanups", want, 3000);
    /* the plugin API called from a pool thread is refused, and logged */
    expect(c, "o", "abuse", NULL, "queued");
    wait_for(c, "o", "last", "OK:EINVAL", 3000);
    ck_assert_msg(ax_h_wait_log(d, "called from an offload thread", 2000), "refusal not logged");
    /* a daemon stopping with jobs queued drops them (cleanup runs), and exits cleanly */
    v = ask(c, "o", "fill", "3 300", 3000, &rc);
    ck_assert_msg(v && v[0] >= '2', "fill: %s", v ? v : ax_errname(rc));
    axc_free(v);
    axc_close(c);
    ax_h_stop(d);
}
END_TEST

/* plugins/filestore: file I/O on the offload pool, asks answered when it is on disk. */
START_TEST(the_filestore_example_writes_and_reads_its_file_off_the_loop)
{
    char dir[] = "/tmp/axfs.XXXXXX", path[64], bad[96];
    ck_assert_ptr_nonnull(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/notes.txt", dir);
    snprintf(bad, sizeof bad, "%s/no/such/dir/x", dir);
    ax_h_daemon *d = ax_h_start((const char *const[]){"-p", "filestore", NULL});
    axc_conn *c = ax_h_connect(d);
    axc_ref r;
    ck_assert_int_eq(axc_spawn_arg(c, "filestore", "notes", NULL, NULL, path, strlen(path), &r), 0);
    ck_assert_int_eq(axc_spawn_arg(c, "filestore", "bad", NULL, NULL, bad, strlen(bad), &r), 0);
    ck_assert_int_eq(axc_spawn(c, "filestore", "nopath", NULL, &r), AX_EINVAL); /* on_start refuses it */
    int rc;
    char *v = ask(c, "notes", "get", NULL, 3000, &rc);
    ck_assert_int_eq(rc, AX_ENOTFOUND);
    ck_assert_msg(strstr(axc_errmsg(c), "No such file"), "%s", axc_errmsg(c));
    axc_free(v);
    expect(c, "notes", "put", "written on disk", "OK");
    expect(c, "notes", "get", NULL, "written on disk");
    FILE *f = fopen(path, "r");
    char buf[64] = "";
    ck_assert_ptr_nonnull(f);
    ck_assert_ptr_nonnull(fgets(buf, sizeof buf, f));
    fclose(f);
    ck_assert_str_eq(buf, "written on disk");
    v = ask(c, "bad", "put", "x", 3000, &rc);
    ck_assert_int_eq(rc, AX_EIO);
    ck_assert_msg(strstr(axc_errmsg(c), "No such file"), "%s", axc_errmsg(c));
    axc_free(v);
    v = ask(c, "bad", "get", NULL, 3000, &rc); /* alive after its error */
    ck_assert_int_eq(rc, AX_ENOTFOUND);
    axc_free(v);
    axc_close(c);
    ax_h_stop(d);
    unlink(path);
    rmdir(dir);
}
END_TEST

/* A plugin binary built from the frozen 1.0 headers (tests/abi/1.0, tests/plugins/abi10.c)
 * loads into this daemon and what it calls works: tell, ask, reply, send_after, lookup,
 * an ask to an actor of a newer plugin, a monitor. */
/* ---- durable keyed actors (ABI 1.9) on one node: the memory store ---- */

static char *ask_key(axc_conn *c, const char *type, const char *key, const char *msg, const char *payload, int *rc)
{
    axc_target t = axc_by_key(type, key);
    void *r = NULL;
    size_t n = 0;
    *rc = axc_ask(c, &t, msg, payload, payload ? strlen(payload) : 0, 5000, &r, &n);
    return *rc ? NULL : r;
}

static void expect_key(axc_conn *c, const char *type, const char *key, const char *msg, const char *payload,
                       const char *want)
{
    int rc;
    char *v = ask_key(c, type, key, msg, payload, &rc);
    ck_assert_msg(rc == 0, "ask %s %s %s %s: %s (%s)", type, key, msg, payload ? payload : "", ax_errname(rc),
                  axc_errmsg(c));
    ck_assert_msg(!strcmp(v, want), "ask %s %s %s %s: '%s', want '%s'", type, key, msg, payload ? payload : "", v,
                  want);
    axc_free(v);
}

static void stop_key(axc_conn *c, const char *type, const char *key)
{
    axc_target t = axc_by_key(type, key);
    ck_assert_int_eq(axc_stop(c, &t), 0);
    sleep_ms(50);
}

static double status_num(axc_conn *c, const char *section, const char *k)
{
    char *json = NULL;
    ck_assert_int_eq(axc_status(c, &json), 0);
    const char *p = strstr(json, section);
    ck_assert_ptr_nonnull(p);
    char pat[64];
    snprintf(pat, sizeof pat, "\"%s\":", k);
    p = strstr(p, pat);
    ck_assert_msg(p != NULL, "no %s.%s in %s", section, k, json);
    double v = atof(p + strlen(pat));
    axc_free(json);
    return v;
}

START_TEST(durable_keyed_state_survives_stops_idle_reaps_and_is_forgotten_on_request)
{
    const char *const args[] = {"-p", "ledger", "--set", "runtime.idle_timeout_ms=200", NULL};
    ax_h_daemon *d = ax_h_start(args);
    axc_conn *c = ax_h_connect(d);
    expect_key(c, "ledger", "k1", "add", "1", "1");
    expect_key(c, "ledger", "k1", "add", "2", "2");
    expect_key(c, "ledger", "k1", "add", "2", "2"); /* the same request id again: not counted */
    stop_key(c, "ledger", "k1");
    expect_key(c, "ledger", "k1", "ids", NULL, "1,2"); /* a new incarnation loaded it */
    sleep_ms(800);                                     /* reaped when idle ... */
    ck_assert_double_eq(status_num(c, "\"counters\"", "idle_reaped") > 0, 1);
    expect_key(c, "ledger", "k1", "count", NULL, "2"); /* ... and loaded again */
    /* a type without encode writes what it chooses (ax_persist) */
    expect_key(c, "register", "r1", "set", "hello", "");
    stop_key(c, "register", "r1");
    expect_key(c, "register", "r1", "get", NULL, "hello");
    /* the actor's own ax_forget, then the operator's "$forget" (axctl forget) */
    expect_key(c, "ledger", "k1", "forget", NULL, "");
    expect_key(c, "ledger", "k1", "count", NULL, "0");
    expect_key(c, "dcounter", "c1", "add", "5", "5");
    expect_key(c, "dcounter", "c1", "$forget", NULL, "");
    expect_key(c, "dcounter", "c1", "get", NULL, "0");
    ck_assert_double_ge(status_num(c, "\"state\"", "writes"), 4);
    ck_assert_double_ge(status_num(c, "\"state\"", "loads_found"), 3);
    ck_assert_double_ge(status_num(c, "\"state\"", "deletes"), 2);
    ck_assert_double_eq(status_num(c, "\"state\"", "fenced"), 0);
    axc_close(c);
    ax_h_stop(d);
}
END_TEST

START_TEST(a_state_above_max_bytes_fails_its_ask_and_nothing_is_lost_silently)
{
    /* ledger records are 8 + 8 n bytes: one id fits in 16, two do not */
    const char *const args[] = {"-p", "ledger", "--set", "state.max_bytes=16", NULL};
    ax_h_daemon *d = ax_h_start(args);
    axc_conn *c = ax_h_connect(d);
    expect_key(c, "ledger", "big", "add", "1", "1");
    int rc;
    char *v = ask_key(c, "ledger", "big", "add", "2", &rc);
    ck_assert_ptr_null(v);
    ck_assert_msg(rc == AX_ETOOBIG, "add beyond state.max_bytes: %s, want ETOOBIG", ax_errname(rc));
    ck_assert_msg(ax_h_wait_log(d, "encode failed", 2000), "the encode failure is not logged");
    /* the failed handler's change was not acknowledged, and is not what the store has */
    expect_key(c, "ledger", "big", "ids", NULL, "1");
    axc_close(c);
    ax_h_stop(d);
    /* persist = off: the same type keeps nothing */
    const char *const off[] = {"-p", "ledger", "--set", "state.persist=off", NULL};
    d = ax_h_start(off);
    c = ax_h_connect(d);
    expect_key(c, "ledger", "k", "add", "7", "1");
    stop_key(c, "ledger", "k");
    expect_key(c, "ledger", "k", "count", NULL, "0");
    ck_assert_double_eq(status_num(c, "\"state\"", "writes"), 0);
    axc_close(c);
    ax_h_stop(d);
}
END_TEST

START_TEST(a_plugin_built_for_abi_1_0_keeps_working)
{
    ax_h_daemon *d = ax_h_start((const char *const[]){"-p", "abi10", "-p", "work", NULL});
    axc_conn *c = ax_h_connect(d);
    char *doc = NULL;
    ck_assert_int_eq(axc_plugins(c, &doc), 0);
    ck_assert_msg(strstr(doc, "\"abi10\"") && strstr(doc, "1.0"), "%s", doc);
    axc_free(doc);
    axc_ref r;
    ck_assert_int_eq(axc_spawn(c, "c10", "old", NULL, &r), 0);
    ck_assert_int_eq(axc_spawn(c, "c10", "old2", NULL, &r), 0);
    spawn(c, "new", NULL);
    axc_target t = axc_by_name("old");
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(axc_tell(c, &t, "inc", NULL, 0), 0);
    expect(c, "old", "get", NULL, "3");
    expect(c, "old", "later", "10", "");
    wait_for(c, "old", "get", "4", 3000);
    expect(c, "old2", "ask_get", "old", "");
    wait_for(c, "old2", "last", "0:4", 3000);
    /* a 1.0 actor monitors an actor of a newer plugin */
    expect(c, "old2", "watch", "new", "");
    axc_target tn = axc_by_name("new");
    ck_assert_int_eq(axc_stop(c, &tn), 0);
    wait_for(c, "old2", "last", "0:stopped", 3000);
    axc_close(c);
    ax_h_stop(d);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("plugin_api");
    TCase *tc = tcase_create("daemon");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, a_business_error_reaches_the_asker_with_its_text_and_the_actor_lives_on);
    tcase_add_test(tc, a_deferred_reply_is_answered_from_a_later_message_once);
    tcase_add_test(tc, an_unanswered_token_times_out_and_the_end_of_the_incarnation_answers_enoproc);
    tcase_add_test(tc, timers_tick_stop_when_canceled_and_end_with_the_incarnation);
    tcase_add_test(tc, a_plugin_built_for_abi_1_0_keeps_working);
    tcase_add_test(tc, spawn_arguments_reach_on_start_at_every_incarnation);
    tcase_add_test(tc, an_io_watch_reports_readiness_once_per_handling_and_ends_with_the_actor);
    tcase_add_test(tc, offloaded_work_returns_to_its_actor_a_full_queue_is_efull_and_cleanup_always_runs);
    tcase_add_test(tc, the_filestore_example_writes_and_reads_its_file_off_the_loop);
    tcase_add_test(tc, durable_keyed_state_survives_stops_idle_reaps_and_is_forgotten_on_request);
    tcase_add_test(tc, a_state_above_max_bytes_fails_its_ask_and_nothing_is_lost_silently);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
