# kontiki-rs developer targets. `make help` lists them.
.PHONY: help test faults run-amqp stop-amqp amqp-status fmt clippy doc

help:
	@echo "make test         run every check and test (= scripts/test.sh)"
	@echo "make faults       the fault-injection suite at full scale, on its own RabbitMQ node (docs/RELIABILITY.md)"
	@echo "make run-amqp     start a local RabbitMQ (installs it when allowed)"
	@echo "make stop-amqp    stop the local RabbitMQ"
	@echo "make amqp-status  say whether a RabbitMQ answers at KONTIKI_AMQP_URL"
	@echo "make run-registry run kontiki-registry (the service registry) on the local broker"
	@echo "make run-tui      run kontiki-tui against it"
	@echo "make bench        benchmarks vs raw lapin and Python Kontiki (docs/PERFORMANCE.md)"
	@echo "make bench-cost   instructions per RPC and event: metrics on/off, otel built (callgrind)"
	@echo "make fuzz         run every fuzz target for FUZZ_SECONDS (default 60) each"
	@echo "make cluster-up   a three-node RabbitMQ cluster on loopback (cluster-down, cluster-status)"
	@echo "make run-quickstart  the tour: four example services and their clients in one program"
	@echo "make run-<example>   run one example of examples/ ($(EXAMPLES))"

test:
	bash scripts/test.sh

# FAULTS="3 5" runs only those scenarios; FAULTS_SCALE=ci the bounded form of scripts/test.sh.
# At full scale it also floods the registry with 1,000,000 heartbeats (registry_hostile.rs) and
# sends the hostile inputs of kontiki-rt's oversize.rs and deep_headers.rs to its node.
faults:
	@bash scripts/broker.sh faults-start
	@PY=$${KONTIKI_PY:-$$(bash scripts/python-env.sh | tail -n1)}; \
	cargo build -p kontiki-faults --release --bins && \
	KONTIKI_PY=$$PY cargo run -p kontiki-faults --release -- --scale $${FAULTS_SCALE:-full} $(FAULTS); \
	rc=$$?; \
	if [ -z "$(FAULTS)" ] && [ "$${FAULTS_SCALE:-full}" = full ]; then \
	  KONTIKI_AMQP_URL=amqp://guest:guest@127.0.0.1:5673/%2f REGISTRY_FLOOD_HEARTBEATS=1000000 \
	    cargo test -p kontiki-registry --test registry_hostile -- --nocapture --test-threads 1 || rc=1; \
	  KONTIKI_AMQP_URL=amqp://guest:guest@127.0.0.1:5673/%2f KONTIKI_PY=$$PY \
	    cargo test -p kontiki-rt --test oversize --test deep_headers -- --nocapture || rc=1; \
	fi; \
	bash scripts/broker.sh faults-stop; bash scripts/broker.sh crash-stop; exit $$rc

run-amqp:
	bash scripts/broker.sh ensure

stop-amqp:
	bash scripts/broker.sh stop

amqp-status:
	bash scripts/broker.sh status

fmt:
	cargo fmt --all

clippy:
	cargo clippy --workspace --all-targets -- -D warnings

doc:
	RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps

# The Kontiki registry (ServiceRegistry) and kontiki-tui 2.1.2 against it (README: "Registry and kontiki-tui").
.PHONY: run-registry run-tui
run-registry:
	cargo run --release -p kontiki-registry -- --config kontiki-registry/registry.yaml

run-tui:
	@PY=$$(bash scripts/python-env.sh | tail -n1); mkdir -p $${KONTIKI_TUI_HOME:-target/tui-home}/.config; \
	printf 'amqp:\n  url: %s\n' "$${KONTIKI_AMQP_URL:-amqp://guest:guest@127.0.0.1:5672/%2f}" > $${KONTIKI_TUI_HOME:-target/tui-home}/.config/kontiki_tui.yaml; \
	HOME=$$(cd $${KONTIKI_TUI_HOME:-target/tui-home} && pwd) $$(dirname $$PY)/kontiki-tui

# Benchmarks (docs/PERFORMANCE.md): kontiki-rs vs raw lapin vs Python Kontiki 2.3.2, side by
# side on one broker; BENCH_RUNS (default 5), BENCH_QUICK=1,
# BENCH_ONLY=rpc,events,payload,idle,http,cluster,codegen,cost (cost: `make bench-cost` alone).
.PHONY: bench fuzz
bench:
	python3 scripts/bench/run.py

# Instructions per operation with metrics on / off / otel built, counted by callgrind.
.PHONY: bench-cost
bench-cost:
	python3 scripts/bench/cost.py

fuzz:
	bash scripts/fuzz.sh
# The examples of examples/: `make run-<name>` runs one with the shared config files and its own
# (examples/<name>/README.md says what it prints). KONTIKI_AMQP_URL picks the broker.
EXAMPLES := compute-api rpc-service api-gateway billing user-events http-simple task-service broadcast session heartbeat tenant-api orders-worker
RUN_EXAMPLES := $(addprefix run-,$(EXAMPLES))
# lapin logs a WARN for every message the broker returns as unroutable (an event nobody
# subscribes to yet, a registry message with no registry running); RUST_LOG overrides this.
EXAMPLES_LOG ?= info,lapin::returned_messages=error
.PHONY: run-quickstart $(RUN_EXAMPLES)
$(RUN_EXAMPLES): run-%:
	RUST_LOG="$${RUST_LOG:-$(EXAMPLES_LOG)}" cargo run -q -p $* -- --config examples/config/base.yaml --config examples/config/env.yaml --config examples/$*/config.yaml

run-quickstart:
	cargo run -q -p quickstart

# A three-node RabbitMQ cluster on loopback (ports 5681-5683): scripts/cluster.sh, docs/cluster.md.
.PHONY: cluster-up cluster-down cluster-status
cluster-up:
	bash scripts/cluster.sh up

cluster-down:
	bash scripts/cluster.sh down

cluster-status:
	bash scripts/cluster.sh status
