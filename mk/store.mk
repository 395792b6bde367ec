# Rules of the store part: the benchmark helper (bench/store.sh builds it).
$(BUILD)/bench/store_bench: bench/store_bench.c $(BUILD)/libhearth_core.a
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) $(LDFLAGS) -o $@ $< $(BUILD)/libhearth_core.a $(LIBS)

store-bench: $(BUILD)/bench/store_bench
.PHONY: store-bench

# Built with everything so tests/store_db.sh can make a data directory.
all: $(BUILD)/bench/store_bench
