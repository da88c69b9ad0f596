"""The decoder and head of one tokenizer file on the injection (and latent statistics) of another: the start of a
decoder-only fine-tune (``tokenizer.freeze_injection``, issue 29, session 34) that brings a decoder trained with its
own injection back to the latents of the bundled default, so that latents already stored, the generator and the
enhancer stay valid. Everything else (encoder, config, training record) is DECODER's; both must share the encoder.

    python records/long_run/swap_injection.py DECODER_MODEL INJECTION_MODEL OUT
"""

from __future__ import annotations

import argparse

import torch

from dashtok import Tokenizer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("decoder", help="tokenizer file whose decoder and head are kept")
    parser.add_argument("injection", help="tokenizer file whose injection and latent statistics are taken")
    parser.add_argument("out")
    args = parser.parse_args()
    model, donor = Tokenizer.load(args.decoder), Tokenizer.load(args.injection)
    own, theirs = model.state_dict(), donor.state_dict()
    for key in own:
        if key.startswith("encoder.") and not torch.equal(own[key], theirs[key]):
            raise SystemExit(f"swap_injection: {args.decoder} and {args.injection} have different encoders ({key})")
    taken = [k for k in own if k.startswith(("injection.", "latent_"))]
    model.load_state_dict(own | {k: theirs[k] for k in taken}, strict=True)
    record = dict(model.training_record)
    record["injection_from"] = f"{args.injection} ({donor.model_id}): {', '.join(taken)}"
    model.save(args.out, training=record)
    print(f"{args.out}: decoder and head of {args.decoder}, injection and latent statistics of {args.injection}")


if __name__ == "__main__":
    main()
