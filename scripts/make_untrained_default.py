"""Write the bundled *untrained* placeholder model (random weights, seed 0, preset "small").

It exists so the API, CLI and tests work from the first commit; ``dashtok info`` says plainly that it is untrained.
The training recipe (issue 4) replaces it with a trained model and records its own command beside it.

    .venv/bin/python scripts/make_untrained_default.py
"""

from pathlib import Path

import torch

from dashtok import Tokenizer, TokenizerConfig


def main() -> None:
    torch.manual_seed(0)
    model = Tokenizer(TokenizerConfig.preset("small"))
    out = Path(__file__).resolve().parents[1] / "src" / "dashtok" / "assets" / "default.safetensors"
    model.save(out, training={"trained": False, "note": "random weights (seed 0); placeholder until a trained "
                              "model replaces it", "command": "python scripts/make_untrained_default.py"})
    print(f"wrote {out} ({out.stat().st_size / 2**20:.1f} MiB), model id {model.model_id}")


if __name__ == "__main__":
    main()
