/* Peer handshake state machine and session sealing (see handshake.h and PROTOCOL.md
 * "Peer protocol"). Secrets are wiped with OPENSSL_cleanse; MACs and proofs are
 * compared with CRYPTO_memcmp. */
#include "handshake.h"

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/rand.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

enum { ST_NEW, ST_WAIT_ACK, ST_WAIT_AUTH, ST_WAIT_AUTH_OK, ST_AUTHED, ST_DONE, ST_FAILED };

static const char LABEL[] = "axactor-peer-v1";

/* ---------------- primitives ---------------- */

static EVP_MAC *hmac_alg(void)
{
    static EVP_MAC *m; /* fetched once; a constant of the process, never freed */
    if (!m)
        m = EVP_MAC_fetch(NULL, "HMAC", NULL);
    return m;
}

static EVP_MAC_CTX *hmac_new(const uint8_t key[32])
{
    OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)"SHA256", 0),
                           OSSL_PARAM_construct_end()};
    EVP_MAC *alg = hmac_alg();
    EVP_MAC_CTX *c = alg ? EVP_MAC_CTX_new(alg) : NULL;
    if (c && EVP_MAC_init(c, key, 32, params) != 1) {
        EVP_MAC_CTX_free(c);
        c = NULL;
    }
    return c;
}

static int hmac_parts(const uint8_t key[32], const void *a, size_t an, const void *b, size_t bn, uint8_t out[32])
{
    EVP_MAC_CTX *c = hmac_new(key);
    size_t ol = 0;
    int ok = c && EVP_MAC_update(c, a, an) == 1 && EVP_MAC_update(c, b, bn) == 1 &&
             EVP_MAC_final(c, out, &ol, 32) == 1 && ol == 32;
    EVP_MAC_CTX_free(c);
    return ok ? 0 : AX_ENOMEM;
}

static int hkdf64(const uint8_t key[32], const uint8_t *salt, size_t saltlen, const uint8_t *info, size_t infolen,
                  uint8_t out[64])
{
    EVP_KDF *kdf = EVP_KDF_fetch(NULL, "HKDF", NULL);
    EVP_KDF_CTX *kc = kdf ? EVP_KDF_CTX_new(kdf) : NULL;
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, (char *)"SHA256", 0),
        OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, (void *)key, 32),
        OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SALT, (void *)salt, saltlen),
        OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, (void *)info, infolen),
        OSSL_PARAM_construct_end(),
    };
    int ok = kc && EVP_KDF_derive(kc, out, 64, params) == 1;
    EVP_KDF_CTX_free(kc);
    EVP_KDF_free(kdf);
    return ok ? 0 : AX_ENOMEM;
}

int axd_hs_derive(const uint8_t key[32], uint16_t version, uint32_t features, const char *id_a, const char *id_b,
                 const uint8_t *nonce_a, const uint8_t *nonce_b, uint8_t proof_a[32], uint8_t proof_b[32],
                 uint8_t k_a2b[32], uint8_t k_b2a[32])
{
    /* The transcript binds the negotiated version and features, both identities and
     * both nonces; the two proofs use different labels so neither can be reflected. */
    ax_wbuf t;
    uint8_t salt[2 * AX_PEER_NONCE_SIZE], th[32], info[64], keys[64];
    unsigned thl = 0;
    int rc = AX_ENOMEM;
    ax_wbuf_init(&t);
    ax_wbuf_put(&t, LABEL, sizeof LABEL - 1);
    ax_wbuf_u16(&t, version);
    ax_wbuf_u32(&t, features);
    ax_wbuf_str(&t, id_a, strlen(id_a));
    ax_wbuf_str(&t, id_b, strlen(id_b));
    ax_wbuf_put(&t, nonce_a, AX_PEER_NONCE_SIZE);
    ax_wbuf_put(&t, nonce_b, AX_PEER_NONCE_SIZE);
    if (t.err)
        goto out;
    if (hmac_parts(key, "initiator", 9, t.data, t.len, proof_a) || hmac_parts(key, "responder", 9, t.data, t.len, proof_b))
        goto out;
    if (EVP_Digest(t.data, t.len, th, &thl, EVP_sha256(), NULL) != 1)
        goto out;
    memcpy(salt, nonce_a, AX_PEER_NONCE_SIZE);
    memcpy(salt + AX_PEER_NONCE_SIZE, nonce_b, AX_PEER_NONCE_SIZE);
    memcpy(info, "axactor-peer-v1 session keys", 28);
    memcpy(info + 28, th, 32);
    if (hkdf64(key, salt, sizeof salt, info, 60, keys))
        goto out;
    memcpy(k_a2b, keys, 32);
    memcpy(k_b2a, keys + 32, 32);
    rc = 0;
out:
    OPENSSL_cleanse(keys, sizeof keys);
    ax_wbuf_free(&t);
    return rc;
}

/* ---------------- sessions ---------------- */

static void put32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (24 - 8 * i));
}

static void put64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (56 - 8 * i));
}

/* MAC over header bytes [0, MAC_OFF) and the body, truncated. */
static int frame_mac(EVP_MAC_CTX *c, const uint8_t *frame, size_t n, uint8_t out[AX_PEER_MAC_SIZE])
{
    uint8_t full[32];
    size_t ol = 0;
    if (!c || EVP_MAC_init(c, NULL, 0, NULL) != 1 || EVP_MAC_update(c, frame, AX_PEER_MAC_OFF) != 1 ||
        EVP_MAC_update(c, frame + AX_PEER_HDR_SIZE, n - AX_PEER_HDR_SIZE) != 1 ||
        EVP_MAC_final(c, full, &ol, sizeof full) != 1)
        return -1;
    memcpy(out, full, AX_PEER_MAC_SIZE);
    return 0;
}

void axd_psess_seal(axd_psess *s, uint8_t *frame, size_t n)
{
    put32(frame + 8, s->tx_session);
    put64(frame + 16, ++s->tx_seq);
    if (frame_mac(s->tx, frame, n, frame + AX_PEER_MAC_OFF) != 0)
        memset(frame + AX_PEER_MAC_OFF, 0, AX_PEER_MAC_SIZE); /* the peer drops it as forged */
}

int axd_psess_open(axd_psess *s, const ax_peer_hdr *h, const uint8_t *frame, size_t n)
{
    uint8_t mac[AX_PEER_MAC_SIZE];
    if (n < AX_PEER_HDR_SIZE || frame_mac(s->rx, frame, n, mac) != 0 ||
        CRYPTO_memcmp(mac, frame + AX_PEER_MAC_OFF, AX_PEER_MAC_SIZE) != 0 || h->session != s->rx_session) {
        s->forged++;
        return AX_EAUTH;
    }
    if (h->seq <= s->rx_seq) {
        s->replayed++;
        return AX_ESTALE;
    }
    s->rx_seq = h->seq;
    return 0;
}

void axd_psess_free(axd_psess *s)
{
    if (!s)
        return;
    EVP_MAC_CTX_free(s->tx);
    EVP_MAC_CTX_free(s->rx);
    memset(s, 0, sizeof *s);
}

/* ---------------- the handshake ---------------- */

static int hs_fail(axd_hs *h, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int hs_fail(axd_hs *h, int code, const char *fmt, ...)
{
    va_list ap;
    h->state = ST_FAILED;
    h->code = code;
    va_start(ap, fmt);
    vsnprintf(h->why, sizeof h->why, fmt, ap);
    va_end(ap);
    return code;
}

int axd_hs_init(axd_hs *h, int role, const axd_hs_cfg *cfg)
{
    axd_node_id self;
    size_t sl = cfg->self_id ? strlen(cfg->self_id) : 0;
    uint16_t lo = cfg->min_ver ? cfg->min_ver : AX_PEER_VERSION_MIN;
    uint16_t hi = cfg->max_ver ? cfg->max_ver : AX_PEER_VERSION;
    if ((role != AXD_HS_INITIATOR && role != AXD_HS_RESPONDER) || !sl ||
        axd_node_id_parse(cfg->self_id, sl, &self) != 0 || !self.has_session || self.session > UINT32_MAX ||
        cfg->token_len > AXD_HS_TOKEN_MAX || (cfg->token_len && !cfg->token) || lo < 1 || lo > hi)
        return AX_EINVAL;
    memset(h, 0, sizeof *h);
    h->role = role;
    h->state = ST_NEW;
    memcpy(h->self_id, cfg->self_id, sl + 1);
    if (cfg->expect_name)
        snprintf(h->expect, sizeof h->expect, "%s", cfg->expect_name);
    h->self = self;
    h->min_ver = lo;
    h->max_ver = hi;
    h->features = cfg->features ? cfg->features : AX_PEER_FEAT_KNOWN;
    h->shard_count = cfg->shard_count ? cfg->shard_count : 1;
    snprintf(h->store, sizeof h->store, "%s", cfg->store && *cfg->store ? cfg->store : "memory");
    /* Fixed-size key material, so an empty token (insecure mode) is still a valid key. */
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    unsigned kl = 0;
    int ok = md && EVP_DigestInit_ex(md, EVP_sha256(), NULL) == 1 &&
             EVP_DigestUpdate(md, "axactor-auth-token:", 19) == 1 &&
             EVP_DigestUpdate(md, cfg->token ? cfg->token : "", cfg->token_len) == 1 &&
             EVP_DigestFinal_ex(md, h->key, &kl) == 1;
    EVP_MD_CTX_free(md);
    if (!ok)
        return AX_ENOMEM;
    uint8_t *mine = role == AXD_HS_INITIATOR ? h->nonce_a : h->nonce_b;
    if (cfg->nonce)
        memcpy(mine, cfg->nonce, AX_PEER_NONCE_SIZE);
    else if (RAND_bytes(mine, AX_PEER_NONCE_SIZE) != 1)
        return AX_ENOMEM;
    return 0;
}

static void write_plain(ax_wbuf *out, uint8_t type, void (*body)(ax_wbuf *, const void *), const void *arg)
{
    size_t st = ax_peer_frame_begin(out, type, 0);
    body(out, arg);
    ax_peer_frame_end(out, st, AX_FRAME_MAX_LIMIT);
}

static void put_hello(ax_wbuf *b, const void *arg) { ax_peer_hello_put(b, arg); }
static void put_ack(ax_wbuf *b, const void *arg) { ax_peer_hello_ack_put(b, arg); }
static void put_proof(ax_wbuf *b, const void *arg) { ax_wbuf_put(b, arg, AX_PEER_PROOF_SIZE); }

void axd_hs_refuse(axd_hs *h, int code, const char *reason, ax_wbuf *out)
{
    size_t st = ax_peer_frame_begin(out, AX_PT_REFUSE, 0);
    ax_peer_reason_put(out, code < 0 ? code : AX_EPROTO, reason);
    ax_peer_frame_end(out, st, AX_FRAME_MAX_LIMIT);
    if (h->state != ST_FAILED)
        hs_fail(h, code < 0 ? code : AX_EPROTO, "%s", reason ? reason : "refused");
}

int axd_hs_start(axd_hs *h, ax_wbuf *out)
{
    if (h->role != AXD_HS_INITIATOR || h->state != ST_NEW)
        return AX_EINVAL;
    ax_peer_hello m = {h->min_ver,  h->max_ver,      h->features, h->self_id, strlen(h->self_id),
                       h->expect,   strlen(h->expect), h->nonce_a, h->shard_count, h->store, strlen(h->store)};
    write_plain(out, AX_PT_HELLO, put_hello, &m);
    h->state = ST_WAIT_ACK;
    return 0;
}

static int make_session(axd_hs *h, const uint8_t k_tx[32], const uint8_t k_rx[32])
{
    h->sess.tx = hmac_new(k_tx);
    h->sess.rx = hmac_new(k_rx);
    h->sess.tx_session = (uint32_t)h->self.session;
    h->sess.rx_session = (uint32_t)h->peer.session;
    return h->sess.tx && h->sess.rx ? 0 : AX_ENOMEM;
}

/* Nodes that would split the keyed actors differently (another shard count) or keep
 * their leases apart (another store) cannot form one cluster: refused, both sides log
 * why. */
static int check_cluster_params(axd_hs *h, uint32_t shards, const char *store, size_t store_len, ax_wbuf *out)
{
    char r[700];
    if (shards != h->shard_count) {
        snprintf(r, sizeof r,
                 "shards.count differs: %.64s has %u, %.64s has %u (every node of a cluster must use the same "
                 "value)",
                 h->peer.name, shards, h->self.name, h->shard_count);
        axd_hs_refuse(h, AX_ECONFIG, r, out);
        return h->code;
    }
    if (store_len != strlen(h->store) || memcmp(store, h->store, store_len)) {
        snprintf(r, sizeof r,
                 "lease store differs: %.64s uses %.*s, %.64s uses %s (every node of a cluster must use the same "
                 "store, named the same way)",
                 h->peer.name, (int)store_len, store, h->self.name, h->store);
        axd_hs_refuse(h, AX_ECONFIG, r, out);
        return h->code;
    }
    return 0;
}

/* Identity checks common to both roles. */
static int check_peer_id(axd_hs *h, const char *id, size_t n, ax_wbuf *out)
{
    char tmp[AXD_NODE_ID_MAX + 1];
    if (axd_node_id_parse(id, n, &h->peer) != 0 || !h->peer.has_session || h->peer.session > UINT32_MAX) {
        snprintf(tmp, sizeof tmp, "%.*s", (int)(n > 200 ? 200 : n), id);
        axd_hs_refuse(h, AX_EPROTO, "wire id has no session suffix (name@boot-<hex>-session-<n>)", out);
        return hs_fail(h, AX_EPROTO, "peer sent a wire id without a session suffix: %s", tmp);
    }
    if (!strcmp(h->peer.name, h->self.name)) {
        axd_hs_refuse(h, AX_EINVAL, "same logical node name as this node (connection to self?)", out);
        return hs_fail(h, AX_EINVAL, "peer %.*s uses this node's own logical name %s", (int)(n > 200 ? 200 : n), id, h->self.name);
    }
    return 0;
}

static int on_hello(axd_hs *h, const uint8_t *body, size_t n, ax_wbuf *out)
{
    ax_peer_hello m;
    const char *why = NULL;
    char r[256];
    if (ax_peer_hello_get(body, n, &m, &why) != 0) {
        axd_hs_refuse(h, AX_EPROTO, why, out);
        return hs_fail(h, AX_EPROTO, "malformed HELLO: %s", why);
    }
    int rc = check_peer_id(h, m.wire_id, m.wire_id_len, out);
    if (rc)
        return rc;
    uint16_t v = m.max_ver < h->max_ver ? m.max_ver : h->max_ver;
    if (v < m.min_ver || v < h->min_ver) {
        snprintf(r, sizeof r, "no common peer protocol version: %.64s speaks %u..%u, %.64s speaks %u..%u", h->peer.name,
                 m.min_ver, m.max_ver, h->self.name, h->min_ver, h->max_ver);
        axd_hs_refuse(h, AX_EVERSION, r, out);
        return h->code;
    }
    if (m.to_name_len && (m.to_name_len != strlen(h->self.name) || memcmp(m.to_name, h->self.name, m.to_name_len))) {
        snprintf(r, sizeof r, "this node is '%.64s', not '%.*s' (check the address book)", h->self.name,
                 (int)(m.to_name_len > 100 ? 100 : m.to_name_len), m.to_name);
        axd_hs_refuse(h, AX_ENOTFOUND, r, out);
        return h->code;
    }
    if ((rc = check_cluster_params(h, m.shard_count, m.store, m.store_len, out)) != 0)
        return rc;
    h->version = v;
    h->peer_features = m.features;
    h->features &= m.features;
    memcpy(h->nonce_a, m.nonce, AX_PEER_NONCE_SIZE);
    uint8_t pa[32], pb[32], ka[32], kb[32];
    snprintf(r, sizeof r, "%.*s", (int)m.wire_id_len, m.wire_id);
    if (axd_hs_derive(h->key, h->version, h->features, r, h->self_id, h->nonce_a, h->nonce_b, pa, pb, ka, kb))
        return hs_fail(h, AX_ENOMEM, "key derivation failed");
    /* Keep proof_a to check AUTH against; keys wait until the initiator has proven itself. */
    rc = make_session(h, kb, ka);
    ax_peer_hello_ack ack = {h->version,      h->features, h->self_id, strlen(h->self_id), h->nonce_b, pb,
                             h->shard_count, h->store,    strlen(h->store)};
    write_plain(out, AX_PT_HELLO_ACK, put_ack, &ack);
    memcpy(h->expect, r, strlen(r) + 1); /* responder: remember the peer's full wire id */
    /* proof_a is recomputed on AUTH from the same transcript: nothing secret lingers. */
    OPENSSL_cleanse(pa, sizeof pa);
    OPENSSL_cleanse(ka, sizeof ka);
    OPENSSL_cleanse(kb, sizeof kb);
    if (rc)
        return hs_fail(h, rc, "cannot create MAC contexts");
    h->state = ST_WAIT_AUTH;
    return AXD_HS_MORE;
}

static int on_ack(axd_hs *h, const uint8_t *body, size_t n, ax_wbuf *out)
{
    ax_peer_hello_ack m;
    const char *why = NULL;
    char pid[AXD_NODE_ID_MAX + 1];
    if (ax_peer_hello_ack_get(body, n, &m, &why) != 0) {
        axd_hs_refuse(h, AX_EPROTO, why, out);
        return hs_fail(h, AX_EPROTO, "malformed HELLO_ACK: %s", why);
    }
    int rc = check_peer_id(h, m.wire_id, m.wire_id_len, out);
    if (rc)
        return rc;
    snprintf(pid, sizeof pid, "%.*s", (int)m.wire_id_len, m.wire_id);
    if (m.version < h->min_ver || m.version > h->max_ver) {
        char r[160];
        snprintf(r, sizeof r, "peer chose version %u outside %u..%u", m.version, h->min_ver, h->max_ver);
        axd_hs_refuse(h, AX_EVERSION, r, out);
        return h->code;
    }
    if (*h->expect && strcmp(h->expect, h->peer.name)) {
        char r[300];
        snprintf(r, sizeof r, "expected node '%.64s' at this address, found '%.64s'", h->expect, h->peer.name);
        axd_hs_refuse(h, AX_ENOTFOUND, r, out);
        return h->code;
    }
    if ((rc = check_cluster_params(h, m.shard_count, m.store, m.store_len, out)) != 0)
        return rc;
    h->version = m.version;
    h->peer_features = m.features;
    h->features &= m.features;
    memcpy(h->nonce_b, m.nonce, AX_PEER_NONCE_SIZE);
    uint8_t pa[32], pb[32], ka[32], kb[32];
    if (axd_hs_derive(h->key, h->version, h->features, h->self_id, pid, h->nonce_a, h->nonce_b, pa, pb, ka, kb))
        return hs_fail(h, AX_ENOMEM, "key derivation failed");
    int good = CRYPTO_memcmp(pb, m.proof, 32) == 0;
    rc = good ? make_session(h, ka, kb) : 0;
    if (good && !rc)
        write_plain(out, AX_PT_AUTH, put_proof, pa);
    OPENSSL_cleanse(pa, sizeof pa);
    OPENSSL_cleanse(ka, sizeof ka);
    OPENSSL_cleanse(kb, sizeof kb);
    if (!good) {
        axd_hs_refuse(h, AX_EAUTH, "authentication failed (auth_token mismatch)", out);
        return hs_fail(h, AX_EAUTH, "peer %s failed authentication: its proof does not match our auth_token", pid);
    }
    if (rc)
        return hs_fail(h, rc, "cannot create MAC contexts");
    memcpy(h->expect, pid, strlen(pid) + 1);
    h->state = ST_WAIT_AUTH_OK;
    return AXD_HS_MORE;
}

static int on_auth(axd_hs *h, const uint8_t *body, size_t n, ax_wbuf *out)
{
    const uint8_t *proof;
    const char *why = NULL;
    uint8_t pa[32], pb[32], ka[32], kb[32];
    if (ax_peer_auth_get(body, n, &proof, &why) != 0) {
        axd_hs_refuse(h, AX_EPROTO, why, out);
        return hs_fail(h, AX_EPROTO, "malformed AUTH: %s", why);
    }
    if (axd_hs_derive(h->key, h->version, h->features, h->expect, h->self_id, h->nonce_a, h->nonce_b, pa, pb, ka, kb))
        return hs_fail(h, AX_ENOMEM, "key derivation failed");
    int good = CRYPTO_memcmp(pa, proof, 32) == 0;
    OPENSSL_cleanse(pa, sizeof pa);
    OPENSSL_cleanse(ka, sizeof ka);
    OPENSSL_cleanse(kb, sizeof kb);
    if (!good) {
        axd_hs_refuse(h, AX_EAUTH, "authentication failed (auth_token mismatch)", out);
        return hs_fail(h, AX_EAUTH, "peer %s failed authentication: its proof does not match our auth_token",
                       h->expect);
    }
    h->state = ST_AUTHED;
    return AXD_HS_READY;
}

int axd_hs_accept(axd_hs *h, ax_wbuf *out)
{
    if (h->role != AXD_HS_RESPONDER || h->state != ST_AUTHED)
        return AX_EINVAL;
    size_t st = ax_peer_frame_begin(out, AX_PT_AUTH_OK, 0);
    if (ax_peer_frame_end(out, st, 0) != 0)
        return AX_ENOMEM;
    axd_psess_seal(&h->sess, out->data + st, AX_PEER_HDR_SIZE);
    h->state = ST_DONE;
    return 0;
}

int axd_hs_input(axd_hs *h, const uint8_t *frame, size_t n, ax_wbuf *out)
{
    ax_peer_hdr hd;
    const char *why = NULL;
    if (h->state == ST_FAILED || h->state == ST_DONE || h->state == ST_AUTHED)
        return AX_EINVAL;
    int rc = ax_peer_hdr_decode(frame, n, AX_FRAME_MAX_LIMIT, &hd, &why);
    if (rc != 0 || n != AX_PEER_HDR_SIZE + (size_t)hd.body_len) {
        axd_hs_refuse(h, AX_EPROTO, "malformed frame during the handshake", out);
        return hs_fail(h, AX_EPROTO, "malformed frame during the handshake: %s", why ? why : "bad length");
    }
    const uint8_t *body = frame + AX_PEER_HDR_SIZE;
    if (hd.type == AX_PT_REFUSE) {
        ax_peer_reason r;
        char txt[300];
        if (ax_peer_reason_get(body, hd.body_len, &r, &why) != 0)
            return hs_fail(h, AX_EPROTO, "peer refused the handshake (malformed REFUSE)");
        snprintf(txt, sizeof txt, "%.*s", (int)(r.reason_len > 256 ? 256 : r.reason_len), r.reason);
        hs_fail(h, r.code, "refused by the peer: %s", txt);
        h->refused_by_peer = 1;
        return h->code;
    }
    int want = h->role == AXD_HS_RESPONDER ? (h->state == ST_NEW ? AX_PT_HELLO : AX_PT_AUTH)
                                          : (h->state == ST_WAIT_ACK ? AX_PT_HELLO_ACK : AX_PT_AUTH_OK);
    if (hd.type != want || (want != AX_PT_AUTH_OK && (hd.seq != 0 || hd.session != 0))) {
        char r[160];
        snprintf(r, sizeof r, "unexpected %s during the handshake (expected %s)", ax_peer_type_name(hd.type),
                 ax_peer_type_name((uint8_t)want));
        axd_hs_refuse(h, AX_EPROTO, r, out);
        return h->code;
    }
    switch (want) {
    case AX_PT_HELLO: return on_hello(h, body, hd.body_len, out);
    case AX_PT_AUTH: return on_auth(h, body, hd.body_len, out);
    case AX_PT_HELLO_ACK: return on_ack(h, body, hd.body_len, out);
    default:
        if (hd.body_len != 0 || axd_psess_open(&h->sess, &hd, frame, n) != 0)
            return hs_fail(h, AX_EAUTH, "AUTH_OK from %s is not authentic", h->expect);
        h->state = ST_DONE;
        return AXD_HS_READY;
    }
}

void axd_hs_take_session(axd_hs *h, axd_psess *out)
{
    *out = h->sess;
    memset(&h->sess, 0, sizeof h->sess);
}

void axd_hs_clear(axd_hs *h)
{
    if (!h)
        return;
    axd_psess_free(&h->sess);
    OPENSSL_cleanse(h, sizeof *h);
}
