"""Tools that work on built or trained models (summaries, latent operations, export).

`latent` holds the latent-space tools (`interpolate`, `style_mix`, `project`, `slerp`); the
first three are also ``ganforge.interpolate`` and so on."""
