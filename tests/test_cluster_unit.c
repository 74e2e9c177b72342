/* Unit tests of the cluster's pure pieces: the wire-id parser (both ways: a real
 * session suffix, and logical names that merely contain "@boot-"), the peer frame codec
 * (round trips, hostile bytes), the handshake state machine (happy path, version
 * mismatch, wrong token on either side, unexpected frames) and session sealing (forged,
 * replayed, reordered and cross-session frames dropped and counted), and the
 * "Peer protocol" constants of PROTOCOL.md agreeing with proto/peer.h. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "handshake.h"
#include "node_id.h"
#include "peer.h"

/* ---------------- node ids ---------------- */

START_TEST(wire_id_with_exact_suffix_parses_as_session)
{
    axd_node_id id;
    const char *s = "node-a@boot-0123456789abcdef-session-42";
    ck_assert_int_eq(axd_node_id_parse(s, strlen(s), &id), 0);
    ck_assert(id.has_session);
    ck_assert_str_eq(id.name, "node-a");
    ck_assert_str_eq(id.boot, "0123456789abcdef");
    ck_assert_uint_eq(id.session, 42);
    char buf[256];
    ck_assert_int_eq(axd_node_id_format(buf, sizeof buf, "node-a", "0123456789abcdef", 42), 0);
    ck_assert_str_eq(buf, s);
    s = "x@boot-ffffffffffffffff-session-18446744073709551615";
    ck_assert_int_eq(axd_node_id_parse(s, strlen(s), &id), 0);
    ck_assert(id.has_session);
    ck_assert_uint_eq(id.session, UINT64_MAX);
}
END_TEST

START_TEST(names_that_merely_contain_boot_stay_logical)
{
    static const char *const logical[] = {
        "node@boot-",
        "node@boot-xyz",
        "a@boot-0123456789abcdef",                            /* no session part */
        "a@boot-0123456789abcdef-session-",                   /* no number */
        "a@boot-0123456789abcdef-session-0",                  /* session 0 */
        "a@boot-0123456789abcdef-session-01",                 /* leading zero */
        "a@boot-0123456789ABCDEF-session-1",                  /* upper-case hex */
        "a@boot-0123456789abcde-session-1",                   /* 15 hex digits */
        "a@boot-0123456789abcdef0-session-1",                 /* 17 hex digits */
        "a@boot-0123456789abcdef-session-1x",                 /* trailing junk */
        "a@boot-0123456789abcdef-session-18446744073709551616", /* overflow */
        "@boot-0123456789abcdef-session-1",                   /* empty name part */
        "a@boot-0123456789abcdef-session-1@boot-zz",          /* the last @boot- decides */
        "plain-name",
    };
    for (size_t i = 0; i < sizeof logical / sizeof logical[0]; i++) {
        axd_node_id id;
        ck_assert_msg(axd_node_id_parse(logical[i], strlen(logical[i]), &id) == 0, "%s", logical[i]);
        ck_assert_msg(!id.has_session, "%s parsed as a session", logical[i]);
        ck_assert_str_eq(id.name, logical[i]);
        ck_assert_str_eq(id.boot, "");
    }
    /* a name containing a whole suffix shape, followed by a real suffix */
    axd_node_id id;
    const char *s = "a@boot-0123456789abcdef-session-1@boot-fedcba9876543210-session-2";
    ck_assert_int_eq(axd_node_id_parse(s, strlen(s), &id), 0);
    ck_assert(id.has_session);
    ck_assert_str_eq(id.name, "a@boot-0123456789abcdef-session-1");
    ck_assert_uint_eq(id.session, 2);
}
END_TEST

START_TEST(invalid_names_are_refused_and_out_untouched)
{
    axd_node_id id;
    memset(&id, 0x5a, sizeof id);
    ck_assert_int_eq(axd_node_id_parse("", 0, &id), AX_EINVAL);
    ck_assert_int_eq(axd_node_id_parse("a b", 3, &id), AX_EINVAL);
    ck_assert_int_eq(axd_node_id_parse("a\0b", 3, &id), AX_EINVAL);
    char big[300];
    memset(big, 'a', sizeof big);
    ck_assert_int_eq(axd_node_id_parse(big, sizeof big, &id), AX_EINVAL);
    ck_assert_int_eq((unsigned char)id.name[0], 0x5a);
    char buf[32];
    ck_assert_int_eq(axd_node_id_format(buf, sizeof buf, "node-a", "0123456789abcdef", 1), AX_ETOOBIG);
    ck_assert_int_eq(axd_node_id_format(buf, sizeof buf, "a", "XYZ", 1), AX_EINVAL);
    ck_assert_int_eq(axd_node_id_format(buf, sizeof buf, "a", "0123456789abcdef", 0), AX_EINVAL);
}
END_TEST

/* ---------------- codec ---------------- */

START_TEST(peer_header_round_trips_and_rejects_garbage)
{
    ax_peer_hdr h = {.version = 1, .type = AX_PT_TELL, .session = 7, .body_len = 12, .seq = 99}, g;
    memset(h.mac, 0xab, sizeof h.mac);
    uint8_t b[AX_PEER_HDR_SIZE];
    ax_peer_hdr_encode(&h, b);
    const char *why = NULL;
    ck_assert_int_eq(ax_peer_hdr_decode(b, sizeof b, 1024, &g, &why), 0);
    ck_assert_uint_eq(g.session, 7);
    ck_assert_uint_eq(g.seq, 99);
    ck_assert_uint_eq(g.body_len, 12);
    ck_assert_int_eq(memcmp(g.mac, h.mac, sizeof h.mac), 0);
    ck_assert_int_eq(ax_peer_hdr_decode(b, sizeof b - 1, 1024, &g, &why), 1);
    ck_assert_int_eq(ax_peer_hdr_decode(b, sizeof b, 11, &g, &why), AX_ETOOBIG);
    uint8_t c[AX_PEER_HDR_SIZE];
    memcpy(c, b, sizeof c);
    c[0] = 'X';
    ck_assert_int_eq(ax_peer_hdr_decode(c, sizeof c, 1024, &g, &why), AX_EPROTO);
    memcpy(c, b, sizeof c);
    c[3] = 0x12; /* a client-plane type */
    ck_assert_int_eq(ax_peer_hdr_decode(c, sizeof c, 1024, &g, &why), AX_EPROTO);
    memcpy(c, b, sizeof c);
    c[5] = 1; /* flags */
    ck_assert_int_eq(ax_peer_hdr_decode(c, sizeof c, 1024, &g, &why), AX_EPROTO);
    memcpy(c, b, sizeof c);
    c[7] = 1; /* reserved */
    ck_assert_int_eq(ax_peer_hdr_decode(c, sizeof c, 1024, &g, &why), AX_EPROTO);
    memcpy(c, b, sizeof c);
    c[2] = 2; /* version */
    ck_assert_int_eq(ax_peer_hdr_decode(c, sizeof c, 1024, &g, &why), AX_EPROTO);
}
END_TEST

START_TEST(records_round_trip_in_batches)
{
    ax_wbuf b;
    ax_wbuf_init(&b);
    for (int i = 0; i < 3; i++) {
        ax_peer_rec r = {.to_id = 5, .to_gen = 2, .from_id = 9, .from_gen = 1, .msg = "inc", .msg_len = 3,
                         .payload = "abc", .payload_len = (size_t)i};
        ax_peer_rec_put(&b, AX_PT_TELL, &r);
    }
    ck_assert_int_eq(ax_peer_body_validate(AX_PT_TELL, b.data, b.len, NULL), 0);
    ax_rbuf r;
    ax_peer_rec rec;
    ax_rbuf_init(&r, b.data, b.len);
    int n = 0;
    while (ax_peer_rec_next(&r, AX_PT_TELL, &rec, NULL) == 1) {
        ck_assert_uint_eq(rec.to_id, 5);
        ck_assert_uint_eq(rec.payload_len, (size_t)n);
        n++;
    }
    ck_assert_int_eq(n, 3);
    /* a truncated body, an empty body, a bad name, an ask without timeout */
    const char *why = NULL;
    ck_assert_int_eq(ax_peer_body_validate(AX_PT_TELL, b.data, b.len - 1, &why), AX_EPROTO);
    ck_assert_ptr_nonnull(why);
    ck_assert_int_eq(ax_peer_body_validate(AX_PT_TELL, b.data, 0, &why), AX_EPROTO);
    b.len = 0;
    ax_peer_rec bad = {.msg = "a b", .msg_len = 3};
    ax_peer_rec_put(&b, AX_PT_TELL, &bad);
    ck_assert_int_eq(ax_peer_body_validate(AX_PT_TELL, b.data, b.len, &why), AX_EPROTO);
    b.len = 0;
    ax_peer_rec ask = {.req = 1, .msg = "get", .msg_len = 3, .timeout_ms = 0};
    ax_peer_rec_put(&b, AX_PT_ASK, &ask);
    ck_assert_int_eq(ax_peer_body_validate(AX_PT_ASK, b.data, b.len, &why), AX_EPROTO);
    ax_wbuf_free(&b);
}
END_TEST

START_TEST(status_records_round_trip_and_bad_ones_are_refused)
{
    ax_wbuf b;
    ax_wbuf_init(&b);
    ax_peer_rec q = {.req = 42};
    ax_peer_rec_put(&b, AX_PT_STATUS_REQ, &q);
    ck_assert_int_eq(ax_peer_body_validate(AX_PT_STATUS_REQ, b.data, b.len, NULL), 0);
    b.len = 0;
    const char doc[] = "{\"actors\":3}";
    ax_peer_rec a = {.req = 42, .payload = doc, .payload_len = sizeof doc - 1};
    ax_peer_rec_put(&b, AX_PT_STATUS, &a);
    ax_rbuf r;
    ax_peer_rec rec;
    ax_rbuf_init(&r, b.data, b.len);
    ck_assert_int_eq(ax_peer_rec_next(&r, AX_PT_STATUS, &rec, NULL), 1);
    ck_assert_uint_eq(rec.req, 42);
    ck_assert_uint_eq(rec.payload_len, sizeof doc - 1);
    ck_assert_int_eq(memcmp(rec.payload, doc, rec.payload_len), 0);
    /* req 0, an empty document, a NUL inside */
    const char *why = NULL;
    b.len = 0;
    ax_peer_rec z = {.req = 0};
    ax_peer_rec_put(&b, AX_PT_STATUS_REQ, &z);
    ck_assert_int_eq(ax_peer_body_validate(AX_PT_STATUS_REQ, b.data, b.len, &why), AX_EPROTO);
    b.len = 0;
    ax_peer_rec e = {.req = 1, .payload = "", .payload_len = 0};
    ax_peer_rec_put(&b, AX_PT_STATUS, &e);
    ck_assert_int_eq(ax_peer_body_validate(AX_PT_STATUS, b.data, b.len, &why), AX_EPROTO);
    b.len = 0;
    ax_peer_rec n = {.req = 1, .payload = "{\0}", .payload_len = 3};
    ax_peer_rec_put(&b, AX_PT_STATUS, &n);
    ck_assert_int_eq(ax_peer_body_validate(AX_PT_STATUS, b.data, b.len, &why), AX_EPROTO);
    ax_wbuf_free(&b);
}
END_TEST

START_TEST(every_body_decoder_survives_random_bytes)
{
    uint8_t buf[512];
    uint64_t x = 0x1234567;
    for (int round = 0; round < 20000; round++) {
        size_t n = (size_t)(x % sizeof buf);
        for (size_t i = 0; i < n; i++) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            buf[i] = (uint8_t)x;
        }
        for (int t = 0x40; t < 0x80; t++)
            (void)ax_peer_body_validate((uint8_t)t, buf, n, NULL);
        ax_peer_hdr h;
        (void)ax_peer_hdr_decode(buf, n, 1u << 20, &h, NULL);
        x += 0x9e3779b97f4a7c15ull;
    }
}
END_TEST

/* ---------------- handshake ---------------- */

typedef struct pair {
    axd_hs a, b; /* a initiates */
    ax_wbuf ab, ba;
    int ra, rb;
} pair;

static const char *const ID_A = "node-a@boot-aaaaaaaaaaaaaaaa-session-3";
static const char *const ID_B = "node-b@boot-bbbbbbbbbbbbbbbb-session-5";

static void pair_init(pair *p, const char *tok_a, const char *tok_b, uint16_t a_lo, uint16_t a_hi)
{
    memset(p, 0, sizeof *p);
    axd_hs_cfg ca = {.self_id = ID_A, .expect_name = "node-b", .token = tok_a, .token_len = strlen(tok_a),
                    .min_ver = a_lo, .max_ver = a_hi};
    axd_hs_cfg cb = {.self_id = ID_B, .token = tok_b, .token_len = strlen(tok_b)};
    ck_assert_int_eq(axd_hs_init(&p->a, AXD_HS_INITIATOR, &ca), 0);
    ck_assert_int_eq(axd_hs_init(&p->b, AXD_HS_RESPONDER, &cb), 0);
    ax_wbuf_init(&p->ab);
    ax_wbuf_init(&p->ba);
}

static void pair_free(pair *p)
{
    axd_hs_clear(&p->a);
    axd_hs_clear(&p->b);
    ax_wbuf_free(&p->ab);
    ax_wbuf_free(&p->ba);
}

/* Feed every frame in q to h (answers into out); returns the last result. */
static int feed(axd_hs *h, ax_wbuf *q, ax_wbuf *out)
{
    int rc = AXD_HS_MORE;
    size_t off = 0;
    ax_wbuf in = *q;
    ax_wbuf_init(q);
    while (off < in.len) {
        ax_peer_hdr hd;
        ck_assert_int_eq(ax_peer_hdr_decode(in.data + off, in.len - off, 1u << 20, &hd, NULL), 0);
        size_t t = AX_PEER_HDR_SIZE + hd.body_len;
        rc = axd_hs_input(h, in.data + off, t, out);
        off += t;
        if (rc != AXD_HS_MORE)
            break;
    }
    ax_wbuf_free(&in);
    return rc;
}

/* Run the handshake to its end; returns 1 if both sides are established. */
static int run(pair *p)
{
    ck_assert_int_eq(axd_hs_start(&p->a, &p->ab), 0);
    p->rb = feed(&p->b, &p->ab, &p->ba); /* HELLO -> HELLO_ACK | REFUSE */
    if (p->rb < 0) {
        p->ra = feed(&p->a, &p->ba, &p->ab);
        return 0;
    }
    p->ra = feed(&p->a, &p->ba, &p->ab); /* HELLO_ACK -> AUTH | REFUSE */
    if (p->ra < 0) {
        p->rb = feed(&p->b, &p->ab, &p->ba);
        return 0;
    }
    p->rb = feed(&p->b, &p->ab, &p->ba); /* AUTH -> READY | REFUSE */
    if (p->rb != AXD_HS_READY) {
        p->ra = feed(&p->a, &p->ba, &p->ab);
        return 0;
    }
    ck_assert_int_eq(axd_hs_accept(&p->b, &p->ba), 0);
    p->ra = feed(&p->a, &p->ba, &p->ab); /* AUTH_OK -> READY */
    return p->ra == AXD_HS_READY;
}

/* A sealed frame of type with body text. */
static void make_frame(axd_psess *s, ax_wbuf *b, const char *text)
{
    b->len = 0;
    size_t st = ax_peer_frame_begin(b, AX_PT_PING, 0);
    ax_wbuf_put(b, text, strlen(text));
    ck_assert_int_eq(ax_peer_frame_end(b, st, 1024), 0);
    axd_psess_seal(s, b->data, b->len);
}

static int open_frame(axd_psess *s, ax_wbuf *b)
{
    ax_peer_hdr h;
    ck_assert_int_eq(ax_peer_hdr_decode(b->data, b->len, 1024, &h, NULL), 0);
    return axd_psess_open(s, &h, b->data, b->len);
}

START_TEST(handshake_happy_path_agrees_on_keys_and_version)
{
    pair p;
    pair_init(&p, "s3cret", "s3cret", 0, 0);
    ck_assert(run(&p));
    ck_assert_uint_eq(p.a.version, AX_PEER_VERSION);
    ck_assert_uint_eq(p.b.version, AX_PEER_VERSION);
    ck_assert_str_eq(p.a.peer.name, "node-b");
    ck_assert_str_eq(p.b.peer.name, "node-a");
    ck_assert_uint_eq(p.b.peer.session, 3);
    axd_psess sa, sb;
    axd_hs_take_session(&p.a, &sa);
    axd_hs_take_session(&p.b, &sb);
    ax_wbuf f;
    ax_wbuf_init(&f);
    for (int i = 0; i < 5; i++) {
        make_frame(&sa, &f, "hello");
        ck_assert_int_eq(open_frame(&sb, &f), 0);
        make_frame(&sb, &f, "world");
        ck_assert_int_eq(open_frame(&sa, &f), 0);
    }
    ax_wbuf_free(&f);
    axd_psess_free(&sa);
    axd_psess_free(&sb);
    pair_free(&p);
}
END_TEST

START_TEST(highest_common_version_is_chosen)
{
    pair p;
    pair_init(&p, "t", "t", 1, 9); /* the initiator speaks 1..9, the responder 1..1 */
    ck_assert(run(&p));
    ck_assert_uint_eq(p.a.version, 1);
    pair_free(&p);
}
END_TEST

START_TEST(version_mismatch_is_refused_with_a_reason_on_both_sides)
{
    pair p;
    pair_init(&p, "t", "t", 7, 9);
    ck_assert(!run(&p));
    ck_assert_int_eq(p.rb, AX_EVERSION);
    ck_assert_int_eq(p.ra, AX_EVERSION);
    ck_assert(p.a.refused_by_peer);
    ck_assert_ptr_nonnull(strstr(p.b.why, "no common peer protocol version"));
    ck_assert_ptr_nonnull(strstr(p.a.why, "no common peer protocol version"));
    ck_assert_ptr_nonnull(strstr(p.a.why, "7..9"));
    pair_free(&p);
}
END_TEST

START_TEST(wrong_token_fails_on_both_sides_without_a_session)
{
    pair p;
    pair_init(&p, "right", "wrong", 0, 0);
    ck_assert(!run(&p));
    /* the initiator checks the responder's proof first and refuses */
    ck_assert_int_eq(p.ra, AX_EAUTH);
    ck_assert_int_eq(p.rb, AX_EAUTH);
    ck_assert(p.b.refused_by_peer);
    ck_assert_ptr_nonnull(strstr(p.a.why, "failed authentication"));
    ck_assert_ptr_nonnull(strstr(p.b.why, "auth_token"));
    pair_free(&p);
}
END_TEST

START_TEST(forged_auth_is_refused_by_the_responder)
{
    pair p;
    pair_init(&p, "tok", "tok", 0, 0);
    ck_assert_int_eq(axd_hs_start(&p.a, &p.ab), 0);
    ck_assert_int_eq(feed(&p.b, &p.ab, &p.ba), AXD_HS_MORE);
    ax_wbuf_free(&p.ba);
    /* an attacker answers with a made-up proof */
    size_t st = ax_peer_frame_begin(&p.ab, AX_PT_AUTH, 0);
    uint8_t junk[AX_PEER_PROOF_SIZE];
    memset(junk, 7, sizeof junk);
    ax_wbuf_put(&p.ab, junk, sizeof junk);
    ax_peer_frame_end(&p.ab, st, 1024);
    ck_assert_int_eq(feed(&p.b, &p.ab, &p.ba), AX_EAUTH);
    pair_free(&p);
}
END_TEST

START_TEST(data_frame_before_the_handshake_is_refused)
{
    axd_hs h;
    axd_hs_cfg c = {.self_id = ID_B, .token = "t", .token_len = 1};
    ck_assert_int_eq(axd_hs_init(&h, AXD_HS_RESPONDER, &c), 0);
    ax_wbuf in, out;
    ax_wbuf_init(&in);
    ax_wbuf_init(&out);
    size_t st = ax_peer_frame_begin(&in, AX_PT_TELL, 3);
    ax_peer_rec r = {.to_id = 1, .to_gen = 1, .msg = "inc", .msg_len = 3};
    ax_peer_rec_put(&in, AX_PT_TELL, &r);
    ax_peer_frame_end(&in, st, 1024);
    ck_assert_int_eq(axd_hs_input(&h, in.data, in.len, &out), AX_EPROTO);
    ck_assert_ptr_nonnull(strstr(h.why, "unexpected TELL"));
    ax_peer_hdr hd;
    ck_assert_int_eq(ax_peer_hdr_decode(out.data, out.len, 1024, &hd, NULL), 0);
    ck_assert_uint_eq(hd.type, AX_PT_REFUSE);
    ax_wbuf_free(&in);
    ax_wbuf_free(&out);
    axd_hs_clear(&h);
}
END_TEST

START_TEST(replayed_reordered_forged_and_foreign_frames_are_dropped_and_counted)
{
    pair p;
    pair_init(&p, "k", "k", 0, 0);
    ck_assert(run(&p));
    axd_psess sa, sb;
    axd_hs_take_session(&p.a, &sa);
    axd_hs_take_session(&p.b, &sb);
    ax_wbuf f1, f2, f3;
    ax_wbuf_init(&f1);
    ax_wbuf_init(&f2);
    ax_wbuf_init(&f3);
    make_frame(&sa, &f1, "one");
    make_frame(&sa, &f2, "two");
    make_frame(&sa, &f3, "three");
    ck_assert_int_eq(open_frame(&sb, &f2), 0);         /* gap allowed: frames may be lost */
    ck_assert_int_eq(open_frame(&sb, &f1), AX_ESTALE); /* reordered */
    ck_assert_int_eq(open_frame(&sb, &f2), AX_ESTALE); /* replayed */
    f3.data[f3.len - 1] ^= 1;                          /* forged body */
    ck_assert_int_eq(open_frame(&sb, &f3), AX_EAUTH);
    f3.data[f3.len - 1] ^= 1;
    f3.data[AX_PEER_MAC_OFF] ^= 0x80; /* forged MAC */
    ck_assert_int_eq(open_frame(&sb, &f3), AX_EAUTH);
    f3.data[AX_PEER_MAC_OFF] ^= 0x80;
    ck_assert_int_eq(open_frame(&sb, &f3), 0);
    ck_assert_uint_eq(sb.replayed, 2);
    ck_assert_uint_eq(sb.forged, 2);
    /* a frame from another session (same peer, same keys would not exist: new nonces) */
    pair q;
    pair_init(&q, "k", "k", 0, 0);
    ck_assert(run(&q));
    axd_psess qa;
    axd_hs_take_session(&q.a, &qa);
    make_frame(&qa, &f1, "other session");
    ck_assert_int_eq(open_frame(&sb, &f1), AX_EAUTH);
    /* a frame of B reflected back to B */
    make_frame(&sb, &f2, "reflect");
    ck_assert_int_eq(open_frame(&sb, &f2), AX_EAUTH);
    axd_psess_free(&qa);
    pair_free(&q);
    ax_wbuf_free(&f1);
    ax_wbuf_free(&f2);
    ax_wbuf_free(&f3);
    axd_psess_free(&sa);
    axd_psess_free(&sb);
    pair_free(&p);
}
END_TEST

START_TEST(empty_token_works_only_as_a_key_not_as_a_bypass)
{
    pair p;
    pair_init(&p, "", "", 0, 0); /* insecure mode: both sides without a token */
    ck_assert(run(&p));
    pair_free(&p);
    pair_init(&p, "", "x", 0, 0);
    ck_assert(!run(&p));
    ck_assert_int_eq(p.ra, AX_EAUTH);
    pair_free(&p);
}
END_TEST

START_TEST(self_connection_and_missing_session_suffix_are_refused)
{
    axd_hs h;
    axd_hs_cfg c = {.self_id = "node-b", .token = "t", .token_len = 1};
    ck_assert_int_eq(axd_hs_init(&h, AXD_HS_RESPONDER, &c), AX_EINVAL);
    pair p;
    memset(&p, 0, sizeof p);
    axd_hs_cfg ca = {.self_id = "node-b@boot-cccccccccccccccc-session-1", .token = "t", .token_len = 1};
    axd_hs_cfg cb = {.self_id = ID_B, .token = "t", .token_len = 1};
    ck_assert_int_eq(axd_hs_init(&p.a, AXD_HS_INITIATOR, &ca), 0);
    ck_assert_int_eq(axd_hs_init(&p.b, AXD_HS_RESPONDER, &cb), 0);
    ax_wbuf_init(&p.ab);
    ax_wbuf_init(&p.ba);
    ck_assert(!run(&p));
    ck_assert_int_eq(p.rb, AX_EINVAL);
    pair_free(&p);
}
END_TEST

/* ---------------- PROTOCOL.md agrees with peer.h ---------------- */

START_TEST(protocol_md_peer_section_matches_peer_h)
{
    const char *src = getenv("AX_SOURCE_DIR");
    char path[4096];
    snprintf(path, sizeof path, "%s/proto/PROTOCOL.md", src ? src : ".");
    FILE *f = fopen(path, "r");
    ck_assert_msg(f != NULL, "cannot open %s", path);
    static struct {
        const char *name;
        long long v;
        int seen;
    } want[] = {
#define C(x) {#x, (long long)(x), 0}
        C(AX_PEER_MAGIC), C(AX_PEER_VERSION), C(AX_PEER_VERSION_MIN), C(AX_PEER_HDR_SIZE), C(AX_PEER_MAC_OFF),
        C(AX_PEER_MAC_SIZE), C(AX_PEER_NONCE_SIZE), C(AX_PEER_PROOF_SIZE), C(AX_PEER_MAX_FRAME_DEFAULT),
        C(AX_PEER_BATCH_BODY), C(AX_PEER_FEAT_BATCH), C(AX_PEER_FEAT_MONITOR), C(AX_PEER_FEAT_DRAIN), C(AX_PEER_FEAT_STATUS),
#undef C
#define T(x) {#x, AX_PT_##x, 0}
        T(HELLO), T(HELLO_ACK), T(AUTH), T(AUTH_OK), T(REFUSE), T(PING), T(PONG), T(CLOSE), T(MONITOR),
        T(DEMONITOR), T(DOWN), T(EPOCHS), T(RELEASED), T(STATUS_REQ), T(STATUS), T(TELL), T(ASK), T(REPLY), T(KEYED),
#undef T
    };
    char line[1024];
    int in = 0, rows = 0;
    while (fgets(line, sizeof line, f)) {
        if (!strncmp(line, "## ", 3))
            in = !strncmp(line, "## Peer protocol", 16);
        if (!in || line[0] != '|')
            continue;
        char c0[128], c1[128];
        if (sscanf(line, "| %127[^ |] | %127[^ |] |", c0, c1) != 2 || !strncmp(c0, "---", 3))
            continue;
        long long v = strtoll(c0, NULL, 0);
        for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
            if (strcmp(want[i].name, c1) != 0)
                continue;
            ck_assert_msg(want[i].v == v, "%s is %lld in peer.h but %s in PROTOCOL.md", c1, want[i].v, c0);
            want[i].seen = 1;
            rows++;
        }
    }
    fclose(f);
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
        ck_assert_msg(want[i].seen, "%s is missing from PROTOCOL.md's Peer protocol tables", want[i].name);
    ck_assert_int_gt(rows, 0);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("cluster_unit");
    TCase *t = tcase_create("node_id");
    tcase_add_test(t, wire_id_with_exact_suffix_parses_as_session);
    tcase_add_test(t, names_that_merely_contain_boot_stay_logical);
    tcase_add_test(t, invalid_names_are_refused_and_out_untouched);
    suite_add_tcase(s, t);
    t = tcase_create("codec");
    tcase_add_test(t, peer_header_round_trips_and_rejects_garbage);
    tcase_add_test(t, records_round_trip_in_batches);
    tcase_add_test(t, status_records_round_trip_and_bad_ones_are_refused);
    tcase_add_test(t, every_body_decoder_survives_random_bytes);
    tcase_add_test(t, protocol_md_peer_section_matches_peer_h);
    suite_add_tcase(s, t);
    t = tcase_create("handshake");
    tcase_add_test(t, handshake_happy_path_agrees_on_keys_and_version);
    tcase_add_test(t, highest_common_version_is_chosen);
    tcase_add_test(t, version_mismatch_is_refused_with_a_reason_on_both_sides);
    tcase_add_test(t, wrong_token_fails_on_both_sides_without_a_session);
    tcase_add_test(t, forged_auth_is_refused_by_the_responder);
    tcase_add_test(t, data_frame_before_the_handshake_is_refused);
    tcase_add_test(t, replayed_reordered_forged_and_foreign_frames_are_dropped_and_counted);
    tcase_add_test(t, empty_token_works_only_as_a_key_not_as_a_bypass);
    tcase_add_test(t, self_connection_and_missing_session_suffix_are_refused);
    suite_add_tcase(s, t);
    return s;
}

int main(void)
{
    SRunner *r = srunner_create(suite());
    srunner_run_all(r, CK_NORMAL);
    int failed = srunner_ntests_failed(r);
    srunner_free(r);
    return failed ? 1 : 0;
}
