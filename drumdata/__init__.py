"""drumdata: training data for 5-stem drum separation.

Stem order everywhere in this package (and in the model's output) is :data:`STEMS`.

Modules:
    kits       -- parse Hydrogen drumkit.xml files into in-memory kits mapped to the 5 classes
    synth      -- pure-numpy fallback kits for machines without hydrogen-drumkits
    grooves    -- procedural, humanised drum patterns (event lists)
    render     -- StemGMD-style renderer: clips, stems, metadata, HF dataset (CLI)
    sources    -- loaders for rendered data, stem folders, mixture folders, HF datasets
    datamodule -- lightning DataModule with bounded-memory crops and MSST-like augmentation
"""
from __future__ import annotations

STEMS: tuple[str, ...] = ("kick", "snare", "toms", "hh", "cymbals")

__all__ = ["STEMS"]
