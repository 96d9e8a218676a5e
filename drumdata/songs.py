"""Grooves from the drum patterns of Hydrogen's demo songs (Debian package ``hydrogen-data``).

The procedural grooves of :mod:`drumdata.grooves` are built from a few templates; the demo songs
add patterns and fills written by drummers, so the model also hears phrasing we did not invent.

What is read from each ``/usr/share/hydrogen/data/demo_songs/*.h2song``:
  * ``<bpm>`` and ``<swing_factor>`` (Hydrogen delays off-beat 16ths by swing x 1/32 note),
  * ``<instrumentList><instrument>``: ``<id>`` and ``<name>``,
  * ``<patternList><pattern>``: ``<name>``, ``<size>`` in ticks (48 per quarter note, 192 = one
    4/4 bar) and ``<noteList><note>`` with ``<position>`` (tick), ``<velocity>``, ``<instrument>`` (id),
  * ``<patternSequence><group><patternID>``: each group is one column of the song; its patterns
    play together and the column lasts as long as its longest pattern.
Note lead-lag, probability and pitch are ignored (all neutral in the shipped songs).

Mapping: instrument names become kit-independent roles with :func:`drumdata.kits.guess_role`, so
any kit can play a song; notes of percussion outside the 5 classes (cowbell, clap, conga, ...) are
dropped, and columns, then songs, left without a note are skipped. Songs stay in ticks until
:func:`song_groove` turns them into a :class:`~drumdata.grooves.Groove` at a jittered tempo.
"""
from __future__ import annotations

import functools
import os
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import NamedTuple

import numpy as np

from separation.errors import UserError

from .grooves import Event, Groove
from .kits import INSTALL_HINT, ROLE_CLASS, guess_role

SONGS_DIR = Path("/usr/share/hydrogen/data/demo_songs")
SONGS_ENV = "DRUMSEP_SONGS_DIR"  # another folder of .h2song files (a packed copy on a machine without hydrogen-data)


def default_songs_dir() -> Path:
    """``$DRUMSEP_SONGS_DIR`` if set (``drumdata.pack_kits`` writes ``<out>/demo_songs``), else Debian's."""
    return Path(os.environ.get(SONGS_ENV) or SONGS_DIR)
TICKS_PER_QUARTER = 48
BAR_TICKS = 4 * TICKS_PER_QUARTER  # Hydrogen's default pattern size
TEMPO_JITTER = 0.04  # +-4 %: the same song at slightly different tempi is a new training example


class SongNote(NamedTuple):
    tick: int  # from the start of its column
    role: str
    velocity: float


class Song(NamedTuple):
    name: str  # file stem, e.g. "GM_kit_demo1"
    bpm: float
    swing: float
    columns: tuple[tuple[int, tuple[SongNote, ...]], ...]  # (length in ticks, notes sorted by tick)


def parse_song(path: str | Path) -> Song | None:
    """Read one ``.h2song``; None when none of its notes maps to the 5 classes."""
    path = Path(path)
    try:
        root = ET.parse(path).getroot()
    except (OSError, ET.ParseError) as err:
        raise UserError(f"cannot read Hydrogen song {path} ({err}); reinstall hydrogen-data.") from None
    roles = {inst.findtext("id", "").strip(): guess_role(inst.findtext("name", ""))
             for inst in root.findall("instrumentList/instrument")}
    patterns: dict[str, tuple[int, list[SongNote]]] = {}
    for pattern in root.findall("patternList/pattern"):
        size = int(pattern.findtext("size", str(BAR_TICKS)))
        notes = []
        for note in pattern.findall("noteList/note"):
            role = roles.get(note.findtext("instrument", "").strip())
            tick = int(note.findtext("position", "0"))
            if role is not None and 0 <= tick < size:  # Hydrogen never plays notes past the pattern end
                notes.append(SongNote(tick, role, float(note.findtext("velocity", "0.8"))))
        patterns[pattern.findtext("name", "").strip()] = (size, notes)
    columns = []
    for group in root.findall("patternSequence/group"):
        playing = [patterns[p.text.strip()] for p in group.findall("patternID") if (p.text or "").strip() in patterns]
        notes = sorted(n for _, pattern_notes in playing for n in pattern_notes)
        if notes:  # the column length still counts patterns whose notes were all dropped
            columns.append((max(size for size, _ in playing), tuple(notes)))
    if not columns:
        return None
    return Song(path.stem, float(root.findtext("bpm", "120")), float(root.findtext("swing_factor", "0")),
                tuple(columns))


def load_songs(songs_dir: str | Path | None = None) -> tuple[Song, ...]:
    """Every usable song in ``songs_dir`` (default :func:`default_songs_dir`), sorted by file name;
    parsed once per process and folder."""
    return _load_songs(Path(songs_dir) if songs_dir is not None else default_songs_dir())


@functools.lru_cache(maxsize=None)
def _load_songs(songs_dir: Path) -> tuple[Song, ...]:
    songs = tuple(s for s in map(parse_song, sorted(Path(songs_dir).glob("*.h2song"))) if s is not None)
    if not songs:
        raise UserError(f"no Hydrogen demo songs with drum notes in {songs_dir}; {INSTALL_HINT}, "
                        f"or point {SONGS_ENV} at a copy (`python -m drumdata.pack_kits` writes one).")
    return songs


def song_groove(rng: np.random.Generator, seconds: float, songs: tuple[Song, ...] | None = None) -> Groove:
    """A ``seconds`` groove: a random song (default :func:`load_songs`) from a random column on,
    looping the song when it is shorter than the clip; tempo +-4 %, per-clip timing spread
    2-8 ms and playing strength, per-note velocity jitter, all drawn from ``rng``."""
    songs = load_songs() if songs is None else songs
    song = songs[int(rng.integers(len(songs)))]
    column = int(rng.integers(len(song.columns)))
    tempo = song.bpm * float(rng.uniform(1.0 - TEMPO_JITTER, 1.0 + TEMPO_JITTER))
    tightness = float(rng.uniform(0.002, 0.008))
    dynamics = float(rng.uniform(0.8, 1.0))
    tick_s = 60.0 / tempo / TICKS_PER_QUARTER
    swing_ticks = song.swing * TICKS_PER_QUARTER / 8
    events, start = [], 0
    while start * tick_s < seconds:
        length, notes = song.columns[column]
        for note in notes:
            offbeat_16th = note.tick % (TICKS_PER_QUARTER // 2) == TICKS_PER_QUARTER // 4
            t = (start + note.tick + (swing_ticks if offbeat_16th else 0.0)) * tick_s
            t = max(0.0, t + float(rng.normal(0.0, tightness)))
            v = float(np.clip(note.velocity * dynamics * (1.0 + rng.normal(0.0, 0.08)), 0.05, 1.0))
            if t < seconds:
                events.append(Event(round(t, 6), ROLE_CLASS[note.role], note.role, round(v, 4)))
        start += length
        column = (column + 1) % len(song.columns)
    events.sort(key=lambda e: (e.time, e.instrument))
    return Groove(style=f"song:{song.name}", tempo=round(tempo, 2), seconds=seconds, events=events)
