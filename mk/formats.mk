# formats.mk: the folded-parse benchmark program (run by bench/folded.sh).
$(BUILD)/bench/folded_bench: bench/folded_bench.c $(BUILD)/libhearth_core.a
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) $(LDFLAGS) -o $@ $< $(BUILD)/libhearth_core.a $(LIBS)
