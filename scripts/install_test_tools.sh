#!/usr/bin/env bash
# Debian packages some tests need beyond the audio tools: Chromium, in which the listening page of `dashtok eval gen`
# is opened headless and screenshotted. Needs root; safe to re-run.
set -euo pipefail
PACKAGES=(chromium)
missing=()
for p in "${PACKAGES[@]}"; do
  # installed, not only known (a removed package keeps its configuration files, and dpkg -s still answers)
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "test tools: all ${#PACKAGES[@]} packages present"
  exit 0
fi
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "test tools: installed ${missing[*]}"
