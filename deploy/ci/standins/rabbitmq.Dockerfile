# Stand-in for rabbitmq:3-management: Debian's rabbitmq-server with the
# management plugin, the official image's ports, volume and environment
# (RABBITMQ_DEFAULT_USER / RABBITMQ_DEFAULT_PASS). Built by
# deploy/ci/local-base-images.sh.
FROM debian:bookworm-slim
RUN set -eux; \
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d; chmod +x /usr/sbin/policy-rc.d; \
    apt-get update; \
    apt-get install -y --no-install-recommends rabbitmq-server; \
    rm -rf /var/lib/apt/lists/* /var/lib/rabbitmq/mnesia /var/log/rabbitmq/*; \
    rabbitmq-plugins enable --offline rabbitmq_management; \
    rm -f /var/lib/rabbitmq/.erlang.cookie; \
    chown -R rabbitmq:rabbitmq /etc/rabbitmq /var/lib/rabbitmq /var/log/rabbitmq
COPY rabbitmq-entrypoint.sh /usr/local/bin/docker-entrypoint.sh
ENV HOME=/var/lib/rabbitmq \
    RABBITMQ_LOGS=- \
    LANG=C.UTF-8
VOLUME /var/lib/rabbitmq
EXPOSE 4369 5671 5672 15671 15672 15691 15692 25672
LABEL airbridge.ci.standin="rabbitmq"
ENTRYPOINT ["docker-entrypoint.sh"]
CMD ["rabbitmq-server"]
