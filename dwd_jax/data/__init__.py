"""Reading pages for training: the DeepScores records, degradations and the grain input pipeline."""
