#!/usr/bin/env bash
# `make down`: stop and remove the stack's containers and networks. The Redis
# data stays in its volumes unless -v is given: deploy/down.sh -v
set -euo pipefail
source "$(dirname "$0")/lib.sh"
ensure_env_files
compose down --remove-orphans "$@"
