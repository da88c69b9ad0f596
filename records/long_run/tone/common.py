"""Shared helpers for the artifact-tone investigation (run from /work/main as cwd)."""
import os

os.environ.setdefault("OMP_NUM_THREADS", "1")  # before numpy and torch load their thread pools
import numpy as np
import torch
from safetensors.torch import load_file

from dashtok import Tokenizer, metrics
from dashtok.train.config import TrainConfig
from dashtok.train.data import AudioBank
from dashtok.train.tokenizer_stage import build_tokenizer

torch.set_num_threads(1)

CFG = '/work/main/configs/tokenizer_long_mel.toml'
MODELS = {
    'default': '/work/main/src/dashtok/assets/default.safetensors',
    'mel_C': '/work/main/runs/ab_mel_C/raw_step1200.safetensors',
    'gan_G0': '/work/main/runs/ab_gan_G0/checkpoints/step-0000300/model.safetensors',
}


def load(name):
    path = MODELS.get(name, name)
    if 'checkpoints' in path:
        m = build_tokenizer(TrainConfig.load(CFG))
        m.load_state_dict(load_file(path), strict=True)
    else:
        m = Tokenizer.load(path)
    return m.eval()


def valid_bank():
    return AudioBank.from_config(TrainConfig.load(CFG).data, valid=True)


def valid_clips():
    bank = valid_bank()
    return [bank.audio(i) for i in range(len(bank))]


def excess(inp: metrics.AverageSpectrum, out: metrics.AverageSpectrum):
    return metrics.peakiness_db(out.db()) - metrics.peakiness_db(inp.db())


def top_peaks(ex, k=5, sep=8, sr=16000, n_fft=4096):
    """k largest local maxima of an excess curve, at least `sep` bins apart -> [(db, hz, bin)]."""
    order = np.argsort(ex)[::-1]
    out = []
    for i in order:
        if all(abs(i - j) > sep for _, _, j in out):
            out.append((round(float(ex[i]), 1), round(i * sr / n_fft, 1), int(i)))
        if len(out) == k:
            break
    return out
