# Stand-in for rabbitmq:3-management: Debian's rabbitmq-server with the
# management plugin, laid out as the official image is where it matters: the
# upstream scripts first on PATH (`rabbitmq-server`, `rabbitmq-diagnostics`;
# not Debian's wrappers, which log to /var/log and call su), the defaults in
# /etc/rabbitmq/conf.d/10-defaults.conf, the data in the /var/lib/rabbitmq
# volume owned by the rabbitmq user, logs on the console, and an entry point
# that runs the server as rabbitmq (or as whatever non-root user the
# container is given). RabbitMQ itself reads RABBITMQ_DEFAULT_USER/PASS.
# Built by deploy/ci/local-base-images.sh.
FROM debian:bookworm-slim
RUN set -eux; \
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d; chmod +x /usr/sbin/policy-rc.d; \
    apt-get update; \
    apt-get install -y --no-install-recommends rabbitmq-server; \
    rm -rf /var/lib/apt/lists/* /var/lib/rabbitmq/mnesia /var/log/rabbitmq/*; \
    rabbitmq-plugins enable --offline rabbitmq_management; \
    rm -f /var/lib/rabbitmq/.erlang.cookie; \
    mkdir -p /etc/rabbitmq/conf.d; \
    printf '%s\n' 'loopback_users.guest = false' 'listeners.tcp.default = 5672' \
      'management.tcp.port = 15672' > /etc/rabbitmq/conf.d/10-defaults.conf; \
    chown -R rabbitmq:rabbitmq /var/lib/rabbitmq /var/log/rabbitmq
COPY rabbitmq-entrypoint.sh /usr/local/bin/docker-entrypoint.sh
ENV PATH=/usr/lib/rabbitmq/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    HOME=/var/lib/rabbitmq \
    RABBITMQ_LOGS=- \
    LANG=C.UTF-8
VOLUME /var/lib/rabbitmq
EXPOSE 4369 5671 5672 15671 15672 15691 15692 25672
LABEL airbridge.ci.standin="rabbitmq"
ENTRYPOINT ["docker-entrypoint.sh"]
CMD ["rabbitmq-server"]
