"""Feature networks: image -> feature vector, for metrics and for perceptual/content losses.

- `domain`: a small classifier trained by GANForge on a labeled data set itself (offline,
  cached by a hash of the data and its settings); `build_domain_network` trains it on first
  use, `cached_domain_network` only ever reads the cache.
- `inception`: the standard FID Inception-v3 (the 2015-12-05 TensorFlow graph), weights from a
  file the user supplies.

This package sits below `models` and `metrics` (layer 1: it imports only errors, registry,
images, nn and data), so a family can use one of these networks as a training loss without
importing the metrics, and the metrics score with them without knowing any family.  A network
used as a training loss should never be the one that scores the same run.
"""
