"""``python -m eval.ladder_speed``: the command-line name of :mod:`eval.timing.ladder` (where the code lives)."""
from eval.timing.ladder import main

if __name__ == "__main__":
    main()
