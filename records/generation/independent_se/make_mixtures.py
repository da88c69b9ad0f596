"""An independent test of the bundled enhancer (issue 26): real speech and real noise from packages that nobody
here trains, tunes or selects on, mixed into a folder that ``dashtok eval se`` reads like a corpus.

Clean speech: the Asterisk prompts of the reserved packages asterisk-core-sounds-it-g722 (a man, Italian) and
-ru-g722 (a woman, Russian), 2-8 s. Noise: the music and the shared sound effects of fillets-ng-data, and the sound
effects of tuxpaint-data. Each mixture: a prompt, one noise clip looped from a random offset, an SNR drawn from the
corpus's (-5 to 20 dB), all drawn from ``--seed``; the clean files lie under ``real-speech/`` so that ``eval se``
groups them as real speech.

    python records/generation/independent_se/make_mixtures.py OUT [--n 60] [--seed 0]
    dashtok eval se OUT -o OUT/eval
"""

from __future__ import annotations

import argparse
import random
from pathlib import Path

import numpy as np
import soundfile as sf

from dashtok.audio_io import load_audio
from dashtok.data.manifest import Clip, write_manifest
from dashtok.data.mixtures import SNRS_DB, headroom_gain, mix_at_snr
from dashtok.data.recordings import decode_g722

SPEECH = {"it_IT_m_Carlo": ("Italian", "male"), "ru_RU_f_IvrvoiceRU": ("Russian", "female")}
ASTERISK = Path("/usr/share/asterisk/sounds")
NOISE_GLOBS = [(Path("/usr/share/games/fillets-ng/music"), "*.ogg"),
               (Path("/usr/share/games/fillets-ng/sound/share"), "*"), (Path("/usr/share/tuxpaint/sounds"), "*.wav")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out")
    parser.add_argument("--n", type=int, default=60)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = random.Random(f"independent-se/{args.seed}")
    out = Path(args.out)
    prompts = sorted(f for folder in SPEECH for f in (ASTERISK / folder).rglob("*.g722"))
    noises = sorted(f for folder, pattern in NOISE_GLOBS for f in folder.glob(pattern) if f.suffix in (".ogg", ".wav"))
    if not prompts or not noises:
        raise SystemExit("install the reserved packages first: asterisk-core-sounds-it-g722 "
                         "asterisk-core-sounds-ru-g722 fillets-ng-data tuxpaint-data")
    rng.shuffle(prompts)
    clips: list[Clip] = []
    for f in prompts:
        if len(clips) == 2 * args.n:
            break
        clean = decode_g722(f)
        if not 2.0 <= len(clean) / 16000 <= 8.0 or np.sqrt(np.mean(clean**2)) < 1e-3:
            continue
        noise_file = rng.choice(noises)
        noise = load_audio(noise_file, 16000)
        if len(noise) < 8000 or np.sqrt(np.mean(noise**2)) < 1e-4:  # under 0.5 s, or silent
            continue
        snr = rng.choice(SNRS_DB)
        noisy = mix_at_snr(clean, "sound", [noise], snr, np.random.default_rng(rng.randrange(2**32)))
        gain = headroom_gain(noisy)
        voice = f.relative_to(ASTERISK).parts[0]
        language, gender = SPEECH[voice]
        i = len(clips) // 2
        clean_id = f"clean-{i:03d}"
        paths = {clean_id: f"real-speech/{clean_id}.flac", f"mix-{i:03d}": f"mixtures/mix-{i:03d}.flac"}
        for path, x in ((paths[clean_id], clean), (paths[f"mix-{i:03d}"], noisy * gain)):
            (out / path).parent.mkdir(parents=True, exist_ok=True)
            sf.write(out / path, x, 16000)
        clips.append(Clip(id=clean_id, source="reserved-asterisk", split="test", domain="speech",
                          caption=f"a {'man' if gender == 'male' else 'woman'} speaks {language}",
                          labels={"language": language, "gender": gender, "file": str(f)},
                          path=paths[clean_id], duration=len(clean) / 16000))
        clips.append(Clip(id=f"mix-{i:03d}", source="mixture", split="test", domain="mixture",
                          caption=f"speech over {noise_file.name} at {snr} dB SNR",
                          labels={"snr_db": snr, "clean_id": clean_id, "gain": gain, "noise": str(noise_file)},
                          path=paths[f"mix-{i:03d}"], duration=len(noisy) / 16000))
    write_manifest(out / "test.jsonl", clips)
    print(f"wrote {len(clips) // 2} mixtures of {len({c.labels['file'] for c in clips if c.domain == 'speech'})} "
          f"prompts over {len(noises)} noise files to {out}")


if __name__ == "__main__":
    main()
