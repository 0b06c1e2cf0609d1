#!/usr/bin/env bash
# Builds local stand-ins for every public image deploy/Dockerfile and
# deploy/compose.yaml name, tagged with exactly those names, for a Docker
# engine that can pull no image (CI here). The Dockerfile and the compose file
# then run unchanged, as users run them.
#
#   debian:bookworm-slim    debootstrap --variant=minbase bookworm, slimmed
#                           as the official image is, `docker import`ed
#   rust:1-bookworm         FROM the above: gcc, libc6-dev, make, pkg-config
#                           from Debian; this machine's own Rust toolchain; a
#                           cargo registry pre-filled for the repository's
#                           Cargo.lock, and CARGO_NET_OFFLINE=true (containers
#                           here cannot reach crates.io: its TLS is
#                           intercepted by a CA only the host trusts)
#   rabbitmq:3-management   FROM debian:bookworm-slim: Debian's rabbitmq-server
#                           with the management plugin; honours
#                           RABBITMQ_DEFAULT_USER/PASS; answers
#                           `rabbitmq-diagnostics -q ping`
#   redis:7-alpine          FROM debian:bookworm-slim: Debian's Redis 7
#                           (redis-server and redis-cli on PATH)
#
# The Dockerfiles of the last three are in standins/. An image already tagged
# is kept (FORCE=1 rebuilds all); the rust stand-in is redone when Cargo.lock
# or the host's rustc changes (only its registry layer for a new Cargo.lock).
#
# Needs: root, Docker, rustc/cargo on PATH, the Debian archive and crates.io
# reachable from the host, and the Debian archive (plain HTTP) from
# containers, for the apt-get in the stand-in builds.
# Environment: FORCE=1; DEBIAN_MIRROR (default http://deb.debian.org/debian);
# AIRBRIDGE_CI_CACHE (default /var/cache/airbridge-ci: the cargo home the
# crates are fetched into, kept between runs).
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

command -v docker >/dev/null || die "docker is not installed"
docker info >/dev/null 2>&1 || die "the Docker daemon does not answer (docker info)"
[ "$(id -u)" = 0 ] || die "run as root (debootstrap needs it)"

# --- debian:bookworm-slim ---------------------------------------------------
build_debian() {
  local tag=debian:bookworm-slim
  if present "$tag"; then log "$tag: present"; return; fi
  if ! command -v debootstrap >/dev/null; then
    log "installing debootstrap"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null
  fi
  local dir root
  new_workdir
  root=$dir/root
  log "$tag: debootstrap --variant=minbase bookworm $mirror"
  debootstrap --variant=minbase bookworm "$root" "$mirror" >"$dir/debootstrap.log" 2>&1 \
    || { tail -n 30 "$dir/debootstrap.log" >&2; die "debootstrap failed"; }
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
build_rust() {
  local tag=rust:1-bookworm
  command -v rustc >/dev/null && command -v cargo >/dev/null || die "rustc and cargo are not on PATH"
  local sysroot version toolchain toolchain_tag lock_sha dir
  sysroot=$(rustc --print sysroot)
  version=$(rustc --version | awk '{print $2}')
  toolchain=$(basename "$sysroot")
  toolchain_tag=airbridge-ci/rust-toolchain:$version
  lock_sha=$(sha256sum "$repo/Cargo.lock" | cut -d' ' -f1)

  if present "$tag" && present "$toolchain_tag" \
      && [ "$(label_of "$tag" airbridge.ci.cargo-lock-sha256)" = "$lock_sha" ] \
      && [ "$(label_of "$tag" airbridge.ci.rustc)" = "$version" ]; then
    log "$tag: present (rustc $version, Cargo.lock ${lock_sha:0:12})"
    return
  fi

  if present "$toolchain_tag"; then
    log "$toolchain_tag: present"
  else
    new_workdir
    log "$toolchain_tag: gcc & co. from Debian + this machine's toolchain ($toolchain)"
    mkdir -p "$dir/ctx/toolchain"
    # All of it but share/ (the offline documentation: most of its size).
    for part in bin lib libexec etc; do
      if [ -e "$sysroot/$part" ]; then link_tree "$sysroot/$part" "$dir/ctx/toolchain/$part"; fi
    done
    cp "$standins/rust-toolchain.Dockerfile" "$dir/ctx/Dockerfile"
    build "$dir/build.log" --build-arg "TOOLCHAIN=$toolchain" -t "$toolchain_tag" "$dir/ctx"
  fi

  # The crates of Cargo.lock, fetched on the host (which reaches crates.io)
  # into a cargo home of our own, kept between runs.
  local cargo_home=$cache/cargo-home
  log "$tag: cargo fetch --locked (Cargo.lock ${lock_sha:0:12})"
  mkdir -p "$cargo_home"
  CARGO_HOME=$cargo_home "$sysroot/bin/cargo" fetch --locked --quiet \
    --manifest-path "$repo/Cargo.toml"

  new_workdir
  mkdir -p "$dir/ctx/registry"
  # index/ and cache/ are what an offline build needs; cargo unpacks src/.
  link_tree "$cargo_home/registry/index" "$dir/ctx/registry/index"
  link_tree "$cargo_home/registry/cache" "$dir/ctx/registry/cache"
  cp "$standins/rust.Dockerfile" "$dir/ctx/Dockerfile"
  log "$tag: FROM $toolchain_tag + the registry, CARGO_NET_OFFLINE=true"
  build "$dir/build.log" --build-arg "TOOLCHAIN_IMAGE=$toolchain_tag" \
    --build-arg "CARGO_LOCK_SHA256=$lock_sha" --build-arg "RUSTC_VERSION=$version" \
    -t "$tag" "$dir/ctx"
}

# --- rabbitmq:3-management, redis:7-alpine ------------------------------------
build_service() { # tag name
  local tag=$1 name=$2 dir
  if present "$tag"; then log "$tag: present"; return; fi
  log "$tag: standins/$name.Dockerfile"
  new_workdir
  mkdir -p "$dir/ctx"
  cp "$standins/$name.Dockerfile" "$dir/ctx/Dockerfile"
  cp "$standins/$name-entrypoint.sh" "$dir/ctx/"
  build "$dir/build.log" -t "$tag" "$dir/ctx"
}

start=$SECONDS
build_debian
build_rust
build_service rabbitmq:3-management rabbitmq
build_service redis:7-alpine redis
log "stand-ins ready in $((SECONDS - start)) s"
for image in debian:bookworm-slim rust:1-bookworm rabbitmq:3-management redis:7-alpine; do
  docker image ls --format '    {{.Repository}}:{{.Tag}}  {{.ID}}  {{.Size}}' "$image" >&2
done
