/* The integration-test harness: start real axactord processes in temp dirs, wait until
 * they serve, stop or kill them and check they exited cleanly (status 0, socket removed,
 * no sanitizer report in their log); run commands (axctl) and capture their output; talk
 * raw frames to a daemon for bad-input tests. Used from check tests: every failure is a
 * ck_abort with the daemon's log, every wait is bounded. A failure the harness detects
 * prints the log, kills the daemon and removes its dir before failing. A daemon still
 * running when its test process ends dies with it (PR_SET_PDEATHSIG); at a normal exit()
 * its dir is removed too (check's fork mode ends a failed test with _exit, which leaves
 * that test's temp dir behind for inspection). Not thread-safe. */
#ifndef AX_TESTS_HARNESS_H
#define AX_TESTS_HARNESS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "axactor/client.h"

typedef struct ax_h_daemon ax_h_daemon;

/* $AX_BUILD_DIR / $AX_SOURCE_DIR (set by meson for tests); the test aborts if unset. */
const char *ax_h_build_dir(void);
const char *ax_h_source_dir(void);
/* "$AX_BUILD_DIR/rel" in a buffer owned by the harness: valid until the 8th next call. */
const char *ax_h_build_path(const char *rel);

/* Start `$AX_BUILD_DIR/daemon/axactord -s DIR/ax.sock --plugin-dir $AX_BUILD_DIR/plugins
 * [extra_args...]` in a fresh temp dir (mkdtemp under $TMPDIR or /tmp), stdout and stderr
 * to DIR/axactord.log, and wait (10 s at most) until a libaxclient connection succeeds.
 * extra_args: NULL-terminated, may be NULL; they come after the harness's own flags, so
 * they win (e.g. "--set client.max_frame=4096"; a "-c FILE" is read first, as always) —
 * but do not pass -s: the harness waits on its own socket path. If the daemon exits first or
 * never serves, the test fails with its log. Never returns NULL. The readiness probe is a
 * client connection closed before this returns; the daemon notices that close a moment
 * later, which matters only to tests that set client.max_clients very low. */
ax_h_daemon *ax_h_start(const char *const *extra_args);
/* Start the same daemon again (after ax_h_kill) in the same dir with the same socket path
 * and the given args (NULL: the ones it was started with). */
void ax_h_restart(ax_h_daemon *d, const char *const *extra_args);

/* SIGTERM, wait up to 5 s (then SIGKILL and fail); fail unless the daemon exited with
 * status 0, removed its socket and logged no sanitizer report. Then ax_h_destroy(d). */
void ax_h_stop(ax_h_daemon *d);
/* The same with another signal (SIGINT). */
void ax_h_stop_with(ax_h_daemon *d, int sig);
/* SIGKILL and reap; fails if the log holds a sanitizer report. d stays valid (log, dir,
 * a stale socket file) for ax_h_restart or ax_h_destroy. */
void ax_h_kill(ax_h_daemon *d);
/* Kill if still running, remove the temp dir, free d. Accepts NULL. */
void ax_h_destroy(ax_h_daemon *d);

const char *ax_h_sock(const ax_h_daemon *d); /* socket path */
const char *ax_h_dir(const ax_h_daemon *d);  /* the daemon's temp dir (tests may add files) */
pid_t ax_h_pid(const ax_h_daemon *d);        /* 0 once it was reaped */
/* The daemon's log so far. Owned by d: valid until the next ax_h_log on d or its end. */
const char *ax_h_log(ax_h_daemon *d);
/* Wait (bounded by timeout_ms) until the log contains needle; returns 1 if it does. */
int ax_h_wait_log(ax_h_daemon *d, const char *needle, int timeout_ms);
/* Returns 1 if the daemon process has exited (and reaps it), 0 if it still runs. */
int ax_h_exited(ax_h_daemon *d, int *status);

/* A libaxclient connection to d (5 s connect timeout); fails the test if none. Close with
 * axc_close. */
axc_conn *ax_h_connect(ax_h_daemon *d);

/* Run argv[0] (a path) with argv, stdin /dev/null, and capture stdout and stderr
 * (NUL-terminated, malloc'd, caller frees; out pointers may be NULL). Fails the test if
 * the command runs longer than timeout_ms (it is killed) or if its stderr has a sanitizer
 * report. Returns the exit status, or 128 + signal number if it was killed by a signal. */
int ax_h_run(const char *const *argv, char **out, char **err, int timeout_ms);

/* Returns 1 if text holds an AddressSanitizer, LeakSanitizer or UBSan report. */
int ax_h_has_sanitizer_report(const char *text);

/* Write text to DIR/name (DIR = ax_h_tmpdir() if dir is NULL); returns the path in a
 * buffer owned by the harness (valid until the 8th next path-returning call). */
const char *ax_h_write_file(const char *dir, const char *name, const char *text);
/* A temp dir for this process's files, removed at exit. */
const char *ax_h_tmpdir(void);

/* ---- raw protocol (for malformed-input tests) ---- */
/* Connect a plain Unix socket to path (no HELLO); fails the test if it cannot. */
int ax_h_raw_connect(const char *path);
/* Connect and do HELLO (version 1); returns the fd, fails the test unless HELLO_OK. */
int ax_h_raw_hello(ax_h_daemon *d);
/* Write all n bytes (bounded by 5 s); returns 0, or -errno if the peer closed. */
int ax_h_raw_write(int fd, const void *p, size_t n);
/* Read one frame within timeout_ms. Returns 1 and fills *type, *req_id, *body (malloc'd,
 * caller frees; may be NULL when the body is empty) and *body_len; 0 on EOF before any
 * byte; fails the test on a timeout, a partial frame or a bad header. */
int ax_h_raw_read_frame(int fd, int timeout_ms, uint8_t *type, uint32_t *req_id, uint8_t **body,
                        size_t *body_len);
/* Wait (bounded) for EOF on fd, discarding frames; returns 1 on EOF, 0 on timeout. */
int ax_h_raw_wait_eof(int fd, int timeout_ms);

#endif
