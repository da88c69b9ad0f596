"""Encoding audio files into latent files: one file at a time, streamed file to file in bounded memory
(``Tokenizer.encode_stream`` over a ``long_audio.SampleFile``), or several files of similar length as one padded
batch."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from dashtok.audio_io import AudioError, load_audio
from dashtok.latents_io import LatentFile, latent_writer
from dashtok.long_audio import SampleFile
from dashtok.tokenizer import Tokenizer

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
                       config_hash=model.config.hash, kind="semantic" if semantic else "latents", source=str(path))
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
                          config_hash=model.config.hash, kind="semantic" if semantic else "latents",
                          source=str(source))
        with latent_writer(target, model.config.num_frames(n), meta) as out:
            for frames in model.encode_stream(samples.read, n, semantic=semantic, chunks_per_step=STREAM_CHUNKS):
                out.write(frames)


def length_buckets(paths: list[Path], batch_size: int, max_batch_seconds: float) -> list[list[int]]:
    """Indices of ``paths`` sorted by duration and cut into batches of similar length (little padding), each
    holding at most ``batch_size`` files and ``max_batch_seconds`` of padded audio. Unreadable files sort first."""
    def seconds(path: Path) -> float:
        try:
            info = sf.info(str(path))
            return float(info.frames) / float(info.samplerate)
        except Exception:  # reported by name when the batch loads it
            return 0.0

    timed = sorted(((seconds(p), i) for i, p in enumerate(paths)), key=lambda t: t[0])
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
