"""``dashtok`` command line: encode, decode, reconstruct, info.

Never overwrites without ``--force``; defaults to the CPU; every error is one line on stderr and a non-zero exit.
In a multi-file run a bad file is reported and skipped, and the others still complete.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

import numpy as np
import soundfile as sf
import torch

from dashtok.audio_io import AudioError, audio_writer, find_audio_files, fit_length, load_audio, write_audio
from dashtok.checkpoint import CheckpointError, default_checkpoint_path, read_metadata, resolve_checkpoint
from dashtok.codec import Codec
from dashtok.latents_io import (
    LatentFile,
    LatentFileError,
    check_compatible,
    latent_writer,
    read_latents,
    write_latents,
)
from dashtok.precision import PRECISIONS, set_precision
from dashtok.streaming import StreamingDecoder
from dashtok.tokenizer import Tokenizer

if TYPE_CHECKING:
    from dashtok.generate.enhance import LatentEnhancer

FILE_ERRORS = (AudioError, LatentFileError, ValueError, RuntimeError, MemoryError)


class CliError(Exception):
    """A fatal, user-facing error: printed as one line, exit code 2."""


def fail(msg: str, code: int = 2) -> NoReturn:
    print(f"dashtok: error: {msg}", file=sys.stderr)
    raise SystemExit(code)


class Progress:
    """A one-line progress bar on stderr, drawn only when stderr is a terminal (logs stay clean)."""

    def __init__(self, total: int, label: str, enabled: bool = True) -> None:
        self.total, self.label, self.done = total, label, 0
        self.enabled = enabled and sys.stderr.isatty() and total > 1
        self.start = time.perf_counter()

    def step(self, name: str) -> None:
        self.done += 1
        if not self.enabled:
            return
        width = 30
        filled = int(width * self.done / self.total)
        rate = self.done / max(time.perf_counter() - self.start, 1e-9)
        bar = "#" * filled + "-" * (width - filled)
        print(f"\r{self.label} [{bar}] {self.done}/{self.total} {rate:.1f} files/s {name[-40:]:<40}",
              end="" if self.done < self.total else "\n", file=sys.stderr, flush=True)


@dataclass
class Job:
    source: Path
    target: Path


def _load_model(checkpoint: str | None, device: str, precision: str = "fp32") -> Tokenizer:
    """The bundled default, a dashtok checkpoint, an official-layout directory or a hub id (see from_pretrained)."""
    try:
        if not checkpoint and not default_checkpoint_path().is_file():
            raise CheckpointError(f"{default_checkpoint_path()}: the bundled default model is missing from this "
                                  f"installation")
        return set_precision(Tokenizer.from_pretrained(checkpoint or None, device=device), precision)
    except (CheckpointError, ValueError) as err:
        raise CliError(str(err)) from None


def _load_codec(checkpoint: str | None, device: str, precision: str = "fp32") -> Codec:
    """A tokenizer or a VAE-baseline checkpoint (what generators decode with)."""
    from dashtok.baselines.vae import load_codec

    try:
        codec = load_codec(checkpoint, device)
    except (CheckpointError, ValueError) as err:
        raise CliError(str(err)) from None
    if not isinstance(codec, Tokenizer):
        if precision != "fp32":
            raise CliError("--precision applies to tokenizers, not to the VAE baseline")
        return codec
    try:
        return set_precision(codec, precision)
    except ValueError as err:
        raise CliError(str(err)) from None


def _jobs(inputs: list[str], output: str | None, suffix: str, single_ext: tuple[str, ...],
          find: bool = True) -> list[Job]:
    """Map inputs (files or directory trees) to outputs; a directory input keeps its tree under ``output``."""
    pairs: list[tuple[Path, Path]] = []  # (file, path relative to the output root)
    for raw in inputs:
        root = Path(raw)
        if not root.exists():
            raise CliError(f"{root}: no such file or directory")
        if root.is_dir():
            files = find_audio_files(root) if find else sorted(root.rglob("*.safetensors"))
            if not files:
                raise CliError(f"{root}: no input files found in this directory")
            pairs += [(f, f.relative_to(root)) for f in files]
        else:
            pairs.append((root, Path(root.name)))
    if output is None:
        jobs = [Job(f, f.with_suffix(suffix)) for f, _ in pairs]
    elif len(pairs) == 1 and Path(inputs[0]).is_file() and output.lower().endswith(single_ext):
        jobs = [Job(pairs[0][0], Path(output))]
    else:
        jobs = [Job(f, Path(output) / rel.with_suffix(suffix)) for f, rel in pairs]
    seen: dict[Path, Path] = {}
    for job in jobs:
        if job.target in seen:
            raise CliError(f"{seen[job.target]} and {job.source} would both be written to {job.target}")
        seen[job.target] = job.source
    return jobs


def _refuse_overwrite(paths: list[Path], force: bool) -> None:
    existing = [str(p) for p in paths if p.exists()]
    if existing and not force:
        more = f" (and {len(existing) - 1} more)" if len(existing) > 1 else ""
        raise CliError(f"{existing[0]}{more} already exists; pass --force to overwrite")


def _run(jobs: list[Job], label: str, work: Callable[[Job], None], quiet: bool) -> int:
    progress = Progress(len(jobs), label, enabled=not quiet)
    failed = 0
    for job in jobs:
        try:
            work(job)
        except FILE_ERRORS as err:
            failed += 1
            msg = str(err)
            if not msg.startswith(str(job.source)):
                msg = f"{job.source}: {msg}"
            print(f"dashtok: error: {msg}", file=sys.stderr)
        progress.step(str(job.source))
    if failed:
        print(f"dashtok: {failed} of {len(jobs)} file(s) failed; the others were written", file=sys.stderr)
        return 1
    return 0


def _load_for_encoding(model: Tokenizer, path: Path, max_seconds: float | None) -> np.ndarray:
    audio = load_audio(path, model.sample_rate, max_seconds=max_seconds)
    if len(audio) < model.config.min_num_samples:
        raise AudioError(f"{path}: {len(audio)} samples is shorter than one latent frame "
                         f"({model.config.min_num_samples} samples at {model.sample_rate} Hz)")
    return audio


def _latent_files(model: Tokenizer, items: list[tuple[Path, np.ndarray]], semantic: bool) -> list[LatentFile]:
    """Encode clips as one padded batch (equal to encoding them one at a time) -> one latent file each."""
    n = max(len(a) for _, a in items)
    batch = np.stack([np.pad(a, (0, n - len(a))) for _, a in items])
    enc = model.encode(batch, lengths=np.array([len(a) for _, a in items]), return_semantic=semantic)
    features = enc.semantic if semantic and enc.semantic is not None else enc.latents
    return [LatentFile(latents=features[i, : int(enc.lengths[i])].cpu(), sample_rate=model.sample_rate,
                       frame_rate=model.frame_rate, original_num_samples=[len(audio)], model_id=model.model_id,
                       config_hash=model.config.hash, kind="semantic" if semantic else "latents", source=str(path))
            for i, (path, audio) in enumerate(items)]


def _encode_file(model: Tokenizer, path: Path, max_seconds: float | None,
                 semantic: bool = False) -> tuple[np.ndarray, LatentFile]:
    audio = _load_for_encoding(model, path, max_seconds)
    return audio, _latent_files(model, [(path, audio)], semantic)[0]


STREAM_CHUNKS = 4  # encoder chunks (~10 s each) per step of file-to-file encoding: memory flat from 1 minute on


def _encode_streamed(model: Tokenizer, job: Job, max_seconds: float | None, semantic: bool) -> None:
    """File to file in bounded memory: decoded once into a temporary file, encoded group of chunks by group of
    chunks, written frame block by frame block (equal to encoding the whole file, ``dashtok.long_audio``)."""
    from dashtok.long_audio import SampleFile, encode_long

    with SampleFile.from_audio_file(job.source, model.sample_rate, max_seconds) as samples:
        n = samples.num_samples
        if n < model.min_num_samples:
            raise AudioError(f"{job.source}: {n} samples is shorter than one latent frame "
                             f"({model.min_num_samples} samples at {model.sample_rate} Hz)")
        meta = LatentFile(latents=torch.zeros(0, model.latent_dim), sample_rate=model.sample_rate,
                          frame_rate=model.frame_rate, original_num_samples=[n], model_id=model.model_id,
                          config_hash=model.config.hash, kind="semantic" if semantic else "latents",
                          source=str(job.source))
        with latent_writer(job.target, model.config.num_frames(n), meta) as out:
            for frames in encode_long(model, samples.read, n, semantic=semantic, chunks_per_step=STREAM_CHUNKS):
                out.write(frames)


def _length_buckets(jobs: list[Job], batch_size: int, max_batch_seconds: float) -> list[list[Job]]:
    """Jobs sorted by duration and cut into batches of similar length (little padding), each holding at most
    ``batch_size`` files and ``max_batch_seconds`` of padded audio. Unreadable files sort first, alone."""
    def seconds(job: Job) -> float:
        try:
            info = sf.info(str(job.source))
            return float(info.frames) / float(info.samplerate)
        except Exception:  # reported by name when the batch loads it
            return 0.0

    timed = sorted(((seconds(j), j) for j in jobs), key=lambda p: p[0])
    groups: list[list[Job]] = []
    longest = 0.0
    for sec, job in timed:
        if groups and len(groups[-1]) < batch_size and (len(groups[-1]) + 1) * max(longest, sec) <= max_batch_seconds:
            groups[-1].append(job)
            longest = max(longest, sec)
        else:
            groups.append([job])
            longest = sec
    return groups


def cmd_encode(args: argparse.Namespace) -> int:
    jobs = _jobs(args.inputs, args.output, ".safetensors", (".safetensors",))
    _refuse_overwrite([j.target for j in jobs], args.force)
    model = _load_model(args.checkpoint, args.device, args.precision)

    if args.batch_size <= 1:
        def work(job: Job) -> None:
            _encode_streamed(model, job, args.max_seconds, args.semantic)

        return _run(jobs, "encode", work, args.quiet)
    progress = Progress(len(jobs), "encode", enabled=not args.quiet)
    failed = 0
    for group in _length_buckets(jobs, args.batch_size, args.max_batch_seconds):
        loaded: list[tuple[Job, np.ndarray]] = []
        for job in group:  # a bad file is reported by name and leaves its batch; the others go on
            try:
                loaded.append((job, _load_for_encoding(model, job.source, args.max_seconds)))
            except FILE_ERRORS as err:
                failed += 1
                msg = str(err)
                print(f"dashtok: error: {msg if msg.startswith(str(job.source)) else f'{job.source}: {msg}'}",
                      file=sys.stderr)
                progress.step(str(job.source))
        if not loaded:
            continue
        try:
            files: list[LatentFile | Exception] = list(
                _latent_files(model, [(j.source, a) for j, a in loaded], args.semantic))
        except FILE_ERRORS:  # the batch failed: encode its files one by one, so the error names the file
            files = []
            for job, audio in loaded:
                try:
                    files.append(_latent_files(model, [(job.source, audio)], args.semantic)[0])
                except FILE_ERRORS as err:
                    files.append(err)
        for (job, _), lf in zip(loaded, files, strict=True):
            if isinstance(lf, Exception):
                failed += 1
                print(f"dashtok: error: {job.source}: {lf}", file=sys.stderr)
            else:
                write_latents(job.target, lf)
            progress.step(str(job.source))
    if failed:
        print(f"dashtok: {failed} of {len(jobs)} file(s) failed; the others were written", file=sys.stderr)
        return 1
    return 0


def cmd_decode(args: argparse.Namespace) -> int:
    jobs = _jobs(args.inputs, args.output, ".wav", (".wav", ".flac"), find=False)
    _refuse_overwrite([j.target for j in jobs], args.force)
    model = _load_model(args.checkpoint, args.device, args.precision)

    def work(job: Job) -> None:
        lf = read_latents(job.source)
        check_compatible(lf, model.model_id, model.config.hash, model.latent_dim, str(job.source),
                         any_weights=args.any_weights)
        if lf.sample_rate != model.sample_rate:
            raise LatentFileError(f"{job.source}: latents are for {lf.sample_rate} Hz, model is {model.sample_rate}")
        z, lengths = lf.batched()
        if z.shape[0] == 1:  # one stream: decoded window by window straight into the file, bounded memory
            stream = StreamingDecoder(model, block_frames=model.decode_chunk_frames)
            with audio_writer(job.target, model.sample_rate, lf.original_num_samples[0]) as out:
                for s in range(0, z.shape[1], model.decode_chunk_frames):
                    out.write(stream.push(z[:, s : s + model.decode_chunk_frames])[0].cpu().numpy())
                out.write(stream.flush()[0].cpu().numpy())
            return
        dec = model.decode(z, lengths)
        for i, n in enumerate(lf.original_num_samples):
            audio = fit_length(dec.audio[i, : int(dec.lengths[i])].cpu().numpy(), n)
            target = job.target if z.shape[0] == 1 else \
                job.target.with_name(f"{job.target.stem}_{i}{job.target.suffix}")
            write_audio(target, audio, model.sample_rate)

    return _run(jobs, "decode", work, args.quiet)


def cmd_reconstruct(args: argparse.Namespace) -> int:
    from dashtok import metrics

    out = Path(args.output)
    jobs = _jobs(args.inputs, str(out), ".wav", ())
    report_path = out / "metrics.json"
    targets = [j.target for j in jobs] + [j.target.with_suffix(".safetensors") for j in jobs] + [report_path]
    _refuse_overwrite(targets, args.force)
    model = _load_model(args.checkpoint, args.device, args.precision)
    rows: list[dict[str, object]] = []

    def work(job: Job) -> None:
        t0 = time.perf_counter()
        audio, lf = _encode_file(model, job.source, args.max_seconds)
        t1 = time.perf_counter()
        dec = model.decode(lf.latents)
        recon = fit_length(dec.audio[0].cpu().numpy(), len(audio))
        t2 = time.perf_counter()
        write_latents(job.target.with_suffix(".safetensors"), lf)
        write_audio(job.target, recon, model.sample_rate)
        seconds = len(audio) / model.sample_rate
        rows.append({
            "input": str(job.source), "reconstruction": str(job.target),
            "latents": str(job.target.with_suffix(".safetensors")), "seconds": round(seconds, 3),
            "latent_frames": int(lf.latents.shape[0]), "latent_dim": model.latent_dim,
            "encode_rtf": (t1 - t0) / seconds, "decode_rtf": (t2 - t1) / seconds,
            "mel_distance": float(metrics.mel_distance(audio, recon)[0]),
            "si_sdr_db": float(metrics.si_sdr(audio, recon)[0]),
            "pesq_wb": metrics.pesq_wb(audio, recon, model.sample_rate),
            "stoi": metrics.stoi(audio, recon, model.sample_rate),
        })

    code = _run(jobs, "reconstruct", work, args.quiet)
    report = {"model_id": model.model_id, "trained": bool(model.training_record.get("trained", False)),
              "device": args.device, "torch_threads": torch.get_num_threads(), "files": rows}
    report_path.parent.mkdir(parents=True, exist_ok=True)
    report_path.write_text(json.dumps(report, indent=2) + "\n")
    if not model.training_record.get("trained", False):
        print("note: this model is UNTRAINED (random weights); its reconstructions are noise", file=sys.stderr)
    for r in rows:
        pesq = "n/a" if r["pesq_wb"] is None else f"{r['pesq_wb']:.2f}"
        stoi_s = "n/a" if r["stoi"] is None else f"{r['stoi']:.3f}"
        print(f"{r['input']}: {r['seconds']:.2f} s -> {r['latent_frames']} x {r['latent_dim']} latents; "
              f"mel distance {r['mel_distance']:.3f}, SI-SDR {r['si_sdr_db']:.1f} dB, PESQ-WB {pesq}, "
              f"STOI {stoi_s}; encode RTF {r['encode_rtf']:.3f}, decode RTF {r['decode_rtf']:.3f}")
    print(f"wrote {report_path}")
    return code


def cmd_info(args: argparse.Namespace) -> int:
    from dashtok.release import WEIGHTS_FILE, official_dir

    model = _load_model(args.checkpoint, "cpu")
    try:
        official = official_dir(args.checkpoint) if args.checkpoint else None
        if official is not None:
            path = official / WEIGHTS_FILE
            meta = {"format": "official DashengTokenizer layout (config.json + model.safetensors)"}
        else:
            path = resolve_checkpoint(args.checkpoint) if args.checkpoint else default_checkpoint_path()
            meta = read_metadata(path)
    except CheckpointError as err:
        raise CliError(str(err)) from None
    cfg = model.config
    counts = {name: sum(p.numel() for p in mod.parameters()) for name, mod in model.named_children()}
    record = model.training_record
    info = {
        "checkpoint": str(path), "size_mb": round(path.stat().st_size / 2**20, 2), "model_id": model.model_id,
        "config_hash": cfg.hash, "format": meta.get("format"), "dashtok_version": meta.get("dashtok_version"),
        "sample_rate": model.sample_rate, "frame_rate": model.frame_rate, "hop_length": model.hop_length,
        "latent_dim": model.latent_dim,
        "injection": (f"{cfg.injection.front_end} "
                      f"({cfg.injection.n_mels if cfg.acoustic_front_end else cfg.frontend.n_mels} x "
                      f"{cfg.encoder.patch_frames} patch)") if cfg.injection.enabled else "none (semantic alone)",
        "encoder": f"Dasheng {cfg.encoder.embed_dim}-d, {cfg.encoder.depth} layers, {cfg.encoder.num_heads} heads",
        "decoder": f"{cfg.decoder.num_blocks} ConvNeXt blocks, {cfg.decoder.dim}-d "
                   f"(intermediate {cfg.decoder.intermediate_dim}), iSTFT n_fft {cfg.decoder.n_fft} "
                   f"hop {cfg.decoder.hop_length}",
        "parameters": counts, "trained": bool(record.get("trained", False)), "training": record,
    }
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    for key, value in info.items():
        print(f"{key:16s} {value}")
    if not info["trained"]:
        print("WARNING: this checkpoint is UNTRAINED (random weights): a placeholder, not a usable tokenizer")
    return 0


def cmd_convert(args: argparse.Namespace) -> int:
    from dashtok.release import CONFIG_FILE, WEIGHTS_FILE, official_dir

    try:
        source = official_dir(args.input)
    except CheckpointError as err:
        raise CliError(str(err)) from None
    to = args.to or ("dashtok" if source is not None else "official")
    if args.output:
        out = Path(args.output)
    elif to == "dashtok":  # a hub id -> ./<name>.safetensors; a directory -> <directory>.safetensors beside it
        name = args.input.split("/")[-1] if _is_hub_id(args.input) else str(Path(args.input))
        out = Path(f"{name}.safetensors")
    else:  # x.safetensors -> x_official/ beside it
        src = Path(args.input)
        out = src.with_name(f"{src.stem if src.suffix == '.safetensors' else src.name}_official")
    if to == "dashtok" and out.suffix != ".safetensors":
        raise CliError(f"{out}: a dashtok checkpoint is one .safetensors file")
    targets = [out / CONFIG_FILE, out / WEIGHTS_FILE] if to == "official" else [out]
    _refuse_overwrite(targets, args.force)
    model = _load_model(args.input, "cpu")
    try:
        if to == "official":
            model.save_official(out)
        else:
            model.save(out, training=model.training_record)
    except (CheckpointError, ValueError) as err:
        raise CliError(str(err)) from None
    n = sum(p.numel() for p in model.parameters())
    print(f"wrote {out} ({to} layout): {model.model_id}, {n / 1e6:.1f} M parameters, latents "
          f"{model.latent_dim}-d at {model.frame_rate:g} Hz")
    return 0


def _is_hub_id(text: str) -> bool:
    return not Path(text).exists() and text.count("/") == 1


def cmd_bench(args: argparse.Namespace) -> int:
    from dashtok.atomic import atomic_write
    from dashtok.bench import BenchConfig, markdown, run_bench

    if args.threads:
        torch.set_num_threads(args.threads)
    cfg = BenchConfig(presets=tuple(args.presets), precisions=tuple(args.precision), seconds=tuple(args.seconds),
                      batch_sizes=tuple(args.batch), repeats=args.repeats, device=args.device,
                      upstream_python=args.upstream_python, max_batched_seconds=args.max_batched_seconds,
                      official_code=args.official_code, upstream_impls=tuple(args.upstream_impls))
    out = Path(args.output)
    report = run_bench(cfg)
    with atomic_write(out / "bench.json") as tmp:
        tmp.write_text(json.dumps(report, indent=2))
    with atomic_write(out / "bench.md") as tmp:
        tmp.write_text(markdown(report))
    print(f"wrote {out / 'bench.json'} and {out / 'bench.md'}")
    return 0


def cmd_export_onnx(args: argparse.Namespace) -> int:
    from dashtok.export import check_onnx_decoder, export_decoder_onnx

    out = Path(args.output)
    _refuse_overwrite([out], args.force)
    model = _load_model(args.checkpoint, "cpu")
    export_decoder_onnx(model, out)
    print(f"wrote {out} ({out.stat().st_size / 2**20:.1f} MiB): input latents (batch, frames, {model.latent_dim}), "
          f"output audio (batch, frames * {model.hop_length}) at {model.sample_rate} Hz")
    if not args.no_check:
        r = check_onnx_decoder(model, out)
        print(f"ONNX Runtime vs PyTorch on 2 x 250 frames: max abs difference {r['max_abs_diff']:.2e} "
              f"(peak {r['peak']:.2f}), SNR {r['snr_db']:.1f} dB")
        if r["max_abs_diff"] > 1e-4:
            print("dashtok: error: the exported decoder disagrees with PyTorch", file=sys.stderr)
            return 1
    return 0


def cmd_data_build(args: argparse.Namespace) -> int:
    from dashtok.data.build import build

    out = Path(args.output)
    if (out / "build.json").exists() and not args.force and not args.resume:
        raise CliError(f"{out} already holds a built corpus; pass --resume to finish or refresh it, or --force")
    summary = build(out, preset=args.preset, hours=args.hours, seed=args.seed, workers=args.workers,
                    log=not args.quiet)
    print(json.dumps(summary, indent=2, sort_keys=True))
    print(f"wrote {out}/train.jsonl, valid.jsonl, test.jsonl ({summary['total_clips']} clips, "
          f"{summary['total_hours']:.2f} h, {summary['rejected']} rejected: see rejected.jsonl)")
    return 0


def cmd_eval_recon(args: argparse.Namespace) -> int:
    from dashtok.eval.recon import evaluate_recon, markdown, write_report

    if not args.manifest and not args.folder:
        raise CliError("give at least one --manifest or --folder to evaluate on")
    for path in args.manifest + args.folder:
        if not Path(path).exists():
            raise CliError(f"{path}: no such file or directory")
    out = Path(args.output)
    _refuse_overwrite([out / "recon.json"], args.force)
    model = _load_model(args.checkpoint, args.device, args.precision)
    report = evaluate_recon(model, args.manifest, args.folder, args.max_per_source, plots=out)
    write_report(report, out)
    print(markdown(report))
    print(f"wrote {out / 'recon.json'} and {out / 'recon.md'}")
    return 0


def cmd_eval_probe(args: argparse.Namespace) -> int:
    from dashtok.eval.probe import evaluate_probes, markdown, write_report

    corpus = Path(args.corpus)
    if not (corpus / "train.jsonl").is_file():
        raise CliError(f"{corpus}: not a corpus folder (no train.jsonl; build one with dashtok data build)")
    out = Path(args.output)
    _refuse_overwrite([out / "probe.json"], args.force)
    model = _load_model(args.checkpoint, args.device, args.precision)
    report = evaluate_probes(model, corpus, args.max_per_split)
    write_report(report, out)
    print(markdown(report))
    print(f"wrote {out / 'probe.json'} and {out / 'probe.md'}")
    return 0


def cmd_eval_all(args: argparse.Namespace) -> int:
    """Reconstruction on the corpus test split + probes on all splits -> one report.md."""
    from dashtok.eval import probe, recon

    corpus, out = Path(args.corpus), Path(args.output)
    if not (corpus / "test.jsonl").is_file():
        raise CliError(f"{corpus}: not a corpus folder (no test.jsonl; build one with dashtok data build)")
    _refuse_overwrite([out / "report.md"], args.force)
    model = _load_model(args.checkpoint, args.device, args.precision)
    t0 = time.perf_counter()
    rec = recon.evaluate_recon(model, [str(corpus / "test.jsonl")], [], args.max_per_source, plots=out)
    recon.write_report(rec, out)
    prb = probe.evaluate_probes(model, corpus, args.max_per_split)
    probe.write_report(prb, out)
    minutes = (time.perf_counter() - t0) / 60
    header = (f"# dashtok evaluation: {model.model_id}\n\ntrained: {model.training_record.get('trained', False)}; "
              f"corpus {corpus}; {minutes:.1f} min on {torch.get_num_threads()} CPU threads\n\n")
    body = (out / "recon.md").read_text() + "\n" + (out / "probe.md").read_text()
    (out / "report.md").write_text(header + body.replace("# Reconstruction", "## Reconstruction")
                                   .replace("# Linear probes", "## Linear probes"))
    print(header + body)
    print(f"wrote {out / 'report.md'}")
    return 0


def cmd_generate(args: argparse.Namespace) -> int:
    from dashtok.generate.model import TextToAudio
    from dashtok.generate.text import TextEncoder

    out = Path(args.output)
    _refuse_overwrite([out], args.force)
    try:
        gen = TextToAudio.from_pretrained(args.generator)
    except CheckpointError as err:
        raise CliError(str(err)) from None
    tokenizer = _load_codec(args.checkpoint, args.device, args.precision)
    text, mask = TextEncoder(args.device)([args.caption])
    try:
        audio = gen.to(args.device).generate(tokenizer, text, mask, args.seconds, args.steps, args.guidance, args.seed)
    except (CheckpointError, ValueError) as err:
        raise CliError(str(err)) from None
    write_audio(out, audio[0].cpu().numpy(), tokenizer.sample_rate)
    print(f"wrote {out} ({audio.shape[1] / tokenizer.sample_rate:.2f} s, seed {args.seed}, {args.steps} steps, "
          f"guidance {args.guidance})")
    return 0


def _load_enhancer(path: str | None) -> LatentEnhancer:
    from dashtok.generate.enhance import LatentEnhancer

    try:
        return LatentEnhancer.from_pretrained(path)
    except CheckpointError as err:
        raise CliError(str(err)) from None


def cmd_enhance(args: argparse.Namespace) -> int:
    from dashtok.generate.tied import require_tokenizer

    jobs = _jobs(args.inputs, args.output, ".enhanced.wav", (".wav", ".flac"))
    _refuse_overwrite([j.target for j in jobs], args.force)
    enhancer = _load_enhancer(args.enhancer)
    model = _load_model(args.checkpoint, args.device, args.precision)
    try:  # checked once, before any file: a mismatch would fail every one of them
        require_tokenizer(model, enhancer.tokenizer_id, "enhancer")
    except CheckpointError as err:
        raise CliError(f"{args.enhancer}: {err}") from None

    def work(job: Job) -> None:
        audio = load_audio(job.source, model.sample_rate, max_seconds=args.max_seconds)
        write_audio(job.target, enhancer.enhance(model, audio), model.sample_rate)

    return _run(jobs, "enhance", work, args.quiet)


def cmd_eval_gen(args: argparse.Namespace) -> int:
    from dashtok.eval.gen import evaluate_gen, markdown, write_report
    from dashtok.generate.model import TextToAudio
    from dashtok.generate.tied import require_tokenizer

    out = Path(args.output)
    _refuse_overwrite([out / "gen.json"], args.force)
    systems = {}
    for name, generator, codec in args.system:
        try:
            gen = TextToAudio.from_pretrained(None if generator == "default" else generator)
            systems[name] = (gen, _load_codec(None if codec == "default" else codec, "cpu"))
            require_tokenizer(systems[name][1], gen.tokenizer_id, "generator")
        except (CheckpointError, OSError) as err:
            raise CliError(f"system {name}: {err}") from None
    judge = _load_model(None, "cpu")
    report = evaluate_gen(systems, args.corpus, judge, max_clips=args.max_clips, steps=args.steps,
                          guidance=args.guidance, out_dir=out / "samples")
    write_report(report, out)
    print(markdown(report))
    return 0


def cmd_eval_se(args: argparse.Namespace) -> int:
    from dashtok.eval.se import evaluate_se, markdown, write_report

    corpus, out = Path(args.corpus), Path(args.output)
    if not (corpus / "test.jsonl").is_file():
        raise CliError(f"{corpus}: not a corpus folder (no test.jsonl)")
    _refuse_overwrite([out / "se.json"], args.force)
    enhancer = _load_enhancer(args.enhancer)
    model = _load_model(args.checkpoint, args.device, args.precision)
    report = evaluate_se(model, enhancer, corpus, args.max_per_group)
    write_report(report, out)
    print(markdown(report))
    print(f"wrote {out / 'se.json'} and {out / 'se.md'}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    from dashtok import __version__

    parser = argparse.ArgumentParser(prog="dashtok", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"dashtok {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--checkpoint", "-c", help="checkpoint file or directory (default: the bundled model)")
        p.add_argument("--device", default="cpu", help="torch device (default: cpu)")
        p.add_argument("--precision", default="fp32", choices=PRECISIONS,
                       help="inference precision: bf16 (CPU with AVX-512 BF16, GPU), fp16 (GPU), int8 (CPU); "
                            "front end and iSTFT stay float32 (default: fp32)")
        p.add_argument("--force", "-f", action="store_true", help="overwrite existing outputs")
        p.add_argument("--quiet", "-q", action="store_true", help="no progress bar")

    p = sub.add_parser("encode", help="audio files or directory trees -> one latent file per input")
    p.add_argument("inputs", nargs="+", help="audio files and/or directories (searched recursively)")
    p.add_argument("-o", "--output", help="output .safetensors (one input) or directory "
                                          "(default: beside each input)")
    p.add_argument("--semantic", action="store_true", help="write the frozen semantic features alone")
    p.add_argument("--batch-size", type=int, default=1,
                   help="encode files of similar length together, padded (default: 1, one at a time)")
    p.add_argument("--max-batch-seconds", type=float, default=600.0,
                   help="at most this much padded audio per batch (default: 600)")
    p.add_argument("--max-seconds", type=float, default=4 * 3600, help="refuse longer inputs (default: 4 h)")
    common(p)
    p.set_defaults(func=cmd_encode)

    p = sub.add_parser("decode", help="latent files -> 16 kHz WAV/FLAC")
    p.add_argument("inputs", nargs="+", help="latent .safetensors files and/or directories")
    p.add_argument("-o", "--output", help="output .wav/.flac (one input) or directory (default: beside each input)")
    p.add_argument("--any-weights", action="store_true",
                   help="decode latents of another checkpoint of the same architecture")
    common(p)
    p.set_defaults(func=cmd_decode)

    p = sub.add_parser("reconstruct", help="encode + decode; writes latents, audio and metrics.json to a folder")
    p.add_argument("inputs", nargs="+", help="audio files and/or directories")
    p.add_argument("-o", "--output", required=True, help="output directory")
    p.add_argument("--max-seconds", type=float, default=4 * 3600, help="refuse longer inputs (default: 4 h)")
    common(p)
    p.set_defaults(func=cmd_reconstruct)

    p = sub.add_parser("data", help="offline corpora")
    data_sub = p.add_subparsers(dest="data_command", required=True)
    p = data_sub.add_parser("build", help="render a labelled, captioned corpus from Debian's audio packages")
    p.add_argument("output", help="corpus directory")
    p.add_argument("--preset", choices=["tiny", "small", "default"], default="default",
                   help="size preset (tiny: ~2 min of audio for tests; default: ~3 h of synthetic audio + recordings)")
    p.add_argument("--hours", type=float, help="hours of synthetic audio (overrides the preset's)")
    p.add_argument("--seed", type=int, default=0, help="plan seed: the same seed gives the same manifest")
    p.add_argument("--workers", type=int, default=2, help="rendering processes (default: 2)")
    p.add_argument("--resume", action="store_true", help="continue an interrupted build in the same directory")
    p.add_argument("--force", "-f", action="store_true", help="build into a directory that holds a corpus")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress lines")
    p.set_defaults(func=cmd_data_build)

    p = sub.add_parser("eval", help="evaluate a checkpoint")
    eval_sub = p.add_subparsers(dest="eval_command", required=True)
    p = eval_sub.add_parser("recon", help="reconstruction quality per source (mel distance, SI-SDR, PESQ, STOI)")
    p.add_argument("--manifest", action="append", default=[], help="corpus manifest (e.g. data/corpus/test.jsonl)")
    p.add_argument("--folder", action="append", default=[], help="folder of audio files (treated as speech)")
    p.add_argument("--max-per-source", type=int, help="evaluate at most this many clips per source")
    p.add_argument("-o", "--output", default="out/eval", help="output folder (default: out/eval)")
    common(p)
    p.set_defaults(func=cmd_eval_recon)

    p = eval_sub.add_parser("all", help="reconstruction (test split) + probes (all splits) -> report.md with plots")
    p.add_argument("corpus", help="corpus folder (from dashtok data build)")
    p.add_argument("--max-per-source", type=int, default=40, help="reconstruction clips per source (default: 40)")
    p.add_argument("--max-per-split", type=int, help="probe clips per split (default: all)")
    p.add_argument("-o", "--output", default="out/eval", help="output folder (default: out/eval)")
    common(p)
    p.set_defaults(func=cmd_eval_all)

    p = eval_sub.add_parser("gen", help="text-to-audio: Frechet distance and per-caption label accuracy of "
                                         "generated clips, one row per system")
    p.add_argument("corpus", help="corpus folder (dashtok data build)")
    p.add_argument("--system", nargs=3, action="append", required=True, metavar=("NAME", "GENERATOR", "CODEC"),
                   help="a generator checkpoint and the tokenizer/VAE checkpoint it decodes with ('default': the "
                        "bundled generator / tokenizer); repeat to compare systems")
    p.add_argument("-o", "--output", default="out/eval_gen", help="output folder (gen.json, report.md, samples)")
    p.add_argument("--max-clips", type=int, default=160, help="test captions used (spread over the split)")
    p.add_argument("--steps", type=int, default=32)
    p.add_argument("--guidance", type=float, default=3.0)
    p.add_argument("--force", "-f", action="store_true", help="overwrite existing outputs")
    p.set_defaults(func=cmd_eval_gen)

    p = eval_sub.add_parser("se", help="speech enhancement on the test mixtures: noisy vs Wiener vs dashtok")
    p.add_argument("corpus", help="corpus folder (from dashtok data build)")
    p.add_argument("--enhancer", "-e", help="enhancer checkpoint (default: the bundled enhancer)")
    p.add_argument("--max-per-group", type=int, help="at most this many mixtures per group")
    p.add_argument("-o", "--output", default="out/eval", help="output folder (default: out/eval)")
    common(p)
    p.set_defaults(func=cmd_eval_se)

    p = eval_sub.add_parser("probe", help="linear probes + kNN: log-mel vs semantic vs latents, every corpus task")
    p.add_argument("corpus", help="corpus folder (from dashtok data build)")
    p.add_argument("--max-per-split", type=int, help="use at most this many clips per split")
    p.add_argument("-o", "--output", default="out/eval", help="output folder (default: out/eval)")
    common(p)
    p.set_defaults(func=cmd_eval_probe)

    p = sub.add_parser("generate", help="text-to-audio: sample dashtok latents from a caption and decode them")
    p.add_argument("caption", help='e.g. "a violin plays a slow melody"')
    p.add_argument("--seconds", type=float, default=5.0, help="duration (default: 5)")
    p.add_argument("-o", "--output", required=True, help="output .wav/.flac")
    p.add_argument("--generator", "-g", help="generator checkpoint (from dashtok train, stage flow; default: the "
                                           "bundled generator, for the bundled default tokenizer)")
    p.add_argument("--steps", type=int, default=32, help="Euler steps (default: 32)")
    p.add_argument("--guidance", type=float, default=3.0, help="classifier-free guidance scale (default: 3)")
    p.add_argument("--seed", type=int, default=0, help="sampling seed (default: 0)")
    common(p)
    p.set_defaults(func=cmd_generate)

    p = sub.add_parser("enhance", help="speech enhancement in latent space: noisy files -> enhanced files")
    p.add_argument("inputs", nargs="+", help="noisy audio files and/or directories")
    p.add_argument("-o", "--output", help="output .wav (one input) or directory (default: beside each input)")
    p.add_argument("--enhancer", "-e", help="enhancer checkpoint (from dashtok train, stage enhance; default: the "
                                          "bundled enhancer, for the bundled default tokenizer)")
    p.add_argument("--max-seconds", type=float, default=4 * 3600, help="refuse longer inputs (default: 4 h)")
    common(p)
    p.set_defaults(func=cmd_enhance)

    sub.add_parser("train", help="run a training stage: dashtok train CONFIG.toml [--set key=value ...]",
                   add_help=False)

    p = sub.add_parser("bench", help="speed and memory of encode/decode per preset, vs upstream and the FLOP floor")
    p.add_argument("-o", "--output", default="out/bench", help="folder for bench.json and bench.md")
    p.add_argument("--presets", nargs="+", default=["small", "base", "release"],
                   choices=["tiny", "small", "base", "release"], help="model shapes (random weights)")
    p.add_argument("--precision", nargs="+", default=["fp32"], choices=PRECISIONS)
    p.add_argument("--seconds", nargs="+", type=float, default=[10.0, 600.0], help="input durations")
    p.add_argument("--batch", nargs="+", type=int, default=[1, 4], help="batch sizes")
    p.add_argument("--max-batched-seconds", type=float, default=60.0,
                   help="run batch sizes > 1 only on inputs up to this long (default: 60)")
    p.add_argument("--repeats", type=int, default=3, help="timed runs per case up to 60 s (median; longer: 1)")
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--upstream-python", help="a Python interpreter with the upstream dasheng package and "
                                             "torchaudio: times upstream's encoder on the same weights and input")
    p.add_argument("--official-code", help="a copy of audiohacking/audiogen.cpp (its reference/ folder is the "
                                           "official DashengTokenizer remote code): with --upstream-python (which "
                                           "then also needs transformers and einops), times the official encode and "
                                           "decode on the same weights and input, and their peak memory")
    p.add_argument("--upstream-impls", nargs="*", default=["upstream", "dashtok"], choices=["upstream", "dashtok"],
                   help="encoder comparisons under --upstream-python: upstream dasheng, and/or our encoder code on "
                        "that interpreter (default: both; none: only the official comparison)")
    p.set_defaults(func=cmd_bench)

    p = sub.add_parser("export-onnx", help="export the decoder (latents -> audio) to ONNX and check it with "
                                           "ONNX Runtime")
    p.add_argument("-o", "--output", required=True, help="output .onnx file")
    p.add_argument("--checkpoint", "-c", help="checkpoint file or directory (default: the bundled model)")
    p.add_argument("--force", "-f", action="store_true", help="overwrite an existing file")
    p.add_argument("--no-check", action="store_true", help="skip the ONNX Runtime comparison")
    p.set_defaults(func=cmd_export_onnx)

    p = sub.add_parser("convert", help="official DashengTokenizer layout <-> dashtok checkpoint, both ways")
    p.add_argument("input", help="an official directory (config.json + model.safetensors), its hub cache folder, a "
                                 "hub id such as mispeech/dashengtokenizer, or a dashtok checkpoint")
    p.add_argument("output", nargs="?", help="a dashtok .safetensors file, or a directory for the official layout "
                                             "(default: beside the input)")
    p.add_argument("--to", choices=["dashtok", "official"],
                   help="output layout (default: the other one: official -> dashtok, dashtok -> official)")
    p.add_argument("--force", "-f", action="store_true", help="overwrite existing outputs")
    p.set_defaults(func=cmd_convert)

    p = sub.add_parser("info", help="describe a checkpoint (default: the bundled model)")
    p.add_argument("checkpoint", nargs="?", help="dashtok checkpoint file or directory, official directory or hub id")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_info)
    return parser


def main(argv: list[str] | None = None) -> int:
    raw = sys.argv[1:] if argv is None else argv
    if raw[:1] == ["train"]:  # the training stages have their own parser (python -m dashtok.train)
        from dashtok.train.__main__ import main as train_main

        return train_main(raw[1:])
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except CliError as err:
        fail(str(err))
    except KeyboardInterrupt:
        fail("interrupted", code=130)


if __name__ == "__main__":
    raise SystemExit(main())
