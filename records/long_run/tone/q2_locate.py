"""Q2: where the tone lives.
 (a) waveform: the part of each reconstruction that is periodic with the 2-frame period (640 samples, 25 Hz) and
     locked to the frame grid (synchronous average over the clip's periods): remove it, re-measure the tone;
 (b) head spectrum: at each tone's head bin, the frame-mean (period-1) and alternating (period-2, (-1)^t) parts of
     the head output vs the same parts of the input's own STFT on the head grid;
 (c) our iSTFT on the input's own STFT (round trip error, tone);
 (d) interventions inside the decoder: tie the upsampler's two kernel taps (W0 = W1 = mean) -> no parity left.
"""
import json
import sys

sys.path.insert(0, '/work/tone')
from common import MODELS, excess, load, top_peaks, valid_bank

# common first: it sets OMP_NUM_THREADS before numpy and torch load
# isort: split
import numpy as np
import torch

from dashtok import metrics
from dashtok.codec import reconstruct

P = 640  # two head frames


def sync_avg(y, per_clip=True):
    n = len(y) // P * P
    return y[:n].reshape(-1, P).mean(0), n


def head_spec(m, x):
    """-> (head spectrum (F, L) complex, upsampler output (C, L)) for one clip."""
    with torch.no_grad():
        z = m.encode(x).latents
        cap = {}
        h1 = m.decoder.upsample.register_forward_hook(lambda mod, i, o: cap.__setitem__('up', o[0]))
        h2 = m.head.istft.register_forward_hook(lambda mod, i, o: cap.__setitem__('spec', i[0][0]))
        m.decode(z)
        h1.remove()
        h2.remove()
    return cap['spec'], cap['up']


def input_stft(x, n_fft=1280, hop=320):
    t = torch.from_numpy(x).float()
    pad = (n_fft - hop) // 2
    t = torch.nn.functional.pad(t, (pad, pad + n_fft))
    return torch.stft(t, n_fft, hop, window=torch.hann_window(n_fft), center=False, return_complex=True)


def main(names):
    bank = valid_bank()
    clips = [bank.audio(i) for i in range(len(bank))]
    out = {}
    # (c) our iSTFT on the input's own STFT
    from dashtok.spectral import ISTFT
    ist = ISTFT(1280, 320)
    a, b = metrics.AverageSpectrum(), metrics.AverageSpectrum()
    errs = []
    for x in clips:
        L = len(x) // 320
        y = ist(input_stft(x)[None, :, :L])[0].numpy()
        n = min(len(y), len(x))
        errs.append(float(np.max(np.abs(y[480:n - 480] - x[480:n - 480]))))
        a.add(x[:n])
        b.add(y[:n])
    out['istft_roundtrip'] = {'max_abs_err_interior': max(errs), 'tone': metrics.artifact_tone(a, b),
                              'top5': top_peaks(excess(a, b))}
    print('istft', out['istft_roundtrip'], flush=True)
    for name in names:
        m = load(name)
        r = {}
        with torch.no_grad():
            recs = [reconstruct(m, x) for x in clips]
        sin = metrics.AverageSpectrum()
        for x in clips:
            sin.add(x)

        def tone_of(ys, sin=sin):
            s = metrics.AverageSpectrum()
            for y in ys:
                s.add(y)
            ex = excess(sin, s)
            return top_peaks(ex, 5)
        r['recon'] = tone_of(recs)
        # (a) frame-locked periodic part: per clip, and one common to all clips
        per_clip_removed, tot, cnt = [], np.zeros(P), 0
        for y in recs:
            avg, n = sync_avg(y)
            yy = y.copy()
            yy[:n] -= np.tile(avg, n // P)
            per_clip_removed.append(yy)
            tot += y[:n].reshape(-1, P).sum(0)
            cnt += n // P
        glob = tot / cnt
        glob_removed = []
        for y in recs:
            n = len(y) // P * P
            yy = y.copy()
            yy[:n] -= np.tile(glob, n // P)
            glob_removed.append(yy)
        r['minus_per_clip_640_periodic'] = tone_of(per_clip_removed)
        r['minus_global_640_periodic'] = tone_of(glob_removed)
        # inputs: same operation on the inputs changes little (sanity)
        # periodic part's power at the tone frequencies (amplitude of the line in dBFS)
        G = np.fft.rfft(glob) / P * 2
        r['global_periodic_lines_dBFS'] = {f'{25 * j}Hz': round(float(20 * np.log10(abs(G[j]) + 1e-12)), 1)
                                           for j in [round(hz / 25) for _, hz, _ in r['recon']]}
        # (b) head spectrum parity analysis at the tone bins (head bin = hz / 12.5)
        bins = sorted({int(round(hz / 12.5)) for _, hz, _ in r['recon']})
        stats = {k: {'head': [], 'input': []} for k in bins}
        allbins = {'head_alt': [], 'head_mean': [], 'head_abs': [], 'in_alt': [], 'in_mean': [], 'in_abs': []}
        upd = []
        for x in clips:
            H, up = head_spec(m, x)
            X = input_stft(x)[:, :H.shape[1]]
            L = min(H.shape[1], X.shape[1]) // 2 * 2
            H, X = H[:, :L], X[:, :L]
            sgn = torch.tensor([1.0, -1.0]).repeat(L // 2)
            for S, key in ((H, 'head'), (X, 'input')):
                alt = (S * sgn).mean(1)
                mean = S.mean(1)
                ab = S.abs().mean(1)
                for k in bins:
                    stats[k][key].append((abs(alt[k].item()), abs(mean[k].item()), ab[k].item()))
                pre = 'head' if key == 'head' else 'in'
                allbins[pre + '_alt'].append(alt.abs().numpy())
                allbins[pre + '_mean'].append(mean.abs().numpy())
                allbins[pre + '_abs'].append(ab.numpy())
            u = up[:, :L]
            upd.append(float(((u[:, 0::2] - u[:, 1::2]).mean(1)).norm() / u.std(1).norm()))
        tab = {}
        for k in bins:
            h = np.array(stats[k]['head'])
            i = np.array(stats[k]['input'])
            tab[f'bin{k} ({k * 12.5:.0f} Hz, k%4={k % 4})'] = {
                'head |alt|/mean|S|': round(float(np.median(h[:, 0] / h[:, 2])), 3),
                'head |mean|/mean|S|': round(float(np.median(h[:, 1] / h[:, 2])), 3),
                'input |alt|/mean|S|': round(float(np.median(i[:, 0] / i[:, 2])), 3),
                'input |mean|/mean|S|': round(float(np.median(i[:, 1] / i[:, 2])), 3),
                'head mean|S| / input mean|S|': round(float(np.median(h[:, 2] / (i[:, 2] + 1e-9))), 2)}
        r['head_bins'] = tab
        # coherence ratios over all bins, split by k mod 4 (median over clips and bins)
        ab_ = {k: np.stack(v) for k, v in allbins.items()}
        ratio = {}
        for mod in range(4):
            sel = np.arange(641) % 4 == mod
            sel[:40] = False  # skip < 500 Hz
            ratio[f'k%4={mod}'] = {
                'head alt': round(float(np.median(ab_['head_alt'][:, sel] / ab_['head_abs'][:, sel])), 3),
                'head mean': round(float(np.median(ab_['head_mean'][:, sel] / ab_['head_abs'][:, sel])), 3),
                'input alt': round(float(np.median(ab_['in_alt'][:, sel] / ab_['in_abs'][:, sel])), 3),
                'input mean': round(float(np.median(ab_['in_mean'][:, sel] / ab_['in_abs'][:, sel])), 3)}
        r['coherence_by_k_mod_4'] = ratio
        r['upsampler_even_minus_odd_mean_rel'] = round(float(np.median(upd)), 3)
        np.save(f'/work/tone/coh_{name}.npy', np.stack([ab_[k].mean(0) for k in
                ['head_alt', 'head_mean', 'head_abs', 'in_alt', 'in_mean', 'in_abs']]))
        # (d) tie the upsampler taps
        W = m.decoder.upsample.weight.data.clone()  # (in, out, 2)
        r['upsampler_|W0-W1|/|W0+W1|'] = round(
            float((W[..., 0] - W[..., 1]).norm() / (W[..., 0] + W[..., 1]).norm()), 3)
        m.decoder.upsample.weight.data[:] = W.mean(-1, keepdim=True)
        with torch.no_grad():
            tied = [reconstruct(m, x) for x in clips]
        r['tied_upsampler'] = tone_of(tied)
        r['tied_upsampler_mel_distance'] = round(
            float(np.mean([metrics.mel_distance(x, y).item() for x, y in zip(clips, tied, strict=True)])), 4)
        r['recon_mel_distance'] = round(
            float(np.mean([metrics.mel_distance(x, y).item() for x, y in zip(clips, recs, strict=True)])), 4)
        m.decoder.upsample.weight.data[:] = W
        out[name] = r
        print(name, json.dumps(r, indent=1), flush=True)
    json.dump(out, open('/work/tone/q2_' + '_'.join(names) + '.json', 'w'), indent=1)


if __name__ == "__main__":
    main(sys.argv[1:] or list(MODELS))
