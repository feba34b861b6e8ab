# PostgreSQL 15 with debversion for the harness (ci/containers.sh builds it as
# janitor-test-postgres:15). BASE is the locally imported Debian 12 image
# (no registry needed); with a registry, --build-arg BASE=debian:bookworm-slim
# builds the same from the official Debian image. postgres-official.Dockerfile
# builds FROM the official postgres:15 image instead.
ARG BASE=janitor/debian:bookworm
FROM ${BASE}
# No services start during the build, and no cluster is created: the
# entry point runs initdb in the container.
RUN printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d \
 && mkdir -p /etc/postgresql-common/createcluster.d \
 && echo 'create_main_cluster = false' > /etc/postgresql-common/createcluster.d/no-main-cluster.conf \
 && apt-get update -qq \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends postgresql-15 postgresql-15-debversion >/dev/null \
 && rm -rf /var/lib/apt/lists/*
# The fix ci/setup.sh applies on the host: Debian 12's debversion 1.1 declares
# `>=` as the negator of both `<` and `>`, which PostgreSQL 15.20+ rejects.
RUN for f in /usr/share/postgresql/*/extension/debversion--1.1.sql; do \
      perl -0pi -e 's/COMMUTATOR = <,\n  NEGATOR = >=,/COMMUTATOR = <,\n  NEGATOR = <=,/' "$f"; \
    done
COPY entrypoint.sh /usr/local/bin/docker-entrypoint.sh
ENV PGDATA=/var/lib/postgresql/data
STOPSIGNAL SIGINT
ENTRYPOINT ["/usr/local/bin/docker-entrypoint.sh"]
CMD ["postgres", "-c", "listen_addresses=127.0.0.1"]
