#!/usr/bin/env bash
# `make logs`: follow the stack's logs; arguments go to `logs`, e.g.
# deploy/logs.sh trips (one service), deploy/logs.sh --no-color
set -euo pipefail
source "$(dirname "$0")/lib.sh"
ensure_env_files
compose logs -f --tail=100 "$@"
