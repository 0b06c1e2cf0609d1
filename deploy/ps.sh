#!/usr/bin/env bash
# `make ps`: the stack's containers, their state and health, and the ports.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
ensure_env_files
compose ps "$@"
