"""``dashtok eval probe``: linear probes and kNN on frozen, mean-pooled features, for every labelled corpus task.

Representations compared on the same splits: ``logmel`` (the 64-bin dB mel, mean and std over time: the baseline),
``semantic`` (the frozen encoder alone, which is also what a no-injection ablation decodes from) and ``latents``
(semantic + the one injection layer). Probes are trained on train, their weight decay chosen on valid, and scored on
test, over several seeds; kNN (k=5, cosine) is scored on test with train as the memory.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from dashtok.audio_io import load_audio
from dashtok.data.manifest import Clip, read_manifest
from dashtok.tokenizer import Tokenizer

REPRESENTATIONS = ("logmel", "semantic", "latents")
WEIGHT_DECAYS = (1e-5, 1e-4, 1e-3, 1e-2)


@dataclass(frozen=True)
class Task:
    name: str
    label: Callable[[Clip], str | None]  # None: the clip is not part of the task


def _speech(c: Clip) -> bool:
    return c.domain == "speech" and c.source != "real-speech"


TASKS = (
    Task("language", lambda c: c.labels.get("language") if _speech(c) else None),
    Task("speaker (seen voices)", lambda c: c.labels.get("voice") if _speech(c) and c.labels.get("voice_seen")
         else None),
    Task("gender", lambda c: c.labels.get("gender") if _speech(c) else None),
    Task("instrument", lambda c: c.labels.get("instrument") if c.source == "fluidsynth"
         and c.labels.get("kind") != "drums" else None),
    Task("instrument family", lambda c: c.labels.get("family") if c.source == "fluidsynth" else None),
    Task("pitch class", lambda c: str(int(c.labels["pitch"]) % 12) if "pitch" in c.labels else None),
    Task("drum class", lambda c: c.labels.get("drum_class")),
    Task("sample category", lambda c: c.labels.get("category") if c.source in ("sonic-pi", "lmms") else None),
    Task("speech/music/sound", lambda c: c.domain if c.domain in ("speech", "music", "sound")
         and c.source != "real-speech" else None),
    Task("noisy vs clean speech", lambda c: ("noisy" if c.domain == "mixture" else "clean" if _speech(c) else None)
         if not c.labels.get("real") else None),
)


def pooled_features(model: Tokenizer, audio: np.ndarray) -> dict[str, np.ndarray]:
    """One clip (T,) at the model's rate -> its pooled representations: ``semantic`` and ``latents`` (mean over
    frames, (D,)) and ``logmel`` (the encoder's dB mel, mean and standard deviation over frames, (2 * n_mels,)).
    A clip under one frame is zero-padded to one."""
    x = np.ascontiguousarray(audio, dtype=np.float32)
    if len(x) < model.config.min_num_samples:
        x = np.pad(x, (0, model.config.min_num_samples - len(x)))
    enc = model.encode(x, return_semantic=True)
    n = int(enc.lengths[0])
    assert enc.semantic is not None
    with torch.inference_mode():
        mel = model.encoder.log_mel(torch.from_numpy(x)[None])[0]
    return {"semantic": enc.semantic[0, :n].mean(0).cpu().numpy(), "latents": enc.latents[0, :n].mean(0).cpu().numpy(),
            "logmel": torch.cat([mel.mean(1), mel.std(1)]).numpy()}


def extract(model: Tokenizer, clips: list[Clip], root: Path) -> dict[str, np.ndarray]:
    """Mean-pooled features of each clip: {representation: (n_clips, dim)}."""
    rows = [pooled_features(model, load_audio(root / clip.path, model.sample_rate)) for clip in clips]
    return {r: np.stack([row[r] for row in rows]) for r in REPRESENTATIONS}


def fit_linear(x: np.ndarray, y: np.ndarray, n_classes: int, weight_decay: float) -> torch.nn.Linear:
    """Multinomial logistic regression with an L2 penalty, fitted by L-BFGS on standardised features."""
    xt, yt = torch.from_numpy(x).float(), torch.from_numpy(y).long()
    probe = torch.nn.Linear(x.shape[1], n_classes)
    torch.nn.init.zeros_(probe.weight)
    torch.nn.init.zeros_(probe.bias)
    opt = torch.optim.LBFGS(probe.parameters(), lr=1.0, max_iter=100, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(probe(xt), yt) + weight_decay * probe.weight.square().sum()
        loss.backward()
        return loss

    opt.step(closure)
    return probe


def accuracy(probe: torch.nn.Linear, x: np.ndarray, y: np.ndarray) -> float:
    with torch.no_grad():
        return float((probe(torch.from_numpy(x).float()).argmax(1).numpy() == y).mean())


def knn_accuracy(train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray, test_y: np.ndarray, k: int = 5) -> float:
    a = train_x / (np.linalg.norm(train_x, axis=1, keepdims=True) + 1e-8)
    b = test_x / (np.linalg.norm(test_x, axis=1, keepdims=True) + 1e-8)
    nearest = np.argsort(-(b @ a.T), axis=1)[:, :k]
    votes = train_y[nearest]
    pred = np.array([np.bincount(v, minlength=train_y.max() + 1).argmax() for v in votes])
    return float((pred == test_y).mean())


def probe_task(feats: dict[str, np.ndarray], y: dict[str, np.ndarray], n_classes: int,
               seeds: tuple[int, ...] = (0, 1, 2)) -> dict[str, float]:
    """feats/y keyed by split. Standardises with train statistics, selects the L2 penalty on valid. Each seed fits
    on a bootstrap resample of the training set, so the spread says how much the score depends on the data."""
    mu, sd = feats["train"].mean(0), feats["train"].std(0) + 1e-6
    z = {s: (f - mu) / sd for s, f in feats.items()}
    accs = []
    for seed in seeds:
        idx = np.random.default_rng(seed).integers(0, len(y["train"]), len(y["train"]))
        probes = [fit_linear(z["train"][idx], y["train"][idx], n_classes, wd) for wd in WEIGHT_DECAYS]
        best = max(probes, key=lambda p: accuracy(p, z["valid"], y["valid"]))
        accs.append(accuracy(best, z["test"], y["test"]))
    return {"linear": round(float(np.mean(accs)), 4), "linear_std": round(float(np.std(accs)), 4),
            "knn": round(knn_accuracy(z["train"], y["train"], z["test"], y["test"]), 4)}


def evaluate_probes(model: Tokenizer, corpus: str | Path, max_per_split: int | None = None) -> dict[str, Any]:
    root = Path(corpus)
    t0 = time.perf_counter()
    clips = {s: read_manifest(root / f"{s}.jsonl") for s in ("train", "valid", "test")}
    if max_per_split is not None:
        clips = {s: c[:: max(1, len(c) // max_per_split)][:max_per_split] for s, c in clips.items()}
    feats = {s: extract(model, c, root) for s, c in clips.items()}
    results: dict[str, Any] = {}
    for task in TASKS:
        labels = {s: [task.label(c) for c in clips[s]] for s in clips}
        keep = {s: [i for i, v in enumerate(labels[s]) if v is not None] for s in labels}
        train_classes = {str(labels["train"][i]) for i in keep["train"]}
        # Only classes seen in training can be predicted; test items of other classes are dropped, and said so.
        keep = {s: [i for i in idx if labels[s][i] in train_classes] for s, idx in keep.items()}
        if len(train_classes) < 2 or any(len(keep[s]) < 2 for s in keep):
            continue
        index = {c: i for i, c in enumerate(sorted(train_classes))}
        y = {s: np.array([index[str(labels[s][i])] for i in keep[s]]) for s in keep}
        counts = np.bincount(y["test"], minlength=len(index))
        row: dict[str, Any] = {"classes": len(index), "n_train": len(keep["train"]), "n_test": len(keep["test"]),
                               "chance": round(float(counts.max() / counts.sum()), 4)}
        for rep in REPRESENTATIONS:
            row[rep] = probe_task({s: feats[s][rep][keep[s]] for s in keep}, y, len(index))
        results[task.name] = row
    return {"model_id": model.model_id, "tasks": results, "seconds": round(time.perf_counter() - t0, 1)}


def markdown(report: dict[str, Any], level: int = 1) -> str:
    """The report as a markdown table under a heading of ``level``."""
    lines = [f"{'#' * level} Linear probes: {report['model_id']}", "",
             "| task | classes | chance | log-mel | semantic | latents (with injection) | kNN log-mel / sem. / lat. |",
             "|---|---|---|---|---|---|---|"]
    for name, r in report["tasks"].items():
        cells = [f"{r[rep]['linear']:.3f} ± {r[rep]['linear_std']:.3f}" for rep in REPRESENTATIONS]
        knn = " / ".join(f"{r[rep]['knn']:.3f}" for rep in REPRESENTATIONS)
        lines.append(f"| {name} | {r['classes']} | {r['chance']:.3f} | " + " | ".join(cells) + f" | {knn} |")
    lines += ["", "Test accuracy of linear probes (mean ± std over 3 bootstrap seeds; L2 penalty chosen on valid) "
              "on mean-pooled features. The no-injection ablation decodes from the *semantic* features, so its "
              "understanding scores are the semantic column."]
    return "\n".join(lines) + "\n"


def write_report(report: dict[str, Any], out: Path) -> None:
    from dashtok.plots import probe_bars

    out.mkdir(parents=True, exist_ok=True)
    (out / "probe.json").write_text(json.dumps(report, indent=2) + "\n")
    probe_bars(out / "probe_bars.png", report, REPRESENTATIONS)
    (out / "probe.md").write_text(report_text(report))


def report_text(report: dict[str, Any], level: int = 1) -> str:
    """The markdown table with the bar chart written beside it."""
    return markdown(report, level) + "\n![per-task test accuracy](probe_bars.png)\n"
