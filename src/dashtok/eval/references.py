"""Reference codecs for ``dashtok eval recon``: what a user would otherwise pick, run on the same clips.

Opus (libopus through ffmpeg) at 6, 12 and 24 kbit/s: each clip is encoded to Ogg Opus and decoded back to the
clip's rate with ffmpeg's defaults for libopus (``-application audio``, variable bitrate), trimmed or zero-padded to
the clip's length (ffmpeg removes Opus' pre-skip, so the decoded audio is time-aligned).
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from functools import lru_cache
from pathlib import Path

import numpy as np
import soundfile as sf

from dashtok.audio_io import fit_length

OPUS_KBPS = (6, 12, 24)


@lru_cache(maxsize=1)
def opus_available() -> bool:
    """Whether ffmpeg with the libopus encoder is on this machine."""
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        return False
    out = subprocess.run([ffmpeg, "-hide_banner", "-encoders"], capture_output=True, text=True).stdout
    return "libopus" in out


def opus(audio: np.ndarray, sample_rate: int, kbps: int) -> np.ndarray:
    """audio (T,) -> the same clip through Opus at ``kbps`` kbit/s, (T,) float32."""
    if not opus_available():
        raise RuntimeError("ffmpeg with libopus is not installed (Debian: apt-get install ffmpeg)")
    with tempfile.TemporaryDirectory() as tmp:
        src, coded, back = Path(tmp) / "in.wav", Path(tmp) / "coded.opus", Path(tmp) / "out.wav"
        sf.write(src, np.clip(audio, -1, 1), sample_rate, subtype="FLOAT")
        for cmd in (["-i", str(src), "-c:a", "libopus", "-b:a", f"{kbps}k", str(coded)],
                    ["-i", str(coded), "-ar", str(sample_rate), "-ac", "1", "-c:a", "pcm_f32le", str(back)]):
            proc = subprocess.run(["ffmpeg", "-hide_banner", "-loglevel", "error", "-y", *cmd],
                                  capture_output=True, text=True)
            if proc.returncode != 0:
                raise RuntimeError(f"ffmpeg failed: {proc.stderr.strip()[-500:]}")
        decoded, _ = sf.read(back, dtype="float32")
    return fit_length(np.asarray(decoded, dtype=np.float32).reshape(len(decoded), -1).mean(axis=1), len(audio))
