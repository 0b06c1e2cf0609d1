# Stand-in for redis:7-alpine: Debian bookworm's Redis 7 (redis-server and
# redis-cli on PATH), with the official image's /data volume and entry point
# behaviour: runs as the redis user, protected mode off by default (the
# official image builds Redis that way; the network is the boundary).
# Built by deploy/ci/local-base-images.sh.
FROM debian:bookworm-slim
RUN set -eux; \
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d; chmod +x /usr/sbin/policy-rc.d; \
    apt-get update; \
    apt-get install -y --no-install-recommends redis-server; \
    rm -rf /var/lib/apt/lists/*; \
    mkdir /data; chown redis:redis /data; \
    redis-server --version; redis-cli --version
COPY redis-entrypoint.sh /usr/local/bin/docker-entrypoint.sh
VOLUME /data
WORKDIR /data
EXPOSE 6379
LABEL airbridge.ci.standin="redis"
ENTRYPOINT ["docker-entrypoint.sh"]
CMD ["redis-server"]
