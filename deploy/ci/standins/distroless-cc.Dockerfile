# Stand-in for gcr.io/distroless/cc-debian12:nonroot, from Debian bookworm's
# own packages, unpacked (never installed: no dpkg database, no maintainer
# scripts, no shell) into an empty image: glibc (libc6), libgcc_s (libgcc-s1),
# the CA certificates bundle, the time zone database, and the passwd/group
# entries of distroless (root, nobody, nonroot 65532) with nonroot's home.
# Built by deploy/ci/local-base-images.sh.
# Left out, as nothing here reads them: documentation, manuals, translations,
# iconv's character set converters, libc's programs (ldd, getconf, iconv...).
FROM debian:bookworm-slim AS rootfs
LABEL airbridge.ci.scratch="1"
RUN set -eux; \
    apt-get update; \
    apt-get install -y --no-install-recommends ca-certificates; \
    mkdir /debs /rootfs; cd /debs; \
    apt-get download libc6 libgcc-s1 tzdata; \
    for deb in *.deb; do dpkg-deb -x "$deb" /rootfs; done; \
    cd /rootfs; \
    rm -rf usr/share/doc usr/share/man usr/share/info usr/share/lintian usr/share/locale \
      usr/lib/x86_64-linux-gnu/gconv usr/libexec usr/bin usr/sbin sbin bin; \
    find . -type d -empty -delete; \
    mkdir -p etc/ssl/certs tmp home/nonroot; \
    cp /etc/ssl/certs/ca-certificates.crt etc/ssl/certs/; \
    chmod 1777 tmp; chown 65532:65532 home/nonroot; chmod 700 home/nonroot; \
    ln -sf /usr/share/zoneinfo/Etc/UTC etc/localtime; \
    printf '%s\n' 'root:x:0:0:root:/root:/sbin/nologin' \
      'nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin' \
      'nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin' > etc/passwd; \
    printf '%s\n' 'root:x:0:' 'nobody:x:65534:' 'nonroot:x:65532:' > etc/group; \
    printf '%s\n' 'passwd: files' 'group: files' 'hosts: files dns' > etc/nsswitch.conf; \
    cp /etc/os-release etc/os-release; \
    du -sh /rootfs

FROM scratch
COPY --from=rootfs /rootfs /
ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt
USER 65532:65532
WORKDIR /home/nonroot
LABEL airbridge.ci.standin="distroless-cc"
