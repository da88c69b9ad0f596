"""The music measures of `dashtok eval gen` on signals whose answer is known: harmonic tones, triads, scales,
click trains; and what they return for silence and for clips that are not music."""

import numpy as np
import pytest

from dashtok.eval import music

SR = 16000


def tone(midi: float, seconds: float = 1.0, harmonics: int = 8, fundamental: float = 1.0) -> np.ndarray:
    """A harmonic tone with 1/h partials (the fundamental's amplitude scaled by ``fundamental``), decaying."""
    t = np.arange(int(seconds * SR)) / SR
    f0 = float(music.midi_to_hz(midi))
    x = sum((fundamental if h == 1 else 1.0) / h * np.sin(2 * np.pi * f0 * h * t)
            for h in range(1, harmonics + 1) if f0 * h < SR / 2)
    return (0.3 * x * np.exp(-t)).astype(np.float32)


@pytest.mark.parametrize("midi", [40, 57, 69, 83])
def test_pitch_of_a_harmonic_tone(midi: int) -> None:
    assert music.estimate_pitch(tone(midi), SR) == pytest.approx(midi, abs=0.11)
    # a weak fundamental (a tenth of the second partial) is still the note, not its octave
    assert music.estimate_pitch(tone(midi, fundamental=0.05), SR) == pytest.approx(midi, abs=0.11)


def test_chords_and_key_signatures() -> None:
    def chord(root: int, minor: bool) -> np.ndarray:
        return np.sum([tone(root + i, 2.0) for i in (0, 3 if minor else 4, 7)], axis=0)

    assert music.estimate_chord(chord(60, False), SR) == "C major"
    assert music.estimate_chord(chord(57, True), SR) == "A minor"
    d_major = np.concatenate([tone(62 + s, 0.3) for s in (0, 2, 4, 5, 7, 9, 11, 12)])
    heard = music.attributes(d_major, SR, {"kind": "scale", "key": "D major", "tempo": 100})
    assert heard["key signature"] == 1.0 and heard["in key"] == pytest.approx(1.0, abs=1e-6)
    assert music.key_signature("B minor") == music.key_signature("D major") == "D major / B minor"
    # the same scale against a caption a semitone off: not its signature, and two of its notes fall outside
    off = music.attributes(d_major, SR, {"kind": "scale", "key": "C# major", "tempo": 100})
    assert off["key signature"] == 0.0 and off["in key"] < 0.9
    # a scale in A minor is the C major set: its signature, and not that of A major
    a_minor = np.concatenate([tone(57 + s, 0.3) for s in (0, 2, 3, 5, 7, 8, 10, 12)])
    assert music.attributes(a_minor, SR, {"kind": "scale", "key": "A minor", "tempo": 100})["key signature"] == 1.0
    assert music.attributes(a_minor, SR, {"kind": "scale", "key": "A major", "tempo": 100})["key signature"] == 0.0
    melody = music.attributes(d_major[::-1].copy(), SR, {"kind": "melody", "key": "B minor", "tempo": 100})
    assert "key signature" not in melody and melody["in key"] == pytest.approx(1.0, abs=1e-6)


@pytest.mark.parametrize("bpm", [80, 100, 150])
def test_tempo_of_a_click_train(bpm: int) -> None:
    x = np.zeros(6 * SR, dtype=np.float32)  # clicks on every beat
    rng = np.random.default_rng(0)
    for start in np.arange(0.1, 5.9, 60.0 / bpm):
        i = int(start * SR)
        x[i:i + 400] += rng.standard_normal(400).astype(np.float32) * np.exp(-np.arange(400) / 80)
    estimate = music.estimate_tempo(x, SR)
    assert music.tempo_match(estimate, bpm, octave=False)
    assert music.attributes(x, SR, {"kind": "drums", "tempo": bpm}) == {"tempo": 1.0, "tempo (x2 allowed)": 1.0}
    # notes on half beats (a scale) run at twice the caption's tempo: only the factor-2 measure applies to them
    assert music.attributes(x, SR, {"kind": "scale", "key": "C major", "tempo": bpm / 2})["tempo (x2 allowed)"] == 1.0
    assert "tempo" not in music.attributes(x, SR, {"kind": "melody", "key": "C major", "tempo": bpm})


def test_silence_and_other_clips() -> None:
    silence = np.zeros(SR, dtype=np.float32)
    assert np.isnan(music.estimate_pitch(silence, SR)) and music.estimate_chord(silence, SR) is None
    assert np.isnan(music.estimate_tempo(silence, SR))
    heard = music.attributes(silence, SR, {"kind": "note", "pitch": 60})
    assert heard["note"] == 0.0 and np.isnan(heard["cents"])
    assert music.attributes(tone(60), SR, {"gender": "female"}) == {}  # speech captions name no music
    for short in (np.zeros(0, np.float32), np.zeros(10, np.float32), np.full(SR, np.nan, np.float32)):
        heard = music.attributes(short, SR, {"kind": "melody", "key": "C major", "tempo": 100})
        assert heard == {"in key": 0.0, "tempo (x2 allowed)": 0.0}  # nothing heard: nothing right, no error


def test_summary() -> None:
    rows = [{"note": 1.0, "cents": 5.0}, {"note": 0.0, "cents": float("nan")}, {"note": 1.0, "cents": 30.0}, {}]
    summary = music.summarise(rows)
    assert summary["note"] == {"mean": pytest.approx(2 / 3, abs=1e-4), "n": 3, "chance": round(1 / 45, 4)}
    assert summary["cents"] == {"median": 17.5, "n": 2}  # the silent clip's NaN is a wrong note, not a cents value
