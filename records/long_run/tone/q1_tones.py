"""Q1: top excess bins per model on the 32 validation clips, per-clip presence, and silence / zero-latent decodes."""
import json
import sys

sys.path.insert(0, '/work/tone')
from common import MODELS, excess, load, top_peaks, valid_clips

# common first: it sets OMP_NUM_THREADS before numpy and torch load
# isort: split
import numpy as np
import torch

from dashtok import metrics
from dashtok.codec import reconstruct

names = sys.argv[1:] or list(MODELS)
clips = valid_clips()
res = {}
for name in names:
    m = load(name)
    sin, sout = metrics.AverageSpectrum(), metrics.AverageSpectrum()
    per_clip = []
    with torch.no_grad():
        recs = [reconstruct(m, x) for x in clips]
    for x, y in zip(clips, recs, strict=True):
        sin.add(x)
        sout.add(y)
    ex = excess(sin, sout)
    peaks = top_peaks(ex)
    # per-clip excess at each peak bin (max over +-1 bin)
    for x, y in zip(clips, recs, strict=True):
        a, b = metrics.AverageSpectrum(), metrics.AverageSpectrum()
        a.add(x)
        b.add(y)
        e = excess(a, b)
        per_clip.append([round(float(e[j - 1:j + 2].max()), 1) for _, _, j in peaks])
    pc = np.array(per_clip)
    # silence / quiet / zero latents
    special: dict[str, object] = {}
    T = 16000 * 4
    rng = np.random.default_rng(0)
    with torch.no_grad():
        for tag, x in [('zeros', np.zeros(T, np.float32)),
                       ('noise-80dBFS', (1e-4 * rng.standard_normal(T)).astype(np.float32)),
                       ('noise-40dBFS', (1e-2 * rng.standard_normal(T)).astype(np.float32))]:
            try:
                y = reconstruct(m, x)
            except Exception as err:
                special[tag] = str(err)
                continue
            s = metrics.AverageSpectrum()
            s.add(y)
            pk = metrics.peakiness_db(s.db())
            special[tag] = {'rms_db': round(float(10 * np.log10(np.mean(y.astype(np.float64) ** 2) + 1e-20)), 1),
                            'peaky': top_peaks(pk, 5)}
            np.save(f'/work/tone/out_{name}_{tag}.npy', y)
        n = 100
        y = m.decode(torch.zeros(n, m.latent_dim)).audio[0].numpy()
        s = metrics.AverageSpectrum()
        s.add(y)
        special['zero_latents'] = {'rms_db': round(float(10 * np.log10(np.mean(y.astype(np.float64) ** 2) + 1e-20)), 1),
                                   'peaky': top_peaks(metrics.peakiness_db(s.db()), 5)}
        np.save(f'/work/tone/out_{name}_zero_latents.npy', y)
    res[name] = {'artifact_tone': metrics.artifact_tone(sin, sout), 'top5': peaks,
                 'per_clip_min': pc.min(0).tolist(), 'per_clip_median': np.median(pc, 0).tolist(),
                 'clips_over_6dB': (pc > 6).sum(0).tolist(), 'n_clips': len(clips), 'special': special}
    np.save(f'/work/tone/spec_{name}.npy', np.stack([sin.db(), sout.db()]))
    print(name, json.dumps(res[name]), flush=True)
json.dump(res, open('/work/tone/q1_' + '_'.join(names) + '.json', 'w'), indent=1)
