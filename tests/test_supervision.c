/* Integration tests of supervision on a real daemon, driven through libaxclient and axctl
 * with the "sup" test plugin (tests/plugins/sup.c): restart policies and intensity, the
 * restart mailbox policies, links and trap-exit, monitors, the lifecycle stream and its
 * lag marker, the keyed registry (get-or-spawn, DIRECT, the idle reaper) and what
 * `axctl actors` / `axctl status` show of all that. One test per rule. */
#include "axactor/client.h"
#include "harness.h"

#include <check.h>
#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static const char *const SUP[] = {"-p", "sup", "-p", "counter", NULL};
/* For the tests that make one client write queue two messages to two actors before
 * either runs: that needs the connection and both actors on one thread (with two
 * workers the connection may be on the other one, whose two messages can then arrive
 * in two turns). Links and monitors across workers: tests/test_workers.c. */
static const char *const SUP_ONE_WORKER[] = {"-p", "sup", "-p", "counter", "--set", "runtime.workers=1", NULL};

#define AXCTL_TIMEOUT_MS 15000

/* ---------- helpers ---------- */

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

#define ck_assert_err(expr, code, c)                                                                               \
    do {                                                                                                           \
        int rc_ = (expr);                                                                                          \
        ck_assert_msg(rc_ == (code), "%s: got %d %s (%s), want %s", #expr, rc_, ax_errname(rc_), axc_errmsg(c),    \
                      ax_errname(code));                                                                           \
    } while (0)

static axc_ref spawn_ok(axc_conn *c, const char *name, const char *cfg)
{
    axc_ref r;
    memset(&r, 0, sizeof r);
    int rc = axc_spawn(c, "sup", name, cfg, &r);
    ck_assert_msg(rc == 0, "spawn sup %s %s: %d %s (%s)", name ? name : "-", cfg ? cfg : "", rc, ax_errname(rc),
                  axc_errmsg(c));
    ck_assert_uint_ne(r.id, 0);
    return r;
}

/* Ask name msg [payload]: the return code; *reply (if given) gets the text. */
static int ask_t(axc_conn *c, const axc_target *t, const char *msg, const char *payload, char **reply)
{
    void *r = NULL;
    size_t len = 0;
    int rc = axc_ask(c, t, msg, payload, payload ? strlen(payload) : 0, 5000, &r, &len);
    if (reply)
        *reply = rc == 0 ? r : NULL;
    else
        axc_free(r);
    return rc;
}

static int ask_rc(axc_conn *c, const char *name, const char *msg, const char *payload)
{
    axc_target t = axc_by_name(name);
    return ask_t(c, &t, msg, payload, NULL);
}

/* Ask and return the reply as text (caller frees with axc_free); fails on an error. */
static char *ask_str(axc_conn *c, const char *name, const char *msg, const char *payload)
{
    axc_target t = axc_by_name(name);
    char *r = NULL;
    int rc = ask_t(c, &t, msg, payload, &r);
    ck_assert_msg(rc == 0, "ask %s %s %s: %d %s (%s)", name, msg, payload ? payload : "", rc, ax_errname(rc),
                  axc_errmsg(c));
    return r;
}

static int64_t ask_num(axc_conn *c, const char *name, const char *msg, const char *payload)
{
    char *r = ask_str(c, name, msg, payload), *end;
    long long v = strtoll(r, &end, 10);
    ck_assert_msg(*r && !*end, "ask %s %s: reply '%s' is not a number", name, msg, r);
    axc_free(r);
    return v;
}

static void expect_str(axc_conn *c, const char *name, const char *msg, const char *want)
{
    char *r = ask_str(c, name, msg, NULL);
    ck_assert_msg(!strcmp(r, want), "ask %s %s: got '%s', want '%s'", name, msg, r, want);
    axc_free(r);
}

/* Poll `ask name msg` until it answers want (bounded by timeout_ms). */
static void wait_num(axc_conn *c, const char *name, const char *msg, int64_t want, int timeout_ms)
{
    int64_t end = mono_ms() + timeout_ms, v = -1;
    for (int i = 0; i < 100000; i++) {
        v = ask_num(c, name, msg, NULL);
        if (v == want || mono_ms() > end)
            break;
        sleep_ms(10);
    }
    ck_assert_msg(v == want, "ask %s %s: %" PRId64 ", want %" PRId64 " within %d ms", name, msg, v, want,
                  timeout_ms);
}

static void ref_text(const axc_ref *r, char *buf, size_t cap)
{
    snprintf(buf, cap, "@%" PRIu64 ".%" PRIu32, r->id, r->gen);
}

/* The value at a dotted path of the status document ("counters.restarts"). */
static double status_num(axc_conn *c, const char *path)
{
    char *doc = NULL, key[64];
    ck_assert_int_eq(axc_status(c, &doc), 0);
    cJSON *d = cJSON_Parse(doc), *v = d;
    ck_assert_ptr_nonnull(d);
    for (const char *p = path; v && *p;) {
        size_t n = strcspn(p, ".");
        snprintf(key, sizeof key, "%.*s", (int)n, p);
        v = cJSON_GetObjectItemCaseSensitive(v, key);
        p += n + (p[n] == '.');
    }
    ck_assert_msg(cJSON_IsNumber(v), "status has no number at %s:\n%s", path, doc);
    double r = v->valuedouble;
    cJSON_Delete(d);
    axc_free(doc);
    return r;
}

static void wait_status(axc_conn *c, const char *path, double want, int timeout_ms)
{
    int64_t end = mono_ms() + timeout_ms;
    double v = -1;
    for (int i = 0; i < 100000; i++) {
        v = status_num(c, path);
        if (v == want || mono_ms() > end)
            break;
        sleep_ms(10);
    }
    ck_assert_msg(v == want, "status %s: %g, want %g within %d ms", path, v, want, timeout_ms);
}

/* The entry of the actors document with this id (a cJSON the caller deletes with *doc). */
static cJSON *actor_entry(cJSON *doc, uint64_t id)
{
    cJSON *e, *arr = cJSON_GetObjectItemCaseSensitive(doc, "actors");
    cJSON_ArrayForEach(e, arr) {
        cJSON *v = cJSON_GetObjectItemCaseSensitive(e, "id");
        if (cJSON_IsNumber(v) && (uint64_t)v->valuedouble == id)
            return e;
    }
    return NULL;
}

static double entry_num(const cJSON *e, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(e, k);
    ck_assert_msg(cJSON_IsNumber(v), "actor entry has no number '%s'", k);
    return v->valuedouble;
}

/* One event document, parsed; NULL if none within timeout_ms. */
static cJSON *next_event(axc_conn *c, int timeout_ms)
{
    char *doc = NULL;
    int rc = axc_next_event(c, timeout_ms, &doc);
    ck_assert_msg(rc >= 0, "next_event: %d %s (%s)", rc, ax_errname(rc), axc_errmsg(c));
    if (rc == 0)
        return NULL;
    cJSON *d = cJSON_Parse(doc);
    ck_assert_msg(d != NULL, "event is not JSON: %s", doc);
    axc_free(doc);
    return d;
}

static const char *ev_str(const cJSON *d, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(d, k);
    return cJSON_IsString(v) ? v->valuestring : "";
}

static double ev_num(const cJSON *d, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(d, k);
    return cJSON_IsNumber(v) ? v->valuedouble : -1;
}

/* Wait for the down of mref (other events are skipped); fails if none within timeout.
 * Returns its reason (static buffer). */
static const char *wait_down(axc_conn *c, uint64_t mref, int timeout_ms)
{
    static char reason[128];
    int64_t end = mono_ms() + timeout_ms;
    for (int i = 0; i < 100000; i++) {
        int64_t left = end - mono_ms();
        cJSON *d = next_event(c, left > 0 ? (int)left : 0);
        ck_assert_msg(d != NULL, "no down for mref %" PRIu64 " within %d ms", mref, timeout_ms);
        int match = !strcmp(ev_str(d, "event"), "down") && (uint64_t)ev_num(d, "mref") == mref;
        if (match)
            snprintf(reason, sizeof reason, "%s", ev_str(d, "reason"));
        cJSON_Delete(d);
        if (match)
            return reason;
    }
    ck_abort_msg("too many events while waiting for a down");
    return NULL;
}

/* After a roundtrip (every earlier event is then in), no event is queued. */
static void expect_no_event(axc_conn *c)
{
    char *doc = NULL;
    (void)status_num(c, "actors");
    int rc = axc_next_event(c, 0, &doc);
    ck_assert_msg(rc == 0, "unexpected event: %s", rc == 1 ? doc : axc_errmsg(c));
}

static uint64_t monitor_ok(axc_conn *c, const char *name)
{
    axc_target t = axc_by_name(name);
    uint64_t mref = 0;
    int rc = axc_monitor(c, &t, &mref);
    ck_assert_msg(rc == 0, "monitor %s: %d %s (%s)", name, rc, ax_errname(rc), axc_errmsg(c));
    return mref;
}

/* ---- axctl ---- */

typedef struct {
    int status;
    char *out, *err;
} run_result;

static void rr_free(run_result *r)
{
    free(r->out);
    free(r->err);
    r->out = r->err = NULL;
}

/* Run axctl --socket SOCK words... (NULL-terminated). */
static run_result axctl(ax_h_daemon *d, const char *first, ...)
{
    const char *argv[40];
    size_t n = 0;
    va_list ap;
    argv[n++] = ax_h_build_path("libaxclient/axctl");
    argv[n++] = "--socket";
    argv[n++] = ax_h_sock(d);
    va_start(ap, first);
    for (const char *a = first; a; a = va_arg(ap, const char *)) {
        ck_assert_uint_lt(n, 39);
        argv[n++] = a;
    }
    va_end(ap);
    argv[n] = NULL;
    run_result r = {0, NULL, NULL};
    r.status = ax_h_run(argv, &r.out, &r.err, AXCTL_TIMEOUT_MS);
    return r;
}

#define ck_assert_exit(r, want, what)                                                                              \
    ck_assert_msg((r).status == (want), "%s: exit %d, want %d\nstdout:\n%s\nstderr:\n%s", (what), (r).status,     \
                  (want), (r).out, (r).err)

/* axctl running in the background (events --follow, monitor): stdout and stderr to a
 * pipe read with bounded waits. */
typedef struct {
    pid_t pid;
    int fd;
    char buf[65536];
    size_t len;
} bg_cmd;

static void bg_start(bg_cmd *b, ax_h_daemon *d, const char *const *words)
{
    const char *argv[24];
    size_t n = 0;
    int p[2];
    argv[n++] = ax_h_build_path("libaxclient/axctl");
    argv[n++] = "--socket";
    argv[n++] = ax_h_sock(d);
    for (; *words; words++) {
        ck_assert_uint_lt(n, 23);
        argv[n++] = *words;
    }
    argv[n] = NULL;
    ck_assert_int_eq(pipe2(p, O_CLOEXEC), 0);
    fflush(NULL);
    pid_t parent = getpid();
    b->pid = fork();
    ck_assert_int_ge(b->pid, 0);
    if (b->pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent || dup2(p[1], 1) < 0 || dup2(p[1], 2) < 0)
            _exit(127);
        signal(SIGPIPE, SIG_DFL);
        execv(argv[0], (char *const *)argv);
        _exit(127);
    }
    close(p[1]);
    b->fd = p[0];
    b->len = 0;
    b->buf[0] = 0;
    fcntl(b->fd, F_SETFL, fcntl(b->fd, F_GETFL) | O_NONBLOCK);
}

/* Read until the output holds needle (1) or timeout_ms passed / EOF (0). */
static int bg_wait_for(bg_cmd *b, const char *needle, int timeout_ms)
{
    int64_t end = mono_ms() + timeout_ms;
    for (int i = 0; i < 100000 && !strstr(b->buf, needle); i++) {
        int64_t left = end - mono_ms();
        if (left <= 0)
            return 0;
        struct pollfd pf = {b->fd, POLLIN, 0};
        if (poll(&pf, 1, (int)(left < 100 ? left : 100)) <= 0)
            continue;
        ssize_t r = read(b->fd, b->buf + b->len, sizeof b->buf - 1 - b->len);
        if (r == 0)
            return !!strstr(b->buf, needle);
        if (r > 0) {
            b->len += (size_t)r;
            b->buf[b->len] = 0;
        }
    }
    return strstr(b->buf, needle) != NULL;
}

/* Wait for exit (killing it after timeout_ms, then failing); returns the exit status. */
static int bg_reap(bg_cmd *b, int timeout_ms, int kill_first)
{
    int st = 0;
    if (kill_first)
        kill(b->pid, SIGTERM);
    int64_t end = mono_ms() + timeout_ms;
    for (int i = 0; i < 100000; i++) {
        pid_t r = waitpid(b->pid, &st, WNOHANG);
        if (r == b->pid)
            break;
        if (mono_ms() > end) {
            kill(b->pid, SIGKILL);
            waitpid(b->pid, &st, 0);
            close(b->fd);
            ck_abort_msg("axctl did not exit within %d ms; output:\n%s", timeout_ms, b->buf);
        }
        sleep_ms(5);
    }
    /* it has exited: what is left in the pipe is there now */
    for (int i = 0; i < 10000 && b->len < sizeof b->buf - 1; i++) {
        ssize_t r = read(b->fd, b->buf + b->len, sizeof b->buf - 1 - b->len);
        if (r <= 0)
            break;
        b->len += (size_t)r;
        b->buf[b->len] = 0;
    }
    close(b->fd);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* ---------- restart policies ---------- */

START_TEST(transient_actor_exiting_normally_is_not_restarted)
{
    ax_h_daemon *d = ax_h_start(SUP);
    axc_conn *c = ax_h_connect(d);
    spawn_ok(c, "w", "{\"restart\":\"transient\"}");
    uint64_t mref = monitor_ok(c, "w");
    ck_assert_int_eq(ask_num(c, "w", "hit", NULL), 1);
    ck_assert_err(ask_rc(c, "w", "exit", "normal"), 0, c);
    ck_assert_str_eq(wait_down(c, mref, 5000), "normal");
    ck_assert_err(ask_rc(c, "w", "get", NULL), AX_ENOPROC, c);
    ck_assert_double_eq(status_num(c, "counters.restarts"), 0);

    /* the other half of the rule: any other exit reason restarts a transient actor */
    spawn_ok(c, "w2", "{\"restart\":\"transient\"}");
    ck_assert_int_eq(ask_num(c, "w2", "hit", NULL), 1);
    ck_assert_err(ask_rc(c, "w2", "exit", "boom"), 0, c);
    expect_str(c, "w2", "get", "0");
    ck_assert_double_eq(status_num(c, "counters.restarts"), 1);
    /* and a temporary one is never restarted, whatever the reason */
    spawn_ok(c, "w3", NULL);
    ck_assert_err(ask_rc(c, "w3", "crash", NULL), AX_EFAILED, c);
    ck_assert_err(ask_rc(c, "w3", "get", NULL), AX_ENOPROC, c);
    ck_assert_double_eq(status_num(c, "counters.restarts"), 1);
    axc_close(c);
    ax_h_stop(d);
}
END_TEST

START_TEST(crashed_transient_actor_is_restarted_with_same_ref)
{
    ax_h_daemon *d = ax_h_start(SUP);
    axc_conn *c = ax_h_connect(d);
    axc_ref r = spawn_ok(c, "w", "{\"restart\":\"transient\"}");
    axc_target byref = axc_by_ref(&r);
    for (int i = 1; i <= 3; i++)
        ck_assert_int_eq(ask_num(c, "w", "hit", NULL), i);
    expect_str(c, "w", "get", "3");
    ck_assert_err(ask_rc(c, "w", "crash", NULL), AX_EFAILED, c);
    /* same ref, fresh state */
    axc_ref now;
    axc_target byname = axc_by_name("w");
    ck_assert_int_eq(axc_resolve(c, &byname, &now), 0);
    ck_assert_uint_eq(now.id, r.id);
    ck_assert_uint_eq(now.gen, r.gen);
    char *v = NULL;
    ck_assert_int_eq(ask_t(c, &byref, "get", NULL, &v), 0);
    ck_assert_str_eq(v, "0");
    axc_free(v);

    run_result rr = axctl(d, "actors", "--json", NULL);
    ck_assert_exit(rr, 0, "actors --json");
    cJSON *doc = cJSON_Parse(rr.out);
    ck_assert_ptr_nonnull(doc);
    cJSON *e = actor_entry(doc, r.id);
    ck_assert_msg(e != NULL, "no actor %" PRIu64 " in %s", r.id, rr.out);
    ck_assert_double_eq(entry_num(e, "restarts"), 1);
    ck_assert_double_eq(entry_num(e, "gen"), r.gen);
    ck_assert_str_eq(ev_str(e, "state"), "running");
    ck_assert_str_eq(ev_str(e, "restart"), "transient");
    cJSON_Delete(doc);
    rr_free(&rr);
    axc_close(c);
    ax_h_stop(d);
}
END_TEST

START_TEST(intensity_exceeded_stops_actor_and_fires_links)
{
    ax_h_daemon *d = ax_h_start(SUP);
    axc_conn *c = ax_h_connect(d);
    spawn_ok(c, "w", "{\"restart\":\"permanent\",\"max_restarts\":3,\"restart_window_ms\":60000}");
    spawn_ok(c, "t", "{\"trap_exit\":true}");
    spawn_ok(c, "nt", NULL);
    ck_assert_int_eq(ask_num(c, "t", "link", "w"), 0);
    ck_assert_int_eq(ask_num(c, "nt", "link", "w"), 0);
    uint64_t mw = monitor_ok(c, "w"), mnt = monitor_ok(c, "nt"), mt = monitor_ok(c, "t");
    for (int i = 0; i < 3; i++) {
        ck_assert_err(ask_rc(c, "w", "crash", NULL), AX_EFAILED, c);
        expect_str(c, "w", "get", "0"); /* restarted */
    }
    /* restarts are invisible to links and monitors */
    ck_assert_int_eq(ask_num(c, "t", "exits", NULL), 0);
    expect_no_event(c);
    /* the 4th crash within the window is one too many */
    ck_assert_err(ask_rc(c, "w", "crash", NULL), AX_EFAILED, c);
    ck_assert_str_eq(wait_down(c, mw, 5000), "restart_intensity");
    ck_assert_err(ask_rc(c, "w", "get", NULL), AX_ENOPROC, c);
    /* the trapping linked actor hears it; the other one dies with the same reason */
    wait_num(c, "t", "exits", 1, 5000);
    expect_str(c, "t", "last", "restart_intensity");
    ck_assert_str_eq(wait_down(c, mnt, 5000), "restart_intensity");
    ck_assert_err(ask_rc(c, "nt", "get", NULL), AX_ENOPROC, c);
    expect_str(c, "t", "get", "1"); /* still alive, same incarnation */
    expect_no_event(c);             /* nothing for t's monitor */
    (void)mt;
    ck_assert_double_eq(status_num(c, "counters.restarts"), 3);
    axc_close(c);
    ax_h_stop(d);
}
END_TEST

/* ---------- restart mailbox policies ---------- */

START_TEST(keep_preserves_order_of_1000_queued_messages)
{
    ax_h_daemon *d = ax_h_start(SUP);
    axc_conn *c = ax_h_connect(d);
    spawn_ok(c, "w", "{\"restart\":\"permanent\",\"mailbox_policy\":\"keep\",\"mailbox_capacity\":4096}");
    axc_target t = axc_by_name("w");
    /* Hold the actor (and the daemon's loop) busy, so that the crash and the 1000
     * messages behind it are all in the mailbox when it crashes. */
    ck_assert_int_eq(axc_tell_noreply(c, &t, "slow", "300", 3), 0);
    ck_assert_int_eq(axc_flush(c), 0);
    sleep_ms(50);
    ck_assert_int_eq(axc_tell_noreply(c, &t, "crash", NULL, 0), 0);
    for (int i = 0; i < 1000; i++) {
        char num[16];
        int n = snprintf(num, sizeof num, "%d", i);
        ck_assert_int_eq(axc_tell_noreply(c, &t, "seq", num, (size_t)n), 0);
    }
    ck_assert_int_eq(axc_flush(c), 0);
    /* the new incarnation (fresh state) handled all of them, in order */
    ck_assert_int_eq(ask_num(c, "w", "seqnext", NULL), 1000);
    ck_assert_int_eq(ask_num(c, "w", "seqbad", NULL), 0);
    ck_assert_int_eq(ask_num(c, "w", "get", NULL), 1000);
    ck_assert_double_eq(status_num(c, "counters.restarts"), 1);
    axc_close(c);
    ax_h_stop(d);
}
END_TEST

START_TEST(drain_and_drop_fails_pending_asks_immediately)
{
    enum { N = 50, ASK_TIMEOUT = 10000 };
    ax_h_daemon *d = ax_h_start(SUP);
    axc_conn *c = ax_h_connect(d);
    spawn_ok(c, "w", "{\"restart\":\"permanent\",\"mailbox_policy\":\"drain_and_drop\"}");
    axc_target t = axc_by_name("w");
    ck_assert_int_eq(axc_tell_noreply(c, &t, "slow", "300", 3), 0);
    ck_assert_int_eq(axc_flush(c), 0);
    sleep_ms(50);
    int64_t t0 = mono_ms();
    ck_assert_int_eq(axc_tell_noreply(c, &t, "crash", NULL, 0), 0);
    for (int i = 0; i < N; i++) {
        uint32_t id;
        ck_assert_int_eq(axc_send_ask(c, &t, "hit", NULL, 0, ASK_TIMEOUT, &id), 0);
    }
    ck_assert_int_eq(axc_flush(c), 0);
    int got = 0;
    for (int i = 0; i < 1000 && got < N; i++) {
        axc_result r;
        int rc = axc_poll_result(c, 1000, &r);
        ck_assert_int_ge(rc, 0);
        if (rc == 1) {
            ck_assert_msg(r.status == AX_ECANCELED, "ask %u: %d %s (%s), want ECANCELED", r.req_id, r.status,
                          ax_errname(r.status), r.data ? (char *)r.data : "");
            axc_free(r.data);
            got++;
        }
        if (mono_ms() - t0 > ASK_TIMEOUT)
            break;
    }
    int64_t took = mono_ms() - t0;
    ck_assert_int_eq(got, N);
    ck_assert_msg(took < ASK_TIMEOUT / 3, "the dropped asks took %" PRId64 " ms to fail", took);
    expect_str(c, "w", "get", "0"); /* restarted, nothing of the old mailbox ran */
    ck_assert_double_eq(status_num(c, "counters.restarts"), 1);
    axc_close(c);
    ax_h_stop(d);
}
END_TEST

/* ---------- links ---------- */

START_TEST(trap_exit_converts_linked_crash_into_message)
{
    ax_h_daemon *d = ax_h_start(SUP);
    axc_conn *c = ax_h_connect(d);
    spawn_ok(c, "a", NULL);
    spawn_ok(c, "b", NULL);
    spawn_ok(c, "n", NULL);
    ck_assert_err(ask_rc(c, "a", "trap", "1"), 0, c);
    ck_assert_int_eq(ask_num(c, "a", "link", "b"), 0);
    ck_assert_int_eq(ask_num(c, "n", "link", "b"), 0);
    uint64_t ma = monitor_ok(c, "a"), mn = monitor_ok(c, "n");
    ck_assert_err(ask_rc(c, "b", "fail", "boom"), 0, c);
    /* the non-trapping linked actor dies with b's reason ... */
    ck_assert_str_eq(wait_down(c, mn, 5000), "boom");
    /* ... the trapping one gets a message and lives on */
    wait_num(c, "a", "exits", 1, 5000);
    expect_str(c, "a", "last", "boom");
    ck_assert_int_eq(ask_num(c, "a", "get", NULL), 2); /* trap and link; the $exit is not counted */
    expect_no_event(c);
    (void)ma;

    /* a "normal" exit does not kill a linked actor that does not trap */
    spawn_ok(c, "x", NULL);
    spawn_ok(c, "y", NULL);
    ck_assert_int_eq(ask_num(c, "y", "link", "x"), 0);
    uint64_t mx = monitor_ok(c, "x");
    ck_assert_err(ask_rc(c, "x", "exit", "normal"), 0, c);
    ck_assert_str_eq(wait_down(c, mx, 5000), "normal");
    ck_assert_int_eq(ask_num(c, "y", "get", NULL), 1);
    axc_close(c);
    ax_h_stop(d);
}
END_TEST

START_TEST(kill_is_not_trappable)
{
    ax_h_daemon *d = ax_h_start(SUP);
    axc_conn *c = ax_h_connect(d);
    spawn_ok(c, "v", "{\"trap_exit\":true,\"restart\":\"permanent\"}");
    spawn_ok(c, "x", "{\"trap_exit\":true}");
    spawn_ok(c, "k", NULL);
    ck_assert_int_eq(ask_num(c, "x", "link", "v"), 0);
    uint64_t mv = monitor_ok(c, "v");
    /* a plain stop request is trappable for nobody either, but "kill" is the one that
     * ignores trap_exit: v ends, is not restarted although permanent */
    ck_assert_int_eq(ask_num(c, "k", "kill", "v"), 0);
    ck_assert_str_eq(wait_down(c, mv, 5000), "killed");
    ck_assert_err(ask_rc(c, "v", "get", NULL), AX_ENOPROC, c);
    /* what v's links hear is "killed", which is an ordinary, trappable reason */
    wait_num(c, "x", "exits", 1, 5000);
    expect_str(c, "x", "last", "killed");
    ck_assert_int_eq(ask_num(c, "x", "get", NULL), 1);
    axc_close(c);
    ax_h_stop(d);
}
END_TEST

START_TEST(link_to_dead_actor_gives_noproc)
{
    ax_h_daemon *d = ax_h_start(SUP);
    axc_conn *c = ax_h_connect(d);
    /* on t's worker: a link to an actor gone on another worker is refused there and
     * arrives as the noproc exit only (tests/test_workers.c) */
    axc_ref r = spawn_ok(c, "gone", "{\"worker\":0}");
    axc_target tg = axc_by_name("gone");
    ck_assert_int_eq(axc_stop(c, &tg), 0);
    wait_status(c, "actors", 0, 5000);
    char ref[64];
    ref_text(&r, ref, sizeof ref);
    spawn_ok(c, "t", "{\"trap_exit\":true,\"worker\":0}");
    spawn_ok(c, "n", "{\"worker\":0}");
    uint64_t mn = monitor_ok(c, "n");
    /* trapping: an $exit noproc message */
    ck_assert_int_eq(ask_num(c, "t", "link", ref), AX_ENOPROC);
    wait_num(c, "t", "exits", 1, 5000);
    expect_str(c, "t", "last", "noproc");
    /* not trapping: the linker fails with noproc */
    ck_assert_int_eq(ask_num(c, "n", "link", ref), AX_ENOPROC);
    ck_assert_str_eq(wait_down(c, mn, 5000), "noproc");
    axc_close(c);
    ax_h_stop(d);
}
END_TEST

/* ---------- monitors ---------- */

START_TEST(exactly_one_down_per_monitor_under_crash_storm)
{
    ax_h_daemon *d = ax_h_start(SUP);
    axc_conn *c = ax_h_connect(d), *c2 = ax_h_connect(d);
    spawn_ok(c, "p", "{\"restart\":\"permanent\",\"max_restarts\":100,\"restart_window_ms\":60000}");
    spawn_ok(c, "m1", NULL);
    spawn_ok(c, "m2", NULL);
    uint64_t r1 = monitor_ok(c, "p"), r2 = monitor_ok(c2, "p");
    ck_assert_int_gt(ask_num(c, "m1", "monitor", "p"), 0);
    ck_assert_int_gt(ask_num(c, "m2", "monitor", "p"), 0);
    for (int i = 0; i < 50; i++)
        ck_assert_err(ask_rc(c, "p", "crash", NULL), AX_EFAILED, c);
    expect_str(c, "p", "get", "0");
    ck_assert_double_eq(status_num(c, "counters.restarts"), 50);
    ck_assert_double_eq(status_num(c, "counters.downs"), 0);
    expect_no_event(c);
    expect_no_event(c2);
    ck_assert_int_eq(ask_num(c, "m1", "downs", NULL), 0);

    axc_target tp = axc_by_name("p");
    ck_assert_int_eq(axc_stop(c, &tp), 0);
    ck_assert_str_eq(wait_down(c, r1, 5000), "stopped");
    ck_assert_str_eq(wait_down(c2, r2, 5000), "stopped");
    wait_num(c, "m1", "downs", 1, 5000);
    wait_num(c, "m2", "downs", 1, 5000);
    expect_str(c, "m1", "last", "stopped");
    wait_status(c, "counters.downs", 4, 5000);
    /* and nothing more, later */
    sleep_ms(100);
    expect_no_event(c);
    expect_no_event(c2);
    ck_assert_int_eq(ask_num(c, "m1", "downs", NULL), 1);
    ck_assert_int_eq(ask_num(c, "m2", "downs", NULL), 1);
    axc_close(c2);
    axc_close(c);
    ax_h_stop(d);
}
END_TEST

START_TEST(demonitor_means_no_down)
{
    ax_h_daemon *d = ax_h_start(SUP);
    axc_conn *c = ax_h_connect(d);
    spawn_ok(c, "x", NULL);
    spawn_ok(c, "m", NULL);
    spawn_ok(c, "m2", NULL);
    uint64_t gone = monitor_ok(c, "x"), kept = monitor_ok(c, "x");
    ck_assert_int_eq(axc_demonitor(c, gone), 0);
    char mref[32];
    snprintf(mref, sizeof mref, "%" PRId64, ask_num(c, "m", "monitor", "x"));
    ck_assert_int_gt(ask_num(c, "m2", "monitor", "x"), 0);
    ck_assert_int_eq(ask_num(c, "m", "demonitor", mref), 0);
    axc_target tx = axc_by_name("x");
    ck_assert_int_eq(axc_stop(c, &tx), 0);
    /* the monitor kept gets its down; the one removed never does (events are in order) */
    ck_assert_str_eq(wait_down(c, kept, 5000), "stopped");
    expect_no_event(c);
    wait_num(c, "m2", "downs", 1, 5000);
    ck_assert_int_eq(ask_num(c, "m", "downs", NULL), 0);
    axc_close(c);
    ax_h_stop(d);
}
END_TEST

START_TEST(client_monitors_end_with_the_connection)
{
    ax_h_daemon *d = ax_h_start(SUP);
    axc_conn *c = ax_h_connect(d), *other = ax_h_connect(d);
    axc_ref r = spawn_ok(c, "w", NULL);
    for (int i = 0; i < 3; i++)
        monitor_ok(other, "w");
    axc_close(other); /* its three monitors go with it */
    double downs_before = status_num(c, "counters.downs");
    for (int i = 0; i < 200; i++) { /* bounded: the close is seen within a few ms */
        char *json = NULL;
        ck_assert_int_eq(axc_actors(c, &json), 0);
        cJSON *doc = cJSON_Parse(json), *e = actor_entry(doc, r.id);
        double m = entry_num(e, "monitors");
        cJSON_Delete(doc);
        axc_free(json);
        if (m == 0)
            break;
        ck_assert_int_lt(i, 199);
        sleep_ms(10);
    }
    axc_target tw = axc_by_name("w");
    ck_assert_int_eq(axc_stop(c, &tw), 0);
    wait_status(c, "actors", 0, 5000);
    ck_assert(status_num(c, "counters.downs") == downs_before);
    axc_close(c);
    ax_h_stop(d);
}
END_TEST

START_TEST(down_reaches_a_client_that_is_behind_on_events)
{
    /* a subscriber that does not read skips lifecycle events, but never its downs */
    const char *args[] = {"--plugin", "sup", "--set", "client.outbuf_max=65536", NULL};
    ax_h_daemon *d = ax_h_start(args);
    axc_conn *c = ax_h_connect(d), *slow = ax_h_connect(d);
    spawn_ok(c, "x", NULL);
    spawn_ok(c, "churner", NULL);
    uint64_t mref = monitor_ok(slow, "x");
    ck_assert_int_eq(axc_subscribe(slow, NULL), 0);
    /* thousands of lifecycle events fill the slow client's buffer past half its bound */
    for (int i = 0; i < 4; i++)
        ck_assert_int_eq(ask_rc(c, "churner", "churn", "2000"), 0);
    ck_assert_uint_gt((uint64_t)status_num(c, "counters.events_lagged"), 0);
    axc_target tx = axc_by_name("x");
    ck_assert_int_eq(axc_stop(c, &tx), 0);
    ck_assert_str_eq(wait_down(slow, mref, 10000), "stopped");
    axc_close(slow);
    axc_close(c);
    ax_h_stop(d);
}
END_TEST

START_TEST(monitor_of_dead_actor_gives_noproc)
{
    ax_h_daemon *d = ax_h_start(SUP);
    axc_conn *c = ax_h_connect(d);
    axc_ref r = spawn_ok(c, "x", NULL);
    axc_target tx = axc_by_name("x"), old = axc_by_ref(&r);
    ck_assert_int_eq(axc_stop(c, &tx), 0);
    wait_status(c, "actors", 0, 5000);
    /* a client's monitor of a target that does not resolve is refused at once */
    uint64_t mref = 0;
    ck_assert_err(axc_monitor(c, &old, &mref), AX_ENOPROC, c);
    ck_assert_err(axc_monitor(c, &tx, &mref), AX_ENOPROC, c);
    /* an actor's monitor of a dead ref gets its "$down" noproc at once */
    char ref[64];
    ref_text(&r, ref, sizeof ref);
    spawn_ok(c, "m", NULL);
    ck_assert_int_gt(ask_num(c, "m", "monitor", ref), 0);
    wait_num(c, "m", "downs", 1, 5000);
    expect_str(c, "m", "last", "noproc");
    axc_close(c);
    ax_h_stop(d);
}
END_TEST

/* ---------- the lifecycle stream ---------- */

typedef struct {
    char ev[8][32];
    int n;
} ev_list;

static void collect_event(const char *json, size_t len, void *arg)
{
    ev_list *l = arg;
    ck_assert_uint_eq(strlen(json), len);
    cJSON *d = cJSON_Parse(json);
    if (l->n < 8)
        snprintf(l->ev[l->n], sizeof l->ev[0], "%s:%s", ev_str(d, "event"), ev_str(d, "name"));
    l->n++;
    cJSON_Delete(d);
}

START_TEST(events_follow_shows_started_restarted_stopped_in_order)
{
    ax_h_daemon *d = ax_h_start(SUP);
    axc_conn *c = ax_h_connect(d), *sub = ax_h_connect(d);
    bg_cmd *b = calloc(1, sizeof *b);
    ck_assert_ptr_nonnull(b);
    bg_start(b, d, (const char *const[]){"events", "--follow", "--actor", "w", NULL});
    ck_assert_int_eq(axc_subscribe(sub, "w"), 0);
    spawn_ok(c, "watcher", NULL); /* an actor subscriber hears every actor but itself */
    ck_assert_err(ask_rc(c, "watcher", "subscribe", NULL), 0, c);
    wait_status(c, "event_subscribers", 3, 5000);

    spawn_ok(c, "other", "{\"restart\":\"permanent\"}"); /* filtered out */
    ck_assert_err(ask_rc(c, "other", "crash", NULL), AX_EFAILED, c);
    axc_ref r = spawn_ok(c, "w", "{\"restart\":\"permanent\"}");
    ck_assert_err(ask_rc(c, "w", "crash", NULL), AX_EFAILED, c);
    axc_target tw = axc_by_name("w");
    ck_assert_int_eq(axc_stop(c, &tw), 0);

    ck_assert_msg(bg_wait_for(b, "stopped", 5000), "axctl events printed no stopped event:\n%s", b->buf);
    int st = bg_reap(b, 5000, 1);
    ck_assert_msg(st == 128 + SIGTERM || st == 0, "axctl events: status %d\n%s", st, b->buf);
    char want[64];
    snprintf(want, sizeof want, "@%" PRIu64 ".%" PRIu32 " w sup", r.id, r.gen);
    const char *s1 = strstr(b->buf, "started"), *s2 = strstr(b->buf, "restarted"), *s3 = strstr(b->buf, "stopped");
    ck_assert_msg(s1 && s2 && s3 && s1 < s2 && s2 < s3, "events out of order:\n%s", b->buf);
    ck_assert_msg(strstr(s1, want) && strstr(s2, "reason=error:EFAILED") && strstr(s2, "restarts=1") &&
                      strstr(s3, "reason=stopped"),
                  "events lack their fields (%s):\n%s", want, b->buf);
    ck_assert_msg(!strstr(b->buf, "other"), "filtered events shown:\n%s", b->buf);
    int lines = 0;
    for (const char *p = b->buf; (p = strchr(p, '\n')); p++)
        lines++;
    ck_assert_msg(lines == 3, "%d lines, want 3:\n%s", lines, b->buf);
    free(b);

    /* the same through libaxclient's callback form */
    ev_list l = {.n = 0};
    int64_t end = mono_ms() + 5000;
    for (int i = 0; i < 1000 && l.n < 3 && mono_ms() < end; i++) {
        int n = axc_dispatch_events(sub, 200, collect_event, &l);
        ck_assert_int_ge(n, 0);
    }
    ck_assert_int_eq(l.n, 3);
    ck_assert_str_eq(l.ev[0], "started:w");
    ck_assert_str_eq(l.ev[1], "restarted:w");
    ck_assert_str_eq(l.ev[2], "stopped:w");
    ck_assert_int_eq(axc_dispatch_events(sub, 0, collect_event, &l), 0);
    /* other: started, restarted; w: started, restarted, stopped */
    wait_num(c, "watcher", "events", 5, 5000);
    axc_close(sub);
    axc_close(c);
    ax_h_stop(d);
}
END_TEST

START_TEST(slow_event_subscriber_gets_lagged_and_daemon_keeps_serving)
{
    enum { ROUNDS = 20, PER = 1000 };
    ax_h_daemon *d = ax_h_start((const char *const[]){"-p", "sup", "--set", "client.outbuf_max=65536", NULL});
    axc_conn *c = ax_h_connect(d), *probe = ax_h_connect(d), *slow = ax_h_connect(d);
    spawn_ok(c, "ch", NULL);
    spawn_ok(c, "pr", NULL);
    ck_assert_int_eq(axc_subscribe(slow, NULL), 0); /* and then it does not read */
    int64_t worst = 0;
    for (int i = 0; i < ROUNDS; i++) {
        axc_target t = axc_by_name("ch");
        char *rep = NULL;
        void *r = NULL;
        size_t len;
        int rc = axc_ask(c, &t, "churn", "1000", 4, 30000, &r, &len);
        ck_assert_msg(rc == 0, "churn: %d %s (%s)", rc, ax_errname(rc), axc_errmsg(c));
        axc_free(r);
        int64_t t0 = mono_ms();
        axc_target tp = axc_by_name("pr");
        ck_assert_int_eq(ask_t(probe, &tp, "hit", NULL, &rep), 0);
        axc_free(rep);
        if (mono_ms() - t0 > worst)
            worst = mono_ms() - t0;
    }
    wait_status(c, "actors", 2, 30000);
    ck_assert_msg(worst < 2000, "another client waited %" PRId64 " ms for an answer", worst);
    ck_assert_double_gt(status_num(c, "counters.events_lagged"), 0);
    ck_assert_double_eq(status_num(c, "counters.spawned"), 2 + ROUNDS * PER);

    /* now it reads: what it got plus what was skipped is every event */
    long seen = 0, skipped = 0, lagged = 0;
    int after = 0;
    for (int phase = 0; phase < 2; phase++) {
        if (phase == 1)
            spawn_ok(c, "after", NULL); /* the next event carries the lag marker */
        int64_t end = mono_ms() + 30000;
        for (long i = 0; i < 10L * ROUNDS * PER && mono_ms() < end; i++) {
            cJSON *ev = next_event(slow, phase ? 5000 : 300);
            if (!ev)
                break;
            const char *k = ev_str(ev, "event");
            if (!strcmp(k, "lagged")) {
                lagged++;
                skipped += (long)ev_num(ev, "skipped");
            } else {
                seen++;
                if (!strcmp(ev_str(ev, "name"), "after"))
                    after = 1;
            }
            cJSON_Delete(ev);
            if (after)
                break;
        }
    }
    ck_assert_msg(after, "the subscriber never got the event after the lag");
    ck_assert_int_gt(lagged, 0);
    ck_assert_int_gt(skipped, 0);
    ck_assert_msg(seen + skipped == 2L * ROUNDS * PER + 1, "seen %ld + skipped %ld != %ld", seen, skipped,
                  2L * ROUNDS * PER + 1);
    ck_assert_int_eq(axc_is_broken(slow), 0);
    axc_close(slow);
    axc_close(probe);
    axc_close(c);
    ax_h_stop(d);
}
END_TEST

/* ---------- the keyed registry ---------- */

enum { RACERS = 20, RACE_ASKS = 50 };

typedef struct {
    const char *sock;
    pthread_barrier_t *go;
    int idx;
    int rc;           /* first failure, or 0 */
    char why[300];
    axc_ref ref;
    long replies[RACE_ASKS];
    int n;
} racer;

static void *race(void *arg)
{
    racer *r = arg;
    axc_conn *c = NULL;
    char err[256];
    r->rc = axc_connect(r->sock, 10000, &c, err, sizeof err);
    pthread_barrier_wait(r->go);
    if (r->rc) {
        snprintf(r->why, sizeof r->why, "connect: %s", err);
        return NULL;
    }
    axc_target t = axc_by_key("sup", "hot");
    /* half get-or-spawn first, half send keyed asks first ("ensure" spawns too) */
    if (r->idx % 2 == 0 && (r->rc = axc_get_or_spawn(c, "sup", "hot", NULL, &r->ref)))
        goto out;
    for (int i = 0; i < RACE_ASKS; i++) {
        uint32_t id;
        if ((r->rc = axc_send_ask(c, &t, "hit", NULL, 0, 10000, &id)))
            goto out;
    }
    if ((r->rc = axc_flush(c)))
        goto out;
    if (r->idx % 2 == 1 && (r->rc = axc_get_or_spawn(c, "sup", "hot", NULL, &r->ref)))
        goto out;
    for (int i = 0; i < 10000 && r->n < RACE_ASKS; i++) {
        axc_result res;
        int x = axc_poll_result(c, 1000, &res);
        if (x < 0) {
            r->rc = x;
            goto out;
        }
        if (x == 1) {
            if (res.status) {
                r->rc = res.status;
                axc_free(res.data);
                goto out;
            }
            r->replies[r->n++] = strtol(res.data, NULL, 10);
            axc_free(res.data);
        }
    }
out:
    if (r->rc && !r->why[0])
        snprintf(r->why, sizeof r->why, "%s", axc_errmsg(c));
    axc_close(c);
    return NULL;
}

START_TEST(concurrent_get_or_spawn_from_many_clients_yields_one_actor)
{
    ax_h_daemon *d = ax_h_start(SUP);
    axc_conn *obs = ax_h_connect(d);
    ck_assert_int_eq(axc_subscribe(obs, NULL), 0);
    pthread_barrier_t go;
    pthread_t th[RACERS];
    racer *rs = calloc(RACERS, sizeof *rs);
    ck_assert_ptr_nonnull(rs);
    ck_assert_int_eq(pthread_barrier_init(&go, NULL, RACERS), 0);
    for (int i = 0; i < RACERS; i++) {
        rs[i].sock = ax_h_sock(d);
        rs[i].go = &go;
        rs[i].idx = i;
        ck_assert_int_eq(pthread_create(&th[i], NULL, race, &rs[i]), 0);
    }
    for (int i = 0; i < RACERS; i++)
        pthread_join(th[i], NULL);
    pthread_barrier_destroy(&go);
    static char seen[RACERS * RACE_ASKS + 1];
    memset(seen, 0, sizeof seen);
    for (int i = 0; i < RACERS; i++) {
        ck_assert_msg(rs[i].rc == 0, "client %d: %d %s (%s)", i, rs[i].rc, ax_errname(rs[i].rc), rs[i].why);
        ck_assert_int_eq(rs[i].n, RACE_ASKS);
        ck_assert_uint_eq(rs[i].ref.id, rs[0].ref.id);
        ck_assert_uint_eq(rs[i].ref.gen, rs[0].ref.gen);
        for (int k = 0; k < RACE_ASKS; k++) {
            long v = rs[i].replies[k];
            ck_assert_msg(v >= 1 && v <= RACERS * RACE_ASKS && !seen[v], "reply %ld repeated or out of range", v);
            seen[v] = 1;
        }
    }
    free(rs);
    /* one actor counted every hit 1..1000, and it started once */
    int started = 0;
    for (int i = 0; i < 100000; i++) {
        cJSON *ev = next_event(obs, 300);
        if (!ev)
            break;
        ck_assert_str_ne(ev_str(ev, "event"), "lagged");
        if (!strcmp(ev_str(ev, "event"), "started") && !strcmp(ev_str(ev, "key"), "hot"))
            started++;
        cJSON_Delete(ev);
    }
    ck_assert_int_eq(started, 1);
    ck_assert_double_eq(status_num(obs, "keyed_actors"), 1);
    ck_assert_double_eq(status_num(obs, "actors"), 1);
    axc_close(obs);
    ax_h_stop(d);
}
END_TEST

START_TEST(keyed_ask_via_axctl)
{
    ax_h_daemon *d = ax_h_start(SUP);
    run_result r = axctl(d, "tell", "--key", "alice", "counter", "inc", NULL);
    ck_assert_exit(r, 0, "tell --key alice counter inc");
    rr_free(&r);
    r = axctl(d, "ask", "--key", "alice", "counter", "get", NULL);
    ck_assert_exit(r, 0, "ask --key alice counter get");
    ck_assert_str_eq(r.out, "1\n");
    rr_free(&r);
    r = axctl(d, "ask", "--key", "alice", "counter", "get", "--direct", NULL);
    ck_assert_exit(r, 0, "ask --direct");
    ck_assert_str_eq(r.out, "1\n");
    rr_free(&r);
    r = axctl(d, "ask", "--direct", "--key", "bob", "counter", "get", NULL);
    ck_assert_exit(r, 1, "ask --direct to a missing key");
    ck_assert_msg(strstr(r.err, "no live actor"), "stderr: %s", r.err);
    rr_free(&r);
    r = axctl(d, "--json", "tell", "--direct", "--key", "bob", "counter", "inc", NULL);
    ck_assert_exit(r, 1, "tell --direct to a missing key");
    ck_assert_msg(strstr(r.out, "\"error\":\"ENOTFOUND\""), "stdout: %s", r.out);
    rr_free(&r);
    r = axctl(d, "ask", "--direct", "counter", "get", NULL);
    ck_assert_exit(r, 2, "--direct without --key");
    rr_free(&r);

    /* spawn --key is get-or-spawn: the same ref twice, with the spawn options applied once */
    run_result a = axctl(d, "spawn", "sup", "--key", "carol", "--restart", "permanent", "--max-restarts", "7",
                         "--trap-exit", NULL);
    ck_assert_exit(a, 0, "spawn --key carol");
    run_result b = axctl(d, "spawn", "sup", "--key", "carol", NULL);
    ck_assert_exit(b, 0, "spawn --key carol again");
    ck_assert_str_eq(a.out, b.out);
    rr_free(&b);
    r = axctl(d, "ask", "--key", "carol", "sup", "crash", NULL);
    ck_assert_exit(r, 1, "ask carol crash");
    rr_free(&r);
    r = axctl(d, "actors", "--json", NULL);
    ck_assert_exit(r, 0, "actors --json");
    cJSON *doc = cJSON_Parse(r.out);
    ck_assert_ptr_nonnull(doc);
    cJSON *e = actor_entry(doc, strtoull(a.out + 1, NULL, 10));
    ck_assert_msg(e != NULL, "no %s in %s", a.out, r.out);
    ck_assert_str_eq(ev_str(e, "key"), "carol");
    ck_assert_str_eq(ev_str(e, "restart"), "permanent");
    ck_assert_double_eq(entry_num(e, "restarts"), 1);
    ck_assert(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(e, "trap_exit")));
    cJSON_Delete(doc);
    rr_free(&r);
    rr_free(&a);
    r = axctl(d, "spawn", "sup", "named", "--key", "dave", NULL);
    ck_assert_exit(r, 2, "spawn NAME --key");
    rr_free(&r);
    ax_h_stop(d);
}
END_TEST

START_TEST(direct_to_missing_key_is_enotfound)
{
    ax_h_daemon *d = ax_h_start(SUP);
    axc_conn *c = ax_h_connect(d);
    axc_target ghost = axc_by_key("sup", "ghost");
    void *rep = NULL;
    size_t len;
    ck_assert_err(axc_ask_ex(c, &ghost, "get", NULL, 0, 5000, AXC_DIRECT, &rep, &len), AX_ENOTFOUND, c);
    ck_assert_err(axc_tell_ex(c, &ghost, "hit", NULL, 0, AXC_DIRECT), AX_ENOTFOUND, c);
    ck_assert_int_eq(axc_tell_ex(c, &ghost, "hit", NULL, 0, AXC_DIRECT | AXC_NOREPLY), 0); /* dropped */
    ck_assert_int_eq(axc_flush(c), 0);
    ck_assert_double_eq(status_num(c, "keyed_actors"), 0);
    /* flags the request cannot carry are refused locally; the connection stays fine */
    ck_assert_err(axc_ask_ex(c, &ghost, "get", NULL, 0, 5000, AXC_NOREPLY, &rep, &len), AX_EINVAL, c);
    ck_assert_err(axc_tell_ex(c, &ghost, "hit", NULL, 0, 0x80), AX_EINVAL, c);
    ck_assert_int_eq(axc_is_broken(c), 0);
    /* without DIRECT the keyed actor is spawned; then DIRECT reaches it */
    ck_assert_int_eq(axc_tell_ex(c, &ghost, "hit", NULL, 0, 0), 0);
    ck_assert_int_eq(axc_ask_ex(c, &ghost, "get", NULL, 0, 5000, AXC_DIRECT, &rep, &len), 0);
    ck_assert_str_eq(rep, "1");
    axc_free(rep);
    axc_ref r1, r2;
    ck_assert_int_eq(axc_resolve(c, &ghost, &r1), 0);
    ck_assert_int_eq(axc_get_or_spawn(c, "sup", "ghost", "{\"restart\":\"permanent\"}", &r2), 0);
    ck_assert_uint_eq(r1.id, r2.id);
    ck_assert_uint_eq(r1.gen, r2.gen);
    ck_assert_err(axc_get_or_spawn(c, "sup", "ghost", "{\"key\":\"x\"}", &r2), AX_EINVAL, c);
    ck_assert_err(axc_get_or_spawn(c, "sup", "", NULL, &r2), AX_EINVAL, c);
    /* a key that needs JSON escaping is the same key on the wire and in the registry */
    static const char odd[] = "we\"ird\\key\n\x01\xc3\xa9";
    axc_target todd = axc_by_key("sup", odd);
    ck_assert_int_eq(axc_get_or_spawn(c, "sup", odd, " { \"mailbox_capacity\" : 7 } ", &r1), 0);
    ck_assert_int_eq(axc_ask_ex(c, &todd, "hit", NULL, 0, 5000, AXC_DIRECT, &rep, &len), 0);
    axc_free(rep);
    ck_assert_int_eq(axc_resolve(c, &todd, &r2), 0);
    ck_assert_uint_eq(r1.id, r2.id);
    ck_assert_double_eq(status_num(c, "keyed_actors"), 2);
    axc_close(c);
    ax_h_stop(d);
}
END_TEST

START_TEST(idle_reaper_stops_idle_keyed_actor_not_busy_one)
{
    ax_h_daemon *d = ax_h_start(SUP);
    axc_conn *c = ax_h_connect(d);
    axc_ref ri, rb;
    ck_assert_int_eq(axc_get_or_spawn(c, "sup", "idle", "{\"idle_timeout_ms\":500}", &ri), 0);
    ck_assert_int_eq(axc_get_or_spawn(c, "sup", "busy", "{\"idle_timeout_ms\":500}", &rb), 0);
    axc_target ti = axc_by_ref(&ri), tb = axc_by_key("sup", "busy"), tbd = axc_by_ref(&rb);
    uint64_t mi = 0, mb = 0;
    ck_assert_int_eq(axc_monitor(c, &ti, &mi), 0);
    ck_assert_int_eq(axc_monitor(c, &tbd, &mb), 0);
    int64_t t0 = mono_ms(), idle_down = -1;
    /* keep "busy" fed for 1.5 s (a message every 50 ms); "idle" gets nothing */
    while (mono_ms() - t0 < 1500) {
        ck_assert_int_eq(axc_tell_ex(c, &tb, "hit", NULL, 0, AXC_DIRECT), 0);
        cJSON *ev;
        while ((ev = next_event(c, 0))) {
            ck_assert_str_eq(ev_str(ev, "event"), "down");
            ck_assert_msg((uint64_t)ev_num(ev, "mref") == mi, "the busy actor went down: %s", ev_str(ev, "reason"));
            ck_assert_str_eq(ev_str(ev, "reason"), "idle");
            idle_down = mono_ms() - t0;
            cJSON_Delete(ev);
        }
        sleep_ms(50);
    }
    ck_assert_msg(idle_down >= 400, "idle actor down after %" PRId64 " ms (timeout 500)", idle_down);
    axc_target gi = axc_by_key("sup", "idle");
    void *rep = NULL;
    size_t len;
    ck_assert_err(axc_ask_ex(c, &gi, "get", NULL, 0, 5000, AXC_DIRECT, &rep, &len), AX_ENOTFOUND, c);
    ck_assert_int_eq(axc_ask_ex(c, &tb, "get", NULL, 0, 5000, AXC_DIRECT, &rep, &len), 0);
    ck_assert_int_gt(strtol(rep, NULL, 10), 10);
    axc_free(rep);
    ck_assert_double_eq(status_num(c, "counters.idle_reaped"), 1);
    ck_assert_double_eq(status_num(c, "keyed_actors"), 1);
    /* left alone, the busy one goes idle too */
    ck_assert_str_eq(wait_down(c, mb, 5000), "idle");
    ck_assert_double_eq(status_num(c, "counters.idle_reaped"), 2);
    ck_assert_double_eq(status_num(c, "keyed_actors"), 0);
    axc_close(c);
    ax_h_stop(d);
}
END_TEST

/* ---------- what axctl shows ---------- */

START_TEST(actors_and_status_show_supervision_fields)
{
    ax_h_daemon *d = ax_h_start(SUP);
    axc_conn *c = ax_h_connect(d);
    run_result r = axctl(d, "spawn", "sup", "w", "--restart", "transient", "--max-restarts", "5",
                         "--mailbox-policy", "drain_and_drop", "--config",
                         "{\"restart\":\"permanent\",\"backoff_ms\":0,\"mailbox_capacity\":9}", "--mailbox", "77",
                         NULL);
    ck_assert_exit(r, 0, "spawn with options");
    rr_free(&r);
    spawn_ok(c, "l", NULL);
    ck_assert_int_eq(ask_num(c, "l", "link", "w"), 0);
    monitor_ok(c, "w");
    ck_assert_err(ask_rc(c, "w", "crash", NULL), AX_EFAILED, c);

    r = axctl(d, "actors", "--json", NULL);
    ck_assert_exit(r, 0, "actors --json");
    cJSON *doc = cJSON_Parse(r.out);
    ck_assert_ptr_nonnull(doc);
    axc_target tw = axc_by_name("w");
    axc_ref rw;
    ck_assert_int_eq(axc_resolve(c, &tw, &rw), 0);
    cJSON *e = actor_entry(doc, rw.id);
    ck_assert_ptr_nonnull(e);
    ck_assert_str_eq(ev_str(e, "state"), "running");
    ck_assert_str_eq(ev_str(e, "restart"), "transient"); /* the option beat --config */
    ck_assert_double_eq(entry_num(e, "restarts"), 1);
    ck_assert_double_eq(entry_num(e, "links"), 1);
    ck_assert_double_eq(entry_num(e, "monitors"), 1);
    ck_assert_double_eq(entry_num(e, "mailbox"), 0);
    ck_assert_double_eq(entry_num(e, "capacity"), 77);
    cJSON_Delete(doc);
    rr_free(&r);

    r = axctl(d, "actors", NULL);
    ck_assert_exit(r, 0, "actors");
    static const char *const cols[] = {"STATE", "MAILBOX", "RESTARTS", "LINKS", "MONITORS", "RESTART"};
    for (size_t i = 0; i < sizeof cols / sizeof cols[0]; i++)
        ck_assert_msg(strstr(r.out, cols[i]), "actors lacks %s:\n%s", cols[i], r.out);
    rr_free(&r);

    r = axctl(d, "status", "--json", NULL);
    ck_assert_exit(r, 0, "status --json");
    doc = cJSON_Parse(r.out);
    ck_assert_ptr_nonnull(doc);
    cJSON *ctr = cJSON_GetObjectItemCaseSensitive(doc, "counters");
    static const char *const keys[] = {"restarts", "links", "monitors", "downs", "events", "events_lagged",
                                       "idle_reaped"};
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
        ck_assert_msg(cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(ctr, keys[i])), "no counters.%s in %s",
                      keys[i], r.out);
    ck_assert_double_eq(cJSON_GetObjectItemCaseSensitive(ctr, "restarts")->valuedouble, 1);
    ck_assert_double_eq(cJSON_GetObjectItemCaseSensitive(ctr, "links")->valuedouble, 1);
    ck_assert_double_eq(cJSON_GetObjectItemCaseSensitive(ctr, "monitors")->valuedouble, 1);
    ck_assert(cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(doc, "keyed_actors")));
    cJSON_Delete(doc);
    rr_free(&r);
    r = axctl(d, "status", NULL);
    ck_assert_exit(r, 0, "status");
    ck_assert_msg(strstr(r.out, "counters.restarts:") && strstr(r.out, "keyed_actors:"), "status:\n%s", r.out);
    rr_free(&r);

    /* bad spawn options: usage errors before connecting, range errors from the daemon */
    r = axctl(d, "spawn", "sup", "x", "--restart", "sometimes", NULL);
    ck_assert_exit(r, 2, "--restart sometimes");
    rr_free(&r);
    r = axctl(d, "spawn", "sup", "x", "--backoff-ms", "-1", NULL);
    ck_assert_exit(r, 2, "--backoff-ms -1");
    rr_free(&r);
    r = axctl(d, "spawn", "sup", "x", "--max-restarts", "99999", NULL);
    ck_assert_exit(r, 1, "--max-restarts 99999");
    ck_assert_msg(strstr(r.err, "max_restarts"), "stderr: %s", r.err);
    rr_free(&r);
    r = axctl(d, "tell", "w", "hit", "--trap-exit", NULL);
    ck_assert_exit(r, 2, "tell --trap-exit");
    rr_free(&r);
    axc_close(c);
    ax_h_stop(d);
}
END_TEST

START_TEST(axctl_monitor_prints_the_down_and_exits_0)
{
    ax_h_daemon *d = ax_h_start(SUP);
    axc_conn *c = ax_h_connect(d);
    axc_ref r = spawn_ok(c, "w", "{\"restart\":\"permanent\"}");
    bg_cmd *b = calloc(1, sizeof *b);
    ck_assert_ptr_nonnull(b);
    bg_start(b, d, (const char *const[]){"monitor", "w", "--timeout", "20000", NULL});
    wait_status(c, "counters.monitors", 1, 5000);
    ck_assert_err(ask_rc(c, "w", "crash", NULL), AX_EFAILED, c); /* a restart is no down */
    ck_assert_err(ask_rc(c, "w", "exit", "bye"), 0, c);          /* permanent: restarted again */
    axc_target tw = axc_by_name("w");
    ck_assert_int_eq(axc_stop(c, &tw), 0);
    int st = bg_reap(b, 10000, 0);
    char want[96];
    snprintf(want, sizeof want, "down      @%" PRIu64 ".%" PRIu32 " mref=", r.id, r.gen);
    ck_assert_msg(st == 0, "axctl monitor: status %d\n%s", st, b->buf);
    ck_assert_msg(strstr(b->buf, want) && strstr(b->buf, "reason=stopped") && !strchr(strchr(b->buf, '\n') + 1, '\n'),
                  "axctl monitor printed:\n%s", b->buf);
    free(b);

    run_result rr = axctl(d, "monitor", "w", NULL);
    ck_assert_exit(rr, 1, "monitor of a missing actor");
    rr_free(&rr);
    spawn_ok(c, "v", NULL);
    rr = axctl(d, "monitor", "v", "--timeout", "200", NULL);
    ck_assert_exit(rr, 4, "monitor without a down in time");
    rr_free(&rr);
    axc_close(c);
    ax_h_stop(d);
}
END_TEST


/* ---- Erlang's signal order and exit/2 (issue 8) ---- */

/* The trail of what an actor received, in order. */
static char *trail_of(axc_conn *c, const char *name) { return ask_str(c, name, "trail", NULL); }

START_TEST(a_result_sent_before_exiting_arrives_before_the_exit_signal_and_the_down)
{
    ax_h_daemon *d = ax_h_start(SUP);
    axc_conn *c = ax_h_connect(d);
    spawn_ok(c, "p", "{\"trap_exit\":true}");
    spawn_ok(c, "w", NULL);
    ck_assert_int_eq(ask_num(c, "p", "link", "w"), 0);
    int64_t mref = ask_num(c, "p", "monitor", "w");
    (void)ask_rc(c, "w", "report", "p"); /* tells p "note result", then dies with "done" */
    wait_num(c, "p", "downs", 1, 5000);
    wait_num(c, "p", "exits", 1, 5000);
    char want[160], *t = trail_of(c, "p");
    snprintf(want, sizeof want, "result,EXIT:done,DOWN#%lld:done,", (long long)mref);
    ck_assert_msg(!strcmp(t, want), "p received '%s', want '%s' (the result first)", t, want);
    axc_free(t);
    axc_close(c);
    ax_h_stop(d);
}
END_TEST

START_TEST(unlink_cancels_an_exit_signal_that_already_arrived)
{
    ax_h_daemon *d = ax_h_start(SUP_ONE_WORKER);
    axc_conn *c = ax_h_connect(d);
    /* one worker for both: the order below is one thread's */
    spawn_ok(c, "p", "{\"trap_exit\":true,\"worker\":0}");
    axc_ref rw = spawn_ok(c, "w", "{\"worker\":0}");
    char wref[64];
    ref_text(&rw, wref, sizeof wref); /* by ref: the name is gone once w is */
    ck_assert_int_eq(ask_num(c, "p", "link", wref), 0);
    /* one write, read at once: w's crash and then p's unlink are queued before either
     * runs; w runs first and dies, its exit signal arrives at p behind the unlink; p
     * then unlinks and the signal of the removed link, already queued, has no effect */
    axc_target tw = axc_by_name("w"), tp = axc_by_name("p");
    uint32_t id;
    ck_assert_int_eq(axc_send_ask(c, &tw, "crash", NULL, 0, 5000, &id), 0);
    ck_assert_int_eq(axc_send_ask(c, &tp, "unlink", wref, strlen(wref), 5000, &id), 0);
    ck_assert_int_eq(axc_flush(c), 0);
    for (int i = 0; i < 2; i++) {
        axc_result r;
        ck_assert_int_eq(axc_poll_result(c, 5000, &r), 1);
        if (i == 1)
            ck_assert_msg(r.status == 0 && !strcmp(r.data, "0"), "unlink: %d %s", r.status, (char *)r.data);
        axc_free(r.data);
    }
    ck_assert_err(ask_rc(c, "w", "get", NULL), AX_ENOPROC, c);
    ck_assert_int_eq(ask_num(c, "p", "exits", NULL), 0);
    char *t = trail_of(c, "p");
    ck_assert_msg(!strstr(t, "EXIT"), "p got an exit signal of a link it had removed: '%s'", t);
    axc_free(t);
    axc_close(c);
    ax_h_stop(d);
}
END_TEST

START_TEST(an_actor_exiting_with_kill_sends_kill_not_killed_over_its_links)
{
    ax_h_daemon *d = ax_h_start(SUP);
    axc_conn *c = ax_h_connect(d);
    spawn_ok(c, "p", "{\"trap_exit\":true}");
    spawn_ok(c, "q", NULL);
    spawn_ok(c, "w", NULL);
    ck_assert_int_eq(ask_num(c, "p", "link", "w"), 0);
    ck_assert_int_eq(ask_num(c, "q", "link", "w"), 0);
    int64_t mq = ask_num(c, "p", "monitor", "q");
    (void)ask_rc(c, "w", "fail", "kill");
    /* a trapping partner gets "kill" as an ordinary $exit and lives; a non-trapping one
     * ends with reason "kill" (not "killed") */
    wait_num(c, "p", "exits", 1, 5000);
    wait_num(c, "p", "downs", 1, 5000);
    char want[160], *t = trail_of(c, "p");
    snprintf(want, sizeof want, "EXIT:kill,DOWN#%lld:kill,", (long long)mq);
    ck_assert_msg(!strcmp(t, want), "p received '%s', want '%s'", t, want);
    axc_free(t);
    axc_close(c);
    ax_h_stop(d);
}
END_TEST

START_TEST(axctl_exit_and_ax_exit_follow_erlang_exit_2)
{
    ax_h_daemon *d = ax_h_start(SUP);
    axc_conn *c = ax_h_connect(d);
    spawn_ok(c, "t1", "{\"trap_exit\":true}");
    axc_ref r2 = spawn_ok(c, "t2", NULL);
    axc_ref r3 = spawn_ok(c, "t3", "{\"restart\":\"permanent\"}");
    axc_ref r4 = spawn_ok(c, "t4", "{\"trap_exit\":true,\"restart\":\"permanent\"}");
    spawn_ok(c, "a", NULL);
    /* a trapping target receives it as $exit and lives on */
    run_result r = axctl(d, "exit", "t1", "bye", NULL);
    ck_assert_exit(r, 0, "axctl exit t1 bye");
    rr_free(&r);
    wait_num(c, "t1", "exits", 1, 5000);
    expect_str(c, "t1", "last", "bye");
    /* from an actor (ax_exit): the same, with the sender as m->from */
    ck_assert_int_eq(ask_num(c, "a", "xexit", "t1 hello"), 0);
    wait_num(c, "t1", "exits", 2, 5000);
    expect_str(c, "t1", "last", "hello");
    /* "normal" to a non-trapping target is ignored */
    r = axctl(d, "exit", "t2", NULL);
    ck_assert_exit(r, 0, "axctl exit t2");
    rr_free(&r);
    ck_assert_int_eq(ask_num(c, "t2", "get", NULL), 0);
    /* any other reason ends it with that reason (temporary: for good) */
    uint64_t m2 = monitor_ok(c, "t2");
    r = axctl(d, "exit", "t2", "bye", NULL);
    ck_assert_exit(r, 0, "axctl exit t2 bye");
    rr_free(&r);
    ck_assert_str_eq(wait_down(c, m2, 5000), "bye");
    /* ... and, unlike stop, the restart policy applies: permanent t3 comes back */
    ck_assert_int_eq(ask_num(c, "t3", "hit", NULL), 1);
    r = axctl(d, "exit", "t3", "bye", NULL);
    ck_assert_exit(r, 0, "axctl exit t3 bye");
    rr_free(&r);
    wait_status(c, "counters.restarts", 1, 5000);
    ck_assert_int_eq(ask_num(c, "t3", "hit", NULL), 1); /* a fresh incarnation, same name */
    /* kill cannot be trapped: t4 ends with "killed" and its policy restarts it */
    r = axctl(d, "exit", "t4", "kill", NULL);
    ck_assert_exit(r, 0, "axctl exit t4 kill");
    rr_free(&r);
    wait_status(c, "counters.restarts", 2, 5000);
    ck_assert_int_eq(ask_num(c, "t4", "exits", NULL), 0); /* never saw it as $exit */
    /* a reason that is not a name, and a target that is gone */
    r = axctl(d, "exit", "t4", "two words", NULL);
    ck_assert_msg(r.status != 0, "axctl exit with a bad reason: exit 0");
    rr_free(&r);
    char t2ref[64];
    ref_text(&r2, t2ref, sizeof t2ref);
    r = axctl(d, "exit", t2ref, "bye", NULL);
    ck_assert_exit(r, 1, "axctl exit of a stopped actor");
    ck_assert_msg(strstr(r.err, "no actor"), "%s", r.err);
    rr_free(&r);
    (void)r2, (void)r3, (void)r4;
    axc_close(c);
    ax_h_stop(d);
}
END_TEST

START_TEST(transient_restarts_after_anything_but_normal_and_shutdown)
{
    ax_h_daemon *d = ax_h_start(SUP);
    axc_conn *c = ax_h_connect(d);
    spawn_ok(c, "t", "{\"restart\":\"transient\"}");
    spawn_ok(c, "u", "{\"restart\":\"transient\"}");
    uint64_t mt = monitor_ok(c, "t");
    (void)ask_rc(c, "t", "fail", "shutdown:maintenance"); /* OTP's {shutdown, _}: normal */
    ck_assert_str_eq(wait_down(c, mt, 5000), "shutdown:maintenance");
    (void)ask_rc(c, "u", "fail", "stopped"); /* any other reason is abnormal */
    wait_status(c, "counters.restarts", 1, 5000);
    ck_assert_int_eq(ask_num(c, "u", "get", NULL), 0);
    axc_close(c);
    ax_h_stop(d);
}
END_TEST

START_TEST(monitors_of_one_target_fire_in_the_order_they_were_created)
{
    ax_h_daemon *d = ax_h_start(SUP);
    axc_conn *c = ax_h_connect(d);
    spawn_ok(c, "p", NULL);
    spawn_ok(c, "t", NULL);
    int64_t m[5];
    for (int i = 0; i < 4; i++)
        m[i] = ask_num(c, "p", "monitor", "t");
    char buf[32];
    snprintf(buf, sizeof buf, "%lld", (long long)m[0]);
    ck_assert_int_eq(ask_num(c, "p", "demonitor", buf), 0);
    m[4] = ask_num(c, "p", "monitor", "t");
    run_result r = axctl(d, "stop", "t", NULL);
    ck_assert_exit(r, 0, "axctl stop t");
    rr_free(&r);
    wait_num(c, "p", "downs", 4, 5000);
    char want[256], *t = trail_of(c, "p");
    snprintf(want, sizeof want, "DOWN#%lld:stopped,DOWN#%lld:stopped,DOWN#%lld:stopped,DOWN#%lld:stopped,",
             (long long)m[1], (long long)m[2], (long long)m[3], (long long)m[4]);
    ck_assert_msg(!strcmp(t, want), "downs came as '%s', want '%s'", t, want);
    axc_free(t);
    axc_close(c);
    ax_h_stop(d);
}
END_TEST

/* trap_exit is decided when the signal arrives, as in Erlang: turning it off or on after
 * the signal arrived (but before it is taken) does not change what the signal does. */
START_TEST(trap_exit_is_decided_when_the_exit_signal_arrives)
{
    ax_h_daemon *d = ax_h_start(SUP_ONE_WORKER);
    axc_conn *c = ax_h_connect(d);
    for (int k = 0; k < 2; k++) {
        const char *pn = k ? "p2" : "p1", *wn = k ? "w2" : "w1";
        /* one worker for both: "w's signal arrives first" is one thread's order */
        spawn_ok(c, pn, k ? "{\"worker\":0}" : "{\"trap_exit\":true,\"worker\":0}");
        axc_ref rw = spawn_ok(c, wn, "{\"worker\":0}");
        char wref[64];
        ref_text(&rw, wref, sizeof wref);
        ck_assert_int_eq(ask_num(c, pn, "link", wref), 0);
        uint64_t mp = monitor_ok(c, pn);
        /* one write: w dies first (its signal arrives at p), then p flips trap_exit */
        axc_target tw = axc_by_name(wn), tp = axc_by_name(pn);
        uint32_t id;
        ck_assert_int_eq(axc_send_ask(c, &tw, "fail", "boom", 4, 5000, &id), 0);
        ck_assert_int_eq(axc_send_ask(c, &tp, "trap", k ? "1" : "0", 1, 5000, &id), 0);
        ck_assert_int_eq(axc_flush(c), 0);
        for (int i = 0; i < 2; i++) {
            axc_result r;
            ck_assert_int_eq(axc_poll_result(c, 5000, &r), 1);
            axc_free(r.data);
        }
        if (!k) { /* it trapped when the signal arrived: a $exit, although it traps no more */
            wait_num(c, pn, "exits", 1, 5000);
            expect_str(c, pn, "last", "boom");
        } else { /* it did not trap when the signal arrived: it ends, trap 1 comes too late */
            ck_assert_str_eq(wait_down(c, mp, 5000), "boom");
        }
    }
    axc_close(c);
    ax_h_stop(d);
}
END_TEST

static Suite *supervision_suite(void)
{
    Suite *s = suite_create("supervision");
    TCase *tc = tcase_create("daemon");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, transient_actor_exiting_normally_is_not_restarted);
    tcase_add_test(tc, a_result_sent_before_exiting_arrives_before_the_exit_signal_and_the_down);
    tcase_add_test(tc, unlink_cancels_an_exit_signal_that_already_arrived);
    tcase_add_test(tc, trap_exit_is_decided_when_the_exit_signal_arrives);
    tcase_add_test(tc, an_actor_exiting_with_kill_sends_kill_not_killed_over_its_links);
    tcase_add_test(tc, axctl_exit_and_ax_exit_follow_erlang_exit_2);
    tcase_add_test(tc, transient_restarts_after_anything_but_normal_and_shutdown);
    tcase_add_test(tc, monitors_of_one_target_fire_in_the_order_they_were_created);
    tcase_add_test(tc, crashed_transient_actor_is_restarted_with_same_ref);
    tcase_add_test(tc, intensity_exceeded_stops_actor_and_fires_links);
    tcase_add_test(tc, keep_preserves_order_of_1000_queued_messages);
    tcase_add_test(tc, drain_and_drop_fails_pending_asks_immediately);
    tcase_add_test(tc, trap_exit_converts_linked_crash_into_message);
    tcase_add_test(tc, kill_is_not_trappable);
    tcase_add_test(tc, link_to_dead_actor_gives_noproc);
    tcase_add_test(tc, exactly_one_down_per_monitor_under_crash_storm);
    tcase_add_test(tc, demonitor_means_no_down);
    tcase_add_test(tc, monitor_of_dead_actor_gives_noproc);
    tcase_add_test(tc, client_monitors_end_with_the_connection);
    tcase_add_test(tc, down_reaches_a_client_that_is_behind_on_events);
    tcase_add_test(tc, events_follow_shows_started_restarted_stopped_in_order);
    tcase_add_test(tc, slow_event_subscriber_gets_lagged_and_daemon_keeps_serving);
    tcase_add_test(tc, concurrent_get_or_spawn_from_many_clients_yields_one_actor);
    tcase_add_test(tc, keyed_ask_via_axctl);
    tcase_add_test(tc, direct_to_missing_key_is_enotfound);
    tcase_add_test(tc, idle_reaper_stops_idle_keyed_actor_not_busy_one);
    tcase_add_test(tc, actors_and_status_show_supervision_fields);
    tcase_add_test(tc, axctl_monitor_prints_the_down_and_exits_0);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    SRunner *sr = srunner_create(supervision_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
