/*
 * folded_bench.c: folded-stacks parse throughput, in process: reads FILE
 * once, then times folded_parse() into a fresh profile ROUNDS times and
 * prints the best and mean run as MB/s of input. Also times folded_write()
 * of the parsed profile. Usage: folded_bench FILE [ROUNDS]
 */
#include <time.h>

#include "core/common.h"
#include "core/buf.h"
#include "format/folded.h"
#include "profile/profile.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
    buf in = BUF_INIT, out = BUF_INIT;
    int rounds = argc > 2 ? (int)strtol(argv[2], NULL, 10) : 5;
    double best = 1e30, sum = 0, wbest = 1e30;
    size_t n_samples = 0, n_locs = 0;
    herr e;
    if (argc < 2) { fprintf(stderr, "usage: folded_bench FILE [ROUNDS]\n"); return 2; }
    if (rounds < 1) rounds = 1;
    buf_init(&in, (size_t)4 << 30);
    if (buf_read_file(&in, argv[1])) { fprintf(stderr, "folded_bench: cannot read %s\n", argv[1]); return 1; }
    for (int r = 0; r < rounds; r++) {
        profile p;
        double t0, t1;
        if (prof_init(&p)) return 1;
        p.limits.max_samples = UINT32_MAX;
        herr_clear(&e);
        t0 = now_s();
        if (folded_parse(&p, in.data, in.len, &e)) { fprintf(stderr, "folded_bench: %s\n", e.msg); return 1; }
        t1 = now_s();
        if (t1 - t0 < best) best = t1 - t0;
        sum += t1 - t0;
        n_samples = p.n_samples;
        n_locs = p.n_locations;
        if (r < 2) {
            buf_reset(&out);
            t0 = now_s();
            if (folded_write(&p, 0, &out, &e)) { fprintf(stderr, "folded_bench: %s\n", e.msg); return 1; }
            t1 = now_s();
            if (t1 - t0 < wbest) wbest = t1 - t0;
        }
        prof_release(&p);
    }
    printf("input %.1f MB, %zu distinct stacks, %zu distinct frames\n", (double)in.len / 1e6, n_samples, n_locs);
    printf("folded_parse (in process, best)  %8.1f ms  %8.1f MB/s\n", best * 1e3, (double)in.len / 1e6 / best);
    printf("folded_parse (in process, mean)  %8.1f ms  %8.1f MB/s\n", sum / rounds * 1e3, (double)in.len / 1e6 / (sum / rounds));
    printf("folded_write (sorted, best)      %8.1f ms\n", wbest * 1e3);
    printf("BEST_S %.6f\n", best);
    buf_release(&in);
    buf_release(&out);
    return 0;
}
