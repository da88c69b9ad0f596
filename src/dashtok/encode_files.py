"""Encoding audio files into latent files: one file at a time, streamed file to file in bounded memory
(``Tokenizer.encode_stream`` over a ``long_audio.SampleFile``), or several files of similar length as one padded
batch."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from dashtok.audio_io import AudioError, load_audio
from dashtok.latents_io import LatentFile, LatentFileError, latent_writer
from dashtok.long_audio import SampleFile
from dashtok.tokenizer import Tokenizer

# What a file's failure can raise (an environment fault among them: cli_common.environment_fault tells them apart)
FILE_ERRORS = (AudioError, LatentFileError, ValueError, RuntimeError, MemoryError, OSError)
STREAM_CHUNKS = 4  # encoder chunks (~10 s each) per step of file-to-file encoding: memory flat from 1 minute on


def check_long_enough(model: Tokenizer, path: Path, num_samples: int) -> None:
    """A file must give at least one latent frame; the error names it (the API's check names only an item)."""
    if num_samples < model.min_num_samples:
        raise AudioError(f"{path}: {num_samples} samples is shorter than one latent frame "
                         f"({model.min_num_samples} samples at {model.sample_rate} Hz)")


def load_for_encoding(model: Tokenizer, path: Path, max_seconds: float | None) -> np.ndarray:
    audio = load_audio(path, model.sample_rate, max_seconds=max_seconds)
    check_long_enough(model, path, len(audio))
    return audio


def latent_files(model: Tokenizer, items: list[tuple[Path, np.ndarray]], semantic: bool) -> list[LatentFile]:
    """Encode clips as one padded batch (equal to encoding them one at a time) -> one latent file each."""
    n = max(len(a) for _, a in items)
    batch = np.stack([np.pad(a, (0, n - len(a))) for _, a in items])
    enc = model.encode(batch, lengths=np.array([len(a) for _, a in items]), return_semantic=semantic)
    features = enc.semantic if semantic and enc.semantic is not None else enc.latents
    return [LatentFile(latents=features[i, : int(enc.lengths[i])].cpu(), sample_rate=model.sample_rate,
                       frame_rate=model.frame_rate, original_num_samples=[len(audio)], model_id=model.model_id,
                       latent_id=model.latent_id, config_hash=model.config.hash,
                       kind="semantic" if semantic else "latents", source=str(path))
            for i, (path, audio) in enumerate(items)]


def encode_file(model: Tokenizer, path: Path, max_seconds: float | None,
                 semantic: bool = False) -> tuple[np.ndarray, LatentFile]:
    audio = load_for_encoding(model, path, max_seconds)
    return audio, latent_files(model, [(path, audio)], semantic)[0]


def encode_file_to_file(model: Tokenizer, source: Path, target: Path, max_seconds: float | None,
                        semantic: bool = False) -> None:
    """File to file in bounded memory: decoded once into a temporary file, encoded group of chunks by group of
    chunks, written frame block by frame block (equal to encoding the whole file, ``dashtok.long_audio``)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with SampleFile.from_audio_file(source, model.sample_rate, max_seconds, directory=target.parent) as samples:
        n = samples.num_samples
        check_long_enough(model, source, n)
        meta = LatentFile(latents=torch.zeros(0, model.latent_dim), sample_rate=model.sample_rate,
                          frame_rate=model.frame_rate, original_num_samples=[n], model_id=model.model_id,
                          latent_id=model.latent_id, config_hash=model.config.hash,
                          kind="semantic" if semantic else "latents", source=str(source))
        with latent_writer(target, model.config.num_frames(n), meta) as out:
            for frames in model.encode_stream(samples.read, n, semantic=semantic, chunks_per_step=STREAM_CHUNKS):
                out.write(frames)


def encode_batch(model: Tokenizer, items: list[tuple[Path, np.ndarray]],
                 semantic: bool) -> list[LatentFile | Exception]:
    """``latent_files`` of a batch; if the batch fails, its files one by one, so that an error names its file and
    leaves the others (an error in place of a file's latents)."""
    try:
        return list(latent_files(model, items, semantic))
    except FILE_ERRORS:
        out: list[LatentFile | Exception] = []
        for item in items:
            try:
                out.append(latent_files(model, [item], semantic)[0])
            except FILE_ERRORS as err:
                out.append(err)
        return out


def file_seconds(path: Path) -> float:
    """A file's duration from its header (0 for an unreadable file: reported by name when it is loaded)."""
    try:
        info = sf.info(str(path))
        return float(info.frames) / float(info.samplerate)
    except Exception:
        return 0.0


def length_buckets(seconds: list[float], batch_size: int, max_batch_seconds: float) -> list[list[int]]:
    """Indices of clips of these durations sorted by duration and cut into batches of similar length (little
    padding), each holding at most ``batch_size`` clips and ``max_batch_seconds`` of padded audio."""
    timed = sorted(((sec, i) for i, sec in enumerate(seconds)), key=lambda t: t[0])
    groups: list[list[int]] = []
    longest = 0.0
    for sec, i in timed:
        if groups and len(groups[-1]) < batch_size and (len(groups[-1]) + 1) * max(longest, sec) <= max_batch_seconds:
            groups[-1].append(i)
            longest = max(longest, sec)
        else:
            groups.append([i])
            longest = sec
    return groups
