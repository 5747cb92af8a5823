#!/usr/bin/env bash
# Makes sure redis-server, redis-cli and redis-benchmark are installed:
# installs Debian's redis-server and redis-tools with apt-get when one is
# missing and we are root, else says how to install them.
set -euo pipefail
missing=()
for bin in redis-server redis-cli redis-benchmark; do
  command -v "$bin" >/dev/null 2>&1 || missing+=("$bin")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ -n "${REDIS_SERVER:-}" ] && [ -x "$REDIS_SERVER" ] && command -v redis-cli >/dev/null 2>&1; then
  exit 0
fi
if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "missing: ${missing[*]}. Install Redis first, e.g.: sudo apt-get install -y redis-server redis-tools" >&2
  exit 1
fi
echo "installing redis-server redis-tools (missing: ${missing[*]})" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq redis-server redis-tools >/dev/null
# The Debian package starts a system redis on 6379; our tests use their own.
if command -v service >/dev/null 2>&1; then service redis-server stop >/dev/null 2>&1 || true; fi
