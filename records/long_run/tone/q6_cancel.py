"""Why the magnitude spikes sit on bins k = 2 (mod 4): how much of each head bin's power survives the overlap-add.
Re-analyse each reconstruction on the head grid and compare, per bin, the output's power with the head's power
(median over clips, dB), grouped by k mod 4; and the same for the head magnitude's spikiness."""
import json
import sys

sys.path.insert(0, '/work/tone')
from common import MODELS, load, valid_clips

# common first: it sets OMP_NUM_THREADS before numpy and torch load
# isort: split
import numpy as np
import torch
from q2_locate import head_spec, input_stft

from dashtok import metrics

names = sys.argv[1:] or list(MODELS)
clips = valid_clips()
res = {}
for name in names:
    m = load(name)
    ph = np.zeros(641)
    po = np.zeros(641)
    for x in clips:
        H, _ = head_spec(m, x)
        with torch.no_grad():
            y = m.decode(m.encode(x).latents).audio[0].numpy()
        Y = input_stft(y)
        L = min(H.shape[1], Y.shape[1]) - 4
        ph += H[:, 2:L].abs().square().sum(1).numpy()
        po += Y[:, 2:L].abs().square().sum(1).numpy()
    surv = 10 * np.log10(po / ph)
    pk = metrics.peakiness_db(10 * np.log10(ph), 5)
    k = np.arange(641)
    sel = k >= 40
    r = {f'k%4={j}': {'output/head power dB (median)': round(float(np.median(surv[sel & (k % 4 == j)])), 1),
                      'head spikiness dB (mean)': round(float(np.mean(pk[sel & (k % 4 == j)])), 1),
                      'bins with head spike > 10 dB': int(np.sum(pk[sel & (k % 4 == j)] > 10))} for j in range(4)}
    res[name] = r
    print(name, json.dumps(r), flush=True)
json.dump(res, open('/work/tone/q6_' + '_'.join(names) + '.json', 'w'), indent=1)
