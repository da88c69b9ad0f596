"""``dashtok eval ...``: reconstruction, probes, generation and enhancement evaluations."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

from dashtok.checkpoint import CheckpointError
from dashtok.cli_common import CliError, finite_float, load_codec, load_model, model_options, refuse_overwrite
from dashtok.generate.cli import load_enhancer


def cmd_eval_recon(args: argparse.Namespace) -> int:
    from dashtok.eval.recon import evaluate_recon, markdown, write_report

    if not args.manifest and not args.folder:
        raise CliError("give at least one --manifest or --folder to evaluate on")
    for path in args.manifest + args.folder:
        if not Path(path).exists():
            raise CliError(f"{path}: no such file or directory")
    out = Path(args.output)
    refuse_overwrite([out / "recon.json"], args.force)
    model = load_model(args.checkpoint, args.device, args.precision)
    report = evaluate_recon(model, args.manifest, args.folder, args.max_per_source, plots=out,
                            references=tuple(args.opus))
    write_report(report, out)
    print(markdown(report))
    print(f"wrote {out / 'recon.json'} and {out / 'recon.md'}")
    if report["skipped"]:  # as every multi-file command: the others were scored, the exit code says not all were
        print(f"dashtok: {len(report['skipped'])} file(s) could not be read; the others were scored",
              file=sys.stderr)
        return 1
    return 0


def require_corpus(corpus: Path, split: str) -> None:
    """Every corpus evaluation starts here: a folder from ``dashtok data build`` with ``split``'s manifest."""
    if not (corpus / f"{split}.jsonl").is_file():
        raise CliError(f"{corpus}: not a corpus folder (no {split}.jsonl; build one with dashtok data build)")


def cmd_eval_probe(args: argparse.Namespace) -> int:
    from dashtok.eval.probe import evaluate_probes, markdown, write_report

    corpus = Path(args.corpus)
    require_corpus(corpus, "train")
    out = Path(args.output)
    refuse_overwrite([out / "probe.json"], args.force)
    model = load_model(args.checkpoint, args.device, args.precision)
    report = evaluate_probes(model, corpus, args.max_per_split)
    write_report(report, out)
    print(markdown(report))
    print(f"wrote {out / 'probe.json'} and {out / 'probe.md'}")
    return 0


def cmd_eval_all(args: argparse.Namespace) -> int:
    """Reconstruction on the corpus test split + probes on all splits -> one report.md."""
    from dashtok.eval import probe, recon

    corpus, out = Path(args.corpus), Path(args.output)
    require_corpus(corpus, "test")
    refuse_overwrite([out / "report.md"], args.force)
    model = load_model(args.checkpoint, args.device, args.precision)
    t0 = time.perf_counter()
    rec = recon.evaluate_recon(model, [str(corpus / "test.jsonl")], [], args.max_per_source, plots=out,
                               references=tuple(args.opus))
    recon.write_report(rec, out)
    prb = probe.evaluate_probes(model, corpus, args.max_per_split)
    probe.write_report(prb, out)
    minutes = (time.perf_counter() - t0) / 60
    header = (f"# dashtok evaluation: {model.model_id}\n\ntrained: {model.training_record.get('trained', False)}; "
              f"corpus {corpus}; {minutes:.1f} min on {torch.get_num_threads()} CPU threads\n\n")
    body = recon.report_text(rec, out, level=2) + "\n" + probe.report_text(prb, level=2)
    (out / "report.md").write_text(header + body)
    print(header + body)
    print(f"wrote {out / 'report.md'}")
    return 0


def cmd_eval_gen(args: argparse.Namespace) -> int:
    from dashtok.eval.gen import BOOTSTRAP_DRAWS, caption_clips, evaluate_gen, markdown, write_report
    from dashtok.generate.model import TextToAudio
    from dashtok.generate.tied import require_tokenizer

    out = Path(args.output)
    draws = BOOTSTRAP_DRAWS if args.bootstrap_draws is None else args.bootstrap_draws
    if draws < 1:
        raise CliError(f"--bootstrap-draws must be at least 1, not {draws}")
    refuse_overwrite([out / "gen.json"], args.force)
    require_corpus(Path(args.corpus), "test")
    try:
        caption_clips(args.corpus, args.max_clips, args.domain)  # fail before loading any model
    except (ValueError, OSError) as err:
        raise CliError(str(err)) from None
    systems = {}
    for name, generator, codec in args.system:
        try:
            gen = TextToAudio.from_pretrained(None if generator == "default" else generator)
            systems[name] = (gen, load_codec(None if codec == "default" else codec, "cpu"))
            require_tokenizer(systems[name][1], gen.tie, "generator")
        except (CheckpointError, OSError) as err:
            raise CliError(f"system {name}: {err}") from None
    judge = load_model(None, "cpu")
    report = evaluate_gen(systems, args.corpus, judge, max_clips=args.max_clips, steps=args.steps,
                          guidance=args.guidance, out_dir=out / "samples", domain=args.domain,
                          draws=draws)
    write_report(report, out)
    print(markdown(report))
    print(f"wrote {out / 'gen.json'}, {out / 'report.md'} and the listening page {out / 'samples' / 'listen.html'}")
    return 0


def cmd_eval_se(args: argparse.Namespace) -> int:
    from dashtok.eval.se import evaluate_se, markdown, write_report

    corpus, out = Path(args.corpus), Path(args.output)
    require_corpus(corpus, args.split)
    refuse_overwrite([out / "se.json"], args.force)
    enhancer = load_enhancer(args.enhancer)
    model = load_model(args.checkpoint, args.device, args.precision)
    report = evaluate_se(model, enhancer, corpus, args.max_per_group, args.split)
    write_report(report, out)
    print(markdown(report))
    print(f"wrote {out / 'se.json'} and {out / 'se.md'}")
    return 0


def cmd_eval_curves(args: argparse.Namespace) -> int:
    import csv

    from dashtok.atomic import atomic_write
    from dashtok.plots import training_curves

    runs = []
    for spec in args.runs:
        folder, _, label = spec.partition("=")
        if not Path(folder).is_dir():
            raise CliError(f"{folder}: no such run folder")
        runs.append((Path(folder), label or Path(folder).name))
    out = Path(args.output)
    refuse_overwrite([out] + ([Path(args.csv)] if args.csv else []), args.force)
    try:
        table = training_curves(out, runs)
    except ValueError as err:
        raise CliError(str(err)) from None
    if args.csv:
        with atomic_write(Path(args.csv)) as tmp, tmp.open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(dict.fromkeys(k for r in table for k in r)))
            writer.writeheader()
            writer.writerows(table)
    print(f"wrote {out}" + (f" and {args.csv}" if args.csv else ""))
    return 0


def references(p: argparse.ArgumentParser) -> None:
    p.add_argument("--opus", nargs="*", type=int, default=[6, 12, 24], metavar="KBPS",
                   help="Opus bitrates (kbit/s, ffmpeg + libopus) scored on the same clips as references "
                        "(default: 6 12 24; none: --opus with no value)")


def add_commands(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Register this package's subcommands on ``dashtok``'s parser."""
    p = sub.add_parser("eval", help="evaluate a checkpoint")
    eval_sub = p.add_subparsers(dest="eval_command", required=True)
    p = eval_sub.add_parser("recon", help="reconstruction quality per source (mel distance, SI-SDR, PESQ, STOI)")
    p.add_argument("--manifest", action="append", default=[], help="corpus manifest (e.g. data/corpus/test.jsonl)")
    p.add_argument("--folder", action="append", default=[], help="folder of audio files (treated as speech)")
    p.add_argument("--max-per-source", type=int, help="evaluate at most this many clips per source")
    p.add_argument("-o", "--output", default="out/eval", help="output folder (default: out/eval)")
    references(p)
    model_options(p)
    p.set_defaults(func=cmd_eval_recon)

    p = eval_sub.add_parser("all", help="reconstruction (test split) + probes (all splits) -> report.md with plots")
    p.add_argument("corpus", help="corpus folder (from dashtok data build)")
    p.add_argument("--max-per-source", type=int, default=40, help="reconstruction clips per source (default: 40)")
    p.add_argument("--max-per-split", type=int, help="probe clips per split (default: all)")
    p.add_argument("-o", "--output", default="out/eval", help="output folder (default: out/eval)")
    references(p)
    model_options(p)
    p.set_defaults(func=cmd_eval_all)

    p = eval_sub.add_parser("gen", help="text-to-audio: Frechet distance and per-caption label accuracy of "
                                         "generated clips, one row per system")
    p.add_argument("corpus", help="corpus folder (dashtok data build)")
    p.add_argument("--system", nargs=3, action="append", required=True, metavar=("NAME", "GENERATOR", "CODEC"),
                   help="a generator checkpoint and the tokenizer/VAE checkpoint it decodes with ('default': the "
                        "bundled generator / tokenizer); repeat to compare systems (the first is the reference: the "
                        "others' Frechet distances are also given as differences to it, with bootstrap intervals)")
    p.add_argument("-o", "--output", default="out/eval_gen", help="output folder (gen.json, report.md, samples)")
    p.add_argument("--max-clips", type=int, default=160, help="test captions used (spread over the split)")
    p.add_argument("--domain", choices=("speech", "music", "sound"),
                   help="only test captions of this domain (music: text-to-music, with pitch, chord, key and tempo "
                        "measured in the audio)")
    p.add_argument("--steps", type=int, default=32)
    p.add_argument("--guidance", type=finite_float, default=3.0)
    p.add_argument("--bootstrap-draws", type=int, help="resamples of the captions for the intervals of the "
                                                      "Frechet-distance differences (default: 1000)")
    p.add_argument("--force", "-f", action="store_true", help="overwrite existing outputs")
    p.set_defaults(func=cmd_eval_gen)

    p = eval_sub.add_parser("se", help="speech enhancement on the test mixtures: noisy vs Wiener vs dashtok")
    p.add_argument("corpus", help="corpus folder (from dashtok data build)")
    p.add_argument("--enhancer", "-e", help="enhancer checkpoint (default: the bundled enhancer)")
    p.add_argument("--max-per-group", type=int, help="at most this many mixtures per group")
    p.add_argument("--split", choices=("test", "valid"), default="test",
                   help="the mixtures scored: test (to report), valid (to choose between recipes; synthetic speech "
                        "only, the corpus keeps real speech for test) (default: test)")
    p.add_argument("-o", "--output", default="out/eval", help="output folder (default: out/eval)")
    model_options(p)
    p.set_defaults(func=cmd_eval_se)

    p = eval_sub.add_parser("curves", help="training curves of run folders, overlaid, to one PNG (every loss of "
                                            "metrics.csv, every validation measure of eval.csv)")
    p.add_argument("runs", nargs="+", metavar="RUN[=LABEL]", help="training run folders, optionally labelled")
    p.add_argument("-o", "--output", required=True, help="PNG file")
    p.add_argument("--csv", help="also write every run's validation rows to this CSV, with a 'run' column")
    p.add_argument("--force", "-f", action="store_true", help="overwrite existing outputs")
    p.set_defaults(func=cmd_eval_curves)

    p = eval_sub.add_parser("probe", help="linear probes + kNN: log-mel vs semantic vs latents, every corpus task")
    p.add_argument("corpus", help="corpus folder (from dashtok data build)")
    p.add_argument("--max-per-split", type=int, help="use at most this many clips per split")
    p.add_argument("-o", "--output", default="out/eval", help="output folder (default: out/eval)")
    model_options(p)
    p.set_defaults(func=cmd_eval_probe)
