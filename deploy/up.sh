#!/usr/bin/env bash
# `make up`: build the images and run the whole system with Docker Compose,
# then wait until every service is healthy (AIRBRIDGE_UP_TIMEOUT seconds,
# default 300); a service that is not gets its last log lines and a hint.
# Creates the env files (deploy/*.env) from their examples when missing.
# Stops, saying what to do, when a base image is missing and cannot be
# pulled (then `make base-images` first). Arguments go to `up -d`:
#   deploy/up.sh --scale trips=3
set -euo pipefail
source "$(dirname "$0")/lib.sh"

ensure_env_files
require_base_images
build_images || die "the images did not build: see above (make down stops what started)"
log "starting the stack (project $AIRBRIDGE_PROJECT)"
if ! up_and_wait "$@"; then
  die "the stack did not become healthy: see above"
fi

cluster="" down="make down"
if [ "${AIRBRIDGE_STACK:-}" = cluster ]; then
  cluster="
  RabbitMQ     3 nodes, rabbit@rabbitmq-1..3, quorum queues; the other nodes' UIs: make ps-cluster
               AIRBRIDGE_STACK=cluster deploy/compose.sh exec rabbitmq rabbitmqctl cluster_status"
  down="make down-cluster"
fi
cat <<MSG

airbridge is up.
  REST         http://localhost:$http_port        curl localhost:$http_port/ping
  gRPC         localhost:$grpc_port              grpcurl -plaintext localhost:$grpc_port list
  RabbitMQ UI  http://127.0.0.1:$rabbitmq_ui_port  (the account in deploy/rabbitmq.env)$cluster

Try:
  curl -XPOST localhost:$http_port/airport -d '{"airport": "Ezeiza"}'
  curl -XPOST localhost:$http_port/trip -d '{"airport_from": "EZE", "airport_to": "CPC"}'
  grpcurl -plaintext -d '{"name": "Ezeiza"}' localhost:$grpc_port airports.v1.Airports/Create

More backends:   make up ARGS="--scale trips=3"
Logs, state:     make logs, make ps   (deploy/compose.sh runs any Compose command)
Stop:            $down   ($down ARGS=-v also deletes the data)
MSG
