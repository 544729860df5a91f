"""Training: the sharded train step, the loop (checkpoints, validation, pictures), its log."""
