"""General-MIDI drum kits from SoundFont 2 files, written as Hydrogen kits
(CLI: ``python -m drumdata.soundfonts --out .kits``).

Why: the 11 Debian Hydrogen training kits hold few cymbals and hi-hats, and the teacher's weak
stems on unseen kits are exactly those (README, *The teacher against hours of training audio*:
more hours of the same kits did not help, more kits might). Debian ships more multi-sampled drum
kits as SoundFonts: ``fluid-soundfont-gm``, ``musescore-general-soundfont-lossless``,
``timgm6mb-soundfont`` (GM drum presets, bank 128) and ``avldrums.lv2-soundfont`` (AVL's Red
Zeppelin; its Black Pearl is the same recording as the held-out Hydrogen kit *The Black Pearl 1.0*
and is never converted).

Each drum preset becomes a folder with a ``drumkit.xml`` (Hydrogen 0.9.7 layout) and one 16-bit
FLAC per velocity layer, so :func:`drumdata.kits.load_kit`, the kit splits and every renderer take
it unchanged. Per GM key, the preset's and instrument's zones are resolved as the SoundFont 2.04
spec says (global zones, key and velocity ranges, additive preset generators); a sample is played
at the key's pitch (root key, scale tuning, coarse/fine tune, pitch correction), panned, attenuated,
linked left/right samples become one stereo layer, and looped samples are unrolled for their
volume-envelope decay. Other generators (filters, modulators, envelopes of unlooped samples)
are ignored: they are nearly always neutral on one-shot drum samples.
"""
from __future__ import annotations

import argparse
import struct
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from separation.atomic_io import atomic_dir
from separation.audio import SAMPLE_RATE, resample
from separation.errors import UserError, exit_on_user_error

from .kits import MAX_SAMPLE_SECONDS, ROLE_CLASS, guess_role, write_kit_sample

SOUNDFONT_DIR = Path("/usr/share/sounds/sf2")
INSTALL_HINT = ("install them with `sudo apt-get install fluid-soundfont-gm musescore-general-soundfont-lossless "
                "timgm6mb-soundfont avldrums.lv2-soundfont`")
# The held-out test kit "The Black Pearl 1.0" is AVL's Black Pearl: its SoundFont would leak it.
HELD_OUT_SOUNDFONTS = ("Black_Pearl",)
DRUM_BANK = 128
# Acoustic GM drum presets worth training on (program -> name); 808/electronic/orchestra sets
# are left out (the test kits are acoustic and the renderer has its own synthetic kits).
GM_DRUM_PRESETS = {0: "Standard", 8: "Room", 16: "Power", 32: "Jazz", 40: "Brush"}

# GM percussion keys -> (instrument name written to drumkit.xml, role); the names are chosen so
# that drumdata.kits.guess_role gives back the role (checked in the tests).
GM_KEYS: dict[int, tuple[str, str]] = {
    35: ("Kick 2", "kick"), 36: ("Kick", "kick"), 37: ("Side Stick", "sidestick"),
    38: ("Snare", "snare"), 40: ("Snare 2", "snare"),
    41: ("Floor Tom Low", "tom_low"), 43: ("Floor Tom High", "tom_low"), 45: ("Tom Mid 2", "tom_mid"),
    47: ("Tom Mid", "tom_mid"), 48: ("Tom Hi Mid", "tom_hi"), 50: ("Tom Hi", "tom_hi"),
    42: ("Hi-Hat Closed", "hh_closed"), 44: ("Hi-Hat Pedal", "hh_pedal"), 46: ("Hi-Hat Open", "hh_open"),
    49: ("Crash", "crash"), 57: ("Crash 2", "crash"), 51: ("Ride", "ride"), 59: ("Ride 2", "ride"),
    53: ("Ride Bell", "ride_bell"), 52: ("China", "china"), 55: ("Splash", "splash"),
}
assert all(guess_role(name) == role and role in ROLE_CLASS for name, role in GM_KEYS.values())

# SoundFont 2.04 generator numbers used here.
PAN, DECAY_VOL_ENV, INSTRUMENT, KEY_RANGE, VEL_RANGE = 17, 36, 41, 43, 44
INITIAL_ATTENUATION, COARSE_TUNE, FINE_TUNE, SAMPLE_ID, SAMPLE_MODES = 48, 51, 52, 53, 54
SCALE_TUNING, OVERRIDING_ROOT_KEY = 56, 58
_RANGES = (KEY_RANGE, VEL_RANGE)
# Preset-level generators that add to the instrument's (spec 8.5); the rest are not allowed there.
_ADDITIVE = (PAN, DECAY_VOL_ENV, INITIAL_ATTENUATION, COARSE_TUNE, FINE_TUNE, SCALE_TUNING)
_DEFAULTS = {PAN: 0, DECAY_VOL_ENV: -12000, INITIAL_ATTENUATION: 0, COARSE_TUNE: 0, FINE_TUNE: 0,
             SAMPLE_MODES: 0, SCALE_TUNING: 100, OVERRIDING_ROOT_KEY: -1}
LEFT_SAMPLE, RIGHT_SAMPLE = 4, 2
_PRESET_DATA = ("phdr", "pbag", "pgen", "inst", "ibag", "igen", "shdr")  # the pdta chunks read here


@dataclass(frozen=True)
class SampleHeader:
    name: str
    start: int
    end: int
    loop_start: int
    loop_end: int
    rate: int
    root_key: int
    correction: int  # cents
    link: int
    kind: int  # 1 mono, 2 right, 4 left, 8 linked; +0x8000 ROM


@dataclass
class Zone:
    """One resolved (preset zone x instrument zone) pair: a sample and its generator values."""
    key_range: tuple[int, int]
    vel_range: tuple[int, int]
    gens: dict[int, int]
    sample: SampleHeader


class SoundFont:
    """The parts of an SF2 file a drum kit needs; sample data stays on disk (memory-mapped)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        with open(self.path, "rb") as f:
            head = f.read(12)
            if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"sfbk":
                raise UserError(f"{self.path} is not a SoundFont 2 file (no RIFF sfbk header)")
            chunks = self._chunks(f, 12, 8 + struct.unpack("<I", head[4:8])[0])
            missing = [name for name in ("smpl", *_PRESET_DATA) if name not in chunks]
            if missing:
                raise UserError(f"{self.path} lacks the {', '.join(missing)} chunk(s): not a usable SoundFont 2 file")
            raw = {}
            for name in _PRESET_DATA:
                f.seek(chunks[name][0])
                raw[name] = f.read(chunks[name][1])
        offset, size = chunks["smpl"]
        self.samples = np.memmap(self.path, dtype="<i2", mode="r", offset=offset, shape=(size // 2,))
        self.presets = [(_name(n), p, b, bag) for n, p, b, bag, *_ in _records(raw["phdr"], "<20sHHHIII")]
        self.preset_bags = [g for g, _ in _records(raw["pbag"], "<HH")]
        self.preset_gens = _gens(raw["pgen"])
        self.instruments = [(n, bag) for n, bag in _records(raw["inst"], "<20sH")]
        self.instrument_bags = [g for g, _ in _records(raw["ibag"], "<HH")]
        self.instrument_gens = _gens(raw["igen"])
        self.headers = [SampleHeader(_name(n), *rest) for n, *rest in _records(raw["shdr"], "<20sIIIIIBbHH")]

    @staticmethod
    def _chunks(f, start: int, end: int) -> dict[str, tuple[int, int]]:
        """Offsets and sizes of the leaf chunks (sdta/pdta LISTs are descended into)."""
        found, pos = {}, start
        while pos + 8 <= end:
            f.seek(pos)
            cid, size = struct.unpack("<4sI", f.read(8))
            cid = cid.decode("latin-1")
            if cid == "LIST":
                found.update(SoundFont._chunks(f, pos + 12, pos + 8 + size))
            else:
                found[cid] = (pos + 8, size)
            pos += 8 + size + (size & 1)
        return found

    def drum_presets(self) -> list[tuple[str, int, int]]:
        """(name, program, bank) of every preset in the percussion bank."""
        return [(n, p, b) for n, p, b, _ in self.presets[:-1] if b == DRUM_BANK]

    def preset_index(self, program: int, bank: int) -> int | None:
        return next((i for i, (_, p, b, _) in enumerate(self.presets[:-1]) if p == program and b == bank), None)

    def zones(self, preset: int, key: int) -> list[Zone]:
        """Every sample zone that sounds for ``key`` in ``preset``, any velocity."""
        out = []
        for pgens in _zone_gens(self.preset_bags, self.preset_gens, self.presets[preset][3],
                                self.presets[preset + 1][3], INSTRUMENT):
            if INSTRUMENT not in pgens or not _holds(pgens.get(KEY_RANGE), key):
                continue
            inst = pgens[INSTRUMENT]
            for igens in _zone_gens(self.instrument_bags, self.instrument_gens, self.instruments[inst][1],
                                    self.instruments[inst + 1][1], SAMPLE_ID):
                if SAMPLE_ID not in igens or not _holds(igens.get(KEY_RANGE), key):
                    continue
                vel = _intersect(pgens.get(VEL_RANGE, (0, 127)), igens.get(VEL_RANGE, (0, 127)))
                if vel is None:
                    continue
                gens = {**_DEFAULTS, **igens}
                for g in _ADDITIVE:
                    gens[g] += pgens.get(g, 0)
                key_range = _intersect(pgens.get(KEY_RANGE, (0, 127)), igens.get(KEY_RANGE, (0, 127)))
                out.append(Zone(key_range, vel, gens, self.headers[igens[SAMPLE_ID]]))
        return out

    def zone_audio(self, zone: Zone, key: int) -> np.ndarray:
        """The zone's sample as float32 mono at 44.1 kHz, pitched for ``key``, looped samples unrolled."""
        h, g = zone.sample, zone.gens
        audio = self.samples[h.start:h.end].astype(np.float32) / 32768.0
        if g[SAMPLE_MODES] & 1 and h.loop_start < h.loop_end <= h.end:  # looped: unroll for the decay
            decay = min(2.0 ** (g[DECAY_VOL_ENV] / 1200.0), MAX_SAMPLE_SECONDS)
            loop = self.samples[h.loop_start:h.loop_end].astype(np.float32) / 32768.0
            head = self.samples[h.start:h.loop_start].astype(np.float32) / 32768.0
            need = max(int(decay * h.rate) - head.size, loop.size)
            audio = np.concatenate([head, np.tile(loop, -(-need // loop.size))])[:head.size + need]
            audio *= 10.0 ** (-5.0 * np.linspace(0.0, 1.0, audio.size, dtype=np.float32))  # -100 dB at the end
        root = g[OVERRIDING_ROOT_KEY] if g[OVERRIDING_ROOT_KEY] >= 0 else h.root_key
        cents = (key - root) * g[SCALE_TUNING] + 100 * g[COARSE_TUNE] + g[FINE_TUNE] + h.correction
        rate = h.rate * 2.0 ** (cents / 1200.0)  # playing faster = reading at a higher rate
        if audio.size < 16:
            return np.zeros(1, np.float32)
        return resample(audio[None], int(round(rate)), SAMPLE_RATE)[0]


def _records(blob: bytes, fmt: str) -> list[tuple]:
    return list(struct.iter_unpack(fmt, blob[: len(blob) - len(blob) % struct.calcsize(fmt)]))


def _gens(blob: bytes) -> list[tuple[int, int, bytes]]:
    """(operator, signed amount, raw amount) per generator record."""
    return [(op, struct.unpack("<h", raw)[0], raw) for op, raw in _records(blob, "<H2s")]


def _name(raw: bytes) -> str:
    return raw.split(b"\0", 1)[0].decode("latin-1").strip()


def _zone_gens(bags, gens, first_bag: int, end_bag: int, terminal: int) -> list[dict]:
    """Generators of each zone in ``[first_bag, end_bag)``; a first zone without the terminal
    generator (instrument / sampleID) is the global zone and is merged into the others."""
    zones = []
    for bag in range(first_bag, end_bag):
        zone = {}
        for op, amount, raw in gens[bags[bag]:bags[bag + 1]]:
            zone[op] = (raw[0], raw[1]) if op in _RANGES else (amount & 0xFFFF if op in (INSTRUMENT, SAMPLE_ID) else amount)
        zones.append(zone)
    if zones and terminal not in zones[0]:
        glob = zones.pop(0)
        zones = [{**glob, **z} for z in zones]
    return zones


def _holds(key_range, key: int) -> bool:
    return key_range is None or key_range[0] <= key <= key_range[1]


def _intersect(a, b):
    lo, hi = max(a[0], b[0]), min(a[1], b[1])
    return (lo, hi) if lo <= hi else None


def _pan_gains(pan: int) -> tuple[float, float]:
    """Constant-power gains for an SF2 pan in 0.1 % (-500 left .. 500 right); centre is -3 dB per side."""
    angle = (np.clip(pan, -500, 500) / 1000.0 + 0.5) * np.pi / 2
    return float(np.cos(angle)), float(np.sin(angle))


def key_layers(font: SoundFont, preset: int, key: int) -> list[tuple[tuple[int, int], np.ndarray]]:
    """Stereo velocity layers of one key: ((vmin, vmax), float32 (2, n)), in velocity order.
    Zones with the same velocity range are mixed (left/right linked samples become one stereo
    sample, layered samples sum as the synthesizer would play them)."""
    by_vel: dict[tuple[int, int], list[np.ndarray]] = {}
    for zone in font.zones(preset, key):
        mono = font.zone_audio(zone, key) * 10.0 ** (-zone.gens[INITIAL_ATTENUATION] / 200.0)
        kind = zone.sample.kind & 0x7FFF
        pan = -500 if kind == LEFT_SAMPLE else 500 if kind == RIGHT_SAMPLE else zone.gens[PAN]
        left, right = _pan_gains(pan)
        by_vel.setdefault(zone.vel_range, []).append(np.stack([mono * left, mono * right]))
    layers = []
    for vel, parts in sorted(by_vel.items()):  # cut to MAX_SAMPLE_SECONDS when stored (write_kit_sample)
        audio = np.zeros((2, max(p.shape[1] for p in parts)), np.float32)
        for p in parts:
            audio[:, :p.shape[1]] += p
        layers.append((vel, audio))
    return layers


def write_kit(font: SoundFont, preset: int, kit_name: str, out_dir: Path) -> dict[str, int]:
    """Write one drum preset as a Hydrogen kit folder ``out_dir/kit_name``; returns layers per role.
    The folder appears whole or not at all."""
    root = ET.Element("drumkit_info")
    ET.SubElement(root, "name").text = kit_name
    ET.SubElement(root, "info").text = f"GM drum preset {font.presets[preset][0]!r} of {font.path.name} (drumdata.soundfonts)"
    ET.SubElement(root, "license").text = "see the SoundFont's Debian package"
    inst_list = ET.SubElement(root, "instrumentList")
    counts: dict[str, int] = {}
    with atomic_dir(out_dir / kit_name) as tmp:
        for inst_id, (key, (name, role)) in enumerate(sorted(GM_KEYS.items())):
            layers = key_layers(font, preset, key)
            if not layers:
                continue
            inst = ET.SubElement(inst_list, "instrument")
            for tag, text in (("id", inst_id), ("name", name), ("volume", 1), ("gain", 1), ("pan_L", 1), ("pan_R", 1)):
                ET.SubElement(inst, tag).text = str(text)
            for j, ((vmin, vmax), audio) in enumerate(layers):
                fname = f"key{key}_v{j}.flac"
                write_kit_sample(tmp / fname, audio)
                layer = ET.SubElement(inst, "layer")
                for tag, text in (("filename", fname), ("min", vmin / 127), ("max", vmax / 127), ("gain", 1)):
                    ET.SubElement(layer, tag).text = str(text)
            counts[role] = counts.get(role, 0) + len(layers)
        ET.ElementTree(root).write(tmp / "drumkit.xml", encoding="utf-8", xml_declaration=True)
    return counts


def kit_name_for(font_path: Path, preset_name: str) -> str:
    return f"sf2-{font_path.stem}-{preset_name}".replace(" ", "_").replace("/", "_")


def convert(out_dir: str | Path, fonts: list[Path] | None = None, log=print) -> list[str]:
    """Convert the acoustic drum presets of ``fonts`` (default: every .sf2 in
    ``/usr/share/sounds/sf2`` but held-out ones) into kit folders under ``out_dir``."""
    out_dir = Path(out_dir)
    if fonts is None:
        if not SOUNDFONT_DIR.is_dir():
            raise UserError(f"no SoundFonts in {SOUNDFONT_DIR}; {INSTALL_HINT}.")
        fonts = sorted({p.resolve() for p in SOUNDFONT_DIR.glob("*.sf2")})
    written = []
    for path in fonts:
        path = Path(path)
        if any(h in path.name for h in HELD_OUT_SOUNDFONTS):
            log(f"{path.name}: skipped (the same kit as a held-out test kit)")
            continue
        font = SoundFont(path)
        chosen = [(n, p, b) for n, p, b in font.drum_presets() if p in GM_DRUM_PRESETS]
        if not chosen and len(font.presets) == 2:  # AVL's kit SoundFonts: one kit, bank 0, GM keys
            chosen = [font.presets[0][:3]]
        for name, program, bank in chosen:
            kit = kit_name_for(path, name)
            if (out_dir / kit / "drumkit.xml").is_file():
                log(f"{kit}: exists, kept")
                written.append(kit)
                continue
            counts = write_kit(font, font.preset_index(program, bank), kit, out_dir)
            log(f"{kit}: " + ", ".join(f"{role} {n}" for role, n in sorted(counts.items())))
            written.append(kit)
    if not written:
        raise UserError(f"no drum presets found in {', '.join(str(p) for p in fonts)}; {INSTALL_HINT}.")
    return written


@exit_on_user_error
def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True, help="kit folder to add the converted kits to (e.g. the packed .kits)")
    parser.add_argument("fonts", nargs="*", type=Path, help=f"SoundFont files (default: every .sf2 in {SOUNDFONT_DIR})")
    args = parser.parse_args(argv)
    convert(args.out, args.fonts or None)


if __name__ == "__main__":
    main()
