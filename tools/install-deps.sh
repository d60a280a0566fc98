#!/usr/bin/env bash
# Installs the Debian packages that building and testing mca-convert need, skipping those already
# present (so running it again costs nothing). Needs root (or sudo) only when something is missing.
set -euo pipefail

# package  probe: a command on PATH, or a header it provides
deps=(
  "g++                cmd:g++"
  "cmake              cmd:cmake"
  "ninja-build        cmd:ninja"
  "libgtest-dev       file:/usr/include/gtest/gtest.h"
  "nlohmann-json3-dev file:/usr/include/nlohmann/json.hpp"
  "zlib1g-dev         file:/usr/include/zlib.h"
  "libisal-dev        file:/usr/include/isa-l/crc.h"
)

missing=()
for entry in "${deps[@]}"; do
  read -r package probe <<<"$entry"
  case "$probe" in
    cmd:*) command -v "${probe#cmd:}" >/dev/null 2>&1 || missing+=("$package") ;;
    file:*) [ -e "${probe#file:}" ] || missing+=("$package") ;;
  esac
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all build dependencies present"
  exit 0
fi

as_root=()
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null 2>&1 || {
    echo "install-deps: missing ${missing[*]}; run as root or install sudo" >&2
    exit 1
  }
  as_root=(sudo)
fi
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
"${as_root[@]}" apt-get update
"${as_root[@]}" apt-get install -y --no-install-recommends "${missing[@]}"
