/*
 * unwind.h (preload): stack capture inside libhearth.so, on top of the
 * agent's CFI unwinder (agent/unwind.h).
 *
 * The collector thread publishes an immutable module table (runtime ranges,
 * biases, CFI tables of the modules where samples land); the signal handler
 * and the heap slow path read the current table with one atomic load and
 * unwind with unw_step(), reading memory only inside the thread's known
 * stack bounds (or through process_vm_readv, which fails instead of
 * faulting, when the bounds are unknown). Old tables are never freed while
 * the process runs, so a handler can never see freed memory; rebuilds are
 * capped, which bounds that memory.
 */
#ifndef HEARTH_PRELOAD_UNWIND_H
#define HEARTH_PRELOAD_UNWIND_H

#include <stddef.h>
#include <stdint.h>

#include "agent/unwind.h"

/*
 * Unwinds from regs (the interrupted context: ip exact) into pcs (leaf
 * first). Returns the number of pcs; *truncated is set when the stack went
 * deeper than max. Async-signal-safe.
 */
size_t pl_unwind_regs(const unw_regs *regs, uint64_t *pcs, size_t max, uint8_t *truncated);

/*
 * Notes that pc was seen in a sample, so the module holding it gets a CFI
 * table at the next pl_unwind_refresh(). Collector thread only.
 */
void pl_unwind_note_pc(uint64_t pc);
/* 1 when noted pcs wait for a pl_unwind_refresh(). Collector thread only. */
int pl_unwind_dirty(void);
/* 1 if path is still the file with this inode (as /proc/self/maps lists it). */
int pl_same_file(const char *path, unsigned long inode);

#endif
