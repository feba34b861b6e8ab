# Debian 12's redis-server (7.0) for the harness (ci/containers.sh builds it
# as janitor-test-redis:7). BASE as in postgres.Dockerfile; with a registry
# the official redis:7 image works as it is (JANITOR_TEST_REDIS_IMAGE=redis:7),
# its entry point taking the same `redis-server ARGS…` command.
ARG BASE=janitor/debian:bookworm
FROM ${BASE}
RUN printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d \
 && apt-get update -qq \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends redis-server >/dev/null \
 && rm -rf /var/lib/apt/lists/*
COPY entrypoint.sh /usr/local/bin/docker-entrypoint.sh
ENTRYPOINT ["/usr/local/bin/docker-entrypoint.sh"]
CMD ["redis-server", "--bind", "127.0.0.1"]
