"""Synthetic speech: espeak-ng (14 languages, many voices, rate and pitch), flite and festival voices.

Splits hold out whole voices (``voice_seen=False`` in valid/test) and always hold out sentences: each sentence
belongs to exactly one split.
"""

from __future__ import annotations

import random
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from dashtok.audio_io import load_audio
from dashtok.data.manifest import Clip, split_by_key
from dashtok.data.text import LANGUAGES, Language, sentences

ESPEAK_FEMALE = ("f1", "f2", "f3", "f4", "f5", "Annie", "Alicia", "Andrea", "anika", "aunty", "belinda", "linda",
                 "steph", "steph2", "steph3", "grandma")
ESPEAK_MALE = ("m1", "m2", "m3", "m4", "m5", "m6", "m7", "m8", "adam", "Alex", "Andy", "antonio", "benjamin",
               "boris", "caleb", "david", "ed", "edward", "Gene", "gustave", "iven", "john", "Lee", "max", "Michael",
               "Mike", "pablo", "pedro", "quincy", "rob", "robert", "sandro", "shelby", "travis", "victor", "zac")
ESPEAK_HELD_OUT = {"test": ("f3", "steph2", "m4", "david", "Lee"), "valid": ("f5", "linda", "m6", "boris")}

# name -> (gender, language code, held-out split or None)
FLITE_VOICES = {"kal16": ("male", "en-us", None), "awb": ("male", "en-us", None), "slt": ("female", "en-us", None),
                "rms": ("male", "en-us", "test")}
FESTIVAL_VOICES = {"kal_diphone": ("male", "en-us", None), "cmu_us_slt_arctic_hts": ("female", "en-us", None),
                   "lp_diphone": ("female", "it", None), "ked_diphone": ("male", "en-us", "test"),
                   "pc_diphone": ("male", "it", "valid")}


def _lang(code: str) -> Language:
    return next(lang for lang in LANGUAGES if lang.code == code)


def _rate_word(rate: float) -> str:
    return "slowly" if rate < 0.85 else "quickly" if rate > 1.15 else "at a normal pace"


def _pitch_word(pitch: int) -> str:
    return "low" if pitch < 40 else "high" if pitch > 60 else "medium"


class SentencePool:
    """Sentences per (language, split); a sentence's split is fixed by its text, so pools never overlap."""

    def __init__(self, seed: int, per_language: int) -> None:
        self.seed, self.n = seed, per_language
        self.pools: dict[str, dict[str, list[str]]] = {}

    def draw(self, lang: Language, split: str, rng: random.Random) -> str:
        if lang.code not in self.pools:
            pools: dict[str, list[str]] = {"train": [], "valid": [], "test": []}
            for s in sentences(lang, self.n, self.seed):
                pools[split_by_key(f"text/{s}", valid=0.15, test=0.15)].append(s)
            self.pools[lang.code] = pools
        return rng.choice(self.pools[lang.code][split])


def _split_for_voice(held_out: str | None, rng: random.Random) -> tuple[str, bool]:
    if held_out is not None:
        return held_out, False
    r = rng.random()
    return ("test" if r < 0.1 else "valid" if r < 0.2 else "train"), True


def plan_espeak(n: int, seed: int, pool: SentencePool) -> list[Clip]:
    rng = random.Random(f"espeak/{seed}")
    held = {v: s for s, vs in ESPEAK_HELD_OUT.items() for v in vs}
    voices = [(v, "female") for v in ESPEAK_FEMALE] + [(v, "male") for v in ESPEAK_MALE]
    clips = []
    for i in range(n):
        variant, gender = rng.choice(voices)
        lang = rng.choice(LANGUAGES)
        split, seen = _split_for_voice(held.get(variant), rng)
        rate = rng.uniform(0.7, 1.35)
        pitch = rng.randint(20, 80)
        text = pool.draw(lang, split, rng)
        clips.append(Clip(
            id=f"espeak-{i:06d}", source="espeak", split=split, domain="speech",
            caption=f"a {'woman' if gender == 'female' else 'man'} speaks {lang.name} {_rate_word(rate)} "
                    f"in a {_pitch_word(pitch)}-pitched voice",
            labels={"language": lang.name, "voice": f"espeak:{variant}", "gender": gender, "voice_seen": seen,
                    "rate": round(rate, 3), "pitch_level": _pitch_word(pitch), "text": text},
            params={"voice": f"{lang.code}+{variant}", "wpm": int(round(165 * rate)), "pitch": pitch, "text": text}))
    return clips


def plan_tts(n: int, seed: int, pool: SentencePool, engine: str) -> list[Clip]:
    voices = FLITE_VOICES if engine == "flite" else FESTIVAL_VOICES
    rng = random.Random(f"{engine}/{seed}")
    clips = []
    for i in range(n):
        voice = rng.choice(sorted(voices))
        gender, code, held = voices[voice]
        lang = _lang(code)
        split, seen = _split_for_voice(held, rng)
        rate = rng.uniform(0.75, 1.3)
        text = pool.draw(lang, split, rng)
        clips.append(Clip(
            id=f"{engine}-{i:06d}", source=engine, split=split, domain="speech",
            caption=f"a {'woman' if gender == 'female' else 'man'} speaks {lang.name} {_rate_word(rate)}",
            labels={"language": lang.name, "voice": f"{engine}:{voice}", "gender": gender, "voice_seen": seen,
                    "rate": round(rate, 3), "text": text},
            params={"voice": voice, "stretch": round(1 / rate, 3), "text": text}))
    return clips


def require(tool: str, package: str) -> str:
    path = shutil.which(tool)
    if path is None:
        raise FileNotFoundError(f"'{tool}' not found: install the Debian package {package} "
                                f"(bash scripts/install_audio_tools.sh)")
    return path


def _run(cmd: list[str], out: Path, sample_rate: int) -> np.ndarray:
    proc = subprocess.run(cmd, capture_output=True, text=True, errors="replace", timeout=120)
    if proc.returncode != 0 or not out.is_file():
        raise RuntimeError(f"{cmd[0]} failed ({proc.returncode}): {proc.stderr.strip()[:200]}")
    return load_audio(out, sample_rate)


def render_speech(clip: Clip, sample_rate: int) -> np.ndarray:
    p = clip.params
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "x.wav"
        if clip.source == "espeak":
            cmd = [require("espeak-ng", "espeak-ng"), "-v", p["voice"], "-s", str(p["wpm"]), "-p", str(p["pitch"]),
                   "-w", str(out), "--", p["text"]]
        elif clip.source == "flite":
            cmd = [require("flite", "flite"), "-voice", p["voice"], "--setf", f"duration_stretch={p['stretch']}",
                   "-t", p["text"], "-o", str(out)]
        elif clip.source == "festival":
            text = Path(tmp) / "x.txt"
            # Festival reads ISO-8859-1: Italian accents must reach it in that encoding.
            text.write_text(p["text"] + "\n", encoding="latin-1", errors="replace")
            cmd = [require("text2wave", "festival"), "-o", str(out), "-eval", f"(voice_{p['voice']})",
                   "-eval", f"(Parameter.set 'Duration_Stretch {p['stretch']})", str(text)]
        else:
            raise ValueError(f"not a speech source: {clip.source}")
        return _run(cmd, out, sample_rate)
