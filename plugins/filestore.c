/* filestore: an actor that keeps its value in a file, with the blocking file I/O
 * (pwrite + fdatasync, pread) done on the daemon's offload pool (ax_offload, ABI 1.8)
 * and the asks answered when the pool is done (ax_defer, ABI 1.4). The loop, and every
 * other actor of the worker, go on meanwhile.
 *
 * Spawn it with the file's path as the spawn argument:
 *   axctl spawn filestore notes --arg /var/lib/axactor/notes.txt
 * Messages:
 *   put TEXT   write TEXT as the file's whole content and sync it; "OK" once on disk
 *   get        the file's content (ENOTFOUND if the file does not exist)
 * Errors of the file system are business errors (EIO with the errno text). */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "axactor/plugin.h"

typedef struct fstore {
    char path[512];
    uint64_t writes, reads;
} fstore;

typedef struct fjob {
    char path[512];
    int write;
    size_t n;
    uint8_t data[]; /* what to write */
} fjob;

/* On a pool thread: no ax_* calls here. The result: "OK", the content, or an error
 * text with the code. */
static int fjob_run(void *arg, void *out, size_t cap, size_t *len)
{
    fjob *j = arg;
    int rc = AX_OK;
    if (j->write) {
        int fd = open(j->path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        ssize_t w = fd >= 0 ? pwrite(fd, j->data, j->n, 0) : -1;
        int err = fd < 0 || w != (ssize_t)j->n || fdatasync(fd) != 0 ? errno : 0;
        if (fd >= 0)
            close(fd);
        if (err || w != (ssize_t)j->n) {
            *len = (size_t)snprintf(out, cap, "%s: %s", j->path, strerror(err ? err : EIO));
            return AX_EIO;
        }
        *len = (size_t)snprintf(out, cap, "OK");
        return AX_OK;
    }
    int fd = open(j->path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        int err = errno;
        *len = (size_t)snprintf(out, cap, "%s: %s", j->path, strerror(err));
        return err == ENOENT ? AX_ENOTFOUND : AX_EIO;
    }
    ssize_t r = pread(fd, out, cap, 0);
    int err = errno;
    close(fd);
    if (r < 0) {
        *len = (size_t)snprintf(out, cap, "%s: %s", j->path, strerror(err));
        return AX_EIO;
    }
    *len = (size_t)r;
    return rc;
}

static void fjob_free(void *arg) { free(arg); }

static int fs_start(ax_ctx *cx, fstore *st)
{
    size_t n;
    const char *p = ax_spawn_arg(cx, &n);
    if (!n || n >= sizeof st->path || memchr(p, 0, n))
        return AX_EINVAL; /* the path is required */
    memcpy(st->path, p, n);
    st->path[n] = 0;
    return AX_OK;
}

static int submit(ax_ctx *cx, fstore *st, const ax_msg *m, int write)
{
    uint64_t token = ax_defer(cx);
    if (!token)
        return AX_EINVAL; /* put and get are asks */
    fjob *j = malloc(sizeof *j + (write ? m->len : 0));
    if (!j)
        return ax_reply_token_error(cx, token, AX_ENOMEM, "out of memory");
    snprintf(j->path, sizeof j->path, "%s", st->path);
    j->write = write;
    j->n = write ? m->len : 0;
    if (j->n)
        memcpy(j->data, m->data, j->n);
    int rc = ax_offload(cx, fjob_run, fjob_free, j, "io_done", token);
    if (rc) {
        free(j);
        return ax_reply_token_error(cx, token, rc, rc == AX_EFULL ? "the offload queue is full; retry" : "offload refused");
    }
    return AX_OK;
}

static int fs_put(ax_ctx *cx, fstore *st, const ax_msg *m)
{
    st->writes++;
    return submit(cx, st, m, 1);
}

static int fs_get(ax_ctx *cx, fstore *st, const ax_msg *m)
{
    st->reads++;
    return submit(cx, st, m, 0);
}

/* The pool is done: m->tag is the token of the ask that started it. */
static int fs_done(ax_ctx *cx, fstore *st, const ax_msg *m)
{
    (void)st;
    if (m->status == AX_OK) {
        ax_reply_token(cx, m->tag, m->data, m->len);
        return AX_OK; /* (a token already answered: nothing to do, the actor goes on) */
    }
    char text[600];
    snprintf(text, sizeof text, "%.*s", (int)m->len, (const char *)m->data);
    ax_reply_token_error(cx, m->tag, m->status, text);
    return AX_OK;
}

AX_ACTOR_TYPE(fstore_type, "filestore", fstore, fs_start, NULL, AX_MSG("put", fs_put), AX_MSG("get", fs_get),
              AX_MSG("io_done", fs_done));

AX_PLUGIN("filestore", &fstore_type);
