"""Q2/Q3: magnitude vs phase. Re-synthesise each clip with our iSTFT from
  head      : the head's magnitude and phase (= the reconstruction)
  oracle_ph : the head's magnitude, the input's phase (its STFT on the head grid)
  oracle_mag: the input's magnitude, the head's phase
  rand_ph   : the head's magnitude, uniformly random phase per frame and bin (what noise has)
and measure the artifact tone of each; also the phase concentration R = |mean_t exp(i phi_t)| per parity (even/odd
head frames) of head vs input, and the phase output's bias vs its frame-to-frame variation.
"""
import json
import sys

sys.path.insert(0, '/work/tone')
from common import MODELS, excess, load, top_peaks, valid_bank

# common first: it sets OMP_NUM_THREADS before numpy and torch load
# isort: split
import numpy as np
import torch
from q2_locate import head_spec, input_stft

from dashtok import metrics
from dashtok.spectral import ISTFT

names = sys.argv[1:] or list(MODELS)
bank = valid_bank()
clips = [bank.audio(i) for i in range(len(bank))]
ist = ISTFT(1280, 320)
res = {}
for name in names:
    m = load(name)
    g = torch.Generator().manual_seed(0)
    spectra = {k: metrics.AverageSpectrum() for k in ['input', 'head', 'oracle_ph', 'oracle_mag', 'rand_ph']}
    mels: dict[str, list[float]] = {k: [] for k in spectra if k != 'input'}
    Rh: list[np.ndarray] = []
    Ri: list[np.ndarray] = []
    Rsh: list[float] = []
    phstd: list[float] = []
    for x in clips:
        H, _ = head_spec(m, x)
        X = input_stft(x)
        L = min(H.shape[1], X.shape[1])
        H, X = H[:, :L], X[:, :L]
        rnd = torch.polar(torch.ones_like(H.real), 2 * np.pi * torch.rand(H.shape, generator=g))
        variants = {'head': H, 'oracle_ph': torch.polar(H.abs(), X.angle()),
                    'oracle_mag': torch.polar(X.abs(), H.angle()), 'rand_ph': H.abs() * rnd}
        n = L * 320
        spectra['input'].add(x[:n])
        for k, S in variants.items():
            y = ist(S[None])[0].numpy()[:n]
            spectra[k].add(y)
            mels[k].append(metrics.mel_distance(x[:n], y).item())
        # phase concentration per parity, magnitude-weighted off (pure phase)
        for S, acc in ((H, Rh), (X, Ri)):
            u = torch.exp(1j * S.angle())
            acc.append(torch.stack([u[:, 0::2].mean(1).abs(), u[:, 1::2].mean(1).abs()]).mean(0).numpy())
        Rsh.append(1 / np.sqrt(L / 2))  # chance level
    r = {k: top_peaks(excess(spectra['input'], s), 3) for k, s in spectra.items() if k != 'input'}
    r['mel_distance'] = {k: round(float(np.mean(v)), 4) for k, v in mels.items()}
    R_head, R_input = np.stack(Rh), np.stack(Ri)
    bands = {'0.5-2k': (40, 160), '2-4k': (160, 320), '4-6k': (320, 480), '6-8k': (480, 641)}
    r['phase_R_head'] = {b: round(float(np.median(R_head[:, lo:hi])), 3) for b, (lo, hi) in bands.items()}
    r['phase_R_input'] = {b: round(float(np.median(R_input[:, lo:hi])), 3) for b, (lo, hi) in bands.items()}
    r['phase_R_chance'] = round(float(np.median(Rsh)), 3)
    res[name] = r
    print(name, json.dumps(r), flush=True)
json.dump(res, open('/work/tone/q3_' + '_'.join(names) + '.json', 'w'), indent=1)
