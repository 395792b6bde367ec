/*
 * t.h: the unit test harness. Each tests/test_*.c is one binary; TEST(name)
 * registers a case (a constructor adds it to a list), t_main.c runs them all,
 * prints one line per failure with both compared values, and ends with
 * "N passed, N failed". A failed ASSERT ends its case, not the binary.
 *
 * Test data: t_testdata("pprof/cpu.pb.gz") returns the path under
 * ../shared/testdata (or $HEARTH_TESTDATA); a missing file fails the case
 * with a clear message rather than skipping it.
 */
#ifndef HEARTH_TESTS_T_H
#define HEARTH_TESTS_T_H

#include <inttypes.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

typedef void (*t_fn)(void);
void t_register(const char *name, t_fn fn);
void t_fail(const char *file, int line, const char *fmt, ...) __attribute__((format(printf, 3, 4), noreturn));
/* Path to a shared test data file; fails the case if it does not exist. */
const char *t_testdata(const char *rel);
/* A fresh temporary directory for this case, removed at exit. */
const char *t_tmpdir(void);
/* Reads a whole file (NUL-terminated, *len set) or fails the case. Caller frees. */
char *t_read_file(const char *path, size_t *len);

#define TEST(name)                                                             \
    static void test_##name(void);                                             \
    __attribute__((constructor)) static void reg_##name(void) {                \
        t_register(#name, test_##name);                                        \
    }                                                                          \
    static void test_##name(void)

#define ASSERT(c)                                                              \
    do { if (!(c)) t_fail(__FILE__, __LINE__, "assertion failed: %s", #c); } while (0)
#define ASSERT_EQ(a, b)                                                        \
    do { long long _a = (long long)(a), _b = (long long)(b);                   \
         if (_a != _b) t_fail(__FILE__, __LINE__, "%s == %s: %lld != %lld",    \
                              #a, #b, _a, _b); } while (0)
#define ASSERT_NE(a, b)                                                        \
    do { long long _a = (long long)(a), _b = (long long)(b);                   \
         if (_a == _b) t_fail(__FILE__, __LINE__, "%s != %s: both %lld",       \
                              #a, #b, _a); } while (0)
#define ASSERT_OK(e)                                                           \
    do { long long _r = (long long)(e);                                        \
         if (_r != 0) t_fail(__FILE__, __LINE__, "%s returned %lld", #e, _r); } while (0)
#define ASSERT_STR(a, b)                                                       \
    do { const char *_a = (a), *_b = (b);                                      \
         if (!_a || !_b || strcmp(_a, _b) != 0)                                \
             t_fail(__FILE__, __LINE__, "%s == %s: \"%s\" != \"%s\"", #a, #b,  \
                    _a ? _a : "(null)", _b ? _b : "(null)"); } while (0)
#define ASSERT_CONTAINS(hay, needle)                                           \
    do { const char *_h = (hay), *_n = (needle);                               \
         if (!_h || !strstr(_h, _n))                                           \
             t_fail(__FILE__, __LINE__, "%s does not contain \"%s\"", #hay, _n); } while (0)

#endif
