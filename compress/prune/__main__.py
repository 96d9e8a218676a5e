"""``python -m compress.prune [+config=...] [prune.ratio=0.5]``: compose the Hydra config and run
:func:`compress.prune.cli.prune_run`. The decorator lives here, in the module Python runs as
``__main__``, because Hydra resolves ``config_path`` from the file only in that case."""
import hydra
from omegaconf import DictConfig

from separation.errors import exit_on_user_error

from .cli import prune_run


@hydra.main(config_path="../../configs", config_name="compress/prune", version_base="1.3")
def main(cfg: DictConfig) -> None:
    exit_on_user_error(prune_run)(cfg)


main()
