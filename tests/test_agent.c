/*
 * test_agent.c: unit tests of the agent's reusable parts: the CFI unwinder
 * (in-process, through functions built without frame pointers), the
 * symbolizer (names, file:line, inlined frames, demangling, kallsyms, JIT
 * maps), the uploader (request shape against a real HTTP server, bounded
 * queue against a dead one) and per-process perf events (root only).
 */
#include "core/common.h"

#include <dlfcn.h>
#include <gelf.h>
#include <libelf.h>
#include <link.h>
#include <microhttpd.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "agent/collect.h"
#include "agent/perf.h"
#include "agent/symbolize.h"
#include "agent/unwind.h"
#include "agent/upload.h"
#include "core/buf.h"
#include "t.h"

/* ---- in-process unwinding ---- */

static int read_self(void *ctx, uint64_t addr, uint64_t *out)
{
    (void)ctx;
    if (addr < 4096) return -1;
    memcpy(out, (const void *)(uintptr_t)addr, 8);
    return 0;
}

static uint64_t captured_pcs[64];
static size_t n_captured;
static unw_self g_self;

/*
 * t_asm_mid(fn) calls fn without ever touching rbp and without a frame
 * pointer, described only by CFI (.cfi_adjust_cfa_offset): a frame pointer
 * unwinder walking out of fn skips t_asm_mid's caller; CFI does not.
 */
void t_asm_mid(void (*fn)(void));
__asm__(".text\n"
        ".globl t_asm_mid\n"
        ".type t_asm_mid,@function\n"
        "t_asm_mid:\n"
        ".cfi_startproc\n"
        "  sub $24, %rsp\n"
        ".cfi_adjust_cfa_offset 24\n"
        "  call *%rdi\n"
        "  add $24, %rsp\n"
        ".cfi_adjust_cfa_offset -24\n"
        "  ret\n"
        ".cfi_endproc\n"
        ".size t_asm_mid, .-t_asm_mid\n");

__attribute__((noinline)) static void t_leaf(void)
{
    unw_regs r;
    __asm__ volatile("lea 0(%%rip), %0\n\tmov %%rsp, %1\n\tmov %%rbp, %2" : "=r"(r.ip), "=r"(r.sp), "=r"(r.bp));
    n_captured = unw_backtrace(g_self.mods, g_self.n_mods, r, read_self, NULL, captured_pcs, 64);
    __asm__ volatile("" ::: "memory");
}

__attribute__((noinline)) static void t_top(volatile int *x)
{
    (*x)++;
    t_asm_mid(t_leaf);
    (*x)++;
}

/* Name of the function containing pc (a return address unless first). */
static const char *name_of(symbolizer *s, uint64_t pc, int first)
{
    Dl_info di;
    sym_module *m;
    sym_result r;
    if (!dladdr((void *)(uintptr_t)pc, &di) || !di.dli_fname) return "?";
    const char *path = di.dli_fname[0] == '/' ? di.dli_fname : "/proc/self/exe";
    if (sym_module_get(s, path, NULL, &m, NULL)) return "?";
    /* file offset: dladdr gives the load base; the test binary is PIE, so offset == vaddr for text here */
    FILE *f = fopen("/proc/self/maps", "r");
    char line[1024];
    uint64_t off = 0;
    int found = 0;
    while (f && fgets(line, sizeof(line), f)) {
        uint64_t lo, hi, pgoff;
        if (sscanf(line, "%" SCNx64 "-%" SCNx64 " %*s %" SCNx64, &lo, &hi, &pgoff) == 3 && pc >= lo && pc < hi) {
            off = pc - lo + pgoff;
            found = 1;
            break;
        }
    }
    if (f) fclose(f);
    if (!found) return "?";
    sym_lookup(s, m, first ? off : off - 1, &r);
    return r.n ? r.frames[r.n - 1].function : "?";
}

TEST(unwind_in_process_through_frameless_functions)
{
    volatile int x = 0;
    symbolizer *s = sym_new(NULL);
    ASSERT_OK(unw_self_load(&g_self, NULL));
    ASSERT(g_self.n_mods > 1);
    t_top(&x);
    ASSERT(n_captured >= 4);
    ASSERT_STR(name_of(s, captured_pcs[0], 1), "t_leaf");
    ASSERT_STR(name_of(s, captured_pcs[1], 0), "t_asm_mid");
    ASSERT_STR(name_of(s, captured_pcs[2], 0), "t_top");
    ASSERT_STR(name_of(s, captured_pcs[3], 0), "test_unwind_in_process_through_frameless_functions");
    /* And on through the harness to main. */
    int saw_main = 0;
    for (size_t i = 4; i < n_captured; i++) saw_main |= !strcmp(name_of(s, captured_pcs[i], 0), "main");
    ASSERT(saw_main);
    sym_free(s);
    unw_self_release(&g_self);
}

TEST(unwind_without_tables_loses_frameless_callers)
{
    /* The same unwind with frame pointers only must lose t_top: proves the CFI path is what works. */
    volatile int x = 0;
    symbolizer *s = sym_new(NULL);
    ASSERT_OK(unw_self_load(&g_self, NULL));
    for (size_t i = 0; i < g_self.n_mods; i++) g_self.mods[i].table = NULL;
    t_top(&x);
    int saw_top = 0, saw_test = 0;
    for (size_t i = 1; i < n_captured; i++) {
        saw_top |= !strcmp(name_of(s, captured_pcs[i], 0), "t_top");
        saw_test |= !strcmp(name_of(s, captured_pcs[i], 0), "test_unwind_without_tables_loses_frameless_callers");
    }
    ASSERT(!saw_top);
    ASSERT(saw_test); /* the walk itself went on */
    sym_free(s);
    unw_self_release(&g_self);
}

TEST(unwind_table_rows_sorted_and_found)
{
    unw_table t;
    herr e = {0};
    ASSERT_OK(unw_table_build_file(&t, "/proc/self/exe", &e));
    ASSERT(t.n_rows > 10);
    for (size_t i = 1; i < t.n_rows; i++) ASSERT(t.rows[i - 1].pc < t.rows[i].pc);
    /* t_leaf's first instruction: CFA = rsp + 8, RA at CFA - 8. */
    Dl_info di;
    ASSERT(dladdr((void *)t_leaf, &di));
    uint64_t vaddr = (uint64_t)(uintptr_t)t_leaf - (uint64_t)(uintptr_t)di.dli_fbase;
    const unw_row *row = unw_find(&t, vaddr);
    ASSERT(row != NULL);
    ASSERT_EQ(row->cfa_kind, UNW_CFA_SP);
    ASSERT_EQ(row->cfa_off, 8);
    ASSERT_EQ(row->ra_off, -8);
    ASSERT(unw_find(&t, 0) == NULL);
    unw_table_release(&t);
}

TEST(unwind_table_covers_libc_function_entries)
{
    /* At any function's first instruction the CFA is rsp + 8 and the RA is at CFA - 8. */
    void *fns[] = {(void *)qsort, (void *)strtol, (void *)fopen, (void *)getpid, (void *)pthread_create,
                   (void *)snprintf, (void *)malloc, (void *)usleep};
    Dl_info di;
    unw_table t;
    herr e = {0};
    ASSERT(dladdr(fns[0], &di) && di.dli_fname);
    ASSERT_OK(unw_table_build_file(&t, di.dli_fname, &e));
    ASSERT(t.n_rows > 1000);
    for (size_t i = 0; i < ARRAY_SIZE(fns); i++) {
        Dl_info fi;
        ASSERT(dladdr(fns[i], &fi));
        if (strcmp(fi.dli_fname, di.dli_fname)) continue; /* not in libc on this system */
        const unw_row *row = unw_find(&t, (uint64_t)(uintptr_t)fns[i] - (uint64_t)(uintptr_t)fi.dli_fbase);
        if (!row) t_fail(__FILE__, __LINE__, "no CFI row for %s in %s", fi.dli_sname ? fi.dli_sname : "?", di.dli_fname);
        ASSERT_EQ(row->cfa_kind, UNW_CFA_SP);
        ASSERT_EQ(row->cfa_off, 8);
        ASSERT_EQ(row->ra_off, -8);
    }
    unw_table_release(&t);
}

/* A build given up by its cancel flag leaves nothing; an unset flag changes nothing. */
TEST(unwind_table_build_cancel)
{
    Dl_info di;
    unw_table full, t;
    herr e = {0};
    _Atomic int cancel = 0;
    ASSERT(dladdr((void *)fopen, &di) && di.dli_fname);
    ASSERT_OK(unw_table_build_file(&full, di.dli_fname, &e));
    ASSERT_OK(unw_table_build_file_cancel(&t, di.dli_fname, &cancel, &e));
    ASSERT_EQ(t.n_rows, full.n_rows);
    ASSERT(memcmp(t.rows, full.rows, full.n_rows * sizeof(full.rows[0])) == 0);
    unw_table_release(&t);
    atomic_store(&cancel, 1);
    ASSERT_EQ(unw_table_build_file_cancel(&t, di.dli_fname, &cancel, &e), -ECANCELED);
    ASSERT_EQ(t.n_rows, 0);
    ASSERT(t.rows == NULL);
    unw_table_release(&full);
}

/* The row covering vaddr by a plain binary search over all rows: what unw_find must agree with. */
static const unw_row *find_by_search(const unw_table *t, uint64_t vaddr)
{
    size_t lo = 0, hi = t->n_rows;
    if (!t->n_rows || vaddr < t->rows[0].pc) return NULL;
    while (hi - lo > 1) {
        size_t mid = lo + (hi - lo) / 2;
        if (t->rows[mid].pc <= vaddr) lo = mid; else hi = mid;
    }
    if (t->rows[lo].cfa_kind == UNW_CFA_UNDEF && t->rows[lo].ra_off == 0) return NULL;
    return &t->rows[lo];
}

TEST(unwind_table_index_agrees_with_a_full_search)
{
    /* libc's table has an index; every row start, the byte before it, and random addresses across and past it */
    Dl_info di;
    unw_table t;
    herr e = {0};
    uint64_t x = 0x9e3779b97f4a7c15ULL;
    ASSERT(dladdr((void *)qsort, &di) && di.dli_fname);
    ASSERT_OK(unw_table_build_file(&t, di.dli_fname, &e));
    ASSERT(t.idx != NULL);
    ASSERT(t.n_idx > 1 && t.n_idx <= t.n_rows / 2);
    for (size_t i = 0; i < t.n_rows; i++) {
        ASSERT(unw_find(&t, t.rows[i].pc) == find_by_search(&t, t.rows[i].pc));
        ASSERT(unw_find(&t, t.rows[i].pc - 1) == find_by_search(&t, t.rows[i].pc - 1));
    }
    uint64_t span = t.rows[t.n_rows - 1].pc - t.rows[0].pc + 4096;
    for (int i = 0; i < 200000; i++) {
        x ^= x << 13; x ^= x >> 7; x ^= x << 17;
        uint64_t a = t.rows[0].pc - 64 + x % (span + 128);
        ASSERT(unw_find(&t, a) == find_by_search(&t, a));
    }
    ASSERT(unw_find(&t, UINT64_MAX) == find_by_search(&t, UINT64_MAX));
    unw_table_release(&t);
}

TEST(unwind_table_bad_input)
{
    unw_table t;
    herr e = {0};
    char path[512];
    snprintf(path, sizeof(path), "%s/notelf", t_tmpdir());
    FILE *f = fopen(path, "w");
    fputs("this is not an ELF file at all", f);
    fclose(f);
    ASSERT(unw_table_build_file(&t, path, &e) < 0);
    ASSERT_CONTAINS(e.msg, "ELF");
    herr_clear(&e);
    ASSERT(unw_table_build_file(&t, "/nonexistent/file", &e) < 0);
    ASSERT_CONTAINS(e.msg, "/nonexistent/file");
}

/* ---- symbolizer ---- */

__attribute__((always_inline)) static inline uint64_t inlined_pc(void)
{
    uint64_t pc;
    __asm__ volatile("lea 0(%%rip), %0" : "=r"(pc)); /* LINE_INLINED_PC */
    return pc;
}

__attribute__((noinline)) static uint64_t outer_with_inline(void)
{
    return inlined_pc() + 0; /* LINE_CALLS_INLINED */
}

static int line_of(const char *marker)
{
    size_t n;
    char *src = t_read_file(__FILE__, &n);
    int line = 1;
    char *hit = strstr(src, marker);
    /* skip the occurrence inside line_of's callers: the first is the real one (above) */
    for (char *p = src; hit && p < hit; p++) line += *p == '\n';
    free(src);
    return hit ? line : -1;
}

TEST(symbolize_inlined_frames_with_lines)
{
    symbolizer *s = sym_new(NULL);
    sym_module *m;
    sym_result r;
    herr e = {0};
    uint64_t pc = outer_with_inline();
    Dl_info di;
    ASSERT(dladdr((void *)(uintptr_t)pc, &di));
    ASSERT_OK(sym_module_get(s, "/proc/self/exe", "test_agent", &m, &e));
    /* PIE: the first PT_LOAD is at offset 0 / vaddr 0, so file offset == pc - base for text.
     * pc is the address after the lea: look up its last byte, as for a return address. */
    ASSERT_OK(sym_lookup(s, m, pc - 1 - (uint64_t)(uintptr_t)di.dli_fbase, &r));
    ASSERT_EQ(r.n, 2);
    ASSERT_STR(r.frames[0].function, "inlined_pc");
    ASSERT_EQ(r.frames[0].line, line_of("LINE_INLINED_PC"));
    ASSERT_CONTAINS(r.frames[0].file, "test_agent.c");
    ASSERT_STR(r.frames[1].function, "outer_with_inline");
    ASSERT_EQ(r.frames[1].line, line_of("LINE_CALLS_INLINED"));
    ASSERT_STR(r.module, "test_agent");
    ASSERT(r.build_id != NULL && strlen(r.build_id) >= 16);
    /* An offset past every symbol gives no frames, not a wrong name. */
    ASSERT_OK(sym_lookup(s, m, 0x7fffffff, &r));
    ASSERT_EQ(r.n, 0);
    sym_free(s);
}

/*
 * libc_names_only: a libc address gets its function name and no line (no
 * DWARF opened); without it the same address gets its line wherever libc's
 * debug information is installed (libc6-dbg), which is what makes this
 * test able to fail there.
 */
/* The path /proc/self/maps gives for the mapping holding addr (what libhearth symbolizes by), or "". */
static void maps_path_of(const void *addr, char *out, size_t size)
{
    FILE *f = fopen("/proc/self/maps", "r");
    char line[1024];
    out[0] = 0;
    if (!f) return;
    while (fgets(line, sizeof line, f)) {
        unsigned long lo, hi;
        int at = 0;
        if (sscanf(line, "%lx-%lx %*s %*s %*s %*s %n", &lo, &hi, &at) >= 2 && at > 0 &&
            (uintptr_t)addr >= lo && (uintptr_t)addr < hi) {
            snprintf(out, size, "%s", line + at);
            out[strcspn(out, "\n")] = 0;
            break;
        }
    }
    fclose(f);
}

/*
 * libc_names_only: a libc address gets its function name and no line (no
 * DWARF opened); without it the same address gets its line wherever libc's
 * debug information is installed (libc6-dbg), which is what makes this
 * test able to fail there. libc is named as /proc/self/maps names it (as
 * libhearth sees it: libc.so.6, or libc-2.31.so before glibc 2.34), and its
 * own fopen is used (under ASan, &fopen is the sanitizer's interceptor).
 */
TEST(symbolize_libc_names_only)
{
    void *libc = dlopen("libc.so.6", RTLD_LAZY | RTLD_NOLOAD);
    ASSERT(libc != NULL);
    void *fn = dlsym(libc, "fopen");
    Dl_info di;
    char path[1024];
    ASSERT(fn && dladdr(fn, &di));
    maps_path_of(fn, path, sizeof path);
    ASSERT(path[0] == '/');
    uint64_t off = (uint64_t)(uintptr_t)fn - (uint64_t)(uintptr_t)di.dli_fbase + 4;
    sym_result r;
    sym_module *m;
    herr e = {0};
    int lines_elsewhere = 0;
    for (int names_only = 0; names_only <= 1; names_only++) {
        sym_opts o = {0};
        o.libc_names_only = names_only;
        symbolizer *s = sym_new(&o);
        ASSERT_OK(sym_module_get(s, path, NULL, &m, &e));
        ASSERT_OK(sym_lookup(s, m, off, &r));
        ASSERT(r.n >= 1);
        ASSERT_STR(r.frames[r.n - 1].function, "fopen");
        if (!names_only) {
            lines_elsewhere = r.frames[0].line > 0;
        } else {
            ASSERT_EQ(r.n, 1);
            ASSERT(r.frames[0].file == NULL);
            ASSERT_EQ(r.frames[0].line, 0);
        }
        sym_free(s);
    }
    dlclose(libc);
    if (!lines_elsewhere) printf("  (libc has no debug information here: only the names-only half is checked)\n");
}

/* ---- separate debug files ---- */

/* Runs a shell command line; fails the test (with the line) when it fails. */
static void sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void sh(const char *fmt, ...)
{
    char cmd[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    int rc = system(cmd);
    if (rc != 0) t_fail(__FILE__, __LINE__, "command failed (%d): %s", rc, cmd);
}

/* The ELF virtual address of symbol name in file (from nm), 0 if absent. */
static uint64_t nm_addr(const char *file, const char *name)
{
    char cmd[2048], line[512];
    uint64_t addr = 0;
    snprintf(cmd, sizeof cmd, "nm '%s'", file);
    FILE *f = popen(cmd, "r");
    if (!f) return 0;
    while (fgets(line, sizeof line, f)) {
        char type, sym[256];
        unsigned long long a;
        if (sscanf(line, "%llx %c %255s", &a, &type, sym) == 3 && strcmp(sym, name) == 0) addr = a;
    }
    pclose(f);
    return addr;
}

/*
 * prog built with -g in a new directory NAME (its path put in dir), its
 * DWARF moved to a separate file (`objcopy --only-keep-debug`) placed at
 * dir/DEBUG_REL and named by a
 * .gnu_debuglink in the stripped prog. build_id: 0 links with
 * --build-id=none, so the debug file is matched by the link's CRC.
 * Returns the vaddr of debug_target (offset == vaddr for gcc's text).
 */
static const char DEBUG_PROG_SRC[] =
    "int debug_target(int x)\n"
    "{\n"
    "    return x * 3 + 1; /* line 3 */\n"
    "}\n"
    "int main(int argc, char **argv) { (void)argv; return debug_target(argc); }\n";

static uint64_t make_split_prog(char *dir, size_t dir_size, const char *name, const char *debug_rel, int build_id)
{
    char src[1024];
    FILE *f;
    snprintf(dir, dir_size, "%s/%s", t_tmpdir(), name);
    sh("mkdir -p '%s'", dir);
    snprintf(src, sizeof src, "%s/prog.c", dir);
    ASSERT((f = fopen(src, "w")) != NULL);
    fprintf(f, "%s/* %s */\n", DEBUG_PROG_SRC, name);  /* each build differs */
    fclose(f);
    sh("cd '%s' && cc -g -O0 %s -o prog prog.c && objcopy --only-keep-debug prog prog.debug"
       " && objcopy --strip-debug --add-gnu-debuglink=prog.debug prog"
       " && mkdir -p \"$(dirname '%s')\" && { [ '%s' = prog.debug ] || mv prog.debug '%s'; }",
       dir, build_id ? "-Wl,--build-id" : "-Wl,--build-id=none", debug_rel, debug_rel, debug_rel);
    char prog[1024];
    snprintf(prog, sizeof prog, "%s/prog", dir);
    uint64_t a = nm_addr(prog, "debug_target");
    ASSERT(a != 0);
    return a;
}

/*
 * file:line of debug_target's body through the symbolizer, or line 0 when
 * no debug file was used. tree: the symbolizer's debug directory (NULL: an
 * empty one, so that nothing is found by build ID).
 */
static int split_prog_line(const char *dir, uint64_t addr, const char *tree, const char **file)
{
    sym_opts o = {0};
    char nodebug[1024], prog[1024];
    snprintf(nodebug, sizeof nodebug, "%s/no-debug-tree", dir);
    o.debug_dir = tree ? tree : nodebug;
    symbolizer *s = sym_new(&o);
    sym_module *m;
    sym_result r;
    herr e = {0};
    snprintf(prog, sizeof prog, "%s/prog", dir);
    ASSERT_OK(sym_module_get(s, prog, "prog", &m, &e));
    ASSERT_OK(sym_lookup(s, m, addr + 8, &r));  /* inside the body, past the prologue */
    ASSERT(r.n >= 1);
    ASSERT_STR(r.frames[r.n - 1].function, "debug_target");  /* .symtab survives the strip */
    int line = r.frames[r.n - 1].line;
    static char kept[256];
    snprintf(kept, sizeof kept, "%s", r.frames[r.n - 1].file ? r.frames[r.n - 1].file : "");
    *file = kept;
    sym_free(s);
    return line;
}

/*
 * A stripped program finds its DWARF through .gnu_debuglink beside it, in
 * its .debug/ directory or under the debug tree (whole directory, then
 * shortened), matched by build ID or (without one) by CRC; a
 * debug file of another build under the linked name is not used; and none
 * of this loads libdebuginfod (and with it libcurl-gnutls and ~30 more
 * libraries) when no debuginfod server is configured.
 */
TEST(symbolize_separate_debug_file_by_debuglink)
{
    char dir[1024], other[1024];
    const char *file;
    unsetenv("DEBUGINFOD_URLS");
    uint64_t a = make_split_prog(dir, sizeof dir, "split-beside", "prog.debug", 1);
    ASSERT_EQ(split_prog_line(dir, a, NULL, &file), 3);
    ASSERT_CONTAINS(file, "prog.c");
    a = make_split_prog(dir, sizeof dir, "split-subdir", ".debug/prog.debug", 1);
    ASSERT_EQ(split_prog_line(dir, a, NULL, &file), 3);
    a = make_split_prog(dir, sizeof dir, "split-crc", "prog.debug", 0);
    ASSERT_EQ(split_prog_line(dir, a, NULL, &file), 3);

    /* Another build's debug file under the linked name: rejected (build ID, then CRC). */
    for (int build_id = 1; build_id >= 0; build_id--) {
        make_split_prog(other, sizeof other, build_id ? "split-other" : "split-other-crc", "prog.debug", build_id);
        a = make_split_prog(dir, sizeof dir, build_id ? "split-mismatch" : "split-mismatch-crc", "prog.debug", build_id);
        sh("cp '%s/prog.debug' '%s/prog.debug'", other, dir);
        ASSERT_EQ(split_prog_line(dir, a, NULL, &file), 0);
    }

    /* Under the debug tree, mirroring the program's directory, and with leading directories dropped. */
    char tree[1024];
    snprintf(tree, sizeof tree, "%s/debug-tree", t_tmpdir());
    a = make_split_prog(dir, sizeof dir, "split-tree", "prog.debug", 1);
    sh("mkdir -p '%s%s' && mv '%s/prog.debug' '%s%s/'", tree, dir, dir, tree, dir);
    ASSERT_EQ(split_prog_line(dir, a, tree, &file), 3);
    ASSERT_EQ(split_prog_line(dir, a, NULL, &file), 0);  /* and only there */
    a = make_split_prog(dir, sizeof dir, "split-tree-short", "prog.debug", 1);
    sh("mkdir -p '%s/split-tree-short' && mv '%s/prog.debug' '%s/split-tree-short/'", tree, dir, tree);
    ASSERT_EQ(split_prog_line(dir, a, tree, &file), 3);

    /* No debug file anywhere (what most programs on a host are): the search ends locally. */
    a = make_split_prog(dir, sizeof dir, "split-missing", "prog.debug", 1);
    sh("rm '%s/prog.debug'", dir);
    ASSERT_EQ(split_prog_line(dir, a, NULL, &file), 0);

    FILE *maps = fopen("/proc/self/maps", "r");
    char line[1024];
    int mapped = 0, debuginfod = 0;
    ASSERT(maps != NULL);
    while (fgets(line, sizeof line, maps)) {
        mapped++;
        if (strstr(line, "libdebuginfod")) debuginfod = 1;
    }
    fclose(maps);
    ASSERT(mapped > 10);
    if (debuginfod) t_fail(__FILE__, __LINE__, "libdebuginfod was loaded with no server configured");
}

TEST(symbolize_closes_idle_modules_and_reopens_on_miss)
{
    symbolizer *s = sym_new(NULL);
    sym_module *m;
    sym_result r;
    herr e = {0};
    uint64_t pc = outer_with_inline();
    Dl_info di;
    ASSERT(dladdr((void *)(uintptr_t)pc, &di));
    uint64_t off = pc - 1 - (uint64_t)(uintptr_t)di.dli_fbase;
    ASSERT_OK(sym_module_get(s, "/proc/self/exe", "test_agent", &m, &e));
    ASSERT_OK(sym_lookup(s, m, off, &r));
    ASSERT_EQ(r.n, 2);
    ASSERT_EQ(sym_open_modules(s), 1);
    /* A trim right after a miss keeps the file open. */
    sym_trim(s);
    ASSERT_EQ(sym_open_modules(s), 1);
    /* Only cached lookups for two trim periods: the file and its DWARF are closed. */
    ASSERT_OK(sym_lookup(s, m, off, &r));
    sym_trim(s);
    ASSERT_OK(sym_lookup(s, m, off, &r));
    ASSERT_EQ(sym_open_modules(s), 0);
    /* The cached answer is unchanged with the file closed. */
    ASSERT_EQ(r.n, 2);
    ASSERT_STR(r.frames[0].function, "inlined_pc");
    ASSERT_EQ(r.frames[0].line, line_of("LINE_INLINED_PC"));
    ASSERT_STR(r.frames[1].function, "outer_with_inline");
    ASSERT_STR(r.module, "test_agent");
    ASSERT(r.build_id != NULL && strlen(r.build_id) >= 16);
    /* An uncached address reopens it, with right names and build ID. */
    ASSERT(dladdr((void *)(uintptr_t)t_leaf, &di));
    ASSERT_OK(sym_lookup(s, m, (uint64_t)(uintptr_t)t_leaf - (uint64_t)(uintptr_t)di.dli_fbase, &r));
    ASSERT_EQ(sym_open_modules(s), 1);
    ASSERT(r.n >= 1);
    ASSERT_STR(r.frames[r.n - 1].function, "t_leaf");
    ASSERT(r.build_id != NULL && strlen(r.build_id) >= 16);
    sym_free(s);
}

TEST(symbolize_missing_and_bad_files)
{
    symbolizer *s = sym_new(NULL);
    sym_module *m = NULL;
    herr e = {0};
    ASSERT(sym_module_get(s, "/nonexistent/lib.so", NULL, &m, &e) < 0);
    ASSERT_CONTAINS(e.msg, "/nonexistent/lib.so");
    char path[512];
    snprintf(path, sizeof(path), "%s/junk.so", t_tmpdir());
    FILE *f = fopen(path, "w");
    fputs("\x7f" "ELF but not really", f);
    fclose(f);
    herr_clear(&e);
    ASSERT(sym_module_get(s, path, NULL, &m, &e) < 0);
    sym_result r;
    ASSERT_OK(sym_lookup(s, NULL, 0x1234, &r));
    ASSERT_EQ(r.n, 0);
    sym_free(s);
}

TEST(demangle_cxx_and_rust)
{
    char out[256];
    ASSERT_STR(sym_demangle("_ZN4work6Worker5run_aEi", out, sizeof(out)), "work::Worker::run_a(int)");
    ASSERT_STR(sym_demangle("_ZN4work4spinIiEEvT_", out, sizeof(out)), "void work::spin<int>(int)");
    /* Rust legacy mangling: the ::h<hash> suffix goes. */
    ASSERT_STR(sym_demangle("_ZN4core3fmt5write17h0123456789abcdefE", out, sizeof(out)), "core::fmt::write");
    ASSERT(sym_demangle("main", out, sizeof(out)) == NULL);
    /* Rust v0 (RFC 2603), hand-encoded from the grammar: crate roots with disambiguators,
     * nested paths, inherent and trait impls with back-references, generics, closures. */
    ASSERT_STR(sym_demangle("_RNvCs15kBYyAo9fc_7mycrate7example", out, sizeof(out)), "mycrate::example");
    ASSERT_STR(sym_demangle("_RNvMNtCs1_3foo3barNtB4_3Baz3new", out, sizeof(out)), "<foo::Baz>::new");
    ASSERT_STR(sym_demangle("_RNvXCs1_3fooNtB2_3BazNtNtCs2_4core3fmt7Display3fmt", out, sizeof(out)),
               "<foo::Baz as core::fmt::Display>::fmt");
    ASSERT_STR(sym_demangle("_RINvCs1_3foo3barlE", out, sizeof(out)), "foo::bar::<i32>");
    ASSERT_STR(sym_demangle("_RINvCs1_3foo3barTRShEE", out, sizeof(out)), "foo::bar::<(&[u8])>");
    ASSERT_STR(sym_demangle("_RNCNvCs1_3foo4main0", out, sizeof(out)), "foo::main::{closure}");
    /* Every truncation of a valid name is rejected or printed, never read past its end. */
    const char *full = "_RNvXCs1_3fooNtB2_3BazNtNtCs2_4core3fmt7Display3fmt";
    char cut[128];
    for (size_t n = 0; n < strlen(full); n++) {
        memcpy(cut, full, n);
        cut[n] = 0;
        (void)sym_demangle(cut, out, sizeof(out));
    }
    ASSERT(sym_demangle("_RB_", out, sizeof(out)) == NULL);     /* backref to itself */
    ASSERT(sym_demangle("_RNvC9999999999x", out, sizeof(out)) == NULL);
    char tiny[8];
    ASSERT(sym_demangle("_RNvCs15kBYyAo9fc_7mycrate7example", tiny, sizeof(tiny)) == NULL); /* does not fit */
    ASSERT(sym_demangle("_Znot_valid_at_all(", out, sizeof(out)) == NULL);
}

TEST(kernel_symbols_from_kallsyms)
{
    FILE *f = fopen("/proc/kallsyms", "r");
    char line[512], want[256] = "";
    uint64_t addr = 0;
    ASSERT(f != NULL);
    while (fgets(line, sizeof(line), f)) {
        char type;
        if (sscanf(line, "%" SCNx64 " %c %255s", &addr, &type, want) == 3 && addr && (type == 'T' || type == 't') &&
            !strcmp(want, "schedule"))
            break;
        want[0] = 0;
    }
    fclose(f);
    if (!want[0]) t_fail(__FILE__, __LINE__, "kallsyms hides addresses here (kptr_restrict); run as root");
    symbolizer *s = sym_new(NULL);
    sym_result r;
    ASSERT_OK(sym_kernel_lookup(s, addr + 1, &r));
    ASSERT_EQ(r.is_kernel, 1);
    ASSERT_EQ(r.n, 1);
    ASSERT_STR(r.frames[0].function, "schedule");
    sym_free(s);
}

TEST(jit_perf_map)
{
    pid_t fake = 2000000000 - getpid();
    char path[128];
    snprintf(path, sizeof(path), "/tmp/perf-%d.map", (int)fake);
    FILE *f = fopen(path, "w");
    ASSERT(f != NULL);
    fprintf(f, "7f0000001000 100 LazyCompile:*hot_loop app.js:10\n");
    fprintf(f, "garbage line\n");
    fprintf(f, "7f0000002000 20 Interpreter:cold\n");
    fclose(f);
    symbolizer *s = sym_new(NULL);
    sym_result r;
    ASSERT_OK(sym_perfmap_lookup(s, fake, "", 0x7f0000001080, &r));
    ASSERT_STR(r.frames[0].function, "LazyCompile:*hot_loop app.js:10");
    ASSERT_EQ(sym_perfmap_lookup(s, fake, "", 0x7f0000001100, &r), HE_NOTFOUND); /* just past the end */
    ASSERT_OK(sym_perfmap_lookup(s, fake, "", 0x7f0000002000, &r));
    ASSERT_STR(r.frames[0].function, "Interpreter:cold");
    sym_free(s);
    unlink(path);
}

/* ---- uploader ---- */

typedef struct seen {
    pthread_mutex_t mu;
    int n;
    char name[256], from[32], format[32], auth[128], tenant[64];
    size_t body_len;
    char body[64];
    int fail_first; /* answer 503 to this many requests first */
} seen;

static enum MHD_Result handler(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
                               const char *version, const char *upload_data, size_t *upload_size, void **con_cls)
{
    seen *sn = cls;
    (void)version;
    if (!*con_cls) { *con_cls = (void *)1; return MHD_YES; }
    if (*upload_size) {
        pthread_mutex_lock(&sn->mu);
        if (sn->body_len + *upload_size <= sizeof(sn->body)) memcpy(sn->body + sn->body_len, upload_data, *upload_size);
        sn->body_len += *upload_size;
        pthread_mutex_unlock(&sn->mu);
        *upload_size = 0;
        return MHD_YES;
    }
    pthread_mutex_lock(&sn->mu);
    int status = MHD_HTTP_OK;
    if (sn->fail_first > 0) { sn->fail_first--; status = MHD_HTTP_SERVICE_UNAVAILABLE; sn->body_len = 0; }
    else if (!strcmp(url, "/ingest") && !strcmp(method, "POST")) {
        const char *v;
        sn->n++;
        if ((v = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "name"))) snprintf(sn->name, sizeof(sn->name), "%s", v);
        if ((v = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "from"))) snprintf(sn->from, sizeof(sn->from), "%s", v);
        if ((v = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "format"))) snprintf(sn->format, sizeof(sn->format), "%s", v);
        if ((v = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Authorization"))) snprintf(sn->auth, sizeof(sn->auth), "%s", v);
        if ((v = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "X-Scope-OrgID"))) snprintf(sn->tenant, sizeof(sn->tenant), "%s", v);
    }
    pthread_mutex_unlock(&sn->mu);
    struct MHD_Response *resp = MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
    enum MHD_Result ret = MHD_queue_response(conn, (unsigned)status, resp);
    MHD_destroy_response(resp);
    return ret;
}

static void wait_for(uploader *u, uint64_t sent, int ms)
{
    upl_stats st;
    for (int i = 0; i < ms / 10; i++) {
        upl_get_stats(u, &st);
        if (st.sent >= sent) return;
        usleep(10000);
    }
}

TEST(upload_request_shape_and_retry)
{
    seen sn;
    memset(&sn, 0, sizeof(sn));
    pthread_mutex_init(&sn.mu, NULL);
    sn.fail_first = 1;
    struct MHD_Daemon *d = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD, 0, NULL, NULL, handler, &sn,
                                            MHD_OPTION_END);
    ASSERT(d != NULL);
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
    char url[64];
    snprintf(url, sizeof(url), "http://127.0.0.1:%u", (unsigned)info->port);
    upl_opts o = {0};
    o.server = url;
    o.auth_token = "sekret";
    o.tenant = "team-a";
    o.backoff_base_ms = 20;
    o.backoff_max_ms = 50;
    uploader *u;
    herr e = {0};
    ASSERT_OK(upl_new(&o, &u, &e));
    buf body, name;
    buf_init(&body, 0);
    buf_puts(&body, "PPROF-BYTES");
    buf_init(&name, 0);
    const char *keys[] = {"host", "note"}, *vals[] = {"h1", "a,b{c}=d"};
    ASSERT_OK(upl_app_name(&name, "svc", keys, vals, 2));
    ASSERT_STR(name.data, "svc{host=h1,note=a_b_c__d}");
    ASSERT_EQ(upl_push(u, name.data, 1700000000, 1700000010, 97, &body), 0);
    ASSERT_EQ(body.len, 0); /* ownership moved */
    wait_for(u, 1, 5000);
    upl_stats st;
    upl_get_stats(u, &st);
    ASSERT_EQ(st.sent, 1);
    ASSERT_EQ(st.retries, 1); /* the 503 was retried */
    ASSERT_EQ(st.dropped, 0);
    pthread_mutex_lock(&sn.mu);
    ASSERT_STR(sn.name, "svc{host=h1,note=a_b_c__d}");
    ASSERT_STR(sn.from, "1700000000");
    ASSERT_STR(sn.format, "pprof");
    ASSERT_STR(sn.auth, "Bearer sekret");
    ASSERT_STR(sn.tenant, "team-a");
    ASSERT_EQ(sn.body_len, 11);
    ASSERT(!memcmp(sn.body, "PPROF-BYTES", 11));
    pthread_mutex_unlock(&sn.mu);
    upl_free(u, 1000);
    buf_release(&name);
    MHD_stop_daemon(d);
}

TEST(upload_queue_is_bounded_when_server_is_down)
{
    upl_opts o = {0};
    o.server = "http://127.0.0.1:1"; /* nothing listens on port 1 */
    o.max_queue = 2;
    o.backoff_base_ms = 10000; /* the head stays in backoff for the whole test */
    uploader *u;
    herr e = {0};
    ASSERT_OK(upl_new(&o, &u, &e));
    for (int i = 0; i < 5; i++) {
        buf b;
        buf_init(&b, 0);
        buf_printf(&b, "profile %d", i);
        upl_push(u, "svc", i, i + 1, 97, &b);
        usleep(i == 0 ? 100000 : 0); /* let the first one become the head in flight */
    }
    upl_stats st;
    upl_get_stats(u, &st);
    ASSERT_EQ(st.sent, 0);
    ASSERT_EQ(st.queued, 2);
    ASSERT_EQ(st.dropped, 3);
    ASSERT(st.last_error[0] != 0);
    upl_free(u, 0);
}

TEST(upload_rejects_bad_urls)
{
    upl_opts o = {0};
    uploader *u;
    herr e = {0};
    ASSERT_EQ(upl_new(&o, &u, &e), HE_USAGE);
    o.server = "localhost:4040";
    herr_clear(&e);
    ASSERT_EQ(upl_new(&o, &u, &e), HE_USAGE);
    ASSERT_CONTAINS(e.msg, "http://");
}

TEST(service_and_container_from_cgroup)
{
    char unit[64], ctr[80];
    const char *id = "3f1e2d4c5b6a79881726354453627180a9b8c7d6e5f4a3b2c1d0e9f8a7b6c5d4";
    char text[512];
    ASSERT_EQ(coll_parse_cgroup("0::/system.slice/nginx.service\n", unit, sizeof(unit), ctr, sizeof(ctr)), 1);
    ASSERT_STR(unit, "nginx");
    ASSERT_STR(ctr, "");
    snprintf(text, sizeof(text), "0::/system.slice/docker-%s.scope\n", id);
    ASSERT_EQ(coll_parse_cgroup(text, unit, sizeof(unit), ctr, sizeof(ctr)), 2);
    ASSERT_STR(ctr, id);
    snprintf(text, sizeof(text), "12:memory:/kubepods/burstable/pod1234/%s\n11:cpu:/kubepods/burstable/pod1234/%s\n", id, id);
    ASSERT_EQ(coll_parse_cgroup(text, unit, sizeof(unit), ctr, sizeof(ctr)), 2);
    ASSERT_STR(ctr, id);
    ASSERT_EQ(coll_parse_cgroup("0::/user.slice/user-1000.slice/user@1000.service/app.slice/x.scope\n", unit,
                                sizeof(unit), ctr, sizeof(ctr)), 0);
    ASSERT_EQ(coll_parse_cgroup("4:memory:/process_api/5b0b0281e48ccf4339745cafa3014594\n0::/\n", unit, sizeof(unit),
                                ctr, sizeof(ctr)), 0);
    ASSERT_EQ(coll_parse_cgroup("garbage without colons", unit, sizeof(unit), ctr, sizeof(ctr)), 0);
    ASSERT_EQ(coll_parse_cgroup("", unit, sizeof(unit), ctr, sizeof(ctr)), 0);
}

TEST(unwind_table_survives_corrupt_cfi)
{
    /* Flip bytes inside a real .eh_frame many times: every build must end in 0 or a clear error. */
    size_t len;
    char *img = t_read_file("/proc/self/exe", &len);
    Elf *elf;
    size_t shstrndx, eh_off = 0, eh_size = 0;
    elf_version(EV_CURRENT);
    elf = elf_memory(img, len);
    ASSERT(elf && elf_getshdrstrndx(elf, &shstrndx) == 0);
    for (Elf_Scn *scn = NULL; (scn = elf_nextscn(elf, scn));) {
        GElf_Shdr sh;
        const char *nm;
        if (gelf_getshdr(scn, &sh) && (nm = elf_strptr(elf, shstrndx, sh.sh_name)) && !strcmp(nm, ".eh_frame")) {
            eh_off = sh.sh_offset;
            eh_size = sh.sh_size;
        }
    }
    elf_end(elf);
    ASSERT(eh_size > 64);
    char path[512];
    snprintf(path, sizeof(path), "%s/corrupt", t_tmpdir());
    uint64_t rng = 0x9e3779b97f4a7c15ULL;
    int ok = 0, failed = 0;
    for (int round = 0; round < 60; round++) {
        char *copy = malloc(len);
        memcpy(copy, img, len);
        for (int k = 0; k < 1 + round % 8; k++) {
            rng ^= rng << 13; rng ^= rng >> 7; rng ^= rng << 17;
            size_t at = eh_off + (size_t)(rng % eh_size);
            copy[at] = (char)(rng >> 32);
        }
        FILE *f = fopen(path, "wb");
        fwrite(copy, 1, len, f);
        fclose(f);
        free(copy);
        unw_table t;
        herr e = {0};
        int rc = unw_table_build_file(&t, path, &e);
        if (rc == 0) {
            for (size_t i = 1; i < t.n_rows; i++) ASSERT(t.rows[i - 1].pc < t.rows[i].pc);
            unw_table_release(&t);
            ok++;
        } else {
            ASSERT(e.msg[0] != 0);
            failed++;
        }
    }
    ASSERT_EQ(ok + failed, 60);
    ASSERT(failed > 0); /* the corruption did reach the parser (deterministic seed) */
    free(img);
}

/* ---- per-process events ---- */

static double mono_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void *spin_thread(void *arg)
{
    double end = *(double *)arg;
    volatile uint64_t x = 0;
    while (mono_s() < end) x++;
    return NULL;
}

/* A child that spins in main and one thread now, and in a second thread it starts after delay_s. */
static pid_t spawn_spinner(int threads, double secs, double delay_s)
{
    pid_t pid = fork();
    if (pid != 0) return pid;
    double end = mono_s() + secs;
    pthread_t t1, t2;
    if (threads) pthread_create(&t1, NULL, spin_thread, &end);
    double start2 = mono_s() + delay_s;
    volatile uint64_t x = 0;
    while (mono_s() < start2) x++;
    if (threads) pthread_create(&t2, NULL, spin_thread, &end);
    while (mono_s() < end) x++;
    _exit(0);
}

typedef struct perf_seen {
    pid_t want;
    size_t samples, foreign;
    uint32_t tids[64];
    size_t n_tids;
} perf_seen;

static void seen_sample(void *ctx, const perf_sample *smp)
{
    perf_seen *sn = ctx;
    sn->samples++;
    if ((pid_t)smp->pid != sn->want) { sn->foreign++; return; }
    for (size_t i = 0; i < sn->n_tids; i++) if (sn->tids[i] == smp->tid) return;
    if (sn->n_tids < ARRAY_SIZE(sn->tids)) sn->tids[sn->n_tids++] = smp->tid;
}

TEST(perf_per_process_events_follow_threads_and_nothing_else)
{
    if (geteuid() != 0) { fprintf(stderr, "  (needs root for perf_event_open on another process: not run)\n"); return; }
    pid_t a = spawn_spinner(1, 1.6, 0.5), b = spawn_spinner(0, 1.6, 0);
    usleep(100000); /* a's first thread exists before the events are opened */
    perf_opts po = {0};
    perf_sampler ps;
    herr e = {0};
    pid_t pids[1] = {a};
    po.freq = 997;
    po.pid = -1;
    po.pids = pids;
    po.n_pids = 1;
    int rc = perf_open(&ps, &po, &e);
    if (rc) fprintf(stderr, "  perf_open: %s\n", e.msg);
    ASSERT_OK(rc);
    ASSERT_EQ(ps.host_wide, 0);
    ASSERT(ps.n_extra >= 1); /* two threads at open: one event each per CPU, sharing the CPU's ring */
    ASSERT_OK(perf_enable(&ps));
    perf_handlers h = {0};
    h.sample = seen_sample;
    perf_seen sn = {0};
    sn.want = a;
    double end = mono_s() + 1.2;
    while (mono_s() < end) ASSERT(perf_poll(&ps, 50, &h, &sn) >= 0);
    perf_close(&ps);
    kill(a, SIGKILL);
    kill(b, SIGKILL);
    waitpid(a, NULL, 0);
    waitpid(b, NULL, 0);
    ASSERT(sn.samples > 50);
    ASSERT_EQ(sn.foreign, 0);   /* b spun just as hard: host-wide events would have sampled it */
    ASSERT(sn.n_tids >= 3);     /* main, the first thread, and the one created after open (inherit) */

    /* Past max_fds it samples the whole host instead, and says so. */
    pid_t c = spawn_spinner(1, 0.5, 0);
    usleep(50000);
    pids[0] = c;
    po.max_fds = 1;
    memset(&e, 0, sizeof(e));
    ASSERT_OK(perf_open(&ps, &po, &e));
    ASSERT_EQ(ps.host_wide, 1);
    ASSERT_CONTAINS(e.msg, "whole host");
    perf_close(&ps);
    kill(c, SIGKILL);
    waitpid(c, NULL, 0);

    /* A process that is gone: ESRCH with a message. */
    pids[0] = c;
    po.max_fds = 0;
    memset(&e, 0, sizeof(e));
    ASSERT_EQ(perf_open(&ps, &po, &e), -ESRCH);
    ASSERT_CONTAINS(e.msg, "does not exist");
}
