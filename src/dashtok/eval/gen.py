"""``dashtok eval gen``: text-to-audio measured against held-out real clips, for one or more systems.

A system is a generator checkpoint and the codec (tokenizer or VAE) whose latents it models. For every selected
test clip with a caption, each system generates a clip from that caption (its duration, at most ``max_seconds``;
seeded by the clip's position). Every clip, real or generated, is then described by two *judges* that do not
depend on the systems under test:

- ``logmel``: mean and standard deviation over time of the 64-bin dB mel (128-d), codec-neutral;
- ``semantic``: the mean-pooled frozen encoder features of the bundled default tokenizer (192-d).

Measures per system and judge: the Frechet distance between the generated and the real test clips (Gaussian fits
of the embeddings; with the distance between two disjoint real sets of the same size as a floor; each later system's
distance minus the first's, with a paired bootstrap interval over the captions), and per-caption
label accuracy: linear probes trained on real training clips (the evaluation's probes, on the log-mel judge)
predict each generated clip's labels, which are compared with the labels of the caption's source clip ("does a
trumpet caption produce a trumpet?"); the probes' accuracy on the real test clips is the ceiling. For music
captions, ``eval/music.py`` also measures what the caption names in the audio: the note's pitch, the chord, the key
and the tempo, with the same measures on the real clips as their ceiling. ``domain`` restricts the test captions to
one domain (``music``: the text-to-music evaluation).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from dashtok.audio_io import load_audio
from dashtok.codec import Codec
from dashtok.data.manifest import Clip, read_manifest, spread
from dashtok.eval import music
from dashtok.eval.probe import TASKS, accuracy, fit_linear, pooled_features
from dashtok.generate.model import TextToAudio
from dashtok.generate.text import TextEncoder
from dashtok.tokenizer import Tokenizer

JUDGES = ("logmel", "semantic")
BOOTSTRAP_DRAWS = 1000  # resamples of the test captions for the intervals of Frechet-distance differences
LABEL_TASKS = ("speech/music/sound", "gender", "language", "instrument family", "instrument", "drum class",
               "sample category")


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Frechet distance between Gaussians fitted to the rows of ``a`` and ``b``; NaN when either has under 2 rows."""
    if len(a) < 2 or len(b) < 2:
        return float("nan")
    mu_a, mu_b = a.mean(0), b.mean(0)
    cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    # tr sqrt(cov_a cov_b) = sum of sqrt of the eigenvalues of sqrt(cov_a) cov_b sqrt(cov_a), all >= 0
    w, v = np.linalg.eigh(cov_a)
    root_a = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
    cross = np.linalg.eigvalsh(root_a @ cov_b @ root_a)
    return float(np.sum((mu_a - mu_b) ** 2) + np.trace(cov_a) + np.trace(cov_b)
                 - 2 * np.sum(np.sqrt(np.clip(cross, 0, None))))


def frechet_differences(systems: dict[str, np.ndarray], real: np.ndarray, draws: int = BOOTSTRAP_DRAWS,
                        seed: int = 0) -> dict[str, dict[str, Any]]:
    """Each system's Frechet distance minus the first system's, with a 95% paired bootstrap interval.

    Row i of every array belongs to test caption i (the real clip, and what each system generated from its caption),
    so a draw resamples captions and keeps the rows of one caption together: the interval is of the difference on
    the same captions, not of two independent distances. A difference whose interval excludes 0 is more than the
    choice of captions. It is a percentile interval: a resample repeats captions, which shrinks the covariances and
    biases each distance, so the interval need not be centred on the difference itself. NaN when there are under 2
    captions; {} for one system."""
    names = list(systems)
    if len(names) < 2:
        return {}
    first = names[0]
    rng = np.random.default_rng(seed)
    picks = [rng.integers(0, len(real), len(real)) for _ in range(draws)] if len(real) >= 2 else []
    base = [frechet_distance(systems[first][i], real[i]) for i in picks]
    base_whole = frechet_distance(systems[first], real)
    out = {}
    for name in names[1:]:
        delta = frechet_distance(systems[name], real) - base_whole
        diffs = np.array([frechet_distance(systems[name][i], real[i]) - b for i, b in zip(picks, base, strict=True)])
        lo, hi = np.percentile(diffs, [2.5, 97.5]) if len(diffs) else (float("nan"), float("nan"))
        out[name] = {"delta": round(float(delta), 3), "interval": [round(float(lo), 3), round(float(hi), 3)],
                     "draws": len(diffs)}
    return out


def judge_features(judge: Tokenizer, audio: np.ndarray) -> dict[str, np.ndarray]:
    """The judges' representations of one clip (``probe.pooled_features``)."""
    pooled = pooled_features(judge, audio)
    return {j: pooled[j] for j in JUDGES}


def _stack(rows: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    return {j: np.stack([r[j] for r in rows]) for j in JUDGES}


class LabelProbes:
    """Per task, a linear probe on the log-mel judge, trained on real training clips (L2 chosen on valid)."""

    def __init__(self, feats: dict[str, np.ndarray], clips: dict[str, list[Clip]]) -> None:
        self.tasks: dict[str, tuple[torch.nn.Linear, np.ndarray, np.ndarray, dict[str, int]]] = {}
        tasks = {t.name: t for t in TASKS}
        for name in LABEL_TASKS:
            task = tasks[name]
            idx = {s: [i for i, c in enumerate(clips[s]) if task.label(c) is not None] for s in ("train", "valid")}
            classes = sorted({str(task.label(clips["train"][i])) for i in idx["train"]})
            if len(classes) < 2:
                continue
            index = {c: i for i, c in enumerate(classes)}
            idx["valid"] = [i for i in idx["valid"] if str(task.label(clips["valid"][i])) in index]
            x = {s: feats[s][idx[s]] for s in idx}
            y = {s: np.array([index[str(task.label(clips[s][i]))] for i in idx[s]]) for s in idx}
            mu, sd = x["train"].mean(0), x["train"].std(0) + 1e-6
            probes = [fit_linear((x["train"] - mu) / sd, y["train"], len(classes), wd) for wd in (1e-4, 1e-3, 1e-2)]
            best = max(probes, key=lambda p: accuracy(p, (x["valid"] - mu) / sd, y["valid"])) if len(y["valid"]) \
                else probes[1]
            self.tasks[name] = (best, mu, sd, index)

    def score(self, feats: np.ndarray, clips: list[Clip]) -> dict[str, dict[str, float]]:
        """Accuracy per task on clips (real or generated from their captions) that carry a known label."""
        tasks = {t.name: t for t in TASKS}
        out = {}
        for name, (probe, mu, sd, index) in self.tasks.items():
            rows = [i for i, c in enumerate(clips) if str(tasks[name].label(c)) in index]
            if not rows:
                continue
            y = np.array([index[str(tasks[name].label(clips[i]))] for i in rows])
            out[name] = {"accuracy": round(accuracy(probe, (feats[rows] - mu) / sd, y), 4), "n": len(rows),
                         "chance": round(float(np.bincount(y).max() / len(y)), 4)}
        return out


def caption_clips(corpus: str | Path, max_clips: int, domain: str | None = None) -> list[Clip]:
    """The test clips whose captions are generated: captioned, not the real-speech set, of ``domain`` if given,
    at most ``max_clips`` spread over the split. Raises ValueError when none is left."""
    path = Path(corpus) / "test.jsonl"
    test = [c for c in read_manifest(path) if c.caption and c.source != "real-speech" and domain in (None, c.domain)]
    if not test:
        raise ValueError(f"{path}: no captioned test clips" + (f" of domain {domain!r}" if domain else ""))
    return spread(test, max_clips)


def evaluate_gen(systems: dict[str, tuple[TextToAudio, Codec]], corpus: str | Path,
                 judge: Tokenizer, max_clips: int = 160, max_train: int = 1500, max_seconds: float = 6.0,
                 steps: int = 32, guidance: float = 3.0, out_dir: Path | None = None,
                 domain: str | None = None, draws: int = BOOTSTRAP_DRAWS) -> dict[str, Any]:
    root = Path(corpus)
    t0 = time.perf_counter()
    split = {s: [c for c in read_manifest(root / f"{s}.jsonl") if c.caption] for s in ("train", "valid")}
    test = caption_clips(root, max_clips, domain)
    train = spread(split["train"], max_train)
    valid = spread(split["valid"], max_train // 4)

    def real(clips: list[Clip]) -> dict[str, np.ndarray]:
        return _stack([judge_features(judge, load_audio(root / c.path, judge.sample_rate)) for c in clips])

    test_audio = [load_audio(root / c.path, judge.sample_rate) for c in test]

    def heard(clip: Clip, audio: np.ndarray) -> dict[str, float]:  # a music caption's named attributes, measured
        return music.attributes(audio[: int(max_seconds * judge.sample_rate)], judge.sample_rate, clip.labels)

    feats = {"train": real(train), "valid": real(valid),
             "test": _stack([judge_features(judge, audio) for audio in test_audio])}
    probes = LabelProbes({s: feats[s]["logmel"] for s in ("train", "valid")}, {"train": train, "valid": valid})
    floor_set = real(spread([c for c in split["train"] if c.id not in {t.id for t in test}
                              and domain in (None, c.domain)], len(test)))  # real clips of the test captions' domain(s)
    report: dict[str, Any] = {
        "judges": {"logmel": "64-bin dB mel, mean and std over time (128-d)",
                   "semantic": f"mean-pooled frozen encoder features of {judge.model_id}"},
        "n_test": len(test), "domain": domain or "all",
        "settings": {"steps": steps, "guidance": guidance, "max_seconds": max_seconds},
        "real_test": {"labels": probes.score(feats["test"]["logmel"], test),
                      "music": music.summarise([heard(c, a) for c, a in zip(test, test_audio, strict=True)]),
                      "fd_train_vs_test": {j: round(frechet_distance(floor_set[j], feats["test"][j]), 3)
                                           for j in JUDGES}},
        "systems": {}}
    text = TextEncoder()
    page: list[dict[str, Any]] = []  # the listening page's rows: caption, the real clip, each system's clip
    if out_dir is not None:
        for i, clip in enumerate(test[:LISTEN_CLIPS]):
            real_audio = test_audio[i][: int(max_seconds * judge.sample_rate)]
            page.append({"caption": clip.caption, "audio": {"real": _listening_clip(out_dir, "real", i, clip,
                                                                                      real_audio, judge.sample_rate)}})
    generated: dict[str, dict[str, np.ndarray]] = {}
    for name, (gen, codec) in systems.items():
        t1 = time.perf_counter()
        rows, attributes = [], []
        for i, clip in enumerate(test):
            tokens, mask = text([clip.caption])
            seconds = min(max_seconds, max(0.2, clip.duration))
            audio = gen.generate(codec, tokens, mask, seconds, steps, guidance, seed=i)[0].cpu().numpy()
            if out_dir is not None and i < LISTEN_CLIPS:
                page[i]["audio"][name] = _listening_clip(out_dir, name, i, clip, audio, codec.sample_rate)
            rows.append(judge_features(judge, audio))
            attributes.append(heard(clip, audio))
        g = _stack(rows)
        generated[name] = g
        report["systems"][name] = {
            "generator": gen.training_record, "codec": codec.model_id,
            "fd": {j: round(frechet_distance(g[j], feats["test"][j]), 3) for j in JUDGES},
            "labels": probes.score(g["logmel"], test), "music": music.summarise(attributes),
            "seconds": round(time.perf_counter() - t1, 1)}
    for j in JUDGES:
        for name, diff in frechet_differences({n: g[j] for n, g in generated.items()}, feats["test"][j],
                                              draws).items():
            report["systems"][name].setdefault("fd_minus_first", {})[j] = diff
    report["seconds"] = round(time.perf_counter() - t0, 1)
    if out_dir is not None:
        listening_page(out_dir / "listen.html", page, ["real", *systems])
    return report


LISTEN_CLIPS = 12  # captions on the listening page (and clips kept per system)


def _listening_clip(out_dir: Path, system: str, i: int, clip: Clip, audio: np.ndarray, sample_rate: int) -> str:
    """Write one clip of the listening page (WAV + spectrogram PNG beside it); its path relative to ``out_dir``."""
    from dashtok.audio_io import write_audio
    from dashtok.plots import spectrogram

    wav = Path(system) / f"{i:03d}_{clip.id.replace(':', '_')}.wav"
    write_audio(out_dir / wav, audio, sample_rate)
    spectrogram((out_dir / wav).with_suffix(".png"), audio, sample_rate)
    return wav.as_posix()


def listening_page(path: Path, rows: list[dict[str, Any]], columns: list[str]) -> None:
    """A self-contained HTML page: one row per caption, one column per system (the real clip first), each cell a
    player and the clip's spectrogram. Paths are relative, so the folder can be moved or served as it is."""
    from html import escape

    from dashtok.atomic import atomic_write

    head = "".join(f"<th>{escape(c)}</th>" for c in columns)
    body = []
    for row in rows:
        cells = []
        for c in columns:
            wav = row["audio"].get(c)
            cells.append("<td></td>" if wav is None else
                         f'<td><img src="{escape(Path(wav).with_suffix(".png").as_posix())}" alt="spectrogram">'
                         f'<br><audio controls preload="none" src="{escape(wav)}"></audio></td>')
        body.append(f"<tr><td class=caption>{escape(row['caption'])}</td>{''.join(cells)}</tr>")
    html = ("<!doctype html><html><head><meta charset=utf-8><title>dashtok eval gen: listen</title><style>"
            "body{font-family:sans-serif;margin:1em}table{border-collapse:collapse}td,th{border:1px solid #ccc;"
            "padding:4px;vertical-align:top}td.caption{max-width:16em}img{width:256px;height:128px;display:block}"
            "audio{width:256px}</style></head><body><h1>Generated clips beside the real ones</h1>"
            "<p>Each row: a held-out test caption, the real clip it describes, and what each system generated "
            "from it (log-mel spectrograms above the players).</p>"
            f"<table><tr><th>caption</th>{head}</tr>{''.join(body)}</table></body></html>\n")
    with atomic_write(path) as tmp:
        tmp.write_text(html)


def markdown(report: dict[str, Any]) -> str:
    systems = report["systems"]
    domain = report.get("domain", "all")
    lines = ["# Text-to-audio evaluation" + ("" if domain == "all" else f" ({domain} captions)"), "",
             f"{report['n_test']} test captions; {report['settings']['steps']} Euler steps, guidance "
             f"{report['settings']['guidance']}. Judges: " + "; ".join(f"`{k}` = {v}" for k, v in
                                                                         report["judges"].items()) + ".", "",
             "## Frechet distance to the real test clips (lower is better)", "",
             "| system | " + " | ".join(JUDGES) + " |", "|---|" + "---|" * len(JUDGES)]
    for name, s in systems.items():
        lines.append(f"| {name} | " + " | ".join(f"{s['fd'][j]:.2f}" for j in JUDGES) + " |")
    floor = report["real_test"]["fd_train_vs_test"]
    lines.append("| real training clips (floor) | " + " | ".join(f"{floor[j]:.2f}" for j in JUDGES) + " |")
    others = [n for n in systems if "fd_minus_first" in systems[n]]
    if others:
        first = next(iter(systems))
        lines += ["", f"Each system's distance minus {first}'s on the same captions (negative: closer to the real "
                  f"clips than {first}), with a 95% paired bootstrap interval over the captions:", "",
                  "| system | " + " | ".join(JUDGES) + " |", "|---|" + "---|" * len(JUDGES)]
        for name in others:
            d = systems[name]["fd_minus_first"]
            lines.append(f"| {name} - {first} | " + " | ".join(
                f"{d[j]['delta']:+.2f} [{d[j]['interval'][0]:+.2f}, {d[j]['interval'][1]:+.2f}]" for j in JUDGES)
                + " |")
    tasks = list(report["real_test"]["labels"])
    lines += ["", "## Label accuracy of generated clips (log-mel probes trained on real clips)", "",
              "| task | n | chance | " + " | ".join(systems) + " | real test clips |",
              "|---|---|---|" + "---|" * (len(systems) + 1)]
    for t in tasks:
        r = report["real_test"]["labels"][t]
        cells = [f"{systems[n]['labels'].get(t, {}).get('accuracy', float('nan')):.3f}" for n in systems]
        lines.append(f"| {t} | {r['n']} | {r['chance']:.3f} | " + " | ".join(cells) + f" | {r['accuracy']:.3f} |")
    measures = list(report["real_test"].get("music", {}))
    if measures:
        lines += ["", "## Music: what the caption names, measured in the audio (eval/music.py)", "",
                  "Accuracy (in key: the mean share of note energy inside the named key; cents: the median pitch "
                  "error of single notes); the real test clips' row is each measure's ceiling.", "",
                  "| measure | n | chance | " + " | ".join(systems) + " | real test clips |",
                  "|---|---|---|" + "---|" * (len(systems) + 1)]
        for m in measures:
            r = report["real_test"]["music"][m]
            field = "median" if m == "cents" else "mean"
            cells = [f"{systems[n].get('music', {}).get(m, {}).get(field, float('nan')):.3f}" for n in systems]
            chance = f"{r['chance']:.3f}" if "chance" in r else "-"
            lines.append(f"| {m} | {r['n']} | {chance} | " + " | ".join(cells) + f" | {r[field]:.3f} |")
    return "\n".join(lines) + "\n"


def write_report(report: dict[str, Any], out: Path) -> None:
    from dashtok.atomic import atomic_write

    with atomic_write(out / "gen.json") as tmp:
        tmp.write_text(json.dumps(report, indent=2))
    with atomic_write(out / "report.md") as tmp:
        tmp.write_text(markdown(report))
