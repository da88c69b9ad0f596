"""Probe table of an MAE encoder against the bundled default's encoder, on the same corpus clips.

    OMP_NUM_THREADS=1 python records/encoder/probe_encoder.py data/corpus runs/mae_small_long -o OUT

The candidate encoder comes from an MAE run folder (its latest checkpoint, ``checkpoints/latest``), a checkpoint
folder (``mae.safetensors``) or an encoder file (``encoder.safetensors``). It is put into a copy of the bundled default
tokenizer in place of that model's encoder, and ``dashtok.eval.probe.evaluate_probes`` runs on both. Only the
``logmel`` and ``semantic`` columns are meaningful for the candidate: its ``latents`` column adds the default's
injection layer, which was trained for the old encoder (the injection is retrained with the tokenizer anyway).

Writes OUT/probe_old.json, OUT/probe_new.json and OUT/compare.md (per task: log-mel, old semantic, new semantic).
"""

from __future__ import annotations

import argparse
import csv
import json
import time
from pathlib import Path

import torch
from safetensors.torch import load_file

from dashtok.checkpoint import default_checkpoint_path, load_encoder
from dashtok.config import EncoderConfig, FrontendConfig
from dashtok.encoder import DashengEncoder
from dashtok.eval.probe import evaluate_probes
from dashtok.tokenizer import Tokenizer


def candidate_encoder(source: Path, preset: str = "small") -> tuple[DashengEncoder, str]:
    """(encoder, a label naming where it came from)."""
    if source.is_file():
        return load_encoder(source), str(source)
    folder = source
    pointer = source / "checkpoints" / "latest"
    if pointer.is_file():
        folder = source / "checkpoints" / pointer.read_text().strip()
    state = load_file(str(folder / "mae.safetensors"))
    encoder = DashengEncoder(FrontendConfig(), EncoderConfig.preset(preset))
    own = {k.removeprefix("encoder."): v for k, v in state.items() if k.startswith("encoder.")}
    encoder.load_state_dict(own, strict=True)
    return encoder.eval(), str(folder)


def compare_markdown(old: dict, new: dict, new_label: str) -> str:
    lines = [f"# Probe table: new encoder ({new_label}) vs the bundled default's ({old['model_id']})", "",
             "| task | classes | chance | log-mel | old semantic | new semantic | new - old | kNN old / new |",
             "|---|---|---|---|---|---|---|---|"]
    wins = 0
    for name, o in old["tasks"].items():
        n = new["tasks"][name]
        d = n["semantic"]["linear"] - o["semantic"]["linear"]
        wins += d > 0
        lines.append(f"| {name} | {o['classes']} | {o['chance']:.3f} | {o['logmel']['linear']:.3f} | "
                     f"{o['semantic']['linear']:.3f} ± {o['semantic']['linear_std']:.3f} | "
                     f"{n['semantic']['linear']:.3f} ± {n['semantic']['linear_std']:.3f} | {d:+.3f} | "
                     f"{o['semantic']['knn']:.3f} / {n['semantic']['knn']:.3f} |")
    mean_old = sum(t["semantic"]["linear"] for t in old["tasks"].values()) / len(old["tasks"])
    mean_new = sum(t["semantic"]["linear"] for t in new["tasks"].values()) / len(new["tasks"])
    mean_mel = sum(t["logmel"]["linear"] for t in old["tasks"].values()) / len(old["tasks"])
    beats_mel_old = sum(t["semantic"]["linear"] > t["logmel"]["linear"] for t in old["tasks"].values())
    beats_mel_new = sum(n["semantic"]["linear"] > old["tasks"][k]["logmel"]["linear"]
                        for k, n in new["tasks"].items())
    lines += ["", f"Mean linear accuracy: log-mel {mean_mel:.3f}, old semantic {mean_old:.3f}, "
              f"new semantic {mean_new:.3f}. New better than old on {wins} of {len(old['tasks'])} tasks; "
              f"semantic above log-mel on {beats_mel_old} (old) and {beats_mel_new} (new) tasks."]
    return "\n".join(lines) + "\n"


def append_history(path: Path, step: int, old: dict, new: dict, max_per_split: int | None) -> None:
    new_file = not path.exists()
    with path.open("a", newline="") as f:
        w = csv.writer(f)
        if new_file:
            w.writerow(["step", "max_per_split", "task", "logmel", "old_semantic", "new_semantic", "new_semantic_std",
                        "old_knn", "new_knn"])
        for name, o in old["tasks"].items():
            n = new["tasks"][name]
            w.writerow([step, max_per_split or "all", name, o["logmel"]["linear"], o["semantic"]["linear"],
                        n["semantic"]["linear"], n["semantic"]["linear_std"], o["semantic"]["knn"],
                        n["semantic"]["knn"]])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("corpus", help="corpus folder (dashtok data build)")
    parser.add_argument("candidate", help="MAE run folder, checkpoint folder or encoder.safetensors")
    parser.add_argument("-o", "--output", required=True, help="output folder")
    parser.add_argument("--max-per-split", type=int, default=None, help="probe clips per split (default: all)")
    parser.add_argument("--old", default=None, help="reuse this probe_old.json instead of recomputing it")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default: 1)")
    parser.add_argument("--history", default=None, help="append one row per task to this CSV (with --step)")
    parser.add_argument("--step", type=int, default=-1, help="the candidate's MAE step, for --history")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    default = Tokenizer.load(default_checkpoint_path())
    if args.old:
        old = json.loads(Path(args.old).read_text())
    else:
        old = evaluate_probes(default, args.corpus, args.max_per_split)
    (out / "probe_old.json").write_text(json.dumps(old, indent=2) + "\n")
    encoder, label = candidate_encoder(Path(args.candidate))
    model = Tokenizer.load(default_checkpoint_path())
    model.encoder.load_state_dict(encoder.state_dict(), strict=True)
    model.eval()
    new = evaluate_probes(model, args.corpus, args.max_per_split)
    new["candidate"] = label
    (out / "probe_new.json").write_text(json.dumps(new, indent=2) + "\n")
    text = compare_markdown(old, new, label)
    (out / "compare.md").write_text(text)
    print(text)
    if args.history:
        append_history(Path(args.history), args.step, old, new, args.max_per_split)
    print(f"{time.perf_counter() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
