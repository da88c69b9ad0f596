#!/usr/bin/env bash
# Debian packages the corpora are rendered from (dashtok data build). Needs root; safe to re-run.
set -euo pipefail
PACKAGES=(
  espeak-ng flite festival festvox-kallpc16k festvox-kdlpc16k festvox-us-slt-hts festvox-italp16k festvox-itapc16k
  fluidsynth fluid-soundfont-gm timgm6mb-soundfont
  hydrogen-drumkits sonic-pi-samples lmms-common sound-theme-freedesktop sound-icons oxygen-sounds alsa-utils
  pocketsphinx-testdata
  # real human speech for training (CC-BY-SA-3.0); ffmpeg decodes their G.722. The other Asterisk sound packages
  # (it, ru, music-on-hold) are reserved for independent evaluation: do not add them here.
  asterisk-core-sounds-en-g722 asterisk-core-sounds-es-g722 asterisk-core-sounds-fr-g722 ffmpeg
  wamerican wngerman wfrench wspanish witalian wportuguese wdutch wswedish wpolish wnorwegian wdanish wukrainian
  wbulgarian wcatalan
)
exec bash "$(dirname "$0")/install_debian.sh" "audio tools" "${PACKAGES[@]}"
