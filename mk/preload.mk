# preload.mk: libhearth.so extras and the deterministic workloads of its tests
# (tests/preload/wl_*.c), built under $(BUILD)/workloads-preload/ twice:
#   wl_X         plain program, profiled with LD_PRELOAD=libhearth.so
#   wl_X_linked  the same with libhearth's objects linked in (started from the
#                HEARTH_* environment by its constructor): the form the
#                sanitizer runs use, since an ASan/TSan-built .so cannot be
#                LD_PRELOADed into a program built without the sanitizer.
#   wl_cpu_nofp  wl_cpu with -fomit-frame-pointer everywhere (CFI only).
# The workloads keep -momit-leaf-frame-pointer so leaves are frameless.
PRE_WL     := $(BUILD)/workloads-preload
PRE_WL_SRC := $(wildcard tests/preload/wl_*.c)
PRE_WL_BIN := $(PRE_WL_SRC:tests/preload/%.c=$(PRE_WL)/%) $(PRE_WL)/wl_cpu_nofp
# The linked forms need the whole agent part (the uploader) to be present.
ifneq ($(wildcard src/agent/upload.c),)
PRE_WL_BIN += $(PRE_WL_SRC:tests/preload/%.c=$(PRE_WL)/%_linked)
endif
PRE_WL_CFLAGS := -std=gnu11 -O1 -g -pthread -Iinclude -fno-optimize-sibling-calls \
                 -fno-omit-frame-pointer -momit-leaf-frame-pointer -Wall -Werror
ifneq ($(SANITIZE),)
PRE_WL_CFLAGS += -fsanitize=$(SANITIZE) -fno-sanitize-recover=all
endif

all: $(PRE_WL_BIN)

# The malloc shim may tail-call: its stack capture skips its own frames by
# address (the hearth_heap_text section, see src/preload/heap.c).
# It is never sanitizer-instrumented: it runs inside the
# sanitizer runtime's own start-up (before its shadow memory exists) and
# under its allocator; the rest of libhearth is.
$(BUILD)/obj/src/preload/heap.o: CFLAGS := $(filter-out -fsanitize=%,$(CFLAGS)) \
    $(if $(SANITIZE),-DPL_SANITIZED_HOST)

$(PRE_WL)/%: tests/preload/%.c include/hearth.h
	@mkdir -p $(dir $@)
	$(CC) $(PRE_WL_CFLAGS) -o $@ $< -lm

$(PRE_WL)/wl_cpu_nofp: tests/preload/wl_cpu.c
	@mkdir -p $(dir $@)
	$(CC) $(filter-out -fno-omit-frame-pointer -momit-leaf-frame-pointer,$(PRE_WL_CFLAGS)) -fomit-frame-pointer -o $@ $< -lm

$(PRE_WL)/%_linked: tests/preload/%.c include/hearth.h $(PRE_OBJ) $(BUILD)/libhearth_core.a
	@mkdir -p $(dir $@)
	$(CC) $(PRE_WL_CFLAGS) -o $@ $< $(PRE_OBJ) $(BUILD)/libhearth_core.a $(LIBS)

# tests/test_preload.c runs the workloads: build them with it.
$(BUILD)/tests/test_preload: $(PRE_WL_BIN) $(BUILD)/libhearth.so

# The sample ring alone (its one outside call, the collector's wake-up, is defined by the test).
$(BUILD)/tests/test_ring: TEST_EXTRA_OBJ := $(BUILD)/obj/src/preload/ring.o
$(BUILD)/tests/test_ring: $(BUILD)/obj/src/preload/ring.o
