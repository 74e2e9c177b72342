/* The one parser and formatter of node wire ids (see node_id.h). Names come from peers
 * and clients, so every byte is checked and nothing is read past n. */
#include "node_id.h"

#include <stdio.h>
#include <string.h>

#include "axactor/errors.h"

static const char BOOT_TAG[] = "@boot-";
static const char SESS_TAG[] = "-session-";
#define BOOT_TAG_LEN (sizeof BOOT_TAG - 1)
#define SESS_TAG_LEN (sizeof SESS_TAG - 1)
#define SUFFIX_MIN (BOOT_TAG_LEN + AXD_NODE_BOOT_HEX + SESS_TAG_LEN + 1)

static int valid_name(const char *s, size_t n)
{
    if (n == 0 || n > AXD_NODE_ID_MAX)
        return 0;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x21 || (unsigned char)s[i] > 0x7e)
            return 0;
    return 1;
}

static int is_lower_hex(char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); }

/* Decimal 1..UINT64_MAX without a leading zero, exactly the bytes [p, p+n). */
static int parse_session(const char *p, size_t n, uint64_t *out)
{
    uint64_t v = 0;
    if (n == 0 || n > 20 || p[0] == '0')
        return -1;
    for (size_t i = 0; i < n; i++) {
        if (p[i] < '0' || p[i] > '9')
            return -1;
        unsigned d = (unsigned)(p[i] - '0');
        if (v > (UINT64_MAX - d) / 10)
            return -1;
        v = v * 10 + d;
    }
    *out = v;
    return 0;
}

/* Does s[0..n) end with the exact session suffix? Then *name_len is the prefix length. */
static int split_suffix(const char *s, size_t n, size_t *name_len, const char **boot, uint64_t *session)
{
    if (n <= SUFFIX_MIN)
        return 0; /* need a non-empty name before the suffix */
    /* The suffix has a fixed shape up to the session digits, so it starts at the last
     * "@boot-" that can begin it; try every candidate from the right. */
    for (size_t at = n - SUFFIX_MIN + 1; at-- > 0;) {
        if (at == 0)
            return 0;
        if (memcmp(s + at, BOOT_TAG, BOOT_TAG_LEN) != 0)
            continue;
        const char *h = s + at + BOOT_TAG_LEN;
        size_t i;
        for (i = 0; i < AXD_NODE_BOOT_HEX && is_lower_hex(h[i]); i++)
            ;
        if (i != AXD_NODE_BOOT_HEX)
            return 0; /* the last "@boot-" decides: the suffix must start there */
        const char *t = h + AXD_NODE_BOOT_HEX;
        if (memcmp(t, SESS_TAG, SESS_TAG_LEN) != 0)
            return 0;
        const char *d = t + SESS_TAG_LEN;
        if (parse_session(d, (size_t)(s + n - d), session) != 0)
            return 0;
        *name_len = at;
        *boot = h;
        return 1;
    }
    return 0;
}

int axd_node_id_parse(const char *s, size_t n, axd_node_id *out)
{
    size_t name_len = n;
    const char *boot = NULL;
    uint64_t session = 0;
    if (!s || !valid_name(s, n))
        return AX_EINVAL;
    int has = split_suffix(s, n, &name_len, &boot, &session);
    memcpy(out->name, s, name_len);
    out->name[name_len] = 0;
    if (has) {
        memcpy(out->boot, boot, AXD_NODE_BOOT_HEX);
        out->boot[AXD_NODE_BOOT_HEX] = 0;
    } else {
        out->boot[0] = 0;
    }
    out->session = has ? session : 0;
    out->has_session = has;
    return 0;
}

int axd_node_id_format(char *buf, size_t n, const char *name, const char *boot, uint64_t session)
{
    if (!name || !boot || session == 0 || strlen(boot) != AXD_NODE_BOOT_HEX)
        return AX_EINVAL;
    for (size_t i = 0; i < AXD_NODE_BOOT_HEX; i++)
        if (!is_lower_hex(boot[i]))
            return AX_EINVAL;
    int w = snprintf(buf, n, "%s@boot-%s-session-%llu", name, boot, (unsigned long long)session);
    if (w < 0 || (size_t)w >= n || (size_t)w > AXD_NODE_ID_MAX)
        return AX_ETOOBIG;
    return 0;
}

int axd_node_id_same_boot(const axd_node_id *a, const axd_node_id *b)
{
    return a->has_session && b->has_session && !strcmp(a->name, b->name) && !strcmp(a->boot, b->boot);
}
