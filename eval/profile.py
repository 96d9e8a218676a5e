"""``python -m eval.profile``: the command-line name of :mod:`eval.timing.profile` (where the code lives)."""
from eval.timing.profile import main

if __name__ == "__main__":
    main()
