#!/bin/sh
# Makes test/fixtures/releases/opencmg-0.1.0.tgz, the previous release's archive that the upgrade
# test (test/e2e/release/upgrade.test.ts) installs: the product as of commit f0d1fc8, built and
# packed as a release is (docs/operations.md, "Install from the release archive"), without its
# source maps and the documents' screenshots (4.1 MB with them, 1.1 MB without; the program reads
# neither). Run from a full clone (the commit must be in it), with node_modules installed.
set -eu
COMMIT=f0d1fc89a2eaa34fb0f1a8147ca2c43fb766be61
ROOT=$(cd "$(dirname "$0")/.." && pwd)
OUT="$ROOT/test/fixtures/releases"
SCRATCH=$(mktemp -d /tmp/opencmg-prev-XXXXXX)
trap 'git -C "$ROOT" worktree remove --force "$SCRATCH/tree" 2>/dev/null || true; rm -rf "$SCRATCH"' EXIT

git -C "$ROOT" worktree add --detach "$SCRATCH/tree" "$COMMIT"
cd "$SCRATCH/tree"
# The build tools of this checkout (that commit's build needs nothing newer or older).
ln -s "$ROOT/node_modules" node_modules
npm run build
find dist -name '*.map' -delete
find docs -name '*.png' -delete
# --ignore-scripts: the build above is the one packed (prepare would build again).
npm pack --ignore-scripts --pack-destination "$SCRATCH"
mkdir -p "$OUT"
cp "$SCRATCH"/opencmg-0.1.0.tgz "$OUT/opencmg-0.1.0.tgz"
sha256sum "$OUT/opencmg-0.1.0.tgz"
