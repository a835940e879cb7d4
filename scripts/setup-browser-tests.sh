#!/usr/bin/env bash
# Installs what the approver console's browser tests need, and only what is missing:
#   - Debian's Chromium (/usr/bin/chromium), driven headless;
#   - node and npm (Debian's), to run e2e/console.test.mjs;
#   - e2e/node_modules from e2e/package-lock.json (playwright-core, which downloads no browser).
# Idempotent: a second run changes nothing. Needs root (or sudo) for apt-get.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

missing=()
[ -x /usr/bin/chromium ] || missing+=(chromium)
command -v node >/dev/null 2>&1 || missing+=(nodejs)
command -v npm >/dev/null 2>&1 || missing+=(npm)
# Fonts, so screenshots show text (Chromium's package does not pull one in on a bare system).
[ -d /usr/share/fonts/truetype/dejavu ] || missing+=(fonts-dejavu-core)

if [ "${#missing[@]}" -gt 0 ]; then
  echo "setup-browser-tests: installing ${missing[*]}"
  as_root apt-get update
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}"
fi

node_major="$(node -p 'process.versions.node.split(".")[0]')"
if [ "$node_major" -lt 20 ]; then
  echo "setup-browser-tests: node $node_major is too old; playwright-core needs node 20 or newer" >&2
  exit 1
fi

if [ ! -d "$root/e2e/node_modules/playwright-core" ] || [ ! -d "$root/e2e/node_modules/oidc-provider" ]; then
  echo "setup-browser-tests: npm ci in e2e/"
  npm ci --prefix "$root/e2e" --no-audit --no-fund
fi

echo "setup-browser-tests: ready ($(/usr/bin/chromium --version 2>/dev/null | head -n1); node $(node --version))"
