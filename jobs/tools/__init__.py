"""Operator tools beside the nightly tasks: the demo, hyper-parameter tuning and offline
experiments."""
