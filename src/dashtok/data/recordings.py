"""Real recordings shipped by Debian packages: drum kits, sample packs, UI sound themes, and real human speech.

Labels come from the packages' own structure: Hydrogen's drumkit.xml instrument names and velocity layers, the
sample packs' file-name prefixes and folders. Real human speech (pocketsphinx-testdata, the spoken channel names of
alsa-utils and the freedesktop theme) is put in the test split only: it is never trained on. The Asterisk voice
prompts (studio recordings of two professional voices in three languages) are real human speech *for training*, split
by prompt.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dashtok.data.manifest import Clip, split_by_key

HYDROGEN = Path("/usr/share/hydrogen/data/drumkits")
HYDROGEN_HELD_OUT = {"test": ("HardElectro1", "Millo_MultiLayered3"), "valid": ("TR808EmulationKit",)}
SONIC_PI = Path("/usr/share/sonic-pi/samples")
LMMS = Path("/usr/share/lmms/samples")
THEMES = (Path("/usr/share/sounds/freedesktop/stereo"), Path("/usr/share/sounds"),
          Path("/usr/share/sounds/sound-icons"))
POCKETSPHINX = Path("/usr/share/pocketsphinx/test/data")
ALSA = Path("/usr/share/sounds/alsa")
AUDIO = (".wav", ".flac", ".ogg", ".oga")
ASTERISK = Path("/usr/share/asterisk/sounds")

G722_RATE = 16000  # G.722 is wideband speech: 16 kHz, whatever the model's rate
RAW_RATE = 16000  # pocketsphinx's .raw test recordings: headerless 16 kHz 16-bit mono


@dataclass(frozen=True)
class AsteriskVoice:
    """One Asterisk core-sounds package we train on (its folder under ASTERISK) and what its copyright file says."""

    folder: str
    package: str
    language: str
    speaker: str


# Only these three packages. The other Asterisk sound packages (it, ru, music-on-hold) are reserved for independent
# evaluation, as are fillets-ng, tuxpaint, fretsonfire, openttd-opensfx and python3-ltfatpy: never add them here.
ASTERISK_VOICES = (
    AsteriskVoice("en_US_f_Allison", "asterisk-core-sounds-en-g722", "English", "Allison Smith"),
    AsteriskVoice("es_MX_f_Allison", "asterisk-core-sounds-es-g722", "Spanish", "Allison Smith"),
    AsteriskVoice("fr_CA_f_June", "asterisk-core-sounds-fr-g722", "French", "June Wallack"),
)
ASTERISK_LICENSE = "CC-BY-SA-3.0"
# Prompts that are not speech: signalling tones and the silence/ folder.
ASTERISK_NOT_SPEECH = ("ascending-2tone", "descending-2tone", "beep", "beeperr")

SONIC_PI_CATEGORIES = {"ambi": "ambient", "bass": "bass", "bd": "kick", "drum": "drum", "elec": "electronic",
                       "glitch": "glitch", "guit": "guitar", "loop": "loop", "mehackit": "electronic",
                       "misc": "misc", "perc": "percussion", "sn": "snare", "tabla": "tabla", "vinyl": "vinyl"}
DRUM_CLASSES = (("kick", r"kick|bass ?drum|\bbd\b|\bkik"), ("snare", r"snare|\bsd\b|rim|stick"),
                ("hihat", r"hh|hi.?hat|hat"), ("tom", r"tom"), ("cymbal", r"crash|ride|cymbal|china|splash|bell"),
                ("clap", r"clap|snap"))


def drum_class(name: str) -> str:
    n = name.lower()
    for cls, pattern in DRUM_CLASSES:
        if re.search(pattern, n):
            return cls
    return "percussion"


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def plan_hydrogen(max_per_source: int | None) -> list[Clip]:
    clips: list[Clip] = []
    if not HYDROGEN.is_dir():
        return clips
    held = {kit: split for split, kits in HYDROGEN_HELD_OUT.items() for kit in kits}
    for kit_dir in sorted(HYDROGEN.iterdir()):
        xml = kit_dir / "drumkit.xml"
        if not xml.is_file():
            continue
        root = ET.parse(xml).getroot()
        for inst in root.iter():
            if _local(inst.tag) != "instrument":
                continue
            name = next((c.text or "" for c in inst if _local(c.tag) == "name"), "")
            for layer in inst.iter():
                if _local(layer.tag) != "layer":
                    continue
                fields = {_local(c.tag): (c.text or "") for c in layer}
                f = kit_dir / fields.get("filename", "")
                if not f.is_file():
                    continue
                cls = drum_class(name)
                velocity = round(float(fields.get("max", "1") or 1), 3)
                clips.append(Clip(
                    id=f"hydrogen-{kit_dir.name}-{f.stem}".replace(" ", "_"), source="hydrogen",
                    split=held.get(kit_dir.name, split_by_key(f"hydrogen/{kit_dir.name}/{f.name}")),
                    domain="sound", caption=f"a recording of a {cls} drum hit" if cls != "percussion"
                    else "a recording of a percussion hit",
                    labels={"drum_class": cls, "kit": kit_dir.name, "instrument_name": name, "velocity_layer": velocity,
                            "kit_seen": kit_dir.name not in held, "category": "drums"},
                    params={"file": str(f), "max_seconds": 4.0}))
    return _dedup(clips, max_per_source)


def plan_samples(max_per_source: int | None) -> list[Clip]:
    clips: list[Clip] = []
    if SONIC_PI.is_dir():
        for f in sorted(SONIC_PI.iterdir()):
            prefix = f.name.split("_", 1)[0]
            if f.suffix.lower() in AUDIO and prefix in SONIC_PI_CATEGORIES:
                cat = SONIC_PI_CATEGORIES[prefix]
                clips.append(Clip(id=f"sonicpi-{f.stem}", source="sonic-pi", split=split_by_key(f"sonicpi/{f.name}"),
                                  domain="sound", caption=f"a {cat} sample", labels={"category": cat},
                                  params={"file": str(f), "max_seconds": 8.0}))
    if LMMS.is_dir():
        for f in sorted(LMMS.rglob("*")):
            if f.suffix.lower() in AUDIO and f.is_file():
                cat = f.relative_to(LMMS).parts[0]
                rel = "-".join(f.relative_to(LMMS).with_suffix("").parts)
                clips.append(Clip(id=f"lmms-{rel}".replace(" ", "_"), source="lmms",
                                  split=split_by_key(f"lmms/{rel}"), domain="sound",
                                  caption=f"a {cat} sample", labels={"category": cat},
                                  params={"file": str(f), "max_seconds": 8.0}))
    for folder in THEMES:
        if not folder.is_dir():
            continue
        for f in sorted(folder.iterdir()):
            if f.suffix.lower() in AUDIO and f.is_file() and not f.name.startswith("audio-channel"):
                clips.append(Clip(id=f"theme-{f.stem}", source="sound-theme", split=split_by_key(f"theme/{f.name}"),
                                  domain="sound", caption="a user interface sound",
                                  labels={"category": "ui sound", "name": f.stem},
                                  params={"file": str(f), "max_seconds": 8.0}))
    return _dedup(clips, max_per_source)


# The corpus sources of real human speech (the rest of the speech is synthesised): training validation reports them
# apart.
REAL_SPEECH_SOURCES = ("asterisk", "real-speech")


def plan_real_speech(max_per_source: int | None) -> list[Clip]:
    """Real human speech, test split only."""
    clips: list[Clip] = []
    transcripts: dict[str, str] = {}
    tr = POCKETSPHINX / "librivox" / "transcription"
    if tr.is_file():
        for line in tr.read_text().splitlines():
            m = re.match(r"<s> (.*) </s> \((.*)\)", line.strip())
            if m:
                transcripts[m.group(2)] = m.group(1)
    files: list[tuple[Path, str, dict[str, object]]] = []
    for f in sorted((POCKETSPHINX / "librivox").glob("*.wav")) if POCKETSPHINX.is_dir() else []:
        files.append((f, "pocketsphinx", {"text": transcripts.get(f.stem, ""), "speaker": "librivox-austen-01"}))
    for f in sorted((POCKETSPHINX / "cards").glob("*.wav")) if POCKETSPHINX.is_dir() else []:
        files.append((f, "pocketsphinx", {"speaker": "cards"}))
    for name in ("goforward.raw", "numbers.raw", "something.raw"):
        if (POCKETSPHINX / name).is_file():
            files.append((POCKETSPHINX / name, "pocketsphinx", {"speaker": "cmu"}))
    for f in sorted(ALSA.glob("*_*.wav")) if ALSA.is_dir() else []:
        files.append((f, "alsa", {"text": f.stem.replace("_", " ").lower(), "speaker": "alsa"}))
    theme = THEMES[0]
    for f in sorted(theme.glob("audio-channel-*.oga")) if theme.is_dir() else []:
        files.append((f, "freedesktop", {"text": f.stem.removeprefix("audio-channel-").replace("-", " "),
                                         "speaker": "freedesktop"}))
    for f, origin, extra in files:
        clips.append(Clip(id=f"real-{origin}-{f.parent.name}-{f.stem}", source="real-speech", split="test",
                          domain="speech", caption="a person speaks English",
                          labels={"language": "English", "real": True, "origin": origin, **extra},
                          params={"file": str(f), "max_seconds": 20.0, "raw": f.suffix == ".raw"}))
    return _dedup(clips, max_per_source)


def plan_asterisk(max_per_source: int | None, root: Path = ASTERISK) -> list[Clip]:
    """Asterisk voice prompts (real human speech, 16 kHz G.722), split by prompt name across languages: a prompt
    (``conf-getpin``, ``digits/7``) lands in the same split in every language, so no test sentence is ever heard in
    training, in any language. 10 % valid, 10 % test, the rest train."""
    clips: list[Clip] = []
    for voice in ASTERISK_VOICES:
        folder = root / voice.folder
        if not folder.is_dir():
            continue
        for f in sorted(folder.rglob("*.g722")):
            prompt = f.relative_to(folder).with_suffix("").as_posix()  # "conf-getpin", "digits/7"
            if prompt.startswith("silence/") or f.stem in ASTERISK_NOT_SPEECH:
                continue
            clips.append(Clip(
                id=f"asterisk-{voice.folder}-{prompt.replace('/', '-')}", source="asterisk",
                split=split_by_key(f"asterisk/{prompt}"), domain="speech",
                caption=f"a woman speaks {voice.language}",
                labels={"language": voice.language, "speaker": voice.speaker, "gender": "female", "real": True,
                        "prompt": prompt, "package": voice.package, "license": ASTERISK_LICENSE},
                params={"file": str(f), "codec": "g722", "max_seconds": 30.0}))
    return _dedup(clips, max_per_source)


def decode_g722(path: str | Path) -> np.ndarray:
    """A raw G.722 file (Asterisk's ``.g722``: headerless, 64 kbit/s) -> 16 kHz mono float32, decoded by ffmpeg.

    libsndfile (soundfile) and sox have no G.722 decoder; ffmpeg's ``g722`` demuxer + ``adpcm_g722`` decoder do."""
    exe = shutil.which("ffmpeg")
    if exe is None:
        raise FileNotFoundError("ffmpeg not found: install the Debian package ffmpeg "
                                "(bash scripts/install_audio_tools.sh) to decode G.722")
    out = subprocess.run([exe, "-nostdin", "-v", "error", "-f", "g722", "-i", str(path), "-f", "s16le",
                          "-acodec", "pcm_s16le", "-ac", "1", "-ar", str(G722_RATE), "-"],
                         check=True, capture_output=True).stdout
    return np.frombuffer(out, dtype="<i2").astype(np.float32) / 32768


def _dedup(clips: list[Clip], max_per_source: int | None) -> list[Clip]:
    seen: set[str] = set()
    out = []
    for c in clips:
        if c.id not in seen:
            seen.add(c.id)
            out.append(c)
    if max_per_source is not None:
        by_source: dict[str, list[Clip]] = {}
        for c in out:
            by_source.setdefault(c.source, []).append(c)
        out = [c for group in by_source.values()
               for c in group[:: max(1, len(group) // max_per_source)][:max_per_source]]
    return out
