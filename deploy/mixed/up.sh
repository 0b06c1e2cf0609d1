#!/usr/bin/env bash
# `make up-mixed`: the stack half migrated from nameko (deploy/mixed/compose.yaml
# over deploy/compose.yaml): the original Python trips_service answers every
# trip call, over nameko's protocol, beside our gateway, airports and trips.
# Builds the wheels the original's image installs (on the host: containers
# here reach no PyPI), then as `make up`: build, start, wait until healthy,
# and says how to tell which service answered. Arguments go to `up -d`.
# Stop with `make down` (it removes the extra container too).
set -euo pipefail
export AIRBRIDGE_STACK=mixed
source "$(dirname "$0")/../lib.sh"

pip=$repo_dir/.venv/bin/pip
[ -x "$pip" ] || die "no .venv: run make venv (make up-mixed does)"
log "building the original system's wheels (nameko 2.14) into deploy/mixed/wheels/"
# (async-timeout: redis-py wants it on Python before 3.11.3, as Debian
# bookworm's 3.11.2 in the image, not on the host's.)
"$pip" wheel --quiet --disable-pip-version-check -w "$deploy_dir/mixed/wheels" \
  'nameko==2.14.*' 'redis==5.*' 'setuptools>=77,<81' 'async-timeout>=4.0.3'

ensure_env_files
require_base_images
build_images || die "the images did not build: see above (make down stops what started)"
log "starting the mixed stack (project $AIRBRIDGE_PROJECT)"
if ! up_and_wait "$@"; then
  die "the mixed stack did not become healthy: see above, and 'AIRBRIDGE_STACK=mixed deploy/compose.sh logs'"
fi

logs="AIRBRIDGE_STACK=mixed deploy/compose.sh logs"
cat <<MSG

airbridge is up, half migrated from nameko:
  gateway   ours       REST http://localhost:$http_port, gRPC localhost:$grpc_port
  trips     ORIGINAL   Python nameko trips_service (container trips-original), called over
                       nameko's protocol (gateway TRIPS_VIA=nameko; our trips has NAMEKO=off)
  airports  ours       called over our protocol

Try:
  curl -XPOST localhost:$http_port/trip -d '{"airport_from": "EZE", "airport_to": "CPC"}'
  curl -XPOST localhost:$http_port/airport -d '{"airport": "Ezeiza"}'
  grpcurl -plaintext -d '{"airport_from": "EZE", "airport_to": "CPC"}' localhost:$grpc_port trips.v1.Trips/Create

Which service answered:
  $logs trips-original | grep spawning
      one line per call the Python trips_service answered:
      "spawning <WorkerContext [trips_service.create] ...>"
  $logs trips
      our trips: it answers no nameko call here (NAMEKO=off), so nothing per call
  deploy/compose.sh exec rabbitmq \\
      rabbitmqctl list_queues name consumers | grep -E 'rpc-|v1'
      rpc-trips_service has its one consumer (the Python service);
      airports.v1.Airports and trips.v1.Trips are ours

Stop: make down   (make down ARGS=-v also deletes the data)
MSG
