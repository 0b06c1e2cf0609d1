#!/usr/bin/env bash
# `make base-images`: every public image deploy/Dockerfile and
# deploy/compose.yaml name (and debian:bookworm-slim, which the stand-ins and
# the e2e network probe use), pulled when a registry answers, else built
# locally as a stand-in tagged with exactly that name, so the Dockerfile and
# the compose file run unchanged, as users run them:
#
#   debian:bookworm-slim    debootstrap --variant=minbase bookworm, slimmed
#                           as the official image is, `docker import`ed
#   rust:1-bookworm         FROM the above: gcc, libc6-dev, make, pkg-config
#                           from Debian; this machine's own Rust toolchain; a
#                           cargo registry pre-filled for the repository's
#                           Cargo.lock, and CARGO_NET_OFFLINE=true (containers
#                           here cannot reach crates.io: its TLS is
#                           intercepted by a CA only the host trusts)
#   gcr.io/distroless/cc-debian12:nonroot
#                           glibc, libgcc_s, CA certificates, tzdata and the
#                           nonroot user, unpacked from Debian's packages
#   rabbitmq:3-management   Debian's rabbitmq-server with the management plugin
#   redis:7-alpine          Debian's Redis 7 (redis-server and redis-cli)
#
# The Dockerfiles are in standins/. An image already there is kept (FORCE=1
# rebuilds the stand-ins); the rust stand-in is redone when Cargo.lock or the
# host's rustc changes (only its registry layer for a new Cargo.lock, which
# needs no root). debian:bookworm-slim comes first; the other four are then
# built side by side (mostly downloads), and the crates are fetched while
# debootstrap runs.
#
# Needs: Docker; root for debootstrap (only when debian:bookworm-slim is
# missing); rustc/cargo on PATH; the Debian archive and crates.io reachable
# from the host, and the Debian archive (plain HTTP) from containers.
# Environment: FORCE=1; DEBIAN_MIRROR (default http://deb.debian.org/debian);
# AIRBRIDGE_CI_CACHE (default /var/cache/airbridge-ci: the cargo home the
# crates are fetched into and debootstrap's package cache, kept between runs).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
standins=$here/standins
cache=${AIRBRIDGE_CI_CACHE:-/var/cache/airbridge-ci}
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
force=${FORCE:-0}
# The classic builder: this engine has no buildx, and these builds need
# nothing more.
export DOCKER_BUILDKIT=0

log() { printf '==> %s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }
present() { [ "$force" != 1 ] && docker image inspect "$1" >/dev/null 2>&1; }
label_of() { docker image inspect -f "{{ index .Config.Labels \"$2\" }}" "$1" 2>/dev/null || true; }
# A throwaway build context: hard links where the file system allows.
link_tree() { cp -al "$1" "$2" 2>/dev/null || { rm -rf "$2"; cp -a "$1" "$2"; }; }
# docker build, its output kept in a log that is shown when it fails.
build() { # log-file docker-build-arguments...
  local logfile=$1
  shift
  docker build "$@" >"$logfile" 2>&1 || { tail -n 40 "$logfile" >&2; die "docker build $* failed"; }
}

workdirs=()
cleanup() {
  local dir m
  for dir in "${workdirs[@]}"; do
    # debootstrap mounts /proc and /sys inside the root it makes.
    for m in proc sys; do umount -l "$dir/root/$m" 2>/dev/null || true; done
    rm -rf "$dir"
  done
}
trap cleanup EXIT
# Sets $dir to a new scratch directory, removed on exit.
new_workdir() {
  mkdir -p "$cache/tmp"
  dir=$(mktemp -d "$cache/tmp/build.XXXXXX")
  workdirs+=("$dir")
}

# Runs "$@" in the background, its output in a log of its own; `await` waits
# for all of them, says how long each took, and fails, showing the log, when
# one failed.
jobs_pids=() jobs_names=()
spawn() { # name command...
  local name=$1
  shift
  mkdir -p "$cache/logs"
  (
    # Its own scratch directories, removed when it ends (a subshell does
    # not run the parent's EXIT trap).
    workdirs=()
    trap cleanup EXIT
    started=$SECONDS
    "$@"
    echo "$((SECONDS - started)) s"
  ) >"$cache/logs/$name.log" 2>&1 &
  jobs_pids+=($!) jobs_names+=("$name")
}
await() {
  local i failed=""
  for i in "${!jobs_pids[@]}"; do
    if wait "${jobs_pids[$i]}"; then
      log "${jobs_names[$i]}: done in $(tail -n 1 "$cache/logs/${jobs_names[$i]}.log")"
    else
      tail -n 40 "$cache/logs/${jobs_names[$i]}.log" >&2
      failed+=" ${jobs_names[$i]}"
    fi
  done
  jobs_pids=() jobs_names=()
  [ -z "$failed" ] || die "failed:$failed (logs in $cache/logs)"
}
# An image from the registry, when there is one (and FORCE is not set).
pulled() { [ "$force" != 1 ] && docker pull -q "$1" >/dev/null 2>&1 && log "$1: pulled"; }

command -v docker >/dev/null || die "docker is not installed"
docker info >/dev/null 2>&1 || die "the Docker daemon does not answer (docker info)"

# --- debian:bookworm-slim ---------------------------------------------------
build_debian() {
  local tag=debian:bookworm-slim dir root
  [ "$(id -u)" = 0 ] || die "building $tag needs root (debootstrap): run this as root"
  if ! command -v debootstrap >/dev/null; then
    log "installing debootstrap"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null
  fi
  new_workdir
  root=$dir/root
  mkdir -p "$cache/debootstrap"
  log "$tag: debootstrap --variant=minbase bookworm $mirror"
  debootstrap --variant=minbase --cache-dir="$cache/debootstrap" bookworm "$root" "$mirror" \
    >"$dir/debootstrap.log" 2>&1 || { tail -n 30 "$dir/debootstrap.log" >&2; die "debootstrap failed"; }
  # Slim, as the official image is: no documentation, manuals or locales, now
  # or from later installs; apt keeps no package lists or archives.
  cat >"$root/etc/dpkg/dpkg.cfg.d/docker-slim" <<'EOF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/groff/*
path-exclude /usr/share/info/*
path-exclude /usr/share/lintian/*
path-exclude /usr/share/linda/*
path-exclude /usr/share/locale/*
EOF
  cat >"$root/etc/apt/apt.conf.d/docker-clean" <<'EOF'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
EOF
  echo 'APT::Install-Recommends "false";' >"$root/etc/apt/apt.conf.d/docker-no-recommends"
  find "$root/usr/share/doc" -mindepth 1 -not -type d -not -name copyright -delete
  find "$root/usr/share/doc" -mindepth 1 -type d -empty -delete
  rm -rf "$root"/usr/share/{man,groff,info,lintian,linda,locale}/* \
    "$root"/var/cache/apt/archives/*.deb "$root"/var/cache/apt/*.bin \
    "$root"/var/lib/apt/lists/* "$root"/var/log/* "$root"/tmp/* "$root"/debootstrap
  : >"$root/etc/hostname"
  log "$tag: docker import"
  tar -C "$root" --numeric-owner -c . | docker import \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'LABEL airbridge.ci.standin=debian' \
    --change 'CMD ["bash"]' \
    --message "stand-in for $tag: debootstrap --variant=minbase bookworm" \
    - "$tag" >/dev/null
}

# --- rust:1-bookworm --------------------------------------------------------
sysroot="" rust_version="" toolchain_tag="" lock_sha=""
rust_facts() {
  if ! command -v rustc >/dev/null || ! command -v cargo >/dev/null; then die "rustc and cargo are not on PATH"; fi
  sysroot=$(rustc --print sysroot)
  rust_version=$(rustc --version | awk '{print $2}')
  toolchain_tag=airbridge-ci/rust-toolchain:$rust_version
  lock_sha=$(sha256sum "$repo/Cargo.lock" | cut -d' ' -f1)
}
rust_current() {
  present rust:1-bookworm && present "$toolchain_tag" \
    && [ "$(label_of rust:1-bookworm airbridge.ci.cargo-lock-sha256)" = "$lock_sha" ] \
    && [ "$(label_of rust:1-bookworm airbridge.ci.rustc)" = "$rust_version" ]
}

# The crates of Cargo.lock, fetched on the host (which reaches crates.io)
# into a cargo home of our own, kept between runs.
fetch_crates() {
  mkdir -p "$cache/cargo-home"
  CARGO_HOME=$cache/cargo-home "$sysroot/bin/cargo" fetch --locked --quiet \
    --manifest-path "$repo/Cargo.toml"
}

build_rust_toolchain() {
  local dir part toolchain
  toolchain=$(basename "$sysroot")
  new_workdir
  mkdir -p "$dir/ctx/toolchain"
  # All of it but share/ (the offline documentation: most of its size).
  for part in bin lib libexec etc; do
    if [ -e "$sysroot/$part" ]; then link_tree "$sysroot/$part" "$dir/ctx/toolchain/$part"; fi
  done
  cp "$standins/rust-toolchain.Dockerfile" "$dir/ctx/Dockerfile"
  build "$dir/build.log" --build-arg "TOOLCHAIN=$toolchain" -t "$toolchain_tag" "$dir/ctx"
}

build_rust() {
  local dir
  new_workdir
  mkdir -p "$dir/ctx/registry"
  # index/ and cache/ are what an offline build needs; cargo unpacks src/.
  link_tree "$cache/cargo-home/registry/index" "$dir/ctx/registry/index"
  link_tree "$cache/cargo-home/registry/cache" "$dir/ctx/registry/cache"
  cp "$standins/rust.Dockerfile" "$dir/ctx/Dockerfile"
  log "rust:1-bookworm: FROM $toolchain_tag + the registry (Cargo.lock ${lock_sha:0:12}), offline"
  build "$dir/build.log" --build-arg "TOOLCHAIN_IMAGE=$toolchain_tag" \
    --build-arg "CARGO_LOCK_SHA256=$lock_sha" --build-arg "RUSTC_VERSION=$rust_version" \
    -t rust:1-bookworm "$dir/ctx"
}

build_rust_toolchain_then_rust() {
  build_rust_toolchain
  build_rust
}

# --- the others: one Dockerfile (and maybe an entry point) each ----------------
build_standin() { # tag name
  local tag=$1 name=$2 dir
  new_workdir
  mkdir -p "$dir/ctx"
  cp "$standins/$name.Dockerfile" "$dir/ctx/Dockerfile"
  if [ -f "$standins/$name-entrypoint.sh" ]; then cp "$standins/$name-entrypoint.sh" "$dir/ctx/"; fi
  build "$dir/build.log" -t "$tag" "$dir/ctx"
}

start=$SECONDS
rust_facts
# What is to be built: everything missing that no registry gives us.
declare -A standin=([gcr.io/distroless/cc-debian12:nonroot]=distroless-cc
  [rabbitmq:3-management]=rabbitmq [redis:7-alpine]=redis)
todo=()
for tag in "${!standin[@]}"; do
  if present "$tag"; then log "$tag: present"; elif ! pulled "$tag"; then todo+=("$tag"); fi
done
need_rust=0 need_toolchain=0
if present rust:1-bookworm && [ "$(label_of rust:1-bookworm airbridge.ci.standin)" != rust ]; then
  log "rust:1-bookworm: present"
elif rust_current; then
  log "rust:1-bookworm: present (a stand-in for rustc $rust_version, Cargo.lock ${lock_sha:0:12})"
elif present rust:1-bookworm || ! pulled rust:1-bookworm; then
  need_rust=1
  present "$toolchain_tag" || need_toolchain=1
fi

# 1. debian:bookworm-slim, which every stand-in starts FROM (and the e2e
#    network probe runs); meanwhile the crates.
if ((need_rust)); then
  log "rust:1-bookworm: cargo fetch --locked (Cargo.lock ${lock_sha:0:12})"
  spawn cargo-fetch fetch_crates
fi
if present debian:bookworm-slim; then
  log "debian:bookworm-slim: present"
elif ! pulled debian:bookworm-slim; then
  build_debian
  log "debian:bookworm-slim: done in $((SECONDS - start)) s"
fi
await

# 2. The rest, side by side; rust:1-bookworm right after its toolchain layer,
#    not after the slowest of the others (it is what the first `make up`
#    waits for longest).
if ((need_toolchain)); then
  log "$toolchain_tag: gcc & co. from Debian + this machine's toolchain, then rust:1-bookworm on it"
  spawn rust build_rust_toolchain_then_rust
elif ((need_rust)); then
  spawn rust build_rust
fi
for tag in "${todo[@]}"; do
  log "$tag: standins/${standin[$tag]}.Dockerfile"
  spawn "${standin[$tag]}" build_standin "$tag" "${standin[$tag]}"
done
await
# The distroless stand-in's first stage, dangling now.
docker image prune -f --filter label=airbridge.ci.scratch >/dev/null

log "base images ready in $((SECONDS - start)) s"
for tag in debian:bookworm-slim rust:1-bookworm "${!standin[@]}"; do
  docker image ls --format '    {{.Repository}}:{{.Tag}}  {{.ID}}  {{.Size}}' "$tag" >&2
done
