# bench.mk: benchmark programs under $(BUILD)/bench/ (run by bench/*.sh).
# pprof_bench also links libdeflate, the peer gunzip it is compared with.
$(BUILD)/bench/pprof_bench: bench/pprof_bench.c $(BUILD)/libhearth_core.a
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) $(LDFLAGS) -o $@ $< $(BUILD)/libhearth_core.a $(LIBS) -ldeflate
