"""The corpus builder: real labels (pitch by autocorrelation), disjoint splits, determinism, resumability."""

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from dashtok.data import speech
from dashtok.data.build import build, plan
from dashtok.data.manifest import Clip, read_manifest
from dashtok.data.mixtures import colored_noise, plan_mixtures
from dashtok.data.music import HELD_OUT_SOUNDFONT, SOUNDFONTS, FluidRenderer, write_midi
from dashtok.data.recordings import ASTERISK, ASTERISK_VOICES, decode_g722, drum_class, plan_asterisk
from dashtok.data.speech import ESPEAK_HELD_OUT

TOOLS = ["espeak-ng", "flite", "text2wave"]
missing = [t for t in TOOLS if shutil.which(t) is None] + [str(p) for p in SOUNDFONTS.values() if not p.is_file()]
needs_tools = pytest.mark.skipif(bool(missing), reason=f"audio tools missing: {missing} "
                                                      f"(bash scripts/install_audio_tools.sh)")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if missing:
        pytest.skip(f"audio tools missing: {missing}")
    root = tmp_path_factory.mktemp("corpus")
    build(root, preset="tiny", seed=0, log=False)
    return root


def all_clips(root: Path) -> list[Clip]:
    return [c for s in ("train", "valid", "test") for c in read_manifest(root / f"{s}.jsonl")]


def f0_autocorrelation(x: np.ndarray, sr: int) -> float:
    x = x - x.mean()
    ac = np.fft.irfft(np.abs(np.fft.rfft(x, 2 * len(x))) ** 2)[: len(x)]
    lo, hi = sr // 1000, sr // 50  # 50 Hz .. 1 kHz
    top = ac[lo:hi].max()
    # The first local maximum within 10 % of the best: avoids picking a multiple of the period (octave errors).
    lag = next(k for k in range(lo + 1, hi - 1) if ac[k] >= 0.9 * top and ac[k] >= ac[k - 1] and ac[k] >= ac[k + 1])
    return sr / lag


def test_plan_is_deterministic_and_splits_are_disjoint() -> None:
    a, b = plan(0.3, seed=5, max_recordings=10), plan(0.3, seed=5, max_recordings=10)
    assert [(c.id, c.split, c.caption, c.labels) for c in a] == [(c.id, c.split, c.caption, c.labels) for c in b]
    assert plan(0.3, seed=6, max_recordings=10)[0].labels != a[0].labels
    texts: dict[str, set[str]] = {"train": set(), "valid": set(), "test": set()}
    for c in a:
        if c.source == "asterisk":  # no transcripts: split by prompt name
            texts[c.split].add(f"asterisk/{c.labels['prompt']}")
        elif c.domain == "speech" and c.source != "real-speech":
            texts[c.split].add(c.labels["text"])
        if c.source == "espeak":
            variant = c.labels["voice"].split(":")[1]
            for split, voices in ESPEAK_HELD_OUT.items():
                if variant in voices:
                    assert c.split == split and c.labels["voice_seen"] is False
        if c.source == "fluidsynth" and c.labels["soundfont"] == HELD_OUT_SOUNDFONT:
            assert c.split == "test" and c.labels["timbre_seen"] is False
        if c.source == "real-speech" or (c.source == "mixture" and c.labels["real"]):
            assert c.split == "test"  # the held-out real speech (the Asterisk prompts are real too, and trained on)
        if c.source == "scene":
            parts = [x for x in a if x.id in c.labels["part_ids"]]
            assert len(parts) == c.labels["n_sources"] >= 2 and {x.split for x in parts} == {c.split}
        if c.source == "mixture":
            clean = next(x for x in a if x.id == c.labels["clean_id"])
            noise_splits = {x.split for x in a if x.id in c.labels["noise_ids"]}
            assert clean.split == c.split and noise_splits <= {c.split}
    assert not texts["train"] & texts["test"] and not texts["train"] & texts["valid"]
    assert not texts["valid"] & texts["test"]


@needs_tools
def test_built_corpus_has_valid_audio_and_labels(corpus: Path) -> None:
    clips = all_clips(corpus)
    summary = json.loads((corpus / "build.json").read_text())
    assert summary["total_clips"] == len(clips) > 30
    sources = {c.source for c in clips}
    assert {"espeak", "flite", "festival", "fluidsynth", "mixture", "scene"} <= sources
    for c in clips:
        x, sr = sf.read(corpus / c.path, dtype="float32")
        assert sr == 16000 and x.ndim == 1
        assert abs(len(x) / sr - c.duration) < 1e-3, c.id
        assert np.sqrt(np.mean(x**2)) > 1e-4, f"{c.id} is silent"
        assert np.abs(x).max() < 0.999, f"{c.id} clips"
        assert c.caption and c.split in c.path


@needs_tools
def test_rendered_pitch_matches_the_midi_note(tmp_path: Path) -> None:
    renderer = FluidRenderer(16000)
    for program, pitch in [(0, 57), (40, 69), (73, 72), (56, 60), (42, 48)]:
        clip = Clip(id=f"n{program}", source="fluidsynth", split="train", domain="music", caption="",
                    params={"notes": [(0.0, 1.5, pitch)], "bpm": 60, "program": program, "velocity": 100})
        write_midi(clip, tmp_path / f"{clip.id}.mid")
        x = renderer.render(tmp_path / f"{clip.id}.mid", "FluidR3_GM")
        f0 = f0_autocorrelation(x[1600:12800], 16000)
        expected = 440.0 * 2 ** ((pitch - 69) / 12)
        assert abs(12 * np.log2(f0 / expected)) < 0.5, (program, pitch, f0, expected)


@needs_tools
def test_build_is_resumable_and_reproducible(corpus: Path, tmp_path: Path) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(corpus, copy)
    victim = next(c for c in all_clips(copy) if c.source == "espeak")
    (copy / victim.path).unlink()
    (copy / victim.path).with_name(f".{Path(victim.path).name}.partial").write_bytes(b"half")  # a killed write
    manifest_before = (corpus / "train.jsonl").read_text() + (corpus / "test.jsonl").read_text()
    build(copy, preset="tiny", seed=0, log=False)
    assert (copy / victim.path).is_file()
    assert (copy / "train.jsonl").read_text() + (copy / "test.jsonl").read_text() == manifest_before
    a, _ = sf.read(corpus / victim.path)
    b, _ = sf.read(copy / victim.path)
    np.testing.assert_array_equal(a, b)  # espeak renders bit-exactly


def test_missing_tool_gives_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(speech.shutil, "which", lambda name: None)
    with pytest.raises(FileNotFoundError, match="install the Debian package espeak-ng"):
        speech.require("espeak-ng", "espeak-ng")


def test_labels_from_names_and_noise_colours() -> None:
    assert [drum_class(n) for n in ["Kick", "Snare Jazz", "Closed HH", "Tom Hi", "Crash", "Hand Clap", "Cowbell"]] \
        == ["kick", "snare", "hihat", "tom", "cymbal", "clap", "cymbal"]
    rng = np.random.default_rng(0)
    for kind, slope in [("white", 0.0), ("pink", -1.0), ("brown", -2.0)]:
        x = colored_noise(kind, 1 << 16, rng)
        power = np.abs(np.fft.rfft(x)) ** 2
        f = np.fft.rfftfreq(len(x))
        band = (f > 0.001) & (f < 0.4)
        fitted = np.polyfit(np.log(f[band]), np.log(power[band]), 1)[0]
        assert abs(fitted - slope) < 0.15, (kind, fitted)


def test_asterisk_prompts_split_by_prompt_across_languages(tmp_path: Path) -> None:
    """Offline, on empty stand-in files: a prompt lands in one split in every language; tones and silences stay out."""
    prompts = [f"prompt-{i:03d}" for i in range(60)] + ["digits/7", "letters/a", "beep", "ascending-2tone",
                                                        "silence/1"]
    for voice in ASTERISK_VOICES:
        for prompt in prompts:
            f = tmp_path / voice.folder / f"{prompt}.g722"
            f.parent.mkdir(parents=True, exist_ok=True)
            f.touch()
    clips = plan_asterisk(None, tmp_path)
    assert {c.labels["prompt"] for c in clips} == set(prompts) - {"beep", "ascending-2tone", "silence/1"}
    split_of: dict[str, set[str]] = {}
    for c in clips:
        split_of.setdefault(c.labels["prompt"], set()).add(c.split)
        assert c.source == "asterisk" and c.domain == "speech" and c.labels["real"] is True
        assert c.labels["license"] == "CC-BY-SA-3.0" and c.labels["package"].startswith("asterisk-core-sounds-")
        assert c.labels["language"] in ("English", "Spanish", "French") and c.labels["speaker"]
    assert all(len(s) == 1 for s in split_of.values())  # disjoint by prompt, whatever the language
    assert {s for v in split_of.values() for s in v} == {"train", "valid", "test"}
    assert len(clips) == 3 * 62 and len({c.id for c in clips}) == len(clips)
    mixtures = plan_mixtures(20, 0, clips + plan(0.05, 0, 2))
    assert not any(m.labels["clean_id"].startswith("asterisk-") for m in mixtures)


@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="ffmpeg missing (bash scripts/install_audio_tools.sh)")
def test_g722_decodes_to_16khz(tmp_path: Path) -> None:
    """A 440 Hz tone encoded to raw G.722 by ffmpeg decodes back at 16 kHz, the right length and pitch."""
    raw = tmp_path / "tone.g722"
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-f", "lavfi", "-i", "sine=frequency=440:duration=1",
                    "-ar", "16000", "-ac", "1", "-c:a", "g722", "-f", "g722", str(raw)], check=True)
    x = decode_g722(raw)
    assert raw.stat().st_size * 2 == len(x) and abs(len(x) - 16000) <= 160
    assert abs(f0_autocorrelation(x[1600:9600], 16000) - 440) < 5


@pytest.mark.skipif(not (ASTERISK / ASTERISK_VOICES[0].folder).is_dir(),
                    reason="asterisk-core-sounds-en-g722 missing (bash scripts/install_audio_tools.sh)")
@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="ffmpeg missing (bash scripts/install_audio_tools.sh)")
def test_installed_asterisk_prompts_are_speech() -> None:
    clips = plan_asterisk(None)
    present = {c.labels["language"] for c in clips}
    assert "English" in present and len(clips) > 400
    clip = next(c for c in clips if c.labels["prompt"] == "conf-getpin" and c.labels["language"] == "English")
    x = decode_g722(clip.params["file"])
    assert 1.0 < len(x) / 16000 < 10.0 and 0.05 < np.abs(x).max() < 1.0


def test_spread_covers_the_whole_list() -> None:
    from dashtok.data.manifest import spread

    assert spread(list(range(10)), 3) == [0, 3, 6] and spread([1, 2], 5) == [1, 2] and spread([], 3) == []
    picked = spread(list(range(4142)), 1500)  # eval gen's training clips: the manifest's last domains included
    assert len(picked) == len(set(picked)) == 1500 and picked[-1] >= 4142 - 3
