"""``python -m eval.frames``: the command-line name of :mod:`eval.tables.frames` (where the code lives)."""
from eval.tables.frames import main

if __name__ == "__main__":
    main()
