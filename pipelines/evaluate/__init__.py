"""Evaluation: the temporal holdout, ranking metrics, the quality gate and the run report."""
