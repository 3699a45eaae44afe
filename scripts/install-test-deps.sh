#!/usr/bin/env bash
# Installs the system packages the test suite needs, when they are missing:
# - PostgreSQL's server binaries, against which the tests run the SQLAlchemy token store (they start a private
#   server on loopback);
# - Debian's chromium and its headless shell (chromium-headless-shell, the same engine and version), which the
#   real-browser tests drive with Playwright (executable_path=/usr/bin/chromium-headless-shell for most tests,
#   /usr/bin/chromium for some; no browser is downloaded at install time).
set -euo pipefail
missing=()
if ! command -v initdb >/dev/null 2>&1 && ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
    missing+=(postgresql)
fi
if ! command -v chromium >/dev/null 2>&1; then
    missing+=(chromium fonts-dejavu-core)
fi
if ! command -v chromium-headless-shell >/dev/null 2>&1; then
    missing+=(chromium-headless-shell fonts-dejavu-core)
fi
if [ ${#missing[@]} -eq 0 ]; then
    exit 0
fi
sudo=""
if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
