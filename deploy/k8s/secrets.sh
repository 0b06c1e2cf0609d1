#!/usr/bin/env bash
# Writes deploy/k8s/base/secrets.env, the credentials Kustomize turns into the
# Secret airbridge-secrets, from secrets.env.example: every change-me becomes
# a fresh random value (32 hex characters), readable by you only. The file is
# git-ignored. An existing file is kept and checked instead: every key of the
# example present, no value left at change-me or empty, the Redis passwords
# safe inside a URL.
#
#   deploy/k8s/secrets.sh            # then: kubectl apply -k deploy/k8s/overlays/prod
set -euo pipefail

base=$(cd "$(dirname "${BASH_SOURCE[0]}")/base" && pwd)
example=$base/secrets.env.example
target=$base/secrets.env

die() { printf 'error: %s\n' "$*" >&2; exit 1; }
keys() { sed -n 's/^\([A-Za-z_][A-Za-z0-9_]*\)=.*/\1/p' "$1"; }
value() { sed -n "s/^$2=//p" "$1" | tail -n 1; }

[ -f "$example" ] || die "$example is missing"

if [ ! -f "$target" ]; then
  (
    umask 077
    while IFS= read -r line; do
      if [[ $line =~ ^([A-Za-z_][A-Za-z0-9_]*)=change-me$ ]]; then
        line="${BASH_REMATCH[1]}=$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')"
      fi
      printf '%s\n' "$line"
    done <"$example" >"$target"
  )
  echo "wrote ${target#"$PWD"/} with random credentials (git-ignored; keep a copy somewhere safe)"
  exit 0
fi

problems=()
for key in $(keys "$example"); do
  current=$(value "$target" "$key")
  if ! grep -q "^$key=" "$target"; then
    problems+=("$key is missing (see secrets.env.example)")
  elif [ -z "$current" ] || [ "$current" = change-me ]; then
    problems+=("$key has no real value")
  elif [[ $key == *REDIS_PASSWORD && ! $current =~ ^[A-Za-z0-9._~-]+$ ]]; then
    problems+=("$key may hold only letters, digits and - . _ ~ (it goes into REDIS_URL)")
  fi
done
if ((${#problems[@]})); then
  printf 'error: %s:\n' "${target#"$PWD"/}" >&2
  printf '  %s\n' "${problems[@]}" >&2
  exit 1
fi
echo "${target#"$PWD"/} is complete"
