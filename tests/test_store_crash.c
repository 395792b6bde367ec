/*
 * test_store_crash.c: the store under SIGKILL. A child process ingests
 * profiles in a loop (fsync=always, a tiny head so it flushes and compacts
 * all the time) and reports each acknowledged profile on a pipe; the parent
 * kills it at a random moment, reopens the directory and checks that every
 * acknowledged profile is there exactly once (a duplicate would double its
 * total) and that `verify` finds nothing damaged. Repeated for a bounded
 * number of rounds (well under a minute in total).
 */
#include "t.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "core/common.h"
#include "core/log.h"
#include "core/mem.h"
#include "core/units.h"
#include "store/store.h"

#define SEC 1000000000LL
#define CPU_TYPE "process_cpu:cpu:nanoseconds:cpu:nanoseconds"
#define N_SAMPLES 50
#define PROFILE_TOTAL (N_SAMPLES * (N_SAMPLES + 1) / 2)

static int64_t t0;

static void crash_opts(store_opts *o)
{
    store_opts_default(o);
    o->fsync = STORE_FSYNC_ALWAYS;
    o->head_max_bytes = 48 * 1024; /* flush every few profiles */
    o->block_ns = 600 * SEC;
    o->compact_ns = 3600 * SEC;
}

static void child(const char *dir, int fd, uint32_t first, uint32_t seed)
{
    store_opts o;
    crash_opts(&o);
    log_set_level(LOG_ERROR);
    store *s;
    herr e;
    herr_clear(&e);
    if (store_open(&s, dir, &o, &e)) {
        fprintf(stderr, "child open: %s\n", e.msg);
        _exit(3);
    }
    uint64_t r = seed * 2654435761u + 1;
    for (uint32_t i = first;; i++) {
        profile p;
        prof_init(&p);
        prof_add_type(&p, "cpu", "nanoseconds");
        for (int k = 0; k < N_SAMPLES; k++) {
            uint32_t locs[8];
            int depth = 2 + (int)(r % 6);
            for (int d = 0; d < depth; d++) {
                r ^= r << 13;
                r ^= r >> 7;
                r ^= r << 17;
                char name[32];
                snprintf(name, sizeof(name), "fn_%u", (unsigned)(r % 200));
                locs[d] = (uint32_t)prof_location_for_name(&p, name, strlen(name));
            }
            int32_t st = prof_stack_root_first(&p, locs, (size_t)depth);
            int64_t v = k + 1;
            prof_sample_add(&p, (uint32_t)st, &v, NULL, 0);
        }
        store_label l[] = {{"service_name", "crashy"}, {"__name__", "process_cpu"}};
        herr_clear(&e);
        if (store_ingest(s, "anonymous", l, 2, &p, t0 + (int64_t)i * SEC, SEC, &e) == 0) {
            if (write(fd, &i, sizeof(i)) != sizeof(i))
                _exit(4);
        }
        prof_release(&p);
        if (i % 25 == 0)
            store_compact(s, &e);
    }
}

TEST(sigkill_loses_no_acknowledged_profile)
{
    const char *dir = t_tmpdir();
    t0 = (now_ns() / (3600 * SEC) - 6) * 3600 * SEC;
    srand((unsigned)time(NULL));
    uint32_t next = 0;
    int rounds = getenv("HEARTH_SANITIZE") ? 8 : 15;
    uint64_t total_acked = 0;
    for (int round = 0; round < rounds; round++) {
        int fds[2];
        ASSERT_OK(pipe(fds));
        pid_t pid = fork();
        ASSERT(pid >= 0);
        if (pid == 0) {
            close(fds[0]);
            child(dir, fds[1], next, (uint32_t)round + 1);
            _exit(0);
        }
        close(fds[1]);
        usleep((useconds_t)(50000 + rand() % 400000));
        kill(pid, SIGKILL);
        int status;
        waitpid(pid, &status, 0);
        ASSERT(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
        /* Every acknowledged sequence number. */
        uint32_t *acked = NULL;
        size_t n_acked = 0, cap = 0;
        uint32_t v;
        while (read(fds[0], &v, sizeof(v)) == sizeof(v)) {
            if (HGROW(acked, cap, n_acked + 1))
                abort();
            acked[n_acked++] = v;
        }
        close(fds[0]);
        total_acked += n_acked;

        store_opts o;
        crash_opts(&o);
        store *s;
        herr e;
        herr_clear(&e);
        log_set_level(LOG_ERROR);
        int rc = store_open(&s, dir, &o, &e);
        if (rc)
            t_fail(__FILE__, __LINE__, "round %d: reopen failed: %s", round, herr_msg(&e, rc));
        uint32_t hi = next + 90000;
        store_query q;
        memset(&q, 0, sizeof(q));
        q.tenant = "anonymous";
        q.profile_type = CPU_TYPE;
        q.start_ns = t0;
        q.end_ns = t0 + (int64_t)hi * SEC;
        store_ts_list tl;
        ASSERT_OK(store_select_series(s, &q, SEC, NULL, 0, STORE_AGG_SUM, &tl, &e));
        ASSERT(tl.n <= 1);
        uint8_t *present = xcalloc(hi + 1, 1);
        uint32_t max_present = 0;
        for (size_t i = 0; tl.n && i < tl.v[0].n_points; i++) {
            int64_t k = (tl.v[0].points[i].ts_ns - t0) / SEC;
            if ((int64_t)tl.v[0].points[i].value != PROFILE_TOTAL)
                t_fail(__FILE__, __LINE__, "round %d: profile %" PRId64 " has total %.0f, want %d (lost or duplicated samples)",
                       round, k, tl.v[0].points[i].value, PROFILE_TOTAL);
            present[k] = 1;
            if ((uint32_t)k > max_present)
                max_present = (uint32_t)k;
        }
        for (size_t i = 0; i < n_acked; i++)
            if (!present[acked[i]])
                t_fail(__FILE__, __LINE__, "round %d: acknowledged profile %u is missing after SIGKILL", round, acked[i]);
        store_ts_release(&tl);
        free(present);
        free(acked);
        store_close(s);
        log_set_level(LOG_INFO);

        buf rep;
        buf_init(&rep, 0);
        uint64_t problems = 0;
        ASSERT_OK(store_verify(dir, &rep, &problems, &e));
        if (problems)
            t_fail(__FILE__, __LINE__, "round %d: verify: %s", round, rep.data);
        buf_release(&rep);
        next = MAX(next, max_present + 1);
    }
    ASSERT(total_acked > 0);
    printf("  %d rounds, %" PRIu64 " acknowledged profiles checked\n", rounds, total_acked);
}
