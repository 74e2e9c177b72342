/* Loading actor plugins: dlopen(RTLD_NOW|RTLD_LOCAL), find the one exported
 * descriptor, check ABI version, signature and every declared type before anything is
 * registered. A refused or failed load unwinds completely; the daemon keeps running. */
#include <cjson/cJSON.h>
#include <dlfcn.h>
#include <fcntl.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <limits.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ax_mem.h"
#include "log.h"
#include "config_check.h"
#include "core_int.h"
#include "workers.h"

/* after ev.h: elf.h defines EV_NONE/EV_CURRENT/EV_NUM (ELF versions), which libev uses */
#include <elf.h>
#include <link.h>

#define MAX_TYPES_PER_PLUGIN 256
#define MAX_MSGS_PER_TYPE 1024
#define MAX_STATE_SIZE (1u << 20)
/* The smallest descriptor and type structs a version-1 plugin can have. */
#define MIN_DESC_SIZE (offsetof(ax_plugin_desc, n_types) + sizeof(size_t))
#define MIN_TYPE_SIZE (offsetof(ax_actor_type, n_msgs) + sizeof(size_t))

static int fail(char *err, size_t errlen, int code, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static int fail(char *err, size_t errlen, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return code;
}

int axd_type_register(axd_rt *s, const ax_actor_type *d, axd_plugin *p, axd_type **out, char *err, size_t errlen)
{
    if (!d || d->size < MIN_TYPE_SIZE)
        return fail(err, errlen, AX_EABI, "actor type descriptor is missing or too small");
    if (!d->name || ax_name_valid(d->name, strnlen(d->name, AX_NAME_MAX + 1)) != 0)
        return fail(err, errlen, AX_EABI, "actor type has an invalid name");
    size_t nlen = strlen(d->name);
    if (axd_hmap_get(&s->types, d->name, nlen))
        return fail(err, errlen, AX_EEXIST, "actor type '%s' is already registered", d->name);
    if (d->state_size > MAX_STATE_SIZE)
        return fail(err, errlen, AX_EABI, "type '%s': state_size %zu exceeds %u", d->name, d->state_size,
                    MAX_STATE_SIZE);
    if (d->n_msgs > MAX_MSGS_PER_TYPE || (d->n_msgs && !d->msgs))
        return fail(err, errlen, AX_EABI, "type '%s': bad message table", d->name);
    for (size_t i = 0; i < d->n_msgs; i++) {
        const ax_msg_def *m = &d->msgs[i];
        if (!m->name || !m->fn || ax_name_valid(m->name, strnlen(m->name, AX_NAME_MAX + 1)) != 0)
            return fail(err, errlen, AX_EABI, "type '%s': message %zu has an invalid name or no handler",
                        d->name, i);
        for (size_t j = 0; j < i; j++)
            if (strcmp(d->msgs[j].name, m->name) == 0)
                return fail(err, errlen, AX_EABI, "type '%s': message '%s' declared twice", d->name, m->name);
    }
    /* the codec exists from ABI 1.9 on: before, its fields were spare pointers */
    int codec = (!p || (p->desc && p->desc->abi_minor >= 9)) &&
                d->size >= offsetof(ax_actor_type, decode) + sizeof d->decode;
    if (codec && d->encode && !d->decode)
        return fail(err, errlen, AX_EABI, "type '%s': a state encode callback without decode", d->name);
    axd_type *t = ax_calloc(1, sizeof *t);
    t->desc = d;
    t->plugin = p;
    /* flags exist from ABI 1.2 on: an older descriptor's field was a spare pointer */
    t->flags = !p || (p->desc && p->desc->abi_minor >= 2) ? d->flags : 0;
    if (codec) {
        t->encode = d->encode;
        t->decode = d->decode;
        if (t->decode)
            t->forget_id = axd_msg_intern(s, "$forget", 7);
    }
    t->name = ax_strndup(d->name, nlen);
    t->handlers = ax_calloc(d->n_msgs, sizeof *t->handlers);
    t->n_handlers = d->n_msgs;
    for (size_t i = 0; i < d->n_msgs; i++) {
        t->handlers[i].id = axd_msg_intern(s, d->msgs[i].name, strlen(d->msgs[i].name));
        t->handlers[i].fn = d->msgs[i].fn;
    }
    axd_hmap_put(&s->types, t->name, nlen, t);
    *out = t;
    return AX_OK;
}

void axd_type_unregister(axd_rt *s, axd_type *t)
{
    if (!t)
        return;
    axd_hmap_del(&s->types, t->name, strlen(t->name));
    ax_free(t->handlers);
    ax_free(t->name);
    ax_free(t);
}

static void plugin_free(axd_rt *s, axd_plugin *p)
{
    if (!p)
        return;
    for (size_t i = 0; i < p->n_types; i++)
        axd_type_unregister(s, p->types[i]);
    ax_free(p->types);
    if (p->dl)
        dlclose(p->dl);
    ax_free(p->name);
    ax_free(p->path);
    ax_free(p);
}

static axd_plugin *plugin_by_name(axd_rt *s, const char *name, size_t *idx)
{
    for (size_t i = 0; i < s->n_plugins; i++) {
        if (strcmp(s->plugins[i]->name, name) == 0) {
            if (idx)
                *idx = i;
            return s->plugins[i];
        }
    }
    return NULL;
}

/* ELF of this machine: what dlopen would map, checked before it maps anything (a
 * truncated or crafted file makes the dynamic loader fault on pages past the file's
 * end: SIGBUS in the daemon). */
#if defined(__x86_64__)
#define AXD_ELF_MACHINE EM_X86_64
#elif defined(__aarch64__)
#define AXD_ELF_MACHINE EM_AARCH64
#elif defined(__i386__)
#define AXD_ELF_MACHINE EM_386
#elif defined(__arm__)
#define AXD_ELF_MACHINE EM_ARM
#elif defined(__riscv)
#define AXD_ELF_MACHINE EM_RISCV
#elif defined(__powerpc64__)
#define AXD_ELF_MACHINE EM_PPC64
#elif defined(__s390x__)
#define AXD_ELF_MACHINE EM_S390
#endif
#if __SIZEOF_POINTER__ == 8
#define AXD_ELF_CLASS ELFCLASS64
#else
#define AXD_ELF_CLASS ELFCLASS32
#endif
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define AXD_ELF_DATA ELFDATA2LSB
#else
#define AXD_ELF_DATA ELFDATA2MSB
#endif

static int elf_check(const char *path, char *err, size_t errlen)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (fd < 0)
        return fail(err, errlen, AX_ENOTFOUND, "%s: %s", path, strerror(errno));
    struct stat st;
    ElfW(Ehdr) eh;
    const char *why = NULL;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode))
        why = "not a regular file";
    else if (pread(fd, &eh, sizeof eh, 0) != (ssize_t)sizeof eh)
        why = "shorter than an ELF header (truncated?)";
    else if (memcmp(eh.e_ident, ELFMAG, SELFMAG) != 0)
        why = "not an ELF file";
    else if (eh.e_ident[EI_CLASS] != AXD_ELF_CLASS || eh.e_ident[EI_DATA] != AXD_ELF_DATA)
        why = "ELF class or byte order of another machine";
#ifdef AXD_ELF_MACHINE
    else if (eh.e_machine != AXD_ELF_MACHINE)
        why = "ELF file for another machine type";
#endif
    else if (eh.e_type != ET_DYN)
        why = "not a shared object (ELF type is not ET_DYN)";
    else if (eh.e_phentsize != sizeof(ElfW(Phdr)) || eh.e_phnum == 0 || eh.e_phnum > 4096 ||
             (uint64_t)eh.e_phoff + (uint64_t)eh.e_phnum * sizeof(ElfW(Phdr)) > (uint64_t)st.st_size)
        why = "program headers missing or past the end of the file (truncated?)";
    for (unsigned i = 0; !why && i < eh.e_phnum; i++) {
        ElfW(Phdr) ph;
        if (pread(fd, &ph, sizeof ph, (off_t)(eh.e_phoff + (uint64_t)i * sizeof ph)) != (ssize_t)sizeof ph)
            why = "cannot read a program header";
        else if ((ph.p_type == PT_LOAD || ph.p_type == PT_DYNAMIC) &&
                 ((uint64_t)ph.p_offset + ph.p_filesz > (uint64_t)st.st_size || ph.p_filesz > ph.p_memsz))
            why = "a segment lies past the end of the file (truncated?)";
    }
    if (!why && eh.e_shoff &&
        (eh.e_shentsize != sizeof(ElfW(Shdr)) ||
         (uint64_t)eh.e_shoff + (uint64_t)eh.e_shnum * sizeof(ElfW(Shdr)) > (uint64_t)st.st_size))
        why = "section headers past the end of the file (truncated?)";
    close(fd);
    return why ? fail(err, errlen, AX_EABI, "%s: %s; not loaded", path, why) : 0;
}

/* The descriptor must be a data object, aligned and large enough, in the plugin's own
 * file: anything else is refused before a field of it is read. */
static int desc_check(const char *path, const void *d, char *err, size_t errlen)
{
    Dl_info info;
    const ElfW(Sym) *sym = NULL;
    if ((uintptr_t)d % _Alignof(ax_plugin_desc) != 0)
        return fail(err, errlen, AX_EABI, "%s: '%s' is misaligned (not an ax_plugin_desc)", path, AX_PLUGIN_SYMBOL);
    if (!dladdr1(d, &info, (void **)&sym, RTLD_DL_SYMENT) || !sym)
        return fail(err, errlen, AX_EABI, "%s: '%s' is not a symbol of a loaded object", path, AX_PLUGIN_SYMBOL);
    if (ELF64_ST_TYPE(sym->st_info) != STT_OBJECT)
        return fail(err, errlen, AX_EABI, "%s: '%s' is not a data object (not an ax_plugin_desc)", path,
                    AX_PLUGIN_SYMBOL);
    if (sym->st_size < MIN_DESC_SIZE)
        return fail(err, errlen, AX_EABI, "%s: '%s' is %zu bytes, smaller than a descriptor", path, AX_PLUGIN_SYMBOL,
                    (size_t)sym->st_size);
    return 0;
}

/* A bare name ("counter") is looked up as plugins.dir/counter.so. */
static int resolve_path(axd_rt *s, const char *in, char *out, size_t outlen)
{
    return axd_plugin_resolve(s->cfg->plugin_dir, in, out, outlen);
}

int axd_plugin_load_runtime(axd_rt *s, const char *in, uid_t client_uid, axd_plugin **out, char *err, size_t errlen)
{
    const char *mode = s->cfg->plugins_runtime_load ? s->cfg->plugins_runtime_load : "owner";
    if (!strcmp(mode, "off"))
        return fail(err, errlen, AX_EPERM, "loading plugins at run time is off (plugins.runtime_load = off)");
    if (!strcmp(mode, "owner") && client_uid != 0 && client_uid != geteuid())
        return fail(err, errlen, AX_EPERM,
                    "only root or the daemon's user may load plugins at run time (uid %u; plugins.runtime_load = "
                    "owner)",
                    (unsigned)client_uid);
    /* where from: plugins.dir (a relative path is taken under it, never the cwd) or a
     * trusted directory, resolved (no symlink games), owned and writable as a system dir */
    char path[PATH_MAX], real[PATH_MAX], dreal[PATH_MAX];
    int n = in && in[0] == '/' ? snprintf(path, sizeof path, "%s", in)
            : in && strchr(in, '/') ? snprintf(path, sizeof path, "%s/%s", s->cfg->plugin_dir, in)
                                    : (axd_plugin_resolve(s->cfg->plugin_dir, in ? in : "", path, sizeof path) ? -1 : 1);
    if (!in || !*in || n < 0 || (size_t)n >= sizeof path)
        return fail(err, errlen, AX_EINVAL, "invalid plugin path");
    if (!realpath(path, real))
        return fail(err, errlen, AX_ENOTFOUND, "%s: %s", path, strerror(errno));
    char *slash = strrchr(real, '/');
    size_t dl = slash ? (size_t)(slash - real) : 0;
    int allowed = 0;
    for (size_t i = 0; i <= s->cfg->n_plugins_trusted_dirs && !allowed; i++) {
        const char *d = i == 0 ? s->cfg->plugin_dir : s->cfg->plugins_trusted_dirs[i - 1];
        if (d && realpath(d, dreal) && strlen(dreal) == (dl ? dl : 1) && !strncmp(dreal, real, dl ? dl : 1))
            allowed = 1;
    }
    if (!allowed)
        return fail(err, errlen, AX_EPERM,
                    "%s: run-time loads come only from plugins.dir (%s) or plugins.trusted_dirs", real,
                    s->cfg->plugin_dir);
    struct stat st;
    char dir[PATH_MAX];
    snprintf(dir, sizeof dir, "%.*s", (int)(dl ? dl : 1), real);
    const char *why = stat(dir, &st) != 0 ? "is gone" : axd_untrusted(&st);
    if (why)
        return fail(err, errlen, AX_EPERM, "%s: its directory %s %s", real, dir, why);
    why = stat(real, &st) != 0 ? "is gone" : axd_untrusted(&st);
    if (why)
        return fail(err, errlen, AX_EPERM, "%s %s", real, why);
    return axd_plugin_load(s, real, out, err, errlen);
}

int axd_plugin_load(axd_rt *s, const char *in, axd_plugin **out, char *err, size_t errlen)
{
    char path[PATH_MAX];
    struct stat st;
    int rc;
    axd_plugin *p = NULL;

    if (s->worker != 0)
        return fail(err, errlen, AX_ENOTSUP, "plugins are loaded on worker 0");
    if (!in || !*in || resolve_path(s, in, path, sizeof path) != 0)
        return fail(err, errlen, AX_EINVAL, "invalid plugin path");
    if (stat(path, &st) != 0)
        return fail(err, errlen, AX_ENOTFOUND, "%s: %s", path, strerror(errno));
    if (!S_ISREG(st.st_mode))
        return fail(err, errlen, AX_EINVAL, "%s: not a regular file", path);
    if ((rc = elf_check(path, err, errlen)) != 0)
        return rc;
    void *dl = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!dl) {
        const char *e = dlerror();
        return fail(err, errlen, AX_EABI, "%s: dlopen failed: %s", path, e ? e : "unknown error");
    }
    const ax_plugin_desc *d = dlsym(dl, AX_PLUGIN_SYMBOL);
    if (!d) {
        rc = fail(err, errlen, AX_EABI, "%s: no '%s' descriptor exported (not an axactor plugin?)", path,
                  AX_PLUGIN_SYMBOL);
        goto out_close;
    }
    if ((rc = desc_check(path, d, err, errlen)) != 0)
        goto out_close;
    if (d->abi_major != AX_ABI_MAJOR) {
        rc = fail(err, errlen, AX_EABI, "%s: plugin ABI %u.%u, daemon ABI %u.%u: major versions differ", path,
                  d->abi_major, d->abi_minor, AX_ABI_MAJOR, AX_ABI_MINOR);
        goto out_close;
    }
    if (d->size < MIN_DESC_SIZE) {
        rc = fail(err, errlen, AX_EABI, "%s: descriptor size %u is smaller than ABI %u needs (%zu)", path,
                  d->size, AX_ABI_MAJOR, (size_t)MIN_DESC_SIZE);
        goto out_close;
    }
    if (!d->signature || strcmp(d->signature, AX_BUILD_SIGNATURE) != 0) {
        rc = fail(err, errlen, AX_EABI, "%s: build signature '%s' does not match the daemon's '%s'", path,
                  d->signature ? d->signature : "(none)", AX_BUILD_SIGNATURE);
        goto out_close;
    }
    if (!d->name || ax_name_valid(d->name, strnlen(d->name, AX_NAME_MAX + 1)) != 0) {
        rc = fail(err, errlen, AX_EABI, "%s: plugin has an invalid name", path);
        goto out_close;
    }
    if (plugin_by_name(s, d->name, NULL)) {
        rc = fail(err, errlen, AX_EEXIST, "%s: a plugin named '%s' is already loaded", path, d->name);
        goto out_close;
    }
    if (d->n_types == 0 || d->n_types > MAX_TYPES_PER_PLUGIN || !d->types) {
        rc = fail(err, errlen, AX_EABI, "%s: plugin declares %zu actor types (1..%d allowed)", path, d->n_types,
                  MAX_TYPES_PER_PLUGIN);
        goto out_close;
    }
    if (d->abi_minor > AX_ABI_MINOR)
        axd_log(AX_LOG_WARN, "plugin", "%s: built for ABI %u.%u, daemon has %u.%u; newer calls are unavailable",
               path, d->abi_major, d->abi_minor, AX_ABI_MAJOR, AX_ABI_MINOR);

    p = ax_calloc(1, sizeof *p);
    p->dl = dl;
    p->desc = d;
    p->name = ax_strdup(d->name);
    p->path = ax_strdup(path);
    p->types = ax_calloc(d->n_types, sizeof *p->types);
    for (size_t i = 0; i < d->n_types; i++) {
        char terr[256];
        rc = axd_type_register(s, d->types[i], p, &p->types[p->n_types], terr, sizeof terr);
        if (rc) {
            fail(err, errlen, rc, "%s: %s", path, terr);
            plugin_free(s, p); /* unregisters the types done so far and dlcloses */
            return rc;
        }
        p->n_types++;
    }
    if (s->group && s->group->n > 1) { /* every worker gets the types */
        char werr[320];
        rc = axd_workers_add_types(s->group, p, werr, sizeof werr);
        if (rc) {
            fail(err, errlen, rc, "%s: %s", path, werr);
            plugin_free(s, p);
            return rc;
        }
    }
    s->plugins = ax_realloc(s->plugins, (s->n_plugins + 1) * sizeof *s->plugins);
    s->plugins[s->n_plugins++] = p;
    axd_log(AX_LOG_INFO, "plugin", "loaded %s (%s, ABI %u.%u, %zu types)", p->name, path, d->abi_major,
           d->abi_minor, p->n_types);
    if (out)
        *out = p;
    return AX_OK;

out_close:
    dlclose(dl);
    return rc;
}

int axd_plugin_unload(axd_rt *s, const char *name, char *err, size_t errlen)
{
    size_t idx;
    axd_plugin *p = plugin_by_name(s, name, &idx);
    if (!p)
        return fail(err, errlen, AX_ENOTFOUND, "no plugin named '%s' is loaded", name);
    uint32_t live = 0;
    for (size_t i = 0; i < p->n_types; i++)
        live += p->types[i]->live;
    if (live)
        return fail(err, errlen, AX_EBUSY, "plugin '%s' still has %u live actors; stop them first", name, live);
    if (s->group && s->group->n > 1) {
        char werr[320];
        int rc = axd_workers_retire_types(s->group, p, werr, sizeof werr);
        if (rc)
            return fail(err, errlen, rc, "%s", werr);
    }
    memmove(&s->plugins[idx], &s->plugins[idx + 1], (s->n_plugins - idx - 1) * sizeof *s->plugins);
    s->n_plugins--;
    axd_log(AX_LOG_INFO, "plugin", "unloaded %s", name);
    plugin_free(s, p);
    return AX_OK;
}

void axd_plugins_unload_all(axd_rt *s)
{
    while (s->n_plugins)
        plugin_free(s, s->plugins[--s->n_plugins]);
    ax_free(s->plugins);
    s->plugins = NULL;
}

cJSON *axd_plugin_json(const axd_plugin *p)
{
    cJSON *o = cJSON_CreateObject();
    char abi[32];
    snprintf(abi, sizeof abi, "%u.%u", p->desc->abi_major, p->desc->abi_minor);
    cJSON_AddStringToObject(o, "name", p->name);
    cJSON_AddStringToObject(o, "path", p->path);
    cJSON_AddStringToObject(o, "abi", abi);
    cJSON *types = cJSON_AddArrayToObject(o, "types");
    uint32_t live = 0;
    for (size_t i = 0; i < p->n_types; i++) {
        cJSON_AddItemToArray(types, cJSON_CreateString(p->types[i]->name));
        live += p->types[i]->live;
    }
    cJSON_AddNumberToObject(o, "actors", live);
    return o;
}

cJSON *axd_plugins_json(axd_rt *s)
{
    cJSON *doc = cJSON_CreateObject(), *arr = cJSON_AddArrayToObject(doc, "plugins");
    for (size_t i = 0; i < s->n_plugins; i++)
        cJSON_AddItemToArray(arr, axd_plugin_json(s->plugins[i]));
    return doc;
}
