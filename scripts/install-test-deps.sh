#!/usr/bin/env bash
# Installs the system packages the test suite needs, when they are missing: PostgreSQL's server binaries,
# against which the tests run the SQLAlchemy token store (they start a private server on loopback).
set -euo pipefail
if command -v initdb >/dev/null 2>&1 || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
    exit 0
fi
sudo=""
if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends postgresql
