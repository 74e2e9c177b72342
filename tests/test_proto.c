/* Unit tests of the frame codec (proto/frame.c), the error tables (proto/errors.c) and
 * ax_msg_i64: round trips, every malformed header, truncated and trailing bodies, and
 * name/key validation. Bodies are copied into exact-size heap blocks so ASan sees overreads. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "axactor/errors.h"
#include "axactor/plugin.h"
#include "frame.h"

/* after plugin.h: check.h defines a `fail` macro that would rewrite ax_api's member */
#include <check.h>

#if defined(__has_feature)
#define AX_HAS_ASAN __has_feature(address_sanitizer)
#else
#define AX_HAS_ASAN 0
#endif

/* A heap copy of the buffer's bytes from off, exactly n bytes long. */
static uint8_t *dup_exact(const uint8_t *p, size_t n)
{
    uint8_t *q = malloc(n ? n : 1);
    ck_assert_ptr_nonnull(q);
    if (n)
        memcpy(q, p, n);
    return q;
}

static void valid_hdr(uint8_t out[AX_FRAME_HDR_SIZE], uint8_t type, uint16_t flags, uint32_t body)
{
    ax_frame_hdr h = {AX_PROTO_VERSION, type, flags, 42, body};
    ax_frame_hdr_encode(&h, out);
}

/* Expect decode to fail with rc and a why containing sub; hdr must stay untouched. */
static void expect_hdr_error(const uint8_t *p, uint32_t max_body, int rc, const char *sub)
{
    ax_frame_hdr h;
    const char *why = NULL;
    memset(&h, 0xa5, sizeof h);
    ck_assert_int_eq(ax_frame_hdr_decode(p, AX_FRAME_HDR_SIZE, max_body, &h, &why), rc);
    ck_assert_ptr_nonnull(why);
    ck_assert_msg(strstr(why, sub), "why '%s' lacks '%s'", why, sub);
    ck_assert_int_eq(h.type, 0xa5);
    ck_assert_uint_eq(h.req_id, 0xa5a5a5a5u);
}

START_TEST(header_round_trips_all_fields)
{
    uint8_t b[AX_FRAME_HDR_SIZE];
    ax_frame_hdr in = {AX_PROTO_VERSION, AX_T_TELL, AX_F_NOREPLY, 0xdeadbeefu, 1234}, out;
    ax_frame_hdr_encode(&in, b);
    ck_assert_int_eq(b[0], 0x41);
    ck_assert_int_eq(b[1], 0x58);
    ck_assert_int_eq(b[6] | b[7], 0);
    ck_assert_int_eq(b[8], 0xde); /* big-endian */
    ck_assert_int_eq(ax_frame_hdr_decode(b, sizeof b, AX_FRAME_MAX_DEFAULT, &out, NULL), 0);
    ck_assert_int_eq(out.version, in.version);
    ck_assert_int_eq(out.type, in.type);
    ck_assert_int_eq(out.flags, in.flags);
    ck_assert_uint_eq(out.req_id, in.req_id);
    ck_assert_uint_eq(out.body_len, in.body_len);
}
END_TEST

START_TEST(short_header_asks_for_more_bytes)
{
    uint8_t b[AX_FRAME_HDR_SIZE];
    ax_frame_hdr h;
    size_t n;
    valid_hdr(b, AX_T_OK, 0, 0);
    for (n = 0; n < AX_FRAME_HDR_SIZE; n++) {
        uint8_t *q = dup_exact(b, n);
        ck_assert_int_eq(ax_frame_hdr_decode(q, n, AX_FRAME_MAX_DEFAULT, &h, NULL), 1);
        free(q);
    }
}
END_TEST

START_TEST(header_with_bad_magic_is_rejected)
{
    uint8_t b[AX_FRAME_HDR_SIZE];
    valid_hdr(b, AX_T_OK, 0, 0);
    b[0] = 'G';
    expect_hdr_error(b, AX_FRAME_MAX_DEFAULT, AX_EPROTO, "magic");
}
END_TEST

START_TEST(header_with_unsupported_version_is_rejected)
{
    uint8_t b[AX_FRAME_HDR_SIZE];
    valid_hdr(b, AX_T_OK, 0, 0);
    b[2] = 0;
    expect_hdr_error(b, AX_FRAME_MAX_DEFAULT, AX_EPROTO, "version");
    b[2] = AX_PROTO_VERSION + 1;
    expect_hdr_error(b, AX_FRAME_MAX_DEFAULT, AX_EPROTO, "version");
}
END_TEST

START_TEST(header_with_unknown_type_is_rejected)
{
    static const uint8_t bad[] = {0x00, 0x05, 0x0f, 0x18, 0x31, 0x3f, 0x40, 0x7f, 0x80, 0xff};
    uint8_t b[AX_FRAME_HDR_SIZE];
    size_t i;
    for (i = 0; i < sizeof bad; i++) {
        valid_hdr(b, bad[i], 0, 0);
        expect_hdr_error(b, AX_FRAME_MAX_DEFAULT, AX_EPROTO, "type");
    }
}
END_TEST

START_TEST(header_with_unknown_flags_is_rejected)
{
    uint8_t b[AX_FRAME_HDR_SIZE];
    valid_hdr(b, AX_T_TELL, 0x0004, 0);
    expect_hdr_error(b, AX_FRAME_MAX_DEFAULT, AX_EPROTO, "flags");
    valid_hdr(b, AX_T_STATUS, AX_F_DIRECT, 0);
    expect_hdr_error(b, AX_FRAME_MAX_DEFAULT, AX_EPROTO, "DIRECT");
    valid_hdr(b, AX_T_TELL, 0x8001, 0);
    expect_hdr_error(b, AX_FRAME_MAX_DEFAULT, AX_EPROTO, "flags");
}
END_TEST

START_TEST(noreply_flag_outside_tell_is_rejected)
{
    uint8_t b[AX_FRAME_HDR_SIZE];
    valid_hdr(b, AX_T_ASK, AX_F_NOREPLY, 0);
    expect_hdr_error(b, AX_FRAME_MAX_DEFAULT, AX_EPROTO, "NOREPLY");
}
END_TEST

START_TEST(header_with_nonzero_reserved_is_rejected)
{
    uint8_t b[AX_FRAME_HDR_SIZE];
    valid_hdr(b, AX_T_OK, 0, 0);
    b[7] = 1;
    expect_hdr_error(b, AX_FRAME_MAX_DEFAULT, AX_EPROTO, "reserved");
    b[7] = 0;
    b[6] = 0x80;
    expect_hdr_error(b, AX_FRAME_MAX_DEFAULT, AX_EPROTO, "reserved");
}
END_TEST

START_TEST(header_with_oversize_body_is_rejected)
{
    uint8_t b[AX_FRAME_HDR_SIZE];
    ax_frame_hdr h;
    valid_hdr(b, AX_T_REPLY, 0, 1025);
    expect_hdr_error(b, 1024, AX_ETOOBIG, "max_frame");
    valid_hdr(b, AX_T_REPLY, 0, UINT32_MAX);
    expect_hdr_error(b, AX_FRAME_MAX_LIMIT, AX_ETOOBIG, "max_frame");
    valid_hdr(b, AX_T_REPLY, 0, 1024);
    ck_assert_int_eq(ax_frame_hdr_decode(b, sizeof b, 1024, &h, NULL), 0);
}
END_TEST

START_TEST(every_client_type_is_known_and_named)
{
    static const uint8_t types[] = {AX_T_HELLO, AX_T_HELLO_OK, AX_T_ERROR, AX_T_OK, AX_T_SPAWN,
                                    AX_T_REF, AX_T_TELL, AX_T_ASK, AX_T_REPLY, AX_T_STOP,
                                    AX_T_RESOLVE, AX_T_EXIT, AX_T_STATUS, AX_T_ACTORS, AX_T_PLUGINS,
                                    AX_T_PLUGIN_LOAD, AX_T_PLUGIN_UNLOAD, AX_T_NODES, AX_T_SHARDS, AX_T_JSON,
                                    AX_T_SUBSCRIBE, AX_T_UNSUBSCRIBE, AX_T_MONITOR, AX_T_DEMONITOR,
                                    AX_T_LOG_LEVEL, AX_T_DRAIN, AX_T_UNDRAIN, AX_T_CLUSTER_STATUS, AX_T_EVENT};
    size_t i;
    int n = 0, t;
    for (i = 0; i < sizeof types; i++) {
        ck_assert(ax_frame_type_known(types[i]));
        ck_assert_str_ne(ax_frame_type_name(types[i]), "?");
    }
    for (t = 0; t < 256; t++)
        n += ax_frame_type_known((uint8_t)t);
    ck_assert_int_eq(n, (int)sizeof types);
    ck_assert_str_eq(ax_frame_type_name(AX_T_TELL), "TELL");
    ck_assert_str_eq(ax_frame_type_name(0x40), "?");
}
END_TEST

START_TEST(frame_end_fills_body_len)
{
    ax_wbuf b;
    ax_frame_hdr h;
    size_t s;
    ax_wbuf_init(&b);
    s = ax_frame_begin(&b, AX_T_REPLY, 0, 7);
    ax_wbuf_blob(&b, "hello", 5);
    ck_assert_int_eq(ax_frame_end(&b, s, AX_FRAME_MAX_DEFAULT), 0);
    ck_assert_uint_eq(b.len, AX_FRAME_HDR_SIZE + 9);
    ck_assert_int_eq(ax_frame_hdr_decode(b.data, b.len, AX_FRAME_MAX_DEFAULT, &h, NULL), 0);
    ck_assert_uint_eq(h.body_len, 9);
    ck_assert_uint_eq(h.req_id, 7);
    ck_assert_int_eq(ax_body_validate(h.type, b.data + AX_FRAME_HDR_SIZE, h.body_len, NULL), 0);
    ax_wbuf_free(&b);
    ax_wbuf_free(&b); /* a freed buffer is accepted */
}
END_TEST

START_TEST(oversize_frame_is_removed_by_frame_end)
{
    ax_wbuf b;
    size_t s, before;
    char big[2000];
    memset(big, 'x', sizeof big);
    ax_wbuf_init(&b);
    s = ax_frame_begin(&b, AX_T_OK, 0, 1);
    ck_assert_int_eq(ax_frame_end(&b, s, 1024), 0);
    before = b.len;
    s = ax_frame_begin(&b, AX_T_REPLY, 0, 2);
    ax_wbuf_blob(&b, big, sizeof big);
    ck_assert_int_eq(ax_frame_end(&b, s, 1024), AX_ETOOBIG);
    ck_assert_uint_eq(b.len, before);
    ck_assert_int_eq(b.err, 0);
    /* the buffer stays usable for the ERROR that replaces the frame */
    s = ax_frame_begin(&b, AX_T_ERROR, 0, 2);
    ax_body_error_put(&b, AX_ETOOBIG, "reply too big");
    ck_assert_int_eq(ax_frame_end(&b, s, 1024), 0);
    ax_wbuf_free(&b);
}
END_TEST

START_TEST(overlong_str_fails_the_frame_and_keeps_earlier_frames)
{
    ax_wbuf b;
    size_t s, before;
    char *big = calloc(1, AX_STR_MAX + 1);
    ck_assert_ptr_nonnull(big);
    ax_wbuf_init(&b);
    s = ax_frame_begin(&b, AX_T_OK, 0, 1);
    ck_assert_int_eq(ax_frame_end(&b, s, AX_FRAME_MAX_DEFAULT), 0);
    before = b.len;
    s = ax_frame_begin(&b, AX_T_PLUGIN_UNLOAD, 0, 2);
    ax_wbuf_str(&b, big, AX_STR_MAX + 1);
    ck_assert_int_eq(b.err, AX_ETOOBIG);
    ax_wbuf_u32(&b, 5); /* ignored: sticky error */
    ck_assert_int_eq(ax_frame_end(&b, s, AX_FRAME_MAX_DEFAULT), AX_ETOOBIG);
    ck_assert_uint_eq(b.len, before);
    ck_assert_int_eq(b.err, 0);
    free(big);
    ax_wbuf_free(&b);
}
END_TEST

START_TEST(wbuf_grows_and_consumes)
{
    ax_wbuf b;
    size_t i;
    ax_wbuf_init(&b);
    for (i = 0; i < 100000; i++)
        ax_wbuf_u32(&b, (uint32_t)i);
    ck_assert_int_eq(b.err, 0);
    ck_assert_uint_eq(b.len, 400000);
    ax_wbuf_consume(&b, 4);
    ck_assert_uint_eq(b.len, 399996);
    ck_assert_int_eq(b.data[3], 1);
    ax_wbuf_consume(&b, b.len + 10);
    ck_assert_uint_eq(b.len, 0);
    ax_wbuf_u64(&b, 0x0102030405060708ull);
    ck_assert_int_eq(b.data[0], 1);
    ck_assert_int_eq(b.data[7], 8);
    ax_wbuf_free(&b);
}
END_TEST

START_TEST(reserve_of_impossible_size_sets_enomem)
{
    ax_wbuf b;
    ax_wbuf_init(&b);
    ax_wbuf_u8(&b, 1);
    ck_assert_int_eq(ax_wbuf_reserve(&b, SIZE_MAX), AX_ENOMEM);
    ck_assert_int_eq(b.err, AX_ENOMEM);
    ax_wbuf_free(&b);
#if !defined(__SANITIZE_ADDRESS__) && !AX_HAS_ASAN
    /* a size the allocator refuses is an error, not an abort (ASan would abort instead) */
    ax_wbuf_init(&b);
    ck_assert_int_eq(ax_wbuf_reserve(&b, SIZE_MAX / 2), AX_ENOMEM);
    ck_assert_int_eq(b.err, AX_ENOMEM);
    ax_wbuf_free(&b);
#endif
}
END_TEST

START_TEST(reader_overrun_is_sticky_and_reads_nothing)
{
    static const uint8_t d[3] = {0, 5, 'a'};
    ax_rbuf r;
    const char *s;
    size_t n;
    ax_rbuf_init(&r, d, sizeof d);
    ax_rbuf_str(&r, &s, &n);
    ck_assert_int_eq(r.err, AX_EPROTO);
    ck_assert_ptr_nonnull(s);
    ck_assert_uint_eq(n, 0);
    ck_assert_ptr_nonnull(strstr(r.why, "string"));
    ck_assert_uint_eq(ax_rbuf_u8(&r), 0);
    ck_assert_uint_eq(r.off, 2);
    ck_assert_int_eq(ax_rbuf_done(&r), AX_EPROTO);
    ck_assert_ptr_nonnull(strstr(r.why, "string")); /* first error kept */
    ax_rbuf_init(&r, d, sizeof d);
    ck_assert_uint_eq(ax_rbuf_u16(&r), 5);
    ck_assert_int_eq(ax_rbuf_done(&r), AX_EPROTO);
    ck_assert_str_eq(r.why, "trailing bytes");
}
END_TEST

/* ---- one valid body of every non-empty type ---- */

typedef struct {
    uint8_t type;
    ax_wbuf b;
} sample;

static char key1024[AX_KEY_MAX];

static void build_samples(sample *s, size_t *n)
{
    ax_body_msg m;
    ax_body_spawn sp = {"counter", 7, "c1", 2, "{\"restart\":\"permanent\"}", 23};
    ax_body_hello h = {1, 1, "axctl", 5};
    ax_body_hello_ok ho = {1, "node-a@boot-1f-session-1", 24, AX_FRAME_MAX_DEFAULT};
    ax_wire_ref ref = {"node-a", 6, 99, 3};
    ax_wire_target t;
    size_t i = 0;
    memset(key1024, 0xfe, sizeof key1024);
#define NEXT(ty) (s[i].type = (ty), ax_wbuf_init(&s[i].b), &s[i++].b)
    ax_body_hello_put(NEXT(AX_T_HELLO), &h);
    ax_body_hello_ok_put(NEXT(AX_T_HELLO_OK), &ho);
    ax_body_error_put(NEXT(AX_T_ERROR), AX_EFULL, "mailbox full");
    ax_body_spawn_put(NEXT(AX_T_SPAWN), &sp);
    ax_put_ref(NEXT(AX_T_REF), &ref);
    memset(&m, 0, sizeof m);
    m.target.kind = AX_TGT_NAME;
    m.target.name = "room";
    m.target.name_len = 4;
    m.msg = "say";
    m.msg_len = 3;
    m.payload = "hi";
    m.payload_len = 2;
    ax_body_msg_put(NEXT(AX_T_TELL), AX_T_TELL, &m);
    m.target.kind = AX_TGT_KEY;
    m.target.name = "counter";
    m.target.name_len = 7;
    m.target.key = key1024;
    m.target.key_len = sizeof key1024;
    m.epoch = 12;
    m.timeout_ms = 5000;
    ax_body_msg_put(NEXT(AX_T_ASK), AX_T_ASK, &m);
    ax_wbuf_blob(NEXT(AX_T_REPLY), "42", 2);
    memset(&t, 0, sizeof t);
    t.kind = AX_TGT_REF;
    t.ref = ref;
    ax_put_target(NEXT(AX_T_STOP), &t);
    t.ref.node_len = 0;
    ax_put_target(NEXT(AX_T_RESOLVE), &t);
    ax_wbuf_str((ax_put_target(NEXT(AX_T_EXIT), &t), &s[i - 1].b), "shutdown:maintenance", 20);
    ax_wbuf_str(NEXT(AX_T_PLUGIN_LOAD), "/usr/lib/axactor/plugins/counter.so", 35);
    ax_wbuf_str(NEXT(AX_T_PLUGIN_UNLOAD), "counter", 7);
    ax_wbuf_blob(NEXT(AX_T_JSON), "{}", 2);
#undef NEXT
    *n = i;
}

static void free_samples(sample *s, size_t n)
{
    while (n--)
        ax_wbuf_free(&s[n].b);
}

START_TEST(typed_bodies_round_trip)
{
    ax_wbuf b;
    ax_body_msg m, out;
    ax_body_spawn sp = {"counter", 7, "", 0, "", 0}, spo;
    ax_body_error e;
    ax_body_hello h = {1, 3, "app", 3}, ho;
    ax_body_hello_ok ok = {1, "n1", 2, 4096}, oko;
    ax_wire_ref ref = {"", 0, UINT64_MAX, UINT32_MAX}, refo;
    ax_wire_target t, to;
    const void *q;
    const char *s, *why = NULL;
    size_t n;

    memset(&m, 0, sizeof m);
    m.target.kind = AX_TGT_KEY;
    m.target.name = "counter";
    m.target.name_len = 7;
    m.target.key = "user 42 \xff";
    m.target.key_len = 9;
    m.epoch = 0x0102030405060708ull;
    m.msg = "inc";
    m.msg_len = 3;
    m.payload = "5";
    m.payload_len = 1;
    m.timeout_ms = 250;
    ax_wbuf_init(&b);
    ax_body_msg_put(&b, AX_T_ASK, &m);
    ck_assert_int_eq(ax_body_msg_get(b.data, b.len, AX_T_ASK, &out, &why), 0);
    ck_assert_int_eq(out.target.kind, AX_TGT_KEY);
    ck_assert_mem_eq(out.target.name, "counter", 7);
    ck_assert_uint_eq(out.target.key_len, 9);
    ck_assert_mem_eq(out.target.key, "user 42 \xff", 9);
    ck_assert(out.epoch == m.epoch);
    ck_assert_mem_eq(out.msg, "inc", 3);
    ck_assert_uint_eq(out.payload_len, 1);
    ck_assert_uint_eq(out.timeout_ms, 250);
    /* the same body is not a TELL: the timeout is trailing there */
    ck_assert_int_eq(ax_body_msg_get(b.data, b.len, AX_T_TELL, &out, &why), AX_EPROTO);
    ck_assert_str_eq(why, "trailing bytes");
    ck_assert_int_eq(ax_body_msg_get(b.data, b.len, AX_T_STOP, &out, &why), AX_EPROTO);
    ax_wbuf_free(&b);

    ax_wbuf_init(&b);
    m.target.kind = AX_TGT_REF;
    m.target.ref = ref;
    m.payload = NULL;
    m.payload_len = 0;
    ax_body_msg_put(&b, AX_T_TELL, &m);
    ck_assert_int_eq(ax_body_msg_get(b.data, b.len, AX_T_TELL, &out, NULL), 0);
    ck_assert(out.target.ref.id == UINT64_MAX);
    ck_assert_uint_eq(out.target.ref.gen, UINT32_MAX);
    ck_assert_uint_eq(out.target.ref.node_len, 0);
    ck_assert_uint_eq(out.timeout_ms, 0);
    ck_assert_uint_eq(out.payload_len, 0);
    ax_wbuf_free(&b);

    ax_wbuf_init(&b);
    ax_body_spawn_put(&b, &sp);
    ck_assert_int_eq(ax_body_spawn_get(b.data, b.len, &spo, NULL), 0);
    ck_assert_uint_eq(spo.type_len, 7);
    ck_assert_uint_eq(spo.name_len, 0);
    ck_assert_uint_eq(spo.config_len, 0);
    ax_wbuf_free(&b);

    ax_wbuf_init(&b);
    ax_body_error_put(&b, AX_ENOPROC, NULL);
    ck_assert_int_eq(ax_body_error_get(b.data, b.len, &e, NULL), 0);
    ck_assert_int_eq(e.code, AX_ENOPROC);
    ck_assert_uint_eq(e.msg_len, 0);
    ax_wbuf_free(&b);

    ax_wbuf_init(&b);
    ax_body_hello_put(&b, &h);
    ck_assert_int_eq(ax_body_hello_get(b.data, b.len, &ho, NULL), 0);
    ck_assert_uint_eq(ho.min_ver, 1);
    ck_assert_uint_eq(ho.max_ver, 3);
    ck_assert_mem_eq(ho.name, "app", 3);
    ax_wbuf_free(&b);

    ax_wbuf_init(&b);
    ax_body_hello_ok_put(&b, &ok);
    ck_assert_int_eq(ax_body_hello_ok_get(b.data, b.len, &oko, NULL), 0);
    ck_assert_uint_eq(oko.max_frame, 4096);
    ck_assert_mem_eq(oko.node_id, "n1", 2);
    ax_wbuf_free(&b);

    ax_wbuf_init(&b);
    ax_put_ref(&b, &ref);
    ck_assert_int_eq(ax_body_ref_get(b.data, b.len, &refo, NULL), 0);
    ck_assert(refo.id == UINT64_MAX);
    ax_wbuf_free(&b);

    ax_wbuf_init(&b);
    memset(&t, 0, sizeof t);
    t.kind = AX_TGT_NAME;
    t.name = "room";
    t.name_len = 4;
    ax_put_target(&b, &t);
    ck_assert_int_eq(ax_body_target_get(b.data, b.len, &to, NULL), 0);
    ck_assert_int_eq(to.kind, AX_TGT_NAME);
    ck_assert_mem_eq(to.name, "room", 4);
    ax_wbuf_free(&b);

    ax_wbuf_init(&b);
    ax_wbuf_blob(&b, "xyz", 3);
    ck_assert_int_eq(ax_body_blob_get(b.data, b.len, &q, &n, NULL), 0);
    ck_assert_uint_eq(n, 3);
    ck_assert_mem_eq(q, "xyz", 3);
    ax_wbuf_free(&b);

    ax_wbuf_init(&b);
    ax_wbuf_str(&b, "echo", 4);
    ck_assert_int_eq(ax_body_plugin_get(b.data, b.len, AX_T_PLUGIN_UNLOAD, &s, &n, NULL), 0);
    ck_assert_int_eq(ax_body_plugin_get(b.data, b.len, AX_T_PLUGIN_LOAD, &s, &n, NULL), 0);
    ck_assert_mem_eq(s, "echo", 4);
    ck_assert_int_eq(ax_body_plugin_get(b.data, b.len, AX_T_TELL, &s, &n, NULL), AX_EPROTO);
    ax_wbuf_free(&b);
}
END_TEST

START_TEST(every_sample_body_validates)
{
    sample s[16];
    size_t n, i;
    const char *why = NULL;
    build_samples(s, &n);
    for (i = 0; i < n; i++) {
        uint8_t *q;
        ck_assert_int_eq(s[i].b.err, 0);
        q = dup_exact(s[i].b.data, s[i].b.len);
        ck_assert_msg(ax_body_validate(s[i].type, q, s[i].b.len, &why) == 0, "%s: %s",
                      ax_frame_type_name(s[i].type), why);
        free(q);
    }
    free_samples(s, n);
}
END_TEST

START_TEST(truncated_bodies_at_every_length_are_rejected)
{
    sample s[16];
    size_t n, i, l;
    build_samples(s, &n);
    for (i = 0; i < n; i++) {
        for (l = 0; l < s[i].b.len; l++) {
            uint8_t *q = dup_exact(s[i].b.data, l);
            const char *why = NULL;
            ck_assert_msg(ax_body_validate(s[i].type, q, l, &why) == AX_EPROTO,
                          "%s truncated to %zu accepted", ax_frame_type_name(s[i].type), l);
            ck_assert_ptr_nonnull(why);
            free(q);
        }
    }
    free_samples(s, n);
}
END_TEST

START_TEST(trailing_bytes_are_rejected)
{
    static const uint8_t empty_types[] = {AX_T_OK, AX_T_STATUS, AX_T_ACTORS, AX_T_PLUGINS};
    sample s[16];
    size_t n, i;
    const char *why;
    build_samples(s, &n);
    for (i = 0; i < n; i++) {
        uint8_t *q;
        ax_wbuf_u8(&s[i].b, 0);
        q = dup_exact(s[i].b.data, s[i].b.len);
        why = NULL;
        ck_assert_int_eq(ax_body_validate(s[i].type, q, s[i].b.len, &why), AX_EPROTO);
        ck_assert_str_eq(why, "trailing bytes");
        free(q);
    }
    free_samples(s, n);
    for (i = 0; i < sizeof empty_types; i++) {
        ck_assert_int_eq(ax_body_validate(empty_types[i], NULL, 0, NULL), 0);
        ck_assert_int_eq(ax_body_validate(empty_types[i], "x", 1, &why), AX_EPROTO);
    }
    ck_assert_int_eq(ax_body_validate(0x40, NULL, 0, &why), AX_EPROTO);
}
END_TEST

START_TEST(drain_bodies_are_checked)
{
    ax_wbuf b;
    const char *why = NULL;
    ax_wbuf_init(&b);
    ax_wbuf_u32(&b, 15000);
    ax_wbuf_u8(&b, AX_DRAIN_STAY);
    ck_assert_int_eq(ax_body_validate(AX_T_DRAIN, b.data, b.len, &why), 0);
    for (size_t l = 0; l < b.len; l++) /* truncated */
        ck_assert_int_eq(ax_body_validate(AX_T_DRAIN, b.data, l, &why), AX_EPROTO);
    ax_wbuf_u8(&b, 0); /* trailing */
    ck_assert_int_eq(ax_body_validate(AX_T_DRAIN, b.data, b.len, &why), AX_EPROTO);
    ax_wbuf_free(&b);
    ax_wbuf_init(&b);
    ax_wbuf_u32(&b, 0);
    ax_wbuf_u8(&b, 0x02); /* an unknown flag */
    ck_assert_int_eq(ax_body_validate(AX_T_DRAIN, b.data, b.len, &why), AX_EPROTO);
    ck_assert_ptr_nonnull(strstr(why, "flags"));
    ax_wbuf_free(&b);
    ax_wbuf_init(&b);
    ax_wbuf_u32(&b, AX_DRAIN_TIMEOUT_MAX + 1);
    ax_wbuf_u8(&b, 0);
    ck_assert_int_eq(ax_body_validate(AX_T_DRAIN, b.data, b.len, &why), AX_EPROTO);
    ax_wbuf_free(&b);
    ck_assert_int_eq(ax_body_validate(AX_T_UNDRAIN, NULL, 0, NULL), 0);
    ck_assert_int_eq(ax_body_validate(AX_T_UNDRAIN, "x", 1, &why), AX_EPROTO);
    ck_assert_int_eq(ax_body_validate(AX_T_CLUSTER_STATUS, NULL, 0, NULL), 0);
    ck_assert_int_eq(ax_body_validate(AX_T_CLUSTER_STATUS, "x", 1, &why), AX_EPROTO);
}
END_TEST

START_TEST(names_are_printable_ascii_without_space)
{
    char n255[AX_NAME_MAX + 1];
    memset(n255, 'a', sizeof n255);
    ck_assert_int_eq(ax_name_valid("counter", 7), 0);
    ck_assert_int_eq(ax_name_valid("!~", 2), 0);
    ck_assert_int_eq(ax_name_valid(n255, AX_NAME_MAX), 0);
    ck_assert_int_eq(ax_name_valid(n255, AX_NAME_MAX + 1), AX_EINVAL);
    ck_assert_int_eq(ax_name_valid("", 0), AX_EINVAL);
    ck_assert_int_eq(ax_name_valid(NULL, 3), AX_EINVAL);
    ck_assert_int_eq(ax_name_valid("a b", 3), AX_EINVAL);
    ck_assert_int_eq(ax_name_valid("a\0b", 3), AX_EINVAL);
    ck_assert_int_eq(ax_name_valid("a\x7f", 2), AX_EINVAL);
    ck_assert_int_eq(ax_name_valid("\xc3\xa9", 2), AX_EINVAL);
    ck_assert_int_eq(ax_name_valid("a\n", 2), AX_EINVAL);
}
END_TEST

START_TEST(keys_are_any_bytes_but_nul)
{
    static char k[AX_KEY_MAX + 1];
    memset(k, 0xff, sizeof k);
    ck_assert_int_eq(ax_key_valid("user 1", 6), 0);
    ck_assert_int_eq(ax_key_valid(k, AX_KEY_MAX), 0);
    ck_assert_int_eq(ax_key_valid(k, AX_KEY_MAX + 1), AX_EINVAL);
    ck_assert_int_eq(ax_key_valid("", 0), AX_EINVAL);
    ck_assert_int_eq(ax_key_valid("a\0", 2), AX_EINVAL);
}
END_TEST

/* Encode m as a TELL/ASK body and decode it; returns the decode result. */
static int msg_rc(uint8_t type, const ax_body_msg *m, const char **why)
{
    ax_wbuf b;
    ax_body_msg out;
    int rc;
    uint8_t *q;
    ax_wbuf_init(&b);
    ax_body_msg_put(&b, type, m);
    ck_assert_int_eq(b.err, 0);
    q = dup_exact(b.data, b.len);
    rc = ax_body_msg_get(q, b.len, type, &out, why);
    free(q);
    ax_wbuf_free(&b);
    return rc;
}

START_TEST(invalid_names_in_messages_are_rejected)
{
    static char longkey[AX_KEY_MAX + 1];
    ax_body_msg m;
    const char *why = NULL;
    memset(longkey, 'k', sizeof longkey);
    memset(&m, 0, sizeof m);
    m.target.kind = AX_TGT_NAME;
    m.target.name = "room";
    m.target.name_len = 4;
    m.msg = "say";
    m.msg_len = 3;
    m.timeout_ms = 1;
    ck_assert_int_eq(msg_rc(AX_T_TELL, &m, &why), 0);
    m.msg = "s y";
    ck_assert_int_eq(msg_rc(AX_T_TELL, &m, &why), AX_EPROTO);
    ck_assert_ptr_nonnull(strstr(why, "message name"));
    m.msg_len = 0;
    ck_assert_int_eq(msg_rc(AX_T_ASK, &m, &why), AX_EPROTO);
    m.msg = "say";
    m.msg_len = 3;
    m.timeout_ms = 0;
    ck_assert_int_eq(msg_rc(AX_T_ASK, &m, &why), AX_EPROTO);
    ck_assert_ptr_nonnull(strstr(why, "timeout_ms"));
    m.timeout_ms = 1;
    m.target.name = "ro\0m";
    ck_assert_int_eq(msg_rc(AX_T_TELL, &m, &why), AX_EPROTO);
    ck_assert_ptr_nonnull(strstr(why, "target name"));
    m.target.name_len = 0;
    ck_assert_int_eq(msg_rc(AX_T_TELL, &m, &why), AX_EPROTO);
    m.target.kind = AX_TGT_KEY;
    m.target.name = "counter";
    m.target.name_len = 7;
    m.target.key = longkey;
    m.target.key_len = AX_KEY_MAX + 1;
    ck_assert_int_eq(msg_rc(AX_T_TELL, &m, &why), AX_EPROTO);
    ck_assert_ptr_nonnull(strstr(why, "key"));
    m.target.key_len = 0;
    ck_assert_int_eq(msg_rc(AX_T_TELL, &m, &why), AX_EPROTO);
    m.target.key = "a\0b";
    m.target.key_len = 3;
    ck_assert_int_eq(msg_rc(AX_T_TELL, &m, &why), AX_EPROTO);
    m.target.key = "a b";
    ck_assert_int_eq(msg_rc(AX_T_TELL, &m, &why), 0);
    m.target.name = "bad type";
    m.target.name_len = 8;
    ck_assert_int_eq(msg_rc(AX_T_TELL, &m, &why), AX_EPROTO);
    ck_assert_ptr_nonnull(strstr(why, "type"));
    m.target.kind = AX_TGT_REF;
    m.target.ref.node = "node a";
    m.target.ref.node_len = 6;
    ck_assert_int_eq(msg_rc(AX_T_TELL, &m, &why), AX_EPROTO);
    ck_assert_ptr_nonnull(strstr(why, "ref node"));
}
END_TEST

START_TEST(unknown_target_kind_is_rejected)
{
    static const uint8_t body[] = {3, 0, 0};
    ax_wire_target t;
    const char *why = NULL;
    ck_assert_int_eq(ax_body_target_get(body, sizeof body, &t, &why), AX_EPROTO);
    ck_assert_str_eq(why, "unknown target kind");
}
END_TEST

/* Decode a SPAWN built from the parts; returns the decode result. */
static int spawn_rc(const char *type, size_t tl, const char *name, size_t nl, size_t cfg_len)
{
    ax_wbuf b;
    char *cfg = calloc(1, cfg_len + 1);
    ax_body_spawn s = {type, tl, name, nl, cfg, cfg_len}, out;
    int rc;
    ck_assert_ptr_nonnull(cfg);
    ax_wbuf_init(&b);
    ax_body_spawn_put(&b, &s);
    rc = ax_body_validate(AX_T_SPAWN, b.data, b.len, NULL);
    ck_assert_int_eq(rc, ax_body_spawn_get(b.data, b.len, &out, NULL));
    ax_wbuf_free(&b);
    free(cfg);
    return rc;
}

START_TEST(spawn_body_limits_are_enforced)
{
    ck_assert_int_eq(spawn_rc("counter", 7, "", 0, 0), 0);
    ck_assert_int_eq(spawn_rc("counter", 7, "c1", 2, AX_CONFIG_MAX), 0);
    ck_assert_int_eq(spawn_rc("counter", 7, "c1", 2, AX_CONFIG_MAX + 1), AX_EPROTO);
    ck_assert_int_eq(spawn_rc("", 0, "c1", 2, 0), AX_EPROTO);
    ck_assert_int_eq(spawn_rc("counter", 7, "c 1", 3, 0), AX_EPROTO);
}
END_TEST

/* Validate a one-str body of the given type. */
static int str_body_rc(uint8_t type, const char *s, size_t n)
{
    ax_wbuf b;
    int rc;
    ax_wbuf_init(&b);
    ax_wbuf_str(&b, s, n);
    rc = ax_body_validate(type, b.data, b.len, NULL);
    ax_wbuf_free(&b);
    return rc;
}

START_TEST(plugin_bodies_are_validated)
{
    static char path[AX_PATH_MAX + 1];
    memset(path, '/', sizeof path);
    ck_assert_int_eq(str_body_rc(AX_T_PLUGIN_LOAD, "my plugin.so", 12), 0);
    ck_assert_int_eq(str_body_rc(AX_T_PLUGIN_LOAD, path, AX_PATH_MAX), 0);
    ck_assert_int_eq(str_body_rc(AX_T_PLUGIN_LOAD, path, AX_PATH_MAX + 1), AX_EPROTO);
    ck_assert_int_eq(str_body_rc(AX_T_PLUGIN_LOAD, "", 0), AX_EPROTO);
    ck_assert_int_eq(str_body_rc(AX_T_PLUGIN_LOAD, "a\0.so", 5), AX_EPROTO);
    ck_assert_int_eq(str_body_rc(AX_T_PLUGIN_UNLOAD, "counter", 7), 0);
    ck_assert_int_eq(str_body_rc(AX_T_PLUGIN_UNLOAD, "my plugin", 9), AX_EPROTO);
    ck_assert_int_eq(str_body_rc(AX_T_PLUGIN_UNLOAD, "", 0), AX_EPROTO);
}
END_TEST

START_TEST(hello_and_error_bodies_are_validated)
{
    ax_wbuf b;
    ax_body_hello h = {2, 1, "", 0};
    ax_body_hello_ok ok = {1, "n1", 2, AX_FRAME_MAX_MIN - 1};
    const char *why = NULL;
    ax_wbuf_init(&b);
    ax_body_hello_put(&b, &h);
    ck_assert_int_eq(ax_body_validate(AX_T_HELLO, b.data, b.len, &why), AX_EPROTO);
    ax_wbuf_free(&b);
    h.min_ver = 0;
    ax_wbuf_init(&b);
    ax_body_hello_put(&b, &h);
    ck_assert_int_eq(ax_body_validate(AX_T_HELLO, b.data, b.len, &why), AX_EPROTO);
    ax_wbuf_free(&b);
    ax_wbuf_init(&b);
    ax_body_hello_ok_put(&b, &ok);
    ck_assert_int_eq(ax_body_validate(AX_T_HELLO_OK, b.data, b.len, &why), AX_EPROTO);
    ax_wbuf_free(&b);
    ok.max_frame = AX_FRAME_MAX_LIMIT + 1;
    ax_wbuf_init(&b);
    ax_body_hello_ok_put(&b, &ok);
    ck_assert_int_eq(ax_body_validate(AX_T_HELLO_OK, b.data, b.len, &why), AX_EPROTO);
    ax_wbuf_free(&b);
    ok.max_frame = AX_FRAME_MAX_LIMIT;
    ok.node_id_len = 0;
    ax_wbuf_init(&b);
    ax_body_hello_ok_put(&b, &ok);
    ck_assert_int_eq(ax_body_validate(AX_T_HELLO_OK, b.data, b.len, &why), AX_EPROTO);
    ax_wbuf_free(&b);
    ax_wbuf_init(&b);
    ax_body_error_put(&b, 0, "not an error");
    ck_assert_int_eq(ax_body_validate(AX_T_ERROR, b.data, b.len, &why), AX_EPROTO);
    ax_wbuf_free(&b);
    ax_wbuf_init(&b);
    ax_body_error_put(&b, -1000, "from a newer daemon");
    ck_assert_int_eq(ax_body_validate(AX_T_ERROR, b.data, b.len, &why), 0);
    ax_wbuf_free(&b);
}
END_TEST

START_TEST(decode_failure_leaves_outputs_untouched)
{
    static const uint8_t body[] = {1, 0, 3, 'a', ' ', 'b'}, ok[] = {1, 0, 1, 'a'};
    ax_wire_target t;
    ax_body_spawn s;
    const char *why = "unchanged";
    memset(&t, 0x5a, sizeof t);
    ck_assert_int_eq(ax_body_target_get(body, sizeof body, &t, NULL), AX_EPROTO);
    ck_assert_int_eq(t.kind, 0x5a);
    memset(&s, 0x5a, sizeof s);
    ck_assert_int_eq(ax_body_spawn_get(body, 2, &s, NULL), AX_EPROTO);
    ck_assert_uint_eq(s.type_len, (size_t)0x5a5a5a5a5a5a5a5aull);
    /* why is only written on failure */
    ck_assert_int_eq(ax_body_target_get(ok, sizeof ok, &t, &why), 0);
    ck_assert_str_eq(why, "unchanged");
    ck_assert_int_eq(t.kind, AX_TGT_NAME);
}
END_TEST

START_TEST(error_body_message_is_cut_to_str_max)
{
    ax_wbuf b;
    ax_body_error e;
    char *msg = malloc(AX_STR_MAX + 100);
    ck_assert_ptr_nonnull(msg);
    memset(msg, 'e', AX_STR_MAX + 99);
    msg[AX_STR_MAX + 99] = 0;
    ax_wbuf_init(&b);
    ax_body_error_put(&b, AX_EINVAL, msg);
    ck_assert_int_eq(b.err, 0);
    ck_assert_int_eq(ax_body_error_get(b.data, b.len, &e, NULL), 0);
    ck_assert_uint_eq(e.msg_len, AX_STR_MAX);
    ax_wbuf_free(&b);
    free(msg);
}
END_TEST

START_TEST(version_negotiation_picks_highest_common)
{
    ck_assert_int_eq(ax_proto_negotiate(1, 1), 1);
    ck_assert_int_eq(ax_proto_negotiate(1, 9), AX_PROTO_VERSION);
    ck_assert_int_eq(ax_proto_negotiate(AX_PROTO_VERSION + 1, 9), AX_EVERSION);
    ck_assert_int_eq(ax_proto_negotiate(0, 0), AX_EVERSION);
    ck_assert_int_eq(ax_proto_negotiate(2, 1), AX_EVERSION);
}
END_TEST

START_TEST(every_error_code_has_a_name_and_message)
{
    int c, d;
    for (c = 0; c >= AX_ERR_MIN; c--) {
        ck_assert_str_ne(ax_strerror(c), "unknown error");
        ck_assert_str_ne(ax_errname(c), "EUNKNOWN");
        for (d = c - 1; d >= AX_ERR_MIN; d--)
            ck_assert_str_ne(ax_errname(c), ax_errname(d));
    }
    ck_assert_str_eq(ax_strerror(AX_EFULL), "mailbox full");
    ck_assert_str_eq(ax_errname(AX_EFULL), "EFULL");
    ck_assert_str_eq(ax_strerror(AX_ERR_MIN - 1), "unknown error");
    ck_assert_str_eq(ax_strerror(1), "unknown error");
    ck_assert_str_eq(ax_errname(-1000), "EUNKNOWN");
}
END_TEST

static int i64(const char *s, int64_t *v)
{
    ax_msg m;
    memset(&m, 0, sizeof m);
    m.data = s;
    m.len = strlen(s);
    return ax_msg_i64(&m, v);
}

START_TEST(msg_i64_parses_decimal_and_refuses_overflow)
{
    int64_t v = 7;
    ck_assert_int_eq(i64("0", &v), 0);
    ck_assert(v == 0);
    ck_assert_int_eq(i64("+15", &v), 0);
    ck_assert(v == 15);
    ck_assert_int_eq(i64("-42", &v), 0);
    ck_assert(v == -42);
    ck_assert_int_eq(i64("9223372036854775807", &v), 0);
    ck_assert(v == INT64_MAX);
    ck_assert_int_eq(i64("-9223372036854775808", &v), 0);
    ck_assert(v == INT64_MIN);
    v = 7;
    ck_assert_int_eq(i64("9223372036854775808", &v), AX_EINVAL);
    ck_assert_int_eq(i64("-9223372036854775809", &v), AX_EINVAL);
    ck_assert_int_eq(i64("99999999999999999999", &v), AX_EINVAL);
    ck_assert_int_eq(i64("", &v), AX_EINVAL);
    ck_assert_int_eq(i64("-", &v), AX_EINVAL);
    ck_assert_int_eq(i64("+", &v), AX_EINVAL);
    ck_assert_int_eq(i64("12a", &v), AX_EINVAL);
    ck_assert_int_eq(i64(" 1", &v), AX_EINVAL);
    ck_assert_int_eq(i64("1 ", &v), AX_EINVAL);
    ck_assert_int_eq(i64("--1", &v), AX_EINVAL);
    ck_assert(v == 7); /* untouched on failure */
}
END_TEST

static Suite *proto_suite(void)
{
    Suite *s = suite_create("proto");
    TCase *h = tcase_create("header"), *w = tcase_create("wbuf"), *b = tcase_create("bodies"),
          *m = tcase_create("misc");
    tcase_add_test(h, header_round_trips_all_fields);
    tcase_add_test(h, short_header_asks_for_more_bytes);
    tcase_add_test(h, header_with_bad_magic_is_rejected);
    tcase_add_test(h, header_with_unsupported_version_is_rejected);
    tcase_add_test(h, header_with_unknown_type_is_rejected);
    tcase_add_test(h, header_with_unknown_flags_is_rejected);
    tcase_add_test(h, noreply_flag_outside_tell_is_rejected);
    tcase_add_test(h, header_with_nonzero_reserved_is_rejected);
    tcase_add_test(h, header_with_oversize_body_is_rejected);
    tcase_add_test(h, every_client_type_is_known_and_named);
    tcase_add_test(w, frame_end_fills_body_len);
    tcase_add_test(w, oversize_frame_is_removed_by_frame_end);
    tcase_add_test(w, overlong_str_fails_the_frame_and_keeps_earlier_frames);
    tcase_add_test(w, wbuf_grows_and_consumes);
    tcase_add_test(w, reserve_of_impossible_size_sets_enomem);
    tcase_add_test(w, reader_overrun_is_sticky_and_reads_nothing);
    tcase_add_test(b, typed_bodies_round_trip);
    tcase_add_test(b, every_sample_body_validates);
    tcase_add_test(b, truncated_bodies_at_every_length_are_rejected);
    tcase_add_test(b, trailing_bytes_are_rejected);
    tcase_add_test(b, names_are_printable_ascii_without_space);
    tcase_add_test(b, keys_are_any_bytes_but_nul);
    tcase_add_test(b, invalid_names_in_messages_are_rejected);
    tcase_add_test(b, unknown_target_kind_is_rejected);
    tcase_add_test(b, spawn_body_limits_are_enforced);
    tcase_add_test(b, plugin_bodies_are_validated);
    tcase_add_test(b, hello_and_error_bodies_are_validated);
    tcase_add_test(b, decode_failure_leaves_outputs_untouched);
    tcase_add_test(b, drain_bodies_are_checked);
    tcase_add_test(b, error_body_message_is_cut_to_str_max);
    tcase_add_test(m, version_negotiation_picks_highest_common);
    tcase_add_test(m, every_error_code_has_a_name_and_message);
    tcase_add_test(m, msg_i64_parses_decimal_and_refuses_overflow);
    suite_add_tcase(s, h);
    suite_add_tcase(s, w);
    suite_add_tcase(s, b);
    suite_add_tcase(s, m);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(proto_suite());
    int failed;
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
