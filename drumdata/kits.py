"""Hydrogen drumkit.xml parsing and mapping of instruments to the 5 drum classes.

A :class:`Kit` is the in-memory format shared with :mod:`drumdata.synth`:
every mapped instrument has a *role* (e.g. ``hh_open``, ``tom_low``) that
belongs to one class of :data:`drumdata.STEMS`, and velocity layers holding
float32 ``(2, samples)`` audio at 44.1 kHz.

Three generations of drumkit.xml exist in the wild and all are handled:
  * 0.9.3: ``<instrument><filename>`` (one sample, pan_L/pan_R),
  * 0.9.4-0.9.7: ``<instrument><layer>`` (velocity layers, pan_L/pan_R),
  * 1.x: ``<instrument><instrumentComponent><layer>`` (namespaced, ``<pan>`` in [-1, 1]).
"""
from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf

from separation.audio import SAMPLE_RATE, read_audio
from separation.errors import AudioError, UserError

from . import STEMS
from .kit_tables import DEFAULT_SPLITS, KIT_KIND, KIT_ROLES

DEFAULT_KITS_DIR = Path("/usr/share/hydrogen/data/drumkits")
INSTALL_HINT = "install the real kits with `sudo apt-get install hydrogen-drumkits hydrogen-data`"
MAX_SAMPLE_SECONDS = 8.0  # cymbal tails beyond this are inaudible in a 10 s clip; bounds memory
FADE_SECONDS = 0.05  # a tail cut at MAX_SAMPLE_SECONDS fades out instead of clicking

ROLE_CLASS: dict[str, str] = {
    "kick": "kick",
    "snare": "snare", "rimshot": "snare", "sidestick": "snare",
    "tom_hi": "toms", "tom_mid": "toms", "tom_low": "toms",
    "hh_closed": "hh", "hh_open": "hh", "hh_pedal": "hh",
    "crash": "cymbals", "ride": "cymbals", "ride_bell": "cymbals", "china": "cymbals", "splash": "cymbals",
}
assert set(ROLE_CLASS.values()) == set(STEMS)

# Percussion outside the 5 classes; matched first so that e.g. "Cowbell" never becomes a ride bell.
_EXCLUDE = ("cowbell", "clap", "tambourine", "shaker", "conga", "bongo", "clave", "agogo", "whistle",
            "cajon", "maraca", "woodblock", "snap", "djembe", "zap", "fx", "click", "triangle",
            "timbale", "guiro", "cabasa", "waterglass", "sample:", "sangban", "dununba", "kenkeni")


@dataclass
class Layer:
    """One velocity layer: played for velocities in ``[vmin, vmax]``; ``audio`` is float32 (2, n)."""
    vmin: float
    vmax: float
    gain: float
    audio: np.ndarray


@dataclass
class Instrument:
    """A playable instrument; ``pan`` in [-1 (left), 1 (right)], ``gain`` includes volume."""
    name: str
    role: str
    gain: float
    pan: float
    layers: list[Layer]

    @property
    def cls(self) -> str:
        return ROLE_CLASS[self.role]

    def layer_for(self, velocity: float, rng: np.random.Generator) -> Layer:
        """Hydrogen's VELOCITY selection: a layer whose range holds ``velocity`` (else the nearest)."""
        hits = [l for l in self.layers if l.vmin <= velocity <= l.vmax]
        if not hits:
            hits = [min(self.layers, key=lambda l: min(abs(l.vmin - velocity), abs(l.vmax - velocity)))]
        return hits[int(rng.integers(len(hits)))] if len(hits) > 1 else hits[0]


@dataclass
class Kit:
    """A drum kit ready to render. ``kind``: acoustic | electronic | synthetic."""
    name: str
    kind: str
    instruments: list[Instrument]
    unmapped: list[str] = field(default_factory=list)
    skipped_samples: int = 0
    source: str = "hydrogen"  # or "synthetic"

    def by_role(self) -> dict[str, list[Instrument]]:
        out: dict[str, list[Instrument]] = {}
        for inst in self.instruments:
            out.setdefault(inst.role, []).append(inst)
        return out

    def classes(self) -> set[str]:
        return {inst.cls for inst in self.instruments}


def guess_role(name: str) -> str | None:
    """Keyword fallback for kits without an explicit table in :mod:`drumdata.kit_tables`."""
    n = name.lower()
    tokens = set(re.findall(r"[a-z]+", n))
    if not tokens or any(word in n for word in _EXCLUDE):
        return None
    if "hat" in tokens or tokens & {"hh", "ohh", "hihat"} or "hi-hat" in n:
        if tokens & {"open", "op", "opened", "semi", "semiopen", "ohh", "free"}:
            return "hh_open"
        return "hh_pedal" if tokens & {"pedal", "pd", "foot"} else "hh_closed"
    if "china" in n:
        return "china"
    if "splash" in n:
        return "splash"
    if "bell" in n or "cup" in n:
        return "ride_bell"
    if "ride" in n:
        return "ride"
    if "crash" in n or "cymbal" in n:
        return "crash"
    if "kick" in n or "bass drum" in n or "bassdrum" in n or "bd" in tokens:
        return "kick"
    if "snare" in n or "rim" in n or "stick" in n or "sd" in tokens:
        if "shot" in n:
            return "rimshot"
        return "sidestick" if ("stick" in n or "rim" in n) else "snare"
    if "tom" in n or "floor" in n:
        if "floor" in n or tokens & {"low", "lo"}:
            return "tom_low"
        return "tom_hi" if tokens & {"hi", "high"} else "tom_mid"
    return None


def role_for(kit_dir_name: str, instrument_name: str) -> str | None:
    """Explicit per-kit table first (``None`` there means deliberately unmapped), keywords otherwise."""
    table = KIT_ROLES.get(kit_dir_name)
    if table is not None:
        return table.get(instrument_name.strip())
    return guess_role(instrument_name)


def kit_kind(kit_dir_name: str, info: str = "") -> str:
    if kit_dir_name in KIT_KIND:
        return KIT_KIND[kit_dir_name]
    text = f"{kit_dir_name} {info}".lower()
    electronic = ("808", "909", "electro", "synth", "techno", "analog machine", "drum machine")
    return "electronic" if any(word in text for word in electronic) else "acoustic"


def _strip_namespaces(root: ET.Element) -> ET.Element:
    # 1.x kits live in xmlns="http://www.hydrogen-music.org/drumkit"; older ones have no namespace.
    for el in root.iter():
        if isinstance(el.tag, str) and "}" in el.tag:
            el.tag = el.tag.split("}", 1)[1]
    return root


def _float(el: ET.Element, tag: str, default: float) -> float:
    text = el.findtext(tag)
    try:
        return float(text) if text is not None and text.strip() else default
    except ValueError:
        return default


def _pan(inst: ET.Element) -> float:
    """Pan in [-1, 1]: 1.x stores ``<pan>``; older kits store per-channel gains pan_L/pan_R in [0, 1]."""
    if inst.find("pan") is not None:
        return float(np.clip(_float(inst, "pan", 0.0), -1.0, 1.0))
    left, right = _float(inst, "pan_L", 1.0), _float(inst, "pan_R", 1.0)
    if left == right:
        return 0.0
    # Same conversion Hydrogen 1.1 uses when it upgrades a legacy kit.
    return right / left - 1.0 if left > right else 1.0 - left / right


def parse_drumkit_xml(xml_path: Path) -> tuple[str, str, list[dict]]:
    """Return (kit name, info, instruments); each instrument is a dict with name, gain, pan and
    ``layers`` = list of (vmin, vmax, gain, filename). No audio is read here."""
    try:
        root = ET.parse(xml_path).getroot()
    except ET.ParseError:
        # A few community kits have stray bytes; parse the text leniently instead of giving up.
        root = ET.fromstring(xml_path.read_bytes().decode("utf-8", errors="replace"))
    root = _strip_namespaces(root)
    instruments = []
    for inst in root.iter("instrument"):
        name = (inst.findtext("name") or "").strip()
        gain = _float(inst, "gain", 1.0) * _float(inst, "volume", 1.0)
        layers = []
        for comp in inst.findall("instrumentComponent") or [None]:
            comp_gain = _float(comp, "gain", 1.0) if comp is not None else 1.0
            for layer in (comp if comp is not None else inst).findall("layer"):
                fname = (layer.findtext("filename") or "").strip()
                if fname:
                    layers.append((_float(layer, "min", 0.0), _float(layer, "max", 1.0),
                                   _float(layer, "gain", 1.0) * comp_gain, fname))
        if not layers and (inst.findtext("filename") or "").strip():  # 0.9.3 single-sample format
            layers.append((0.0, 1.0, 1.0, inst.findtext("filename").strip()))
        instruments.append({"name": name, "gain": gain, "pan": _pan(inst), "layers": layers})
    return (root.findtext("name") or xml_path.parent.name).strip(), root.findtext("info") or "", instruments


def list_kits(kits_dir: str | Path = DEFAULT_KITS_DIR) -> list[str]:
    """Names (directory names) of all kits with a drumkit.xml, sorted. UserError if there are none."""
    kits_dir = Path(kits_dir)
    if not kits_dir.is_dir():
        raise UserError(f"drum kit directory {kits_dir} does not exist; {INSTALL_HINT}.")
    names = sorted(p.parent.name for p in kits_dir.glob("*/drumkit.xml"))
    if not names:
        raise UserError(f"no Hydrogen kits (*/drumkit.xml) found in {kits_dir}; {INSTALL_HINT}.")
    return names


def load_kit(name: str, kits_dir: str | Path = DEFAULT_KITS_DIR, load_audio: bool = True) -> Kit:
    """Load one kit. Unreadable, missing or corrupt samples are skipped and counted in
    ``Kit.skipped_samples``; instruments left with no layers are dropped."""
    kit_dir = Path(kits_dir) / name
    xml_path = kit_dir / "drumkit.xml"
    if not xml_path.is_file():
        raise UserError(f"drum kit {name!r} not found ({xml_path} is missing); {INSTALL_HINT}.")
    _, info, parsed = parse_drumkit_xml(xml_path)
    kit = Kit(name=name, kind=kit_kind(name, info), instruments=[])
    max_len = int(MAX_SAMPLE_SECONDS * 44100)
    for spec in parsed:
        role = role_for(name, spec["name"])
        if role is None:
            if spec["layers"]:  # empty slots ("17", "") are template padding, not instruments
                kit.unmapped.append(spec["name"])
            continue
        layers = []
        for vmin, vmax, gain, fname in spec["layers"]:
            audio = np.zeros((2, 1), np.float32)
            if load_audio:
                try:
                    audio, _ = read_audio(kit_dir / fname)
                except AudioError:
                    kit.skipped_samples += 1
                    continue
                audio = np.ascontiguousarray(audio[:, :max_len])
            layers.append(Layer(min(vmin, vmax), max(vmin, vmax), gain, audio))
        if layers:
            kit.instruments.append(Instrument(spec["name"], role, spec["gain"], spec["pan"], layers))
    return kit


def write_kit_sample(path: Path, audio: np.ndarray) -> int:
    """Store one kit sample compactly, as :func:`load_kit` will use it: float32 ``(2, n)`` at
    44.1 kHz, cut to ``MAX_SAMPLE_SECONDS`` with a short fade-out, as 16-bit FLAC under ``path``
    (libsndfile reads it by content, whatever the file name). Returns the bytes written."""
    max_len, fade = int(MAX_SAMPLE_SECONDS * SAMPLE_RATE), int(FADE_SECONDS * SAMPLE_RATE)
    if audio.shape[1] > max_len:
        audio = audio[:, :max_len].copy()
        audio[:, -fade:] *= np.linspace(1.0, 0.0, fade, dtype=np.float32)
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), np.clip(audio.T, -1.0, 1.0), SAMPLE_RATE, format="FLAC", subtype="PCM_16")
    return path.stat().st_size


def usable(kit: Kit) -> bool:
    """A kit can drive a groove if it has at least kick, snare and hi-hat (toms/cymbals may be missing)."""
    return {"kick", "snare", "hh"} <= kit.classes()


def default_split(kit_name: str) -> str:
    """Fixed split of a kit: the table in :mod:`drumdata.kit_tables`, unknown kits go to train."""
    for split, names in DEFAULT_SPLITS.items():
        if kit_name in names:
            return split
    return "train"
