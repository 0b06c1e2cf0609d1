#!/usr/bin/env bash
# `make bench-compose`: `make up`'s stack as its own Compose project
# (temporary env files, host ports 18080/15051/15674, so a stack of yours is
# not touched), `make bench`'s REST load against it beside the native
# binaries in the same run (benches/e2e/compose.rs, BENCH_TARGET=compose),
# starting with the stack's first minute after it became healthy, then the
# stack torn down with its volumes. The local RabbitMQ and Redis
# come as for `make bench` (deploy/dev/services.sh).
set -euo pipefail
export AIRBRIDGE_PROJECT=${AIRBRIDGE_PROJECT:-airbridge-bench}
export AIRBRIDGE_HTTP_PORT=${AIRBRIDGE_HTTP_PORT:-18080}
export AIRBRIDGE_GRPC_PORT=${AIRBRIDGE_GRPC_PORT:-15051}
export AIRBRIDGE_RABBITMQ_UI_PORT=${AIRBRIDGE_RABBITMQ_UI_PORT:-15674}
AIRBRIDGE_ENV_DIR=$(mktemp -d)
export AIRBRIDGE_ENV_DIR
source "$(dirname "$0")/lib.sh"

# The benchmark is compiled first, so that it measures the stack's first
# minute with nothing of ours still building beside it.
(cd "$repo_dir" && cargo bench --bench e2e --no-run)
start_throwaway_stack
AIRBRIDGE_UP_AT=$(date +%s.%N)
export AIRBRIDGE_UP_AT
cd "$repo_dir"
BENCH_TARGET=compose deploy/dev/services.sh cargo bench --bench e2e
