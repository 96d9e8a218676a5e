"""``python -m compress.prune ...``: the Hydra entry point in :mod:`compress.prune.cli`."""
from .cli import main

main()
