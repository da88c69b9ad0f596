"""Per head bin (12.5 Hz): mean power of head output vs input STFT (same grid), the head's log-magnitude bias and
weight norm, and the phase bias; peakiness of the head/input power ratio across bins."""
import sys

sys.path.insert(0, '/work/tone')
from common import MODELS, load, valid_bank

# common first: it sets OMP_NUM_THREADS before numpy and torch load
# isort: split
import numpy as np
from q2_locate import head_spec, input_stft

from dashtok import metrics

names = sys.argv[1:] or list(MODELS)
bank = valid_bank()
clips = [bank.audio(i) for i in range(len(bank))]
for name in names:
    m = load(name)
    ph = np.zeros(641)
    pi = np.zeros(641)
    n = 0
    for x in clips:
        H, _ = head_spec(m, x)
        X = input_stft(x)
        L = min(H.shape[1], X.shape[1])
        ph += H[:, :L].abs().square().sum(1).numpy()
        pi += X[:, :L].abs().square().sum(1).numpy()
        n += L
    hd, idb = 10 * np.log10(ph / n + 1e-20), 10 * np.log10(pi / n + 1e-20)
    W, b = m.head.out.weight.data, m.head.out.bias.data
    F = 641
    wmag, bmag, wph, bph = W[:F].norm(dim=1).numpy(), b[:F].numpy(), W[F:].norm(dim=1).numpy(), b[F:].numpy()
    # effective bias through the final LayerNorm's beta
    beta = m.decoder.final_norm.bias.data
    beff = (W @ beta + b).numpy()
    ratio = hd - idb
    pk_ratio = metrics.peakiness_db(ratio, 5)
    pk_head = metrics.peakiness_db(hd, 5)
    pk_bmag = metrics.peakiness_db(20 / np.log(10) * beff[:F], 5)
    np.save(f'/work/tone/headmag_{name}.npy', np.stack([hd, idb, wmag, bmag, wph, bph, beff[:F], beff[F:]]))
    print(name)
    print(' top peaky head bins (head power dB vs +-5 bins):',
          [(int(k), round(k * 12.5), round(float(pk_head[k]), 1)) for k in np.argsort(pk_head)[::-1][:8]])
    print(' top peaky head/input ratio bins:',
          [(int(k), round(k * 12.5), round(float(pk_ratio[k]), 1)) for k in np.argsort(pk_ratio)[::-1][:8]])
    print(' top peaky effective log-mag bias (dB):',
          [(int(k), round(k * 12.5), round(float(pk_bmag[k]), 1)) for k in np.argsort(pk_bmag)[::-1][:8]])
    for k in [326, 334, 342, 350, 386, 622, 630, 636, 638, 640]:
        print(f'  bin {k} {k*12.5:.0f}Hz head {hd[k]:.1f} dB input {idb[k]:.1f} dB ratio {ratio[k]:+.1f} | '
              f'bias_eff logmag {beff[k]:+.2f} |w| {wmag[k]:.2f} | bias_eff phase {beff[F+k]:+.2f} |w| {wph[k]:.2f}')
    print(' median |w_mag|, |w_phase|:', np.median(wmag).round(3), np.median(wph).round(3),
          ' median |bias_eff phase|', np.median(np.abs(beff[F:])).round(3))
