#!/usr/bin/env bash
# Local stand-ins for the images docker-compose.yml and the Dockerfile use but do not build,
# for a Debian machine whose Docker engine reaches no image registry (CI's):
# tests/test_compose_up.py runs the lab on them. Nothing is ever pulled: each stand-in is a
# debootstrap minbase rootfs (kept in the cache directory) plus Debian's packages of what the
# official image holds, imported with `docker import` under the official tag.
#
#   bash .ci/compose-standins.sh            # as root: build the missing ones (all by default)
#   bash .ci/compose-standins.sh --list     # the tags it stands in for, one a line
#   bash .ci/compose-standins.sh --missing  # the tags no local image has yet
#
# Faithful, not convenient: a stand-in has what its official image has and nothing more
# (no curl, no wget in the Python one), so a healthcheck that needs a tool the real image
# lacks fails here too. The differences that remain, all of versions or of the machine:
#   python:3.11-slim       Debian's python3.11 (3.11.2), as a venv at /usr/local so that
#                          python and pip are /usr/local/bin's like the official image's;
#                          pip 24.0 like it. One addition: the host's CA bundle, with
#                          PIP_CERT pointing at it, because this machine may reach PyPI
#                          only through a TLS-inspecting proxy (the real image would fail
#                          `pip install` here the same way without it).
#   redis:7.4-alpine       Debian's redis-server 7.0 on Debian, not Alpine; the official
#                          entrypoint (chown of /data, drop to the redis user, umask), and
#                          protected mode off as the official build compiles it.
#   prom/prometheus:v2.53.2  Debian's prometheus 2.42, as user nobody in /prometheus with
#                          upstream's default storage path, and wget as busybox has it.
#   grafana/grafana:11.2.0 none: Debian does not package Grafana (the test skips it).
#
# Idempotent: an image that already exists under its tag is kept (a real one, pulled
# elsewhere, is never replaced); a stand-in built by an older recipe is rebuilt. Runs under
# a lock, so two test runs do not build at once.
set -euo pipefail
PATH="$PATH:/usr/sbin:/sbin"
export DEBIAN_FRONTEND=noninteractive

CACHE=${POOLLAB_STANDINS_CACHE:-/var/cache/poollab-standins}
SUITE=bookworm
LABEL=org.poollab.standin
# tag → recipe version: bump one when its recipe changes, so existing stand-ins are rebuilt
declare -A RECIPES=(
  [python:3.11-slim]=1
  [redis:7.4-alpine]=1
  [prom/prometheus:v2.53.2]=1
)
ORDER=(python:3.11-slim redis:7.4-alpine prom/prometheus:v2.53.2)

log() { echo "compose-standins: $*" >&2; }

# 0: the tag is usable as it is (a real image, or a stand-in of the current recipe)
present() {
  local tag=$1 recipe
  recipe=$(docker image inspect -f "{{index .Config.Labels \"$LABEL.recipe\"}}" "$tag" 2>/dev/null) \
    || return 1
  [ -z "$recipe" ] || [ "$recipe" = "<no value>" ] || [ "$recipe" = "${RECIPES[$tag]}" ]
}

case "${1:-}" in
  --list)
    printf '%s\n' "${ORDER[@]}"
    exit 0
    ;;
  --missing)
    for tag in "${ORDER[@]}"; do present "$tag" || echo "$tag"; done
    exit 0
    ;;
  -*)
    echo "usage: $0 [--list | --missing | TAG...]" >&2
    exit 2
    ;;
esac

wanted=("$@")
[ "${#wanted[@]}" -gt 0 ] || wanted=("${ORDER[@]}")
for tag in "${wanted[@]}"; do
  [ -n "${RECIPES[$tag]:-}" ] || { log "no recipe for $tag (known: ${ORDER[*]})"; exit 2; }
done

docker info >/dev/null 2>&1 || { log "no Docker engine answers (bash .ci/start-docker)"; exit 1; }
missing=()
for tag in "${wanted[@]}"; do present "$tag" || missing+=("$tag"); done
if [ "${#missing[@]}" -eq 0 ]; then
  log "all there: ${wanted[*]}"
  exit 0
fi
[ "$(id -u)" -eq 0 ] || { log "building ${missing[*]} needs root (debootstrap, chroot)"; exit 1; }
command -v debootstrap >/dev/null || { log "no debootstrap (bash .ci/install-tools)"; exit 1; }

mkdir -p "$CACHE"
exec 9>"$CACHE/lock"
flock 9
# another run may have built them while this one waited for the lock
still=()
for tag in "${missing[@]}"; do present "$tag" || still+=("$tag"); done
missing=("${still[@]}")
[ "${#missing[@]}" -gt 0 ] || { log "built meanwhile by another run"; exit 0; }

# this machine's Debian mirror (deb822 or one-line sources), so apt goes where the host's goes
mirror=$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
if [ -z "$mirror" ]; then
  mirror=$(awk '$1 == "deb" && $3 ~ /^bookworm$/ {print $2; exit}' /etc/apt/sources.list 2>/dev/null || true)
fi
mirror=${mirror:-http://deb.debian.org/debian}

in_root() {
  # a clean environment: nothing of the host's (its pip configuration, proxies set for it)
  chroot "$1" env -i PATH=/usr/local/bin:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin \
    HOME=/root LANG=C.UTF-8 DEBIAN_FRONTEND=noninteractive "${@:2}"
}

# The minbase rootfs every stand-in starts from, built once and kept: debootstrap is the
# slow part (a minute or two), and its result depends only on the suite.
base="$CACHE/$SUITE-minbase"
if [ ! -e "$base.done" ]; then
  log "debootstrap --variant=minbase $SUITE from $mirror into $base"
  rm -rf "$base" "$base.tmp"
  debootstrap --variant=minbase "$SUITE" "$base.tmp" "$mirror" >"$CACHE/debootstrap.log" 2>&1 \
    || { tail -n 20 "$CACHE/debootstrap.log" >&2; exit 1; }
  # the host's sources: its mirror, and the security and point-release updates the
  # official Debian images carry
  if [ -f /etc/apt/sources.list.d/debian.sources ]; then
    rm -f "$base.tmp/etc/apt/sources.list"
    cp /etc/apt/sources.list.d/debian.sources "$base.tmp/etc/apt/sources.list.d/"
  fi
  mv "$base.tmp" "$base"
  touch "$base.done"
fi

work="$CACHE/work"
cleanup() { rm -rf "$work"; }
trap cleanup EXIT

# A copy of the base to install into; packages' services must not start in a chroot.
new_root() {
  rm -rf "$work"
  cp -a "$base" "$work"
  cp /etc/resolv.conf "$work/etc/resolv.conf"
  printf '#!/bin/sh\nexit 101\n' >"$work/usr/sbin/policy-rc.d"
  chmod +x "$work/usr/sbin/policy-rc.d"
  # quiet unless it fails (apt and debconf grumble in a chroot without /dev/pts)
  {
    in_root "$work" apt-get update -qq &&
      in_root "$work" apt-get install -y -qq --no-install-recommends "$@"
  } >"$CACHE/apt.log" 2>&1 || { tail -n 20 "$CACHE/apt.log" >&2; exit 1; }
}

# What the official images do not ship either: apt's lists and caches, the helper above,
# the host's resolver (Docker provides /etc/hosts, /etc/resolv.conf, /etc/hostname).
import_root() {
  local tag=$1
  shift
  rm -rf "$work"/var/lib/apt/lists/* "$work"/var/cache/apt/*.bin \
    "$work"/var/cache/apt/archives/*.deb "$work/usr/sbin/policy-rc.d" "$work/root/.cache"
  find "$work" -xdev -name __pycache__ -prune -exec rm -rf {} +
  printf '127.0.0.1\tlocalhost\n' >"$work/etc/hosts"
  : >"$work/etc/resolv.conf"
  : >"$work/etc/hostname"
  local changes=(
    -c "LABEL $LABEL=$tag"
    -c "LABEL $LABEL.recipe=${RECIPES[$tag]}"
    -c "LABEL org.opencontainers.image.description=\"stand-in for $tag, from Debian $SUITE packages (.ci/compose-standins.sh)\""
  )
  local change
  for change in "$@"; do changes+=(-c "$change"); done
  tar -C "$work" --numeric-owner -c . | docker import "${changes[@]}" - "$tag" >/dev/null
  rm -rf "$work"
  log "built $tag"
}

build_python() {
  new_root python3.11 python3.11-venv ca-certificates netbase tzdata
  local version
  version=$(in_root "$work" python3.11 -c 'import platform; print(platform.python_version())')
  # a venv at /usr/local: python, pip and every `pip install` land where the official
  # image (Python built with --prefix=/usr/local) puts them
  in_root "$work" python3.11 -m venv /usr/local
  rm -f "$work"/usr/local/bin/activate* "$work"/usr/local/bin/Activate.ps1
  # the proxy's CA (see the header); the official image has the same path
  cp /etc/ssl/certs/ca-certificates.crt "$work/etc/ssl/certs/ca-certificates.crt"
  in_root "$work" env PIP_CERT=/etc/ssl/certs/ca-certificates.crt PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 /usr/local/bin/pip install -q 'pip==24.0'
  import_root python:3.11-slim \
    'ENV PATH=/usr/local/bin:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin' \
    'ENV LANG=C.UTF-8' \
    "ENV PYTHON_VERSION=$version" \
    'ENV PIP_CERT=/etc/ssl/certs/ca-certificates.crt' \
    'CMD ["python3"]'
}

build_redis() {
  new_root redis-server
  mkdir -p "$work/data"
  # the official image's entrypoint, with setpriv (util-linux, in every Debian) for su-exec
  cat >"$work/usr/local/bin/docker-entrypoint.sh" <<'EOF'
#!/bin/sh
set -e

# first arg is `-f` or `--some-option`, or a `something.conf`
if [ "${1#-}" != "$1" ] || [ "${1%.conf}" != "$1" ]; then
	set -- redis-server "$@"
fi

# as root: the data directory to the redis user, then run as that user
if [ "$1" = 'redis-server' ] && [ "$(id -u)" = '0' ]; then
	find . \! -user redis -exec chown redis '{}' +
	exec setpriv --reuid=redis --regid=redis --init-groups "$0" "$@"
fi

# the official build compiles protected mode off (its only network is the container's);
# Debian's is on: turn it off first, so a later --protected-mode still wins
if [ "$1" = 'redis-server' ]; then
	shift
	set -- redis-server --protected-mode no "$@"
fi

um="$(umask)"
if [ "$um" = '0022' ]; then
	umask 0077
fi

exec "$@"
EOF
  chmod +x "$work/usr/local/bin/docker-entrypoint.sh"
  import_root redis:7.4-alpine \
    'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    'WORKDIR /data' 'VOLUME /data' 'EXPOSE 6379' \
    'ENTRYPOINT ["docker-entrypoint.sh"]' 'CMD ["redis-server"]'
}

build_prometheus() {
  new_root prometheus wget
  mkdir -p "$work/prometheus"
  chown 65534:65534 "$work/prometheus"
  # Debian patches the default --storage.tsdb.path to /var/lib/prometheus/metrics2/;
  # upstream's is data/, in the working directory /prometheus, where the volume is
  cat >"$work/usr/local/bin/prometheus" <<'EOF'
#!/bin/sh
case " $* " in
	*" --storage.tsdb.path"*) ;;
	*) set -- --storage.tsdb.path=data/ "$@" ;;
esac
exec /usr/bin/prometheus "$@"
EOF
  chmod +x "$work/usr/local/bin/prometheus"
  import_root prom/prometheus:v2.53.2 \
    'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    'USER nobody' 'WORKDIR /prometheus' 'VOLUME ["/prometheus"]' 'EXPOSE 9090' \
    'ENTRYPOINT ["/usr/local/bin/prometheus"]' \
    'CMD ["--config.file=/etc/prometheus/prometheus.yml", "--storage.tsdb.path=/prometheus"]'
}

for tag in "${missing[@]}"; do
  log "building $tag"
  case "$tag" in
    python:*) build_python ;;
    redis:*) build_redis ;;
    prom/prometheus:*) build_prometheus ;;
  esac
done
