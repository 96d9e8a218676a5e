"""Export a trained network for MSST/UVR and our runner, with a model card.

``python -m train.export CKPT [--out DIR]`` reads a Lightning checkpoint (or an MSST state dict +
YAML) and writes ``<out>/<name>.ckpt`` (plain MSST state dict), ``<out>/<name>.yaml`` (MSST config:
uniform widths as ``num_channels``/``growth``) and ``model_card.{json,md}``.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from eval.timing.benchlib import machine_info
from separation.atomic_io import atomic_write_bytes
from separation.checkpoint import read_state_dict, save_model
from separation.config import ModelSpec
from separation.errors import CheckpointError, exit_on_user_error
from separation.model import TFC_TDF_net


def model_from_lightning(ckpt: str | Path) -> TFC_TDF_net:
    """The network inside a Lightning checkpoint of :mod:`train.modules` (EMA weights if used)."""
    obj = torch.load(ckpt, map_location="cpu", weights_only=True)
    spec_dict = (obj.get("hyper_parameters") or {}).get("spec") if isinstance(obj, dict) else None
    if spec_dict is None:
        raise CheckpointError(f"{ckpt} is not a drumsep-lab Lightning checkpoint (no hyper_parameters.spec).")
    state = {k.removeprefix("model."): v for k, v in obj["state_dict"].items() if k.startswith("model.")}
    model = TFC_TDF_net(ModelSpec.from_dict(spec_dict))
    model.load_state_dict(state, strict=True)
    return model.eval()


def params_of(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def write_card(out_dir: Path, card: dict) -> tuple[Path, Path]:
    """``model_card.json`` and a readable ``model_card.md``, both written atomically."""
    json_path, md_path = out_dir / "model_card.json", out_dir / "model_card.md"
    atomic_write_bytes(json_path, json.dumps(card, indent=2).encode())
    lines = [f"# {card['name']}", "", f"- command: `{card.get('command')}`", f"- teacher: {card.get('teacher')}",
             f"- data: {card.get('data')}", f"- steps: {card.get('steps')}", f"- params: {card.get('params'):,}",
             f"- machine: {card.get('machine')}", ""]
    table = card.get("results_table")
    if table:
        lines += ["## Measured", "", table, ""]
    atomic_write_bytes(md_path, "\n".join(lines).encode())
    return json_path, md_path


def export_model(model: TFC_TDF_net, out_dir: str | Path, name: str, card: dict, half: bool = False) -> dict:
    out_dir = Path(out_dir)
    ckpt, yaml_path = save_model(model, out_dir / f"{name}.ckpt", half=half)
    card = {"name": name, "params": params_of(model), "machine": machine_info(), **card,
            "files": {"checkpoint": str(ckpt), "config": str(yaml_path)}}
    json_path, md_path = write_card(out_dir, card)
    return {"checkpoint": ckpt, "config": yaml_path, "card": json_path, "card_md": md_path}


def export_and_report(model: TFC_TDF_net, cfg, command: str, teacher, steps: int) -> dict:
    """End-of-run export; with ``cfg.export.evaluate`` also measures the student against the
    teacher (museval on held-out kits, fidelity, speed ratio) and prints the table."""
    from omegaconf import OmegaConf

    out = Path(cfg.output_dir) / "export"
    name = f"{cfg.run_name}"
    data = OmegaConf.to_container(cfg.data, resolve=True)
    teacher_desc = OmegaConf.to_container(cfg.teacher, resolve=True) if teacher is not None else None
    paths = export_model(model.cpu().eval(), out, name, {"command": command, "teacher": teacher_desc,
                                                        "data": data, "steps": steps})
    if cfg.export.evaluate:
        from .report import evaluate_export
        results = evaluate_export(cfg, paths, teacher_desc, command)
        card = json.loads(Path(paths["card"]).read_text())
        card.update(results)
        write_card(out, card)
    print(f"exported {name}: {paths['checkpoint']} + {paths['config']} (card: {paths['card_md']})")
    return paths


@exit_on_user_error
def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m train.export", description=__doc__.splitlines()[0])
    p.add_argument("checkpoint", type=Path, help="Lightning .ckpt from train.distill/train.teacher, or an MSST .ckpt")
    p.add_argument("--config", type=Path, default=None, help="MSST YAML for a plain state dict")
    p.add_argument("--out", type=Path, default=None, help="default: <checkpoint dir>/../export")
    p.add_argument("--name", default=None)
    p.add_argument("--half", action="store_true", help="store fp16 tensors (half the size)")
    args = p.parse_args(argv)
    try:
        model = model_from_lightning(args.checkpoint)
    except CheckpointError:
        from separation.checkpoint import load_model
        model = load_model(args.checkpoint, args.config)
    out = args.out or args.checkpoint.parent.parent / "export"
    name = args.name or args.checkpoint.stem
    import sys
    shown = sys.argv[1:] if argv is None else argv
    paths = export_model(model, out, name, {"command": "python -m train.export " + " ".join(map(str, shown)),
                                            "source": str(args.checkpoint)}, half=args.half)
    read_state_dict(paths["checkpoint"])  # proves the file reloads weights-only
    print(f"wrote {paths['checkpoint']}, {paths['config']}, {paths['card']}")


if __name__ == "__main__":
    main()
