# Stand-in, toolchain layer: the C toolchain the official rust image has (from
# Debian) and the Rust toolchain of the machine this runs on, laid out as in
# the official image (RUSTUP_HOME=/usr/local/rustup, CARGO_HOME=/usr/local/cargo).
# Built by deploy/ci/local-base-images.sh; the context holds toolchain/.
FROM debian:bookworm-slim
RUN set -eux; \
    apt-get update; \
    apt-get install -y --no-install-recommends ca-certificates gcc libc6-dev make pkg-config; \
    rm -rf /var/lib/apt/lists/*
ARG TOOLCHAIN=stable-x86_64-unknown-linux-gnu
ENV RUSTUP_HOME=/usr/local/rustup \
    CARGO_HOME=/usr/local/cargo \
    PATH=/usr/local/cargo/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
COPY toolchain /usr/local/rustup/toolchains/${TOOLCHAIN}
RUN set -eux; \
    mkdir -p "$CARGO_HOME/bin"; \
    for tool in /usr/local/rustup/toolchains/${TOOLCHAIN}/bin/*; do ln -s "$tool" "$CARGO_HOME/bin/"; done; \
    cargo --version; rustc --version
