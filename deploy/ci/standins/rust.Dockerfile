# Stand-in for rust:1-bookworm: the toolchain layer plus a cargo registry
# pre-filled for the repository's Cargo.lock, and cargo set offline, so the
# project's own deploy/Dockerfile builds unchanged with no network.
# Built by deploy/ci/local-base-images.sh; the context holds registry/.
ARG TOOLCHAIN_IMAGE
FROM ${TOOLCHAIN_IMAGE}
COPY registry /usr/local/cargo/registry
ENV CARGO_NET_OFFLINE=true
ARG CARGO_LOCK_SHA256
ARG RUSTC_VERSION
LABEL airbridge.ci.standin="rust" \
      airbridge.ci.cargo-lock-sha256="${CARGO_LOCK_SHA256}" \
      airbridge.ci.rustc="${RUSTC_VERSION}"
