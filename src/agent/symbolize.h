/*
 * symbolize.h: runtime addresses -> function names, file:line and inlined
 * frames, for ELF files (elfutils libdwfl/libdw), the kernel
 * (/proc/kallsyms) and JITs (/tmp/perf-PID.map).
 *
 * A sym_module is one ELF file, opened once and cached by build ID (or by
 * device+inode+size+mtime when it has none), so the same libc seen through
 * many processes and containers is read once. Debug information is found the
 * way gdb does: the file itself, then /usr/lib/debug/.build-id/xx/rest.debug,
 * then .gnu_debuglink next to the file, in .debug/ and under /usr/lib/debug.
 *
 * Lookups take a file offset (runtime address - mapping start + mapping
 * pgoff, exactly what perf's mmap records give), so callers need not know
 * about load biases. Results are cached per (module, offset).
 *
 * Memory: all strings in a result live in the symbolizer's string table and
 * stay valid until sym_trim() or sym_free(). Caches are bounded: at most
 * max_modules open files (least recently used closed) and max_cache_entries
 * cached addresses; sym_trim() drops caches past their bound and must only be
 * called when no result strings are held (e.g. after each upload). A module
 * whose file no lookup has had to read during the last two trim periods
 * (every address it is asked for is cached) has its file and debug data
 * closed by sym_trim(); the sym_module stays valid and reopens them on the
 * next uncached address.
 *
 * Not thread-safe: one symbolizer per thread, or a lock around it.
 */
#ifndef HEARTH_AGENT_SYMBOLIZE_H
#define HEARTH_AGENT_SYMBOLIZE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "core/err.h"

#define SYM_MAX_INLINE 16

typedef struct sym_frame {
    const char *function;  /* demangled; NULL if unknown */
    const char *mangled;   /* linkage name as in the file; NULL if same/unknown */
    const char *file;      /* source file; NULL if unknown */
    int line;              /* 0 if unknown */
} sym_frame;

typedef struct sym_result {
    /* innermost (inlined callee) first; frames[n-1] is the real function */
    sym_frame frames[SYM_MAX_INLINE];
    int n;                 /* 0 when nothing is known: show module+0xoffset */
    const char *module;    /* file path (as passed to sym_module_get) */
    const char *build_id;  /* hex, or NULL */
    uint64_t vaddr;        /* ELF virtual address (offset in the module's address space) */
    int is_kernel;
} sym_result;

typedef struct sym_opts {
    size_t max_modules;        /* open ELF files kept; default 256 */
    size_t max_cache_entries;  /* cached addresses; default 256K */
    const char *debug_dir;     /* default "/usr/lib/debug" */
    int no_dwarf;              /* symbols only (no file:line, no inlines) */
    /*
     * Symbols only for the C library and the dynamic loader (by file name:
     * libc.so.*, libc-2.*, ld-linux*, ld-2.*, ld-musl-*, ld64.so.*): with
     * their debug package installed, the first lookup with
     * lines costs ~55 ms of CPU and ~15 MiB (libdw inflates every debug
     * section of the file), and every process has their frames at the root
     * of its stacks. For libhearth.so, which pays it in each process it
     * profiles; names (from the debug file's symbol table) stay.
     */
    int libc_names_only;
    /*
     * Ask debuginfod (libdebuginfod, DEBUGINFOD_URLS) for a debug file not
     * found on this machine. Off: the search stays local and libdebuginfod
     * is never loaded. The caller decides (the agent: DEBUGINFOD_URLS set;
     * libhearth.so: never, it runs inside someone else's program). The
     * first symbolizer of a process decides for all of them.
     */
    int debuginfod;
} sym_opts;

typedef struct symbolizer symbolizer;
typedef struct sym_module sym_module;

/*
 * A new symbolizer (o may be NULL for defaults), or NULL when out of memory.
 * No function here aborts on out-of-memory (libhearth.so runs it inside its
 * host): lookups then return fewer frames, sym_module_get -ENOMEM.
 */
symbolizer *sym_new(const sym_opts *o);
void sym_free(symbolizer *s);
/*
 * Drops caches that are past their bounds (and closes least recently used
 * modules past max_modules). May invalidate every string returned so far:
 * copy what you keep before calling it.
 */
void sym_trim(symbolizer *s);

/* Modules whose file and debug data are open now (the rest are cached or idle). */
size_t sym_open_modules(const symbolizer *s);

/*
 * The module for the ELF file at path (open it through /proc/PID/root for
 * other mount namespaces). display is the name to report (e.g. the path as
 * the process sees it); NULL means path. Returns 0 with *out set (owned by s,
 * valid until sym_free or until evicted by sym_trim), or a negative errno /
 * HE_FORMAT (not ELF) with e explaining. A failed open is remembered, so a
 * missing file costs one syscall per trim period.
 */
int sym_module_get(symbolizer *s, const char *path, const char *display,
                   sym_module **out, herr *e);

/* The module's hex build ID, or NULL. */
const char *sym_module_build_id(const sym_module *m);
/* 1 when lookups in m give names only (no_dwarf, or libc_names_only and m is libc or the loader). */
int sym_module_names_only(const symbolizer *s, const sym_module *m);

/*
 * Symbolizes file offset off in m. Always returns 0 and fills r; r->n == 0
 * when no symbol covers the address (print module+0xoffset). For a return
 * address the caller passes off - 1 so the call's line is reported.
 */
int sym_lookup(symbolizer *s, sym_module *m, uint64_t off, sym_result *r);

/*
 * Kernel: symbolizes addr with /proc/kallsyms (read once, refreshed by
 * sym_trim). r->is_kernel = 1; r->n = 0 when kallsyms hides addresses
 * (kptr_restrict) or addr is outside every symbol.
 */
int sym_kernel_lookup(symbolizer *s, uint64_t addr, sym_result *r);

/*
 * JIT: symbolizes addr with /tmp/perf-PID.map (read from root, which is ""
 * or "/proc/PID/root" for a process in another mount namespace). Returns
 * 0 with r->n = 1 when found, HE_NOTFOUND otherwise.
 */
int sym_perfmap_lookup(symbolizer *s, pid_t pid, const char *root, uint64_t addr, sym_result *r);
/* Forgets the perf map of pid (process exited). */
void sym_perfmap_forget(symbolizer *s, pid_t pid);

/*
 * Demangles a C++ (Itanium, via libstdc++'s __cxa_demangle loaded at run
 * time) or Rust name (legacy, with its ::h<hash> suffix removed; v0 "_R"
 * names by our own parser) into out. Returns out, or NULL when name is not
 * mangled, cannot be parsed or does not fit.
 */
char *sym_demangle(const char *name, char *out, size_t out_size);

#endif
