"""``dashtok data build``: plan, render (in parallel, resumable) and write a labelled, captioned corpus.

Layout of a corpus folder::

    audio/<split>/<source>/<id>.flac   16 kHz mono, 16-bit
    midi/<id>.mid                      the MIDI each music clip was rendered from
    train.jsonl valid.jsonl test.jsonl one clip per line: id, path, duration, source, domain, caption, labels
    rejected.jsonl                     clips that failed a check (silent, too short, tool error), with the reason
    build.json                         the command's settings, counts, hours per source and split, build time

The plan is a pure function of (preset, hours, seed), so the same command gives the same manifest. Audio files are
written atomically, so an interrupted build resumes where it stopped and never keeps a half-written file.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import random
import time
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

from dashtok.atomic import atomic_write
from dashtok.audio_io import load_audio, resample
from dashtok.config import SAMPLE_RATE
from dashtok.data.manifest import SPLITS, Clip, write_manifest
from dashtok.data.mixtures import COLORED, headroom_gain, mix_at_snr, plan_mixtures
from dashtok.data.music import FluidRenderer, plan_music, write_midi
from dashtok.data.recordings import (
    ASTERISK_LICENSE,
    ASTERISK_VOICES,
    RAW_RATE,
    decode_g722,
    plan_asterisk,
    plan_hydrogen,
    plan_real_speech,
    plan_samples,
)
from dashtok.data.speech import SentencePool, plan_espeak, plan_tts, render_speech

MIN_SECONDS = 0.3
SILENCE_RMS = 1e-4  # -80 dBFS


@dataclass(frozen=True)
class Preset:
    hours: float
    max_recordings_per_source: int | None


PRESETS = {"tiny": Preset(hours=0.03, max_recordings_per_source=4), "small": Preset(0.5, 60),
           "default": Preset(hours=3.0, max_recordings_per_source=None)}
# Share of the synthetic hours per source, and the mean clip length used to turn hours into clip counts.
SHARES = {"espeak": (0.40, 4.0), "flite": (0.08, 3.5), "festival": (0.05, 3.5), "music": (0.32, 3.5),
          "mixture": (0.15, 4.0), "scene": (0.03, 4.5)}

# Where the recorded (not rendered) audio comes from, and under which licence; written to build.json.
PROVENANCE = {
    "asterisk": {"packages": [v.package for v in ASTERISK_VOICES], "license": ASTERISK_LICENSE,
                 "copyright": "2003-2010 Allison Smith (en, es); 2006-2008 June Wallack (fr); "
                              "see /usr/share/doc/asterisk-core-sounds-*-g722/copyright",
                 "use": "train/valid/test, split by prompt"},
    "real-speech": {"packages": ["pocketsphinx-testdata", "alsa-utils", "sound-theme-freedesktop"],
                    "use": "test only"},
    "hydrogen": {"packages": ["hydrogen-drumkits"], "use": "train/valid/test, three kits held out"},
    "sonic-pi": {"packages": ["sonic-pi-samples"]},
    "lmms": {"packages": ["lmms-common"]},
    "sound-theme": {"packages": ["sound-theme-freedesktop", "sound-icons", "oxygen-sounds"]},
}


def plan(hours: float, seed: int, max_recordings: int | None) -> list[Clip]:
    count = {k: max(2, round(hours * 3600 * share / seconds)) for k, (share, seconds) in SHARES.items()}
    pool = SentencePool(seed, per_language=max(60, count["espeak"] // 4))
    clips = plan_espeak(count["espeak"], seed, pool)
    clips += plan_tts(count["flite"], seed, pool, "flite")
    clips += plan_tts(count["festival"], seed, pool, "festival")
    clips += plan_music(count["music"], seed)
    clips += plan_hydrogen(max_recordings) + plan_samples(max_recordings) + plan_real_speech(max_recordings)
    clips += plan_asterisk(max_recordings)
    clips += plan_mixtures(count["mixture"], seed, clips)
    clips += plan_scenes(count["scene"], seed, clips)
    return clips


def plan_scenes(n: int, seed: int, clips: list[Clip]) -> list[Clip]:
    """Sound scenes: two to four recordings of one split overlaid at random offsets and levels (multi-label)."""
    rng = random.Random(f"scene/{seed}")
    pools: dict[str, list[Clip]] = defaultdict(list)
    for c in clips:
        if c.domain == "sound" and c.source != "scene":
            pools[c.split].append(c)
    out = []
    for i in range(n):
        split = rng.choice(("train",) * 8 + ("valid", "test"))
        if len(pools[split]) < 2:
            continue
        parts = rng.sample(pools[split], rng.randint(2, min(4, len(pools[split]))))
        names = [str(p.labels.get("drum_class") or p.labels.get("category")) for p in parts]
        kinds = sorted(set(names))
        caption = "a sound scene with " + (", ".join(kinds[:-1]) + " and " + kinds[-1] if len(kinds) > 1
                                           else f"several {kinds[0]} sounds")
        out.append(Clip(
            id=f"scene-{i:06d}", source="scene", split=split, domain="sound", caption=caption,
            labels={"categories": kinds, "n_sources": len(parts), "part_ids": [p.id for p in parts]},
            params={"parts": [p.id for p in parts], "seconds": round(rng.uniform(3.0, 6.0), 2),
                    "offsets": [round(rng.uniform(0.0, 0.7), 3) for _ in parts],
                    "gains_db": [round(rng.uniform(-12.0, 0.0), 1) for _ in parts]}))
    return out


class Renderer:
    """Renders one clip to 16 kHz mono float32. One per worker process (it holds the fluidsynth instances)."""

    def __init__(self, root: Path, seed: int) -> None:
        self.root, self.seed = root, seed
        self.fluid = FluidRenderer(SAMPLE_RATE)

    def audio_path(self, clip: Clip) -> Path:
        return self.root / "audio" / clip.split / clip.source / f"{clip.id}.flac"

    def render(self, clip: Clip, index: dict[str, str]) -> np.ndarray:
        p = clip.params
        if clip.source in ("espeak", "flite", "festival"):
            return render_speech(clip, SAMPLE_RATE)
        if clip.source == "fluidsynth":
            midi = self.root / "midi" / f"{clip.id}.mid"
            write_midi(clip, midi)
            return self.fluid.render(midi, p["soundfont"])
        if clip.source == "mixture":
            return self._mix(clip, index)
        if clip.source == "scene":
            return self._scene(clip, index)
        if p.get("codec") == "g722":
            x = decode_g722(p["file"])
        elif p.get("raw"):
            x, sr = sf.read(p["file"], format="RAW", samplerate=RAW_RATE, channels=1, subtype="PCM_16", dtype="float32")
            x = resample(x, sr, SAMPLE_RATE)
        else:
            x = load_audio(p["file"], SAMPLE_RATE)
        return x[: int(p["max_seconds"] * SAMPLE_RATE)]

    def _scene(self, clip: Clip, index: dict[str, str]) -> np.ndarray:
        p = clip.params
        missing = [i for i in p["parts"] if i not in index]
        if missing:
            raise RuntimeError(f"scene parts {missing} were not built")
        n = int(p["seconds"] * SAMPLE_RATE)
        out = np.zeros(n, dtype=np.float32)
        for part, offset, gain_db in zip(p["parts"], p["offsets"], p["gains_db"], strict=True):
            x = load_audio(self.root / index[part], SAMPLE_RATE)
            start = int(offset * n)
            piece = x[: n - start] * 10 ** (gain_db / 20)
            out[start : start + len(piece)] += piece
        return out

    def _mix(self, clip: Clip, index: dict[str, str]) -> np.ndarray:
        p = clip.params
        if p["clean"] not in index:
            raise RuntimeError(f"clean clip {p['clean']} was not built")
        clean = load_audio(self.root / index[p["clean"]], SAMPLE_RATE)
        rng = np.random.default_rng(clip.seed(self.seed))
        parts = []
        if p["noise_type"] not in COLORED:
            parts = [load_audio(self.root / index[i], SAMPLE_RATE) for i in p["noise"] if i in index]
            if not parts:
                raise RuntimeError(f"noise clips {p['noise']} were not built")
        return mix_at_snr(clean, p["noise_type"], parts, p["snr"], rng)


_RENDERER: Renderer | None = None  # per worker process, set by _init_worker


def _init_worker(root: str, seed: int) -> None:
    global _RENDERER
    _RENDERER = Renderer(Path(root), seed)


def _render_one(args: tuple[Clip, dict[str, str]]) -> tuple[str, float, dict[str, Any], str]:
    """-> (clip id, duration, label updates, error). Writes the FLAC atomically."""
    clip, index = args
    assert _RENDERER is not None
    path = _RENDERER.audio_path(clip)
    sidecar = path.with_suffix(".json")  # label updates made while rendering (a gain), kept for resumed builds
    if path.is_file():
        info = sf.info(str(path))
        kept: dict[str, Any] = json.loads(sidecar.read_text()) if sidecar.is_file() else {}
        return clip.id, info.frames / info.samplerate, kept, ""
    try:
        x = _RENDERER.render(clip, index)
    except Exception as err:  # a tool failing on one clip must not stop the build
        return clip.id, 0.0, {}, f"render failed: {type(err).__name__}: {err}"
    if clip.domain == "sound" and 0 < len(x) < MIN_SECONDS * SAMPLE_RATE:
        x = np.pad(x, (0, int(MIN_SECONDS * SAMPLE_RATE) - len(x)))  # a drum hit is short by nature
    if len(x) < MIN_SECONDS * SAMPLE_RATE:
        return clip.id, 0.0, {}, f"too short ({len(x) / SAMPLE_RATE:.2f} s)"
    if not np.isfinite(x).all():
        return clip.id, 0.0, {}, "non-finite samples"
    if float(np.sqrt(np.mean(x**2))) < SILENCE_RMS:
        return clip.id, 0.0, {}, "silent"
    updates = {}
    gain = headroom_gain(x)
    if gain != 1.0:  # scale down rather than clip; a mixture's clean target must be scaled alike
        x = x * gain
        updates["gain"] = round(gain, 6)
    path.parent.mkdir(parents=True, exist_ok=True)
    if updates:
        sidecar.write_text(json.dumps(updates))
    elif sidecar.is_file():
        sidecar.unlink()
    with atomic_write(path) as tmp:
        sf.write(str(tmp), x, SAMPLE_RATE, format="FLAC", subtype="PCM_16")
    return clip.id, len(x) / SAMPLE_RATE, updates, ""


def build(out: str | os.PathLike[str], preset: str = "default", hours: float | None = None, seed: int = 0,
          workers: int = 2, log: bool = True) -> dict[str, Any]:
    root = Path(out)
    cfg = PRESETS[preset]
    hours = cfg.hours if hours is None else hours
    t0 = time.perf_counter()
    clips = plan(hours, seed, cfg.max_recordings_per_source)
    root.mkdir(parents=True, exist_ok=True)
    renderer = Renderer(root, seed)
    derived = ("mixture", "scene")  # made from other clips: rendered once those exist
    stages = [[c for c in clips if c.source not in derived], [c for c in clips if c.source in derived]]
    built: dict[str, Clip] = {}
    rejected: list[dict[str, str]] = []
    ctx = mp.get_context("spawn")  # fork after torch has run threads can deadlock the workers
    with ctx.Pool(workers, initializer=_init_worker, initargs=(str(root), seed)) as pool:
        for stage in stages:
            index = {cid: str(renderer.audio_path(c).relative_to(root)) for cid, c in built.items()}
            jobs = [(c, index) for c in stage]
            by_id = {c.id: c for c in stage}
            done = 0
            for cid, duration, updates, error in pool.imap(_render_one, jobs, chunksize=4):
                clip = by_id[cid]
                done += 1
                if error:
                    rejected.append({"id": cid, "source": clip.source, "reason": error})
                    continue
                clip.duration = round(duration, 4)
                clip.path = str(renderer.audio_path(clip).relative_to(root))
                clip.labels.update(updates)
                built[cid] = clip
                if log and done % 200 == 0:
                    print(f"data: {done}/{len(stage)} clips of this stage rendered", flush=True)
    for split in SPLITS:
        write_manifest(root / f"{split}.jsonl", [c for c in built.values() if c.split == split])
    with (root / "rejected.jsonl").open("w") as f:
        for row in sorted(rejected, key=lambda r: r["id"]):
            f.write(json.dumps(row) + "\n")
    summary = summarize(list(built.values()), rejected)
    summary["provenance"] = PROVENANCE
    summary.update(preset=preset, hours_requested=hours, seed=seed, workers=workers,
                   build_seconds=round(time.perf_counter() - t0, 1))
    (root / "build.json").write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n")
    return summary


def summarize(clips: list[Clip], rejected: list[dict[str, str]]) -> dict[str, Any]:
    hours: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    counts: dict[str, Counter[str]] = defaultdict(Counter)
    classes: dict[str, set[str]] = defaultdict(set)
    for c in clips:
        hours[c.source][c.split] += c.duration / 3600
        counts[c.source][c.split] += 1
        for key in ("language", "voice", "gender", "instrument", "family", "pitch", "drum_class", "category",
                    "kit", "noise_type", "kind", "pattern"):
            if key in c.labels:
                classes[key].add(str(c.labels[key]))
    return {
        "hours": {s: {k: round(v, 4) for k, v in d.items()} for s, d in hours.items()},
        "clips": {s: dict(d) for s, d in counts.items()},
        "total_hours": round(sum(c.duration for c in clips) / 3600, 4),
        "total_clips": len(clips),
        "classes_per_label": {k: len(v) for k, v in sorted(classes.items())},
        "rejected": len(rejected),
        "rejected_by_reason": dict(Counter(r["reason"].split(":")[0] for r in rejected)),
    }
