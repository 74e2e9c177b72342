/* Integration tests of the axctl binary against a real daemon: each runs
 * $AX_BUILD_DIR/libaxclient/axctl through the harness and checks its stdout, stderr and
 * exit status (0 ok, 1 refused, 2 usage, 3 connection), text and --json output. */
#include "harness.h"

#include <check.h>
#include <cjson/cJSON.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define AXCTL_TIMEOUT_MS 15000

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

/* Run axctl with argv words (NULL-terminated); socket: --socket SOCK first, unless NULL. */
static run_result axctl_v(const char *socket, const char *first, va_list ap)
{
    const char *argv[32];
    size_t n = 0;
    argv[n++] = ax_h_build_path("libaxclient/axctl");
    if (socket) {
        argv[n++] = "--socket";
        argv[n++] = socket;
    }
    for (const char *a = first; a; a = va_arg(ap, const char *)) {
        ck_assert_uint_lt(n, 31);
        argv[n++] = a;
    }
    argv[n] = NULL;
    run_result r = {0, NULL, NULL};
    r.status = ax_h_run(argv, &r.out, &r.err, AXCTL_TIMEOUT_MS);
    return r;
}

static run_result axctl(ax_h_daemon *d, const char *first, ...)
{
    va_list ap;
    va_start(ap, first);
    run_result r = axctl_v(d ? ax_h_sock(d) : NULL, first, ap);
    va_end(ap);
    return r;
}

static run_result axctl_sock(const char *sock, const char *first, ...)
{
    va_list ap;
    va_start(ap, first);
    run_result r = axctl_v(sock, first, ap);
    va_end(ap);
    return r;
}

#define ck_assert_exit(r, want, what)                                                                              \
    ck_assert_msg((r).status == (want), "%s: exit %d, want %d\nstdout:\n%s\nstderr:\n%s", (what), (r).status,     \
                  (want), (r).out, (r).err)

static void run_ok(ax_h_daemon *d, const char *cmd, const char *a1, const char *a2)
{
    run_result r = axctl(d, cmd, a1, a2, NULL);
    ck_assert_exit(r, 0, cmd);
    rr_free(&r);
}

static cJSON *parse_json(const char *text)
{
    cJSON *doc = cJSON_Parse(text);
    ck_assert_msg(doc != NULL, "not valid JSON:\n%s", text);
    return doc;
}

static ax_h_daemon *start_counter(void) { return ax_h_start((const char *const[]){"-p", "counter", NULL}); }

/* ---------- the brief's walk-through ---------- */

START_TEST(axctl_spawn_tell_ask_prints_the_count)
{
    ax_h_daemon *d = start_counter();
    run_result r = axctl(d, "spawn", "counter", "c1", NULL);
    ck_assert_exit(r, 0, "spawn");
    ck_assert_msg(strstr(r.out, "@") && strstr(r.out, "c1"), "spawn output lacks the ref and name:\n%s", r.out);
    rr_free(&r);
    for (int i = 0; i < 3; i++) {
        r = axctl(d, "tell", "c1", "inc", NULL);
        ck_assert_exit(r, 0, "tell");
        ck_assert_str_eq(r.out, "");
        rr_free(&r);
    }
    r = axctl(d, "ask", "c1", "get", NULL);
    ck_assert_exit(r, 0, "ask");
    ck_assert_str_eq(r.out, "3\n");
    rr_free(&r);
    /* options may follow the command; a payload after "--" may start with '-' */
    r = axctl(d, "tell", "c1", "add", "--", "-5", NULL);
    ck_assert_exit(r, 0, "tell add -- -5");
    rr_free(&r);
    r = axctl(d, "ask", "c1", "get", "--socket", ax_h_sock(d), NULL);
    ck_assert_exit(r, 0, "ask with a trailing --socket");
    ck_assert_str_eq(r.out, "-2\n");
    rr_free(&r);
    ax_h_stop(d);
}
END_TEST

START_TEST(axctl_json_output_is_valid_json)
{
    ax_h_daemon *d = start_counter();
    run_result r = axctl(d, "--json", "spawn", "counter", "c1", NULL);
    ck_assert_exit(r, 0, "--json spawn");
    cJSON *doc = parse_json(r.out);
    ck_assert(cJSON_IsNumber(cJSON_GetObjectItem(doc, "id")));
    ck_assert(cJSON_IsNumber(cJSON_GetObjectItem(doc, "gen")));
    ck_assert_str_eq(cJSON_GetStringValue(cJSON_GetObjectItem(doc, "name")), "c1");
    cJSON_Delete(doc);
    rr_free(&r);
    for (int i = 0; i < 3; i++) {
        r = axctl(d, "--json", "tell", "c1", "inc", NULL);
        ck_assert_exit(r, 0, "--json tell");
        doc = parse_json(r.out);
        ck_assert(cJSON_IsTrue(cJSON_GetObjectItem(doc, "ok")));
        cJSON_Delete(doc);
        rr_free(&r);
    }
    r = axctl(d, "--json", "ask", "c1", "get", NULL);
    ck_assert_exit(r, 0, "--json ask");
    doc = parse_json(r.out);
    ck_assert_msg(cJSON_IsString(cJSON_GetObjectItem(doc, "reply")), "no reply string:\n%s", r.out);
    ck_assert_str_eq(cJSON_GetStringValue(cJSON_GetObjectItem(doc, "reply")), "3");
    cJSON_Delete(doc);
    rr_free(&r);
    /* a refusal with --json: the error object on stdout, exit 1 */
    r = axctl(d, "--json", "ask", "nosuch", "get", NULL);
    ck_assert_exit(r, 1, "--json ask nosuch");
    doc = parse_json(r.out);
    ck_assert_str_eq(cJSON_GetStringValue(cJSON_GetObjectItem(doc, "error")), "ENOPROC");
    ck_assert(cJSON_GetObjectItem(doc, "code")->valuedouble == -4);
    ck_assert(cJSON_IsString(cJSON_GetObjectItem(doc, "message")));
    cJSON_Delete(doc);
    rr_free(&r);
    /* documents pass through as JSON */
    static const char *const docs[][2] = {{"status", NULL}, {"actors", NULL}, {"plugins", "list"}};
    for (size_t i = 0; i < 3; i++) {
        r = axctl(d, "--json", docs[i][0], docs[i][1], NULL);
        ck_assert_exit(r, 0, docs[i][0]);
        cJSON_Delete(parse_json(r.out));
        rr_free(&r);
    }
    ax_h_stop(d);
}
END_TEST

START_TEST(axctl_actors_lists_the_spawned_actor)
{
    ax_h_daemon *d = start_counter();
    run_ok(d, "spawn", "counter", "c1");
    run_result r = axctl(d, "actors", NULL);
    ck_assert_exit(r, 0, "actors");
    ck_assert_msg(strstr(r.out, "c1") && strstr(r.out, "counter"), "actors output:\n%s", r.out);
    rr_free(&r);
    r = axctl(d, "--json", "actors", NULL);
    ck_assert_exit(r, 0, "--json actors");
    cJSON *doc = parse_json(r.out), *it;
    int found = 0;
    cJSON_ArrayForEach(it, cJSON_GetObjectItem(doc, "actors"))
    {
        const char *n = cJSON_GetStringValue(cJSON_GetObjectItem(it, "name"));
        found += n && strcmp(n, "c1") == 0;
    }
    ck_assert_int_eq(found, 1);
    cJSON_Delete(doc);
    rr_free(&r);
    ax_h_stop(d);
}
END_TEST

START_TEST(axctl_status_exits_0)
{
    ax_h_daemon *d = start_counter();
    run_result r = axctl(d, "status", NULL);
    ck_assert_exit(r, 0, "status");
    ck_assert_msg(strstr(r.out, "node"), "status output:\n%s", r.out);
    rr_free(&r);
    /* --cluster on a node that is not clustered: itself alone, summed */
    r = axctl(d, "status", "--cluster", "--json", NULL);
    ck_assert_exit(r, 0, "status --cluster");
    cJSON *doc = parse_json(r.out);
    ck_assert_int_eq((int)cJSON_GetNumberValue(cJSON_GetObjectItem(doc, "members")), 1);
    ck_assert_int_eq((int)cJSON_GetNumberValue(cJSON_GetObjectItem(doc, "answered")), 1);
    ck_assert(cJSON_IsNumber(cJSON_GetObjectItem(cJSON_GetObjectItem(cJSON_GetObjectItem(doc, "sum"), "counters"),
                                                 "asks")));
    cJSON_Delete(doc);
    rr_free(&r);
    r = axctl(d, "status", "--cluster", NULL);
    ck_assert_exit(r, 0, "status --cluster");
    ck_assert_msg(strstr(r.out, "1 member(s), 1 answered"), "status --cluster output:\n%s", r.out);
    rr_free(&r);
    ax_h_stop(d);
}
END_TEST

START_TEST(axctl_log_level_changes_the_level_at_run_time)
{
    ax_h_daemon *d = start_counter();
    run_result r = axctl(d, "--json", "status", NULL);
    ck_assert_exit(r, 0, "status");
    ck_assert_msg(strstr(r.out, "\"log_level\": \"info\"") || strstr(r.out, "\"log_level\":\"info\""), "%s", r.out);
    rr_free(&r);
    ck_assert(!strstr(ax_h_log(d), "DEBUG"));
    run_ok(d, "log-level", "debug", NULL);
    ck_assert_msg(ax_h_wait_log(d, "log level info -> debug", 2000), "the change is not logged");
    run_ok(d, "spawn", "counter", "c1"); /* a debug line: "spawned counter" */
    ck_assert_msg(ax_h_wait_log(d, "DEBUG actor: spawned counter", 2000), "no debug line after log-level debug");
    r = axctl(d, "--json", "status", NULL);
    ck_assert_msg(strstr(r.out, "debug"), "%s", r.out);
    rr_free(&r);
    /* an unknown level: refused, named, nothing changes */
    r = axctl(d, "log-level", "verbose", NULL);
    ck_assert_exit(r, 1, "log-level verbose");
    ck_assert_msg(strstr(r.err, "unknown log level 'verbose'"), "stderr:\n%s", r.err);
    rr_free(&r);
    r = axctl(d, "log-level", NULL);
    ck_assert_exit(r, 2, "log-level without a level");
    rr_free(&r);
    run_ok(d, "log-level", "error", NULL);
    ck_assert_msg(ax_h_wait_log(d, "log level debug -> error", 2000), "the change to error is not logged");
    ax_h_stop(d);
}
END_TEST

START_TEST(axctl_ask_unknown_actor_exits_1_with_error_on_stderr)
{
    ax_h_daemon *d = start_counter();
    run_result r = axctl(d, "ask", "nosuch", "get", NULL);
    ck_assert_exit(r, 1, "ask nosuch get");
    ck_assert_str_eq(r.out, "");
    ck_assert_msg(strstr(r.err, "nosuch"), "stderr does not say what failed:\n%s", r.err);
    rr_free(&r);
    /* other refusals are exit 1 too */
    run_ok(d, "spawn", "counter", "c1");
    r = axctl(d, "spawn", "counter", "c1", NULL);
    ck_assert_exit(r, 1, "spawn duplicate");
    ck_assert_msg(*r.err, "no message on stderr");
    rr_free(&r);
    r = axctl(d, "spawn", "nosuchtype", NULL);
    ck_assert_exit(r, 1, "spawn unknown type");
    rr_free(&r);
    r = axctl(d, "tell", "c1", "nosuchmsg", NULL);
    ck_assert_exit(r, 1, "tell unknown message");
    rr_free(&r);
    ax_h_stop(d);
}
END_TEST

START_TEST(axctl_unreachable_socket_exits_3)
{
    run_result r = axctl_sock("/nonexistent/axactord.sock", "status", NULL);
    ck_assert_exit(r, 3, "status on /nonexistent");
    ck_assert_msg(*r.err, "no message on stderr");
    rr_free(&r);
    /* a socket file whose daemon was killed: connection refused, also 3 */
    ax_h_daemon *d = start_counter();
    ax_h_kill(d);
    r = axctl(d, "ask", "c1", "get", NULL);
    ck_assert_exit(r, 3, "ask on a dead daemon's socket");
    rr_free(&r);
    ax_h_destroy(d);
}
END_TEST

START_TEST(axctl_usage_errors_exit_2)
{
    ax_h_daemon *d = start_counter();
    static const char *const bad[][4] = {
        {"bogus", NULL},
        {"ask", "c1", NULL},
        {"tell", NULL},
        {"plugins", "frobnicate", NULL},
        {"--no-such-option", "status", NULL},
        {"--timeout", "soon", "status", NULL},
        {"nodes", "--cluster", NULL},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        run_result r = axctl(d, bad[i][0], bad[i][1], bad[i][2], bad[i][3], NULL);
        ck_assert_exit(r, 2, bad[i][0]);
        ck_assert_msg(*r.err, "%s: no message on stderr", bad[i][0]);
        rr_free(&r);
    }
    /* without a socket option at all, a usage error is still 2 (not 3) */
    run_result r = axctl(NULL, "bogus", NULL);
    ck_assert_exit(r, 2, "bogus without --socket");
    rr_free(&r);
    r = axctl(NULL, "--help", NULL);
    ck_assert_exit(r, 0, "--help");
    ck_assert_ptr_nonnull(strstr(r.out, "EXIT STATUS"));
    rr_free(&r);
    ax_h_stop(d);
}
END_TEST

START_TEST(axctl_plugins_list_load_and_refusal)
{
    ax_h_daemon *d = start_counter();
    run_result r = axctl(d, "plugins", "list", NULL);
    ck_assert_exit(r, 0, "plugins list");
    ck_assert_msg(strstr(r.out, "counter"), "plugins list:\n%s", r.out);
    ck_assert_msg(!strstr(r.out, "echo"), "plugins list shows echo before it is loaded:\n%s", r.out);
    rr_free(&r);
    r = axctl(d, "plugins", "load", ax_h_build_path("plugins/bad_abi.so"), NULL);
    ck_assert_exit(r, 1, "plugins load bad_abi.so");
    ck_assert_msg(strstr(r.err, "99"), "refusal does not name the plugin's ABI:\n%s", r.err);
    rr_free(&r);
    r = axctl(d, "plugins", "load", ax_h_build_path("plugins/no_descriptor.so"), NULL);
    ck_assert_exit(r, 1, "plugins load no_descriptor.so");
    rr_free(&r);
    r = axctl(d, "plugins", "load", ax_h_build_path("plugins/echo.so"), NULL);
    ck_assert_exit(r, 0, "plugins load echo.so");
    ck_assert_msg(strstr(r.out, "echo"), "load output:\n%s", r.out);
    rr_free(&r);
    r = axctl(d, "plugins", "list", NULL);
    ck_assert_exit(r, 0, "plugins list");
    ck_assert_msg(strstr(r.out, "counter") && strstr(r.out, "echo"), "plugins list:\n%s", r.out);
    ck_assert_msg(!strstr(r.out, "bad_abi"), "a refused plugin is listed:\n%s", r.out);
    rr_free(&r);
    run_ok(d, "plugins", "unload", "echo");
    r = axctl(d, "plugins", "unload", "echo", NULL);
    ck_assert_exit(r, 1, "unload twice");
    rr_free(&r);
    ax_h_stop(d);
}
END_TEST

START_TEST(axctl_stop_then_ask_exits_1)
{
    ax_h_daemon *d = start_counter();
    run_ok(d, "spawn", "counter", "c1");
    run_ok(d, "stop", "c1", NULL);
    run_result r = axctl(d, "ask", "c1", "get", NULL);
    ck_assert_exit(r, 1, "ask after stop");
    rr_free(&r);
    r = axctl(d, "stop", "c1", NULL);
    ck_assert_exit(r, 1, "stop twice");
    rr_free(&r);
    ax_h_stop(d);
}
END_TEST

START_TEST(axctl_ref_target_from_spawn_output)
{
    ax_h_daemon *d = start_counter();
    run_result r = axctl(d, "--json", "spawn", "counter", NULL);
    ck_assert_exit(r, 0, "spawn anonymous");
    cJSON *doc = parse_json(r.out);
    char ref[64];
    snprintf(ref, sizeof ref, "@%.0f.%.0f", cJSON_GetObjectItem(doc, "id")->valuedouble,
             cJSON_GetObjectItem(doc, "gen")->valuedouble);
    cJSON_Delete(doc);
    rr_free(&r);
    run_ok(d, "tell", ref, "inc");
    r = axctl(d, "ask", ref, "get", NULL);
    ck_assert_exit(r, 0, "ask by ref");
    ck_assert_str_eq(r.out, "1\n");
    rr_free(&r);
    run_ok(d, "stop", ref, NULL);
    r = axctl(d, "ask", ref, "get", NULL);
    ck_assert_exit(r, 1, "ask a stopped ref");
    rr_free(&r);
    ax_h_stop(d);
}
END_TEST

START_TEST(axctl_uses_the_socket_env_variable)
{
    ax_h_daemon *d = start_counter();
    ck_assert_int_eq(setenv(AXC_SOCKET_ENV, ax_h_sock(d), 1), 0);
    run_result r = axctl(NULL, "status", NULL);
    ck_assert_exit(r, 0, "status via $AXACTOR_SOCKET");
    rr_free(&r);
    ck_assert_int_eq(setenv(AXC_SOCKET_ENV, "/nonexistent/ax.sock", 1), 0);
    r = axctl(NULL, "status", NULL);
    ck_assert_exit(r, 3, "status via a bad $AXACTOR_SOCKET");
    rr_free(&r);
    /* --socket wins over the environment */
    r = axctl(d, "status", NULL);
    ck_assert_exit(r, 0, "--socket over $AXACTOR_SOCKET");
    rr_free(&r);
    unsetenv(AXC_SOCKET_ENV);
    ax_h_stop(d);
}
END_TEST

static Suite *axctl_suite(void)
{
    Suite *s = suite_create("axctl");
    TCase *tc = tcase_create("axctl");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, axctl_spawn_tell_ask_prints_the_count);
    tcase_add_test(tc, axctl_json_output_is_valid_json);
    tcase_add_test(tc, axctl_actors_lists_the_spawned_actor);
    tcase_add_test(tc, axctl_status_exits_0);
    tcase_add_test(tc, axctl_log_level_changes_the_level_at_run_time);
    tcase_add_test(tc, axctl_ask_unknown_actor_exits_1_with_error_on_stderr);
    tcase_add_test(tc, axctl_unreachable_socket_exits_3);
    tcase_add_test(tc, axctl_usage_errors_exit_2);
    tcase_add_test(tc, axctl_plugins_list_load_and_refusal);
    tcase_add_test(tc, axctl_stop_then_ask_exits_1);
    tcase_add_test(tc, axctl_ref_target_from_spawn_output);
    tcase_add_test(tc, axctl_uses_the_socket_env_variable);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    SRunner *sr = srunner_create(axctl_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
