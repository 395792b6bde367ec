/*
 * hearth.c: the life cycle of libhearth.so: settings, hearth_start/stop,
 * load-time start for LD_PRELOAD, fork handling, and the interposed
 * pthread_create / sigaction / signal that keep profiling correct while the
 * program creates threads and installs its own signal handlers.
 *
 * Invariants:
 *   - The program is never aborted: every failure is logged once (pl_fail)
 *     and turns profiling off; interposed functions then pass straight
 *     through.
 *   - Our threads (collector, uploader, and anything they create) are marked
 *     internal: never sampled, never given a timer.
 *   - fork(): locks we own are taken in the prepare handler and released on
 *     both sides; the child forgets the parent's timers, ring and unsent
 *     samples (they belong to the parent), keeps the live heap table (those
 *     objects are live in the child too), and starts its own collector and
 *     timer: it keeps profiling as a separate process (HEARTH_FOLLOW_FORK=0
 *     makes it stop instead).
 *   - exec(): the exec family is interposed (exec.c): before the real call
 *     profiling stops and the interval so far is flushed (bounded wait, as
 *     at exit); if the exec fails, profiling starts again with the same
 *     settings. If LD_PRELOAD is still set, the new image starts fresh.
 *   - The program's own use of our signal (SIGPROF by default) still works:
 *     sigaction()/signal() on it record the program's handler, which ours
 *     calls for every signal that is not from our timers.
 */
#include "core/common.h"

#include <dlfcn.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "core/err.h"
#include "core/log.h"
#include "core/units.h"
#include "preload/preload.h"

pl_state pl_g;

static pthread_mutex_t life_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_key_t thread_key;
static int thread_key_ok;
static int atfork_done;
static int follow_fork = 1;
static _Atomic uint64_t session_base;  /* samples counted before this process's session began (exec.c skips an empty flush) */
static uint64_t samples_taken(void) { return atomic_load(&pl_g.n_cpu) + atomic_load(&pl_g.n_heap); }

#define PL_MAX_INTERNAL 16
static _Atomic pid_t internal_tids[PL_MAX_INTERNAL];

/* ---- guard and internal threads ---- */

void pl_guard_enter(void) { pl_tls.guard++; }
void pl_guard_exit(void) { pl_tls.guard--; }

void pl_internal_register(void)
{
    pl_tls.internal = 1;
    pl_tls.tid = (pid_t)syscall(SYS_gettid);
    for (int i = 0; i < PL_MAX_INTERNAL; i++) {
        pid_t expected = 0;
        if (atomic_compare_exchange_strong(&internal_tids[i], &expected, pl_tls.tid)) return;
    }
}

static void internal_unregister(void)
{
    for (int i = 0; i < PL_MAX_INTERNAL; i++) {
        pid_t t = pl_tls.tid;
        if (atomic_compare_exchange_strong(&internal_tids[i], &t, 0)) return;
    }
}

int pl_internal_tid(pid_t tid)
{
    for (int i = 0; i < PL_MAX_INTERNAL; i++)
        if (atomic_load(&internal_tids[i]) == tid) return 1;
    return 0;
}

void pl_fail(const char *what, int err)
{
    int expected = 0;
    if (!atomic_compare_exchange_strong(&pl_g.failed, &expected, 1)) return;
    atomic_store(&pl_g.cpu_on, 0);
    atomic_store(&pl_g.heap_on, 0);
    log_error("hearth: %s: %s; profiling is off, the program goes on", what, hearth_strerror(err));
}

/* ---- real functions ---- */

static int (*real_sigaction_fn)(int, const struct sigaction *, struct sigaction *);
static int (*real_pthread_create_fn)(pthread_t *, const pthread_attr_t *, void *(*)(void *), void *);
static sighandler_t (*real_signal_fn)(int, sighandler_t);

int pl_real_sigaction(int signo, const struct sigaction *act, struct sigaction *old)
{
    if (!real_sigaction_fn) {
        real_sigaction_fn = (int (*)(int, const struct sigaction *, struct sigaction *))dlsym(RTLD_NEXT, "sigaction");
        if (!real_sigaction_fn) {
            errno = ENOSYS;
            return -1;
        }
    }
    return real_sigaction_fn(signo, act, old);
}

/* ---- settings ---- */

static const char *env_or(const char *opt, const char *name)
{
    if (opt && *opt) return opt;
    const char *v = getenv(name);
    return v && *v ? v : NULL;
}

static int copy_setting(char *dst, size_t size, const char *src, const char *name, char *err, size_t err_size)
{
    if (!src) {
        dst[0] = 0;
        return 0;
    }
    if (strlen(src) >= size) {
        snprintf(err, err_size, "%s is longer than %zu bytes", name, size - 1);
        return HE_USAGE;
    }
    snprintf(dst, size, "%s", src);
    return 0;
}

/*
 * Environment variable name as an integer from lo to hi (lo_note says what
 * lo means, or ""): 1 with *out set, 0 when unset or empty, HE_USAGE with
 * err set when it is anything else.
 */
static int env_uint(const char *name, unsigned long lo, unsigned long hi, const char *lo_note, unsigned long *out,
                    char *err, size_t err_size)
{
    const char *s = getenv(name);
    char *end;
    if (!s || !*s) return 0;
    unsigned long v = strtoul(s, &end, 10);
    if (*end || s[0] == '-' || v < lo || v > hi) {
        snprintf(err, err_size, "%s '%.60s' must be an integer from %lu%s to %lu", name, s, lo, lo_note, hi);
        return HE_USAGE;
    }
    *out = v;
    return 1;
}

int pl_config_load(pl_config *c, const hearth_options *o, char *err, size_t err_size)
{
    hearth_options none;
    memset(&none, 0, sizeof(none));
    if (!o) o = &none;
    memset(c, 0, sizeof(*c));
    int rc;
    const char *server = env_or(o->server_address, "HEARTH_SERVER_ADDRESS");
    const char *outdir = getenv("HEARTH_OUTPUT_DIR");
    char tmp[600];
    if (!server && outdir && *outdir) {
        snprintf(tmp, sizeof(tmp), "file://%s", outdir);
        server = tmp;
    }
    if (!server) {
        snprintf(err, err_size, "no destination: set HEARTH_SERVER_ADDRESS (http://host:4040 or file:///dir)");
        return HE_USAGE;
    }
    if (strncmp(server, "http://", 7) != 0 && strncmp(server, "https://", 8) != 0 && strncmp(server, "file://", 7) != 0) {
        snprintf(err, err_size, "HEARTH_SERVER_ADDRESS '%.200s' must start with http://, https:// or file://", server);
        return HE_USAGE;
    }
    if ((rc = copy_setting(c->server, sizeof(c->server), server, "HEARTH_SERVER_ADDRESS", err, err_size))) return rc;
    const char *app = env_or(o->application_name, "HEARTH_APPLICATION_NAME");
    if (!app) app = program_invocation_short_name;
    if (!app || !*app) app = "unknown";
    if ((rc = copy_setting(c->app, sizeof(c->app), app, "HEARTH_APPLICATION_NAME", err, err_size))) return rc;
    for (char *p = c->app; *p; p++)
        if (*p == '{' || *p == '}' || *p == ',' || *p == '=' || *p == ' ') *p = '_';
    if ((rc = copy_setting(c->tags, sizeof(c->tags), env_or(o->tags, "HEARTH_TAGS"), "HEARTH_TAGS", err, err_size))) return rc;
    if (c->tags[0]) {
        /* k=v[,k=v]: every pair has a non-empty key and an '='. */
        const char *p = c->tags;
        while (*p) {
            const char *comma = strchr(p, ',');
            size_t len = comma ? (size_t)(comma - p) : strlen(p);
            const char *eq = memchr(p, '=', len);
            if (!eq || eq == p || memchr(p, '{', len) || memchr(p, '}', len)) {
                snprintf(err, err_size, "HEARTH_TAGS '%.200s': each tag must be key=value, separated by commas", c->tags);
                return HE_USAGE;
            }
            p += len + (comma ? 1 : 0);
        }
    }
    if ((rc = copy_setting(c->auth_token, sizeof(c->auth_token), env_or(o->auth_token, "HEARTH_AUTH_TOKEN"), "HEARTH_AUTH_TOKEN", err, err_size))) return rc;
    if ((rc = copy_setting(c->tenant, sizeof(c->tenant), env_or(o->tenant_id, "HEARTH_TENANT_ID"), "HEARTH_TENANT_ID", err, err_size))) return rc;

    c->profiles = o->profiles;
    const char *profiles = getenv("HEARTH_PROFILES");
    if (!c->profiles && profiles && *profiles) {
        char list[128];
        snprintf(list, sizeof(list), "%s", profiles);
        char *save = NULL;
        for (char *tok = strtok_r(list, ", ", &save); tok; tok = strtok_r(NULL, ", ", &save)) {
            if (strcmp(tok, "cpu") == 0) c->profiles |= HEARTH_PROFILE_CPU;
            else if (strcmp(tok, "heap") == 0 || strcmp(tok, "memory") == 0) c->profiles |= HEARTH_PROFILE_HEAP;
            else if (strcmp(tok, "none") == 0) c->profiles |= 0x100;
            else {
                snprintf(err, err_size, "HEARTH_PROFILES: unknown profile '%.60s' (known: cpu, heap)", tok);
                return HE_USAGE;
            }
        }
        c->profiles &= HEARTH_PROFILE_CPU | HEARTH_PROFILE_HEAP;
    } else if (!c->profiles) {
        c->profiles = HEARTH_PROFILE_CPU | HEARTH_PROFILE_HEAP;
    }

    unsigned long num;
    c->cpu_hz = o->cpu_hz;
    if (!c->cpu_hz) {
        if ((rc = env_uint("HEARTH_CPU_HZ", 1, 10000, "", &num, err, err_size)) < 0) return rc;
        if (rc) c->cpu_hz = (unsigned)num;
    }
    if (!c->cpu_hz) c->cpu_hz = 100;
    if (c->cpu_hz > 10000) {
        snprintf(err, err_size, "cpu_hz %u is above 10000", c->cpu_hz);
        return HE_USAGE;
    }

    c->max_frames = o->max_frames;
    if (!c->max_frames) {
        if ((rc = env_uint("HEARTH_MAX_FRAMES", 1, PL_FRAMES_CAP, "", &num, err, err_size)) < 0) return rc;
        if (rc) c->max_frames = (unsigned)num;
    }
    if (!c->max_frames) c->max_frames = PL_FRAMES_DEFAULT;
    if (c->max_frames > PL_FRAMES_CAP) {
        snprintf(err, err_size, "max_frames %u is above %d", c->max_frames, PL_FRAMES_CAP);
        return HE_USAGE;
    }

    c->heap_rate = o->heap_sample_rate;
    const char *rate = getenv("HEARTH_HEAP_SAMPLE_RATE");
    if (!c->heap_rate && rate && *rate) {
        if (parse_size(rate, &c->heap_rate) != 0 || c->heap_rate == 0) {
            snprintf(err, err_size, "HEARTH_HEAP_SAMPLE_RATE '%.60s' must be a positive size in bytes (e.g. 524288 or 512KiB)", rate);
            return HE_USAGE;
        }
    }
    int rate_given = c->heap_rate != 0;
    if (!c->heap_rate) c->heap_rate = 524288;

    /* A budget when none was given: the default's, unless the rate was set (then it is kept exactly). */
    long budget = o->heap_samples_per_second < 0 ? 0 : o->heap_samples_per_second;
    int budget_given = o->heap_samples_per_second != 0;
    if (!budget_given) {
        if ((rc = env_uint("HEARTH_HEAP_SAMPLES_PER_SECOND", 0, PL_HEAP_BUDGET_MAX, " (no limit)", &num, err,
                           err_size)) < 0)
            return rc;
        if (rc) {
            budget = (long)num;
            budget_given = 1;
        }
    }
    if (budget > PL_HEAP_BUDGET_MAX) {
        snprintf(err, err_size, "heap_samples_per_second %ld is above %d", budget, PL_HEAP_BUDGET_MAX);
        return HE_USAGE;
    }
    c->heap_budget = (uint32_t)(budget_given ? budget : rate_given ? 0 : PL_HEAP_BUDGET_DEFAULT);

    c->interval_ns = o->upload_interval_ms * 1000000ull;
    const char *iv = getenv("HEARTH_UPLOAD_INTERVAL");
    if (!c->interval_ns && iv && *iv) {
        int64_t ns;
        if (parse_duration_ns(iv, &ns) != 0 || ns < 100000000) {
            snprintf(err, err_size, "HEARTH_UPLOAD_INTERVAL '%.60s' must be a duration of at least 100ms (e.g. 10s)", iv);
            return HE_USAGE;
        }
        c->interval_ns = (uint64_t)ns;
    }
    if (!c->interval_ns) c->interval_ns = 10000000000ull;

    c->signo = SIGPROF;
    const char *sig = getenv("HEARTH_CPU_SIGNAL");
    if (sig && *sig) {
        char *end;
        long v = strtol(sig, &end, 10);
        if (*end || v < 1 || v > SIGRTMAX || v == SIGKILL || v == SIGSTOP) {
            snprintf(err, err_size, "HEARTH_CPU_SIGNAL '%.60s' must be a signal number (default %d, SIGPROF)", sig, SIGPROF);
            return HE_USAGE;
        }
        c->signo = (int)v;
    }
    const char *ff = getenv("HEARTH_FOLLOW_FORK");
    follow_fork = !(ff && strcmp(ff, "0") == 0);
    return 0;
}

/* ---- threads ---- */

static void thread_gone(void *v)
{
    (void)v;
    pl_cpu_thread_stop();
}

typedef struct pl_start {
    void *(*fn)(void *);
    void *arg;
    uint8_t internal;
} pl_start;

static void *trampoline(void *v)
{
    pl_start s = *(pl_start *)v;
    pl_guard_enter();
    free(v);
    if (s.internal) {
        pl_internal_register();
    } else {
        pl_thread_bounds();
        if (thread_key_ok) pthread_setspecific(thread_key, (void *)1);
        if (atomic_load(&pl_g.running) && !atomic_load(&pl_g.failed)) pl_cpu_thread_start();
    }
    pl_guard_exit();
    void *ret = s.fn(s.arg);
    if (s.internal) internal_unregister();
    return ret;
}

int pthread_create(pthread_t *t, const pthread_attr_t *attr, void *(*fn)(void *), void *arg)
{
    if (!real_pthread_create_fn) {
        real_pthread_create_fn = (int (*)(pthread_t *, const pthread_attr_t *, void *(*)(void *), void *))
            dlsym(RTLD_NEXT, "pthread_create");
        if (!real_pthread_create_fn) return EAGAIN;
    }
    if (atomic_load(&pl_g.failed) || (!atomic_load(&pl_g.running) && !pl_tls.internal))
        return real_pthread_create_fn(t, attr, fn, arg);
    pl_guard_enter();
    pl_start *s = malloc(sizeof(*s));
    pl_guard_exit();
    if (!s) return real_pthread_create_fn(t, attr, fn, arg);
    s->fn = fn;
    s->arg = arg;
    s->internal = pl_tls.internal;
    int rc = real_pthread_create_fn(t, attr, trampoline, s);
    if (rc != 0) {
        pl_guard_enter();
        free(s);
        pl_guard_exit();
    }
    return rc;
}

/* ---- signals used by the program ---- */

int sigaction(int signo, const struct sigaction *act, struct sigaction *old)
{
    if (signo == pl_g.cfg.signo && pl_handler_installed()) {
        if (old) pl_cpu_get_chained(old);
        if (act) pl_cpu_set_chained(act);
        return 0;
    }
    return pl_real_sigaction(signo, act, old);
}

sighandler_t signal(int signo, sighandler_t handler)
{
    if (signo == pl_g.cfg.signo && pl_handler_installed()) {
        struct sigaction sa, old;
        memset(&sa, 0, sizeof(sa));
        sa.sa_handler = handler;
        sa.sa_flags = SA_RESTART;
        sigemptyset(&sa.sa_mask);
        pl_cpu_get_chained(&old);
        pl_cpu_set_chained(&sa);
        return (old.sa_flags & SA_SIGINFO) ? SIG_DFL : old.sa_handler;
    }
    if (!real_signal_fn) {
        real_signal_fn = (sighandler_t (*)(int, sighandler_t))dlsym(RTLD_NEXT, "signal");
        if (!real_signal_fn) {
            errno = ENOSYS;
            return SIG_ERR;
        }
    }
    return real_signal_fn(signo, handler);
}

/* ---- fork ---- */

static void fork_prepare(void)
{
    pl_guard_enter();
    pthread_mutex_lock(&life_lock);
    pl_collector_fork_prepare();
    pl_cpu_lock();
    pl_heap_lock();
}

static void fork_parent(void)
{
    pl_heap_unlock();
    pl_cpu_unlock();
    pl_collector_fork_parent();
    pthread_mutex_unlock(&life_lock);
    pl_guard_exit();
}

static void fork_child(void)
{
    pl_heap_unlock();
    pthread_mutex_init(&life_lock, NULL);
    pl_g.pid = getpid();
    atomic_store(&session_base, samples_taken());
    pl_cpu_after_fork_child();
    for (int i = 0; i < PL_MAX_INTERNAL; i++) atomic_store(&internal_tids[i], 0);
    pl_ring_reset();
    pl_collector_after_fork_child();
    pl_guard_exit();
    if (!atomic_load(&pl_g.running) || atomic_load(&pl_g.failed)) return;
    if (!follow_fork) {
        atomic_store(&pl_g.running, 0);
        atomic_store(&pl_g.cpu_on, 0);
        atomic_store(&pl_g.heap_on, 0);
        return;
    }
    pl_guard_enter();
    int rc = pl_collector_start();
    pl_guard_exit();
    if (rc) {
        pl_fail("cannot start the collector thread in a forked child", rc);
        return;
    }
    pl_cpu_thread_start();
}

/* ---- start / stop ---- */

/* Under life_lock, pl_g.cfg loaded: starts everything. 0 or a negative error (logged). */
static int start_locked(void)
{
    int rc;
    pl_g.pid = getpid();
    pl_g.start_ns = now_ns();
    atomic_store(&session_base, samples_taken());
    if ((rc = pl_ring_init(pl_g.cfg.max_frames))) {
        log_error("hearth: cannot map the sample ring: %s; profiling is off", hearth_strerror(rc));
        return rc;
    }
    if (pl_g.cfg.max_frames > pl_ring_frames()) {
        log_warn("hearth: HEARTH_MAX_FRAMES %u is deeper than this process's first session (%u): using %u",
                 pl_g.cfg.max_frames, pl_ring_frames(), pl_ring_frames());
        pl_g.cfg.max_frames = pl_ring_frames();
    }
    if (!thread_key_ok && pthread_key_create(&thread_key, thread_gone) == 0) thread_key_ok = 1;
    if (!atfork_done && pthread_atfork(fork_prepare, fork_parent, fork_child) == 0) atfork_done = 1;
    if (pl_g.cfg.profiles & HEARTH_PROFILE_HEAP) {
        if ((rc = pl_heap_init())) {
            log_error("hearth: heap profiling cannot start: %s; profiling is off", hearth_strerror(rc));
            return rc;
        }
    }
    if (pl_g.cfg.profiles & HEARTH_PROFILE_CPU) {
        if ((rc = pl_cpu_install())) {
            log_error("hearth: cannot install the signal %d handler: %s; profiling is off", pl_g.cfg.signo, hearth_strerror(rc));
            return rc;
        }
    }
    /*
     * cpu_on before running: a thread whose start the wrapper sees from
     * here on arms its own timer (cpu.c's reg_add refuses while cpu_on is
     * clear), and the scan below finds the threads already there.
     */
    if (pl_g.cfg.profiles & HEARTH_PROFILE_CPU) atomic_store(&pl_g.cpu_on, 1);
    atomic_store(&pl_g.running, 1);
    if ((rc = pl_collector_start())) {
        atomic_store(&pl_g.cpu_on, 0);
        pl_cpu_stop_all();  /* timers threads started meanwhile armed */
        atomic_store(&pl_g.running, 0);
        log_error("hearth: cannot start the collector thread: %s; profiling is off", hearth_strerror(rc));
        return rc;
    }
    pl_thread_bounds();  /* registers the starting thread (heap sampling needs it under sanitizers) */
    if (pl_g.cfg.profiles & HEARTH_PROFILE_CPU) {
        if (thread_key_ok) pthread_setspecific(thread_key, (void *)1);
        pl_cpu_thread_start();
        pl_cpu_scan_threads();
    }
    if (pl_g.cfg.profiles & HEARTH_PROFILE_HEAP) pl_heap_start();
    log_debug("hearth: profiling %s%s of %s every %.3gs to %s", (pl_g.cfg.profiles & HEARTH_PROFILE_CPU) ? "cpu " : "",
              (pl_g.cfg.profiles & HEARTH_PROFILE_HEAP) ? "heap" : "", pl_g.cfg.app,
              (double)pl_g.cfg.interval_ns / 1e9, pl_g.cfg.server);
    return 0;
}

/* Under life_lock, running: stops sampling and flushes (bounded wait). */
static void stop_locked(void)
{
    atomic_store(&pl_g.cpu_on, 0);
    pl_heap_stop();
    pl_cpu_stop_all();
    pl_collector_stop(1);
    atomic_store(&pl_g.running, 0);
}

int hearth_start(const hearth_options *opts)
{
    char err[300];
    int rc;
    pl_guard_enter();
    pthread_mutex_lock(&life_lock);
    if (atomic_load(&pl_g.running)) {
        rc = -EALREADY;
        goto out;
    }
    atomic_store(&pl_g.failed, 0);
    rc = pl_config_load(&pl_g.cfg, opts, err, sizeof(err));
    if (rc) {
        log_error("hearth: %s; profiling is off", err);
        goto out;
    }
    rc = start_locked();
out:
    pthread_mutex_unlock(&life_lock);
    pl_guard_exit();
    return rc;
}

void hearth_stop(void)
{
    pl_guard_enter();
    pthread_mutex_lock(&life_lock);
    if (atomic_load(&pl_g.running)) stop_locked();
    pthread_mutex_unlock(&life_lock);
    pl_guard_exit();
}

/* ---- exec ---- */

static int exec_stopped;   /* under life_lock: stopped by pl_exec_prepare, to restart if exec fails */

void pl_exec_prepare(void)
{
    /*
     * Only the process that started profiling: a vfork() child shares our
     * memory and must not touch it (getpid() tells it apart; atfork
     * handlers do not run for vfork). trylock: a program exec'ing while
     * another of its threads starts or stops us goes on without the flush.
     */
    if (!atomic_load(&pl_g.running) || getpid() != pl_g.pid) return;
    /* Nothing sampled in this process yet (the usual fork-then-exec child): nothing to lose, no wait. */
    if (samples_taken() == atomic_load(&session_base)) return;
    pl_guard_enter();
    if (pthread_mutex_trylock(&life_lock) == 0) {
        if (atomic_load(&pl_g.running)) {
            stop_locked();
            exec_stopped = 1;
        }
        pthread_mutex_unlock(&life_lock);
    }
    pl_guard_exit();
}

void pl_exec_failed(void)
{
    int saved = errno;
    pl_guard_enter();
    if (pthread_mutex_trylock(&life_lock) == 0) {
        if (exec_stopped && !atomic_load(&pl_g.running)) {
            exec_stopped = 0;
            if (start_locked() == 0) log_debug("hearth: exec failed; profiling resumed");
        }
        pthread_mutex_unlock(&life_lock);
    }
    pl_guard_exit();
    errno = saved;
}

void hearth_get_stats(hearth_stats *st)
{
    memset(st, 0, sizeof(*st));
    st->cpu_samples = atomic_load(&pl_g.n_cpu);
    st->cpu_dropped = atomic_load(&pl_g.n_cpu_dropped);
    st->heap_samples = atomic_load(&pl_g.n_heap);
    st->heap_dropped = atomic_load(&pl_g.n_heap_dropped);
    st->heap_live = pl_heap_live_count();
    st->threads = atomic_load(&pl_g.n_threads);
    st->uploads = pl_collector_uploads(&st->upload_errors, &st->upload_dropped);
}

/* Load-time start for LD_PRELOAD (and for linked programs run with HEARTH_* set). */
__attribute__((constructor)) static void pl_load(void)
{
    const char *autostart = getenv("HEARTH_AUTOSTART");
    if (autostart && strcmp(autostart, "0") == 0) return;
    if (!getenv("HEARTH_SERVER_ADDRESS") && !getenv("HEARTH_OUTPUT_DIR")) return;
    hearth_start(NULL);
}

__attribute__((destructor)) static void pl_unload(void)
{
    if (!atomic_load(&pl_g.running)) return;
    /*
     * At exit other threads may still run and may hold our locks: do not
     * take any lock that could block; stop sampling and let the collector
     * flush (bounded wait inside pl_collector_stop).
     */
    atomic_store(&pl_g.cpu_on, 0);
    pl_heap_stop();
    pl_guard_enter();
    if (pthread_mutex_trylock(&life_lock) == 0) {
        pl_collector_stop(1);
        hearth_stats st;
        hearth_get_stats(&st);
        log_debug("hearth: at exit: %" PRIu64 " cpu samples (%" PRIu64 " dropped), %" PRIu64 " heap samples (%" PRIu64
                  " dropped, %" PRIu64 " live), %" PRIu64 " profiles written/queued, %" PRIu64 " errors",
                  st.cpu_samples, st.cpu_dropped, st.heap_samples, st.heap_dropped, st.heap_live, st.uploads,
                  st.upload_errors);
        atomic_store(&pl_g.running, 0);
        pthread_mutex_unlock(&life_lock);
    }
    pl_guard_exit();
}
