"""``dashtok`` command line: the core's commands (encode, decode, reconstruct, convert, info, export-onnx) and the
parser skeleton. Each feature package owns its subcommands (``data/cli.py``, ``eval/cli.py``, ``generate/cli.py``,
``bench/cli.py``, ``train/__main__.py``); this module, the program's entry point, puts them together, so it is
the one place that imports them. What subcommands share is in ``cli_common.py``.

Never overwrites without ``--force``; defaults to the CPU; every error is one line on stderr and a non-zero exit.
In a multi-file run a bad file is reported and skipped, and the others still complete.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

from dashtok.atomic import atomic_write
from dashtok.audio_io import audio_writer, fit_length
from dashtok.checkpoint import CheckpointError, default_checkpoint_path, read_metadata, resolve_checkpoint
from dashtok.cli_common import (
    FILE_ERRORS,
    CliError,
    Job,
    Parser,
    Progress,
    fail,
    jobs_for,
    load_model,
    model_options,
    non_negative_int,
    positive_float,
    positive_int,
    refuse_overwrite,
    report_clipping,
    report_file_error,
    run_jobs,
    skip_finished,
    summarise_failures,
    write_output,
)
from dashtok.encode_corpus import InputError, rank_and_world
from dashtok.encode_files import (
    encode_batch,
    encode_file,
    encode_file_to_file,
    file_seconds,
    length_buckets,
    load_for_encoding,
)
from dashtok.latents_io import (
    LatentFileError,
    check_compatible,
    read_latents,
    write_latents,
)
from dashtok.streaming import StreamingDecoder


def cmd_encode(args: argparse.Namespace) -> int:
    if args.shards:
        return encode_shards(args)
    try:
        rank, world = rank_and_world()
    except InputError as err:
        raise CliError(str(err)) from None
    # under torchrun each process takes every world-th file (of all, so that what another process has already
    # written does not shift the shares)
    jobs = skip_finished(jobs_for(args.inputs, args.output, ".safetensors", (".safetensors",))[rank::world],
                         args.skip_existing)
    refuse_overwrite([j.target for j in jobs], args.force)
    model = load_model(args.checkpoint, device_of_rank(args.device, world), args.precision)

    if args.batch_size <= 1:
        def work(job: Job) -> None:
            encode_file_to_file(model, job.source, job.target, args.max_seconds, args.semantic)

        return run_jobs(jobs, "encode", work, args.quiet)
    progress = Progress(len(jobs), "encode", enabled=not args.quiet)
    failed = 0
    buckets = length_buckets([file_seconds(j.source) for j in jobs], args.batch_size, args.max_batch_seconds)
    for indices in buckets:
        group = [jobs[i] for i in indices]
        loaded: list[tuple[Job, np.ndarray]] = []
        for job in group:  # a bad file is reported by name and leaves its batch; the others go on
            try:
                loaded.append((job, load_for_encoding(model, job.source, args.max_seconds)))
            except FILE_ERRORS as err:
                report_file_error(job.source, err, progress.done - failed)
                failed += 1
                progress.step(str(job.source))
        if not loaded:
            continue
        files = encode_batch(model, [(j.source, a) for j, a in loaded], args.semantic)
        for (job, _), lf in zip(loaded, files, strict=True):
            try:
                if isinstance(lf, Exception):
                    raise lf
                write_latents(job.target, lf)
            except FILE_ERRORS as err:
                report_file_error(job.source, err, progress.done - failed)
                failed += 1
            progress.step(str(job.source))
    return summarise_failures(failed, len(jobs))


def device_of_rank(device: str, world: int) -> str:
    """Under torchrun, ``--device cuda`` means this process's own GPU (LOCAL_RANK)."""
    if world > 1 and device == "cuda":
        return f"cuda:{int(os.environ.get('LOCAL_RANK', '0'))}"
    return device


def encode_shards(args: argparse.Namespace) -> int:
    """``dashtok encode ... --shards DIR``: the corpus as latent shards (``dashtok.encode_corpus``)."""
    from dashtok.encode_corpus import (
        CorpusEncoder,
        InputError,
        barrier,
        check_directory,
        check_rendezvous,
        corpus_items,
        summary_line,
    )

    if args.output or args.skip_existing:
        raise CliError("--shards writes the shard directory it names: leave out -o and --skip-existing (a re-run "
                       "keeps finished shards by itself)")
    try:
        rank, world = rank_and_world()
        check_rendezvous(world)
        items = corpus_items(args.inputs)
    except InputError as err:
        raise CliError(str(err)) from None
    directory = Path(args.shards)
    if directory.exists() and not directory.is_dir():
        raise CliError(f"--shards {directory}: a file; --shards names the folder the shards go to")
    model = load_model(args.checkpoint, device_of_rank(args.device, world), args.precision)
    enc = CorpusEncoder(model, items, directory, shard_size=args.shard_size, batch_size=args.batch_size,
                        max_batch_seconds=args.max_batch_seconds, max_seconds=args.max_seconds,
                        workers=args.workers, semantic=args.semantic, quiet=args.quiet)
    try:
        check_directory(directory, enc.model_record, args.force)
    except InputError as err:
        raise CliError(str(err)) from None
    directory.mkdir(parents=True, exist_ok=True)
    jobs = enc.todo(rank, world, args.force)
    mine = len(range(rank, enc.num_shards, world))
    if not args.quiet:
        print(f"dashtok: {len(items)} inputs in {enc.num_shards} shards of {args.shard_size}; process {rank} of "
              f"{world} makes {len(jobs)} of its {mine} (the others are finished)", flush=True)
    if jobs:
        enc.start()

    def report(source: Path, err: BaseException, done: int) -> None:  # a re-run goes on: no --skip-existing here
        report_file_error(source, err, done, resumable=False)

    made, _, failures = enc.run(jobs, report)
    barrier(world)
    index = enc.finish(args.inputs) if rank == 0 else None
    if not args.quiet:
        print(summary_line(index, directory, made, rank), flush=True)
    return 1 if (index["failed"] if index is not None else failures) else 0


def cmd_decode(args: argparse.Namespace) -> int:
    # beside the latents the audio is NAME.decoded.wav: NAME.wav is most often the recording they were encoded from
    suffix = ".wav" if args.output else ".decoded.wav"
    jobs = skip_finished(jobs_for(args.inputs, args.output, suffix, (".wav", ".flac"), find=False),
                         args.skip_existing)
    refuse_overwrite([j.target for j in jobs], args.force)
    model = load_model(args.checkpoint, args.device, args.precision)

    def work(job: Job) -> None:
        lf = read_latents(job.source)
        check_compatible(lf, model.model_id, model.config.hash, model.latent_dim, str(job.source),
                         any_weights=args.any_weights, latent_id=model.latent_id)
        if lf.sample_rate != model.sample_rate:
            raise LatentFileError(f"{job.source}: latents are for {lf.sample_rate} Hz, model is {model.sample_rate}")
        z, lengths = lf.batched()
        if z.shape[0] == 1 and not args.rescale:  # one stream: decoded window by window straight into the file
            stream = StreamingDecoder(model, block_frames=model.decode_chunk_frames)
            with audio_writer(job.target, model.sample_rate, lf.original_num_samples[0]) as out:
                for s in range(0, z.shape[1], model.decode_chunk_frames):
                    out.write(stream.push(z[:, s : s + model.decode_chunk_frames])[0].cpu().numpy())
                out.write(stream.flush()[0].cpu().numpy())
            report_clipping(job.target, out.clipped, out.peak)
            return
        # a file of several items writes NAME_0.wav, NAME_1.wav, ...: outputs the up-front check could not know of
        targets = [job.target] if z.shape[0] == 1 else \
            [job.target.with_name(f"{job.target.stem}_{i}{job.target.suffix}") for i in range(z.shape[0])]
        existing = [t for t in targets if t.exists()]
        if existing and not args.force:
            raise LatentFileError(f"{existing[0]} already exists (item outputs of {job.source}); pass --force to "
                                  f"overwrite")
        dec = model.decode(z, lengths)
        for i, (n, target) in enumerate(zip(lf.original_num_samples, targets, strict=True)):
            audio = fit_length(dec.audio[i, : int(dec.lengths[i])].cpu().numpy(), n)
            write_output(target, audio, model.sample_rate, args.rescale)

    return run_jobs(jobs, "decode", work, args.quiet)


def cmd_reconstruct(args: argparse.Namespace) -> int:
    from dashtok import metrics

    out = Path(args.output)
    jobs = jobs_for(args.inputs, str(out), ".wav", ())
    report_path = out / "metrics.json"
    targets = [j.target for j in jobs] + [j.target.with_suffix(".safetensors") for j in jobs] + [report_path]
    refuse_overwrite(targets, args.force)
    model = load_model(args.checkpoint, args.device, args.precision)
    rows: list[dict[str, object]] = []

    def write_report() -> None:  # after every file: a crash later loses no finished file's scores
        report = {"model_id": model.model_id, "trained": bool(model.training_record.get("trained", False)),
                  "device": args.device, "torch_threads": torch.get_num_threads(), "files": rows}
        with atomic_write(report_path) as tmp:
            tmp.write_text(json.dumps(report, indent=2) + "\n")

    def work(job: Job) -> None:
        t0 = time.perf_counter()
        audio, lf = encode_file(model, job.source, args.max_seconds)
        t1 = time.perf_counter()
        dec = model.decode(lf.latents)
        recon = fit_length(dec.audio[0].cpu().numpy(), len(audio))
        t2 = time.perf_counter()
        seconds = len(audio) / model.sample_rate
        speech = metrics.speech_scores(audio, recon, model.sample_rate) if args.domain == "speech" else {}
        row = {
            "input": str(job.source), "reconstruction": str(job.target),
            "latents": str(job.target.with_suffix(".safetensors")), "seconds": round(seconds, 3),
            "latent_frames": int(lf.latents.shape[0]), "latent_dim": model.latent_dim,
            "encode_rtf": (t1 - t0) / seconds, "decode_rtf": (t2 - t1) / seconds,
            "mel_distance": float(metrics.mel_distance(audio, recon)[0]),
            "si_sdr_db": float(metrics.si_sdr(audio, recon)[0]),
            "domain": args.domain, "pesq_wb": speech.get("pesq_wb"), "stoi": speech.get("stoi"),
        }  # PESQ and STOI are speech measures: None on music and sounds, and where they refuse (silence)
        # scored before anything is written: a file that fails leaves no outputs behind
        write_latents(job.target.with_suffix(".safetensors"), lf)
        write_output(job.target, recon, model.sample_rate, args.rescale)
        rows.append(row)
        write_report()
        if not args.quiet:
            r = rows[-1]
            pesq = "n/a" if r["pesq_wb"] is None else f"{r['pesq_wb']:.2f}"
            stoi_s = "n/a" if r["stoi"] is None else f"{r['stoi']:.3f}"
            print(f"{r['input']}: {r['seconds']:.2f} s -> {r['latent_frames']} x {r['latent_dim']} latents; "
                  f"mel distance {r['mel_distance']:.3f}, SI-SDR {r['si_sdr_db']:.1f} dB, PESQ-WB {pesq}, "
                  f"STOI {stoi_s}; encode RTF {r['encode_rtf']:.3f}, decode RTF {r['decode_rtf']:.3f}", flush=True)

    code = run_jobs(jobs, "reconstruct", work, args.quiet, resumable=False)
    write_report()
    if not model.training_record.get("trained", False):
        print("note: this model is UNTRAINED (random weights); its reconstructions are noise", file=sys.stderr)
    print(f"wrote {report_path}")
    return code


def describe_other_file(path: Path, meta: dict[str, str]) -> dict[str, object] | None:
    """What ``info`` says of a file the project writes that is not a tokenizer: a latent file, or a generator,
    enhancer or VAE-baseline checkpoint (None for anything else)."""
    from safetensors import safe_open

    from dashtok.latents_io import LATENT_FORMAT

    fmt = meta.get("format", "")
    size = round(path.stat().st_size / 2**20, 2)
    if fmt == LATENT_FORMAT:
        lf = read_latents(path)  # validated: a damaged or old file is one clear error
        _, lengths = lf.batched()
        seconds = [round(n / lf.sample_rate, 3) for n in lf.original_num_samples]
        return {"file": str(path), "size_mb": size, "format": f"{fmt} version {meta.get('version')}",
                "kind": lf.kind, "source": lf.source or None, "model_id": lf.model_id,
                "latent_id": lf.latent_id or None, "config_hash": lf.config_hash,
                "shape": list(lf.latents.shape), "items": len(lf.original_num_samples),
                "frames": lengths.tolist(), "latent_dim": lf.latent_dim, "frame_rate": lf.frame_rate,
                "sample_rate": lf.sample_rate, "seconds": seconds,
                "read_in_python": "from dashtok.latents_io import read_latents; lf = read_latents(path); "
                                  "z, lengths = lf.batched()  # (B, N, D), (B,)"}
    kinds = {"dashtok-generator/": "text-to-audio generator", "dashtok-enhancer/": "latent speech enhancer",
             "dashtok-vae/": "mel-VAE baseline codec"}
    kind = next((v for k, v in kinds.items() if fmt.startswith(k)), None)
    if kind is None:
        return None
    with safe_open(str(path), framework="pt") as f:
        parameters = sum(int(np.prod(f.get_slice(k).get_shape())) for k in f.keys())
    info: dict[str, object] = {"file": str(path), "size_mb": size, "format": fmt, "kind": kind,
                               "parameters": parameters}
    for key in ("tokenizer_id", "latent_id"):
        if meta.get(key):
            info[key] = meta[key]
    for key in ("config", "training"):
        if key in meta:
            info[key] = json.loads(meta[key])
    return info


def print_info(info: dict[str, object]) -> None:
    """One line per field; nested records (config, training) as indented JSON, not a one-line dict."""
    for key, value in info.items():
        if isinstance(value, dict) and value:
            print(f"{key}:")
            print("  " + json.dumps(value, indent=2, sort_keys=True).replace("\n", "\n  "))
        else:
            print(f"{key:16s} {value}")


def cmd_info(args: argparse.Namespace) -> int:
    from dashtok.release import WEIGHTS_FILE, official_dir

    if args.checkpoint and Path(args.checkpoint).is_file():  # a latent, generator or enhancer file, maybe
        try:
            other = describe_other_file(Path(args.checkpoint), read_metadata(args.checkpoint))
        except (CheckpointError, LatentFileError) as err:
            raise CliError(str(err)) from None
        if other is not None:
            if args.json:
                print(json.dumps(other, indent=2))
            else:
                print_info(other)
            return 0
    model = load_model(args.checkpoint, "cpu")
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
        "latent_id": model.latent_id, "config_hash": cfg.hash, "format": meta.get("format"),
        "dashtok_version": meta.get("dashtok_version"),
        "sample_rate": model.sample_rate, "frame_rate": model.frame_rate, "hop_length": model.hop_length,
        "latent_dim": model.latent_dim,
        "injection": (f"{cfg.injection.front_end} "
                      f"({cfg.injection.n_mels if cfg.acoustic_front_end else cfg.frontend.n_mels} x "
                      f"{cfg.encoder.patch_frames} patch)") if cfg.injection.enabled else "none (semantic alone)",
        "encoder": f"Dasheng {cfg.encoder.embed_dim}-d, {cfg.encoder.depth} layers, {cfg.encoder.num_heads} heads",
        "decoder": f"{cfg.decoder.num_blocks} ConvNeXt blocks, {cfg.decoder.dim}-d "
                   f"(intermediate {cfg.decoder.intermediate_dim}), iSTFT n_fft {cfg.decoder.n_fft} "
                   f"hop {cfg.decoder.hop_length}, phase head '{cfg.decoder.phase}'",
        "parameters": counts, "trained": bool(record.get("trained", False)), "training": record,
    }
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    print_info(info)
    if not info["trained"]:
        print("WARNING: this checkpoint is UNTRAINED (random weights): a placeholder, not a usable tokenizer")
    return 0


def cmd_convert(args: argparse.Namespace) -> int:
    from dashtok.release import CONFIG_FILE, WEIGHTS_FILE, official_dir

    try:
        source = official_dir(args.input)
    except CheckpointError as err:
        raise CliError(str(err)) from None
    if args.to:
        to = args.to
    elif args.output:  # the output names its layout: one .safetensors file, or a directory
        to = "dashtok" if Path(args.output).suffix == ".safetensors" else "official"
    else:
        to = "dashtok" if source is not None else "official"
    if args.output:
        out = Path(args.output)
    elif to == "dashtok":  # a directory (or its weights file) -> <directory>.safetensors beside it; a hub id or a
        src = Path(args.input)  # hub cache folder -> ./<name>.safetensors here (never inside the cache)
        if source is not None and src.exists() and source in (src, src.parent):
            out = source.with_name(f"{source.name}.safetensors")
        else:
            out = Path(f"{str(args.input).rstrip('/').split('/')[-1].split('--')[-1]}.safetensors")
    else:  # x.safetensors -> x_official/ beside it
        src = Path(args.input)
        out = src.with_name(f"{src.stem if src.suffix == '.safetensors' else src.name}_official")
    if to == "dashtok" and out.suffix != ".safetensors":
        raise CliError(f"{out}: a dashtok checkpoint is one .safetensors file")
    targets = [out / CONFIG_FILE, out / WEIGHTS_FILE] if to == "official" else [out]
    refuse_overwrite(targets, args.force)
    model = load_model(args.input, "cpu")
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


def cmd_export_onnx(args: argparse.Namespace) -> int:
    from dashtok.export import check_onnx_decoder, export_decoder_onnx

    out = Path(args.output)
    if out.suffix.lower() != ".onnx" or out.is_dir():
        raise CliError(f"{out}: the output is one .onnx file")
    refuse_overwrite([out], args.force)
    model = load_model(args.checkpoint, "cpu")
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


def build_parser() -> argparse.ArgumentParser:
    from dashtok import __version__

    parser = Parser(prog="dashtok", description="DashengTokenizer: 16 kHz audio to continuous 25 Hz latents and back "
                                                "(encode, decode, reconstruct), and training, evaluation, generation "
                                                "and enhancement on them. Every error is one line on stderr.")
    parser.add_argument("--version", action="version", version=f"dashtok {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("encode", help="audio files or directory trees -> one latent file per input")
    p.add_argument("inputs", nargs="+", help="audio files, directories (searched recursively) and manifests "
                                             "(.jsonl or .csv rows with a path, optionally caption, labels, id)")
    p.add_argument("-o", "--output", help="output .safetensors (one input) or directory "
                                          "(default: NAME.safetensors beside each NAME.wav)")
    p.add_argument("--semantic", action="store_true", help="write the frozen semantic features alone")
    p.add_argument("--batch-size", type=positive_int, default=1,
                   help="encode files of similar length together, padded (default: 1, one at a time)")
    p.add_argument("--max-batch-seconds", type=positive_float, default=600.0,
                   help="at most this much padded audio per batch (default: 600)")
    p.add_argument("--max-seconds", type=positive_float, default=4 * 3600, help="refuse longer inputs (default: 4 h)")
    p.add_argument("--skip-existing", action="store_true",
                   help="leave inputs whose output exists (a run stopped part way goes on where it was)")
    p.add_argument("--shards", metavar="DIR",
                   help="write the latents as WebDataset-style tar shards with an index to DIR instead of one file "
                        "per input; a re-run keeps finished shards; under torchrun each process makes its share")
    p.add_argument("--shard-size", type=positive_int, default=128, help="inputs per shard (default: 128)")
    p.add_argument("--workers", type=non_negative_int, default=2,
                   help="with --shards: processes reading and resampling audio ahead of the model (default: 2; 0 "
                        "reads in the main process)")
    model_options(p)
    p.set_defaults(func=cmd_encode)

    p = sub.add_parser("decode", help="latent files -> 16 kHz WAV/FLAC")
    p.add_argument("inputs", nargs="+", help="latent .safetensors files and/or directories")
    p.add_argument("-o", "--output", help="output .wav/.flac (one input) or directory (default: NAME.decoded.wav "
                                          "beside each NAME.safetensors)")
    p.add_argument("--any-weights", action="store_true",
                   help="decode latents of another checkpoint of the same architecture")
    p.add_argument("--rescale", action="store_true",
                   help="scale an output that would clip to a peak of 0.99 (holds the whole decoded file in memory; "
                        "default: clip, with a warning)")
    p.add_argument("--skip-existing", action="store_true",
                   help="leave inputs whose output exists (a run stopped part way goes on where it was)")
    model_options(p)
    p.set_defaults(func=cmd_decode)

    p = sub.add_parser("reconstruct", help="encode + decode; writes latents, audio and metrics.json to a folder")
    p.add_argument("inputs", nargs="+", help="audio files and/or directories")
    p.add_argument("-o", "--output", required=True, help="output directory")
    p.add_argument("--max-seconds", type=positive_float, default=4 * 3600, help="refuse longer inputs (default: 4 h)")
    p.add_argument("--rescale", action="store_true",
                   help="scale a reconstruction that would clip to a peak of 0.99 (default: clip, with a warning)")
    p.add_argument("--domain", choices=("speech", "music", "sound"), default="speech",
                   help="what the inputs are: PESQ and STOI are scored on speech only (default: speech)")
    model_options(p)
    p.set_defaults(func=cmd_reconstruct)

    sub.add_parser("train", help="run a training stage: dashtok train CONFIG.toml [--set key=value ...]",
                   add_help=False)
    # The feature packages own their subcommands; this entry point only puts them together.
    from dashtok.bench.cli import add_commands as bench_commands
    from dashtok.data.cli import add_commands as data_commands
    from dashtok.eval.cli import add_commands as eval_commands
    from dashtok.generate.cli import add_commands as generate_commands

    for register in (data_commands, eval_commands, generate_commands, bench_commands):
        register(sub)

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
                   help="output layout (default: as OUTPUT names it, a .safetensors file or a directory; without "
                        "OUTPUT the other one: official -> dashtok, dashtok -> official)")
    p.add_argument("--force", "-f", action="store_true", help="overwrite existing outputs")
    p.set_defaults(func=cmd_convert)

    p = sub.add_parser("info", help="describe a checkpoint, latent, generator or enhancer file (default: the bundled "
                                    "model)")
    p.add_argument("checkpoint", nargs="?", help="dashtok checkpoint file or directory, official directory, hub id, "
                                                 "latent file, generator or enhancer checkpoint")
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
    except OSError as err:  # e.g. an output directory that cannot be written
        fail(str(err))
    except KeyboardInterrupt:
        fail("interrupted", code=130)


if __name__ == "__main__":
    raise SystemExit(main())
