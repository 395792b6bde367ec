# cli.mk: the option parser's unit test links src/cli/opts.o (the CLI is not in libhearth_core.a).
$(BUILD)/tests/test_cli_opts: TEST_EXTRA_OBJ := $(BUILD)/obj/src/cli/opts.o
$(BUILD)/tests/test_cli_opts: $(BUILD)/obj/src/cli/opts.o
