/* A plain main for fuzz targets built without libFuzzer: replays every file of the
 * directories (or files) given as arguments through LLVMFuzzerTestOneInput, so saved
 * corpora run as regression tests under any compiler (after systemd's fuzz-main.c). */
#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Runs one file; returns 0, or -1 if it could not be read. */
static int run_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    uint8_t *buf = NULL;
    long n;
    int rc = -1;
    if (!f)
        goto out;
    if (fseek(f, 0, SEEK_END) || (n = ftell(f)) < 0 || fseek(f, 0, SEEK_SET))
        goto out;
    /* an exact-size copy, so a sanitizer sees any overread */
    buf = malloc(n ? (size_t)n : 1);
    if (!buf || fread(buf, 1, (size_t)n, f) != (size_t)n)
        goto out;
    LLVMFuzzerTestOneInput(buf, (size_t)n);
    rc = 0;
out:
    if (rc)
        fprintf(stderr, "fuzz-main: cannot read %s: %s\n", path, strerror(errno));
    free(buf);
    if (f)
        fclose(f);
    return rc;
}

static int cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Runs every regular file in dir, in name order; returns the number of files or -1. */
static int run_dir(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    char **names = NULL, path[4096];
    size_t n = 0, i;
    int count = 0;
    if (!d) {
        fprintf(stderr, "fuzz-main: cannot open %s: %s\n", dir, strerror(errno));
        return -1;
    }
    while ((e = readdir(d))) {
        char **nn;
        if (e->d_name[0] == '.')
            continue;
        nn = realloc(names, (n + 1) * sizeof *names);
        if (!nn || !(nn[n] = strdup(e->d_name))) {
            names = nn ? nn : names;
            count = -1;
            break;
        }
        names = nn;
        n++;
    }
    closedir(d);
    if (count == 0)
        qsort(names, n, sizeof *names, cmp);
    for (i = 0; i < n && count >= 0; i++) {
        struct stat st;
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        if (stat(path, &st) || !S_ISREG(st.st_mode))
            continue;
        if (run_file(path))
            count = -1;
        else
            count++;
    }
    for (i = 0; i < n; i++)
        free(names[i]);
    free(names);
    return count;
}

int main(int argc, char **argv)
{
    int i, total = 0;
    if (argc < 2) {
        fprintf(stderr, "usage: %s CORPUS_DIR|FILE...\n", argv[0]);
        return 2;
    }
    for (i = 1; i < argc; i++) {
        struct stat st;
        int n;
        if (stat(argv[i], &st)) {
            fprintf(stderr, "fuzz-main: %s: %s\n", argv[i], strerror(errno));
            return 1;
        }
        n = S_ISDIR(st.st_mode) ? run_dir(argv[i]) : (run_file(argv[i]) ? -1 : 1);
        if (n < 0)
            return 1;
        total += n;
    }
    if (total == 0) {
        fprintf(stderr, "fuzz-main: no inputs found\n");
        return 1;
    }
    printf("%d inputs replayed cleanly\n", total);
    return 0;
}
