/* axctl: the operator's command line for a local axactord (status, actors, spawn, tell,
 * ask, stop, monitor, events, plugins) over libaxclient. Human-readable tables by default, --json for
 * scripts; the exit status says which kind of failure happened (see usage()). */

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "ax_build_config.h"
#include "axactor/client.h"
#include "frame.h" /* AX_PROTO_VERSION, for --version only */

enum { EXIT_REFUSED = 1, EXIT_USAGE = 2, EXIT_CONN = 3, EXIT_TIMEOUT = 4 };

#define DEFAULT_TIMEOUT_MS 5000
#define MAX_TIMEOUT_MS 86400000 /* one day */

typedef struct opts {
    const char *socket;
    int json;
    int timeout_ms;
    int timeout_set; /* --timeout given: bounds monitor's wait too */
    const char *key;
    const char *mailbox;
    const char *config;
    int follow;
    const char *actor; /* events --actor */
    int direct;        /* tell/ask --direct */
    int stay;          /* drain --stay */
    int cluster;       /* status --cluster */
    /* spawn options, as given (checked before connecting) */
    const char *restart, *max_restarts, *restart_window_ms, *backoff_ms, *mailbox_policy, *idle_timeout_ms;
    int trap_exit;
    const char *arg; /* spawn --arg TEXT */
    /* actors filters */
    const char *f_type, *f_name, *f_state;
} opts;

/* Long-only options. */
enum {
    OPT_ACTOR = 0x100,
    OPT_DIRECT,
    OPT_RESTART,
    OPT_MAX_RESTARTS,
    OPT_RESTART_WINDOW,
    OPT_BACKOFF,
    OPT_MAILBOX_POLICY,
    OPT_IDLE_TIMEOUT,
    OPT_TRAP_EXIT,
    OPT_ARG,
    OPT_TYPE,
    OPT_NAME,
    OPT_STATE,
    OPT_STAY,
    OPT_CLUSTER,
};

static void usage(FILE *f)
{
    fputs(
        "axctl - control the local axactord actor daemon\n"
        "\n"
        "SYNOPSIS\n"
        "    axctl [OPTIONS] COMMAND [ARGS...]\n"
        "    axctl --help | --version\n"
        "\n"
        "DESCRIPTION\n"
        "    axctl talks to the axactord daemon of this host over its Unix socket. It\n"
        "    prints human-readable text by default and JSON with --json. Options may\n"
        "    appear before or after the command; \"--\" ends them (use it before a\n"
        "    PAYLOAD that starts with \"-\").\n"
        "\n"
        "COMMANDS\n"
        "    status [--cluster]\n"
        "        Show the daemon's status document as \"key: value\" lines (nested\n"
        "        objects are flattened to dotted keys). With --cluster, every member's:\n"
        "        the daemon asks each peer that is up (waiting at most 2 s) and prints\n"
        "        one line per member (NODE, ACTORS, KEYED, CLIENTS, ASKS, TELLS,\n"
        "        SHARDS_OWNED, or why it did not answer), then the sums of the counts\n"
        "        over the members that answered. Exit status 0 even if some did not.\n"
        "    actors [--type TYPE] [--name PREFIX] [--state STATE] [--key PREFIX]\n"
        "        List live actors as a table, page by page (any number of actors), in a\n"
        "        fixed column order: ID, GEN, NAME, TYPE, STATE, MAILBOX, CAPACITY,\n"
        "        PROCESSED, RESTARTS, RESTART, LINKS, MONITORS, KEY. Filters: --type (the\n"
        "        exact type), --name and --key (prefixes), --state (running, stopping,\n"
        "        restarting). --json prints one document {\"actors\":[...]}.\n"
        "    shards\n"
        "        List every shard of keyed actors: SHARD, STATE (owned: by this node;\n"
        "        held: by another node, as the lease store said at its last look, every\n"
        "        two renew intervals; free, acquiring, releasing), OWNER (node holding\n"
        "        the lease), EPOCH (fencing token), EXPIRES_IN_MS (owned: time to this\n"
        "        node's renew deadline; held: the lease's remaining time when looked\n"
        "        up) and ACTORS (keyed actors of the shard here), after a line with the\n"
        "        shards owned, the fair-share target and the lease store's state.\n"
        "    nodes\n"
        "        List the cluster's peers of this daemon: NODE (logical name), SESSION\n"
        "        (the peer's current session number), STATE (idle, connecting, up,\n"
        "        disconnected, down), VERSION and ABI (from its membership record in\n"
        "        the lease store; - without one), RTT_MS (last heartbeat round trip),\n"
        "        BYTES_IN, BYTES_OUT, FRAMES_IN, FRAMES_OUT and AUTH_FAILURES, after a\n"
        "        line with this node's wire id. --json prints the whole document (wire\n"
        "        ids, the membership records, replayed/forged frame counts, heartbeat\n"
        "        figures; see PROTOCOL.md).\n"
        "    spawn TYPE [NAME] [SPAWN OPTIONS]\n"
        "        Start an actor of TYPE (a type of a loaded plugin), registered as NAME\n"
        "        if given, and print its ref as @ID.GEN followed by the name. With\n"
        "        --key, print the ref of the one live actor of (TYPE, KEY), spawning it\n"
        "        only if there is none (NAME is then not allowed). SPAWN OPTIONS:\n"
        "        --mailbox N              capacity of the user mailbox (1..4294967295)\n"
        "        --restart POLICY         permanent (always restart), transient (restart\n"
        "                                 after an abnormal exit) or temporary (never;\n"
        "                                 the default)\n"
        "        --max-restarts N         restart intensity: at most N restarts ...\n"
        "        --restart-window-ms MS   ... within MS milliseconds (0 = the defaults,\n"
        "                                 3 in 5000); beyond it the actor stops for good\n"
        "                                 with reason restart_intensity\n"
        "        --backoff-ms MS          delay before each restart\n"
        "        --mailbox-policy POLICY  keep (queued messages survive a restart; the\n"
        "                                 default) or drain_and_drop (they are dropped\n"
        "                                 and their askers get ECANCELED)\n"
        "        --idle-timeout-ms MS     keyed actors: stop after MS without a message\n"
        "                                 (0 = the daemon's runtime.idle_timeout_ms)\n"
        "        --trap-exit              exits of linked actors arrive as \"$exit\"\n"
        "                                 messages instead of stopping this actor\n"
        "        --arg TEXT               bytes the actor reads with ax_spawn_arg (in\n"
        "                                 on_start and later; at most 32768)\n"
        "        --key KEY                get or spawn the keyed actor (TYPE, KEY)\n"
        "        --config JSON            spawn options as a JSON object; keys:\n"
        "                                 mailbox_capacity, restart, max_restarts,\n"
        "                                 restart_window_ms, backoff_ms, mailbox_policy,\n"
        "                                 idle_timeout_ms, trap_exit, key (see\n"
        "                                 PROTOCOL.md, \"SPAWN configuration\")\n"
        "        The other options are merged into --config and override its keys.\n"
        "        The daemon checks the values' ranges (an out-of-range value is\n"
        "        refused with EINVAL, exit status 1).\n"
        "    tell TARGET MSG [PAYLOAD] [--direct]\n"
        "        Send message MSG, with PAYLOAD (bytes of the argument; default empty),\n"
        "        and wait until it is in the actor's mailbox. Prints nothing. A keyed\n"
        "        TARGET (--key) is spawned if it does not exist, unless --direct is\n"
        "        given: then a missing keyed actor is refused with ENOTFOUND.\n"
        "    ask TARGET MSG [PAYLOAD] [--direct]\n"
        "        Send MSG and print the actor's reply: as text when it is printable\n"
        "        UTF-8, else as hexadecimal. The actor has --timeout to answer.\n"
        "        --direct as for tell.\n"
        "    drain [--timeout MS] [--stay]\n"
        "        Hand this node's shards over to the other nodes of the cluster and\n"
        "        take none: each shard's actors stop (durable state written), what\n"
        "        they had queued and the asks waiting on them go to the shard's next\n"
        "        owner, the lease is released and the others take it at once; asks\n"
        "        routed through any node meanwhile wait for the next owner instead\n"
        "        of failing. Waits until done (at most --timeout, default the\n"
        "        daemon's cluster.drain_timeout_ms) and prints what was handed over\n"
        "        and how long a shard was without an owner. Then the daemon stops,\n"
        "        as on SIGTERM (which drains the same way), unless --stay: then it\n"
        "        stays up, holding no shard, still serving its clients (their keyed\n"
        "        requests go to the other nodes), until undrain. Exit status 4 if\n"
        "        the drain did not finish in time. EINVAL: not clustered.\n"
        "    undrain\n"
        "        End a drain --stay: the node takes its share of the shards again.\n"
        "    log-level LEVEL\n"
        "        Set the daemon's log level now: error, warn, info or debug (the\n"
        "        change is logged). It lasts until the daemon restarts or reloads\n"
        "        its configuration (log.level). Prints nothing.\n"
        "    forget TYPE KEY | forget TYPE --key KEY\n"
        "        Delete the stored state of the durable keyed actor (TYPE, KEY)\n"
        "        wherever in the cluster its shard lives: the record is deleted\n"
        "        (fenced by the shard's epoch, like every state write) and the\n"
        "        actor, if live, stops with reason \"forgotten\"; its next message\n"
        "        starts it fresh. Prints nothing. ENOMSG: TYPE is not durable.\n"
        "    stop TARGET\n"
        "        Stop an actor for good (reason \"stopped\"; no restart). Prints\n"
        "        nothing.\n"
        "    exit TARGET [REASON]\n"
        "        Send an exit signal, as Erlang's exit/2 (REASON defaults to\n"
        "        \"normal\"): an actor that traps exits receives it as a \"$exit\"\n"
        "        message; \"normal\" to one that does not is ignored; \"kill\" cannot\n"
        "        be trapped (the actor ends with \"killed\"); any other reason ends it.\n"
        "        Unlike stop, the actor's restart policy applies. Prints nothing.\n"
        "    monitor TARGET\n"
        "        Watch an actor and print its down event when it stops for good (an\n"
        "        actor that restarts is still up): \"down @ID.GEN mref=N reason=R\", or\n"
        "        the event document with --json. Waits without limit unless --timeout\n"
        "        is given, then at most that long (exit status 4 if no down came).\n"
        "        Exit status 0 once the down arrived; a TARGET that does not exist is\n"
        "        refused with ENOPROC (exit status 1).\n"
        "    plugins list\n"
        "        List loaded plugins as a table.\n"
        "    plugins load PATH\n"
        "        Load an actor plugin (.so) and show what it provides. A relative PATH\n"
        "        that exists from the current directory is made absolute; any other\n"
        "        relative PATH is looked up by the daemon in its plugins.dir.\n"
        "    plugins unload NAME\n"
        "        Unload the plugin NAME (as shown by \"plugins list\"). Prints nothing.\n"
        "    events [NAME] [--actor NAME] [--follow]\n"
        "        Print actor lifecycle events (started, restarted, stopped, and lagged\n"
        "        when some were skipped) of every actor, or of the actor NAME (given\n"
        "        as an argument or with --actor), one per line as they happen:\n"
        "        \"TIME EVENT @ID.GEN NAME TYPE key=value...\". They are printed for\n"
        "        --timeout milliseconds (exit status 0), or with --follow until\n"
        "        interrupted or the daemon goes away (exit status 3). With --json each\n"
        "        line is the daemon's event document.\n"
        "    help\n"
        "        Show this text.\n"
        "\n"
        "TARGETS\n"
        "    NAME          the actor registered as NAME\n"
        "    @ID.GEN       one actor incarnation by ref, as printed by spawn (e.g. @12.1)\n"
        "    --key KEY     with tell, ask, stop and monitor: the keyed actor (TYPE, KEY),\n"
        "                  where the TARGET word is the TYPE: axctl ask --key alice\n"
        "                  counter get\n"
        "\n"
        "OPTIONS\n"
        "    -s, --socket PATH   the daemon's socket (default: $" AXC_SOCKET_ENV ", else\n"
        "                        " AXC_DEFAULT_SOCKET ")\n"
        "    -j, --json          print JSON on stdout instead of text (see OUTPUT)\n"
        "    -t, --timeout MS    connect and request timeout, for ask the time the actor\n"
        "                        has to reply, for events how long to print, for\n"
        "                        monitor how long to wait, in milliseconds (1..86400000;\n"
        "                        default 5000, monitor: no limit)\n"
        "    -k, --key KEY       target or spawn the keyed actor (TYPE, KEY)\n"
        "        --direct        tell, ask: never spawn the keyed actor (needs --key)\n"
        "    -m, --mailbox N     spawn: user mailbox capacity\n"
        "    -c, --config JSON   spawn: options as a JSON object\n"
        "        --restart, --max-restarts, --restart-window-ms, --backoff-ms,\n"
        "        --mailbox-policy, --idle-timeout-ms, --trap-exit, --arg\n"
        "                        spawn: see the spawn command\n"
        "    -f, --follow        events: keep printing until interrupted\n"
        "    -a, --actor NAME    events: only the actor NAME\n"
        "    -h, --help          show this text and exit\n"
        "    -V, --version       show the version and exit\n"
        "\n"
        "OUTPUT\n"
        "    With --json, status, actors, plugins list and plugins load print the\n"
        "    daemon's JSON document as it is; spawn prints {\"id\":ID,\"gen\":GEN,\n"
        "    \"name\":NAME-or-null}; ask prints {\"reply\":\"TEXT\"}, or {\"reply_hex\":\"HEX\"}\n"
        "    for a reply that is not printable UTF-8; tell, stop and plugins unload\n"
        "    print {\"ok\":true}; events and monitor print each event document the\n"
        "    daemon sent on a line of its own; a failure prints\n"
        "    {\"error\":\"EFULL\",\"code\":-3,\"message\":\"...\"} on stdout. Without\n"
        "    --json, failures are reported on stderr as \"axctl: COMMAND: MESSAGE\".\n"
        "\n"
        "EXIT STATUS\n"
        "    0   success (monitor: the down arrived)\n"
        "    1   the daemon refused the request (an error reply: EFULL, ENOPROC,\n"
        "        ENOTYPE, EEXIST, ENOTFOUND for --direct, EINVAL for a bad spawn\n"
        "        option, ...)\n"
        "    2   usage error: unknown command or option, missing or bad argument\n"
        "    3   cannot connect to the daemon, or the connection was lost (also\n"
        "        ends events --follow and monitor when the daemon goes away)\n"
        "    4   timed out: no answer within --timeout (including an ask the daemon\n"
        "        answered with ETIMEDOUT, and monitor without a down in time)\n"
        "\n"
        "ENVIRONMENT\n"
        "    " AXC_SOCKET_ENV "   the socket path used when --socket is not given\n"
        "\n"
        "EXAMPLES\n"
        "    axctl status\n"
        "    axctl plugins load /usr/lib/axactor/plugins/counter.so\n"
        "    axctl spawn counter c1 --mailbox 100\n"
        "    axctl spawn worker w1 --restart transient --max-restarts 5 \\\n"
        "          --restart-window-ms 10000 --backoff-ms 100\n"
        "    axctl spawn counter --key alice --idle-timeout-ms 60000\n"
        "    axctl tell c1 inc\n"
        "    axctl ask c1 get\n"
        "    axctl ask --timeout 500 @12.1 get\n"
        "    axctl ask --key alice counter get\n"
        "    axctl ask --key alice counter get --direct\n"
        "    axctl tell c1 add -- -5\n"
        "    axctl --json actors | jq -r '.actors[].name'\n"
        "    axctl monitor w1 --timeout 60000\n"
        "    axctl stop c1\n"
        "    axctl events --follow\n"
        "    axctl events --follow --actor w1 --json\n",
        f);
}

__attribute__((format(printf, 1, 2))) static int usage_error(const char *fmt, ...)
{
    va_list ap;
    fputs("axctl: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputs("\nTry 'axctl --help' for more information.\n", stderr);
    return EXIT_USAGE;
}

/* ---- output helpers ---- */

static void print_json(cJSON *doc)
{
    char *s = cJSON_PrintUnformatted(doc);
    if (s) {
        puts(s);
        cJSON_free(s);
    }
}

/* Report a failed call; the exit status tells timeouts and dead connections apart
 * from the daemon refusing the request. */
static int report(const opts *o, const axc_conn *c, int rc, const char *what, const char *msg)
{
    int ex = rc == AX_ETIMEDOUT ? EXIT_TIMEOUT
             : (!c || axc_is_broken(c) || rc == AX_ECONN) ? EXIT_CONN
                                                          : EXIT_REFUSED;
    if (!msg)
        msg = c ? axc_errmsg(c) : ax_strerror(rc);
    if (o->json) {
        cJSON *d = cJSON_CreateObject();
        cJSON_AddStringToObject(d, "error", ax_errname(rc));
        cJSON_AddNumberToObject(d, "code", rc);
        cJSON_AddStringToObject(d, "message", msg);
        print_json(d);
        cJSON_Delete(d);
    } else {
        fprintf(stderr, "axctl: %s: %s\n", what, msg);
    }
    return ex;
}

static int print_ok(const opts *o)
{
    if (o->json)
        puts("{\"ok\":true}");
    return 0;
}

/* Daemon-supplied text goes to a terminal: no control characters. */
static void sanitize(char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f)
            *s = '?';
}

static char *xstrdup(const char *s)
{
    char *d = strdup(s);
    if (!d) {
        fputs("axctl: out of memory\n", stderr);
        exit(EXIT_FAILURE);
    }
    return d;
}

static char *scalar_text(const cJSON *v)
{
    char buf[64];
    if (cJSON_IsString(v))
        return xstrdup(*v->valuestring ? v->valuestring : "-");
    if (cJSON_IsBool(v))
        return xstrdup(cJSON_IsTrue(v) ? "true" : "false");
    if (cJSON_IsNull(v))
        return xstrdup("-");
    if (cJSON_IsNumber(v)) {
        double d = v->valuedouble;
        if (d == (double)(int64_t)d && d > -9.2e18 && d < 9.2e18)
            snprintf(buf, sizeof buf, "%" PRId64, (int64_t)d);
        else if (d >= 1 || d <= -1) { /* readable: milliseconds at most, no trailing zeros */
            snprintf(buf, sizeof buf, "%.3f", d);
            char *e = buf + strlen(buf) - 1;
            while (*e == '0')
                *e-- = 0;
            if (*e == '.')
                *e = 0;
        } else {
            snprintf(buf, sizeof buf, "%.6g", d);
        }
        return xstrdup(buf);
    }
    return NULL;
}

/* Text of one value for a table cell or a key/value line: scalars as text, arrays of
 * scalars comma-separated, anything else as compact JSON. Caller frees. */
static char *value_text(const cJSON *v)
{
    char *s = scalar_text(v);
    if (!s && cJSON_IsArray(v)) {
        size_t len = 0, cap = 64;
        int plain = 1;
        const cJSON *e;
        s = malloc(cap);
        if (!s)
            return xstrdup("?");
        s[0] = 0;
        cJSON_ArrayForEach(e, v) {
            char *t = scalar_text(e);
            if (!t) {
                plain = 0;
                break;
            }
            size_t tl = strlen(t);
            while (len + tl + 3 > cap) {
                char *n = realloc(s, cap *= 2);
                if (!n) {
                    free(t);
                    free(s);
                    return xstrdup("?");
                }
                s = n;
            }
            len += (size_t)sprintf(s + len, "%s%s", len ? ", " : "", t);
            free(t);
        }
        if (!plain) {
            free(s);
            s = NULL;
        } else if (!len) {
            free(s);
            s = xstrdup("-");
        }
    }
    if (!s) {
        char *j = cJSON_PrintUnformatted(v);
        s = xstrdup(j ? j : "?");
        cJSON_free(j);
    }
    sanitize(s);
    return s;
}

typedef struct kv {
    char *key, *val;
} kv;

typedef struct kvlist {
    kv *v;
    size_t n, cap;
} kvlist;

static void kv_add(kvlist *l, char *k, char *v)
{
    if (l->n == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 16;
        l->v = realloc(l->v, l->cap * sizeof *l->v);
        if (!l->v) {
            fputs("axctl: out of memory\n", stderr);
            exit(EXIT_FAILURE);
        }
    }
    l->v[l->n].key = k;
    l->v[l->n].val = v;
    l->n++;
}

static void flatten(kvlist *l, const char *prefix, const cJSON *obj)
{
    const cJSON *e;
    cJSON_ArrayForEach(e, obj) {
        const char *k = e->string ? e->string : "?";
        size_t n = strlen(prefix) + strlen(k) + 2;
        char *full = malloc(n);
        if (!full)
            continue;
        snprintf(full, n, "%s%s%s", prefix, *prefix ? "." : "", k);
        if (cJSON_IsObject(e) && e->child) {
            flatten(l, full, e);
            free(full);
        } else {
            sanitize(full);
            kv_add(l, full, value_text(e));
        }
    }
}

/* An object as aligned "key: value" lines. */
static void print_kv(const cJSON *obj)
{
    kvlist l = {0};
    size_t w = 0;
    flatten(&l, "", obj);
    for (size_t i = 0; i < l.n; i++)
        if (strlen(l.v[i].key) > w)
            w = strlen(l.v[i].key);
    for (size_t i = 0; i < l.n; i++) {
        printf("%s:%*s %s\n", l.v[i].key, (int)(w - strlen(l.v[i].key)), "", l.v[i].val);
        free(l.v[i].key);
        free(l.v[i].val);
    }
    free(l.v);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Rows (JSON objects) as a table: the preferred columns that occur, in that order,
 * then every other key alphabetically. Missing cells print as "-". */
static void print_table(const cJSON *rows, const char *const *preferred, const char *empty_msg)
{
    const char **cols = NULL;
    size_t ncols = 0, capcols = 0, nrows = (size_t)cJSON_GetArraySize(rows), r, k;
    const cJSON *row, *e;
    if (!nrows) {
        puts(empty_msg);
        return;
    }
    /* Collect column names: preferred first, then the rest sorted. */
    for (const char *const *p = preferred; *p; p++) {
        cJSON_ArrayForEach(row, rows) {
            if (cJSON_GetObjectItemCaseSensitive(row, *p)) {
                if (ncols == capcols) {
                    capcols = capcols ? capcols * 2 : 16;
                    cols = realloc(cols, capcols * sizeof *cols);
                    if (!cols)
                        exit(EXIT_FAILURE);
                }
                cols[ncols++] = *p;
                break;
            }
        }
    }
    size_t npref = ncols;
    cJSON_ArrayForEach(row, rows) {
        cJSON_ArrayForEach(e, row) {
            int seen = !e->string;
            for (k = 0; k < ncols && !seen; k++)
                seen = !strcmp(cols[k], e->string);
            if (seen)
                continue;
            if (ncols == capcols) {
                capcols = capcols ? capcols * 2 : 16;
                cols = realloc(cols, capcols * sizeof *cols);
                if (!cols)
                    exit(EXIT_FAILURE);
            }
            cols[ncols++] = e->string;
        }
    }
    qsort(cols + npref, ncols - npref, sizeof *cols, cmp_str);
    if (!ncols) {
        free(cols);
        puts(empty_msg);
        return;
    }

    char **cell = calloc((nrows + 1) * ncols, sizeof *cell);
    size_t *w = calloc(ncols, sizeof *w);
    if (!cell || !w)
        exit(EXIT_FAILURE);
    for (k = 0; k < ncols; k++) {
        char *h = xstrdup(cols[k]);
        for (char *q = h; *q; q++)
            if (*q >= 'a' && *q <= 'z')
                *q = (char)(*q - 'a' + 'A');
        sanitize(h);
        cell[k] = h;
    }
    r = 1;
    cJSON_ArrayForEach(row, rows) {
        for (k = 0; k < ncols; k++) {
            const cJSON *v = cJSON_IsObject(row) ? cJSON_GetObjectItemCaseSensitive(row, cols[k]) : NULL;
            cell[r * ncols + k] = v ? value_text(v) : xstrdup("-");
        }
        r++;
    }
    for (r = 0; r <= nrows; r++)
        for (k = 0; k < ncols; k++)
            if (strlen(cell[r * ncols + k]) > w[k])
                w[k] = strlen(cell[r * ncols + k]);
    for (r = 0; r <= nrows; r++) {
        for (k = 0; k < ncols; k++) {
            const char *s = cell[r * ncols + k];
            if (k + 1 < ncols)
                printf("%s%*s  ", s, (int)(w[k] - strlen(s)), "");
            else
                printf("%s\n", s);
            free(cell[r * ncols + k]);
        }
    }
    free(cell);
    free(w);
    free(cols);
}

/* ---- argument parsing ---- */

static int parse_u64(const char *s, uint64_t max, uint64_t *out)
{
    char *end;
    if (!s || *s < '0' || *s > '9')
        return -1;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end || v > max)
        return -1;
    *out = v;
    return 0;
}

/* TARGET word (+ --key) to a target. ref is storage for the @ID.GEN form. */
static int parse_target(const char *word, const char *key, axc_ref *ref, axc_target *t)
{
    if (key) {
        *t = axc_by_key(word, key);
        return 0;
    }
    if (word[0] == '@') {
        char buf[64];
        uint64_t id, gen;
        const char *dot = strchr(word, '.');
        size_t il = dot ? (size_t)(dot - word - 1) : 0;
        if (!dot || il == 0 || il >= sizeof buf)
            return usage_error("bad ref '%s': expected @ID.GEN, e.g. @12.1", word);
        memcpy(buf, word + 1, il);
        buf[il] = 0;
        if (parse_u64(buf, UINT64_MAX, &id) || parse_u64(dot + 1, UINT32_MAX, &gen))
            return usage_error("bad ref '%s': expected @ID.GEN, e.g. @12.1", word);
        memset(ref, 0, sizeof *ref);
        ref->id = id;
        ref->gen = (uint32_t)gen;
        *t = axc_by_ref(ref);
        return 0;
    }
    *t = axc_by_name(word);
    return 0;
}

/* ---- commands ---- */

static int connect_or_report(const opts *o, axc_conn **c)
{
    char err[512];
    int rc = axc_connect(o->socket, o->timeout_ms, c, err, sizeof err);
    if (rc) {
        /* Whatever the code (EPERM, EVERSION, a timeout...), the daemon was not reached. */
        report(o, NULL, rc, "connect", err[0] ? err : ax_strerror(rc));
        return EXIT_CONN;
    }
    axc_set_timeout(*c, o->timeout_ms);
    return 0;
}

/* actors: every page (ACTORS with a cursor), streamed: a fixed column order, or one JSON
 * document; nothing is held but the page being printed. */
static int cmd_actors(const opts *o, axc_conn *c)
{
    static const char *const cols[] = {"id",        "gen",      "name",     "type",  "state",
                                       "mailbox",   "capacity", "processed", "restarts", "restart",
                                       "links",     "monitors", "key",      NULL};
    static const int width[] = {15, 4, 16, 12, 10, 7, 8, 9, 8, 9, 5, 8, 0}; /* ids reach 2^48 (worker << 32) */
    axc_actors_query q = {.type = o->f_type, .name_prefix = o->f_name, .state = o->f_state, .key_prefix = o->key};
    size_t rows = 0;
    if (o->json)
        fputs("{\"actors\":[", stdout);
    for (int page = 0;; page++) {
        char *doc = NULL;
        int rc = axc_actors_page(c, &q, &doc);
        if (rc) {
            if (o->json)
                puts("]}");
            return report(o, c, rc, "actors", NULL);
        }
        cJSON *d = cJSON_Parse(doc);
        axc_free(doc);
        const cJSON *arr = d ? cJSON_GetObjectItemCaseSensitive(d, "actors") : NULL;
        const cJSON *next = d ? cJSON_GetObjectItemCaseSensitive(d, "next") : NULL;
        if (!cJSON_IsArray(arr)) {
            cJSON_Delete(d);
            return report(o, c, AX_EPROTO, "actors", "the daemon sent a document that is not an actors page");
        }
        const cJSON *row;
        cJSON_ArrayForEach(row, arr) {
            if (o->json) {
                char *t = cJSON_PrintUnformatted(row);
                printf("%s%s", rows ? "," : "", t ? t : "{}");
                cJSON_free(t);
            } else {
                if (!rows) {
                    for (int k = 0; cols[k]; k++) {
                        char h[16];
                        size_t n = strlen(cols[k]);
                        for (size_t i = 0; i <= n; i++)
                            h[i] = (char)toupper((unsigned char)cols[k][i]);
                        if (cols[k + 1])
                            printf("%-*s  ", width[k], h);
                        else
                            printf("%s\n", h);
                    }
                }
                for (int k = 0; cols[k]; k++) {
                    const cJSON *v = cJSON_GetObjectItemCaseSensitive(row, cols[k]);
                    if (!v && !strcmp(cols[k], "key"))
                        v = cJSON_GetObjectItemCaseSensitive(row, "key_hex");
                    char buf[64];
                    char *txt = NULL;
                    const char *out = "-";
                    if (cJSON_IsString(v)) {
                        txt = xstrdup(v->valuestring);
                        sanitize(txt);
                        out = *txt ? txt : "-";
                    } else if (cJSON_IsNumber(v)) {
                        snprintf(buf, sizeof buf, "%.0f", v->valuedouble);
                        out = buf;
                    }
                    if (cols[k + 1])
                        printf("%-*s  ", width[k], out);
                    else
                        printf("%s\n", out);
                    free(txt);
                }
            }
            rows++;
        }
        q.cursor = cJSON_IsNumber(next) ? (uint64_t)next->valuedouble : 0;
        cJSON_Delete(d);
        if (!q.cursor)
            break;
    }
    if (o->json)
        puts("]}");
    else if (!rows)
        puts("(no actors)");
    return 0;
}

/* status --cluster: a line per member, then the sums. */
static int cmd_cluster_status(const opts *o, axc_conn *c)
{
    char *doc = NULL;
    int rc = axc_cluster_status(c, &doc);
    if (rc)
        return report(o, c, rc, "status --cluster", NULL);
    if (o->json) {
        puts(doc);
        axc_free(doc);
        return 0;
    }
    cJSON *d = cJSON_Parse(doc);
    axc_free(doc);
    if (!d)
        return report(o, c, AX_EPROTO, "status --cluster", "the daemon sent a document that is not valid JSON");
    const cJSON *mem = cJSON_GetObjectItemCaseSensitive(d, "members");
    const cJSON *ans = cJSON_GetObjectItemCaseSensitive(d, "answered"), *n;
    printf("%d member(s), %d answered\n", cJSON_IsNumber(mem) ? (int)mem->valuedouble : 0,
           cJSON_IsNumber(ans) ? (int)ans->valuedouble : 0);
    static const char *const cols[] = {"node", "actors", "keyed", "clients", "asks", "tells", "shards_owned", "error",
                                       NULL};
    cJSON *tab = cJSON_CreateArray();
    cJSON_ArrayForEach(n, cJSON_GetObjectItemCaseSensitive(d, "nodes"))
    {
        const cJSON *st = cJSON_GetObjectItemCaseSensitive(n, "status");
        const cJSON *ctr = cJSON_GetObjectItemCaseSensitive(st, "counters");
        const cJSON *sh = cJSON_GetObjectItemCaseSensitive(st, "shards");
        cJSON *row = cJSON_CreateObject();
        const struct {
            const char *col;
            const cJSON *v;
        } m[] = {{"node", cJSON_GetObjectItemCaseSensitive(n, "node")},
                 {"actors", cJSON_GetObjectItemCaseSensitive(st, "actors")},
                 {"keyed", cJSON_GetObjectItemCaseSensitive(st, "keyed_actors")},
                 {"clients", cJSON_GetObjectItemCaseSensitive(st, "clients")},
                 {"asks", cJSON_GetObjectItemCaseSensitive(ctr, "asks")},
                 {"tells", cJSON_GetObjectItemCaseSensitive(ctr, "tells")},
                 {"shards_owned", cJSON_GetObjectItemCaseSensitive(sh, "owned")},
                 {"error", cJSON_GetObjectItemCaseSensitive(n, "error")}};
        for (size_t i = 0; i < sizeof m / sizeof m[0]; i++)
            if (m[i].v)
                cJSON_AddItemToObject(row, m[i].col, cJSON_Duplicate(m[i].v, 1));
        cJSON_AddItemToArray(tab, row);
    }
    print_table(tab, cols, "(no members)");
    cJSON_Delete(tab);
    const cJSON *sum = cJSON_GetObjectItemCaseSensitive(d, "sum");
    if (cJSON_IsObject(sum)) {
        puts("sum over the members that answered:");
        print_kv(sum);
    }
    cJSON_Delete(d);
    return 0;
}

/* status / actors / plugins list / plugins load: a JSON document. */
/* drain: one line (or the document with --json); exit status 4 when it timed out. */
static int cmd_drain(const opts *o, axc_conn *c)
{
    char *doc = NULL;
    int rc = axc_drain(c, o->timeout_set ? (uint32_t)o->timeout_ms : 0, o->stay ? AXC_DRAIN_STAY : 0, &doc);
    if (rc)
        return report(o, c, rc, "drain", NULL);
    cJSON *d = cJSON_Parse(doc);
    const char *res = d ? cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(d, "result")) : NULL;
    int late = res && strcmp(res, "drained") != 0;
    if (o->json) {
        puts(doc);
    } else if (d) {
        const cJSON *hb = cJSON_GetObjectItemCaseSensitive(d, "handed_over");
        const cJSON *ms = cJSON_GetObjectItemCaseSensitive(d, "ms");
        const cJSON *avg = cJSON_GetObjectItemCaseSensitive(d, "handover_ms_avg");
        const cJSON *max = cJSON_GetObjectItemCaseSensitive(d, "handover_ms_max");
        const cJSON *msgs = cJSON_GetObjectItemCaseSensitive(d, "messages_handed_back");
        const cJSON *left = cJSON_GetObjectItemCaseSensitive(d, "still_owned");
        printf("%s in %.0f ms: %.0f shard(s) handed over (handover %.1f ms mean, %.1f ms longest), %.0f queued "
               "message(s) handed to the next owners%s%s\n",
               res ? res : "?", cJSON_IsNumber(ms) ? ms->valuedouble : 0, cJSON_IsNumber(hb) ? hb->valuedouble : 0,
               cJSON_IsNumber(avg) ? avg->valuedouble : 0, cJSON_IsNumber(max) ? max->valuedouble : 0,
               cJSON_IsNumber(msgs) ? msgs->valuedouble : 0,
               late && cJSON_IsNumber(left) && left->valuedouble > 0 ? "; some shards are still held" : "",
               o->stay ? "; the daemon stays up without shards (axctl undrain ends it)" : "; the daemon stops");
    }
    cJSON_Delete(d);
    axc_free(doc);
    return late ? 4 : 0;
}

static int cmd_doc(const opts *o, axc_conn *c, const char *what, int rc, char *doc)
{
    if (rc)
        return report(o, c, rc, what, NULL);
    if (o->json) {
        puts(doc);
        axc_free(doc);
        return 0;
    }
    cJSON *d = cJSON_Parse(doc);
    if (!d) {
        axc_free(doc);
        return report(o, c, AX_EPROTO, what, "the daemon sent a document that is not valid JSON");
    }
    static const char *const actor_cols[] = {"id", "name", "type", "state", "mailbox", NULL};
    static const char *const plugin_cols[] = {"name", "version", "abi", "types", "path", NULL};
    static const char *const shard_cols[] = {"shard", "state", "owner", "epoch", "expires_in_ms", "actors", NULL};
    const cJSON *rows = NULL;
    const char *const *cols = actor_cols;
    const char *empty = "(no actors)";
    if (!strcmp(what, "actors")) {
        rows = cJSON_IsArray(d) ? d : cJSON_GetObjectItemCaseSensitive(d, "actors");
    } else if (!strcmp(what, "shards")) {
        rows = cJSON_GetObjectItemCaseSensitive(d, "shards");
        cols = shard_cols;
        empty = "(no shards)";
        const cJSON *st = cJSON_GetObjectItemCaseSensitive(d, "store");
        const cJSON *ow = cJSON_GetObjectItemCaseSensitive(d, "owned"), *tg = cJSON_GetObjectItemCaseSensitive(d, "target");
        const cJSON *sty = st ? cJSON_GetObjectItemCaseSensitive(st, "type") : NULL;
        const cJSON *sco = st ? cJSON_GetObjectItemCaseSensitive(st, "conn") : NULL;
        if (cJSON_IsNumber(ow) && cJSON_IsNumber(tg))
            printf("owned %d of target %d; lease store %s (%s)\n", (int)ow->valuedouble, (int)tg->valuedouble,
                   cJSON_IsString(sty) ? sty->valuestring : "?", cJSON_IsString(sco) ? sco->valuestring : "?");
    } else if (!strcmp(what, "nodes")) {
        /* a table of the columns only; --json has everything */
        static const char *const node_cols[] = {"node",       "session",   "state",         "version",
                                                "abi",        "rtt_ms",    "bytes_in",      "bytes_out",
                                                "frames_in",  "frames_out", "auth_failures", "last_error", NULL};
        const cJSON *members = cJSON_GetObjectItemCaseSensitive(d, "members");
        const cJSON *me = cJSON_GetObjectItemCaseSensitive(d, "node"), *p;
        const cJSON *on = cJSON_GetObjectItemCaseSensitive(d, "cluster");
        printf("this node %s; cluster %s\n", cJSON_IsString(me) ? me->valuestring : "?",
               cJSON_IsTrue(on) ? "on" : "off (no cluster.listen or cluster.peers)");
        cJSON *tab = cJSON_CreateArray();
        cJSON_ArrayForEach(p, cJSON_GetObjectItemCaseSensitive(d, "peers")) {
            cJSON *row = cJSON_CreateObject();
            const cJSON *nm = cJSON_GetObjectItemCaseSensitive(p, "name"), *m, *rec = NULL;
            cJSON_ArrayForEach(m, members) /* its membership record, if the store has one */
            {
                const cJSON *mn = cJSON_GetObjectItemCaseSensitive(m, "name");
                if (cJSON_IsString(mn) && cJSON_IsString(nm) && !strcmp(mn->valuestring, nm->valuestring))
                    rec = m;
            }
            for (const char *const *k = node_cols; *k; k++) {
                int from_rec = !strcmp(*k, "version") || !strcmp(*k, "abi");
                const cJSON *v = from_rec ? (rec ? cJSON_GetObjectItemCaseSensitive(rec, *k) : NULL)
                                          : cJSON_GetObjectItemCaseSensitive(p, strcmp(*k, "node") ? *k : "name");
                if (v)
                    cJSON_AddItemToObject(row, *k, cJSON_Duplicate(v, 1));
            }
            cJSON_AddItemToArray(tab, row);
        }
        cJSON_AddItemToObject(d, "table_", tab);
        rows = tab;
        cols = node_cols;
        empty = "(no peers)";
    } else if (!strcmp(what, "plugins list")) {
        rows = cJSON_IsArray(d) ? d : cJSON_GetObjectItemCaseSensitive(d, "plugins");
        cols = plugin_cols;
        empty = "(no plugins)";
    }
    if (cJSON_IsArray(rows)) {
        print_table(rows, cols, empty);
    } else if (cJSON_IsObject(d)) {
        if (!strcmp(what, "plugins load")) {
            const cJSON *n = cJSON_GetObjectItemCaseSensitive(d, "name");
            if (cJSON_IsString(n)) {
                char *s = xstrdup(n->valuestring);
                sanitize(s);
                printf("loaded plugin %s\n", s);
                free(s);
            }
        }
        print_kv(d);
    } else {
        char *s = value_text(d);
        puts(s);
        free(s);
    }
    cJSON_Delete(d);
    axc_free(doc);
    return 0;
}

/* Printable UTF-8 (well-formed, no control characters but tab/newline/CR)? */
static int printable_utf8(const unsigned char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        unsigned char b = s[i];
        if (b < 0x80) {
            if ((b < 0x20 && b != '\t' && b != '\n' && b != '\r') || b == 0x7f)
                return 0;
            i++;
            continue;
        }
        size_t len;
        uint32_t cp, min;
        if ((b & 0xe0) == 0xc0) {
            len = 2, cp = b & 0x1f, min = 0x80;
        } else if ((b & 0xf0) == 0xe0) {
            len = 3, cp = b & 0x0f, min = 0x800;
        } else if ((b & 0xf8) == 0xf0) {
            len = 4, cp = b & 0x07, min = 0x10000;
        } else {
            return 0;
        }
        if (n - i < len)
            return 0;
        for (size_t k = 1; k < len; k++) {
            if ((s[i + k] & 0xc0) != 0x80)
                return 0;
            cp = cp << 6 | (s[i + k] & 0x3f);
        }
        if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff) || (cp >= 0x80 && cp < 0xa0))
            return 0;
        i += len;
    }
    return 1;
}

static char *hex(const unsigned char *p, size_t n)
{
    static const char digits[] = "0123456789abcdef";
    char *s = malloc(2 * n + 1);
    if (!s)
        exit(EXIT_FAILURE);
    for (size_t i = 0; i < n; i++) {
        s[2 * i] = digits[p[i] >> 4];
        s[2 * i + 1] = digits[p[i] & 15];
    }
    s[2 * n] = 0;
    return s;
}

static int cmd_ask(const opts *o, axc_conn *c, const axc_target *t, const char *msg, const char *payload)
{
    void *reply = NULL;
    size_t len = 0;
    int rc = axc_ask_ex(c, t, msg, payload, payload ? strlen(payload) : 0, o->timeout_ms, o->direct ? AXC_DIRECT : 0,
                        &reply, &len);
    if (rc)
        return report(o, c, rc, "ask", NULL);
    int text = printable_utf8(reply, len);
    if (o->json) {
        cJSON *d = cJSON_CreateObject();
        if (text) {
            cJSON_AddStringToObject(d, "reply", reply);
        } else {
            char *h = hex(reply, len);
            cJSON_AddStringToObject(d, "reply_hex", h);
            free(h);
        }
        print_json(d);
        cJSON_Delete(d);
    } else if (text) {
        if (len) {
            fwrite(reply, 1, len, stdout);
            if (((const char *)reply)[len - 1] != '\n')
                putchar('\n');
        }
    } else {
        char *h = hex(reply, len);
        puts(h);
        free(h);
    }
    axc_free(reply);
    return 0;
}

/* Replace key k of cfg with item v. */
static void cfg_set(cJSON *cfg, const char *k, cJSON *v)
{
    cJSON_DeleteItemFromObjectCaseSensitive(cfg, k);
    cJSON_AddItemToObject(cfg, k, v);
}

/* An unsigned option in 0..max (lo..max) as a JSON number; EXIT_USAGE if malformed. */
static int cfg_uint(cJSON *cfg, const char *k, const char *opt, const char *val, uint64_t lo, uint64_t max)
{
    uint64_t n;
    if (!val)
        return 0;
    if (parse_u64(val, max, &n) || n < lo)
        return usage_error("%s: expected an integer from %" PRIu64 " to %" PRIu64 ", got '%s'", opt, lo, max, val);
    cfg_set(cfg, k, cJSON_CreateNumber((double)n));
    return 0;
}

static int cfg_enum(cJSON *cfg, const char *k, const char *opt, const char *val, const char *const *allowed)
{
    if (!val)
        return 0;
    for (const char *const *a = allowed; *a; a++) {
        if (!strcmp(val, *a)) {
            cfg_set(cfg, k, cJSON_CreateString(val));
            return 0;
        }
    }
    return usage_error("%s: expected %s or %s%s%s, got '%s'", opt, allowed[0], allowed[1], allowed[2] ? " or " : "",
                       allowed[2] ? allowed[2] : "", val);
}

/* The spawn config: --config merged with the other spawn options (which win). Checked
 * before connecting; *out (NULL when there is nothing to send) is freed with cJSON_free.
 * 0 or EXIT_USAGE. */
static int spawn_config(const opts *o, const char *name, char **out)
{
    static const char *const restarts[] = {"permanent", "transient", "temporary", NULL};
    static const char *const policies[] = {"keep", "drain_and_drop", NULL};
    cJSON *cfg = NULL;
    int rc;
    *out = NULL;
    if (o->key && name && *name)
        return usage_error("spawn: a keyed actor (--key) has no NAME");
    if (o->config) {
        cfg = cJSON_Parse(o->config);
        if (!cJSON_IsObject(cfg)) {
            cJSON_Delete(cfg);
            return usage_error("--config: not a JSON object: %s", o->config);
        }
    }
    if (!cfg && !o->mailbox && !o->key && !o->restart && !o->max_restarts && !o->restart_window_ms &&
        !o->backoff_ms && !o->mailbox_policy && !o->idle_timeout_ms && !o->trap_exit && !o->arg)
        return 0;
    if (!cfg)
        cfg = cJSON_CreateObject();
    if (!cfg) {
        fputs("axctl: out of memory\n", stderr);
        exit(EXIT_FAILURE);
    }
    if ((rc = cfg_uint(cfg, "mailbox_capacity", "--mailbox", o->mailbox, 1, UINT32_MAX)) ||
        (rc = cfg_enum(cfg, "restart", "--restart", o->restart, restarts)) ||
        (rc = cfg_uint(cfg, "max_restarts", "--max-restarts", o->max_restarts, 0, UINT32_MAX)) ||
        (rc = cfg_uint(cfg, "restart_window_ms", "--restart-window-ms", o->restart_window_ms, 0, UINT32_MAX)) ||
        (rc = cfg_uint(cfg, "backoff_ms", "--backoff-ms", o->backoff_ms, 0, UINT32_MAX)) ||
        (rc = cfg_enum(cfg, "mailbox_policy", "--mailbox-policy", o->mailbox_policy, policies)) ||
        (rc = cfg_uint(cfg, "idle_timeout_ms", "--idle-timeout-ms", o->idle_timeout_ms, 0, UINT32_MAX))) {
        cJSON_Delete(cfg);
        return rc;
    }
    if (o->trap_exit)
        cfg_set(cfg, "trap_exit", cJSON_CreateTrue());
    if (o->key)
        cfg_set(cfg, "key", cJSON_CreateString(o->key));
    if (o->arg) {
        if (strlen(o->arg) > 32768) {
            cJSON_Delete(cfg);
            return usage_error("--arg: at most 32768 bytes");
        }
        cfg_set(cfg, "arg", cJSON_CreateString(o->arg));
    }
    *out = cJSON_PrintUnformatted(cfg);
    cJSON_Delete(cfg);
    if (!*out) {
        fputs("axctl: out of memory\n", stderr);
        exit(EXIT_FAILURE);
    }
    return 0;
}

static int cmd_spawn(const opts *o, axc_conn *c, const char *type, const char *name, const char *cfg_text)
{
    axc_ref ref;
    int rc = axc_spawn(c, type, name, cfg_text, &ref);
    if (rc)
        return report(o, c, rc, "spawn", NULL);
    /* The daemon names its own node in refs; only another node is worth showing. */
    int remote = ref.node[0] && strcmp(ref.node, axc_node_id(c)) != 0;
    if (o->json) {
        char num[32];
        cJSON *d = cJSON_CreateObject();
        /* Raw, not a double: ids are 64-bit. */
        snprintf(num, sizeof num, "%" PRIu64, ref.id);
        cJSON_AddRawToObject(d, "id", num);
        cJSON_AddNumberToObject(d, "gen", ref.gen);
        if (name && *name)
            cJSON_AddStringToObject(d, "name", name);
        else
            cJSON_AddNullToObject(d, "name");
        if (remote)
            cJSON_AddStringToObject(d, "node", ref.node);
        print_json(d);
        cJSON_Delete(d);
    } else {
        printf("@%" PRIu64 ".%" PRIu32, ref.id, ref.gen);
        if (name && *name)
            printf(" %s", name);
        if (remote)
            printf(" (on node %s)", ref.node);
        putchar('\n');
    }
    return 0;
}

/* A relative path that exists from here is made absolute (the daemon's working
 * directory is not ours); anything else goes as is, for the daemon's plugins.dir. */
static int cmd_plugin_load(const opts *o, axc_conn *c, const char *path)
{
    char *abs = NULL, *doc = NULL;
    if (path[0] != '/' && access(path, F_OK) == 0)
        abs = realpath(path, NULL);
    int rc = axc_plugin_load(c, abs ? abs : path, &doc);
    free(abs);
    return cmd_doc(o, c, "plugins load", rc, doc);
}

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* One event as a line: "started   @3.1 c1 counter reason=..." (other fields as
 * key=value in the daemon's order). */
static void print_event(const char *doc)
{
    cJSON *d = cJSON_Parse(doc);
    if (!cJSON_IsObject(d)) {
        char *s = xstrdup(doc);
        sanitize(s);
        puts(s);
        free(s);
        cJSON_Delete(d);
        return;
    }
    const cJSON *ev = cJSON_GetObjectItemCaseSensitive(d, "event");
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(d, "id");
    const cJSON *gen = cJSON_GetObjectItemCaseSensitive(d, "gen");
    const cJSON *tm = cJSON_GetObjectItemCaseSensitive(d, "time");
    if (cJSON_IsNumber(tm) && tm->valuedouble > 0 && tm->valuedouble < 1e11) {
        /* seconds since the epoch -> UTC, to the millisecond */
        time_t secs = (time_t)tm->valuedouble;
        struct tm utc;
        char when[32];
        if (gmtime_r(&secs, &utc) && strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%S", &utc))
            printf("%s.%03dZ ", when, (int)((tm->valuedouble - (double)secs) * 1000));
    }
    char *s = ev ? value_text(ev) : xstrdup("?");
    printf("%-9s", s);
    free(s);
    if (cJSON_IsNumber(id) && cJSON_IsNumber(gen))
        printf(" @%.0f.%.0f", id->valuedouble, gen->valuedouble);
    static const char *const lead[] = {"name", "type", NULL};
    for (const char *const *k = lead; *k; k++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(d, *k);
        if (v) {
            s = value_text(v);
            printf(" %s", s);
            free(s);
        }
    }
    const cJSON *e;
    cJSON_ArrayForEach(e, d) {
        const char *k = e->string ? e->string : "?";
        if (!strcmp(k, "event") || !strcmp(k, "id") || !strcmp(k, "gen") || !strcmp(k, "name") ||
            !strcmp(k, "type") || (!strcmp(k, "time") && cJSON_IsNumber(e)))
            continue;
        s = value_text(e);
        char *ks = xstrdup(k);
        sanitize(ks);
        printf(" %s=%s", ks, s);
        free(ks);
        free(s);
    }
    putchar('\n');
    cJSON_Delete(d);
}


/* Wait for the down of one monitor and print it. */
static int cmd_monitor(const opts *o, axc_conn *c, const axc_target *t)
{
    uint64_t mref = 0;
    int rc = axc_monitor(c, t, &mref);
    if (rc)
        return report(o, c, rc, "monitor", NULL);
    int64_t end = mono_ms() + o->timeout_ms;
    for (;;) {
        int64_t left = end - mono_ms();
        if (o->timeout_set && left <= 0) {
            char msg[96];
            snprintf(msg, sizeof msg, "no down within %d ms", o->timeout_ms);
            return report(o, c, AX_ETIMEDOUT, "monitor", msg);
        }
        char *doc = NULL;
        rc = axc_next_event(c, o->timeout_set ? (int)left : 60000, &doc);
        if (rc < 0)
            return report(o, c, rc, "monitor", NULL);
        if (rc == 0)
            continue;
        /* Only this connection's monitor produces events here (no SUBSCRIBE). */
        cJSON *d = cJSON_Parse(doc);
        const cJSON *ev = cJSON_GetObjectItemCaseSensitive(d, "event");
        const cJSON *mr = cJSON_GetObjectItemCaseSensitive(d, "mref");
        int ours = cJSON_IsString(ev) && !strcmp(ev->valuestring, "down") && cJSON_IsNumber(mr) &&
                   (uint64_t)mr->valuedouble == mref;
        cJSON_Delete(d);
        if (ours) {
            if (o->json)
                puts(doc);
            else
                print_event(doc);
        }
        axc_free(doc);
        if (ours)
            return 0;
    }
}

static int cmd_events(const opts *o, axc_conn *c, const char *name)
{
    int rc = axc_subscribe(c, name);
    if (rc)
        return report(o, c, rc, "events", NULL);
    int64_t end = mono_ms() + o->timeout_ms;
    for (;;) {
        int64_t left = end - mono_ms();
        if (!o->follow && left <= 0)
            return 0;
        char *doc = NULL;
        rc = axc_next_event(c, o->follow ? 60000 : (int)left, &doc);
        if (rc < 0)
            return report(o, c, rc, "events", NULL);
        if (rc == 0)
            continue;
        if (o->json)
            puts(doc);
        else
            print_event(doc);
        /* a pipe would otherwise hold the lines back until exit */
        fflush(stdout);
        axc_free(doc);
    }
}

static int need_args(const char *cmd, int have, int min, int max, const char *synopsis)
{
    if (have < min)
        return usage_error("%s: missing argument (usage: axctl %s)", cmd, synopsis);
    if (have > max)
        return usage_error("%s: too many arguments (usage: axctl %s)", cmd, synopsis);
    return 0;
}

int main(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"socket", required_argument, NULL, 's'},  {"json", no_argument, NULL, 'j'},
        {"timeout", required_argument, NULL, 't'}, {"key", required_argument, NULL, 'k'},
        {"mailbox", required_argument, NULL, 'm'}, {"config", required_argument, NULL, 'c'},
        {"help", no_argument, NULL, 'h'},          {"version", no_argument, NULL, 'V'},
        {"follow", no_argument, NULL, 'f'},        {"actor", required_argument, NULL, 'a'},
        {"direct", no_argument, NULL, OPT_DIRECT},
        {"restart", required_argument, NULL, OPT_RESTART},
        {"max-restarts", required_argument, NULL, OPT_MAX_RESTARTS},
        {"restart-window-ms", required_argument, NULL, OPT_RESTART_WINDOW},
        {"backoff-ms", required_argument, NULL, OPT_BACKOFF},
        {"mailbox-policy", required_argument, NULL, OPT_MAILBOX_POLICY},
        {"idle-timeout-ms", required_argument, NULL, OPT_IDLE_TIMEOUT}, {"arg", required_argument, NULL, OPT_ARG},
        {"trap-exit", no_argument, NULL, OPT_TRAP_EXIT},
        {"type", required_argument, NULL, OPT_TYPE},
        {"name", required_argument, NULL, OPT_NAME},
        {"state", required_argument, NULL, OPT_STATE},
        {"stay", no_argument, NULL, OPT_STAY},
        {"cluster", no_argument, NULL, OPT_CLUSTER},
        {NULL, 0, NULL, 0},
    };
    opts o = {.timeout_ms = DEFAULT_TIMEOUT_MS};
    int ch;
    opterr = 0;
    while ((ch = getopt_long(argc, argv, ":s:jt:k:m:c:fa:hV", longopts, NULL)) != -1) {
        uint64_t v;
        switch (ch) {
        case 's':
            o.socket = optarg;
            break;
        case 'j':
            o.json = 1;
            break;
        case 't':
            if (parse_u64(optarg, MAX_TIMEOUT_MS, &v) || v == 0)
                return usage_error("--timeout: expected milliseconds from 1 to %d, got '%s'", MAX_TIMEOUT_MS,
                                   optarg);
            o.timeout_ms = (int)v;
            o.timeout_set = 1;
            break;
        case 'k':
            o.key = optarg;
            break;
        case 'm':
            o.mailbox = optarg;
            break;
        case 'c':
            o.config = optarg;
            break;
        case 'f':
            o.follow = 1;
            break;
        case 'a':
            o.actor = optarg;
            break;
        case OPT_DIRECT:
            o.direct = 1;
            break;
        case OPT_RESTART:
            o.restart = optarg;
            break;
        case OPT_MAX_RESTARTS:
            o.max_restarts = optarg;
            break;
        case OPT_RESTART_WINDOW:
            o.restart_window_ms = optarg;
            break;
        case OPT_BACKOFF:
            o.backoff_ms = optarg;
            break;
        case OPT_MAILBOX_POLICY:
            o.mailbox_policy = optarg;
            break;
        case OPT_IDLE_TIMEOUT:
            o.idle_timeout_ms = optarg;
            break;
        case OPT_TRAP_EXIT:
            o.trap_exit = 1;
            break;
        case OPT_ARG:
            o.arg = optarg;
            break;
        case OPT_TYPE:
            o.f_type = optarg;
            break;
        case OPT_NAME:
            o.f_name = optarg;
            break;
        case OPT_STATE:
            o.f_state = optarg;
            break;
        case OPT_STAY:
            o.stay = 1;
            break;
        case OPT_CLUSTER:
            o.cluster = 1;
            break;
        case 'h':
            usage(stdout);
            return 0;
        case 'V':
            printf("axctl %s (axactor client protocol %u)\n", AX_VERSION, AX_PROTO_VERSION);
            return 0;
        case ':':
            return usage_error("option '%s' needs an argument", argv[optind - 1]);
        default:
            if (optopt)
                return usage_error("unknown option '-%c'", optopt);
            return usage_error("unknown option '%s'", argv[optind - 1]);
        }
    }
    char **args = argv + optind;
    int nargs = argc - optind;
    if (nargs == 0)
        return usage_error("no command given");
    const char *cmd = args[0];
    args++;
    nargs--;

    if (!strcmp(cmd, "help")) {
        usage(stdout);
        return 0;
    }
    /* Validate everything before connecting: a usage error never touches the daemon. */
    int is_plugins = !strcmp(cmd, "plugins");
    const char *sub = is_plugins && nargs > 0 ? args[0] : NULL;
    int rc;
    if (o.cluster && strcmp(cmd, "status") != 0)
        return usage_error("--cluster: only for status (axctl status --cluster)");
    if (!strcmp(cmd, "status") || !strcmp(cmd, "actors") || !strcmp(cmd, "shards") || !strcmp(cmd, "nodes")) {
        if ((rc = need_args(cmd, nargs, 0, 0, cmd)))
            return rc;
    } else if (!strcmp(cmd, "spawn")) {
        if ((rc = need_args(cmd, nargs, 1, 2, "spawn TYPE [NAME] [SPAWN OPTIONS]")))
            return rc;
    } else if (!strcmp(cmd, "tell") || !strcmp(cmd, "ask")) {
        if ((rc = need_args(cmd, nargs, 2, 3, !strcmp(cmd, "tell") ? "tell TARGET MSG [PAYLOAD] [--direct]"
                                                                    : "ask TARGET MSG [PAYLOAD] [--direct]")))
            return rc;
    } else if (!strcmp(cmd, "stop") || !strcmp(cmd, "monitor")) {
        if ((rc = need_args(cmd, nargs, 1, 1, !strcmp(cmd, "stop") ? "stop TARGET" : "monitor TARGET")))
            return rc;
    } else if (!strcmp(cmd, "exit")) {
        if ((rc = need_args(cmd, nargs, 1, 2, "exit TARGET [REASON]")))
            return rc;
    } else if (!strcmp(cmd, "log-level")) {
        if ((rc = need_args(cmd, nargs, 1, 1, "log-level LEVEL (error, warn, info or debug)")))
            return rc;
    } else if (!strcmp(cmd, "drain") || !strcmp(cmd, "undrain")) {
        if ((rc = need_args(cmd, nargs, 0, 0, !strcmp(cmd, "drain") ? "drain [--timeout MS] [--stay]" : "undrain")))
            return rc;
    } else if (!strcmp(cmd, "forget")) {
        if ((rc = need_args(cmd, nargs, o.key ? 1 : 2, o.key ? 1 : 2, "forget TYPE KEY | forget TYPE --key KEY")))
            return rc;
    } else if (!strcmp(cmd, "events")) {
        if ((rc = need_args(cmd, nargs, 0, 1, "events [NAME] [--actor NAME] [--follow]")))
            return rc;
        if (nargs == 1 && o.actor && strcmp(args[0], o.actor))
            return usage_error("events: NAME '%s' and --actor '%s' disagree", args[0], o.actor);
    } else if (is_plugins) {
        if (!sub)
            return usage_error("plugins: missing subcommand (list, load PATH, unload NAME)");
        if (!strcmp(sub, "list")) {
            if ((rc = need_args("plugins list", nargs - 1, 0, 0, "plugins list")))
                return rc;
        } else if (!strcmp(sub, "load")) {
            if ((rc = need_args("plugins load", nargs - 1, 1, 1, "plugins load PATH")))
                return rc;
        } else if (!strcmp(sub, "unload")) {
            if ((rc = need_args("plugins unload", nargs - 1, 1, 1, "plugins unload NAME")))
                return rc;
        } else {
            return usage_error("plugins: unknown subcommand '%s' (list, load, unload)", sub);
        }
    } else {
        return usage_error("unknown command '%s'", cmd);
    }
    int targets = !strcmp(cmd, "tell") || !strcmp(cmd, "ask") || !strcmp(cmd, "stop") || !strcmp(cmd, "monitor") ||
                  !strcmp(cmd, "exit");
    if (o.key && !targets && strcmp(cmd, "spawn") && strcmp(cmd, "actors") && strcmp(cmd, "forget"))
        return usage_error("--key is only valid with spawn, tell, ask, stop, exit, monitor, forget and actors");
    if ((o.f_type || o.f_name || o.f_state) && strcmp(cmd, "actors"))
        return usage_error("--type, --name and --state are only valid with actors");
    if ((o.mailbox || o.config || o.restart || o.max_restarts || o.restart_window_ms || o.backoff_ms ||
         o.mailbox_policy || o.idle_timeout_ms || o.trap_exit || o.arg) &&
        strcmp(cmd, "spawn"))
        return usage_error("--mailbox, --config, --restart, --max-restarts, --restart-window-ms, --backoff-ms, "
                           "--mailbox-policy, --idle-timeout-ms, --trap-exit and --arg are only valid with spawn");
    if (o.follow && strcmp(cmd, "events"))
        return usage_error("--follow is only valid with events");
    if (o.actor && strcmp(cmd, "events"))
        return usage_error("--actor is only valid with events");
    if (o.direct && strcmp(cmd, "tell") && strcmp(cmd, "ask"))
        return usage_error("--direct is only valid with tell and ask");
    if (o.direct && !o.key)
        return usage_error("--direct needs --key (it only applies to keyed targets)");
    axc_ref ref;
    axc_target t;
    if (targets && (rc = parse_target(args[0], o.key, &ref, &t)))
        return rc;
    char *spawn_cfg = NULL;
    if (!strcmp(cmd, "spawn") && (rc = spawn_config(&o, nargs > 1 ? args[1] : NULL, &spawn_cfg)))
        return rc;

    axc_conn *c = NULL;
    if ((rc = connect_or_report(&o, &c))) {
        cJSON_free(spawn_cfg);
        return rc;
    }
    char *doc = NULL;
    int ex;
    if (!strcmp(cmd, "status") && o.cluster) {
        ex = cmd_cluster_status(&o, c);
    } else if (!strcmp(cmd, "status")) {
        rc = axc_status(c, &doc);
        ex = cmd_doc(&o, c, "status", rc, doc);
    } else if (!strcmp(cmd, "actors")) {
        ex = cmd_actors(&o, c);
    } else if (!strcmp(cmd, "shards")) {
        rc = axc_shards(c, &doc);
        ex = cmd_doc(&o, c, "shards", rc, doc);
    } else if (!strcmp(cmd, "nodes")) {
        rc = axc_nodes(c, &doc);
        ex = cmd_doc(&o, c, "nodes", rc, doc);
    } else if (!strcmp(cmd, "spawn")) {
        ex = cmd_spawn(&o, c, args[0], nargs > 1 ? args[1] : NULL, spawn_cfg);
    } else if (!strcmp(cmd, "tell")) {
        const char *p = nargs > 2 ? args[2] : NULL;
        rc = axc_tell_ex(c, &t, args[1], p, p ? strlen(p) : 0, o.direct ? AXC_DIRECT : 0);
        ex = rc ? report(&o, c, rc, "tell", NULL) : print_ok(&o);
    } else if (!strcmp(cmd, "ask")) {
        ex = cmd_ask(&o, c, &t, args[1], nargs > 2 ? args[2] : NULL);
    } else if (!strcmp(cmd, "stop")) {
        rc = axc_stop(c, &t);
        ex = rc ? report(&o, c, rc, "stop", NULL) : print_ok(&o);
    } else if (!strcmp(cmd, "exit")) {
        rc = axc_exit(c, &t, nargs > 1 ? args[1] : "normal");
        ex = rc ? report(&o, c, rc, "exit", NULL) : print_ok(&o);
    } else if (!strcmp(cmd, "monitor")) {
        ex = cmd_monitor(&o, c, &t);
    } else if (!strcmp(cmd, "log-level")) {
        rc = axc_set_log_level(c, args[0]);
        ex = rc ? report(&o, c, rc, "log-level", NULL) : print_ok(&o);
    } else if (!strcmp(cmd, "drain")) {
        ex = cmd_drain(&o, c);
    } else if (!strcmp(cmd, "undrain")) {
        rc = axc_undrain(c);
        ex = rc ? report(&o, c, rc, "undrain", NULL) : print_ok(&o);
    } else if (!strcmp(cmd, "forget")) {
        axc_target ft = axc_by_key(args[0], o.key ? o.key : args[1]);
        void *reply = NULL;
        size_t len = 0;
        rc = axc_ask_ex(c, &ft, "$forget", NULL, 0, o.timeout_ms, 0, &reply, &len);
        axc_free(reply);
        ex = rc ? report(&o, c, rc, "forget", NULL) : print_ok(&o);
    } else if (!strcmp(cmd, "events")) {
        ex = cmd_events(&o, c, nargs > 0 ? args[0] : o.actor);
    } else if (!strcmp(sub, "list")) {
        rc = axc_plugins(c, &doc);
        ex = cmd_doc(&o, c, "plugins list", rc, doc);
    } else if (!strcmp(sub, "load")) {
        ex = cmd_plugin_load(&o, c, args[1]);
    } else {
        rc = axc_plugin_unload(c, args[1]);
        ex = rc ? report(&o, c, rc, "plugins unload", NULL) : print_ok(&o);
    }
    axc_close(c);
    cJSON_free(spawn_cfg);
    if (fflush(stdout) != 0 && !ex)
        ex = EXIT_FAILURE;
    return ex;
}
