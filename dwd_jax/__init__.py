"""Deep Watershed Detector for optical music recognition, in JAX/Flax.

Importing the package registers the `deep_scores` TFDS builder, so `tfds.data_source(
"deep_scores/synthetic", ...)` works after `import dwd_jax`. That import pulls in TFDS but not
JAX; the modules that need JAX import it themselves.
"""

import tfds_builders.deep_scores  # noqa: F401  (registers `deep_scores` with TFDS)
