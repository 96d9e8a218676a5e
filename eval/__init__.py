"""Evaluation: museval SDR, fast utterance SDR, speed benchmarks, the Pareto table."""
