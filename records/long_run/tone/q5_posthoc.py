"""Q3 (diagnosis only, post hoc): change the head of a trained model and re-measure tone + mel distance.
  base        : unchanged
  bias_fix    : the head's log-magnitude bias of the 8 spikiest bins (and their +-1 neighbours) set to the median
                of the +-8 neighbouring biases (the brief's "zero the bias for those bins")
  phase_xS    : phase = S * (W h + b) : the phase output's spread multiplied by S (frames decorrelate)
  despike     : per frame, log-magnitude capped at the median over +-8 bins + 1.5 (about +13 dB)
  despike+phase_x8
Also: how much of the output excess sits on 25 Hz harmonics (comb) vs between them.
"""
import json
import sys

sys.path.insert(0, '/work/tone')
from common import MODELS, excess, load, top_peaks, valid_clips

# common first: it sets OMP_NUM_THREADS before numpy and torch load
# isort: split
import numpy as np
import torch
import torch.nn.functional as Fn

from dashtok import metrics
from dashtok.codec import reconstruct


def patched_forward(head, phase_scale=1.0, despike=False):
    def fwd(x, frame_mask=None):
        log_mag, phase = head.out(x.float()).transpose(1, 2).chunk(2, dim=1)
        if despike:
            pad = 8
            lm = Fn.pad(log_mag, (0, 0, pad, pad), mode='replicate')
            med = lm.unfold(1, 2 * pad + 1, 1).median(-1).values
            log_mag = torch.minimum(log_mag, med + 1.5)
        mag = torch.exp(log_mag).clamp(max=head.max_magnitude)
        return head.istft(torch.polar(mag, phase * phase_scale), frame_mask)
    return fwd


def comb_share(sin, sout):
    ex = excess(sin, sout)
    f = np.arange(len(ex)) * 16000 / 4096
    on = np.abs(f / 25 - np.round(f / 25)) * 25 < 2.0  # within 2 Hz of a 25 Hz harmonic
    sel = f > 500
    return round(float(np.mean(ex[on & sel])), 2), round(float(np.mean(ex[~on & sel])), 2)


def main():
    names = sys.argv[1:] or list(MODELS)
    clips = valid_clips()
    res = {}
    for name in names:
        m = load(name)
        head = m.head
        F = 641
        b0 = head.out.bias.data.clone()
        orig = head.forward
        # spiky bins from q4 (head power vs +-5 bins)
        hm = np.load(f'/work/tone/headmag_{name}.npy')
        pk = metrics.peakiness_db(hm[0], 5)
        spikes = [int(k) for k in np.argsort(pk)[::-1][:8]]
        r = {'spiky_bins': spikes, 'spiky_bins_mod4': [k % 4 for k in spikes]}
        arms = {'base': {}, 'bias_fix': {'bias_fix': True}, 'phase_x4': {'phase_scale': 4.0},
                'phase_x8': {'phase_scale': 8.0}, 'despike': {'despike': True},
                'despike+phase_x8': {'despike': True, 'phase_scale': 8.0}}
        for arm, kw in arms.items():
            head.out.bias.data[:] = b0
            if kw.pop('bias_fix', False):
                for k in spikes:
                    for j in (k - 1, k, k + 1):
                        if 0 <= j < F:
                            nb = [i for i in range(max(0, j - 8), min(F, j + 9)) if abs(i - j) > 1]
                            head.out.bias.data[j] = b0[nb].median()
            head.forward = patched_forward(head, **kw)
            sin, sout = metrics.AverageSpectrum(), metrics.AverageSpectrum()
            md = []
            with torch.no_grad():
                for x in clips:
                    y = reconstruct(m, x)
                    sin.add(x)
                    sout.add(y)
                    md.append(metrics.mel_distance(x, y).item())
            r[arm] = {'tone': metrics.artifact_tone(sin, sout), 'top3': top_peaks(excess(sin, sout), 3),
                      'mel_distance': round(float(np.mean(md)), 4),
                      'mean excess on/off 25Hz harmonics (>500 Hz)': comb_share(sin, sout)}
            print(name, arm, r[arm], flush=True)
        head.forward = orig
        head.out.bias.data[:] = b0
        res[name] = r
    json.dump(res, open('/work/tone/q5_' + '_'.join(names) + '.json', 'w'), indent=1)


if __name__ == '__main__':
    main()
