# The original system's Python services (testkit/original/: gateway,
# trips_service, airports_service) on nameko 2.14, for `make up-mixed`: one of
# them runs beside our Rust services. Debian's python3, nameko from PyPI: the
# wheels are built on the host by deploy/mixed/up.sh into deploy/mixed/wheels/
# (containers here cannot reach PyPI), installed here with no index.
#
#   docker build -f deploy/mixed/original.Dockerfile -t airbridge/original .
#   docker run airbridge/original trips      # or airports, gateway
FROM debian:bookworm-slim
RUN set -eux; \
    apt-get update; \
    apt-get install -y --no-install-recommends python3 python3-venv; \
    rm -rf /var/lib/apt/lists/*
COPY deploy/mixed/wheels /tmp/wheels
RUN set -eux; \
    python3 -m venv /opt/nameko; \
    /opt/nameko/bin/pip install --no-index --find-links /tmp/wheels --disable-pip-version-check \
        'nameko==2.14.*' 'redis==5.*' 'setuptools>=77,<81'; \
    rm -rf /tmp/wheels; \
    /opt/nameko/bin/nameko --help >/dev/null
COPY testkit/original /app
COPY deploy/mixed/original-entrypoint.sh deploy/mixed/healthcheck.py /usr/local/bin/
WORKDIR /app
ENV PATH=/opt/nameko/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONWARNINGS=ignore
USER 10001:10001
LABEL org.opencontainers.image.title="airbridge-original" \
      org.opencontainers.image.description="The original nameko system's services (gateway, trips_service, airports_service), for a mixed stack."
ENTRYPOINT ["original-entrypoint.sh"]
CMD ["trips"]
