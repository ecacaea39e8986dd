"""Tools that work on built or trained models (summaries, latent operations, export)."""
