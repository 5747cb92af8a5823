#!/usr/bin/env bash
# Makes sure a headless-capable Chromium is installed for the dashboard's
# browser test: installs Debian's chromium package with apt-get when it is
# missing and we are root, else says how to install it. CHROMIUM overrides
# the binary (default: chromium from PATH, then /usr/bin/chromium).
set -euo pipefail
if [ -n "${CHROMIUM:-}" ] && [ -x "$CHROMIUM" ]; then exit 0; fi
if command -v chromium >/dev/null 2>&1 || [ -x /usr/bin/chromium ]; then exit 0; fi
if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "missing: chromium. Install it first, e.g.: sudo apt-get install -y chromium" >&2
  exit 1
fi
echo "installing chromium (missing)" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >/dev/null
