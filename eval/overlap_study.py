"""``python -m eval.overlap_study``: the command-line name of :mod:`eval.tables.overlap_study` (where the code lives)."""
from eval.tables.overlap_study import main

if __name__ == "__main__":
    main()
