#!/usr/bin/env bash
# The browser tests' needs, from Debian's packages: Chromium, its WebDriver (chromedriver),
# and CJK fonts (so the screenshots show the Chinese pages as people see them). Installed
# only when missing and only as root; otherwise the tests say what is missing (and fail
# under CI=true).
set -euo pipefail
missing=()
[ -x /usr/bin/chromium ] || missing+=(chromium)
[ -x /usr/bin/chromedriver ] || missing+=(chromium-driver)
[ -d /usr/share/fonts/opentype/noto ] || missing+=(fonts-noto-cjk)
if [ ${#missing[@]} -eq 0 ]; then exit 0; fi
if [ "$(id -u)" != 0 ]; then
  echo "browser tests need Debian packages: ${missing[*]} (run as root to install them)" >&2
  exit 0
fi
echo "installing Debian's ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get install -y -qq "${missing[@]}" >/dev/null 2>&1 || { apt-get update -qq >/dev/null && apt-get install -y -qq "${missing[@]}" >/dev/null; }
