#!/usr/bin/env bash
# Runs the whole test suite on a fresh Debian 12 machine with Node.js: installs the Debian
# packages the tests drive (only those missing), then `npm ci` and `npm test`. The README's test
# command and CI (.ci/run) both run exactly this.
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian packages the tests use (the README says why):
#   squid (with basic_ncsa_auth), postgresql (initdb/pg_ctl), nginx: real servers the tests start
#   on free loopback ports; openssl: PFX files and Squid password files; curl, ca-certificates:
#   benchmark baselines and TLS roots; openssh-server, openssh-client: a benchmark's `ssh -R`.
PACKAGES=(squid postgresql openssl curl ca-certificates nginx openssh-server openssh-client)
# Started by their packages on install; the tests start their own instances instead.
SERVICES=(squid nginx postgresql)

fail() {
  echo "error: $*" >&2
  exit 1
}

command -v node >/dev/null || fail "Node.js is not installed; install Node.js 20.18.1 or later, then run: bash scripts/test.sh"
node -e 'const [a,b,c]=process.versions.node.split(".").map(Number);process.exit(a>20||(a===20&&(b>18||(b===18&&c>=1)))?0:1)' ||
  fail "Node.js $(node --version) is too old; the dependencies need 20.18.1 or later"

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if [ "${#missing[@]}" -gt 0 ]; then
  command -v apt-get >/dev/null || fail "missing ${missing[*]}, and this is not a Debian-like system (no apt-get); install them, then run: bash scripts/test.sh"
  if [ "$(id -u)" -eq 0 ]; then
    as_root=()
  elif command -v sudo >/dev/null && sudo -v; then
    as_root=(sudo)
  else
    fail "the tests need the Debian packages ${missing[*]}; install them as root with: apt-get update && apt-get install -y --no-install-recommends ${missing[*]} (then run bash scripts/test.sh again)"
  fi
  echo "Installing ${missing[*]} (apt-get)"
  export DEBIAN_FRONTEND=noninteractive
  "${as_root[@]}" apt-get update -qq
  "${as_root[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  for s in "${SERVICES[@]}"; do
    "${as_root[@]}" service "$s" stop >/dev/null 2>&1 || true
  done
fi

node --version
npm --version
npm ci --no-audit --no-fund
npm test
