"""The study layer: Ray Tune trainables around the training loop (which knows nothing of Ray)."""
