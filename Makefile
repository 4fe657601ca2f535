# Thin wrapper around Meson/ninja. The README's two commands are `make run` and `make check`.
BUILD      ?= build
BUILD_ASAN ?= build-asan
BUILD_FUZZ ?= build-fuzz
PEERMCP_ARGS ?=
PREFIX     ?= /usr/local
DESTDIR    ?=

.PHONY: all deps test-deps run check unit fuzz bench-mcp bench-store bench-p2p bench-p2p-call bench-service bench-http bench-dht bench-auth soak clean install

all: deps
	@[ -f $(BUILD)/build.ninja ] || meson setup $(BUILD) --buildtype=release -Dtests=disabled >/dev/null
	@ninja -C $(BUILD) peermcp peermcp.1 layercheck   # layercheck: each layer links with only the layers it may use

# $(PREFIX)/bin/peermcp, $(PREFIX)/share/man/man1/peermcp.1 (generated from the --help text),
# $(PREFIX)/lib/systemd/system/peermcp.service; DESTDIR stages the tree elsewhere.
install: all
	@meson configure $(BUILD) --prefix=$(abspath $(PREFIX)) >/dev/null
	@ninja -C $(BUILD) peermcp peermcp.1 >/dev/null
	@meson install -C $(BUILD) --no-rebuild --quiet $(if $(DESTDIR),--destdir "$(abspath $(DESTDIR))")

deps:
	@bash scripts/setup.sh

test-deps:
	@bash scripts/setup.sh --tests

run: all
	./$(BUILD)/peermcp serve $(PEERMCP_ARGS)

# Unit tests with AddressSanitizer + UBSan, interop tests with real clients and peers,
# short fuzz runs; ends with one line "N passed, N failed".
check: test-deps all
	@[ -f $(BUILD_ASAN)/build.ninja ] || meson setup $(BUILD_ASAN) --buildtype=debug -Db_sanitize=address,undefined -Db_lundef=false -Dtests=enabled >/dev/null
	@ninja -C $(BUILD_ASAN)
	@bash tests/run-all.sh

unit: test-deps
	@[ -f $(BUILD_ASAN)/build.ninja ] || meson setup $(BUILD_ASAN) --buildtype=debug -Db_sanitize=address,undefined -Db_lundef=false -Dtests=enabled >/dev/null
	@ninja -C $(BUILD_ASAN)
	@bash tests/suites/10-unit.sh

# libFuzzer targets (clang); FUZZ_SECONDS per target (default 60).
fuzz: test-deps
	@[ -f $(BUILD_FUZZ)/build.ninja ] || CC=clang meson setup $(BUILD_FUZZ) --buildtype=debug -Dfuzz=true -Dtests=disabled -Db_lundef=false >/dev/null
	@ninja -C $(BUILD_FUZZ)
	@FUZZ_SECONDS=$${FUZZ_SECONDS:-60} bash fuzz/run.sh $(BUILD_FUZZ)

bench-mcp: test-deps all
	@bash bench/mcp/run.sh

bench-store: all
	@bash bench/store/run.sh

bench-p2p: test-deps all
	@bash bench/p2p/run.sh

# the same echo call over stdio and over /mcp+p2p/1.0.0 in one run, + callgrind (issue 11 §3)
bench-p2p-call: all
	@bash bench/p2p/call.sh

bench-service: test-deps all
	@bash bench/service/run.sh

# MCP over Streamable HTTP under wrk: peermcp vs the TypeScript SDK server (wrk: setup.sh --bench)
bench-http: test-deps all
	@bash scripts/setup.sh --bench
	@bash bench/http/run.sh

bench-dht: all
	@bash bench/dht/run.sh

# JWT validation cost per algorithm, signature checked and cached (JSON lines).
bench-auth: all
	@ninja -C $(BUILD) bench/auth/bench_jwt >/dev/null
	@nice -n 5 ./$(BUILD)/bench/auth/bench_jwt $${BENCH_TOKENS:-2000}

# Issue 9: a node under normal traffic and attacks for SOAK_DURING seconds (default 600),
# RSS/fds/threads and the normal traffic's p99 before/during/after (bench/soak/run.sh).
soak: all
	@bash bench/soak/run.sh

clean:
	rm -rf $(BUILD) $(BUILD)-noobs $(BUILD_ASAN) $(BUILD_FUZZ)
