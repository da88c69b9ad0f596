"""Generation on dashtok latents (flow matching). Imports the core; the core never imports this package."""
