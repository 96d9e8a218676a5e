"""Scoring: museval BSSEval v4 SDR and the fast utterance SDR."""
