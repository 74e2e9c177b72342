/* Keeps proto/PROTOCOL.md honest: parses its Constants, Frame types and Error codes
 * tables and checks, both ways, that they list exactly the values of proto/frame.h and
 * include/axactor/errors.h (the HAProxy peers doc drifted from its code; ours cannot). */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "axactor/errors.h"
#include "frame.h"

typedef struct {
    const char *name;
    long long value;
    int seen;
} entry;

#define E(x) {#x, (long long)(x), 0}
static entry constants[] = {
    E(AX_FRAME_MAGIC), E(AX_PROTO_VERSION), E(AX_PROTO_VERSION_MIN), E(AX_FRAME_HDR_SIZE),
    E(AX_FRAME_MAX_DEFAULT), E(AX_FRAME_MAX_MIN), E(AX_FRAME_MAX_LIMIT), E(AX_STR_MAX),
    E(AX_NAME_MAX), E(AX_KEY_MAX), E(AX_CONFIG_MAX), E(AX_PATH_MAX), E(AX_F_NOREPLY), E(AX_F_DIRECT),
    E(AX_F_KNOWN_MASK), E(AX_TGT_REF), E(AX_TGT_NAME), E(AX_TGT_KEY), E(AX_DRAIN_STAY), E(AX_DRAIN_TIMEOUT_MAX),
};
#undef E

/* Every enum ax_frame_type value, with the name the doc uses (without AX_T_). */
#define T(x) {#x, AX_T_##x, 0}
static entry types[] = {
    T(HELLO), T(HELLO_OK), T(ERROR), T(OK), T(SPAWN), T(REF), T(TELL), T(ASK), T(REPLY),
    T(STOP), T(RESOLVE), T(EXIT), T(STATUS), T(ACTORS), T(PLUGINS), T(PLUGIN_LOAD), T(PLUGIN_UNLOAD), T(NODES), T(SHARDS), T(LOG_LEVEL), T(DRAIN), T(UNDRAIN), T(CLUSTER_STATUS),
    T(JSON), T(SUBSCRIBE), T(UNSUBSCRIBE), T(MONITOR), T(DEMONITOR), T(EVENT),
};
#undef T

/* Every enum ax_err value, with its name as ax_errname gives it. */
#define R(x) {#x, AX_##x, 0}
static entry errs[] = {
    R(OK), R(ENOMEM), R(EINVAL), R(EFULL), R(ENOPROC), R(ETIMEDOUT), R(EPROTO), R(ETOOBIG),
    R(ENOTYPE), R(ENOMSG), R(EEXIST), R(EABI), R(EIO), R(ECONN), R(EPERM), R(ECONFIG),
    R(ENOTFOUND), R(ESTALE), R(EFAILED), R(EVERSION), R(EAUTH), R(ENOTSUP), R(ECANCELED),
    R(ENOCONN), R(EBUSY),
};
#undef R

#define N(a) (sizeof(a) / sizeof((a)[0]))

static char *doc;

/* Reads $AX_SOURCE_DIR/rel into a NUL-terminated heap string. */
static char *slurp(const char *rel)
{
    const char *src = getenv("AX_SOURCE_DIR");
    char path[4096], *buf;
    FILE *f;
    long n;
    snprintf(path, sizeof path, "%s/%s", src ? src : ".", rel);
    f = fopen(path, "rb");
    ck_assert_msg(f != NULL, "cannot open %s: %s (set AX_SOURCE_DIR)", path, strerror(errno));
    fseek(f, 0, SEEK_END);
    n = ftell(f);
    rewind(f);
    buf = calloc(1, (size_t)n + 1);
    ck_assert_ptr_nonnull(buf);
    ck_assert_uint_eq(fread(buf, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    return buf;
}

static void load_doc(void) { doc = slurp("proto/PROTOCOL.md"); }

static void free_doc(void)
{
    free(doc);
    doc = NULL;
}

/* Split a table row into trimmed cells (modifies line). Returns the number of cells. */
static int cells(char *line, char **out, int max)
{
    int n = 0;
    char *p = line + 1, *bar;
    while (n < max && (bar = strchr(p, '|'))) {
        char *e = bar;
        *bar = 0;
        while (*p == ' ')
            p++;
        while (e > p && e[-1] == ' ')
            *--e = 0;
        out[n++] = p;
        p = bar + 1;
    }
    return n;
}

/* Calls fn(cell0, cell1, cell2) for every data row of the tables in section "## sec". */
static int for_rows(const char *sec, void (*fn)(char **c, int n))
{
    char *copy = strdup(doc), *line, *save = NULL, *c[8];
    int in = 0, rows = 0, n;
    ck_assert_ptr_nonnull(copy);
    for (line = strtok_r(copy, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        if (!strncmp(line, "## ", 3))
            in = !strcmp(line + 3, sec);
        if (!in || line[0] != '|')
            continue;
        n = cells(line, c, 8);
        if (n < 2 || !strncmp(c[0], "---", 3) || !strcmp(c[1], "name") ||
            !strcmp(c[1], "value"))
            continue; /* header and separator rows */
        fn(c, n);
        rows++;
    }
    free(copy);
    return rows;
}

static entry *find(entry *t, size_t n, const char *name)
{
    size_t i;
    for (i = 0; i < n; i++)
        if (!strcmp(t[i].name, name))
            return &t[i];
    return NULL;
}

static long long parse_num(const char *s)
{
    char *end;
    long long v;
    errno = 0;
    v = strtoll(s, &end, 0);
    ck_assert_msg(!errno && end != s && *end == 0, "'%s' is not a number", s);
    return v;
}

static void each_unseen(entry *t, size_t n, const char *what)
{
    size_t i;
    for (i = 0; i < n; i++)
        ck_assert_msg(t[i].seen == 1, "%s %s appears %d times in PROTOCOL.md (want 1)", what,
                      t[i].name, t[i].seen);
}

static void constant_row(char **c, int n)
{
    entry *e = find(constants, N(constants), c[0]);
    ck_assert_msg(e != NULL, "PROTOCOL.md constant %s is not in frame.h (or this test)", c[0]);
    ck_assert_msg(parse_num(c[1]) == e->value, "%s: doc says %s, frame.h says %lld", c[0], c[1],
                  e->value);
    e->seen++;
}

START_TEST(constants_table_matches_frame_h)
{
    ck_assert_int_gt(for_rows("Constants", constant_row), 0);
    each_unseen(constants, N(constants), "constant");
}
END_TEST

static void type_row(char **c, int n)
{
    long long v = parse_num(c[0]);
    entry *e = find(types, N(types), c[1]);
    ck_assert_msg(strlen(c[0]) == 4 && !strncmp(c[0], "0x", 2), "type code %s: want 0xNN", c[0]);
    ck_assert_msg(e != NULL, "PROTOCOL.md frame type %s is not in frame.h", c[1]);
    ck_assert_msg(v == e->value, "%s: doc says %s, frame.h says 0x%02llx", c[1], c[0], e->value);
    ck_assert(ax_frame_type_known((uint8_t)v));
    ck_assert_str_eq(ax_frame_type_name((uint8_t)v), c[1]);
    ck_assert_msg(n >= 4 && c[3][0], "%s: body column is empty", c[1]);
    e->seen++;
}

START_TEST(frame_types_table_matches_frame_h)
{
    int t, known = 0;
    ck_assert_int_gt(for_rows("Frame types", type_row), 0);
    each_unseen(types, N(types), "frame type");
    for (t = 0; t < 256; t++)
        known += ax_frame_type_known((uint8_t)t);
    ck_assert_msg((size_t)known == N(types), "frame.h knows %d types, this test lists %zu", known,
                  N(types));
}
END_TEST

static void err_row(char **c, int n)
{
    long long v = parse_num(c[0]);
    entry *e = find(errs, N(errs), c[1]);
    ck_assert_msg(e != NULL, "PROTOCOL.md error %s is not in errors.h", c[1]);
    ck_assert_msg(v == e->value, "%s: doc says %s, errors.h says %lld", c[1], c[0], e->value);
    ck_assert_str_eq(ax_errname((int)v), c[1]);
    ck_assert_msg(n >= 3 && c[2][0], "%s: meaning column is empty", c[1]);
    e->seen++;
}

START_TEST(error_codes_table_matches_errors_h)
{
    size_t i;
    ck_assert_int_gt(for_rows("Error codes", err_row), 0);
    each_unseen(errs, N(errs), "error code");
    /* the test's own list must cover the enum: contiguous 0..AX_ERR_MIN */
    ck_assert_uint_eq(N(errs), (size_t)(1 - AX_ERR_MIN));
    for (i = 0; i < N(errs); i++)
        ck_assert_int_eq(errs[i].value, -(long long)i);
}
END_TEST

START_TEST(peer_range_is_reserved_in_doc)
{
    const char *p = strstr(doc, "\n## Peer protocol\n");
    int t;
    ck_assert_msg(p != NULL, "PROTOCOL.md lacks the 'Peer protocol' section");
    ck_assert_ptr_nonnull(strstr(p, "0x40–0x7f"));
    for (t = 0x40; t <= 0x7f; t++)
        ck_assert_msg(!ax_frame_type_known((uint8_t)t), "type 0x%02x is in the peer range", t);
}
END_TEST

static int ident_char(char c) { return c == '_' || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'); }

/* Every identifier of text that follows `lead`, starts with AX_ and is followed (after
 * spaces) by `after` must be in table t (compared without its first `strip` chars):
 * catches a header that grew without this test. */
static void header_names_in(const char *text, const char *lead, const char *after, entry *t,
                            size_t n, size_t strip)
{
    const char *p = text;
    while (*p && (p = strstr(p, lead))) {
        char id[64];
        size_t l = 0;
        const char *q;
        p += strlen(lead);
        if (strncmp(p, "AX_", 3) || (!*lead && p > text && ident_char(p[-1]))) {
            p += *p != 0;
            continue;
        }
        while (l < sizeof id - 1 && ident_char(p[l]))
            l++;
        memcpy(id, p, l);
        id[l] = 0;
        for (q = p + l; *q == ' '; q++)
            ;
        if (!strncmp(q, after, strlen(after)) && strlen(id) > strip &&
            strcmp(id, "AX_PROTO_FRAME_H") && strcmp(id, "AX_ERR_MIN"))
            ck_assert_msg(find(t, n, id + strip) != NULL,
                          "%s from the header is not in test_proto_spec.c's tables", id);
        p += l;
    }
}

/* A copy of the enum of text that starts at `start`, up to its closing brace. */
static char *enum_body(const char *text, const char *start)
{
    const char *p = strstr(text, start), *e = p ? strstr(p, "};") : NULL;
    ck_assert_msg(e != NULL, "no '%s' in the header", start);
    return strndup(p, (size_t)(e - p));
}

START_TEST(test_tables_cover_every_header_value)
{
    char *frame_h = slurp("proto/frame.h"), *errors_h = slurp("include/axactor/errors.h");
    char *types_enum = enum_body(frame_h, "enum ax_frame_type"),
         *tgt_enum = enum_body(frame_h, "enum ax_target_kind"),
         *err_enum = enum_body(errors_h, "enum ax_err");
    header_names_in(frame_h, "#define ", "", constants, N(constants), 0);
    header_names_in(tgt_enum, "", "=", constants, N(constants), 0);
    header_names_in(types_enum, "", "=", types, N(types), 5);
    header_names_in(err_enum, "", "=", errs, N(errs), 3);
    free(types_enum);
    free(tgt_enum);
    free(err_enum);
    free(frame_h);
    free(errors_h);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("proto_spec");
    TCase *tc = tcase_create("doc");
    SRunner *sr;
    int failed;
    tcase_add_checked_fixture(tc, load_doc, free_doc);
    tcase_add_test(tc, constants_table_matches_frame_h);
    tcase_add_test(tc, frame_types_table_matches_frame_h);
    tcase_add_test(tc, error_codes_table_matches_errors_h);
    tcase_add_test(tc, peer_range_is_reserved_in_doc);
    tcase_add_test(tc, test_tables_cover_every_header_value);
    suite_add_tcase(s, tc);
    sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
