/*
 * unwind.c: see unwind.h. Owns the published module table and the
 * bounds-checked memory reader used while unwinding in a signal handler.
 *
 * Module table life cycle (collector thread only):
 *   1. parse /proc/self/maps: every executable file mapping is a module with
 *      its bias (from the file's PT_LOAD headers);
 *   2. modules where sampled pcs landed ("wanted") get their CFI table built
 *      (cached by path for the life of the process): building tables for
 *      every library we never sample would cost startup time for nothing;
 *   3. the new array is published with a release store; the old one is kept
 *      (handlers may still be reading it). At most PL_MAX_PUBLISH tables are
 *      ever published, after which the last one stays.
 * Until a module has a table, unw_step() falls back to its frame pointer
 * rule, so stacks are right for frame-pointer code from the first sample.
 */
#include "core/common.h"

#include <elf.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#include "core/buf.h"
#include "core/err.h"
#include "core/hash.h"
#include "core/log.h"
#include "preload/preload.h"
#include "preload/unwind.h"

#define PL_MAX_MODULES 512
#define PL_MAX_PUBLISH 64
#define PL_MAX_TABLES 256

typedef struct pl_modtab {
    size_t n;
    unw_module mods[PL_MAX_MODULES];
} pl_modtab;

typedef struct pl_table_cache {
    char path[256];
    unw_table table;
    int ok;
} pl_table_cache;

static pl_modtab *_Atomic current;
static pl_modtab *published[PL_MAX_PUBLISH];
static size_t n_published;
static pl_table_cache tables[PL_MAX_TABLES];
static size_t n_tables;
static uint64_t wanted[PL_MAX_MODULES / 64];  /* bit per module index of current */
static int wanted_dirty;
static uint64_t maps_hash;

int pl_same_file(const char *path, unsigned long inode)
{
    /* A file replaced since it was mapped (or "(deleted)") must not be read as the mapped one. */
    struct stat st;
    return stat(path, &st) == 0 && (unsigned long)st.st_ino == inode;
}

static int read_mem(void *ctx, uint64_t addr, uint64_t *out)
{
    (void)ctx;
    if (pl_tls.bounds_known && addr >= pl_tls.stack_lo && addr + 8 <= pl_tls.stack_hi && !(addr & 7)) {
        *out = *(const uint64_t *)(uintptr_t)addr;
        return 0;
    }
    if (addr < 4096) return -1;
    /* Outside the known stack: a read that fails instead of faulting. */
    struct iovec local = { out, 8 }, remote = { (void *)(uintptr_t)addr, 8 };
    long n = syscall(SYS_process_vm_readv, (long)pl_g.pid, &local, 1L, &remote, 1L, 0L);
    return n == 8 ? 0 : -1;
}

size_t pl_unwind_regs(const unw_regs *regs, uint64_t *pcs, size_t max, uint8_t *truncated)
{
    pl_modtab *t = atomic_load_explicit(&current, memory_order_acquire);
    size_t n = unw_backtrace(t ? t->mods : NULL, t ? t->n : 0, *regs, read_mem, NULL, pcs, max);
    *truncated = n == max;
    return n;
}

size_t pl_capture_here(uint64_t *pcs, size_t max, uint64_t skip_lo, uint64_t skip_hi)
{
    /* Our caller's frame, exactly: we are built with frame pointers. */
    uint64_t *fp = __builtin_frame_address(0);
    unw_regs r = { .ip = (uint64_t)(uintptr_t)__builtin_return_address(0),
                   .sp = (uint64_t)(uintptr_t)(fp + 2), .bp = fp[0] };
    pl_modtab *t = atomic_load_explicit(&current, memory_order_acquire);
    size_t n = 0;
    int first = 0;     /* r.ip is a return address */
    int skipping = 1;  /* still in the leading frames of (skip_lo, skip_hi] */
    int skipped = 0;
    while (n < max) {
        /*
         * A return address may be one past the end of its caller (a call as
         * the last instruction): the range test is of the call itself,
         * ip - 1. Hearth nests a handful of frames at most; a longer run is
         * a broken chain, not ours to hide.
         */
        if (skipping && (!(r.ip > skip_lo && r.ip <= skip_hi) || ++skipped > 16)) skipping = 0;
        if (skipping) {
            /*
             * One of hearth's own leading frames, left out of the sample:
             * built with frame pointers and stopped at a call, so one step
             * of the chain is exact and saves a CFI lookup (two cold cache
             * lines) per frame on every heap sample.
             */
            if (unw_step_fp(&r, read_mem, NULL) != 1) break;
            continue;
        }
        pcs[n++] = r.ip;
        if (unw_step(t ? t->mods : NULL, t ? t->n : 0, &r, first, read_mem, NULL) != 1) break;
    }
    return n;
}

/* bias of a module from the PT_LOAD segment containing file offset pgoff. */
static int elf_bias(const char *path, uint64_t start, uint64_t pgoff, int64_t *bias)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return -errno;
    Elf64_Ehdr eh;
    int rc = -ENOEXEC;
    if (pread(fd, &eh, sizeof(eh), 0) == (ssize_t)sizeof(eh) && memcmp(eh.e_ident, ELFMAG, SELFMAG) == 0 &&
        eh.e_ident[EI_CLASS] == ELFCLASS64 && eh.e_phentsize == sizeof(Elf64_Phdr) && eh.e_phnum < 256) {
        for (unsigned i = 0; i < eh.e_phnum; i++) {
            Elf64_Phdr ph;
            if (pread(fd, &ph, sizeof(ph), (off_t)(eh.e_phoff + i * sizeof(ph))) != (ssize_t)sizeof(ph)) break;
            if (ph.p_type != PT_LOAD || !(ph.p_flags & PF_X)) continue;
            uint64_t off_lo = ph.p_offset & ~(uint64_t)4095;
            if (pgoff >= off_lo && pgoff < ph.p_offset + ph.p_filesz) {
                *bias = unw_bias(start, pgoff, ph.p_offset, ph.p_vaddr);
                rc = 0;
                break;
            }
        }
    }
    close(fd);
    return rc;
}

static const _Atomic int *cancel_flag;

void pl_unwind_set_cancel(const _Atomic int *cancel) { cancel_flag = cancel; }

/* path's CFI table (cached), or NULL; *cancelled set when the build was given up (nothing cached). */
static const unw_table *table_for(const char *path, int *cancelled)
{
    *cancelled = 0;
    for (size_t i = 0; i < n_tables; i++)
        if (strcmp(tables[i].path, path) == 0) return tables[i].ok ? &tables[i].table : NULL;
    if (n_tables >= PL_MAX_TABLES) return NULL;
    /*
     * Built aside and cached when finished: a child forked meanwhile (the
     * start-up builds run outside work_lock) or a cancelled build (the
     * program exiting) leaves no entry, so the table is built when asked
     * for again.
     */
    unw_table built;
    herr e;
    herr_clear(&e);
    int rc = unw_table_build_file_cancel(&built, path, cancel_flag, &e);
    if (rc == -ECANCELED) {
        *cancelled = 1;
        return NULL;
    }
    pl_table_cache *c = &tables[n_tables];
    snprintf(c->path, sizeof(c->path), "%s", path);
    c->table = built;
    c->ok = rc == 0;
    n_tables++;
    if (rc) log_debug("hearth: no CFI for %s: %s", path, herr_msg(&e, rc));
    return c->ok ? &c->table : NULL;
}

void pl_unwind_note_pc(uint64_t pc)
{
    pl_modtab *t = atomic_load_explicit(&current, memory_order_acquire);
    if (!t) return;
    const unw_module *m = unw_module_find(t->mods, t->n, pc);
    if (!m || m->table) return;
    size_t i = (size_t)(m - t->mods);
    if (!(wanted[i / 64] & (1ull << (i % 64)))) {
        wanted[i / 64] |= 1ull << (i % 64);
        wanted_dirty = 1;
    }
}

int pl_unwind_dirty(void) { return wanted_dirty; }

static int mod_cmp(const void *a, const void *b)
{
    const unw_module *x = a, *y = b;
    return x->start < y->start ? -1 : x->start > y->start;
}

void pl_unwind_refresh(void)
{
    buf maps;
    buf_init(&maps, 4 << 20);
    if (buf_read_file(&maps, "/proc/self/maps") != 0) {
        buf_release(&maps);
        return;
    }
    uint64_t h = hash_bytes(maps.data, maps.len, 7);
    if (h == maps_hash && !wanted_dirty) {
        buf_release(&maps);
        return;
    }
    if (n_published >= PL_MAX_PUBLISH) {
        buf_release(&maps);
        return;
    }
    pl_modtab *old = atomic_load_explicit(&current, memory_order_acquire);
    pl_modtab *t = calloc(1, sizeof(*t));
    uint64_t again[PL_MAX_MODULES];  /* starts of modules whose table build was cancelled */
    size_t n_again = 0;
    if (!t) {
        buf_release(&maps);
        return;
    }
    char *line = maps.data;
    while (line && *line && t->n < PL_MAX_MODULES) {
        char *nl = strchr(line, '\n');
        if (nl) *nl = 0;
        unsigned long lo, hi, pgoff, inode;
        char perms[8];
        int path_at = 0;
        if (sscanf(line, "%lx-%lx %7s %lx %*s %lu %n", &lo, &hi, perms, &pgoff, &inode, &path_at) >= 5 &&
            perms[2] == 'x' && path_at > 0 && line[path_at] == '/' && pl_same_file(line + path_at, inode)) {
            const char *path = line + path_at;
            unw_module *m = &t->mods[t->n];
            m->start = lo;
            m->end = hi;
            m->table = NULL;
            if (elf_bias(path, lo, pgoff, &m->bias) == 0) {
                /* Keep the table if the old snapshot had it, or build it if wanted. */
                int want = 0;
                if (old) {
                    const unw_module *om = unw_module_find(old->mods, old->n, lo);
                    if (om && om->start == lo) {
                        size_t oi = (size_t)(om - old->mods);
                        if (om->table) m->table = om->table;
                        else if (wanted[oi / 64] & (1ull << (oi % 64))) want = 1;
                    }
                }
                int cancelled = 0;
                if (want) m->table = table_for(path, &cancelled);
                if (cancelled && n_again < PL_MAX_MODULES) again[n_again++] = lo;
                t->n++;
            }
        }
        line = nl ? nl + 1 : NULL;
    }
    buf_release(&maps);
    qsort(t->mods, t->n, sizeof(t->mods[0]), mod_cmp);
    memset(wanted, 0, sizeof(wanted));
    wanted_dirty = 0;
    /* cancelled builds: still wanted at the next refresh (a restarted session, say) */
    for (size_t k = 0; k < n_again; k++) {
        const unw_module *am = unw_module_find(t->mods, t->n, again[k]);
        if (!am) continue;
        size_t ai = (size_t)(am - t->mods);
        wanted[ai / 64] |= 1ull << (ai % 64);
        wanted_dirty = 1;
    }
    maps_hash = h;
    published[n_published++] = t;
    atomic_store_explicit(&current, t, memory_order_release);
}

void pl_unwind_release(void)
{
    /* Only at process teardown would freeing be safe; tables stay. */
}
