#!/usr/bin/env bash
# Build the project's Dockerfile for real without a registry or a Docker engine, then run the smoke pipeline in it.
#   .ci/build_container.sh            # as root, called by .ci/run; prints the seconds each step took
# Registries are unreachable here, so the base is the same Debian release built locally with debootstrap and passed
# as BASE_IMAGE; the host's CA bundle and local wheel directory are build inputs only (mounted during RUN, never
# copied into a layer). Isolation chroot (no user namespaces here); storage driver overlay, or vfs where the kernel
# lacks overlayfs (CAIBASE_STORAGE_DRIVER=vfs; vfs copies the whole root filesystem for every layer, several times
# slower).
set -euo pipefail
cd "$(dirname "$0")/.."

[ "$(id -u)" = 0 ] || { echo ".ci/build_container.sh: needs root (apt-get, debootstrap, buildah)" >&2; exit 1; }
WORK=${CAIBASE_CONTAINER_WORK:-/var/tmp/caibase-container}
BASE=localhost/bookworm-base:local
IMAGE=localhost/caibase:ci
CONTAINER=caibase-ci-smoke
MIRROR=${CAI_DATA_MIRROR:?set CAI_DATA_MIRROR to the public-data mirror (the smoke config reads HH-RLHF and HHH rows)}
HOST_CA=${HOST_CA:-/etc/ssl/certs/ca-certificates.crt}
WHEELS=${WHEELS:-/opt/wheels}
mkdir -p "$WORK"
DRIVER=${CAIBASE_STORAGE_DRIVER:-overlay}
storage=(--storage-driver="$DRIVER" --root "$WORK/storage-$DRIVER" --runroot "$WORK/run-$DRIVER")
buildah=(buildah "${storage[@]}")
podman=(podman "${storage[@]}")
step() { echo "== [$(date -u +%H:%M:%S), ${SECONDS}s] $*"; }

step "install buildah, podman, debootstrap"
if ! command -v buildah >/dev/null || ! command -v podman >/dev/null || ! command -v debootstrap >/dev/null; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends buildah podman debootstrap >/dev/null
fi

step "local base image: debootstrap --variant=minbase bookworm (the release of the Dockerfile's pinned base)"
if ! "${podman[@]}" image exists "$BASE"; then
    rm -rf "$WORK/rootfs" && mkdir -p "$WORK"
    debootstrap --variant=minbase bookworm "$WORK/rootfs" http://deb.debian.org/debian >"$WORK/debootstrap.log"
    tar -C "$WORK/rootfs" -cf "$WORK/base.tar" .
    "${podman[@]}" import "$WORK/base.tar" "$BASE" >/dev/null
    rm -rf "$WORK/rootfs" "$WORK/base.tar"
fi

step "buildah bud the project's Dockerfile (TORCH_VARIANT=cpu)"
build_inputs=()
[ -f "$HOST_CA" ] && build_inputs+=(-v "$HOST_CA:/host-ca.crt:ro" --build-arg PIP_CERT=/host-ca.crt)
[ -d "$WHEELS" ] && build_inputs+=(-v "$WHEELS:/opt/wheels:ro" --build-arg PIP_FIND_LINKS=/opt/wheels)
"${buildah[@]}" bud --isolation=chroot --layers --format docker \
    --build-arg BASE_IMAGE="$BASE" --build-arg TORCH_VARIANT=cpu \
    --build-arg CAIBASE_CODE_VERSION="$(git rev-parse HEAD 2>/dev/null || echo unknown)" \
    "${build_inputs[@]}" -t "$IMAGE" -f Dockerfile .

step "smoke pipeline inside the image"
"${buildah[@]}" rm "$CONTAINER" >/dev/null 2>&1 || true
"${buildah[@]}" from --name "$CONTAINER" "$IMAGE" >/dev/null
trap '"${buildah[@]}" rm "$CONTAINER" >/dev/null 2>&1 || true' EXIT
in_image=("${buildah[@]}" run --isolation=chroot -v "$MIRROR:/data:ro" --env CAI_DATA_MIRROR=/data
          --env HF_HUB_OFFLINE=1 "$CONTAINER" --)
"${in_image[@]}" id -u | grep -qvx 0 || { echo "the image runs as root" >&2; exit 1; }
"${in_image[@]}" snakemake --cores 2 --configfile config/smoke.yaml
"${in_image[@]}" snakemake -n --cores 1 --configfile config/smoke.yaml | tee "$WORK/dry-run.txt"
grep -q "Nothing to be done" "$WORK/dry-run.txt"
"${in_image[@]}" python -c "import json; m = json.load(open('results/smoke/metrics.json')); print('metrics.json:', len(m['summary']), 'rows')"
step "done: image $IMAGE built and the smoke pipeline ran inside it"
