#!/usr/bin/env bash
# `make bench-compose`: `make up`'s stack as its own Compose project
# (temporary env files, host ports 18080/15051/15674, so a stack of yours is
# not touched), `make bench`'s REST load against it beside the native
# binaries in the same run (benches/e2e/compose.rs, BENCH_TARGET=compose),
# then the stack torn down with its volumes. The local RabbitMQ and Redis
# come as for `make bench` (deploy/dev/services.sh).
set -euo pipefail
export AIRBRIDGE_PROJECT=${AIRBRIDGE_PROJECT:-airbridge-bench}
export AIRBRIDGE_HTTP_PORT=${AIRBRIDGE_HTTP_PORT:-18080}
export AIRBRIDGE_GRPC_PORT=${AIRBRIDGE_GRPC_PORT:-15051}
export AIRBRIDGE_RABBITMQ_UI_PORT=${AIRBRIDGE_RABBITMQ_UI_PORT:-15674}
AIRBRIDGE_ENV_DIR=$(mktemp -d)
export AIRBRIDGE_ENV_DIR
source "$(dirname "$0")/lib.sh"

start_throwaway_stack
cd "$repo_dir"
BENCH_TARGET=compose deploy/dev/services.sh cargo bench --bench e2e
