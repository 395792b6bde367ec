# hearth build. Plain make; outputs under build/ (build/san-* for sanitizer builds).
#   make                 build build/hearth, build/libhearth.so, tests
#   make test            install deps, build, run every test (plain + sanitizers + fuzz smoke)
#   make run             build and start the server with the UI, profiling this host
#   make SANITIZE=address,undefined   sanitizer build (into build/san-address,undefined)
#   make fuzz            build libFuzzer harnesses and run each briefly (FUZZ_SECONDS)
#   make bench           benchmarks against peers, printed as ratios
# Parts add rules in mk/*.mk (one file per part, owned by that part).

CC      ?= cc
ifeq ($(origin CC),default)
CC      := gcc
endif
SANITIZE ?=
ifeq ($(SANITIZE),)
BUILD   := build
else
BUILD   := build/san-$(SANITIZE)
endif

WARN     := -Wall -Wextra -Werror -Wno-unused-parameter -Wshadow -Wstrict-prototypes
OPT      ?= -O2
CFLAGS   ?= $(OPT) -g
CFLAGS   += -std=gnu11 -fno-omit-frame-pointer -fPIC -pthread $(WARN) -D_GNU_SOURCE
CPPFLAGS += -Isrc -Iinclude
LIBS     := -lzstd -ldeflate -lz -ljson-c -lmicrohttpd -lcurl -ldw -lelf -lpthread -lm -ldl
# libhearth.so is preloaded into programs: libcurl is dlopen()ed when it first uploads (src/agent/curl_dl.h)
PRE_LIBS := $(filter-out -lcurl -ljson-c -lmicrohttpd,$(LIBS))
# ...and every symbol it uses must resolve at link time, so a dependency dropped from PRE_LIBS
# fails the build instead of a host program at run time (sanitizer runtimes resolve at load: not checked there)
PRE_ZDEFS := $(if $(SANITIZE),,-Wl,-z,defs)
ifneq ($(SANITIZE),)
CFLAGS   += -fsanitize=$(SANITIZE) -fno-sanitize-recover=all
LDFLAGS  += -fsanitize=$(SANITIZE)
endif

# The core library: everything a subcommand or libhearth may use.
LIB_DIRS := src/core src/profile src/format src/store src/server src/agent
LIB_SRC  := $(foreach d,$(LIB_DIRS),$(wildcard $(d)/*.c))
LIB_OBJ  := $(LIB_SRC:%.c=$(BUILD)/obj/%.o)
CLI_SRC  := $(wildcard src/cli/*.c)
CLI_OBJ  := $(CLI_SRC:%.c=$(BUILD)/obj/%.o)
PRE_SRC  := $(wildcard src/preload/*.c)
PRE_OBJ  := $(PRE_SRC:%.c=$(BUILD)/obj/%.o)
UI_GEN   := $(BUILD)/gen/ui_assets.c

TEST_SRC := $(wildcard tests/test_*.c)
TEST_BIN := $(TEST_SRC:tests/%.c=$(BUILD)/tests/%)
TEST_HARNESS := $(BUILD)/obj/tests/t_main.o

all: $(BUILD)/hearth $(BUILD)/libhearth.so $(TEST_BIN)

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) -MMD -MP -c $< -o $@

$(BUILD)/libhearth_core.a: $(LIB_OBJ)
	@mkdir -p $(dir $@)
	rm -f $@ && ar rcs $@ $^

# The UI is embedded: every file under ui/dist (or ui/ when there is no build
# step) becomes a byte array in a generated C file.
UI_FILES := $(shell find ui -type f -not -path 'ui/node_modules/*' -not -name '*.md' -not -name 'package*.json' 2>/dev/null | sort)
$(UI_GEN): scripts/embed-ui $(UI_FILES)
	@mkdir -p $(dir $@)
	scripts/embed-ui ui $@

$(BUILD)/obj/gen/ui_assets.o: $(UI_GEN)
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) -Wno-overlength-strings -c $< -o $@

$(BUILD)/hearth: $(CLI_OBJ) $(BUILD)/obj/gen/ui_assets.o $(BUILD)/libhearth_core.a
	$(CC) $(LDFLAGS) -o $@ $^ $(LIBS)

$(BUILD)/libhearth.so: $(PRE_OBJ) $(BUILD)/libhearth_core.a
	$(CC) $(LDFLAGS) -shared -Wl,--exclude-libs,ALL $(PRE_ZDEFS) -o $@ $(PRE_OBJ) $(BUILD)/libhearth_core.a $(PRE_LIBS)

# A test may link extra objects (e.g. CLI pieces) via TEST_EXTRA_OBJ in mk/*.mk.
$(BUILD)/tests/%: tests/%.c $(TEST_HARNESS) $(BUILD)/libhearth_core.a
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) -Itests $(CFLAGS) $(LDFLAGS) -o $@ $< $(TEST_EXTRA_OBJ) $(TEST_HARNESS) $(BUILD)/libhearth_core.a $(LIBS)

-include mk/*.mk

.PHONY: all test test-unit run fuzz fuzz-build bench deps clean
deps:
	@scripts/deps --test

# One build, its tests; used by scripts/test-all for each configuration.
test-unit: all
	@tests/run $(BUILD)

test: deps
	@scripts/test-all

run: 
	@scripts/deps
	@$(MAKE) --no-print-directory all
	@scripts/run

FUZZ_SECONDS ?= 20
FUZZ_SRC := $(wildcard fuzz/fuzz_*.c)
FUZZ_BIN := $(FUZZ_SRC:fuzz/%.c=build/fuzz/%)
# The server and agent need a running system; the fuzzers take their pure parsers one by one.
FUZZ_LIB_SRC := $(filter-out src/server/% src/agent/%,$(LIB_SRC)) src/server/naming.c
FUZZ_CFLAGS := -std=gnu11 -D_GNU_SOURCE -g -O1 -fsanitize=address,undefined -fno-sanitize-recover=all -Isrc -Iinclude
build/fuzz/obj/%.o: %.c
	@mkdir -p $(dir $@)
	clang $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -MMD -MP -c $< -o $@
build/fuzz/libfuzzcore.a: $(FUZZ_LIB_SRC:%.c=build/fuzz/obj/%.o)
	rm -f $@ && ar rcs $@ $^
build/fuzz/%: fuzz/%.c build/fuzz/libfuzzcore.a
	@mkdir -p $(dir $@)
	clang $(FUZZ_CFLAGS) -fsanitize=fuzzer -o $@ $< build/fuzz/libfuzzcore.a $(LIBS)
fuzz-build: $(FUZZ_BIN)
fuzz: fuzz-build
	@scripts/fuzz-run $(FUZZ_SECONDS) $(FUZZ_BIN)

bench:
	@scripts/deps --bench
	@$(MAKE) --no-print-directory all
	@scripts/bench-all

clean:
	rm -rf build

-include $(shell find build -name '*.d' 2>/dev/null)
