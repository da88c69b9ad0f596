"""Music rendered from MIDI written here (mido) with fluidsynth: notes, scales, chords, melodies and drum beats,
labelled with exact GM program, family, pitch, velocity, key, mode and tempo.

FluidR3 GM renders train/valid/test; TimGM6mb renders extra test clips of held-out timbre (``timbre_seen=False``).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dashtok.data.manifest import Clip, split_by_key

SOUNDFONTS = {"FluidR3_GM": Path("/usr/share/sounds/sf2/FluidR3_GM.sf2"),
              "TimGM6mb": Path("/usr/share/sounds/sf2/TimGM6mb.sf2")}
SOUNDFONT_PACKAGES = {"FluidR3_GM": "fluid-soundfont-gm", "TimGM6mb": "timgm6mb-soundfont"}
HELD_OUT_SOUNDFONT = "TimGM6mb"
NOTE_NAMES = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")
SCALES = {"major": (0, 2, 4, 5, 7, 9, 11), "minor": (0, 2, 3, 5, 7, 8, 10)}
TRIADS = {"major": (0, 4, 7), "minor": (0, 3, 7)}


@dataclass(frozen=True)
class Instrument:
    program: int  # General MIDI program, 0-based
    name: str
    family: str
    low: int  # playable MIDI range
    high: int


INSTRUMENTS = (
    Instrument(0, "piano", "piano", 36, 96), Instrument(4, "electric piano", "piano", 40, 88),
    Instrument(11, "vibraphone", "chromatic percussion", 53, 89),
    Instrument(12, "marimba", "chromatic percussion", 45, 96),
    Instrument(16, "drawbar organ", "organ", 36, 90), Instrument(19, "church organ", "organ", 36, 90),
    Instrument(24, "nylon guitar", "guitar", 40, 83), Instrument(25, "steel guitar", "guitar", 40, 83),
    Instrument(29, "overdriven guitar", "guitar", 40, 83), Instrument(32, "acoustic bass", "bass", 28, 55),
    Instrument(33, "electric bass", "bass", 28, 55), Instrument(40, "violin", "strings", 55, 96),
    Instrument(41, "viola", "strings", 48, 84), Instrument(42, "cello", "strings", 36, 72),
    Instrument(46, "harp", "strings", 36, 96), Instrument(48, "string ensemble", "ensemble", 36, 96),
    Instrument(52, "choir", "ensemble", 48, 79), Instrument(56, "trumpet", "brass", 55, 82),
    Instrument(57, "trombone", "brass", 40, 72), Instrument(58, "tuba", "brass", 28, 58),
    Instrument(60, "french horn", "brass", 41, 77), Instrument(65, "alto sax", "reed", 49, 81),
    Instrument(68, "oboe", "reed", 58, 91), Instrument(70, "bassoon", "reed", 34, 72),
    Instrument(71, "clarinet", "reed", 50, 91), Instrument(73, "flute", "pipe", 60, 96),
    Instrument(75, "pan flute", "pipe", 60, 96), Instrument(80, "square lead", "synth lead", 48, 84),
    Instrument(81, "sawtooth lead", "synth lead", 48, 84), Instrument(88, "new age pad", "synth pad", 48, 84),
)
DRUM_PATTERNS = {  # 16 steps per bar: (kick, snare, hihat) step lists; GM drums: 36 kick, 38 snare, 42 hat
    "rock": ((0, 8), (4, 12), tuple(range(0, 16, 2))),
    "disco": ((0, 4, 8, 12), (4, 12), (2, 6, 10, 14)),
    "half-time": ((0, 10), (8,), tuple(range(0, 16, 2))),
    "breakbeat": ((0, 3, 10), (4, 12, 15), tuple(range(0, 16, 2))),
}
GM_DRUMS = {"kick": 36, "snare": 38, "hihat": 42}


def a(word: str) -> str:
    """'a trumpet', 'an oboe'."""
    return f"{'an' if word[0] in 'aeiou' else 'a'} {word}"


def note_name(midi: int) -> str:
    return f"{NOTE_NAMES[midi % 12]}{midi // 12 - 1}"


def _velocity_word(v: int) -> str:
    return "softly" if v < 64 else "loudly" if v > 100 else "moderately loudly"


def _tempo_word(bpm: int) -> str:
    return "slow" if bpm < 90 else "fast" if bpm > 140 else "moderate"


def plan_music(n: int, seed: int) -> list[Clip]:
    rng = random.Random(f"music/{seed}")
    clips = []
    kinds = ["note"] * 5 + ["scale"] * 3 + ["chord"] * 3 + ["melody"] * 6 + ["drums"] * 3
    for i in range(n):
        kind = rng.choice(kinds)
        soundfont = HELD_OUT_SOUNDFONT if rng.random() < 0.1 else "FluidR3_GM"
        inst = rng.choice(INSTRUMENTS)
        velocity = rng.randint(45, 120)
        bpm = rng.randint(70, 170)
        root_pc = rng.randrange(12)
        mode = rng.choice(sorted(SCALES))
        key = f"{NOTE_NAMES[root_pc]} {mode}"
        labels: dict[str, object] = {"kind": kind, "soundfont": soundfont, "velocity": velocity,
                                     "timbre_seen": soundfont != HELD_OUT_SOUNDFONT}
        notes: list[tuple[float, float, int]] = []  # (start beat, length in beats, MIDI pitch)
        if kind == "drums":
            pattern = rng.choice(sorted(DRUM_PATTERNS))
            labels.update(instrument="drum kit", family="drums", program=-1, pattern=pattern, tempo=bpm)
            caption = f"a drum kit plays a {pattern} beat at {bpm} bpm"
            for bar in range(2):
                for drum, steps in zip(GM_DRUMS.values(), DRUM_PATTERNS[pattern], strict=True):
                    notes += [(bar * 4 + s / 4, 0.25, drum) for s in steps]
        else:
            labels.update(instrument=inst.name, family=inst.family, program=inst.program)
            lo = max(inst.low, 36)
            root = lo + (root_pc - lo) % 12
            if kind == "note":
                pitch = rng.randint(max(inst.low, 40), min(inst.high, 84))
                labels.update(pitch=pitch, note=note_name(pitch))
                caption = f"{a(inst.name)} plays a single {note_name(pitch)} note {_velocity_word(velocity)}"
                bpm = 60
                notes = [(0.0, 2.0, pitch)]  # two seconds at 60 bpm
                labels["tempo"] = bpm
            elif kind == "scale":
                steps = SCALES[mode] + (12,)
                notes = [(k * 0.5, 0.5, root + s) for k, s in enumerate(steps) if root + s <= inst.high]
                labels.update(key=key, mode=mode, tempo=bpm)
                caption = f"{a(inst.name)} plays a {NOTE_NAMES[root_pc]} {mode} scale at {bpm} bpm"
            elif kind == "chord":
                notes = [(0.0, 3.0, root + s) for s in TRIADS[mode]]
                labels.update(key=key, mode=mode, tempo=bpm, chord=f"{NOTE_NAMES[root_pc]} {mode}")
                caption = f"{a(inst.name)} plays a {NOTE_NAMES[root_pc]} {mode} chord"
            else:
                degrees = SCALES[mode]
                t = 0.0
                while t < 8.0:
                    length = rng.choice((0.5, 0.5, 1.0, 1.0, 1.5, 2.0))
                    octave = rng.choice((0, 0, 12))
                    pitch = root + degrees[rng.randrange(7)] + octave
                    if pitch <= inst.high:
                        notes.append((t, length, pitch))
                    t += length
                labels.update(key=key, mode=mode, tempo=bpm)
                caption = f"{a(inst.name)} plays a {_tempo_word(bpm)} melody in {NOTE_NAMES[root_pc]} {mode}"
        split = "test" if soundfont == HELD_OUT_SOUNDFONT else split_by_key(f"music/{seed}/{i}")
        clips.append(Clip(id=f"music-{i:06d}", source="fluidsynth", split=split, domain="music", caption=caption,
                          labels=labels, params={"notes": notes, "bpm": bpm, "program": labels["program"],
                                                 "velocity": velocity, "soundfont": soundfont}))
    return clips


def write_midi(clip: Clip, path: Path) -> None:
    """The clip's notes as a standard MIDI file (channel 10 for drums)."""
    import mido

    p = clip.params
    tpb = 480
    mid = mido.MidiFile(ticks_per_beat=tpb)
    track = mido.MidiTrack()
    mid.tracks.append(track)
    channel = 9 if p["program"] < 0 else 0
    track.append(mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(p["bpm"]), time=0))
    if channel == 0:
        track.append(mido.Message("program_change", program=p["program"], channel=0, time=0))
    events = []
    for start, length, pitch in p["notes"]:
        events.append((round(start * tpb), 1, pitch))  # note on after note off at the same tick
        events.append((round((start + length) * tpb), 0, pitch))
    now = 0
    for tick, on, pitch in sorted(events):
        kind = "note_on" if on else "note_off"
        track.append(mido.Message(kind, note=pitch, velocity=p["velocity"] if on else 0, channel=channel,
                                  time=tick - now))
        now = tick
    path.parent.mkdir(parents=True, exist_ok=True)
    mid.save(str(path))


class FluidRenderer:
    """One fluidsynth per soundfont, loaded once per process; reverb and chorus off so clips are dry and
    independent of each other."""

    def __init__(self, sample_rate: int) -> None:
        self.sample_rate = sample_rate
        self.synths: dict[str, tuple[object, int]] = {}

    def _synth(self, soundfont: str) -> tuple[object, int]:
        if soundfont not in self.synths:
            path = SOUNDFONTS[soundfont]
            if not path.is_file():
                raise FileNotFoundError(f"{path}: soundfont missing (install {SOUNDFONT_PACKAGES[soundfont]})")
            import fluidsynth

            fs = fluidsynth.Synth(samplerate=float(self.sample_rate), gain=0.6,
                                  **{"synth.reverb.active": 0, "synth.chorus.active": 0})
            self.synths[soundfont] = (fs, fs.sfload(str(path)))
        return self.synths[soundfont]

    def render(self, midi_path: Path, soundfont: str, tail: float = 1.0) -> np.ndarray:
        import mido

        fs, sfid = self._synth(soundfont)
        fs.system_reset()  # type: ignore[attr-defined]
        fs.program_select(9, sfid, 128, 0)  # type: ignore[attr-defined]
        chunks = []
        for msg in mido.MidiFile(str(midi_path)):
            if msg.time > 0:
                chunks.append(np.asarray(fs.get_samples(int(round(msg.time * self.sample_rate)))))  # type: ignore
            if msg.type == "program_change":
                fs.program_select(msg.channel, sfid, 0, msg.program)  # type: ignore[attr-defined]
            elif msg.type == "note_on" and msg.velocity > 0:
                fs.noteon(msg.channel, msg.note, msg.velocity)  # type: ignore[attr-defined]
            elif msg.type in ("note_off", "note_on"):
                fs.noteoff(msg.channel, msg.note)  # type: ignore[attr-defined]
        chunks.append(np.asarray(fs.get_samples(int(tail * self.sample_rate))))  # type: ignore[attr-defined]
        stereo = np.concatenate(chunks).astype(np.float32).reshape(-1, 2) / 32768.0
        return stereo.mean(axis=1)
