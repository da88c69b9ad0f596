"""Training recipe (needs the ``train`` extra). Imports the core; the core never imports this package.

Stages, each one command with a TOML config in ``configs/``:
1. ``mae``: masked-autoencoder pretraining of a small Dasheng encoder (skipped when you bring an upstream one);
2. ``tokenizer``: encoder frozen; the injection layer and Vocos decoder trained with multi-resolution mel loss,
   then adversarial (multi-period + multi-resolution discriminators, hinge) and feature-matching losses.
"""
