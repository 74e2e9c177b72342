/* A pipelined loader of unique "add" asks to durable ledger actors (plugins/ledger.c)
 * through one node, and the checks on what it saw acknowledged: for the tests of durable
 * keyed actors (test_durable) and of draining a node (test_drain). Include once, after
 * shards_test_util.h. */
#ifndef AX_LEDGER_LOADER_H
#define AX_LEDGER_LOADER_H

#include <pthread.h>

#define NKEYS 8
#define WINDOW 16
#define MAX_ACKED 200000

/* ---------------- a pipelined loader of unique adds through one node ---------------- */

typedef struct loader {
    int node;
    pthread_t th;
    volatile int stop;
    uint64_t next_id;
    uint64_t *acked[NKEYS]; /* ids acknowledged per key */
    size_t n_acked[NKEYS];
    uint64_t errors, sent;
    int first_error; /* the status of the first ask that failed */
} loader;

/* The keys' names: written once, before any loader thread reads them (they were written
 * at every call, from every loader thread at once: a reader could see a key being
 * rewritten, and sent an empty one — the daemon refused it as malformed, EPROTO). */
static char key_names[NKEYS][16];
static const char *key_name(int k)
{
    if (!key_names[k][0])
        snprintf(key_names[k], sizeof key_names[k], "acct-%d", k);
    return key_names[k];
}

static void *loader_main(void *arg)
{
    loader *L = arg;
    axc_conn *c = NULL;
    struct {
        uint32_t req;
        int key;
        uint64_t id;
    } inflight[WINDOW];
    int n_in = 0;
    double end_by = now_s() + 600; /* bounded whatever happens */
    while ((!L->stop || n_in) && now_s() < end_by) {
        if (!c || axc_is_broken(c)) {
            axc_close(c);
            c = NULL;
            n_in = 0; /* their results are unknown: not acknowledged */
            char err[256];
            if (L->stop || axc_connect(ax_h_sock(N[L->node].d), 2000, &c, err, sizeof err) != 0) {
                c = NULL;
                if (L->stop)
                    break;
                sleep_ms(50);
                continue;
            }
        }
        while (!L->stop && n_in < WINDOW) {
            int k = (int)(L->next_id % NKEYS);
            char p[24];
            int pn = snprintf(p, sizeof p, "%llu", (unsigned long long)L->next_id);
            axc_target t = axc_by_key("ledger", key_name(k));
            uint32_t req;
            if (axc_send_ask(c, &t, "add", p, (size_t)pn, 3000, &req) != 0)
                break;
            inflight[n_in].req = req;
            inflight[n_in].key = k;
            inflight[n_in].id = L->next_id++;
            n_in++;
            L->sent++;
        }
        axc_flush(c);
        axc_result r;
        int got = axc_poll_result(c, 200, &r);
        if (got != 1) {
            if (got < 0 && axc_is_broken(c))
                continue;
            continue;
        }
        for (int i = 0; i < n_in; i++) {
            if (inflight[i].req != r.req_id)
                continue;
            if (r.status == AX_OK) {
                int k = inflight[i].key;
                if (L->n_acked[k] < MAX_ACKED)
                    L->acked[k][L->n_acked[k]++] = inflight[i].id;
            } else {
                if (!L->errors++)
                    L->first_error = r.status;
            }
            inflight[i] = inflight[--n_in];
            break;
        }
        axc_free(r.data);
    }
    axc_close(c);
    return NULL;
}

static void loader_start(loader *L, int via, uint64_t first_id)
{
    for (int k = 0; k < NKEYS; k++) /* before the thread: it only reads them */
        key_name(k);
    memset(L, 0, sizeof *L);
    L->node = via;
    L->next_id = first_id;
    for (int k = 0; k < NKEYS; k++)
        L->acked[k] = calloc(MAX_ACKED, sizeof(uint64_t));
    ck_assert_int_eq(pthread_create(&L->th, NULL, loader_main, L), 0);
}

static void loader_stop(loader *L)
{
    L->stop = 1;
    pthread_join(L->th, NULL);
}

static void loader_free(loader *L)
{
    for (int k = 0; k < NKEYS; k++)
        free(L->acked[k]);
}

static int u64_cmp(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* Every id the loader saw acknowledged is in the key's state, read through node i.
 * Returns the number of acknowledged adds checked. */
static size_t check_no_acked_add_lost(int i, loader *L)
{
    size_t checked = 0;
    for (int k = 0; k < NKEYS; k++) {
        char *ids = ask_key_ok(i, "ledger", key_name(k), "ids");
        size_t cap = 1024, n = 0;
        uint64_t *have = malloc(cap * sizeof *have);
        for (char *p = ids; *p;) {
            if (n == cap)
                have = realloc(have, (cap *= 2) * sizeof *have);
            have[n++] = strtoull(p, &p, 10);
            if (*p == ',')
                p++;
            else
                break;
        }
        qsort(have, n, sizeof *have, u64_cmp);
        for (size_t j = 0; j < L->n_acked[k]; j++) {
            uint64_t id = L->acked[k][j];
            ck_assert_msg(bsearch(&id, have, n, sizeof *have, u64_cmp) != NULL,
                          "acknowledged add %llu of %s is not in the state the owner has (%zu ids there, %zu "
                          "acknowledged)",
                          (unsigned long long)id, key_name(k), n, L->n_acked[k]);
            checked++;
        }
        free(have);
        axc_free(ids);
    }
    return checked;
}

static double state_ctr(int i, const char *name)
{
    cJSON *doc = doc_of(i, axc_status, "status");
    cJSON *st = cJSON_GetObjectItem(doc, "state");
    ck_assert_msg(st != NULL, "no \"state\" in the status of %s", N[i].name);
    double v = num(st, name);
    cJSON_Delete(doc);
    return v;
}

static size_t total_acked(const loader *L)
{
    size_t n = 0;
    for (int k = 0; k < NKEYS; k++)
        n += L->n_acked[k];
    return n;
}

/* Wait (bounded) until the loader has n more acknowledged adds than `from`. */
static void wait_acked(const loader *L, size_t from, size_t n, int timeout_ms)
{
    double end = now_s() + timeout_ms / 1000.0;
    while (total_acked(L) < from + n) {
        ck_assert_msg(now_s() < end, "the load made no progress: %zu acknowledged adds in %d ms", total_acked(L) - from,
                      timeout_ms);
        sleep_ms(20);
    }
}

#endif
