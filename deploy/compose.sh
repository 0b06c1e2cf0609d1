#!/usr/bin/env bash
# Compose on this stack: `docker compose` or `docker-compose`, whichever is
# there, with the project (AIRBRIDGE_PROJECT, default airbridge) and
# deploy/compose.yaml, once the env files exist. What `make down`, `make logs`
# and `make ps` run; any other Compose command works the same:
#   deploy/compose.sh down -v          # also delete the data volumes
#   deploy/compose.sh logs -f trips
#   deploy/compose.sh exec trips-redis redis-cli dbsize
set -euo pipefail
source "$(dirname "$0")/lib.sh"
ensure_env_files
compose "$@"
