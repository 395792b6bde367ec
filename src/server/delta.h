/*
 * delta.h: server-side deltas of cumulative profiles pushed without
 * `__delta__="false"`, as Pyroscope's head does (pkg/phlaredb/delta.go).
 *
 * Which profiles: __name__="memory", sample types alloc_objects and
 * alloc_space (Go heap profiles are cumulative in those two; inuse_* are
 * gauges). For each (tenant, series labels, sample type) the server keeps
 * the highest value seen per stack. A profile then stores, per stack,
 * value - highest:
 *   - the first profile of a series only sets the baseline: its alloc_*
 *     values are dropped (Pyroscope drops that profile);
 *   - a stack whose value went down means the process restarted: the
 *     profile becomes the new baseline and its alloc_* values are dropped.
 * The state lives in memory only (as in Pyroscope's ingester); a restart
 * starts every series over with a baseline.
 */
#ifndef HEARTH_SERVER_DELTA_H
#define HEARTH_SERVER_DELTA_H

#include <stddef.h>

#include "core/err.h"
#include "profile/profile.h"

#define DELTA_MAX_SERIES 65536  /* series tracked; past it profiles are stored as sent */

typedef struct delta_state delta_state;

/* A new, empty state; never NULL (dies on OOM). */
delta_state *delta_new(void);
void delta_free(delta_state *d);

/*
 * 1 if a profile of this series (labels names[i]=values[i], __delta__
 * already removed) has sample types the server turns into deltas.
 */
int delta_applies(const char *const *names, const char *const *values, size_t n, const profile *p);

/*
 * What delta_apply changed, so that a request whose store write failed can
 * take its changes back (delta_rollback): else the client's retry would be
 * computed against values that were never stored and store zero deltas.
 */
typedef struct delta_undo delta_undo;
delta_undo *delta_undo_new(void);
void delta_undo_free(delta_undo *u);

/*
 * Turns p's cumulative sample types into deltas against the state of the
 * series (tenant + labels), updating the state; samples left all zero are
 * dropped (p may end with no samples: store nothing then). With u non-NULL
 * the changes are also recorded in u. Thread-safe. 0 or -ENOMEM.
 */
int delta_apply(delta_state *d, const char *tenant, const char *const *names, const char *const *values, size_t n,
                profile *p, delta_undo *u);

/*
 * Undoes the changes recorded in u, newest first, for every series no later
 * delta_apply has changed since (a series another request moved on keeps
 * its newer state). A series u created becomes new again: its next profile
 * is a baseline. u is emptied.
 */
void delta_rollback(delta_state *d, delta_undo *u);

#endif
