"""Give generator and enhancer files written before latent ids (dashtok before session 34) the latent id of the
tokenizer they were trained on, so that a decoder fine-tuned on the same latents (``tokenizer.freeze_injection``)
admits them. Weights and training records stay as they are; a file tied to another tokenizer is refused.

    python scripts/add_latent_id.py TOKENIZER FILE [FILE ...]
"""

from __future__ import annotations

import argparse

from dashtok import Tokenizer
from dashtok.generate.tied import add_latent_id


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("tokenizer", help="the tokenizer checkpoint the files were trained on")
    parser.add_argument("files", nargs="+")
    args = parser.parse_args()
    tokenizer = Tokenizer.load(args.tokenizer)
    for path in args.files:
        tie = add_latent_id(path, tokenizer)
        print(f"{path}: tied to {tie.tokenizer_id}, {tie.latent_id}")


if __name__ == "__main__":
    main()
