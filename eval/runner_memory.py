"""``python -m eval.runner_memory``: the command-line name of :mod:`eval.timing.runner_memory` (where the code lives)."""
from eval.timing.runner_memory import main

if __name__ == "__main__":
    main()
