#!/usr/bin/env bash
# Builds the Stratus Lambda container image with podman, offline (no registry):
#
#   scripts/container.sh base                 the base image localhost/stratus-base:bookworm-gdal
#                                             (debootstrap minbase bookworm + libgdal32 +
#                                             ca-certificates), made once and kept
#   scripts/container.sh image [debug|release]
#                                             the function image localhost/stratus-lambda:latest:
#                                             the base plus the four function binaries and the
#                                             `stratus` CLI from target/PROFILE (default release;
#                                             `make package` builds them first)
#   scripts/container.sh podman ARGS...       podman with this project's containers.conf
#
# The binaries are built on this machine (Debian bookworm, GDAL 3.6) and run in a bookworm
# base with the same GDAL soname, so nothing is cross-compiled. The Debian mirror is read
# from this machine's apt sources at run time. On hosts whose process limits are below
# podman's defaults, the containers.conf written under .cache/container/ sets the limits
# to this machine's hard limits (and runc + cgroupfs).
#
# Environment: STRATUS_IMAGE (default localhost/stratus-lambda:latest),
#              STRATUS_BASE_IMAGE (default localhost/stratus-base:bookworm-gdal).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
root=$(pwd)
cache="$root/.cache/container"
image=${STRATUS_IMAGE:-localhost/stratus-lambda:latest}
base=${STRATUS_BASE_IMAGE:-localhost/stratus-base:bookworm-gdal}
binaries=(stratus-planner stratus-dispatcher stratus-worker stratus-mosaic stratus)

say() { echo "container.sh: $*" >&2; }
die() { echo "container.sh: ERROR: $*" >&2; exit 1; }

need_podman() {
    command -v podman >/dev/null || die "podman is not installed (scripts/setup.sh --test installs it: apt-get install podman runc debootstrap iptables)"
    mkdir -p "$cache"
    local conf="$cache/containers.conf"
    if [ ! -f "$conf" ]; then
        local nofile=20000 nproc=32768
        [ "$(ulimit -Hn)" = unlimited ] || [ "$(ulimit -Hn)" -ge $nofile ] || nofile=$(ulimit -Hn)
        [ "$(ulimit -Hu)" = unlimited ] || [ "$(ulimit -Hu)" -ge $nproc ] || nproc=$(ulimit -Hu)
        cat >"$conf" <<CONF
# Written by scripts/container.sh: podman's default ulimits exceed this host's hard limits.
[containers]
default_ulimits = ["nofile=$nofile:$nofile", "nproc=$nproc:$nproc"]
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
CONF
    fi
    export CONTAINERS_CONF="$conf"
}

# The first Debian archive URI in this machine's apt sources (deb822 or one-line format).
debian_mirror() {
    local uri
    uri=$(cat /etc/apt/sources.list.d/*.sources 2>/dev/null | awk '/^URIs:/ {for (i = 2; i <= NF; i++) print $i}' | grep -v -- '-security' | head -1 || true)
    if [ -z "$uri" ]; then
        uri=$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null | awk '$1 == "deb" && $0 !~ /security/ {for (i = 2; i <= NF; i++) if ($i ~ /^(https?|file):/) {print $i; exit}}' | head -1 || true)
    fi
    [ -n "$uri" ] || die "no Debian mirror found in /etc/apt/sources.list{,.d}: cannot debootstrap the base image"
    echo "$uri"
}

build_base() {
    need_podman
    if podman image exists "$base"; then
        say "base image $base present"
        return
    fi
    command -v debootstrap >/dev/null || die "debootstrap is not installed (apt-get install debootstrap)"
    [ "$(id -u)" -eq 0 ] || die "building the base image needs root (debootstrap + chroot)"
    local mirror rootfs
    mirror=$(debian_mirror)
    rootfs="$cache/rootfs"
    rm -rf "$rootfs"
    say "debootstrap minbase bookworm from $mirror (a minute or two)"
    debootstrap --variant=minbase bookworm "$rootfs" "$mirror" >"$cache/debootstrap.log" 2>&1 \
        || die "debootstrap failed: see $cache/debootstrap.log"
    cp /etc/resolv.conf "$rootfs/etc/resolv.conf"
    say "installing libgdal32 and ca-certificates in the base"
    chroot "$rootfs" /bin/sh -c 'apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends libgdal32 ca-certificates && apt-get clean && rm -rf /var/lib/apt/lists/*' \
        >"$cache/chroot-apt.log" 2>&1 || die "apt-get in the base failed: see $cache/chroot-apt.log"
    : >"$rootfs/etc/resolv.conf"
    tar -C "$rootfs" -c . | podman import --quiet --change 'CMD ["/bin/sh"]' - "$base" >/dev/null
    rm -rf "$rootfs"
    say "base image $base: $(podman image inspect --format '{{.Size}}' "$base" | awk '{printf "%.0f MB", $1 / 1e6}')"
}

build_image() {
    local profile=${1:-release}
    build_base
    local stage="$cache/stage"
    rm -rf "$stage"
    mkdir -p "$stage/bin"
    for bin in "${binaries[@]}"; do
        [ -x "target/$profile/$bin" ] || die "target/$profile/$bin is missing: build it first (make package, or cargo build for debug)"
        cp "target/$profile/$bin" "$stage/bin/"
    done
    strip "$stage"/bin/* # debug info stays in target/; the image only runs them
    say "building $image from target/$profile"
    podman build --quiet --build-arg "BASE=$base" -t "$image" -f functions/Containerfile "$stage" >/dev/null
    say "image $image: $(podman image inspect --format '{{.Size}}' "$image" | awk '{printf "%.0f MB", $1 / 1e6}')"
}

case "${1:-}" in
    base) build_base ;;
    image) build_image "${2:-release}" ;;
    podman) shift; need_podman; exec podman "$@" ;;
    *) die "usage: scripts/container.sh base | image [debug|release] | podman ARGS..." ;;
esac
