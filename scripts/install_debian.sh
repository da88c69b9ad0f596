#!/usr/bin/env bash
# Install the Debian packages that are not installed yet: the one installer behind install_audio_tools.sh and the
# test command's Chromium. Needs root (or sudo); safe to re-run.
#   bash scripts/install_debian.sh LABEL PACKAGE...
set -euo pipefail
LABEL=${1:?label for the messages}; shift
missing=()
for p in "$@"; do
  # installed, not only known (a removed package keeps its configuration files, and dpkg -s still answers)
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "$LABEL: all $# packages present"
  exit 0
fi
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "$LABEL: installed ${missing[*]}"
