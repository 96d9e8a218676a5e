"""``python -m eval.speed``: the command-line name of :mod:`eval.timing.speed` (where the code lives)."""
from eval.timing.speed import main

if __name__ == "__main__":
    main()
