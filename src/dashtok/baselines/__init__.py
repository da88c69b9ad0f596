"""Baselines that dashtok is measured against. ``vae``: a mel VAE with the tokenizer's latent shape and decoder.

Imports the core, never imported by it.
"""
