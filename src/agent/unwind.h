/*
 * unwind.h: DWARF CFI unwinding for x86-64 user stacks, usable both on a
 * stack copied by perf (PERF_SAMPLE_STACK_USER) and in-process from a signal
 * handler (libhearth.so).
 *
 * Two phases:
 *   1. unw_table_build*() parses .eh_frame (else .debug_frame) of one ELF file
 *      and runs every FDE's CFA program, keeping only what an x86-64 unwinder
 *      needs per row: how to compute the CFA (rsp+off or rbp+off), where the
 *      return address is saved (CFA+off) and where rbp is saved (CFA+off, or
 *      unchanged). Rows are sorted by address; a table is one flat array.
 *      This phase allocates and may take milliseconds: never in a signal
 *      handler.
 *   2. unw_find() and unw_step() only read the tables and call the caller's
 *      memory-read callback: no allocation, no locks, no libc calls, so they
 *      are async-signal-safe (as long as the read callback is).
 *
 * Addresses in a table are ELF virtual addresses of the file (as in its
 * symbol table); a module loaded at runtime has a bias (runtime = vaddr +
 * bias), which the caller computes from its mappings (unw_bias()).
 *
 * Where a pc has no CFI row (no table, JIT code, hand-written asm without
 * CFI) the step falls back to the frame pointer chain: ra = [rbp+8],
 * rbp' = [rbp], sp' = rbp+16.
 */
#ifndef HEARTH_AGENT_UNWIND_H
#define HEARTH_AGENT_UNWIND_H

#include <stddef.h>
#include <stdint.h>

#include "core/err.h"

/* How the CFA is computed in a row. */
enum unw_cfa_kind {
    UNW_CFA_SP = 0,    /* CFA = rsp + cfa_off */
    UNW_CFA_FP = 1,    /* CFA = rbp + cfa_off */
    UNW_CFA_PLT = 2,   /* the PLT's DW_CFA_def_cfa_expression: rsp + 8 (+8 past the push) */
    UNW_CFA_UNDEF = 3, /* outermost frame (RA undefined): stop */
    UNW_CFA_FP_DEREF = 4, /* CFA = [rbp + cfa_off] (stack realignment in main) */
};

/* One row: from vaddr `pc` up to the next row's pc, these rules hold. */
typedef struct unw_row {
    uint64_t pc;
    int32_t cfa_off;
    int16_t fp_off;   /* rbp saved at CFA + fp_off; 0 = rbp unchanged */
    int8_t ra_off;    /* RA saved at CFA + ra_off (always -8 from gcc/clang) */
    uint8_t cfa_kind; /* enum unw_cfa_kind */
} unw_row;            /* 16 bytes: a big binary has a million rows */

/*
 * The rows of one ELF file, sorted by pc, one row per pc. A gap between FDEs
 * (or a rule we do not handle) is a row with cfa_kind UNW_CFA_UNDEF and
 * ra_off 0 ("no information here": unw_find returns NULL for it, the step
 * falls back to frame pointers), so lookups never attribute one function's
 * rules to the space after it.
 */
typedef struct unw_table {
    unw_row *rows;
    size_t n_rows;
    uint64_t lo, hi;  /* vaddr range covered by FDEs */
    int from_debug_frame;
    /*
     * Coarse index: idx[k] is the row covering rows[0].pc + (k << idx_shift),
     * so a lookup binary-searches only rows idx[k]..idx[k+1] (a cache line or
     * two) instead of the whole table (~17 cold lines for libc). At most
     * n_rows / 2 entries; NULL for small tables.
     */
    uint32_t *idx;
    size_t n_idx;
    unsigned idx_shift;
} unw_table;

/* Caps: a table larger than this (rows) fails with HE_TOOBIG. */
#define UNW_MAX_ROWS (16u << 20)

/*
 * Builds the table of the ELF file at path (a path visible to this process,
 * e.g. /proc/PID/root/usr/lib/libc.so.6). Returns 0, a negative errno
 * (file), HE_FORMAT (corrupt CFI, e explains which FDE), HE_NOTFOUND (no
 * .eh_frame or .debug_frame) or HE_TOOBIG. On success the caller owns t and
 * frees it with unw_table_release(). Not async-signal-safe.
 */
int unw_table_build_file(unw_table *t, const char *path, herr *e);
/*
 * Same, given up with -ECANCELED (t left empty) once *cancel is nonzero:
 * checked before the first CFI entry and every 256 after (not during the
 * sort that follows the parse); cancel may be NULL.
 */
int unw_table_build_file_cancel(unw_table *t, const char *path, const _Atomic int *cancel, herr *e);
/* Same from an open file descriptor (not closed). */
int unw_table_build_fd(unw_table *t, int fd, herr *e);
void unw_table_release(unw_table *t);

/*
 * The row covering vaddr, or NULL when none does. Async-signal-safe.
 */
const unw_row *unw_find(const unw_table *t, uint64_t vaddr);

/*
 * A module as the unwinder sees it: runtime range [start, end) of its
 * executable mapping and bias (runtime address = table vaddr + bias). table
 * may be NULL (no CFI: frame pointers only).
 */
typedef struct unw_module {
    uint64_t start, end;
    int64_t bias;
    const unw_table *table;
} unw_module;

/*
 * bias for a module whose file offset `pgoff` is mapped at runtime address
 * `start`, given the PT_LOAD segment containing that offset (p_offset,
 * p_vaddr): bias = start - pgoff - (p_vaddr - p_offset).
 */
static inline int64_t unw_bias(uint64_t start, uint64_t pgoff, uint64_t p_offset, uint64_t p_vaddr)
{
    return (int64_t)(start - pgoff) - (int64_t)(p_vaddr - p_offset);
}

/* The x86-64 registers an unwind needs. */
typedef struct unw_regs {
    uint64_t ip, sp, bp;
} unw_regs;

/*
 * Reads the 8 bytes at addr into *out. Returns 0, or -1 when addr is not
 * readable (outside the copied stack, unmapped). Must be async-signal-safe
 * when the unwind runs in a signal handler.
 */
typedef int (*unw_read_fn)(void *ctx, uint64_t addr, uint64_t *out);

/*
 * One step: from the registers of a frame to those of its caller. mods is
 * sorted by start (non-overlapping); `first` is non-zero for the innermost
 * frame (its ip is exact; for outer frames ip is a return address, so the
 * lookup uses ip - 1). Returns 1 when the caller's registers are in *r, 0 at
 * the end of the stack (RA undefined or zero), -1 when memory could not be
 * read or the result makes no progress (sp not increasing): the stack so far
 * is still right, just incomplete. Async-signal-safe.
 */
int unw_step(const unw_module *mods, size_t n_mods, unw_regs *r, int first,
             unw_read_fn read, void *ctx);

/*
 * One step up the frame pointer chain alone (what unw_step does where a
 * pc has no CFI): for code known to keep frame pointers. Same results.
 */
int unw_step_fp(unw_regs *r, unw_read_fn read, void *ctx);

/*
 * Unwinds from r, writing up to max pcs (innermost first; pcs[0] = r->ip,
 * later entries are return addresses). Returns the number written.
 * Async-signal-safe.
 */
size_t unw_backtrace(const unw_module *mods, size_t n_mods, unw_regs r,
                     unw_read_fn read, void *ctx, uint64_t *pcs, size_t max);

/* The module containing runtime address pc, or NULL. Async-signal-safe. */
const unw_module *unw_module_find(const unw_module *mods, size_t n_mods, uint64_t pc);

/*
 * The modules of this process (executable, shared libraries; not the vDSO),
 * one per executable PT_LOAD segment, sorted by start, each with its CFI
 * table (NULL when the file has none): what an in-process unwinder
 * (libhearth.so) passes to unw_step/unw_backtrace. Built with
 * dl_iterate_phdr, so libraries loaded later need a new call. Not
 * async-signal-safe; the result is read-only and safe to use from a signal
 * handler until unw_self_release(). Returns 0 or -ENOMEM (no allocation
 * aborts: h* allocators).
 */
typedef struct unw_self {
    unw_module *mods;
    size_t n_mods;
    unw_table *tables;  /* tables[i] backs mods[i].table when set */
} unw_self;
int unw_self_load(unw_self *s, herr *e);
void unw_self_release(unw_self *s);

#endif
