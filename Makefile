# kontiki-rs developer targets. `make help` lists them.
.PHONY: help test run-amqp stop-amqp amqp-status fmt clippy doc

help:
	@echo "make test         run every check and test (= scripts/test.sh)"
	@echo "make run-amqp     start a local RabbitMQ (installs it when allowed)"
	@echo "make stop-amqp    stop the local RabbitMQ"
	@echo "make amqp-status  say whether a RabbitMQ answers at KONTIKI_AMQP_URL"

test:
	bash scripts/test.sh

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
