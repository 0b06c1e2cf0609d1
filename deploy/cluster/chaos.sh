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

teardown() {
  log "tearing the cluster stack down (project $AIRBRIDGE_PROJECT)"
  compose down --volumes --remove-orphans >/dev/null 2>&1 || true
  rm -rf "$AIRBRIDGE_ENV_DIR"
}
trap teardown EXIT

ensure_env_files
require_base_images
log "building the images with $compose_cmd"
compose build -q
log "starting the cluster stack (project $AIRBRIDGE_PROJECT) with two trips replicas"
up_and_wait --scale trips=2 || die "the cluster stack did not become healthy: see above"
cd "$repo_dir"
cargo build --release --example chaos
CHAOS_TARGET=cluster cargo run --release --example chaos
