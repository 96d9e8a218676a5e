"""``python -m eval.gpu_speed``: the command-line name of :mod:`eval.timing.gpu_speed` (where the code lives)."""
from eval.timing.gpu_speed import main

if __name__ == "__main__":
    main()
