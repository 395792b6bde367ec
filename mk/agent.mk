# agent.mk: the deterministic workloads of the agent tests (tests/agent/),
# built under $(BUILD)/workloads/ in the variants the unwinder must handle.
#   shares_fp        frame pointers, but frameless leaves (-momit-leaf-frame-pointer)
#   shares_nofp      -fomit-frame-pointer everywhere
#   shares_lib       burn()/spend() in a shared library (libshares.so), PIE main
#   shares_cxx       C++ (namespaces, class, template)
#   shares_stripped  stripped binary, symbols only in shares_stripped.debug (debuglink + build ID)
#   jit              generated code in an anonymous mapping, named by /tmp/perf-PID.map
# -fno-optimize-sibling-calls keeps func_a -> spend a real call (a tail call hides
# func_a from every unwinder, perf too).
# Threads and fork/exec are modes of the same binaries (see shares.c).
WL       := $(BUILD)/workloads
WL_SRC   := tests/agent/shares.c tests/agent/spend.c
WL_CFLAGS := -O2 -g -pthread -fno-optimize-sibling-calls -Itests/agent
WORKLOADS := $(WL)/shares_fp $(WL)/shares_nofp $(WL)/shares_lib $(WL)/libshares.so \
             $(WL)/shares_cxx $(WL)/shares_stripped $(WL)/jit

all: $(WORKLOADS)
workloads: $(WORKLOADS)

$(WL)/shares_fp: $(WL_SRC) tests/agent/spend.h
	@mkdir -p $(dir $@)
	$(CC) $(WL_CFLAGS) -fno-omit-frame-pointer -momit-leaf-frame-pointer -o $@ $(WL_SRC)

$(WL)/shares_nofp: $(WL_SRC) tests/agent/spend.h
	@mkdir -p $(dir $@)
	$(CC) $(WL_CFLAGS) -fomit-frame-pointer -o $@ $(WL_SRC)

$(WL)/libshares.so: tests/agent/spend.c tests/agent/spend.h
	@mkdir -p $(dir $@)
	$(CC) $(WL_CFLAGS) -fomit-frame-pointer -fPIC -shared -o $@ tests/agent/spend.c

$(WL)/shares_lib: tests/agent/shares.c $(WL)/libshares.so
	@mkdir -p $(dir $@)
	$(CC) $(WL_CFLAGS) -fno-omit-frame-pointer -fPIE -pie -o $@ tests/agent/shares.c -L$(WL) -lshares -Wl,-rpath,'$$ORIGIN'

$(WL)/shares_cxx: tests/agent/shares_cxx.cc tests/agent/spend.c tests/agent/spend.h
	@mkdir -p $(dir $@)
	$(CC) $(WL_CFLAGS) -fomit-frame-pointer -c -o $(WL)/spend_cxx.o tests/agent/spend.c
	g++ -O2 -g -fno-optimize-sibling-calls -Itests/agent -fomit-frame-pointer -o $@ tests/agent/shares_cxx.cc $(WL)/spend_cxx.o

$(WL)/shares_stripped: $(WL_SRC) tests/agent/spend.h
	@mkdir -p $(dir $@)
	$(CC) $(WL_CFLAGS) -fomit-frame-pointer -Wl,--build-id -o $@.full $(WL_SRC)
	objcopy --only-keep-debug $@.full $@.debug
	objcopy --strip-all --add-gnu-debuglink=$@.debug $@.full $@
	rm -f $@.full

$(WL)/jit: tests/agent/jit.c tests/agent/spend.c tests/agent/spend.h
	@mkdir -p $(dir $@)
	$(CC) $(WL_CFLAGS) -fno-omit-frame-pointer -o $@ tests/agent/jit.c tests/agent/spend.c

.PHONY: workloads
