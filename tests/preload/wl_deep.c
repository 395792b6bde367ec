/*
 * wl_deep.c: CPU work at the bottom of a deep stack.
 *
 *   wl_deep DEPTH
 *
 * main() calls descend() DEPTH times recursively (a real frame each: the
 * call is not in tail position), the innermost spins in deep_leaf() for
 * about half a second of CPU. A profiler keeping at least DEPTH + a few
 * frames sees main under deep_leaf; one that keeps fewer cuts the root end
 * (main) off. Prints nothing; exits 0.
 */
#include <stdint.h>
#include <stdlib.h>

static volatile uint64_t sink;

__attribute__((noinline)) void deep_leaf(void)
{
    uint64_t x = sink + 1;
    for (long i = 0; i < 400000000L; i++) x = x * 6364136223846793005ull + 1442695040888963407ull;
    sink = x;
}

__attribute__((noinline)) int descend(int n)
{
    if (n <= 0) {
        deep_leaf();
        return 0;
    }
    int r = descend(n - 1);
    sink += (uint64_t)r;  /* work after the call: no tail call, a frame per level */
    return r + 1;
}

int main(int argc, char **argv)
{
    int depth = argc > 1 ? atoi(argv[1]) : 100;
    return descend(depth) == depth ? 0 : 1;
}
