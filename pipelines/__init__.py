"""Offline jobs: data preparation, fine-tuning, evaluation, feeds, replay and benchmarks."""
