"""Real recordings shipped by Debian packages: drum kits, sample packs, UI sound themes, and real human speech.

Labels come from the packages' own structure: Hydrogen's drumkit.xml instrument names and velocity layers, the
sample packs' file-name prefixes and folders. Real human speech (pocketsphinx-testdata, the spoken channel names of
alsa-utils and the freedesktop theme) is put in the test split only: it is never trained on.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path

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
