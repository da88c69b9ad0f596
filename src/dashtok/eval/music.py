"""What a music caption names, measured in audio: the note's pitch, the chord, the key signature and the tempo.

``dashtok eval gen`` asks whether a generated clip plays what its caption says ("a marimba plays a single C#5 note",
"a harp plays an F minor chord", "... a melody in D major", "... at 95 bpm"). The estimators here are plain signal
processing, independent of every model under test; their accuracy on the real test clips is reported beside the
generated clips' as each measure's ceiling.

- pitch: harmonic summation over the mean magnitude spectrum (250 ms windows) of the sounding part, log-compressed
  (candidates every 10 cents from MIDI 24 to 108, harmonic h weighted h ** -0.8);
- chroma: the magnitude spectrum from 55 Hz to 2.1 kHz folded onto the 12 pitch classes, frames weighted by energy;
- chord: the best of the 24 major and minor triad templates against the chroma;
- notes of a melody or scale (one at a time): each sounding frame's pitch class by the same harmonic summation,
  an energy-weighted histogram; "in key" is its share inside the caption key's diatonic set (chance 7/12); for a
  scale, "key signature" asks whether the best of the 12 diatonic sets is the caption's (a major key and its
  relative minor share one; the corpus's melodies draw degrees uniformly, so their tonic is not heard, and a melody
  of a few notes fits several sets, hence "in key" for melodies);
- tempo: the autocorrelation of an onset envelope (half-wave rectified log band-energy flux, 10 ms hop) at one and
  two beats, over 40-240 bpm, weighted by a log-normal prior around 120 bpm (one octave wide); judged within 8 %
  for drum beats, and for every clip with a tempo allowing a factor of 2 (a scale's notes fall on half beats, so
  its onsets run at twice the caption's bpm).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from dashtok.data.music import NOTE_NAMES, SCALES, TRIADS

MIDI_RANGE = (24.0, 108.0)
TEMPO_TOLERANCE = 0.08
KINDS = ("note", "chord", "scale", "melody", "drums")  # the corpus's music clips (data/music.py)


def midi_to_hz(midi: np.ndarray | float) -> np.ndarray:
    return 440.0 * 2.0 ** ((np.asarray(midi, dtype=np.float64) - 69.0) / 12.0)


def _frames(audio: np.ndarray, n_fft: int, hop: int) -> np.ndarray:
    """Hann-windowed magnitude spectra (frames, n_fft // 2 + 1); a clip under one window is zero-padded."""
    x = np.asarray(audio, dtype=np.float64)
    if len(x) < n_fft:
        x = np.pad(x, (0, n_fft - len(x)))
    starts = np.arange(0, len(x) - n_fft + 1, hop)
    frames = np.stack([x[s:s + n_fft] for s in starts]) * np.hanning(n_fft)
    return np.abs(np.fft.rfft(frames, axis=1))


def _sounding(spec: np.ndarray, floor_db: float = 30.0) -> np.ndarray:
    """Frame weights: each frame's energy, frames more than ``floor_db`` under the loudest left out."""
    energy = (spec ** 2).sum(1)
    if energy.max() <= 0:
        return np.zeros_like(energy)
    return np.where(energy >= energy.max() * 10 ** (-floor_db / 10), energy, 0.0)


CANDIDATES = np.arange(MIDI_RANGE[0], MIDI_RANGE[1] + 1e-9, 0.1)  # every 10 cents


def _salience(mag: np.ndarray, freqs: np.ndarray) -> np.ndarray:
    """Harmonic summation: per candidate fundamental, the sum over its first 10 harmonics of the log-compressed
    magnitude (60 dB range), harmonic h weighted by h ** -0.8 (so a sub-octave never outscores the note)."""
    level = np.maximum(0.0, 1.0 + np.log10(np.maximum(mag / max(float(mag.max()), 1e-12), 1e-12)) / 3.0)
    f0 = midi_to_hz(CANDIDATES)
    score = np.zeros_like(f0)
    for h in range(1, 11):
        fh = f0 * h
        ok = fh < freqs[-1] * 0.95
        score[ok] += np.interp(fh[ok], freqs, level) / h ** 0.8
    return score


def _pitch_frames(audio: np.ndarray, sample_rate: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Magnitude frames of >= 250 ms (4 Hz bins at 16 kHz), hop a quarter window; their frequencies; weights."""
    n_fft = 1 << int(np.ceil(np.log2(sample_rate * 0.25)))
    spec = _frames(audio, n_fft, n_fft // 4)
    return spec, np.fft.rfftfreq(n_fft, 1.0 / sample_rate), _sounding(spec)


def estimate_pitch(audio: np.ndarray, sample_rate: int) -> float:
    """The sounding note's fundamental as a (fractional) MIDI number, from the energy-weighted mean spectrum of the
    sounding frames; NaN for silence."""
    spec, freqs, w = _pitch_frames(audio, sample_rate)
    if w.sum() <= 0:
        return float("nan")
    mag = np.sqrt((w[:, None] * spec ** 2).sum(0) / w.sum())
    return float(CANDIDATES[int(np.argmax(_salience(mag, freqs)))])


def note_profile(audio: np.ndarray, sample_rate: int) -> np.ndarray:
    """For a melody (one note at a time): the energy-weighted histogram over the 12 pitch classes of each sounding
    frame's fundamental; sums to 1, zeros for silence."""
    spec, freqs, w = _pitch_frames(audio, sample_rate)
    profile = np.zeros(12)
    for frame, weight in zip(spec, w, strict=True):
        if weight > 0:
            profile[int(round(CANDIDATES[int(np.argmax(_salience(frame, freqs)))])) % 12] += weight
    return profile / profile.sum() if profile.sum() > 0 else profile


def chroma(audio: np.ndarray, sample_rate: int) -> np.ndarray:
    """A 12-bin pitch-class profile (C first), summing to 1; zeros for silence."""
    n_fft = 1 << int(np.ceil(np.log2(sample_rate * 0.2)))
    spec = _frames(audio, n_fft, n_fft // 4)
    w = _sounding(spec)
    freqs = np.fft.rfftfreq(n_fft, 1.0 / sample_rate)
    band = (freqs >= 55.0) & (freqs <= 2100.0)
    pc = np.round(12 * np.log2(freqs[band] / 440.0) + 69).astype(int) % 12
    frame_profile = np.stack([spec[:, band][:, pc == k].sum(1) for k in range(12)], axis=1)
    norms = frame_profile.sum(1, keepdims=True)
    frame_profile = np.divide(frame_profile, norms, out=np.zeros_like(frame_profile), where=norms > 0)
    profile = (w[:, None] * frame_profile).sum(0)
    return profile / profile.sum() if profile.sum() > 0 else profile


def _best_template(profile: np.ndarray, templates: dict[str, np.ndarray]) -> str | None:
    if profile.sum() <= 0:
        return None
    centred = profile - profile.mean()
    return max(templates, key=lambda name: float(np.dot(centred, templates[name] - templates[name].mean())))


def _template(intervals: Sequence[int], root: int) -> np.ndarray:
    t = np.zeros(12)
    t[[(root + i) % 12 for i in intervals]] = 1.0
    return t


CHORDS = {f"{NOTE_NAMES[r]} {mode}": _template(TRIADS[mode], r) for mode in ("major", "minor") for r in range(12)}
KEY_SIGNATURES = {f"{NOTE_NAMES[r]} major / {NOTE_NAMES[(r + 9) % 12]} minor": _template(SCALES["major"], r)
                  for r in range(12)}


def estimate_chord(audio: np.ndarray, sample_rate: int) -> str | None:
    """'C major' ... 'B minor' (the chord names of data/music.py); None for silence."""
    return _best_template(chroma(audio, sample_rate), CHORDS)


def key_signature(key: str) -> str:
    """The diatonic pitch set of a key such as 'A minor', named by its major and relative minor."""
    root, mode = key.split()
    major_root = (NOTE_NAMES.index(root) + (3 if mode == "minor" else 0)) % 12
    return f"{NOTE_NAMES[major_root]} major / {NOTE_NAMES[(major_root + 9) % 12]} minor"


def onset_envelope(audio: np.ndarray, sample_rate: int, hop_seconds: float = 0.01) -> np.ndarray:
    hop = int(round(sample_rate * hop_seconds))
    n_fft = 1 << int(np.ceil(np.log2(sample_rate * 0.04)))
    spec = _frames(audio, n_fft, hop)
    bands = np.array_split(np.arange(1, spec.shape[1]), 40)  # coarse bands are enough for onsets
    energy = np.stack([spec[:, b].sum(1) for b in bands], axis=1)
    logged = np.log1p(1e3 * energy / max(energy.max(), 1e-12))
    flux = np.maximum(np.diff(logged, axis=0), 0.0).sum(1)
    return flux - flux.mean() if len(flux) else flux


def estimate_tempo(audio: np.ndarray, sample_rate: int, hop_seconds: float = 0.01) -> float:
    """Beats per minute; NaN when the clip is too short or has no onsets."""
    env = onset_envelope(audio, sample_rate, hop_seconds)
    bpm_lo, bpm_hi = 40.0, 240.0
    max_lag = int(60.0 / bpm_lo / hop_seconds)
    if len(env) < 2 * int(60.0 / bpm_hi / hop_seconds) or not np.any(env):
        return float("nan")
    ac = np.correlate(env, env, mode="full")[len(env) - 1:]
    ac = ac / np.maximum(len(env) - np.arange(len(env)), 1)  # unbiased: long lags are not penalised by overlap
    lags = np.arange(int(60.0 / bpm_hi / hop_seconds), min(max_lag, len(env) - 1) + 1)
    if len(lags) == 0:
        return float("nan")
    bpm = 60.0 / (lags * hop_seconds)
    comb = ac[lags] + np.where(2 * lags < len(ac), ac[np.minimum(2 * lags, len(ac) - 1)], 0.0)  # beat + 2 beats
    prior = np.exp(-0.5 * np.log2(bpm / 120.0) ** 2)
    return float(bpm[int(np.argmax(comb * prior))])


def tempo_match(estimate: float, target: float, octave: bool) -> bool:
    """Within TEMPO_TOLERANCE of the target, or (``octave``) of half or twice it."""
    if not np.isfinite(estimate):
        return False
    factors = (0.5, 1.0, 2.0) if octave else (1.0,)
    return any(abs(estimate / (target * f) - 1.0) <= TEMPO_TOLERANCE for f in factors)


def attributes(audio: np.ndarray, sample_rate: int, labels: dict[str, Any]) -> dict[str, float]:
    """Each measure that applies to a music clip with these caption labels, 1.0 / 0.0 (``cents`` in cents): what
    the audio plays against what the caption names. Empty for clips that are not the corpus's music."""
    kind = labels.get("kind")
    out: dict[str, float] = {}
    if kind not in KINDS:
        return out
    if kind == "note" and "pitch" in labels:
        est = estimate_pitch(audio, sample_rate)
        target = float(labels["pitch"])
        out["pitch class"] = float(np.isfinite(est) and round(est) % 12 == int(target) % 12)
        out["note"] = float(np.isfinite(est) and round(est) == int(target))
        out["cents"] = abs(est - target) * 100 if np.isfinite(est) else float("nan")
    if kind == "chord" and "chord" in labels:
        out["chord"] = float(estimate_chord(audio, sample_rate) == labels["chord"])
    if kind in ("scale", "melody") and "key" in labels:
        profile = note_profile(audio, sample_rate)
        named = key_signature(str(labels["key"]))
        out["in key"] = float(profile @ KEY_SIGNATURES[named])
        if kind == "scale":
            out["key signature"] = float(_best_template(profile, KEY_SIGNATURES) == named)
    if kind in ("drums", "melody", "scale") and "tempo" in labels:
        est = estimate_tempo(audio, sample_rate)
        if kind == "drums":  # a beat has accents on the beat; a scale's notes fall on half beats, a melody's anywhere
            out["tempo"] = float(tempo_match(est, float(labels["tempo"]), octave=False))
        out["tempo (x2 allowed)"] = float(tempo_match(est, float(labels["tempo"]), octave=True))
    return out


# uniform guesses over the corpus's labels: 12 pitch classes, its single notes' 45 pitches (MIDI 40-84,
# data/music.py), 24 triads, 12 diatonic sets, 7 of 12 pitch classes in a key
CHANCE = {"pitch class": 1 / 12, "note": 1 / 45, "chord": 1 / 24, "key signature": 1 / 12, "in key": 7 / 12}


def summarise(rows: list[dict[str, float]]) -> dict[str, dict[str, float]]:
    """Per measure: its mean over the clips it applies to (an accuracy, or the mean in-key share; the median for
    cents) and how many."""
    out: dict[str, dict[str, float]] = {}
    for name in dict.fromkeys(k for r in rows for k in r):
        values = np.array([r[name] for r in rows if name in r], dtype=np.float64)
        finite = values[np.isfinite(values)]
        if name == "cents":
            out[name] = {"median": round(float(np.median(finite)), 1) if len(finite) else float("nan"),
                         "n": len(finite)}  # a silent clip has no pitch: it counts as a wrong note, not here
        else:
            out[name] = {"mean": round(float(values.mean()), 4), "n": len(values)}
            if name in CHANCE:
                out[name]["chance"] = round(CHANCE[name], 4)
    return out
