# For machines with a registry: the official postgres:15 image plus
# debversion (from the PGDG archive the image is set up with) and the
# negator fix of ci/setup.sh where the installed script needs it. Build it
# under the name the harness uses by default:
#   docker build -t janitor-test-postgres:15 -f ci/containers/postgres-official.Dockerfile ci/containers
# Its entry point takes the same `postgres ARGS…` command as the local image.
FROM postgres:15
RUN apt-get update -qq \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends postgresql-15-debversion >/dev/null \
 && rm -rf /var/lib/apt/lists/* \
 && for f in /usr/share/postgresql/*/extension/debversion--*.sql; do \
      perl -0pi -e 's/COMMUTATOR = <,\n  NEGATOR = >=,/COMMUTATOR = <,\n  NEGATOR = <=,/' "$f"; \
    done
ENV POSTGRES_HOST_AUTH_METHOD=trust
