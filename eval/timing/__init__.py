"""Timing: speed of the runner and its backends, memory, the straightforward reference implementation."""
