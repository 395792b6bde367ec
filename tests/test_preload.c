/*
 * test_preload.c: libhearth.so end to end. Runs the deterministic workloads
 * of tests/preload/ (built by mk/preload.mk) under the profiler, with
 * HEARTH_OUTPUT_DIR so every profile lands as a pprof file, decodes those
 * files with our pprof codec and checks what they say against what the
 * workload is known to do:
 *   - CPU shares between two callers of one frameless leaf (2/3 vs 1/3)
 *     within 5 points, 4 threads, with frame pointers and without any;
 *     total CPU close to what the process measured itself;
 *   - heap: free() with no heap table (not started, cpu only) never
 *     touches it, even for pointers sharing the bootstrap arena's bits;
 *   - heap: kept 64 KiB blocks vs freed 64-byte churn, inuse_space and
 *     alloc_space within 15%; the free() path exact (every sampled free
 *     seen, no unsampled free taken for a sampled one); every sample
 *     starts at the function that called the allocator;
 *   - span labels: samples of each span hold only that span's work;
 *   - stress (threads, fork, exec, realloc storms, the program's own SIGPROF
 *     handler): the program exits 0 and its profiles decode;
 *   - exec: the interval before it is flushed, a failed exec resumes
 *     profiling;
 *   - stack depth: HEARTH_MAX_FRAMES=256 keeps a 150-frame stack whole, the
 *     default 64 cuts its root end;
 *   - bad settings: the program runs normally and stderr says what is wrong.
 *
 * Preloaded (LD_PRELOAD) in normal builds; in sanitizer builds
 * ($HEARTH_SANITIZE=1) the *_linked workloads are used instead, which carry
 * the library's sanitizer-built objects inside the program.
 */
#include "core/common.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "core/buf.h"
#include "format/pprof.h"
#include "profile/profile.h"
#include "t.h"

extern char **environ;

static char build_dir[1024];

static const char *build(void)
{
    if (!build_dir[0]) {
        const char *b = getenv("HEARTH_BUILD");
        if (b && *b) {
            snprintf(build_dir, sizeof(build_dir), "%s", b);
        } else {
            char exe[1024];
            ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
            if (n <= 0) t_fail(__FILE__, __LINE__, "cannot find the build directory");
            exe[n] = 0;
            char *slash = strrchr(exe, '/');
            if (slash) *slash = 0;           /* .../build/tests */
            slash = strrchr(exe, '/');
            if (slash) *slash = 0;           /* .../build */
            snprintf(build_dir, sizeof(build_dir), "%s", exe);
        }
    }
    return build_dir;
}

static int sanitized(void)
{
    const char *s = getenv("HEARTH_SANITIZE");
    return (s && *s && strcmp(s, "0") != 0) || strstr(build(), "/san-") != NULL;
}

/*
 * ThreadSanitizer defers asynchronous signals to its next interceptor call,
 * so a CPU sample lands wherever the thread next enters the runtime, not
 * where the timer fired: under TSan the runs check that everything works
 * and decodes, not where samples land.
 */
static int tsan(void) { return strstr(build(), "san-thread") != NULL; }

/* Path of workload `name`, the linked form in sanitizer runs. */
static const char *workload(const char *name, char *out, size_t size)
{
    snprintf(out, size, "%s/workloads-preload/%s%s", build(), name, sanitized() ? "_linked" : "");
    if (access(out, X_OK) != 0)
        t_fail(__FILE__, __LINE__, "workload %s is not built (make all builds it)", out);
    return out;
}

enum { PATH_LEN = 1200 };

/* Workload NAME's path, and dir/out (where its profiles go) as a path and as HEARTH_OUTPUT_DIR=. */
static void workload_paths(const char *dir, const char *name, char wl[PATH_LEN], char env_dir[PATH_LEN],
                           char outdir[PATH_LEN])
{
    workload(name, wl, PATH_LEN);
    snprintf(outdir, PATH_LEN, "%s/out", dir);
    snprintf(env_dir, PATH_LEN, "HEARTH_OUTPUT_DIR=%s/out", dir);
}

/*
 * Runs argv with the current environment plus env[] (NAME=value, NULL
 * ended) and the profiler attached; stdout/stderr go to files in dir.
 * Returns the exit status (or 128+signal).
 */
static int run(const char *dir, char *const argv[], const char *const env[])
{
    char lib[1100], preload[1200], out_path[1100], err_path[1100];
    const char *l = getenv("HEARTH_LIB");
    snprintf(lib, sizeof(lib), "%s", l && *l ? l : "");
    if (!lib[0]) snprintf(lib, sizeof(lib), "%s/libhearth.so", build());
    snprintf(preload, sizeof(preload), "LD_PRELOAD=%s", lib);
    snprintf(out_path, sizeof(out_path), "%s/stdout", dir);
    snprintf(err_path, sizeof(err_path), "%s/stderr", dir);
    size_t n_env = 0;
    while (environ[n_env]) n_env++;
    const char **envp = calloc(n_env + 32, sizeof(char *));
    size_t k = 0;
    for (size_t i = 0; i < n_env; i++)
        if (strncmp(environ[i], "HEARTH_", 7) != 0 || strncmp(environ[i], "HEARTH_SANITIZE", 15) == 0)
            if (strncmp(environ[i], "LD_PRELOAD=", 11) != 0) envp[k++] = environ[i];
    if (!sanitized()) envp[k++] = preload;
    /* tests/run runs us from the source tree. */
    char lsan[PATH_MAX + 40], supp[PATH_MAX];
    if (!realpath("tests/preload/lsan.supp", supp)) snprintf(supp, sizeof(supp), "tests/preload/lsan.supp");
    snprintf(lsan, sizeof(lsan), "LSAN_OPTIONS=suppressions=%s", supp);
    if (sanitized()) envp[k++] = lsan;
    for (size_t i = 0; env[i] && k < n_env + 31; i++) envp[k++] = env[i];
    envp[k] = NULL;
    pid_t pid = fork();
    if (pid == 0) {
        int fo = open(out_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        int fe = open(err_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fo >= 0) dup2(fo, 1);
        if (fe >= 0) dup2(fe, 2);
        execve(argv[0], argv, (char *const *)envp);
        _exit(127);
    }
    free(envp);
    int status = 0;
    if (pid < 0 || waitpid(pid, &status, 0) != pid) return -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

static char *read_text(const char *dir, const char *name)
{
    char path[1100];
    size_t len;
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    return t_read_file(path, &len);
}

/*
 * Merges every profile file in dir whose name contains `kind` into dst
 * (samples kept apart: no combining, so labels stay per sample). Returns
 * the number of files.
 */
static int load_profiles(const char *dir, const char *kind, profile *dst)
{
    DIR *d = opendir(dir);
    ASSERT(d != NULL);
    struct dirent *de;
    int n = 0;
    while ((de = readdir(d))) {
        if (!strstr(de->d_name, kind) || !strstr(de->d_name, ".pb.gz")) continue;
        char path[1200];
        snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
        size_t len;
        char *data = t_read_file(path, &len);
        profile p;
        ASSERT_OK(prof_init(&p));
        herr e;
        herr_clear(&e);
        int rc = pprof_decode(&p, data, len, 0, &e);
        if (rc) t_fail(__FILE__, __LINE__, "%s does not decode: %s", path, herr_msg(&e, rc));
        ASSERT_OK(prof_validate(&p, &e));
        rc = prof_merge(dst, &p, -1, 0, &e);
        if (rc) t_fail(__FILE__, __LINE__, "%s does not merge: %s", path, herr_msg(&e, rc));
        prof_release(&p);
        free(data);
        n++;
    }
    closedir(d);
    return n;
}

/* 1 if some frame of sample i is the function named fn. */
static int sample_has(const profile *p, size_t i, const char *fn)
{
    uint32_t locs[1100];
    size_t depth = prof_stack_locations(p, p->samples[i].stack, locs, ARRAY_SIZE(locs));
    if (depth > ARRAY_SIZE(locs)) depth = ARRAY_SIZE(locs);
    for (size_t k = 0; k < depth; k++) {
        const prof_location *l = &p->locations[locs[k]];
        for (uint32_t j = 0; j < l->n_lines || j == 0; j++) {
            char name[256];
            prof_frame_name(p, locs[k], j, name, sizeof(name));
            if (strcmp(name, fn) == 0) return 1;
            if (l->n_lines == 0) break;
        }
    }
    return 0;
}

/* Name of sample i's leaf frame (innermost function of its first location). */
static const char *leaf_name(const profile *p, size_t i, char *out, size_t size)
{
    uint32_t loc;
    out[0] = 0;
    if (prof_stack_locations(p, p->samples[i].stack, &loc, 1) == 0) return out;
    return prof_frame_name(p, loc, 0, out, size);
}

/*
 * Heap samples must start at the program's function that called the
 * allocator: not inside libhearth (a frame too few skipped), not at its
 * caller (a frame too many). For each fn of fns, the samples that have fn
 * on their stack must have it as their leaf, and sum to at least
 * want[k] of type t; no sample at all may start in an allocator entry
 * point or hearth's heap code.
 */
static void check_heap_leaves(const profile *p, int t, const char *const *fns, const int64_t *want, size_t n_fns)
{
    static const char *const ours[] = { "malloc", "calloc", "realloc", "reallocarray", "posix_memalign",
                                        "aligned_alloc", "memalign", "valloc", "pvalloc", "heap_slow",
                                        "malloc_sampled", "malloc_first", "calloc_sampled", "calloc_first",
                                        "realloc_sampled", "realloc_slow", "realloc_boot", "pl_capture_here" };
    for (size_t i = 0; i < p->n_samples; i++) {
        char leaf[256];
        leaf_name(p, i, leaf, sizeof(leaf));
        for (size_t k = 0; k < ARRAY_SIZE(ours); k++)
            if (strcmp(leaf, ours[k]) == 0)
                t_fail(__FILE__, __LINE__, "a heap sample starts inside libhearth, at %s", leaf);
    }
    for (size_t k = 0; k < n_fns; k++) {
        int64_t as_leaf = 0, below = 0;
        char below_leaf[256] = "";
        for (size_t i = 0; i < p->n_samples; i++) {
            if (!sample_has(p, i, fns[k])) continue;
            char leaf[256];
            if (strcmp(leaf_name(p, i, leaf, sizeof(leaf)), fns[k]) == 0) {
                as_leaf += prof_values(p, i)[t];
            } else {
                below += prof_values(p, i)[t];
                snprintf(below_leaf, sizeof(below_leaf), "%s", leaf);
            }
        }
        printf("%s: %lld as the leaf, %lld under another leaf\n", fns[k], (long long)as_leaf, (long long)below);
        if (below) t_fail(__FILE__, __LINE__, "%s samples start at %s, not at %s", fns[k], below_leaf, fns[k]);
        if (as_leaf < want[k])
            t_fail(__FILE__, __LINE__, "%s is the leaf of %lld, expected >= %lld (its frame skipped?)", fns[k],
                   (long long)as_leaf, (long long)want[k]);
    }
}

/* Sum of type t over samples having fn (NULL: all samples). */
static int64_t sum_with(const profile *p, int t, const char *fn)
{
    int64_t s = 0;
    for (size_t i = 0; i < p->n_samples; i++)
        if (!fn || sample_has(p, i, fn)) s += prof_values(p, i)[t];
    return s;
}

static void check_cpu_shares(const char *wl_name)
{
    const char *dir = t_tmpdir();
    char wl[1200];
    workload(wl_name, wl, sizeof(wl));
    char env_dir[1200];
    snprintf(env_dir, sizeof(env_dir), "HEARTH_OUTPUT_DIR=%s/out", dir);
    const char *env[] = { env_dir, "HEARTH_CPU_HZ=250", "HEARTH_PROFILES=cpu", NULL };
    /* ~4 s of CPU: about 1000 samples at the kernel's 250 Hz tick, so the
       binomial spread of a 2/3 share is 1.5 points and +-5 is > 3 sigma. */
    char *argv[] = { wl, "4", "140", NULL };
    ASSERT_EQ(run(dir, argv, env), 0);
    char *out = read_text(dir, "stdout");
    double cpu_s = strtod(out, NULL);
    free(out);

    char outdir[1200];
    snprintf(outdir, sizeof(outdir), "%s/out", dir);
    profile p;
    ASSERT_OK(prof_init(&p));
    ASSERT(load_profiles(outdir, ".cpu.", &p) >= 1);
    int t_cpu = prof_type_index(&p, "cpu");
    int t_samples = prof_type_index(&p, "samples");
    ASSERT(t_cpu >= 0 && t_samples >= 0);
    int64_t one = sum_with(&p, t_cpu, "caller_one"), two = sum_with(&p, t_cpu, "caller_two");
    int64_t all = sum_with(&p, t_cpu, NULL);
    int64_t samples = sum_with(&p, t_samples, NULL);
    printf("%s: %" PRId64 " samples, cpu %.3fs profiled vs %.3fs measured; caller_one %.1f%%, caller_two %.1f%%, "
           "stacks with either %.1f%%\n", wl_name, samples, (double)all / 1e9, cpu_s,
           100.0 * (double)one / (double)(one + two), 100.0 * (double)two / (double)(one + two),
           100.0 * (double)(one + two) / (double)all);
    if (tsan()) {
        ASSERT(samples > 0);
        prof_release(&p);
        return;
    }
    ASSERT(samples >= 700);
    double share = 100.0 * (double)one / (double)(one + two);
    if (share < 66.7 - 5 || share > 66.7 + 5)
        t_fail(__FILE__, __LINE__, "caller_one has %.1f%% of the leaf's CPU, expected 66.7 +- 5", share);
    /* Nearly every sample must be attributed to a caller (unwinding through the frameless leaf). */
    if ((double)(one + two) < 0.9 * (double)all)
        t_fail(__FILE__, __LINE__, "only %.1f%% of samples reach caller_one/caller_two", 100.0 * (double)(one + two) / (double)all);
    /* Every thread is sampled: profiled CPU time close to the process's own. */
    double ratio = (double)all / 1e9 / cpu_s;
    if (ratio < 0.8 || ratio > 1.1)
        t_fail(__FILE__, __LINE__, "profiled CPU %.3fs vs measured %.3fs (ratio %.2f, expected 0.8..1.1)",
               (double)all / 1e9, cpu_s, ratio);
    prof_release(&p);
}

TEST(cpu_shares_frame_pointers) { check_cpu_shares("wl_cpu"); }

TEST(cpu_shares_no_frame_pointers)
{
    if (sanitized()) return;  /* the linked form of wl_cpu_nofp is not built; wl_cpu covers it */
    check_cpu_shares("wl_cpu_nofp");
}

static void check_within(const char *what, double got, double want, double tol)
{
    printf("%s: %.0f, expected %.0f (%+.1f%%)\n", what, got, want, 100.0 * (got - want) / want);
    if (got < want * (1 - tol) || got > want * (1 + tol))
        t_fail(__FILE__, __LINE__, "%s is %.0f, expected %.0f +- %.0f%%", what, got, want, tol * 100);
}

TEST(heap_known_pattern)
{
    const char *dir = t_tmpdir();
    char wl[PATH_LEN], env_dir[PATH_LEN], outdir[PATH_LEN];
    workload_paths(dir, "wl_heap", wl, env_dir, outdir);
    const char *env[] = { env_dir, "HEARTH_HEAP_SAMPLE_RATE=65536", "HEARTH_PROFILES=heap", NULL };
    char *argv[] = { wl, "32", "256", NULL };
    ASSERT_EQ(run(dir, argv, env), 0);
    profile p;
    ASSERT_OK(prof_init(&p));
    ASSERT_EQ(load_profiles(outdir, ".memory.", &p), 1);
    int ta = prof_type_index(&p, "alloc_space"), ti = prof_type_index(&p, "inuse_space");
    int to = prof_type_index(&p, "alloc_objects");
    ASSERT(ta >= 0 && ti >= 0 && to >= 0 && prof_type_index(&p, "inuse_objects") >= 0);
    check_within("keep_blocks inuse_space", (double)sum_with(&p, ti, "keep_blocks"), 32.0 * 1048576, 0.15);
    check_within("keep_blocks alloc_space", (double)sum_with(&p, ta, "keep_blocks"), 32.0 * 1048576, 0.15);
    check_within("churn alloc_space", (double)sum_with(&p, ta, "churn"), 256.0 * 1048576, 0.15);
    check_within("churn alloc_objects", (double)sum_with(&p, to, "churn"), 256.0 * 1048576 / 64, 0.15);
    ASSERT_EQ(p.period, 65536);  /* a rate set by hand is kept: no budget unless one is set too */
    double churn_inuse = (double)sum_with(&p, ti, "churn");
    printf("churn inuse_space: %.0f\n", churn_inuse);
    if (churn_inuse > 0.02 * 32 * 1048576) t_fail(__FILE__, __LINE__, "freed churn shows %.0f bytes in use", churn_inuse);
    static const char *const fns[] = { "keep_blocks", "churn" };
    const int64_t want[] = { 32LL * 1048576 * 85 / 100, 256LL * 1048576 * 85 / 100 };
    check_heap_leaves(&p, ta, fns, want, 2);
    prof_release(&p);
}

/*
 * The sample budget: 2 GiB of 64-byte blocks is 32768 samples at a fixed
 * mean gap of 64 KiB, then 256 MiB kept in 64 KiB blocks. With a budget of
 * 4000 a second the collector raises the mean within the first 20-100 ms,
 * so far fewer samples are taken, and the estimates, each sample weighted
 * by the mean its gap was drawn with, still come out right: the churn
 * (within 15%: ~2000 samples or more) and the kept blocks, allocated after
 * it at the raised mean (within 35%: ~200 samples; weighting them with a
 * wrong mean is off by the ratio of the means, tens of times). The count is checked
 * against what the budget allows for the run's own duration, so a slow
 * machine or a sanitizer build moves both; where the program allocates
 * too slowly to go over budget at all, only the estimates are checked.
 */
TEST(heap_sample_budget)
{
    const char *dir = t_tmpdir();
    char wl[PATH_LEN], env_dir[PATH_LEN], outdir[PATH_LEN];
    workload_paths(dir, "wl_heap", wl, env_dir, outdir);
    const char *env[] = { env_dir, "HEARTH_HEAP_SAMPLE_RATE=65536", "HEARTH_HEAP_SAMPLES_PER_SECOND=4000",
                          "HEARTH_PROFILES=heap", "HEARTH_LOG_LEVEL=debug", NULL };
    char *argv[] = { wl, "256", "2048", "late", NULL };
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    ASSERT_EQ(run(dir, argv, env), 0);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    const double fixed = (2048.0 + 256.0) * 16;  /* samples at a fixed mean of 64 KiB */
    char *err = read_text(dir, "stderr");
    const char *at_exit = strstr(err, "heap samples (");
    ASSERT(at_exit != NULL);
    /* "..., N heap samples (": back over the space to the start of N */
    at_exit--;
    while (at_exit > err && at_exit[-1] >= '0' && at_exit[-1] <= '9') at_exit--;
    long taken = strtol(at_exit, NULL, 10);
    const double budget = 4000;
    int over_budget = fixed / secs > 2 * budget;  /* would a fixed mean take twice the budget? */
    printf("heap samples taken: %ld in %.2f s (%.0f at a fixed mean of 64 KiB)\n", taken, secs, fixed);
    profile p;
    ASSERT_OK(prof_init(&p));
    ASSERT_EQ(load_profiles(outdir, ".memory.", &p), 1);
    int ta = prof_type_index(&p, "alloc_space"), ti = prof_type_index(&p, "inuse_space");
    ASSERT(ta >= 0 && ti >= 0);
    printf("period (the largest mean gap): %lld\n", (long long)p.period);
    if (over_budget) {
        /*
         * Before the first raise (the collector's start-up work, then a
         * 20 ms window: ~50 ms at ~90,000 a second here) about 4500, then at
         * most 1.5 times the budget.
         */
        if (taken <= 0 || taken > 7000 + 1.5 * budget * secs)
            t_fail(__FILE__, __LINE__, "%ld heap samples in %.2f s: the budget did not hold them down", taken, secs);
        ASSERT(strstr(err, "mean gap") != NULL);
        ASSERT(p.period > 65536);
    } else {
        printf("(allocating too slowly here to go over budget: estimates only)\n");
    }
    free(err);
    check_within("churn alloc_space", (double)sum_with(&p, ta, "churn"), 2048.0 * 1048576, 0.15);
    check_within("keep_blocks inuse_space", (double)sum_with(&p, ti, "keep_blocks"), 256.0 * 1048576, 0.35);
    prof_release(&p);
}

/*
 * The free() path: wl_heapfree samples every allocation (rate 1), checks
 * hearth's live count after freeing unsampled neighbours of sampled blocks
 * (must not move) and after freeing the sampled blocks (must drop back),
 * through every allocation entry point; then the final profile must show
 * the 100 kept blocks in use and nothing of the freed ones.
 */
TEST(heap_free_path_exact)
{
    const char *dir = t_tmpdir();
    char wl[1200], outdir[1200];
    workload("wl_heapfree", wl, sizeof(wl));
    snprintf(outdir, sizeof(outdir), "%s/out", dir);
    const char *env[] = { NULL };
    char *argv[] = { wl, outdir, NULL };
    int rc = run(dir, argv, env);
    if (rc != 0) {
        char *err = read_text(dir, "stderr");
        char msg[600];
        snprintf(msg, sizeof(msg), "%.500s", err);
        free(err);
        t_fail(__FILE__, __LINE__, "wl_heapfree exited %d: %s", rc, msg);
    }
    profile p;
    ASSERT_OK(prof_init(&p));
    ASSERT_EQ(load_profiles(outdir, "heapfree.memory.", &p), 1);
    int ti = prof_type_index(&p, "inuse_objects"), ta = prof_type_index(&p, "alloc_objects");
    ASSERT(ti >= 0 && ta >= 0);
    int64_t kept_inuse = sum_with(&p, ti, "kept_here"), freed_inuse = sum_with(&p, ti, "freed_here");
    int64_t freed_alloc = sum_with(&p, ta, "freed_here");
    printf("inuse_objects kept_here %lld freed_here %lld; alloc_objects freed_here %lld\n", (long long)kept_inuse,
           (long long)freed_inuse, (long long)freed_alloc);
    ASSERT_EQ(kept_inuse, 100);
    ASSERT_EQ(freed_inuse, 0);
    /* 64 rounds of 10 entry points, plus the 2 blocks each realloc round moved out of. */
    ASSERT(freed_alloc >= 640);
    /* Every entry point's samples start in the function that called it. */
    static const char *const fns[] = { "freed_here", "kept_here" };
    const int64_t want[] = { 640, 100 };
    check_heap_leaves(&p, ta, fns, want, 2);
    prof_release(&p);
}

/*
 * free() of a pointer that shares a filter bit with the bootstrap arena
 * (whose bits are set for good) while the heap table does not exist: the
 * library loaded but not started, or started without heap profiling.
 * wl_heap wide spreads 600 MiB of heap in 100 KiB blocks, so some block
 * always maps to one of those bits; every free must go through.
 */
TEST(heap_free_without_heap_profiling)
{
    const char *dir = t_tmpdir();
    char wl[1200], env_dir[1200];
    workload("wl_heap", wl, sizeof(wl));
    snprintf(env_dir, sizeof(env_dir), "HEARTH_OUTPUT_DIR=%s/out", dir);
    char *argv[] = { wl, "0", "600", "wide", NULL };
    const char *not_started[] = { NULL };
    ASSERT_EQ(run(dir, argv, not_started), 0);
    const char *cpu_only[] = { env_dir, "HEARTH_PROFILES=cpu", NULL };
    ASSERT_EQ(run(dir, argv, cpu_only), 0);
    const char *heap_on[] = { env_dir, "HEARTH_PROFILES=heap", NULL };
    ASSERT_EQ(run(dir, argv, heap_on), 0);
}

TEST(span_labels_separate_work)
{
    const char *dir = t_tmpdir();
    char wl[PATH_LEN], env_dir[PATH_LEN], outdir[PATH_LEN];
    workload_paths(dir, "wl_span", wl, env_dir, outdir);
    const char *env[] = { env_dir, "HEARTH_CPU_HZ=250", "HEARTH_PROFILES=cpu", NULL };
    char *argv[] = { wl, "30", NULL };
    ASSERT_EQ(run(dir, argv, env), 0);
    profile p;
    ASSERT_OK(prof_init(&p));
    ASSERT(load_profiles(outdir, ".cpu.", &p) >= 1);
    int64_t in_a = 0, in_b = 0, outside = 0;
    int ts = prof_type_index(&p, "samples");
    ASSERT(ts >= 0);
    for (size_t i = 0; i < p.n_samples && !tsan(); i++) {
        int64_t n = prof_values(&p, i)[ts];
        const char *span = prof_sample_label(&p, i, "span_id");
        const char *trace = prof_sample_label(&p, i, "trace_id");
        const char *req = prof_sample_label(&p, i, "request");
        int a = sample_has(&p, i, "span_a_work"), b = sample_has(&p, i, "span_b_work");
        int u = sample_has(&p, i, "unlabelled_work");
        if (span && strcmp(span, "a1a2a3a4a5a6a7a8") == 0) {
            ASSERT_STR(trace, "0102030405060708090a0b0c0d0e0f10");
            ASSERT(req == NULL);
            ASSERT(!b && !u);
            in_a += a * n;
        } else if (span && strcmp(span, "b1b2b3b4b5b6b7b8") == 0) {
            ASSERT_STR(trace, "1112131415161718191a1b1c1d1e1f20");
            /* the label is set just inside the span and cleared just before its end:
             * a tick in hearth_label_set itself has the span without it */
            if (b) ASSERT_STR(req, "checkout");
            ASSERT(!a && !u);
            in_b += b * n;
        } else {
            ASSERT(span == NULL && trace == NULL && req == NULL);
            /* The work inside spans never shows up without its span. */
            ASSERT(!a && !b);
            outside += u * n;
        }
    }
    printf("samples: span a %" PRId64 ", span b %" PRId64 ", unlabelled %" PRId64 "\n", in_a, in_b, outside);
    if (tsan()) {
        ASSERT(p.n_samples > 0);
    } else {
        ASSERT(in_a >= 20 && in_b >= 20 && outside >= 10);
    }
    prof_release(&p);
}

TEST(stress_threads_fork_exec_signals)
{
    const char *dir = t_tmpdir();
    char wl[PATH_LEN], env_dir[PATH_LEN], outdir[PATH_LEN];
    workload_paths(dir, "wl_stress", wl, env_dir, outdir);
    /*
     * Leak checking is off for this one: its forked children exit() holding
     * memory of the parent's threads, which do not exist in the child, and
     * LeakSanitizer reports that as leaks. ASan's memory checks stay on.
     */
    /*
     * TSan cannot start threads in a child forked from a multi-threaded
     * process, so sanitizer runs take the other documented fork policy:
     * children stop profiling cleanly (HEARTH_FOLLOW_FORK=0).
     */
    const char *env[] = { env_dir, "HEARTH_CPU_HZ=1000", "HEARTH_HEAP_SAMPLE_RATE=4096",
                          "ASAN_OPTIONS=detect_leaks=0", sanitized() ? "HEARTH_FOLLOW_FORK=0" : "HEARTH_FOLLOW_FORK=1",
                          NULL };
    char *argv[] = { wl, "1", sanitized() ? "quiet-fork" : "busy-fork", NULL };
    int rc = run(dir, argv, env);
    if (rc != 0) {
        char *err = read_text(dir, "stderr");
        char msg[600];
        snprintf(msg, sizeof(msg), "%.500s", err);
        free(err);
        t_fail(__FILE__, __LINE__, "wl_stress exited %d: %s", rc, msg);
    }
    profile cpu, mem;
    ASSERT_OK(prof_init(&cpu));
    ASSERT_OK(prof_init(&mem));
    ASSERT(load_profiles(outdir, ".cpu.", &cpu) >= 1);
    /*
     * The parent and the 4 exec'd children each wrote a heap profile, and so
     * did the 4 children that exit() when they follow the fork.
     */
    int n_mem = load_profiles(outdir, ".memory.", &mem);
    printf("%d memory profiles, %zu cpu samples, %zu memory samples\n", n_mem, cpu.n_samples, mem.n_samples);
    ASSERT(n_mem >= (sanitized() ? 5 : 9));
    ASSERT(sum_with(&mem, prof_type_index(&mem, "alloc_space"), "realloc_storm") > 0);
    prof_release(&cpu);
    prof_release(&mem);
}

static void check_bad_setting(const char *setting, const char *expect)
{
    const char *dir = t_tmpdir();
    char wl[1200], env_dir[1200];
    workload("wl_cpu", wl, sizeof(wl));
    snprintf(env_dir, sizeof(env_dir), "HEARTH_OUTPUT_DIR=%s/out", dir);
    const char *env[] = { env_dir, setting, NULL };
    char *argv[] = { wl, "1", "1", NULL };
    ASSERT_EQ(run(dir, argv, env), 0);
    char *err = read_text(dir, "stderr");
    ASSERT_CONTAINS(err, expect);
    free(err);
}

TEST(bad_settings_leave_the_program_alone)
{
    check_bad_setting("HEARTH_SERVER_ADDRESS=ftp://example", "must start with http://, https:// or file://");
    check_bad_setting("HEARTH_CPU_HZ=fast", "HEARTH_CPU_HZ 'fast' must be an integer");
    check_bad_setting("HEARTH_PROFILES=cpu,disk", "unknown profile 'disk'");
    check_bad_setting("HEARTH_UPLOAD_INTERVAL=1ms", "at least 100ms");
    check_bad_setting("HEARTH_HEAP_SAMPLE_RATE=-5", "HEARTH_HEAP_SAMPLE_RATE");
    check_bad_setting("HEARTH_HEAP_SAMPLES_PER_SECOND=-1", "HEARTH_HEAP_SAMPLES_PER_SECOND");
    check_bad_setting("HEARTH_HEAP_SAMPLES_PER_SECOND=lots", "HEARTH_HEAP_SAMPLES_PER_SECOND");
    check_bad_setting("HEARTH_TAGS=novalue", "each tag must be key=value");
}

/*
 * A destination that cannot be set up turns profiling off, says which, and
 * does not hold up the exit: the exit used to wait out the 5 s bound on the
 * final flush for a collector that had already given up.
 */
TEST(unwritable_output_dir_is_reported)
{
    const char *dir = t_tmpdir();
    char wl[1200];
    workload("wl_cpu", wl, sizeof(wl));
    const char *env[] = { "HEARTH_OUTPUT_DIR=/proc/hearth-cannot-write-here", NULL };
    char *argv[] = { wl, "1", "1", NULL };
    ASSERT_EQ(run(dir, argv, env), 0);
    char *err = read_text(dir, "stderr");
    ASSERT_CONTAINS(err, "profiling is off");
    ASSERT_CONTAINS(err, "/proc/hearth-cannot-write-here");
    /* what hearth_stop logs when its bounded wait for the collector ran out */
    if (strstr(err, "did not finish its final flush"))
        t_fail(__FILE__, __LINE__, "the exit waited for a collector that had given up: %s", err);
    free(err);
}

/*
 * exec: the interval before a successful exec is flushed (before_exec is
 * in some profile), a failed exec leaves profiling on (after_failed_exec),
 * and the exec'd image profiles itself without overwriting those files.
 */
TEST(exec_keeps_the_interval_before_it)
{
    const char *dir = t_tmpdir();
    char wl[PATH_LEN], env_dir[PATH_LEN], outdir[PATH_LEN];
    workload_paths(dir, "wl_exec", wl, env_dir, outdir);
    const char *env[] = { env_dir, "HEARTH_PROFILES=cpu", "HEARTH_CPU_HZ=250", NULL };
    char *argv[] = { wl, NULL };
    int rc = run(dir, argv, env);
    if (rc != 0) {
        char *err = read_text(dir, "stderr");
        char msg[600];
        snprintf(msg, sizeof(msg), "%.500s", err);
        free(err);
        t_fail(__FILE__, __LINE__, "wl_exec exited %d: %s", rc, msg);
    }
    profile p;
    ASSERT_OK(prof_init(&p));
    /* Sessions: until the failed exec, until the exec, the new image. */
    int files = load_profiles(outdir, ".cpu.", &p);
    printf("%d cpu profiles\n", files);
    ASSERT(files >= 3);
    int t = prof_type_index(&p, "cpu");
    ASSERT(t >= 0);
    if (!tsan()) {
        int64_t before = sum_with(&p, t, "before_exec"), failed = sum_with(&p, t, "after_failed_exec");
        int64_t after = sum_with(&p, t, "after_exec");
        printf("cpu ns: before_exec %lld after_failed_exec %lld after_exec %lld\n", (long long)before,
               (long long)failed, (long long)after);
        ASSERT(before > 0);
        ASSERT(failed > 0);
        ASSERT(after > 0);
    }
    prof_release(&p);
}

/*
 * Stack depth: 150 frames of recursion under the sampled leaf. At the
 * default 64 frames the root end (main) is cut; with HEARTH_MAX_FRAMES=256
 * every deep_leaf sample reaches main.
 */
static void deep_run(const char *max_frames, int64_t *leaf, int64_t *with_main)
{
    const char *dir = t_tmpdir();
    char wl[PATH_LEN], env_dir[PATH_LEN], outdir[PATH_LEN];
    workload_paths(dir, "wl_deep", wl, env_dir, outdir);
    const char *env[] = { env_dir, "HEARTH_PROFILES=cpu", "HEARTH_CPU_HZ=250", max_frames, NULL };
    char *argv[] = { wl, "150", NULL };
    ASSERT_EQ(run(dir, argv, env), 0);
    profile p;
    ASSERT_OK(prof_init(&p));
    ASSERT(load_profiles(outdir, ".cpu.", &p) >= 1);
    int t = prof_type_index(&p, "samples");
    ASSERT(t >= 0);
    *leaf = *with_main = 0;
    for (size_t i = 0; i < p.n_samples; i++) {
        if (!sample_has(&p, i, "deep_leaf")) continue;
        *leaf += prof_values(&p, i)[t];
        if (sample_has(&p, i, "main")) *with_main += prof_values(&p, i)[t];
    }
    prof_release(&p);
}

TEST(deep_stacks_max_frames)
{
    int64_t leaf, with_main;
    deep_run("HEARTH_MAX_FRAMES=256", &leaf, &with_main);
    printf("HEARTH_MAX_FRAMES=256: %lld deep_leaf samples, %lld reach main\n", (long long)leaf, (long long)with_main);
    if (!tsan()) {
        ASSERT(leaf > 10);
        ASSERT(with_main >= leaf * 9 / 10);
    }
    deep_run("HEARTH_LOG_LEVEL=info", &leaf, &with_main);
    printf("default depth: %lld deep_leaf samples, %lld reach main\n", (long long)leaf, (long long)with_main);
    if (!tsan()) {
        ASSERT(leaf > 10);
        ASSERT_EQ(with_main, 0);
    }
}

TEST(api_start_stop_restart)
{
    const char *dir = t_tmpdir();
    char wl[1200], outdir[1200];
    workload("wl_api", wl, sizeof(wl));
    snprintf(outdir, sizeof(outdir), "%s/out", dir);
    const char *env[] = { NULL };
    char *argv[] = { wl, outdir, NULL };
    int rc = run(dir, argv, env);
    if (rc != 0) {
        char *err = read_text(dir, "stderr");
        char msg[600];
        snprintf(msg, sizeof(msg), "%.500s", err);
        free(err);
        t_fail(__FILE__, __LINE__, "wl_api exited %d: %s", rc, msg);
    }
    /* Two sessions, each flushed by hearth_stop(): one file each, each with its own work. */
    DIR *d = opendir(outdir);
    ASSERT(d != NULL);
    int files = 0;
    struct dirent *de;
    while ((de = readdir(d)))
        if (strstr(de->d_name, "apitest.cpu.")) files++;
    closedir(d);
    ASSERT_EQ(files, 2);
    profile p;
    ASSERT_OK(prof_init(&p));
    ASSERT_EQ(load_profiles(outdir, "apitest.cpu.", &p), 2);
    int t = prof_type_index(&p, "cpu");
    ASSERT(t >= 0);
    if (!tsan()) {
        ASSERT(sum_with(&p, t, "session_one") > 0);
        ASSERT(sum_with(&p, t, "session_two") > 0);
    }
    prof_release(&p);
    /*
     * The heap after the restart: the first session's churn raised the mean
     * (budget 1000 a second); the second session's 4 MiB must be counted at
     * its own 4 KiB mean. A first allocation weighted with the first
     * session's mean alone would add megabytes.
     */
    ASSERT_OK(prof_init(&p));
    ASSERT_EQ(load_profiles(outdir, "apitest.memory.", &p), 2);
    int ta = prof_type_index(&p, "alloc_space");
    ASSERT(ta >= 0);
    check_within("alloc_two alloc_space", (double)sum_with(&p, ta, "alloc_two"), 4.0 * 1048576, 0.15);
    prof_release(&p);
}
