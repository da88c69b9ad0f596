"""``dashtok generate`` and ``dashtok enhance``: the generator and the enhancer on the latents."""

from __future__ import annotations

import argparse
from pathlib import Path

from dashtok.checkpoint import CheckpointError
from dashtok.cli_common import (
    CliError,
    Job,
    check_audio_output,
    check_device,
    finite_float,
    jobs_for,
    load_codec,
    load_model,
    model_options,
    positive_float,
    refuse_overwrite,
    run_jobs,
    skip_finished,
    write_output,
)
from dashtok.encode_files import load_for_encoding
from dashtok.generate.enhance import RENDERS, LatentEnhancer
from dashtok.generate.model import MAX_SECONDS


def cmd_generate(args: argparse.Namespace) -> int:
    from dashtok.generate.model import TextToAudio
    from dashtok.generate.text import TextEncoder

    out = Path(args.output)  # everything that can be wrong with the arguments is said before any model loads
    if not 0 < args.seconds <= MAX_SECONDS:
        raise CliError(f"--seconds {args.seconds:g}: must be in (0, {MAX_SECONDS:g}]")
    if args.steps < 1:
        raise CliError(f"--steps {args.steps}: must be at least 1")
    check_audio_output(str(out), (".wav", ".flac"))
    if out.suffix.lower() not in (".wav", ".flac"):
        raise CliError(f"{out}: the output is a .wav or .flac file")
    check_device(args.device)
    refuse_overwrite([out], args.force)
    try:
        gen = TextToAudio.from_pretrained(args.generator)
    except CheckpointError as err:
        raise CliError(str(err)) from None
    tokenizer = load_codec(args.checkpoint, args.device, args.precision)
    text, mask = TextEncoder(args.device)([args.caption])
    try:
        audio = gen.to(args.device).generate(tokenizer, text, mask, args.seconds, args.steps, args.guidance, args.seed)
    except (CheckpointError, ValueError) as err:
        raise CliError(str(err)) from None
    write_output(out, audio[0].cpu().numpy(), tokenizer.sample_rate, rescale=False)
    print(f"wrote {out} ({audio.shape[1] / tokenizer.sample_rate:.2f} s, seed {args.seed}, {args.steps} steps, "
          f"guidance {args.guidance})")
    return 0


def load_enhancer(path: str | None) -> LatentEnhancer:
    try:
        return LatentEnhancer.from_pretrained(path)
    except CheckpointError as err:
        raise CliError(str(err)) from None


def cmd_enhance(args: argparse.Namespace) -> int:
    from dashtok.generate.tied import require_tokenizer

    jobs = skip_finished(jobs_for(args.inputs, args.output, ".enhanced.wav", (".wav", ".flac")), args.skip_existing)
    refuse_overwrite([j.target for j in jobs], args.force)
    check_device(args.device)
    enhancer = load_enhancer(args.enhancer)
    model = load_model(args.checkpoint, args.device, args.precision)
    try:  # checked once, before any file: a mismatch would fail every one of them
        require_tokenizer(model, enhancer.tie, "enhancer")
    except CheckpointError as err:
        raise CliError(f"{args.enhancer}: {err}") from None

    def work(job: Job) -> None:
        audio = load_for_encoding(model, job.source, args.max_seconds)  # a too-short file is named as encode does
        write_output(job.target, enhancer.enhance(model, audio, args.render), model.sample_rate, rescale=False)

    return run_jobs(jobs, "enhance", work, args.quiet)


def add_commands(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Register this package's subcommands on ``dashtok``'s parser."""
    p = sub.add_parser("generate", help="text-to-audio: sample dashtok latents from a caption and decode them")
    p.add_argument("caption", help='e.g. "a violin plays a slow melody"')
    p.add_argument("--seconds", type=float, default=5.0, help=f"duration, at most {MAX_SECONDS:g} (default: 5)")
    p.add_argument("-o", "--output", required=True, help="output .wav/.flac")
    p.add_argument("--generator", "-g", help="generator checkpoint (from dashtok train, stage flow; default: the "
                                           "bundled generator, for the bundled default tokenizer)")
    p.add_argument("--steps", type=int, default=32, help="Euler steps (default: 32)")
    p.add_argument("--guidance", type=finite_float, default=3.0, help="classifier-free guidance scale (default: 3)")
    p.add_argument("--seed", type=int, default=0, help="sampling seed (default: 0)")
    model_options(p)
    p.set_defaults(func=cmd_generate)

    p = sub.add_parser("enhance", help="speech enhancement in latent space: noisy files -> enhanced files")
    p.add_argument("inputs", nargs="+", help="noisy audio files and/or directories")
    p.add_argument("-o", "--output", help="output .wav (one input) or directory (default: NAME.enhanced.wav beside "
                                          "each NAME.wav)")
    p.add_argument("--enhancer", "-e", help="enhancer checkpoint (from dashtok train, stage enhance; default: the "
                                          "bundled enhancer, for the bundled default tokenizer)")
    p.add_argument("--render", choices=RENDERS, default="mask",
                   help="mask (default): the enhanced latents' decoded magnitude as a gain on the noisy input (its "
                        "phase); decoder: the decoded audio itself")
    p.add_argument("--max-seconds", type=positive_float, default=4 * 3600, help="refuse longer inputs (default: 4 h)")
    p.add_argument("--skip-existing", action="store_true",
                   help="leave inputs whose output exists (a run stopped part way goes on where it was)")
    model_options(p)
    p.set_defaults(func=cmd_enhance)
