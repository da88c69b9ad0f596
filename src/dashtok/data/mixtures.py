"""Speech in noise: the corpus's mixture plan, and the mixing itself (coloured noise, babble, music and sounds at a
set SNR), which the corpus build renders and the enhancement stage draws more pairs from."""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from dashtok.audio_io import load_audio
from dashtok.config import SAMPLE_RATE
from dashtok.data.manifest import Clip, read_manifest

SNRS_DB = (-5, 0, 5, 10, 15, 20)
NOISE_TYPES = ("white", "pink", "brown", "music", "sound", "babble")
COLORED = ("white", "pink", "brown")  # drawn, not taken from clips


def plan_mixtures(n: int, seed: int, clips: list[Clip]) -> list[Clip]:
    """Speech over noise at a set SNR. Clean speech, noise and babble all come from the mixture's own split;
    real human speech is mixed only with test-split noise, for speech-enhancement evaluation. The Asterisk prompts
    stay out of mixtures for now: ``dashtok eval se`` tells real from synthetic clean speech by the ``real-speech``
    source, and leaving them out keeps the mixture plan of earlier corpora unchanged."""
    rng = random.Random(f"mixture/{seed}")
    by_split: dict[str, dict[str, list[Clip]]] = defaultdict(lambda: defaultdict(list))
    for c in clips:
        if c.source == "asterisk":
            continue
        if c.source == "real-speech":
            kind = "real"
        elif c.domain == "speech":
            kind = "speech"
        elif c.domain in ("music", "sound"):
            kind = c.domain
        else:
            continue
        by_split[c.split][kind].append(c)
    out = []
    real = by_split["test"]["real"]
    jobs: list[tuple[Clip | None, str]] = [(c, "test") for c in real for _ in range(2)]
    jobs += [(None, rng.choice(("train",) * 8 + ("valid", "test"))) for _ in range(n)]
    for i, (clean, split) in enumerate(jobs):
        pools = by_split[split]
        if clean is None:
            if not pools["speech"]:
                continue
            clean = rng.choice(pools["speech"])
        noise_type = rng.choice(noise_types(pools))
        snr = rng.choice(SNRS_DB)
        if noise_type == "babble":
            noise_ids = [c.id for c in rng.sample(pools["speech"], min(3, len(pools["speech"])))]
        elif noise_type in ("music", "sound"):
            noise_ids = [rng.choice(pools[noise_type]).id]
        else:
            noise_ids = []
        noise_ids = [x for x in noise_ids if x != clean.id]
        words = {"white": "white noise", "pink": "pink noise", "brown": "brown noise", "music": "music",
                 "sound": "background sounds", "babble": "babble of other voices"}
        out.append(Clip(
            id=f"mix-{i:06d}", source="mixture", split=split, domain="mixture",
            caption=f"{clean.caption} over {words[noise_type]} at {snr} dB SNR",
            labels={"noisy": True, "snr_db": snr, "noise_type": noise_type, "clean_id": clean.id,
                    "noise_ids": noise_ids, "real": clean.source == "real-speech",
                    **{k: v for k, v in clean.labels.items() if k in ("language", "gender", "voice", "text")}},
            params={"clean": clean.id, "noise": noise_ids, "noise_type": noise_type, "snr": snr}))
    return out


def colored_noise(kind: str, n: int, rng: np.random.Generator) -> np.ndarray:
    white = rng.standard_normal(n)
    if kind == "white":
        return white
    spectrum = np.fft.rfft(white)
    f = np.maximum(np.fft.rfftfreq(n), 1.0 / n)
    spectrum /= np.sqrt(f) if kind == "pink" else f
    return np.fft.irfft(spectrum, n)


def noise_types(pools: dict[str, list[Clip]]) -> list[str]:
    """The noise types that ``pools`` (clips by kind) can give: the coloured ones always, babble from speech, music
    and sounds from their clips."""
    return [t for t in NOISE_TYPES if t in COLORED or pools["speech" if t == "babble" else t]]


def headroom_gain(x: np.ndarray) -> float:
    """The gain that keeps a rendered clip from clipping: 0.95 / peak above a peak of 0.99, else 1."""
    peak = float(np.abs(x).max())
    return 0.95 / peak if peak > 0.99 else 1.0


def mix_at_snr(clean: np.ndarray, noise_type: str, parts: list[np.ndarray], snr_db: float,
               rng: np.random.Generator) -> np.ndarray:
    """``clean`` plus noise at ``snr_db``: coloured noise drawn here, or the noise clips ``parts``, each looped to the
    clean clip's length from a random offset, summed."""
    if noise_type in COLORED:
        noise = colored_noise(noise_type, len(clean), rng)
    else:
        noise = np.zeros(len(clean))
        for part in parts:
            reps = np.tile(part, int(np.ceil((len(clean) + len(part)) / len(part))))
            start = rng.integers(0, len(part))
            noise += reps[start : start + len(clean)]
    gain = np.sqrt(np.mean(clean**2) / (np.mean(noise**2) + 1e-12) / 10 ** (snr_db / 10))
    return (clean + gain * noise).astype(np.float32)


def load_pair(noisy_path: str | Path, clean_path: str | Path, gain: float, sample_rate: int = SAMPLE_RATE
              ) -> tuple[np.ndarray, np.ndarray]:
    """A corpus mixture and its clean target: the clean clip at the mixture's render gain, cut to at most the
    mixture's length (``manifest.mixture_pairs`` gives the paths and the gain)."""
    noisy = load_audio(noisy_path, sample_rate)
    return noisy, load_audio(clean_path, sample_rate)[: len(noisy)] * gain


def load_pairs(pairs: list[tuple[Path, Path, float]], sample_rate: int = SAMPLE_RATE
               ) -> list[tuple[np.ndarray, np.ndarray]]:
    """``load_pair`` of each, the clean target zero-padded to the mixture's length (latents frame for frame)."""
    out = []
    for pair in pairs:
        noisy, clean = load_pair(*pair, sample_rate)
        out.append((noisy, np.pad(clean, (0, len(noisy) - len(clean)))))
    return out


def draw_mixtures(manifest: str | Path, n: int, seed: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """``n`` more (noisy, clean) training pairs, mixed on the fly from one split's clips as the corpus mixes its own:
    clean speech (the real Asterisk prompts too, which the corpus's mixtures leave out), one of the noise types at one
    of the SNRs, babble from three other speech clips, music and sounds from their clips (the sound scenes too, which
    the corpus's mixtures do not use). Seeded; a mixture that would clip is scaled down together with its clean
    target, as in the corpus."""
    root = Path(manifest).parent
    pools: dict[str, list[Clip]] = defaultdict(list)
    for c in read_manifest(manifest):
        if c.domain in ("speech", "music", "sound"):
            pools[c.domain].append(c)
    if len(pools["speech"]) < 4:
        raise ValueError(f"{manifest}: too few speech clips to draw mixtures from ({len(pools['speech'])})")
    rng = random.Random(f"draw-mixtures/{seed}")
    types = noise_types(pools)
    for i in range(n):
        clean_clip = rng.choice(pools["speech"])
        noise_type = rng.choice(types)
        if noise_type == "babble":
            noise_clips = rng.sample([c for c in pools["speech"] if c.id != clean_clip.id], 3)
        elif noise_type in COLORED:
            noise_clips = []
        else:
            noise_clips = [rng.choice(pools[noise_type])]
        clean = load_audio(root / clean_clip.path, SAMPLE_RATE)
        parts = [load_audio(root / c.path, SAMPLE_RATE) for c in noise_clips]
        noisy = mix_at_snr(clean, noise_type, parts, rng.choice(SNRS_DB), np.random.default_rng([seed, i]))
        scale = headroom_gain(noisy)
        yield noisy * scale, (clean * scale).astype(np.float32)
