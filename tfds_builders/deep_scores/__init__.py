"""The `deep_scores` TFDS builder; importing this package registers it with TFDS."""

from tfds_builders.deep_scores.deep_scores_dataset_builder import Builder

__all__ = ["Builder"]
