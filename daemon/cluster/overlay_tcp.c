/* The TCP overlay: a listening socket, outgoing connects by logical name through a
 * static address book ("name=host:port"), non-blocking connect with a timeout, TCP
 * keepalive (idle/interval/probes) and TCP_NODELAY on every link, and peer framing: a
 * header is checked (magic, version, type, body_len <= max_frame) before its body is
 * buffered, so an oversize or garbage stream closes the link without allocating.
 * Optional TLS (OpenSSL, TLS 1.2+): both ends present a certificate signed by the
 * configured CA and verify the other's (mutual authentication); a dialer also checks
 * that the certificate names the logical node it dials. The peer handshake and MACs
 * run inside TLS unchanged. */
#include <errno.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "ax_mem.h"
#include "config.h"
#include "log.h"
#include "overlay.h"
#include "peer.h"

#define READ_CHUNK 65536
#define READ_ROUNDS 8 /* reads per readiness event, so one busy link cannot hog the loop */

typedef struct tcp_ovl tcp_ovl;

typedef struct tcp_link {
    axd_ovl_link pub;
    tcp_ovl *t;
    int fd;
    int connecting, dead, in_cb, above_low, conn_err;
    SSL *ssl;       /* NULL without TLS */
    int tls_hs;     /* the TLS handshake is still running */
    ev_io rio, wio;
    ev_timer ctimer;
    uint8_t *in;
    size_t in_len, in_cap;
    ax_wbuf out;
    char remote[96];
    char to[64];
    struct tcp_link *next, *prev;
} tcp_link;

struct tcp_ovl {
    axd_ovl pub;
    int lfd;
    ev_io lio;
    char **names, **addrs;
    size_t n_book;
    uint32_t connect_timeout_ms;
    int keepalive;
    uint32_t ka_idle, ka_intvl, ka_cnt;
    SSL_CTX *tls;
    tcp_link *links;
    uint32_t n_tls_hs;   /* incoming links in their TLS handshake (capped like peer handshakes) */
    ev_timer accept_pause; /* accepting paused after EMFILE/ENFILE: resumes after a while */
    int accept_paused_logged;
};

#define TLS_HS_MAX 256        /* incoming links in the TLS phase at once */
#define ACCEPT_PAUSE_S 0.25   /* accepting stops this long when the process is out of fds */

static const axd_ovl_ops tcp_ops;

static void set_sockopts(tcp_ovl *t, int fd)
{
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (t->keepalive) {
        int idle = (int)t->ka_idle, intvl = (int)t->ka_intvl, cnt = (int)t->ka_cnt;
        setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof one);
        setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof idle);
        setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &intvl, sizeof intvl);
        setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof cnt);
    }
}

static void link_unlink(tcp_link *l)
{
    if (l->prev)
        l->prev->next = l->next;
    else if (l->t->links == l)
        l->t->links = l->next;
    if (l->next)
        l->next->prev = l->prev;
    l->next = l->prev = NULL;
}

static void link_stop(tcp_link *l)
{
    struct ev_loop *loop = l->t->pub.loop;
    ev_io_stop(loop, &l->rio);
    ev_io_stop(loop, &l->wio);
    ev_timer_stop(loop, &l->ctimer);
    if (l->tls_hs && !l->pub.outgoing && l->t->n_tls_hs)
        l->t->n_tls_hs--;
    l->tls_hs = 0;
    if (l->ssl) {
        SSL_free(l->ssl);
        l->ssl = NULL;
    }
    if (l->fd >= 0) {
        close(l->fd);
        l->fd = -1;
    }
}

/* ---- byte I/O, plain or TLS: > 0 bytes, 0 = EOF, -1 = would block, -2 = error ---- */

static const char *tls_why(tcp_link *l, char *buf, size_t n)
{
    unsigned long e = ERR_get_error();
    long vr = l->ssl ? SSL_get_verify_result(l->ssl) : X509_V_OK;
    if (vr != X509_V_OK)
        snprintf(buf, n, "TLS: certificate verification failed: %s", X509_verify_cert_error_string(vr));
    else if (e)
        snprintf(buf, n, "TLS: %s", ERR_reason_error_string(e) ? ERR_reason_error_string(e) : "error");
    else
        snprintf(buf, n, "TLS: connection failed");
    ERR_clear_error();
    return buf;
}

static ssize_t io_read(tcp_link *l, void *p, size_t n)
{
    if (!l->ssl) {
        ssize_t r = recv(l->fd, p, n, 0);
        return r >= 0 ? r : (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) ? -1 : -2;
    }
    int r = SSL_read(l->ssl, p, n > INT32_MAX ? INT32_MAX : (int)n);
    if (r > 0)
        return r;
    int e = SSL_get_error(l->ssl, r);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
        return -1;
    return e == SSL_ERROR_ZERO_RETURN ? 0 : -2;
}

static ssize_t io_write(tcp_link *l, const void *p, size_t n)
{
    if (!l->ssl) {
        ssize_t w = send(l->fd, p, n, MSG_NOSIGNAL);
        return w >= 0 ? w : (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) ? -1 : -2;
    }
    int w = SSL_write(l->ssl, p, n > INT32_MAX ? INT32_MAX : (int)n);
    if (w > 0)
        return w;
    int e = SSL_get_error(l->ssl, w);
    return e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE ? -1 : -2;
}

static void link_free(tcp_link *l)
{
    link_unlink(l);
    ax_free(l->in);
    ax_wbuf_free(&l->out);
    ax_free(l);
}

/* The link failed: tell the user once, then free (deferred if inside a callback). */
static void link_fail(tcp_link *l, const char *why)
{
    if (l->dead)
        return;
    l->dead = 1;
    link_stop(l);
    axd_ovl *o = &l->t->pub;
    l->in_cb++;
    if (o->cbs.on_close)
        o->cbs.on_close(o->user, &l->pub, why);
    l->in_cb--;
    if (!l->in_cb)
        link_free(l);
}

/* Write what we can. Failures and drain notices are only acted on from the loop's own
 * events (from_event): a user calling send() never sees its link freed under it. */
static void try_write(tcp_link *l, int from_event)
{
    while (l->out.len && l->fd >= 0 && !l->tls_hs) {
        int err = errno = 0;
        ssize_t w = io_write(l, l->out.data, l->out.len);
        err = errno;
        if (w < 0) {
            if (w == -1)
                break;
            char why[200];
            if (from_event)
                link_fail(l, l->ssl ? tls_why(l, why, sizeof why) : strerror(err ? err : EPIPE));
            else
                ev_io_start(l->t->pub.loop, &l->wio); /* the write event reports it */
            return;
        }
        ax_wbuf_consume(&l->out, (size_t)w);
    }
    if (l->out.len)
        ev_io_start(l->t->pub.loop, &l->wio);
    else
        ev_io_stop(l->t->pub.loop, &l->wio);
    if (from_event && l->above_low && l->out.len < l->t->pub.low_water) {
        l->above_low = 0;
        axd_ovl *o = &l->t->pub;
        if (o->cbs.on_drain) {
            l->in_cb++;
            o->cbs.on_drain(o->user, &l->pub);
            l->in_cb--;
        }
    }
}

static void open_link(tcp_link *l);

/* Drive the TLS handshake; on completion the link opens. Returns 0 while it runs or
 * once it is done, -1 if it failed (the link was failed). */
static int tls_step(tcp_link *l)
{
    int r = SSL_do_handshake(l->ssl);
    struct ev_loop *loop = l->t->pub.loop;
    if (r == 1) {
        if (!l->pub.outgoing && l->t->n_tls_hs)
            l->t->n_tls_hs--;
        l->tls_hs = 0;
        ev_timer_stop(loop, &l->ctimer);
        ev_io_stop(loop, &l->wio);
        open_link(l);
        return 0;
    }
    int e = SSL_get_error(l->ssl, r);
    if (e == SSL_ERROR_WANT_READ) {
        ev_io_stop(loop, &l->wio);
        ev_io_start(loop, &l->rio);
        return 0;
    }
    if (e == SSL_ERROR_WANT_WRITE) {
        ev_io_start(loop, &l->wio);
        return 0;
    }
    char why[256], msg[256 + sizeof l->remote + 4];
    snprintf(msg, sizeof msg, "%s (%s)", tls_why(l, why, sizeof why), l->remote);
    link_fail(l, msg);
    return -1;
}

/* TCP is up: start TLS if configured, else open the link now. */
static void tcp_ready(tcp_link *l)
{
    if (!l->t->tls) {
        open_link(l);
        return;
    }
    l->ssl = SSL_new(l->t->tls);
    if (!l->ssl || SSL_set_fd(l->ssl, l->fd) != 1) {
        link_fail(l, "TLS: cannot create a session");
        return;
    }
    if (l->pub.outgoing) {
        SSL_set_connect_state(l->ssl);
        SSL_set_hostflags(l->ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
        SSL_set1_host(l->ssl, l->to); /* the certificate must name the node we dial */
    } else {
        SSL_set_accept_state(l->ssl);
    }
    l->tls_hs = 1;
    if (!l->pub.outgoing)
        l->t->n_tls_hs++;
    ev_timer_stop(l->t->pub.loop, &l->ctimer);
    ev_timer_set(&l->ctimer, l->t->connect_timeout_ms / 1000.0, 0.);
    ev_timer_start(l->t->pub.loop, &l->ctimer);
    l->in_cb++;
    tls_step(l);
    if (--l->in_cb == 0 && l->dead)
        link_free(l);
}

static void open_link(tcp_link *l)
{
    axd_ovl *o = &l->t->pub;
    ev_io_start(o->loop, &l->rio);
    l->in_cb++;
    o->cbs.on_open(o->user, &l->pub, l->pub.outgoing, l->pub.outgoing ? l->to : NULL);
    if (--l->in_cb == 0 && l->dead)
        link_free(l);
    else if (!l->dead && l->out.len)
        ev_io_start(o->loop, &l->wio);
}

/* Deliver every whole frame in the input buffer. */
static void deliver(tcp_link *l)
{
    axd_ovl *o = &l->t->pub;
    size_t off = 0;
    while (!l->dead && l->in_len - off >= AX_PEER_HDR_SIZE) {
        ax_peer_hdr h;
        const char *why = "bad frame";
        int rc = ax_peer_hdr_decode(l->in + off, l->in_len - off, l->pub.max_frame ? l->pub.max_frame : o->max_frame,
                                    &h, &why);
        if (rc != 0) {
            char msg[256];
            snprintf(msg, sizeof msg, "bad peer frame from %s: %s", l->remote, why);
            link_fail(l, msg);
            return;
        }
        size_t total = AX_PEER_HDR_SIZE + (size_t)h.body_len;
        if (l->in_len - off < total)
            break;
        o->cbs.on_frame(o->user, &l->pub, l->in + off, total);
        off += total;
    }
    if (l->dead)
        return;
    if (off) {
        memmove(l->in, l->in + off, l->in_len - off);
        l->in_len -= off;
    }
}

static void read_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)loop;
    (void)revents;
    tcp_link *l = w->data;
    size_t limit = AX_PEER_HDR_SIZE + (size_t)(l->pub.max_frame ? l->pub.max_frame : l->t->pub.max_frame) + READ_CHUNK;
    l->in_cb++; /* l stays allocated until this callback is done with it */
    if (l->tls_hs) {
        tls_step(l);
        if (--l->in_cb == 0 && l->dead)
            link_free(l);
        return;
    }
    for (int round = 0; round < READ_ROUNDS && !l->dead; round++) {
        if (l->in_cap - l->in_len < READ_CHUNK && l->in_cap < limit) {
            size_t ncap = l->in_len + READ_CHUNK * 2;
            if (ncap > limit)
                ncap = limit;
            uint8_t *p = ax_try_realloc(l->in, ncap);
            if (!p) {
                link_fail(l, "out of memory for the input buffer");
                break;
            }
            l->in = p;
            l->in_cap = ncap;
        }
        errno = 0;
        ssize_t r = io_read(l, l->in + l->in_len, l->in_cap - l->in_len);
        if (r < 0) {
            char why[200];
            if (r == -2)
                link_fail(l, l->ssl ? tls_why(l, why, sizeof why) : strerror(errno ? errno : EIO));
            break;
        }
        if (r == 0) {
            link_fail(l, "connection closed by the peer");
            break;
        }
        l->in_len += (size_t)r;
        deliver(l);
    }
    if (--l->in_cb == 0 && l->dead)
        link_free(l);
}

static void write_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)loop;
    (void)revents;
    tcp_link *l = w->data;
    if (l->connecting) {
        int err = l->conn_err;
        socklen_t el = sizeof err;
        if (!err)
            getsockopt(l->fd, SOL_SOCKET, SO_ERROR, &err, &el);
        ev_timer_stop(loop, &l->ctimer);
        if (err) {
            char msg[256];
            snprintf(msg, sizeof msg, "connect to %s (%s): %s", l->to, l->remote, strerror(err));
            link_fail(l, msg);
            return;
        }
        l->connecting = 0;
        ev_io_stop(loop, &l->wio);
        tcp_ready(l);
        return;
    }
    l->in_cb++;
    if (l->tls_hs)
        tls_step(l);
    else
        try_write(l, 1);
    if (--l->in_cb == 0 && l->dead)
        link_free(l);
}

static void ctimer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    tcp_link *l = w->data;
    char msg[256];
    if (l->tls_hs)
        snprintf(msg, sizeof msg, "TLS handshake with %s timed out after %u ms", l->remote, l->t->connect_timeout_ms);
    else
        snprintf(msg, sizeof msg, "connect to %s (%s): timed out after %u ms", l->to, l->remote,
                 l->t->connect_timeout_ms);
    link_fail(l, msg);
}

static tcp_link *link_new(tcp_ovl *t, int fd, int outgoing)
{
    tcp_link *l = ax_calloc(1, sizeof *l);
    l->pub.ovl = &t->pub;
    l->pub.outgoing = outgoing;
    l->t = t;
    l->fd = fd;
    ax_wbuf_init(&l->out);
    ev_io_init(&l->rio, read_cb, fd, EV_READ);
    ev_io_init(&l->wio, write_cb, fd, EV_WRITE);
    ev_timer_init(&l->ctimer, ctimer_cb, t->connect_timeout_ms / 1000.0, 0.);
    l->rio.data = l->wio.data = l->ctimer.data = l;
    l->next = t->links;
    if (t->links)
        t->links->prev = l;
    t->links = l;
    return l;
}

static void describe(const struct sockaddr *sa, socklen_t len, char *out, size_t n)
{
    char h[64], p[16];
    if (getnameinfo(sa, len, h, sizeof h, p, sizeof p, NI_NUMERICHOST | NI_NUMERICSERV) != 0)
        snprintf(out, n, "?");
    else if (sa->sa_family == AF_INET6)
        snprintf(out, n, "[%s]:%s", h, p);
    else
        snprintf(out, n, "%s:%s", h, p);
}

static void accept_resume_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)revents;
    tcp_ovl *t = w->data;
    ev_io_start(loop, &t->lio);
}

static void accept_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)loop;
    (void)revents;
    tcp_ovl *t = w->data;
    for (int i = 0; i < 32; i++) {
        struct sockaddr_storage ss;
        socklen_t sl = sizeof ss;
        int fd = accept4(t->lfd, (struct sockaddr *)&ss, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
                /* the connection stays in the backlog: retrying at once would spin */
                if (!t->accept_paused_logged++)
                    axd_log(AX_LOG_WARN, "cluster", "accepting peers paused: %s (retrying every %.0f ms)",
                           strerror(errno), ACCEPT_PAUSE_S * 1000);
                ev_io_stop(t->pub.loop, &t->lio);
                ev_timer_set(&t->accept_pause, ACCEPT_PAUSE_S, 0.);
                ev_timer_start(t->pub.loop, &t->accept_pause);
            }
            return;
        }
        if (t->tls && t->n_tls_hs >= TLS_HS_MAX) {
            /* strangers in the TLS phase are cheap to open: capped as handshakes are, the
             * oldest making room (links are prepended: the last one is the oldest) */
            tcp_link *oldest = NULL;
            for (tcp_link *k = t->links; k; k = k->next)
                if (k->tls_hs && !k->pub.outgoing && !k->dead)
                    oldest = k;
            if (oldest)
                link_fail(oldest, "TLS: too many links in their TLS handshake; the oldest made room");
            if (t->n_tls_hs >= TLS_HS_MAX) {
                close(fd);
                continue;
            }
        }
        set_sockopts(t, fd);
        tcp_link *l = link_new(t, fd, 0);
        describe((struct sockaddr *)&ss, sl, l->remote, sizeof l->remote);
        tcp_ready(l);
    }
}

static int tcp_connect(axd_ovl *o, const char *to, axd_ovl_link **out)
{
    tcp_ovl *t = (tcp_ovl *)o;
    const char *addr = NULL;
    char host[256], port[8];
    for (size_t i = 0; i < t->n_book; i++)
        if (!strcmp(t->names[i], to))
            addr = t->addrs[i];
    if (!addr || axd_split_hostport(addr, host, sizeof host, port, sizeof port) != 0)
        return AX_ENOTFOUND;
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV}, *ai = NULL;
    if (getaddrinfo(host, port, &hints, &ai) != 0 || !ai)
        return AX_ENOTFOUND;
    int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        freeaddrinfo(ai);
        return AX_EIO;
    }
    set_sockopts(t, fd);
    tcp_link *l = link_new(t, fd, 1);
    snprintf(l->to, sizeof l->to, "%s", to);
    describe(ai->ai_addr, ai->ai_addrlen, l->remote, sizeof l->remote);
    int rc = connect(fd, ai->ai_addr, ai->ai_addrlen);
    freeaddrinfo(ai);
    *out = &l->pub;
    l->connecting = 1;
    if (rc != 0 && errno != EINPROGRESS)
        l->conn_err = errno ? errno : ECONNREFUSED; /* reported from the write event, like the rest */
    ev_io_start(o->loop, &l->wio);
    ev_timer_start(o->loop, &l->ctimer);
    return 0;
}

static int tcp_send(axd_ovl_link *pl, const void *p, size_t n)
{
    tcp_link *l = (tcp_link *)pl;
    if (l->dead || l->fd < 0)
        return AX_ECONN;
    int was_empty = l->out.len == 0;
    ax_wbuf_put(&l->out, p, n);
    if (l->out.err) {
        l->out.err = 0;
        return AX_ENOMEM;
    }
    if (l->out.len >= l->t->pub.low_water)
        l->above_low = 1;
    if (!l->connecting && was_empty)
        try_write(l, 0);
    return 0;
}

static size_t tcp_queued(const axd_ovl_link *pl) { return ((const tcp_link *)pl)->out.len; }

static void tcp_close(axd_ovl_link *pl)
{
    tcp_link *l = (tcp_link *)pl;
    if (l->dead)
        return;
    if (l->fd >= 0 && !l->connecting && !l->tls_hs && l->out.len)
        (void)io_write(l, l->out.data, l->out.len); /* best effort */
    if (l->ssl && !l->tls_hs)
        SSL_shutdown(l->ssl);
    l->dead = 1;
    link_stop(l);
    if (!l->in_cb)
        link_free(l);
}

static const char *tcp_remote(const axd_ovl_link *pl) { return ((const tcp_link *)pl)->remote; }

static void tcp_free(axd_ovl *o)
{
    tcp_ovl *t = (tcp_ovl *)o;
    if (!t)
        return;
    while (t->links) {
        tcp_link *l = t->links;
        link_stop(l);
        link_free(l);
    }
    if (t->lfd >= 0) {
        ev_io_stop(o->loop, &t->lio);
        ev_timer_stop(o->loop, &t->accept_pause);
        close(t->lfd);
    }
    for (size_t i = 0; i < t->n_book; i++) {
        ax_free(t->names[i]);
        ax_free(t->addrs[i]);
    }
    ax_free(t->names);
    ax_free(t->addrs);
    SSL_CTX_free(t->tls);
    ax_free(t);
}

static int tls_setup(tcp_ovl *t, const axd_ovl_tcp_cfg *cfg, char *err, size_t errlen)
{
    const char *what = NULL;
    if (!cfg->tls_cert || !*cfg->tls_cert || !cfg->tls_key || !*cfg->tls_key || !cfg->tls_ca || !*cfg->tls_ca) {
        snprintf(err, errlen, "cluster.tls = true needs cluster.tls_cert, cluster.tls_key and cluster.tls_ca");
        return AX_ECONFIG;
    }
    t->tls = SSL_CTX_new(TLS_method());
    if (!t->tls)
        what = "cannot create the TLS context";
    else if (SSL_CTX_set_min_proto_version(t->tls, TLS1_2_VERSION) != 1)
        what = "cannot require TLS 1.2";
    else if (SSL_CTX_use_certificate_chain_file(t->tls, cfg->tls_cert) != 1)
        what = "cluster.tls_cert: cannot load the certificate";
    else if (SSL_CTX_use_PrivateKey_file(t->tls, cfg->tls_key, SSL_FILETYPE_PEM) != 1)
        what = "cluster.tls_key: cannot load the private key";
    else if (SSL_CTX_check_private_key(t->tls) != 1)
        what = "cluster.tls_key does not match cluster.tls_cert";
    else if (SSL_CTX_load_verify_locations(t->tls, cfg->tls_ca, NULL) != 1)
        what = "cluster.tls_ca: cannot load the CA bundle";
    if (what) {
        unsigned long e = ERR_get_error();
        snprintf(err, errlen, "%s%s%s", what, e ? ": " : "", e && ERR_reason_error_string(e) ? ERR_reason_error_string(e) : "");
        ERR_clear_error();
        return AX_ECONFIG;
    }
    SSL_CTX_set_verify(t->tls, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
    SSL_CTX_set_mode(t->tls, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    return 0;
}

static int tcp_set_peer(axd_ovl *o, const char *name, const char *addr)
{
    tcp_ovl *t = (tcp_ovl *)o;
    char host[256], port[8];
    if (!name || !*name || !addr || axd_split_hostport(addr, host, sizeof host, port, sizeof port) != 0)
        return AX_EINVAL;
    for (size_t i = 0; i < t->n_book; i++)
        if (!strcmp(t->names[i], name)) {
            ax_free(t->addrs[i]);
            t->addrs[i] = ax_strdup(addr);
            return 0;
        }
    t->names = ax_realloc(t->names, (t->n_book + 2) * sizeof *t->names);
    t->addrs = ax_realloc(t->addrs, (t->n_book + 2) * sizeof *t->addrs);
    t->names[t->n_book] = ax_strdup(name);
    t->addrs[t->n_book++] = ax_strdup(addr);
    t->names[t->n_book] = t->addrs[t->n_book] = NULL;
    return 0;
}

static const axd_ovl_ops tcp_ops = {
    .name = "tcp",
    .set_peer = tcp_set_peer,
    .connect = tcp_connect,
    .send = tcp_send,
    .queued = tcp_queued,
    .close = tcp_close,
    .free = tcp_free,
    .remote = tcp_remote,
};

int axd_ovl_tcp_new(struct ev_loop *loop, const axd_ovl_tcp_cfg *cfg, const axd_ovl_cbs *cbs, void *user,
                   uint32_t max_frame, axd_ovl **out, char *err, size_t errlen)
{
    char host[256], port[8];
    tcp_ovl *t = ax_calloc(1, sizeof *t);
    t->pub.ops = &tcp_ops;
    t->pub.loop = loop;
    t->pub.cbs = *cbs;
    t->pub.user = user;
    t->pub.max_frame = max_frame;
    t->pub.low_water = 256u << 10;
    t->lfd = -1;
    t->connect_timeout_ms = cfg->connect_timeout_ms ? cfg->connect_timeout_ms : 3000;
    t->keepalive = cfg->keepalive;
    t->ka_idle = cfg->keepalive_idle_s ? cfg->keepalive_idle_s : 30;
    t->ka_intvl = cfg->keepalive_interval_s ? cfg->keepalive_interval_s : 10;
    t->ka_cnt = cfg->keepalive_probes ? cfg->keepalive_probes : 3;
    if (cfg->tls) {
        int rc = tls_setup(t, cfg, err, errlen);
        if (rc) {
            tcp_free(&t->pub);
            return rc;
        }
    }
    t->names = ax_calloc(cfg->n_book + 1, sizeof *t->names);
    t->addrs = ax_calloc(cfg->n_book + 1, sizeof *t->addrs);
    for (size_t i = 0; i < cfg->n_book; i++) {
        const char *e = cfg->book[i], *eq = strchr(e, '=');
        if (!eq || eq == e || axd_split_hostport(eq + 1, host, sizeof host, port, sizeof port) != 0) {
            snprintf(err, errlen, "cluster.peers: \"%.100s\" is not name=host:port", e);
            tcp_free(&t->pub);
            return AX_ECONFIG;
        }
        t->names[t->n_book] = ax_strndup(e, (size_t)(eq - e));
        t->addrs[t->n_book++] = ax_strdup(eq + 1);
    }
    if (cfg->listen && *cfg->listen) {
        struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE | AI_NUMERICSERV}, *ai = NULL;
        if (axd_split_hostport(cfg->listen, host, sizeof host, port, sizeof port) != 0) {
            snprintf(err, errlen, "cluster.listen: \"%.100s\" is not host:port", cfg->listen);
            tcp_free(&t->pub);
            return AX_ECONFIG;
        }
        int gai = getaddrinfo(*host ? host : NULL, port, &hints, &ai);
        if (gai != 0 || !ai) {
            snprintf(err, errlen, "cluster.listen %s: %s", cfg->listen, gai_strerror(gai));
            tcp_free(&t->pub);
            return AX_ECONFIG;
        }
        int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0), one = 1;
        if (fd >= 0)
            setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        if (fd < 0 || bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 || listen(fd, 128) != 0) {
            snprintf(err, errlen, "cluster.listen %s: %s", cfg->listen, strerror(errno));
            if (fd >= 0)
                close(fd);
            freeaddrinfo(ai);
            tcp_free(&t->pub);
            return AX_EIO;
        }
        freeaddrinfo(ai);
        t->lfd = fd;
        ev_io_init(&t->lio, accept_cb, fd, EV_READ);
        ev_timer_init(&t->accept_pause, accept_resume_cb, ACCEPT_PAUSE_S, 0.);
        t->accept_pause.data = t;
        t->lio.data = t;
        ev_io_start(loop, &t->lio);
    }
    *out = &t->pub;
    return 0;
}
