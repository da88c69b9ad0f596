"""Evaluation (``dashtok eval``). Imports the core; the core never imports this package."""
