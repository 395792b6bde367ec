/*
 * symbolize.c: addresses to names, file:line and inlined frames.
 *
 * Owns: the module cache (one libdwfl session per ELF file, keyed by build
 * ID, else by device/inode/size/mtime), the address cache, /proc/kallsyms
 * and /tmp/perf-PID.map tables, and demangling.
 *
 * Invariants: every string handed out lives in s->strs and stays valid until
 * sym_trim()/sym_free(); the module cache holds at most max_modules entries
 * (older ones are freed at sym_trim); a module's Dwfl (the mapped file, its
 * debug file, libdw's line tables and our symbol index: megabytes for a big
 * binary) is closed at sym_trim once no lookup has needed it for
 * SYM_IDLE_TRIMS trims, and reopened on the next address cache miss; the
 * address cache holds at most max_cache_entries (cleared at sym_trim when
 * past it).
 *
 * Algorithm: a file offset becomes an ELF vaddr through the PT_LOAD segment
 * that contains it; libdwfl (reported offline, debuginfo found by
 * find_debuginfo: build ID and debuglink under debug_dir, debuginfod only
 * when DEBUGINFOD_URLS is set) gives
 * the symbol, the CU and the line; dwarf_getscopes() lists the inlined
 * subroutines around the address (a descent from the CU into the DIEs whose
 * ranges hold it), innermost first, each one's caller line being the
 * DW_AT_call_file/call_line of the inlined DIE (as eu-addr2line -i).
 */
#include "core/common.h"
#include "agent/symbolize.h"

#include <dlfcn.h>
#include <elfutils/libdw.h>
#include <elfutils/libdwelf.h>
#include <elfutils/libdwfl.h>
#include <dwarf.h>
#include <fcntl.h>
#include <gelf.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "core/hash.h"
#include "core/mem.h"

struct sym_module {
    char *path, *display;
    char *build_id;          /* hex or NULL */
    uint64_t key;
    Dwfl *dwfl;
    Dwfl_Module *mod;
    GElf_Addr bias;          /* dwfl address = vaddr + bias */
    GElf_Phdr *loads;
    size_t n_loads;
    int failed;
    int is_libc;             /* the C library or the dynamic loader (sym_opts.libc_names_only) */
    uint64_t last_use;
    uint64_t dwfl_trim;      /* s->trims when the Dwfl last answered a lookup (idle ones are closed) */
    struct msym *syms;       /* function symbols sorted by address (dwfl's own lookup is linear) */
    size_t n_syms;
    int syms_loaded;
};

typedef struct msym {
    GElf_Addr addr, size;    /* dwfl addresses */
    const char *name;        /* in the ELF's string table, valid while the Dwfl lives */
    int rank;                /* among aliases: 0 global, 1 weak, 2 local */
} msym;

typedef struct ksym {
    uint64_t addr;
    uint32_t name;
} ksym;

typedef struct perfmap_ent {
    uint64_t start, end;
    uint32_t name;
} perfmap_ent;

typedef struct perfmap {
    pid_t pid;
    perfmap_ent *ents;
    size_t n;
    off_t size_seen;
} perfmap;

/* A cached result, compact: its frames live in s->cframes (most results have one or two). */
typedef struct cache_ent {
    const char *module, *build_id;
    uint64_t vaddr;
    uint32_t first_frame;
    uint8_t n;
} cache_ent;

struct symbolizer {
    sym_opts o;
    strtab strs;
    sym_module **mods;
    size_t n_mods, cap_mods;
    hmap64 mod_index;        /* key -> index into mods */
    hmap64 addr_index;       /* hash(module key, off) -> index into cache */
    cache_ent *cache;
    size_t n_cache, cap_cache;
    sym_frame *cframes;
    size_t n_cframes, cap_cframes;
    ksym *ksyms;
    size_t n_ksyms;
    int ksyms_loaded;
    strtab kstrs;            /* kallsyms names: kept across trims (the kernel's text rarely changes) */
    perfmap *pmaps;
    size_t n_pmaps, cap_pmaps;
    uint64_t clock, trims;
    char *debuginfo_path;
    Dwfl_Callbacks cb;       /* this symbolizer's Dwfls point to it (libdwfl keeps the pointer) */
};

static const char *intern(symbolizer *s, const char *str)
{
    int32_t id;
    if (!str) return NULL;
    id = strtab_intern_cstr(&s->strs, str);
    if (id < 0) return NULL;
    return strtab_get(&s->strs, (uint32_t)id);
}

/* Allocation never aborts here: libhearth.so uses the symbolizer inside its host. */
static char *dup_str(const char *str)
{
    size_t n = strlen(str) + 1;
    char *d = hmallocarray(n, 1);
    if (d) memcpy(d, str, n);
    return d;
}

static int find_debuginfo(Dwfl_Module *mod, void **userdata, const char *modname, Dwarf_Addr base,
                          const char *file_name, const char *debuglink, GElf_Word crc, char **debuginfo_file_name);

static const Dwfl_Callbacks offline_cb = {
    .find_elf = dwfl_build_id_find_elf,
    .find_debuginfo = find_debuginfo,
    .section_address = dwfl_offline_section_address,
    .debuginfo_path = NULL, /* the symbolizer's own, in sym_new */
};

symbolizer *sym_new(const sym_opts *o)
{
    symbolizer *s = hmallocarray(1, sizeof(*s));
    if (!s) return NULL;
    memset(s, 0, sizeof(*s));
    if (o) s->o = *o;
    if (!s->o.max_modules) s->o.max_modules = 256;
    if (!s->o.max_cache_entries) s->o.max_cache_entries = 256u << 10;
    if (!s->o.debug_dir) s->o.debug_dir = "/usr/lib/debug";
    {
        /* libdwfl syntax: "" = next to the file, .debug = its .debug/ subdir, then the tree. */
        char dp[1024];
        snprintf(dp, sizeof(dp), ":.debug:%s", s->o.debug_dir);
        s->debuginfo_path = dup_str(dp);
        if (!s->debuginfo_path) { free(s); return NULL; }
        s->cb = offline_cb;
        s->cb.debuginfo_path = &s->debuginfo_path;
    }
    strtab_init(&s->strs);
    strtab_init(&s->kstrs);
    hmap64_init(&s->mod_index);
    hmap64_init(&s->addr_index);
    return s;
}

static void module_close(sym_module *m)
{
    free(m->syms);
    m->syms = NULL;
    m->n_syms = 0;
    m->syms_loaded = 0;
    if (m->dwfl) dwfl_end(m->dwfl);
    m->dwfl = NULL;
    m->mod = NULL;
}

static void module_free(sym_module *m)
{
    module_close(m);
    free(m->path);
    free(m->display);
    free(m->build_id);
    free(m->loads);
    free(m);
}

void sym_free(symbolizer *s)
{
    if (!s) return;
    for (size_t i = 0; i < s->n_mods; i++) module_free(s->mods[i]);
    free(s->mods);
    hmap64_release(&s->mod_index);
    hmap64_release(&s->addr_index);
    free(s->cache);
    free(s->cframes);
    free(s->ksyms);
    for (size_t i = 0; i < s->n_pmaps; i++) free(s->pmaps[i].ents);
    free(s->pmaps);
    strtab_release(&s->strs);
    strtab_release(&s->kstrs);
    free(s->debuginfo_path);
    free(s);
}

/* Trims without a cache miss in a module before its Dwfl is closed. */
#define SYM_IDLE_TRIMS 2

static void cache_clear(symbolizer *s)
{
    hmap64_release(&s->addr_index);
    hmap64_init(&s->addr_index);
    s->n_cache = 0;
    s->n_cframes = 0;
}

static int mod_lru_cmp(const void *a, const void *b)
{
    const sym_module *x = *(sym_module *const *)a, *y = *(sym_module *const *)b;
    return x->last_use > y->last_use ? -1 : x->last_use < y->last_use;
}

void sym_trim(symbolizer *s)
{
    /*
     * Results hold strings from s->strs, so the address cache and the strings
     * go together, and only when past their bounds: a steady workload keeps
     * hitting the cache across upload intervals.
     */
    if (s->n_cache >= s->o.max_cache_entries || s->strs.count >= s->o.max_cache_entries) {
        cache_clear(s);
        strtab_release(&s->strs);
        strtab_init(&s->strs);
        for (size_t i = 0; i < s->n_pmaps; i++) free(s->pmaps[i].ents);
        s->n_pmaps = 0; /* their names lived in strs */
    }
    if (s->n_mods > s->o.max_modules) {
        qsort(s->mods, s->n_mods, sizeof(*s->mods), mod_lru_cmp);
        for (size_t i = s->o.max_modules; i < s->n_mods; i++) module_free(s->mods[i]);
        s->n_mods = s->o.max_modules;
        cache_clear(s); /* cached results may name freed modules' keys; strings stay valid */
    }
    /*
     * Failed opens are retried once per trim period (the file may appear).
     * Idle Dwfls are closed: their results stay in the address cache (its
     * strings are ours, not the ELF's), and a miss reopens the file.
     */
    size_t w = 0;
    s->trims++;
    for (size_t i = 0; i < s->n_mods; i++) {
        sym_module *m = s->mods[i];
        if (m->failed) { module_free(m); continue; }
        if (m->dwfl && s->trims - m->dwfl_trim >= SYM_IDLE_TRIMS) module_close(m);
        s->mods[w++] = m;
    }
    s->n_mods = w;
    hmap64_release(&s->mod_index);
    hmap64_init(&s->mod_index);
    for (size_t i = 0; i < s->n_mods; i++) hmap64_put(&s->mod_index, s->mods[i]->key, (uint32_t)i);
    /* kallsyms: reloaded every 64 trims (modules load and unload). */
    if (s->trims % 64 == 0) {
        free(s->ksyms);
        s->ksyms = NULL;
        s->n_ksyms = 0;
        s->ksyms_loaded = 0;
        strtab_release(&s->kstrs);
        strtab_init(&s->kstrs);
    }
}

size_t sym_open_modules(const symbolizer *s)
{
    size_t n = 0;
    for (size_t i = 0; i < s->n_mods; i++) n += s->mods[i]->dwfl != NULL;
    return n;
}

static char *hex_build_id(const unsigned char *id, int len)
{
    char *out;
    if (len <= 0 || len > 64) return NULL;
    out = hmallocarray((size_t)len * 2 + 1, 1);
    if (!out) return NULL;
    for (int i = 0; i < len; i++) {
        static const char hx[] = "0123456789abcdef";
        out[2 * i] = hx[id[i] >> 4];
        out[2 * i + 1] = hx[id[i] & 15];
    }
    out[2 * len] = 0;
    return out;
}

/* Whether the file at fd is the debug file of mod: the same build ID, or (mod has none) the debuglink's CRC-32. */
static int debug_file_matches(Dwfl_Module *mod, int fd, GElf_Word crc, int check_crc)
{
    const unsigned char *want;
    GElf_Addr vaddr;
    int want_len = dwfl_module_build_id(mod, &want, &vaddr);
    if (want_len > 0) {
        Elf *elf = elf_begin(fd, ELF_C_READ_MMAP, NULL);
        const void *got;
        ssize_t got_len = elf ? dwelf_elf_gnu_build_id(elf, &got) : -1;
        int same = got_len == want_len && memcmp(got, want, (size_t)want_len) == 0;
        if (elf) elf_end(elf);
        return same;
    }
    if (crc == 0 || !check_crc) return 1;
    uLong sum = crc32(0, Z_NULL, 0);
    unsigned char chunk[65536];
    ssize_t n;
    if (lseek(fd, 0, SEEK_SET) != 0) return 0;
    while ((n = read(fd, chunk, sizeof chunk)) > 0) sum = crc32(sum, chunk, (uInt)n);
    return n == 0 && (GElf_Word)sum == crc;
}

/* Tries dir/sub/link (sub may be empty): an fd, with *name set, when it is mod's debug file. */
static int try_debuglink(Dwfl_Module *mod, const char *dir, const char *sub, const char *link, GElf_Word crc,
                         int check_crc, const struct stat *main_st, char **name)
{
    char path[PATH_MAX];
    struct stat st;
    int n = snprintf(path, sizeof path, "%s%s%s/%s", dir, *sub ? "/" : "", sub, link);
    if (n < 0 || (size_t)n >= sizeof path) return -1;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    /* the link may name the file itself (a debug file beside it has the same name under another dir) */
    if (fstat(fd, &st) != 0 || (main_st && st.st_dev == main_st->st_dev && st.st_ino == main_st->st_ino) ||
        !debug_file_matches(mod, fd, crc, check_crc) || !(*name = dup_str(path))) {
        close(fd);
        return -1;
    }
    lseek(fd, 0, SEEK_SET);
    return fd;
}

/*
 * The .gnu_debuglink search of elfutils' find_debuginfo_in_path, for the
 * file file_name: for each entry of the debuginfo path (a leading '-' skips
 * the CRC check), "" = beside the file, a relative entry = that
 * subdirectory of the file's directory, an absolute entry = a tree
 * mirroring the file's directory, tried with its leading components
 * dropped one at a time (/usr/lib/debug/usr/bin/x, /usr/lib/debug/bin/x,
 * /usr/lib/debug/x).
 */
static int search_debuglink(const symbolizer *s, Dwfl_Module *mod, const char *file_name, const char *link,
                            GElf_Word crc, char **name)
{
    char dir[PATH_MAX];
    const char *slash = strrchr(file_name, '/');
    size_t dir_len = slash ? (size_t)(slash - file_name) : 0;
    if (dir_len >= sizeof dir) return -1;
    memcpy(dir, file_name, dir_len);
    dir[dir_len] = 0;
    struct stat main_st;
    const struct stat *st = stat(file_name, &main_st) == 0 ? &main_st : NULL;
    int fd = -1;
    for (const char *p = s->debuginfo_path; fd < 0 && p;) {
        const char *end = strchr(p, ':');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        char entry[PATH_MAX];
        if (len < sizeof entry) {
            memcpy(entry, p, len);
            entry[len] = 0;
            int check_crc = entry[0] != '-';
            const char *e = entry + (entry[0] == '+' || entry[0] == '-');
            if (e[0] == '/') {
                for (const char *sub = dir; fd < 0 && dir[0] == '/' && sub;) {
                    fd = try_debuglink(mod, e, sub + 1, link, crc, check_crc, st, name);
                    sub = strchr(sub + 1, '/');
                }
                if (fd < 0 && dir[0] == '/') fd = try_debuglink(mod, e, "", link, crc, check_crc, st, name);
            } else if (slash) {
                fd = try_debuglink(mod, dir, e, link, crc, check_crc, st, name);
            }
        }
        p = end ? end + 1 : NULL;
    }
    return fd;
}

/*
 * The separate debug file of a module. dwfl_standard_find_debuginfo ends a
 * search that found nothing on this machine by asking debuginfod, and for
 * that libdw dlopen()s libdebuginfod.so.1, which brings libcurl-gnutls and
 * some 30 more libraries (and runs their constructors) whether or not a
 * server is configured: in a process libhearth.so profiles, 30 libraries
 * loaded into someone else's program to find nothing. So the standard
 * search runs only when the symbolizer was made with debuginfod on;
 * otherwise the local part of it: by build ID under the debug directory
 * (dwfl_build_id_find_debuginfo, which also finds a dwz alternate file by
 * its build ID), then for the module's own debug file by .gnu_debuglink
 * (or, without a link, FILE.debug) as search_debuglink describes, again
 * from the file's real path when it is a symbolic link; a candidate is
 * kept only when its build ID (or, for a file without one, the link's
 * CRC-32) matches. Not done here: looking for a dwz alternate file by its
 * name rather than its build ID.
 */
static int find_debuginfo(Dwfl_Module *mod, void **userdata, const char *modname, Dwarf_Addr base,
                          const char *file_name, const char *debuglink, GElf_Word crc, char **debuginfo_file_name)
{
    const symbolizer *s = userdata ? *userdata : NULL;  /* set by module_open_shared */
    if (!s || s->o.debuginfod)
        return dwfl_standard_find_debuginfo(mod, userdata, modname, base, file_name, debuglink, crc,
                                            debuginfo_file_name);
    int fd = dwfl_build_id_find_debuginfo(mod, userdata, modname, base, file_name, debuglink, crc,
                                          debuginfo_file_name);
    if (fd >= 0 || !file_name || !s->debuginfo_path) return fd;
    /* Called for a dwz alternate file too (debuglink = its name): that one only by build ID, above. */
    GElf_Addr bias;
    GElf_Word own_crc = 0;
    Elf *elf = dwfl_module_getelf(mod, &bias);
    const char *own = elf ? dwelf_elf_gnu_debuglink(elf, &own_crc) : NULL;
    if (debuglink && (!own || strcmp(own, debuglink) != 0)) return -1;
    char link[NAME_MAX + 1];
    if (!debuglink) {
        const char *base_name = strrchr(file_name, '/');
        base_name = base_name ? base_name + 1 : file_name;
        if ((size_t)snprintf(link, sizeof link, "%s.debug", base_name) >= sizeof link) return -1;
        debuglink = link;
    }
    fd = search_debuglink(s, mod, file_name, debuglink, crc, debuginfo_file_name);
    if (fd < 0) {
        char *real = realpath(file_name, NULL);
        if (real && strcmp(real, file_name) != 0)
            fd = search_debuglink(s, mod, real, debuglink, crc, debuginfo_file_name);
        free(real);
    }
    return fd;
}

static int module_open_shared(symbolizer *s, sym_module *m, herr *e)
{
    Elf *elf;
    size_t nph;
    m->dwfl = dwfl_begin(&s->cb);
    if (!m->dwfl) return herr_set(e, -ENOMEM, "dwfl_begin failed");
    dwfl_report_begin(m->dwfl);
    m->mod = dwfl_report_offline(m->dwfl, m->display ? m->display : m->path, m->path, -1);
    dwfl_report_end(m->dwfl, NULL, NULL);
    if (!m->mod) {
        int rc = herr_set(e, HE_FORMAT, "cannot read '%s' as ELF: %s", m->path, dwfl_errmsg(-1));
        module_close(m);
        return rc;
    }
    /* find_debuginfo's userdata: which symbolizer's debug path and settings apply */
    void **userdata = NULL;
    dwfl_module_info(m->mod, &userdata, NULL, NULL, NULL, NULL, NULL, NULL);
    if (userdata) *userdata = s;
    elf = dwfl_module_getelf(m->mod, &m->bias);
    if (!elf || elf_getphdrnum(elf, &nph)) {
        module_close(m);
        return herr_set(e, HE_FORMAT, "'%s' has no program headers", m->path);
    }
    free(m->loads);
    m->loads = hmallocarray(nph ? nph : 1, sizeof(GElf_Phdr));
    m->n_loads = 0;
    if (!m->loads) {
        module_close(m);
        return herr_set(e, -ENOMEM, "out of memory reading '%s'", m->path);
    }
    for (size_t i = 0; i < nph; i++) {
        GElf_Phdr ph;
        if (gelf_getphdr(elf, (int)i, &ph) && ph.p_type == PT_LOAD) m->loads[m->n_loads++] = ph;
    }
    const unsigned char *bid;
    GElf_Addr vaddr;
    int bl = dwfl_module_build_id(m->mod, &bid, &vaddr);
    if (bl > 0 && !m->build_id) m->build_id = hex_build_id(bid, bl);
    return 0;
}

/* Whether path names the C library or the dynamic loader (sym_opts.libc_names_only). */
static int is_libc_file(const char *path)
{
    /* glibc >= 2.34 (libc.so.6, ld-linux-*.so.*), older glibc (libc-2.31.so, ld-2.31.so), musl, ppc64/s390x */
    static const char *const prefixes[] = {"libc.so.", "libc-2.", "ld-linux", "ld-2.", "ld-musl-", "ld64.so."};
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    for (size_t i = 0; i < ARRAY_SIZE(prefixes); i++)
        if (strncmp(base, prefixes[i], strlen(prefixes[i])) == 0) return 1;
    return 0;
}

int sym_module_get(symbolizer *s, const char *path, const char *display, sym_module **out, herr *e)
{
    struct stat st;
    uint64_t key;
    uint32_t idx;
    sym_module *m;
    int rc;

    *out = NULL;
    if (stat(path, &st) != 0) {
        rc = -errno;
        return herr_set(e, rc, "cannot open '%s': %s", path, strerror(errno));
    }
    key = hash_u64((uint64_t)st.st_dev * 0x9e3779b97f4a7c15ULL ^ (uint64_t)st.st_ino) ^
          hash_u64((uint64_t)st.st_size ^ ((uint64_t)st.st_mtime << 20));
    idx = hmap64_get(&s->mod_index, key);
    if (idx != HMAP_EMPTY) {
        m = s->mods[idx];
        m->last_use = ++s->clock;
        if (m->failed) return herr_set(e, HE_FORMAT, "'%s' could not be read as ELF", path);
        *out = m;
        return 0;
    }
    m = hmallocarray(1, sizeof(*m));
    if (!m) return herr_set(e, -ENOMEM, "out of memory");
    memset(m, 0, sizeof(*m));
    m->path = dup_str(path);
    m->display = dup_str(display ? display : path);
    m->is_libc = is_libc_file(path);
    if (!m->path || !m->display) {
        module_free(m);
        return herr_set(e, -ENOMEM, "out of memory");
    }
    m->key = key;
    m->last_use = ++s->clock;
    m->dwfl_trim = s->trims;
    rc = module_open_shared(s, m, e);
    if (rc) m->failed = 1;
    if (HGROW(s->mods, s->cap_mods, s->n_mods + 1)) {
        module_free(m);
        return herr_set(e, -ENOMEM, "out of memory");
    }
    s->mods[s->n_mods] = m;
    hmap64_put(&s->mod_index, key, (uint32_t)s->n_mods);
    s->n_mods++;
    if (rc) return rc;
    *out = m;
    return 0;
}

const char *sym_module_build_id(const sym_module *m)
{
    return m ? m->build_id : NULL;
}

/* ---- demangling ---- */

typedef char *(*cxa_demangle_fn)(const char *, char *, size_t *, int *);

static cxa_demangle_fn load_cxa_demangle(void)
{
    static cxa_demangle_fn fn;
    static int tried;
    if (!tried) {
        void *h = dlopen("libstdc++.so.6", RTLD_LAZY | RTLD_LOCAL);
        tried = 1;
        if (h) fn = (cxa_demangle_fn)dlsym(h, "__cxa_demangle");
    }
    return fn;
}

static int is_rust_hash(const char *p, size_t n)
{
    /* "::h" followed by 16 hex digits at the end. */
    if (n != 19 || p[0] != ':' || p[1] != ':' || p[2] != 'h') return 0;
    for (size_t i = 3; i < n; i++)
        if (!((p[i] >= '0' && p[i] <= '9') || (p[i] >= 'a' && p[i] <= 'f'))) return 0;
    return 1;
}

/*
 * Rust v0 mangling (RFC 2603): "_R" [decimal] path [instantiating crate].
 * A recursive-descent printer for paths (crate roots, nested paths,
 * closures/shims, inherent and trait impls, generic arguments) and types
 * (basic, named, references, pointers, arrays, slices, tuples, fn
 * pointers, dyn traits), with back-references. Crate disambiguators and
 * const values are not printed (as rustc-demangle's alternate form); on
 * anything it does not know the name stays mangled.
 */
typedef struct v0 {
    const char *s;     /* after "_R" */
    size_t n, pos;
    char *out;
    size_t out_size, len;
    int depth, bad;
} v0;

static void v0_put(v0 *d, const char *p, size_t n)
{
    if (d->len + n >= d->out_size) { d->bad = 1; return; }
    memcpy(d->out + d->len, p, n);
    d->len += n;
    d->out[d->len] = 0;
}

static void v0_puts(v0 *d, const char *p) { v0_put(d, p, strlen(p)); }

static int v0_peek(v0 *d) { return d->pos < d->n ? d->s[d->pos] : 0; }

static int v0_eat(v0 *d, char c)
{
    if (v0_peek(d) != c) return 0;
    d->pos++;
    return 1;
}

static uint64_t v0_base62(v0 *d)
{
    uint64_t v = 0;
    if (v0_eat(d, '_')) return 0;
    while (d->pos < d->n) {
        char c = d->s[d->pos++];
        int digit;
        if (c == '_') return v + 1;
        if (c >= '0' && c <= '9') digit = c - '0';
        else if (c >= 'a' && c <= 'z') digit = 10 + c - 'a';
        else if (c >= 'A' && c <= 'Z') digit = 36 + c - 'A';
        else break;
        if (v > (UINT64_MAX - 61) / 62) break;
        v = v * 62 + (uint64_t)digit;
    }
    d->bad = 1;
    return 0;
}

static uint64_t v0_decimal(v0 *d)
{
    uint64_t v = 0;
    int any = 0;
    while (d->pos < d->n && d->s[d->pos] >= '0' && d->s[d->pos] <= '9') {
        if (v > UINT64_MAX / 10 - 10) { d->bad = 1; return 0; }
        v = v * 10 + (uint64_t)(d->s[d->pos++] - '0');
        any = 1;
    }
    if (!any) d->bad = 1;
    return v;
}

/* [u] decimal [_] bytes; punycode ("u") identifiers are printed raw. */
static void v0_ident(v0 *d, int print)
{
    int puny = v0_eat(d, 'u');
    uint64_t len = v0_decimal(d);
    v0_eat(d, '_');
    if (d->bad || len > d->n - d->pos) { d->bad = 1; return; }
    if (print) {
        if (puny) v0_puts(d, "punycode{");
        v0_put(d, d->s + d->pos, (size_t)len);
        if (puny) v0_puts(d, "}");
    }
    d->pos += (size_t)len;
}

static void v0_path(v0 *d);
static void v0_type(v0 *d);

static void v0_backref(v0 *d, void (*fn)(v0 *))
{
    uint64_t at = v0_base62(d);
    size_t saved = d->pos;
    if (d->bad || at >= saved || d->depth > 64) { d->bad = 1; return; }
    d->pos = (size_t)at;
    d->depth++;
    fn(d);
    d->depth--;
    d->pos = saved;
}

static void v0_lifetime_skip(v0 *d) { if (v0_eat(d, 'L')) (void)v0_base62(d); }

static void v0_const(v0 *d)
{
    if (v0_eat(d, 'p')) { v0_puts(d, "_"); return; }
    if (v0_eat(d, 'B')) { v0_backref(d, v0_const); return; }
    v0_type(d); /* the const's type: not printed by the value */
    v0_eat(d, 'n');
    while (d->pos < d->n && d->s[d->pos] != '_') d->pos++;
    if (!v0_eat(d, '_')) d->bad = 1;
    v0_puts(d, "_");
}

static void v0_generic_args(v0 *d)
{
    int first = 1;
    v0_puts(d, "<");
    while (!d->bad && !v0_eat(d, 'E')) {
        if (d->pos >= d->n) { d->bad = 1; return; }
        if (v0_peek(d) == 'L') { v0_lifetime_skip(d); continue; }
        if (!first) v0_puts(d, ", ");
        first = 0;
        if (v0_eat(d, 'K')) v0_const(d);
        else v0_type(d);
    }
    v0_puts(d, ">");
}

static void v0_type(v0 *d)
{
    static const char *const basic[26] = {
        ['a' - 'a'] = "i8", ['b' - 'a'] = "bool", ['c' - 'a'] = "char", ['d' - 'a'] = "f64",
        ['e' - 'a'] = "str", ['f' - 'a'] = "f32", ['h' - 'a'] = "u8", ['i' - 'a'] = "isize",
        ['j' - 'a'] = "usize", ['l' - 'a'] = "i32", ['m' - 'a'] = "u32", ['n' - 'a'] = "i128",
        ['o' - 'a'] = "u128", ['s' - 'a'] = "i16", ['t' - 'a'] = "u16", ['u' - 'a'] = "()",
        ['v' - 'a'] = "...", ['x' - 'a'] = "i64", ['y' - 'a'] = "u64", ['z' - 'a'] = "!",
        ['p' - 'a'] = "_"};
    int c = v0_peek(d);
    if (d->bad || ++d->depth > 64) { d->bad = 1; return; }
    if (c >= 'a' && c <= 'z' && basic[c - 'a']) {
        d->pos++;
        v0_puts(d, basic[c - 'a']);
    } else if (c == 'A' || c == 'S') {
        d->pos++;
        v0_puts(d, "[");
        v0_type(d);
        if (c == 'A') { v0_puts(d, "; "); v0_const(d); }
        v0_puts(d, "]");
    } else if (c == 'T') {
        int first = 1;
        d->pos++;
        v0_puts(d, "(");
        while (!d->bad && !v0_eat(d, 'E')) {
            if (d->pos >= d->n) { d->bad = 1; break; }
            if (!first) v0_puts(d, ", ");
            first = 0;
            v0_type(d);
        }
        v0_puts(d, ")");
    } else if (c == 'R' || c == 'Q') {
        d->pos++;
        v0_puts(d, c == 'R' ? "&" : "&mut ");
        v0_lifetime_skip(d);
        v0_type(d);
    } else if (c == 'P' || c == 'O') {
        d->pos++;
        v0_puts(d, c == 'P' ? "*const " : "*mut ");
        v0_type(d);
    } else if (c == 'F') {
        int first = 1;
        d->pos++;
        if (v0_eat(d, 'G')) (void)v0_base62(d);
        if (v0_eat(d, 'U')) v0_puts(d, "unsafe ");
        if (v0_eat(d, 'K')) {
            v0_puts(d, "extern \"");
            if (v0_eat(d, 'C')) v0_puts(d, "C");
            else v0_ident(d, 1);
            v0_puts(d, "\" ");
        }
        v0_puts(d, "fn(");
        while (!d->bad && !v0_eat(d, 'E')) {
            if (d->pos >= d->n) { d->bad = 1; break; }
            if (!first) v0_puts(d, ", ");
            first = 0;
            v0_type(d);
        }
        v0_puts(d, ")");
        if (v0_peek(d) == 'u') d->pos++; /* returns () */
        else { v0_puts(d, " -> "); v0_type(d); }
    } else if (c == 'D') {
        int first = 1;
        d->pos++;
        v0_puts(d, "dyn ");
        if (v0_eat(d, 'G')) (void)v0_base62(d);
        while (!d->bad && !v0_eat(d, 'E')) {
            if (d->pos >= d->n) { d->bad = 1; break; }
            if (!first) v0_puts(d, " + ");
            first = 0;
            v0_path(d);
            while (!d->bad && v0_eat(d, 'p')) { v0_puts(d, "<"); v0_ident(d, 1); v0_puts(d, " = "); v0_type(d); v0_puts(d, ">"); }
        }
        v0_lifetime_skip(d);
    } else if (c == 'B') {
        d->pos++;
        v0_backref(d, v0_type);
    } else {
        v0_path(d);
    }
    d->depth--;
}

static void v0_path(v0 *d)
{
    int c = v0_peek(d);
    if (d->bad || ++d->depth > 64) { d->bad = 1; return; }
    d->pos++;
    switch (c) {
    case 'C': /* crate root */
        if (v0_eat(d, 's')) (void)v0_base62(d);
        v0_ident(d, 1);
        break;
    case 'N': {
        int ns = v0_peek(d);
        d->pos++;
        v0_path(d);
        if (v0_eat(d, 's')) (void)v0_base62(d);
        size_t before = d->len;
        if (ns >= 'A' && ns <= 'Z') {
            /* closure / shim: {closure#N} (N from the disambiguator is not kept; 0 printed) */
            v0_puts(d, "::{");
            v0_puts(d, ns == 'C' ? "closure" : ns == 'S' ? "shim" : "?");
            size_t at = d->len;
            v0_ident(d, 1);
            if (d->len != at) { /* named: {closure:name} style */ }
            v0_puts(d, "}");
        } else {
            v0_puts(d, "::");
            v0_ident(d, 1);
        }
        (void)before;
        break;
    }
    case 'M': /* inherent impl: <T> */
        if (v0_eat(d, 's')) (void)v0_base62(d);
        { size_t keep = d->len; v0_path(d); d->len = keep; if (d->out_size) d->out[keep] = 0; }
        v0_puts(d, "<");
        v0_type(d);
        v0_puts(d, ">");
        break;
    case 'X': /* trait impl: <T as Trait> */
        if (v0_eat(d, 's')) (void)v0_base62(d);
        { size_t keep = d->len; v0_path(d); d->len = keep; if (d->out_size) d->out[keep] = 0; }
        /* fallthrough */
    case 'Y':
        v0_puts(d, "<");
        v0_type(d);
        v0_puts(d, " as ");
        v0_path(d);
        v0_puts(d, ">");
        break;
    case 'I':
        v0_path(d);
        v0_puts(d, "::");
        v0_generic_args(d);
        break;
    case 'B':
        v0_backref(d, v0_path);
        break;
    default:
        d->bad = 1;
    }
    d->depth--;
}

static char *demangle_rust_v0(const char *name, char *out, size_t out_size)
{
    v0 d = {name + 2, strlen(name + 2), 0, out, out_size, 0, 0, 0};
    out[0] = 0;
    if (d.pos < d.n && d.s[d.pos] >= '0' && d.s[d.pos] <= '9') (void)v0_decimal(&d); /* encoding version */
    v0_path(&d);
    /* An instantiating crate and a vendor suffix (".llvm.123") may follow: not printed. */
    if (d.bad || !d.len) return NULL;
    return out;
}

char *sym_demangle(const char *name, char *out, size_t out_size)
{
    cxa_demangle_fn fn;
    char *d;
    int status = 0;
    size_t len;
    if (!name || out_size == 0) return NULL;
    if (!strncmp(name, "_R", 2) && name[2] >= '0' && name[2] <= 'Z') return demangle_rust_v0(name, out, out_size);
    if (strncmp(name, "_Z", 2)) return NULL;
    fn = load_cxa_demangle();
    if (!fn) return NULL;
    d = fn(name, NULL, NULL, &status);
    if (!d || status != 0) { free(d); return NULL; }
    len = strlen(d);
    /* Rust legacy mangling is Itanium-shaped with a trailing ::h<hash>. */
    if (len > 19 && is_rust_hash(d + len - 19, 19)) {
        len -= 19;
        d[len] = 0;
    }
    if (len >= out_size) len = out_size - 1;
    memcpy(out, d, len);
    out[len] = 0;
    free(d);
    return out;
}

static const char *demangled(symbolizer *s, const char *name)
{
    char tmp[1024];
    if (!name) return NULL;
    if (sym_demangle(name, tmp, sizeof(tmp))) return intern(s, tmp);
    return intern(s, name);
}

/* ---- ELF/DWARF lookup ---- */

static int off_to_vaddr(const sym_module *m, uint64_t off, uint64_t *vaddr)
{
    for (size_t i = 0; i < m->n_loads; i++) {
        const GElf_Phdr *ph = &m->loads[i];
        if (off >= ph->p_offset && off < ph->p_offset + ph->p_filesz) {
            *vaddr = off - ph->p_offset + ph->p_vaddr;
            return 0;
        }
    }
    return -1;
}

static const char *die_name(Dwarf_Die *die, int *is_linkage)
{
    Dwarf_Attribute attr;
    const char *n;
    *is_linkage = 0;
    if (dwarf_attr_integrate(die, DW_AT_linkage_name, &attr) ||
        dwarf_attr_integrate(die, DW_AT_MIPS_linkage_name, &attr)) {
        n = dwarf_formstring(&attr);
        if (n) { *is_linkage = 1; return n; }
    }
    if (dwarf_attr_integrate(die, DW_AT_name, &attr)) return dwarf_formstring(&attr);
    return NULL;
}

static void fill_frame(symbolizer *s, sym_frame *f, const char *raw)
{
    char unversioned[512];
    const char *at = raw ? strchr(raw, '@') : NULL;
    /* Symbol versions (memcpy@@GLIBC_2.14) are not part of the function's name. */
    if (at && at != raw && (size_t)(at - raw) < sizeof(unversioned)) {
        memcpy(unversioned, raw, (size_t)(at - raw));
        unversioned[at - raw] = 0;
        raw = unversioned;
    }
    f->function = demangled(s, raw);
    f->mangled = raw && f->function && strcmp(raw, f->function) ? intern(s, raw) : NULL;
}

#define MAX_SCOPE_DEPTH 64

/*
 * The function scopes (subprogram, inlined subroutines) containing pc,
 * innermost first, found by descending from the CU only into DIEs whose
 * ranges contain pc (and into namespaces, which have none). dwarf_getscopes
 * + dwarf_getscopes_die walk whole CUs, which for big CUs costs far more.
 * Returns the count (scopes malloc'ed, caller frees) or 0.
 */
static int find_scopes(Dwarf_Die *cudie, Dwarf_Addr pc, Dwarf_Die **out)
{
    Dwarf_Die path[MAX_SCOPE_DEPTH], cur = *cudie, child;
    int depth = 0, n = 0;
    *out = NULL;
    while (depth < MAX_SCOPE_DEPTH && dwarf_child(&cur, &child) == 0) {
        int found = 0;
        do {
            int tag = dwarf_tag(&child);
            if (tag == DW_TAG_subprogram || tag == DW_TAG_inlined_subroutine || tag == DW_TAG_lexical_block) {
                if (dwarf_haspc(&child, pc) > 0) { found = 1; break; }
            } else if (tag == DW_TAG_namespace || tag == DW_TAG_module) {
                /* No ranges of their own: look inside for a match without committing. */
                Dwarf_Die inner;
                if (dwarf_child(&child, &inner) == 0) {
                    do {
                        int t2 = dwarf_tag(&inner);
                        if ((t2 == DW_TAG_subprogram || t2 == DW_TAG_namespace) &&
                            (t2 == DW_TAG_namespace || dwarf_haspc(&inner, pc) > 0)) {
                            found = 2;
                            break;
                        }
                    } while (dwarf_siblingof(&inner, &inner) == 0);
                }
                if (found) break;
            }
        } while (dwarf_siblingof(&child, &child) == 0);
        if (!found) break;
        if (found == 1) path[depth++] = child;
        cur = child;
    }
    for (int i = 0; i < depth; i++) {
        int tag = dwarf_tag(&path[i]);
        n += tag == DW_TAG_subprogram || tag == DW_TAG_inlined_subroutine;
    }
    if (!n) return 0;
    *out = malloc(sizeof(Dwarf_Die) * (size_t)n);
    if (!*out) return 0;
    int k = 0;
    for (int i = depth - 1; i >= 0; i--) {
        int tag = dwarf_tag(&path[i]);
        if (tag == DW_TAG_subprogram || tag == DW_TAG_inlined_subroutine) (*out)[k++] = path[i];
    }
    return n;
}

static void lookup_dwarf(symbolizer *s, sym_module *m, Dwarf_Addr addr, const char *symname, sym_result *r)
{
    Dwarf_Addr cu_bias;
    Dwarf_Die *cudie = dwfl_module_addrdie(m->mod, addr, &cu_bias);
    Dwfl_Line *line = dwfl_module_getsrc(m->mod, addr);
    const char *src_file = NULL;
    int src_line = 0;
    Dwarf_Die *scopes = NULL;
    int n_scopes;
    Dwarf_Files *files = NULL;
    size_t n_files = 0;

    if (line) {
        int lno = 0;
        src_file = dwfl_lineinfo(line, NULL, &lno, NULL, NULL, NULL);
        src_line = lno;
    }
    if (!cudie) goto symonly;
    n_scopes = find_scopes(cudie, addr - cu_bias, &scopes);
    if (n_scopes <= 0) goto symonly;
    dwarf_getsrcfiles(cudie, &files, &n_files);
    /* Frame 0 is at the sample's line; each inlined scope's call site gives its caller's line. */
    const char *cur_file = src_file;
    int cur_line = src_line;
    for (int i = 0; i < n_scopes && r->n < SYM_MAX_INLINE; i++) {
        int tag = dwarf_tag(&scopes[i]), is_linkage;
        if (tag != DW_TAG_inlined_subroutine && tag != DW_TAG_subprogram) continue;
        const char *nm = die_name(&scopes[i], &is_linkage);
        sym_frame *f = &r->frames[r->n++];
        if (tag == DW_TAG_subprogram && symname) nm = symname;
        fill_frame(s, f, nm);
        f->file = intern(s, cur_file);
        f->line = cur_line;
        if (tag == DW_TAG_subprogram) break;
        Dwarf_Attribute attr;
        Dwarf_Word fidx = 0, cl = 0;
        cur_file = NULL;
        cur_line = 0;
        if (dwarf_formudata(dwarf_attr(&scopes[i], DW_AT_call_file, &attr), &fidx) == 0 && files)
            cur_file = dwarf_filesrc(files, fidx, NULL, NULL);
        if (dwarf_formudata(dwarf_attr(&scopes[i], DW_AT_call_line, &attr), &cl) == 0) cur_line = (int)cl;
    }
    free(scopes);
    if (r->n > 0) return;
symonly:
    if (symname) {
        fill_frame(s, &r->frames[0], symname);
        r->frames[0].file = intern(s, src_file);
        r->frames[0].line = src_line;
        r->n = 1;
    }
}

static int msym_cmp(const void *a, const void *b)
{
    const msym *x = a, *y = b;
    if (x->addr != y->addr) return x->addr < y->addr ? -1 : 1;
    if (x->size != y->size) return x->size > y->size ? -1 : 1; /* larger (non-zero) size first */
    if (x->rank != y->rank) return x->rank - y->rank;           /* __libc_start_main, not its local alias */
    size_t lx = strlen(x->name), ly = strlen(y->name);
    return lx < ly ? -1 : lx > ly;
}

static void load_syms(sym_module *m)
{
    int n = dwfl_module_getsymtab(m->mod);
    size_t cap = 0;
    GElf_Addr bias = 0;
    Elf *elf = dwfl_module_getelf(m->mod, &bias);
    m->syms_loaded = 1;
    for (int i = 1; i < n; i++) {
        GElf_Sym sym;
        GElf_Addr addr;
        GElf_Word shndx = 0;
        Elf *sym_elf = NULL;
        const char *name = dwfl_module_getsym_info(m->mod, i, &sym, &addr, &shndx, &sym_elf, NULL);
        if (!name || !*name || (GELF_ST_TYPE(sym.st_info) != STT_FUNC && GELF_ST_TYPE(sym.st_info) != STT_NOTYPE) ||
            sym.st_shndx == SHN_UNDEF)
            continue;
        if (GELF_ST_TYPE(sym.st_info) == STT_NOTYPE && sym.st_size == 0) continue; /* labels, not functions */
        if (sym.st_size == 0 && sym_elf == elf && elf) {
            /* Unsized (hand-written) functions end at their section's end at the latest, so
             * e.g. _init does not claim the PLT that follows .init. */
            Elf_Scn *scn = elf_getscn(elf, shndx);
            GElf_Shdr sh;
            if (scn && gelf_getshdr(scn, &sh) && sh.sh_addr + sh.sh_size > sym.st_value)
                sym.st_size = sh.sh_addr + sh.sh_size - sym.st_value;
        }
        if (HGROW(m->syms, cap, m->n_syms + 1)) break;
        int bind = GELF_ST_BIND(sym.st_info);
        m->syms[m->n_syms++] = (msym){addr, sym.st_size, name, bind == STB_GLOBAL ? 0 : bind == STB_WEAK ? 1 : 2};
    }
    if (m->n_syms) qsort(m->syms, m->n_syms, sizeof(msym), msym_cmp);
}

/* The function symbol covering addr (dwfl address), preferring one whose size covers it. */
static const char *find_sym(sym_module *m, GElf_Addr addr)
{
    size_t lo = 0, hi;
    if (!m->syms_loaded) load_syms(m);
    if (!m->n_syms || addr < m->syms[0].addr) return NULL;
    hi = m->n_syms;
    while (hi - lo > 1) {
        size_t mid = lo + (hi - lo) / 2;
        if (m->syms[mid].addr <= addr) lo = mid; else hi = mid;
    }
    /* Walk back over aliases at the same address to the sized one. */
    size_t k = lo;
    while (k > 0 && m->syms[k - 1].addr == m->syms[lo].addr) k--;
    const msym *best = &m->syms[k];
    if (best->size && addr >= best->addr + best->size) return NULL; /* in a gap after it */
    return best->name;
}

int sym_module_names_only(const symbolizer *s, const sym_module *m)
{
    return s->o.no_dwarf || (s->o.libc_names_only && m->is_libc);
}

int sym_lookup(symbolizer *s, sym_module *m, uint64_t off, sym_result *r)
{
    uint64_t ckey, vaddr;
    uint32_t idx;
    memset(r, 0, sizeof(*r));
    if (!m) return 0;
    m->last_use = ++s->clock;
    ckey = hash_u64(m->key ^ hash_u64(off + 0x51ed27));
    idx = hmap64_get(&s->addr_index, ckey);
    if (idx != HMAP_EMPTY) {
        const cache_ent *ce = &s->cache[idx];
        r->module = ce->module;
        r->build_id = ce->build_id;
        r->vaddr = ce->vaddr;
        r->n = ce->n;
        if (ce->n) memcpy(r->frames, s->cframes + ce->first_frame, ce->n * sizeof(sym_frame));
        return 0;
    }
    if (!m->dwfl && !m->failed) {
        herr e = {0};
        if (module_open_shared(s, m, &e)) m->failed = 1;
    }
    m->dwfl_trim = s->trims;
    r->module = intern(s, m->display);
    r->build_id = m->build_id ? intern(s, m->build_id) : NULL;
    if (m->dwfl && off_to_vaddr(m, off, &vaddr) == 0) {
        GElf_Addr a = vaddr + m->bias;
        const char *symname = find_sym(m, a);
        r->vaddr = vaddr;
        if (sym_module_names_only(s, m)) {
            if (symname) {
                fill_frame(s, &r->frames[0], symname);
                r->n = 1;
            }
        } else {
            lookup_dwarf(s, m, a, symname, r);
        }
    } else {
        r->vaddr = off;
    }
    if (s->n_cache < s->o.max_cache_entries && !HGROW(s->cache, s->cap_cache, s->n_cache + 1) &&
        !HGROW(s->cframes, s->cap_cframes, s->n_cframes + (size_t)r->n + 1)) {
        cache_ent *ce = &s->cache[s->n_cache];
        ce->module = r->module;
        ce->build_id = r->build_id;
        ce->vaddr = r->vaddr;
        ce->n = (uint8_t)r->n;
        ce->first_frame = (uint32_t)s->n_cframes;
        memcpy(s->cframes + s->n_cframes, r->frames, (size_t)r->n * sizeof(sym_frame));
        if (hmap64_put(&s->addr_index, ckey, (uint32_t)s->n_cache) == 0) {
            s->n_cache++;
            s->n_cframes += (size_t)r->n;
        }
    }
    return 0;
}

/* ---- kernel ---- */

static int ksym_cmp(const void *a, const void *b)
{
    const ksym *x = a, *y = b;
    return x->addr < y->addr ? -1 : x->addr > y->addr;
}

static void load_kallsyms(symbolizer *s)
{
    FILE *f = fopen("/proc/kallsyms", "re");
    char line[512];
    size_t cap = 0;
    s->ksyms_loaded = 1;
    if (!f) return;
    while (fgets(line, sizeof(line), f)) {
        char *end, *name, type;
        uint64_t addr = strtoull(line, &end, 16);
        if (end == line || addr == 0) continue;
        while (*end == ' ') end++;
        type = *end;
        if (!(type == 't' || type == 'T' || type == 'w' || type == 'W')) continue;
        name = end + 1;
        while (*name == ' ') name++;
        name[strcspn(name, " \t\n")] = 0;
        if (!*name) continue;
        if (HGROW(s->ksyms, cap, s->n_ksyms + 1)) break;
        int32_t id = strtab_intern_cstr(&s->kstrs, name);
        if (id < 0) break;
        s->ksyms[s->n_ksyms].addr = addr;
        s->ksyms[s->n_ksyms].name = (uint32_t)id;
        s->n_ksyms++;
    }
    fclose(f);
    if (s->n_ksyms) {
        qsort(s->ksyms, s->n_ksyms, sizeof(ksym), ksym_cmp);
        ksym *fit = realloc(s->ksyms, s->n_ksyms * sizeof(ksym)); /* kept for 64 trims: no growth slack */
        if (fit) s->ksyms = fit;
    }
}

int sym_kernel_lookup(symbolizer *s, uint64_t addr, sym_result *r)
{
    size_t lo = 0, hi;
    memset(r, 0, sizeof(*r));
    r->is_kernel = 1;
    r->module = intern(s, "[kernel.kallsyms]");
    r->vaddr = addr;
    if (!s->ksyms_loaded) load_kallsyms(s);
    if (!s->n_ksyms || addr < s->ksyms[0].addr) return 0;
    hi = s->n_ksyms;
    while (hi - lo > 1) {
        size_t mid = lo + (hi - lo) / 2;
        if (s->ksyms[mid].addr <= addr) lo = mid; else hi = mid;
    }
    /* Past the last symbol by more than 1 MiB: not a kernel text symbol we know. */
    if (lo == s->n_ksyms - 1 && addr - s->ksyms[lo].addr > (1u << 20)) return 0;
    r->frames[0].function = strtab_get(&s->kstrs, s->ksyms[lo].name);
    r->n = 1;
    return 0;
}

/* ---- JIT perf maps ---- */

static int pm_cmp(const void *a, const void *b)
{
    const perfmap_ent *x = a, *y = b;
    return x->start < y->start ? -1 : x->start > y->start;
}

static perfmap *perfmap_load(symbolizer *s, pid_t pid, const char *root)
{
    char path[512];
    struct stat st;
    perfmap *pm = NULL;
    for (size_t i = 0; i < s->n_pmaps; i++)
        if (s->pmaps[i].pid == pid) pm = &s->pmaps[i];
    snprintf(path, sizeof(path), "%s/tmp/perf-%d.map", root ? root : "", (int)pid);
    if (stat(path, &st) != 0) return pm;
    if (pm && pm->size_seen == st.st_size) return pm;
    if (!pm) {
        if (HGROW(s->pmaps, s->cap_pmaps, s->n_pmaps + 1)) return NULL;
        pm = &s->pmaps[s->n_pmaps++];
        memset(pm, 0, sizeof(*pm));
        pm->pid = pid;
    }
    free(pm->ents);
    pm->ents = NULL;
    pm->n = 0;
    pm->size_seen = st.st_size;
    FILE *f = fopen(path, "re");
    if (!f) return pm;
    char line[1024];
    size_t cap = 0;
    /* Cap: a JIT map of more than 4M entries is truncated (memory stays bounded). */
    while (pm->n < (4u << 20) && fgets(line, sizeof(line), f)) {
        char *p = line, *end;
        uint64_t start = strtoull(p, &end, 16), size;
        if (end == p || *end != ' ') continue;
        p = end + 1;
        size = strtoull(p, &end, 16);
        if (end == p || *end != ' ') continue;
        p = end + 1;
        p[strcspn(p, "\n")] = 0;
        int32_t id = strtab_intern_cstr(&s->strs, p);
        if (id < 0 || HGROW(pm->ents, cap, pm->n + 1)) break;
        pm->ents[pm->n++] = (perfmap_ent){start, start + size, (uint32_t)id};
    }
    fclose(f);
    if (pm->n) qsort(pm->ents, pm->n, sizeof(perfmap_ent), pm_cmp);
    return pm;
}

int sym_perfmap_lookup(symbolizer *s, pid_t pid, const char *root, uint64_t addr, sym_result *r)
{
    perfmap *pm = perfmap_load(s, pid, root);
    size_t lo = 0, hi;
    memset(r, 0, sizeof(*r));
    if (!pm || !pm->n || addr < pm->ents[0].start) return HE_NOTFOUND;
    hi = pm->n;
    while (hi - lo > 1) {
        size_t mid = lo + (hi - lo) / 2;
        if (pm->ents[mid].start <= addr) lo = mid; else hi = mid;
    }
    if (addr >= pm->ents[lo].end) return HE_NOTFOUND;
    r->frames[0].function = strtab_get(&s->strs, pm->ents[lo].name);
    r->n = 1;
    r->module = intern(s, "[jit]");
    r->vaddr = addr;
    return 0;
}

void sym_perfmap_forget(symbolizer *s, pid_t pid)
{
    for (size_t i = 0; i < s->n_pmaps; i++) {
        if (s->pmaps[i].pid != pid) continue;
        free(s->pmaps[i].ents);
        s->pmaps[i] = s->pmaps[--s->n_pmaps];
        return;
    }
}
