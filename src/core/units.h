/*
 * units.h: parsing of the quantities users type: durations, byte sizes and
 * points in time, shared by every command-line flag, environment variable
 * and query parameter so "10s", "32MiB" and "now-1h" mean the same everywhere.
 */
#ifndef HEARTH_CORE_UNITS_H
#define HEARTH_CORE_UNITS_H

#include <stdint.h>

/*
 * Duration: a sequence of <number><unit>, units ns us µs ms s m h d w y
 * ("1h30m", "30d", "500ms"); a bare number is seconds. Returns 0 and
 * *ns, or HE_FORMAT.
 */
int parse_duration_ns(const char *s, int64_t *ns);
/* Size: "1024", "32MiB", "1.5GB", "64k" (k/K = KiB-style 1024 as curl does). */
int parse_size(const char *s, uint64_t *bytes);
/*
 * Time point, as Pyroscope reads `from`/`until`: "now", "now-1h", "now+5m",
 * a unix timestamp whose unit is guessed by magnitude (s, ms, µs or ns), or
 * RFC 3339 ("2026-11-21T10:00:00Z"). now_ns is the reference for "now".
 */
int parse_time_ns(const char *s, int64_t now_ns, int64_t *ns);
/* Unix timestamp of unknown unit -> ns, by magnitude (as Pyroscope does). */
int64_t unix_any_to_ns(int64_t v);
/* CLOCK_REALTIME in ns. */
int64_t now_ns(void);
/* CLOCK_MONOTONIC in ns. */
int64_t mono_ns(void);

#endif
