"""Clip plans and JSONL manifests."""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from dashtok.atomic import atomic_write

T = TypeVar("T")

SPLITS = ("train", "valid", "test")


@dataclass
class Clip:
    """One planned (and, once rendered, built) clip. ``params`` say how to render it; ``labels`` what it is."""

    id: str
    source: str  # espeak | flite | festival | fluidsynth | hydrogen | sonic-pi | lmms | sound-theme | ...
    split: str
    domain: str  # speech | music | sound | mixture
    caption: str
    labels: dict[str, Any] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)
    path: str = ""  # relative to the corpus root, once built
    duration: float = 0.0  # seconds, once built

    def seed(self, base: int) -> int:
        return int.from_bytes(hashlib.sha256(f"{base}/{self.id}".encode()).digest()[:4], "little")


def stable_fraction(key: str) -> float:
    """A number in [0, 1) fixed by ``key``: assigns splits independently of plan order."""
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "little") / 2**64


def split_by_key(key: str, valid: float = 0.1, test: float = 0.1) -> str:
    f = stable_fraction(key)
    return "test" if f < test else "valid" if f < test + valid else "train"


def write_manifest(path: Path, clips: list[Clip]) -> None:
    with atomic_write(path) as tmp, tmp.open("w") as f:
        for clip in sorted(clips, key=lambda c: c.id):
            row = asdict(clip)
            row.pop("params")
            f.write(json.dumps(row, sort_keys=True, ensure_ascii=False) + "\n")


def spread(items: list[T], n: int) -> list[T]:
    """At most ``n`` items, evenly spaced over the whole list (all of them when there are no more). Unlike taking
    every ``len // n``-th item and keeping the first ``n`` (which the reconstruction, probe and tokenizer-validation
    selections still do, for comparability with their records), nothing at the end of a long list is left out."""
    if n >= len(items):
        return list(items)
    return [items[i * len(items) // n] for i in range(n)]


def read_manifest(path: str | os.PathLike[str]) -> list[Clip]:
    """Clips of a manifest (``params`` are not stored there)."""
    p = Path(path)
    clips = []
    with p.open() as f:
        for lineno, line in enumerate(f, 1):
            try:
                clips.append(Clip(**json.loads(line)))
            except (json.JSONDecodeError, TypeError) as err:
                raise ValueError(f"{p}:{lineno}: not a manifest row ({err})") from None
    return clips


def mixture_pairs(manifests: tuple[str, ...]) -> list[tuple[Path, Path, float]]:
    """(noisy file, clean file, gain of the clean target) for every mixture whose clean clip is in the manifests."""
    clips: dict[str, tuple[Path, Clip]] = {}
    for m in manifests:
        for c in read_manifest(m):
            clips[c.id] = (Path(m).parent, c)
    pairs = []
    for root, c in clips.values():
        clean_id = c.labels.get("clean_id")
        if c.domain == "mixture" and clean_id in clips:
            croot, clean = clips[clean_id]
            pairs.append((root / c.path, croot / clean.path, float(c.labels.get("gain", 1.0))))
    return pairs
