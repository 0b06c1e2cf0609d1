#!/usr/bin/env bash
# `make chaos-cluster`: the cluster stack (deploy/cluster/compose.yaml) up as
# its own Compose project with two trips replicas, examples/chaos against it
# (CHAOS_TARGET=cluster), then the stack torn down with its volumes, whatever
# the result. Its own env files in a temporary directory, so a stack of yours
# and its data are not touched; its own host ports (AIRBRIDGE_HTTP_PORT etc.,
# default 18000, 15005, 15673), so it runs beside `make up`.
set -euo pipefail
export AIRBRIDGE_STACK=cluster
export AIRBRIDGE_PROJECT=${AIRBRIDGE_PROJECT:-airbridge-chaos-cluster}
export AIRBRIDGE_HTTP_PORT=${AIRBRIDGE_HTTP_PORT:-18000}
export AIRBRIDGE_GRPC_PORT=${AIRBRIDGE_GRPC_PORT:-15005}
export AIRBRIDGE_RABBITMQ_UI_PORT=${AIRBRIDGE_RABBITMQ_UI_PORT:-15673}
AIRBRIDGE_ENV_DIR=$(mktemp -d)
export AIRBRIDGE_ENV_DIR
source "$(dirname "$0")/../lib.sh"

start_throwaway_stack --scale trips=2
cd "$repo_dir"
CHAOS_TARGET=cluster cargo run --release --example chaos
