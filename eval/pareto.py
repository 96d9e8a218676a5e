"""``python -m eval.pareto``: the command-line name of :mod:`eval.tables.pareto` (where the code lives)."""
from eval.tables.pareto import main

if __name__ == "__main__":
    main()
