#!/usr/bin/env bash
# Prints the Compose command this machine has: `docker compose` (v2) or the
# standalone `docker-compose`.
if docker compose version >/dev/null 2>&1; then
  echo "docker compose"
elif command -v docker-compose >/dev/null 2>&1; then
  echo "docker-compose"
else
  echo "error: neither 'docker compose' nor 'docker-compose' is installed" >&2
  exit 1
fi
