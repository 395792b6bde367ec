// shares_cxx.cc: the shares workload in C++ (namespaces, a class, a
// template), so the tests can check demangled names: work::Worker::run_a
// gets 70% of the CPU, work::Worker::run_b 30%, both through
// work::spin<int>() -> burn().
#include <cstdlib>
#include <cstdio>

extern "C" {
#include "spend.h"
}

namespace work {

template <typename T>
__attribute__((noinline)) void spin(T seconds_ms)
{
    spend(seconds_ms / 1000.0); // LINE_SPIN
}

class Worker {
public:
    __attribute__((noinline)) void run_a(int ms) { spin<int>(ms); } // LINE_RUN_A
    __attribute__((noinline)) void run_b(int ms) { spin<int>(ms); } // LINE_RUN_B
};

} // namespace work

int main(int argc, char **argv)
{
    double total = argc > 1 ? std::strtod(argv[1], nullptr) : 2.0;
    if (!(total > 0 && total < 600)) { std::fprintf(stderr, "shares_cxx: bad SECONDS\n"); return 2; }
    work::Worker w;
    for (double done = 0; done < total; done += 0.01) {
        w.run_a(7);
        w.run_b(3);
    }
    return 0;
}
