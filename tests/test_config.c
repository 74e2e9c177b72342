/* Unit tests for daemon/config.c and daemon/log.c: defaults, every kind of bad line (with
 * its line number, and the config left untouched), quoting, lists, overrides, the shipped
 * conf/axactord.conf agreeing with the key table, print/load round trips, log line format. */
/* project headers first: check.h defines a fail() macro that would rewrite plugin.h */
#include "ax_build_config.h"
#include "axactor/errors.h"
#include "config.h"
#include "log.h"

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* The config as text, so two configs compare with one strcmp. Caller frees. */
static char *dump(const axd_config *c)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    ck_assert_ptr_nonnull(f);
    axd_config_print(c, f);
    fclose(f);
    return buf;
}

static char *tmp_file(const char *text, size_t len)
{
    static char path[64];
    snprintf(path, sizeof path, "/tmp/ax_test_config.XXXXXX");
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(write(fd, text, len), (ssize_t)len);
    close(fd);
    return path;
}

static char *read_all(const char *path)
{
    FILE *f = fopen(path, "r");
    ck_assert_msg(f != NULL, "%s: %s", path, strerror(errno));
    char *buf = malloc(1 << 20);
    size_t n = fread(buf, 1, (1 << 20) - 1, f);
    buf[n] = 0;
    fclose(f);
    return buf;
}

/* A config with some values off their defaults, so "unchanged" means something. */
static void non_default(axd_config *c)
{
    char err[256];
    axd_config_defaults(c);
    ck_assert_int_eq(axd_config_set(c, "runtime.batch", "7", err, sizeof err), 0);
    ck_assert_int_eq(axd_config_set(c, "plugins.load", "counter", err, sizeof err), 0);
    ck_assert_int_eq(axd_config_set(c, "client.socket_group", "wheel", err, sizeof err), 0);
}

/* text[0..len) must fail with "NAME:LINE: ...needle..." from both the file and (if it has
 * no NUL) the string loader, leaving the config as it was. */
static void expect_bad(const char *text, size_t len, unsigned line, const char *needle)
{
    axd_config c;
    char err[512] = "", want[128], *before, *after;
    non_default(&c);
    before = dump(&c);

    const char *path = tmp_file(text, len);
    ck_assert_int_eq(axd_config_load(&c, path, err, sizeof err), AX_ECONFIG);
    snprintf(want, sizeof want, "%s:%u: ", path, line);
    ck_assert_msg(!strncmp(err, want, strlen(want)), "want prefix '%s', got '%s'", want, err);
    ck_assert_msg(strstr(err, needle) != NULL, "want '%s' in '%s'", needle, err);
    unlink(path);

    if (!memchr(text, 0, len)) {
        ck_assert_int_eq(axd_config_load_string(&c, text, "t.conf", err, sizeof err), AX_ECONFIG);
        snprintf(want, sizeof want, "t.conf:%u: ", line);
        ck_assert_msg(!strncmp(err, want, strlen(want)), "want prefix '%s', got '%s'", want, err);
    }
    after = dump(&c);
    ck_assert_str_eq(before, after);
    free(before);
    free(after);
    axd_config_free(&c);
}

static const struct bad_case {
    const char *text;
    unsigned line;
    const char *needle;
} bad_cases[] = {
    {"[node]\nname = a\nbogus = 1\n", 3, "unknown key \"node.bogus\""},
    {"[metrics]\nlisten = localhost:9464\n", 2, "no host names"},
    {"[metrics]\nlisten = 127.0.0.1\n", 2, "host:port"},
    {"[metrics]\nlisten = 127.0.0.1:70000\n", 2, "port must be 1..65535"},
    {"batch = 1\n", 1, "unknown key \"batch\""},
    {"# c\n[nodes]\n", 2, "unknown section [nodes]"},
    {"[node\n", 1, "unterminated section header"},
    {"[ ]\n", 1, "empty section name"},
    {"[node] x\n", 1, "after section header"},
    {"[runtime]\nbatch 64\n", 2, "missing '='"},
    {"[runtime]\n = 64\n", 2, "empty key"},
    {"[runtime]\n\nbatch = 6x4\n", 3, "not a number"},
    {"[runtime]\nbatch = -1\n", 2, "not a number"},
    {"[runtime]\nbatch =\n", 2, "not a number"},
    {"[runtime]\nbatch = 0\n", 2, "out of range 1..65536"},
    {"[runtime]\nbatch = 65537\n", 2, "out of range 1..65536"},
    {"[runtime]\nbatch = 99999999999999999999999\n", 2, "out of range 1..65536"},
    {"[runtime]\nmailbox_capacity = 0\n", 2, "out of range 1..16777216"},
    {"[runtime]\nmailbox_capacity = 16777217\n", 2, "out of range 1..16777216"},
    {"[runtime]\nask_timeout_ms = 5 s\n", 2, "not a number"},
    {"[client]\nmax_frame = 1023\n", 2, "out of range 1024..67108864 bytes"},
    {"[client]\nmax_frame = 65M\n", 2, "out of range 1024..67108864 bytes"},
    {"[client]\nmax_frame = 1X\n", 2, "not a number"},
    {"[client]\nsocket_mode = 0689\n", 2, "not an octal mode"},
    {"[client]\nsocket_mode = 01777\n", 2, "out of range 0000..0777"},
    {"[client]\nsocket = run/axactord.sock\n", 2, "absolute path"},
    {"[log]\nlevel = loud\n", 2, "error, warn, info or debug"},
    {"[log]\ntarget = syslog\n", 2, "stderr or journal"},
    {"[node]\nname = \"abc\n", 2, "unterminated quoted value"},
    {"[node]\nname = \"abc\\\"\n", 2, "unterminated quoted value"},
    {"[node]\nname = \"a\\n\"\n", 2, "unknown escape"},
    {"[node]\nname = \"a\" b\n", 2, "after closing quote"},
    {"[runtime]\nbatch = 1\n[node]\n[runtime]\nbatch = 2\n", 5, "duplicate key \"runtime.batch\" (first set on line 2)"},
    {"node.name = a\n[node]\nname = b\n", 3, "duplicate key \"node.name\""},
    {"[node]\nname = a@boot-1\n", 2, "'@'"},
    {"[node]\nname = a/b\n", 2, "only A-Z"},
    {"[node]\nname =\n", 2, "1..63"},
    {"[node]\nname = aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\n", 2, "1..63"},
    {"[node]\nname = a\x01z\n", 2, "control character"},
    {"[plugins]\nload = x\x1b[0m\n", 2, "control character"},
};

START_TEST(bad_line_names_its_line_and_leaves_config_unchanged)
{
    expect_bad(bad_cases[_i].text, strlen(bad_cases[_i].text), bad_cases[_i].line, bad_cases[_i].needle);
}
END_TEST

START_TEST(nul_byte_in_file_is_refused)
{
    static const char text[] = "[node]\nname = a\n\0[runtime]\n";
    expect_bad(text, sizeof text - 1, 3, "NUL byte");
}
END_TEST

START_TEST(line_longer_than_4096_is_refused)
{
    char text[8192];
    int n = snprintf(text, sizeof text, "[plugins]\n# ok\nload = ");
    memset(text + n, 'a', 4097 - 7); /* "load = " + this = 4097 bytes */
    strcpy(text + n + 4097 - 7, "\n");
    expect_bad(text, strlen(text), 3, "line longer than 4096");
    /* exactly 4096 is fine */
    text[n + 4096 - 7] = '\n';
    text[n + 4096 - 7 + 1] = 0;
    axd_config c;
    char err[256];
    axd_config_defaults(&c);
    ck_assert_msg(axd_config_load_string(&c, text, "t", err, sizeof err) == 0, "%s", err);
    ck_assert_uint_eq(strlen(c.plugins[0]), 4096 - 7);
    axd_config_free(&c);
}
END_TEST

START_TEST(socket_path_must_fit_sun_path)
{
    char text[256];
    int n = snprintf(text, sizeof text, "[client]\nsocket = /");
    memset(text + n, 's', 107); /* 108 bytes with the '/' */
    strcpy(text + n + 107, "\n");
    expect_bad(text, strlen(text), 2, "1..107 bytes long");
    text[n + 106] = '\n';
    text[n + 107] = 0;
    axd_config c;
    char err[256];
    axd_config_defaults(&c);
    ck_assert_int_eq(axd_config_load_string(&c, text, "t", err, sizeof err), 0);
    ck_assert_uint_eq(strlen(c.socket_path), 107);
    axd_config_free(&c);
}
END_TEST

START_TEST(unreadable_file_says_why)
{
    axd_config c;
    char err[512];
    non_default(&c);
    char *before = dump(&c);
    ck_assert_int_eq(axd_config_load(&c, "/nonexistent/axactord.conf", err, sizeof err), AX_ECONFIG);
    ck_assert_str_eq(err, "/nonexistent/axactord.conf: No such file or directory");
    ck_assert_int_eq(axd_config_load(&c, "/tmp", err, sizeof err), AX_ECONFIG);
    ck_assert_str_eq(err, "/tmp: Is a directory");
    char *after = dump(&c);
    ck_assert_str_eq(before, after);
    free(before);
    free(after);
    axd_config_free(&c);
}
END_TEST

START_TEST(defaults_are_the_documented_values)
{
    axd_config c;
    char err[256];
    ck_assert_int_eq(axd_config_defaults(&c), 0);
    ck_assert_str_eq(c.socket_path, "/run/axactor/axactord.sock");
    ck_assert_uint_eq(c.socket_mode, 0660);
    ck_assert_str_eq(c.socket_group, "");
    ck_assert_uint_eq(c.max_clients, 1024);
    ck_assert_uint_eq(c.max_frame, 1u << 20);
    ck_assert_uint_eq(c.client_outbuf_max, 8u << 20);
    ck_assert_int_eq(c.log_level, AX_LOG_INFO);
    ck_assert_str_eq(c.log_target, "auto");
    ck_assert_uint_eq(c.mailbox_capacity, 1024);
    ck_assert_uint_eq(c.batch, 64);
    ck_assert_uint_eq(c.ask_timeout_ms, 5000);
    ck_assert_uint_eq(c.max_actors, 4194304);
    ck_assert_uint_eq(c.idle_timeout_ms, 300000);
    ck_assert_uint_eq(c.events_buffer, 1024);
    ck_assert_str_eq(c.state_persist, "on_change");
    ck_assert_uint_eq(c.state_max_bytes, 1u << 20);
    ck_assert_str_eq(c.plugin_dir, AX_PLUGINDIR);
    ck_assert_uint_eq(c.n_plugins, 0);
    ck_assert_ptr_null(c.plugins);
    /* the host-name default must itself be a valid node name */
    char *name = strdup(c.node_name);
    ck_assert_int_eq(axd_config_set(&c, "node.name", name, err, sizeof err), 0);
    free(name);
    axd_config_free(&c);
    ck_assert_ptr_null(c.node_name);
    axd_config_free(&c); /* a zeroed struct */
    axd_config_free(NULL);
}
END_TEST

START_TEST(quoting_keeps_spaces_hash_and_escapes)
{
    axd_config c;
    char err[256];
    axd_config_defaults(&c);
    const char *text = "; comment\r\n\n  # indented comment\n[ client ]\r\n"
                       "  socket_group   =   \" a#b \\\"q\\\" \\\\ \"   # trailing comment\r\n"
                       "socket = /run/x.sock # unquoted: '#' starts a comment\n"
                       "[node]\nname=\"n1\"\n";
    ck_assert_msg(axd_config_load_string(&c, text, "q", err, sizeof err) == 0, "%s", err);
    ck_assert_str_eq(c.socket_group, " a#b \"q\" \\ ");
    ck_assert_str_eq(c.socket_path, "/run/x.sock");
    ck_assert_str_eq(c.node_name, "n1");
    axd_config_free(&c);
}
END_TEST

START_TEST(list_key_accumulates)
{
    axd_config c;
    char err[256];
    axd_config_defaults(&c);
    ck_assert_int_eq(axd_config_set(&c, "plugins.load", "a", err, sizeof err), 0);
    ck_assert_int_eq(axd_config_set(&c, "plugins.load", "b", err, sizeof err), 0);
    ck_assert_uint_eq(c.n_plugins, 2);
    ck_assert_str_eq(c.plugins[1], "b");
    /* within a file: lines accumulate, and the file's list replaces the inherited one */
    ck_assert_int_eq(axd_config_load_string(&c, "[plugins]\nload = x\nload = \"y z\"\nload = w\n", "l", err, sizeof err), 0);
    ck_assert_uint_eq(c.n_plugins, 3);
    ck_assert_str_eq(c.plugins[0], "x");
    ck_assert_str_eq(c.plugins[1], "y z");
    ck_assert_str_eq(c.plugins[2], "w");
    /* a file that does not mention the key keeps it; an empty value clears it */
    ck_assert_int_eq(axd_config_load_string(&c, "[runtime]\nbatch = 3\n", "l", err, sizeof err), 0);
    ck_assert_uint_eq(c.n_plugins, 3);
    ck_assert_int_eq(axd_config_load_string(&c, "[plugins]\nload =\n", "l", err, sizeof err), 0);
    ck_assert_uint_eq(c.n_plugins, 0);
    ck_assert_ptr_null(c.plugins);
    axd_config_free(&c);
}
END_TEST

START_TEST(set_overrides_and_refuses_bad_values)
{
    axd_config c;
    char err[256];
    axd_config_defaults(&c);
    ck_assert_int_eq(axd_config_load_string(&c, "[runtime]\nbatch = 10\n", "s", err, sizeof err), 0);
    ck_assert_int_eq(axd_config_set(&c, "runtime.batch", "128", err, sizeof err), 0);
    ck_assert_uint_eq(c.batch, 128);
    ck_assert_int_eq(axd_config_set(&c, "runtime.batch", "128", err, sizeof err), 0); /* no "duplicate" here */
    ck_assert_int_eq(axd_config_set(&c, "log.level", "debug", err, sizeof err), 0);
    ck_assert_int_eq(c.log_level, AX_LOG_DEBUG);
    ck_assert_int_eq(axd_config_set(&c, "node.name", "edge-1.example", err, sizeof err), 0);
    ck_assert_str_eq(c.node_name, "edge-1.example");

    char *before = dump(&c);
    ck_assert_int_eq(axd_config_set(&c, "runtime.batch", "0", err, sizeof err), AX_ECONFIG);
    ck_assert_str_eq(err, "runtime.batch: \"0\" is out of range 1..65536");
    ck_assert_int_eq(axd_config_set(&c, "runtime.nope", "1", err, sizeof err), AX_ECONFIG);
    ck_assert_str_eq(err, "unknown key \"runtime.nope\"");
    ck_assert_int_eq(axd_config_set(&c, "state.persist", "always", err, sizeof err), AX_ECONFIG);
    ck_assert_msg(strstr(err, "state.persist") && strstr(err, "on_change or off"), "%s", err);
    ck_assert_int_eq(axd_config_set(&c, "state.max_bytes", "128M", err, sizeof err), AX_ECONFIG);
    ck_assert_msg(strstr(err, "state.max_bytes"), "%s", err);
    ck_assert_int_eq(axd_config_set(&c, "node.name", "a\nb", err, sizeof err), AX_ECONFIG);
    ck_assert_int_eq(axd_config_set(&c, "node.name", NULL, err, sizeof err), AX_ECONFIG);
    ck_assert_int_eq(axd_config_set(&c, "runtime.batch", "1", NULL, 0), 0); /* err is optional */
    ck_assert_int_eq(axd_config_set(&c, "runtime.batch", "128", NULL, 0), 0);
    char *after = dump(&c);
    ck_assert_str_eq(before, after);
    free(before);
    free(after);
    axd_config_free(&c);
}
END_TEST

START_TEST(sizes_and_durations_take_suffixes)
{
    axd_config c;
    char err[256];
    axd_config_defaults(&c);
    const char *text = "[client]\nmax_frame = 2M\noutbuf_max = 64K\n"
                       "[runtime]\nask_timeout_ms = 2s\nidle_timeout_ms = 1h\nbatch = 0064\n";
    ck_assert_msg(axd_config_load_string(&c, text, "u", err, sizeof err) == 0, "%s", err);
    ck_assert_uint_eq(c.max_frame, 2u << 20);
    ck_assert_uint_eq(c.client_outbuf_max, 65536);
    ck_assert_uint_eq(c.ask_timeout_ms, 2000);
    ck_assert_uint_eq(c.idle_timeout_ms, 3600000);
    ck_assert_uint_eq(c.batch, 64);
    ck_assert_int_eq(axd_config_set(&c, "client.max_frame", "64MiB", err, sizeof err), 0);
    ck_assert_uint_eq(c.max_frame, 64u << 20);
    ck_assert_int_eq(axd_config_set(&c, "runtime.idle_timeout_ms", "0", err, sizeof err), 0);
    ck_assert_int_eq(axd_config_set(&c, "runtime.idle_timeout_ms", "31d", err, sizeof err), AX_ECONFIG);
    axd_config_free(&c);
}
END_TEST

START_TEST(booleans_accept_the_usual_words)
{
    static const char *const yes[] = {"true", "yes", "on", "1"}, *const no[] = {"false", "no", "off", "0"};
    int b;
    for (int i = 0; i < 4; i++) {
        b = -1;
        ck_assert_int_eq(axd_config_parse_bool(yes[i], &b), 0);
        ck_assert_int_eq(b, 1);
        ck_assert_int_eq(axd_config_parse_bool(no[i], &b), 0);
        ck_assert_int_eq(b, 0);
    }
    b = 5;
    ck_assert_int_eq(axd_config_parse_bool("True", &b), AX_ECONFIG);
    ck_assert_int_eq(axd_config_parse_bool("2", &b), AX_ECONFIG);
    ck_assert_int_eq(axd_config_parse_bool("", &b), AX_ECONFIG);
    ck_assert_int_eq(axd_config_parse_bool(NULL, &b), AX_ECONFIG);
    ck_assert_int_eq(b, 5);
}
END_TEST

static char *shipped_conf_path(void)
{
    static char path[4096];
    const char *src = getenv("AX_SOURCE_DIR");
    ck_assert_msg(src != NULL, "AX_SOURCE_DIR is not set (run through meson test)");
    snprintf(path, sizeof path, "%s/conf/axactord.conf", src);
    return path;
}

/* Every key is documented as "#key = default" (no space after '#') under its section, and
 * that default is the table's (node.name and plugins.dir depend on the host and the build). */
START_TEST(shipped_conf_documents_every_key_with_its_default)
{
    char *text = read_all(shipped_conf_path()), *save = NULL, section[64] = "", err[256];
    size_t n = axd_config_key_count();
    int *found = calloc(n, sizeof *found);
    axd_config def, doc;
    axd_config_defaults(&def);
    axd_config_defaults(&doc);

    for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        char key[128], full[200];
        int off = 0;
        if (sscanf(line, "[%63[a-z_]]", section) == 1)
            continue;
        if (sscanf(line, "#%127[a-z_] =%n", key, &off) != 1 || !off)
            continue;
        const char *value = line + off + (line[off] == ' ');
        snprintf(full, sizeof full, "%s.%s", section, key);
        size_t i = 0;
        while (i < n && strcmp(axd_config_key_name(i), full))
            i++;
        ck_assert_msg(i < n, "conf documents unknown key %s", full);
        found[i] = 1;
        if (strcmp(full, "node.name") && strcmp(full, "plugins.dir"))
            ck_assert_msg(axd_config_set(&doc, full, value, err, sizeof err) == 0, "%s", err);
    }
    for (size_t i = 0; i < n; i++)
        ck_assert_msg(found[i], "%s is not documented in conf/axactord.conf", axd_config_key_name(i));
    char *a = dump(&def), *b = dump(&doc);
    ck_assert_str_eq(a, b);
    free(a);
    free(b);
    free(found);
    free(text);
    axd_config_free(&def);
    axd_config_free(&doc);
}
END_TEST

START_TEST(shipped_conf_parses_cleanly)
{
    axd_config c, d;
    char err[512];
    axd_config_defaults(&c);
    axd_config_defaults(&d);
    ck_assert_msg(axd_config_load(&c, shipped_conf_path(), err, sizeof err) == 0, "%s", err);
    char *a = dump(&c), *b = dump(&d);
    ck_assert_str_eq(a, b);
    free(a);
    free(b);
    axd_config_free(&c);
    axd_config_free(&d);
}
END_TEST

START_TEST(print_then_load_round_trips)
{
    axd_config c, d;
    char err[256];
    axd_config_defaults(&c);
    ck_assert_int_eq(axd_config_set(&c, "client.socket_group", " we\"ird#\\ ", err, sizeof err), 0);
    ck_assert_int_eq(axd_config_set(&c, "client.socket_mode", "0600", err, sizeof err), 0);
    ck_assert_int_eq(axd_config_set(&c, "log.level", "debug", err, sizeof err), 0);
    ck_assert_int_eq(axd_config_set(&c, "log.target", "journal", err, sizeof err), 0);
    ck_assert_int_eq(axd_config_set(&c, "runtime.idle_timeout_ms", "0", err, sizeof err), 0);
    ck_assert_int_eq(axd_config_set(&c, "plugins.load", "counter", err, sizeof err), 0);
    ck_assert_int_eq(axd_config_set(&c, "plugins.load", "/opt/x y.so", err, sizeof err), 0);
    char *a = dump(&c);

    /* load over a config that differs everywhere, so every value must come from the text */
    axd_config_defaults(&d);
    ck_assert_int_eq(axd_config_set(&d, "plugins.load", "other", err, sizeof err), 0);
    ck_assert_int_eq(axd_config_set(&d, "runtime.batch", "9", err, sizeof err), 0);
    ck_assert_msg(axd_config_load_string(&d, a, "printed", err, sizeof err) == 0, "%s", err);
    char *b = dump(&d);
    ck_assert_str_eq(a, b);
    ck_assert_str_eq(d.socket_group, " we\"ird#\\ ");
    ck_assert_uint_eq(d.n_plugins, 2);
    free(a);
    free(b);

    /* and the defaults, whose list is empty */
    axd_config_free(&c);
    axd_config_free(&d);
    axd_config_defaults(&c);
    axd_config_defaults(&d);
    ck_assert_int_eq(axd_config_set(&d, "plugins.load", "other", err, sizeof err), 0);
    a = dump(&c);
    ck_assert_msg(axd_config_load_string(&d, a, "printed", err, sizeof err) == 0, "%s", err);
    b = dump(&d);
    ck_assert_str_eq(a, b);
    free(a);
    free(b);
    axd_config_free(&c);
    axd_config_free(&d);
}
END_TEST

START_TEST(key_table_enumerates)
{
    size_t n = axd_config_key_count();
    ck_assert_uint_ge(n, 17);
    for (size_t i = 0; i < n; i++)
        ck_assert_ptr_nonnull(strchr(axd_config_key_name(i), '.'));
    ck_assert_ptr_null(axd_config_key_name(n));
}
END_TEST

/* ---- log ---- */

/* Run axd_log_write with stderr redirected; returns what it wrote (caller frees). */
static char *capture_log(int level, const char *subsys, const char *msg)
{
    int fds[2], saved = dup(2);
    ck_assert_int_eq(pipe(fds), 0);
    dup2(fds[1], 2);
    close(fds[1]);
    axd_log(level, subsys, "%s", msg);
    dup2(saved, 2);
    close(saved);
    char *buf = calloc(1, 8192);
    ssize_t n = read(fds[0], buf, 8191); /* one line = one write, so one read gets it */
    close(fds[0]);
    if (n <= 0)
        buf[0] = 0;
    return buf;
}

START_TEST(log_stderr_line_has_utc_timestamp_level_and_subsystem)
{
    axd_log_set_target("stderr");
    axd_log_set_level(AX_LOG_INFO);
    char *s = capture_log(AX_LOG_WARN, "config", "hello 1");
    int y, mo, d, h, mi, sec, ms, n = 0;
    ck_assert_int_eq(sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d.%3dZ %n", &y, &mo, &d, &h, &mi, &sec, &ms, &n), 7);
    ck_assert_int_eq(n, 25);
    ck_assert_str_eq(s + n, "WARN config: hello 1\n");
    free(s);
}
END_TEST

START_TEST(log_journal_line_has_priority_prefix)
{
    static const struct {
        int level;
        const char *want;
    } cases[] = {{AX_LOG_ERROR, "<3>x: m\n"}, {AX_LOG_WARN, "<4>x: m\n"}, {AX_LOG_INFO, "<6>x: m\n"},
                 {AX_LOG_DEBUG, "<7>x: m\n"}};
    axd_log_set_target("journal");
    axd_log_set_level(AX_LOG_DEBUG);
    for (size_t i = 0; i < 4; i++) {
        char *s = capture_log(cases[i].level, "x", "m");
        ck_assert_str_eq(s, cases[i].want);
        free(s);
    }
}
END_TEST

/* log.target = auto: journal when $JOURNAL_STREAM is the device:inode of our stderr. */
START_TEST(log_target_auto_follows_journal_stream)
{
    int fds[2];
    ck_assert_int_eq(pipe(fds), 0);
    int saved = dup(2);
    dup2(fds[1], 2);
    struct stat st;
    ck_assert_int_eq(fstat(2, &st), 0);
    char v[64];
    snprintf(v, sizeof v, "%llu:%llu", (unsigned long long)st.st_dev, (unsigned long long)st.st_ino);
    setenv("JOURNAL_STREAM", v, 1);
    axd_log_set_target("auto");
    const char *under_journal = axd_log_target_name();
    snprintf(v, sizeof v, "%llu:%llu", (unsigned long long)st.st_dev, (unsigned long long)st.st_ino + 1);
    setenv("JOURNAL_STREAM", v, 1); /* stderr redirected elsewhere: another stream */
    axd_log_set_target("auto");
    const char *elsewhere = axd_log_target_name();
    unsetenv("JOURNAL_STREAM");
    axd_log_set_target("auto");
    const char *no_env = axd_log_target_name();
    setenv("JOURNAL_STREAM", "garbage", 1);
    axd_log_set_target("auto");
    const char *bad_env = axd_log_target_name();
    unsetenv("JOURNAL_STREAM");
    dup2(saved, 2);
    close(saved);
    close(fds[0]);
    close(fds[1]);
    ck_assert_str_eq(under_journal, "journal");
    ck_assert_str_eq(elsewhere, "stderr");
    ck_assert_str_eq(no_env, "stderr");
    ck_assert_str_eq(bad_env, "stderr");
    axd_log_set_target("journal"); /* explicit settings win */
    ck_assert_str_eq(axd_log_target_name(), "journal");
    axd_log_set_target("stderr");
    ck_assert_str_eq(axd_log_target_name(), "stderr");
}
END_TEST

START_TEST(log_drops_below_threshold_and_keeps_errno)
{
    axd_log_set_target("journal");
    axd_log_set_level(AX_LOG_WARN);
    char *s = capture_log(AX_LOG_INFO, "x", "dropped");
    ck_assert_str_eq(s, "");
    free(s);
    errno = ENOENT;
    s = capture_log(AX_LOG_ERROR, "x", "kept");
    ck_assert_int_eq(errno, ENOENT);
    ck_assert_str_eq(s, "<3>x: kept\n");
    free(s);
    ck_assert_int_eq(axd_log_level_parse("warn"), AX_LOG_WARN);
    ck_assert_int_eq(axd_log_level_parse("loud"), -1);
    ck_assert_str_eq(axd_log_level_name(AX_LOG_DEBUG), "debug");
}
END_TEST

START_TEST(log_replaces_control_characters)
{
    axd_log_set_target("journal");
    axd_log_set_level(AX_LOG_INFO);
    char *s = capture_log(AX_LOG_INFO, "cli\nent", "a\nb\rc\td\x1b[31me\x7f\xc3\xa9");
    ck_assert_str_eq(s, "<6>cli?ent: a?b?c?d?[31me?\xc3\xa9\n");
    free(s);
}
END_TEST

START_TEST(log_truncates_long_lines_with_ellipsis)
{
    char *msg = malloc(10000);
    memset(msg, 'x', 9999);
    msg[9999] = 0;
    axd_log_set_target("journal");
    axd_log_set_level(AX_LOG_INFO);
    char *s = capture_log(AX_LOG_INFO, "x", msg);
    size_t len = strlen(s);
    ck_assert_uint_gt(len, 1000);
    ck_assert_uint_lt(len, 4097);
    ck_assert_str_eq(s + len - 4, "...\n");
    ck_assert_ptr_null(memchr(s, '\n', len - 1));
    free(s);
    free(msg);
}
END_TEST

static Suite *config_suite(void)
{
    Suite *s = suite_create("config");
    TCase *tc = tcase_create("config");
    tcase_add_loop_test(tc, bad_line_names_its_line_and_leaves_config_unchanged, 0,
                        (int)(sizeof bad_cases / sizeof bad_cases[0]));
    tcase_add_test(tc, nul_byte_in_file_is_refused);
    tcase_add_test(tc, line_longer_than_4096_is_refused);
    tcase_add_test(tc, socket_path_must_fit_sun_path);
    tcase_add_test(tc, unreadable_file_says_why);
    tcase_add_test(tc, defaults_are_the_documented_values);
    tcase_add_test(tc, quoting_keeps_spaces_hash_and_escapes);
    tcase_add_test(tc, list_key_accumulates);
    tcase_add_test(tc, set_overrides_and_refuses_bad_values);
    tcase_add_test(tc, sizes_and_durations_take_suffixes);
    tcase_add_test(tc, booleans_accept_the_usual_words);
    tcase_add_test(tc, shipped_conf_documents_every_key_with_its_default);
    tcase_add_test(tc, shipped_conf_parses_cleanly);
    tcase_add_test(tc, print_then_load_round_trips);
    tcase_add_test(tc, key_table_enumerates);
    suite_add_tcase(s, tc);
    TCase *tl = tcase_create("log");
    tcase_add_test(tl, log_stderr_line_has_utc_timestamp_level_and_subsystem);
    tcase_add_test(tl, log_journal_line_has_priority_prefix);
    tcase_add_test(tl, log_target_auto_follows_journal_stream);
    tcase_add_test(tl, log_drops_below_threshold_and_keeps_errno);
    tcase_add_test(tl, log_replaces_control_characters);
    tcase_add_test(tl, log_truncates_long_lines_with_ellipsis);
    suite_add_tcase(s, tl);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(config_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
