"""Explicit, reviewed tables for the Hydrogen kits shipped by Debian's hydrogen-drumkits/hydrogen-data.

KIT_ROLES maps kit directory -> {instrument name: role}. Instruments of a listed kit that are
absent from its table (cowbell, claps, tambourine, template slots "17".."32", ...) are unmapped
on purpose and left out of every stem. Kits not listed here fall back to keyword matching
(:func:`drumdata.kits.guess_role`). Roles -> classes: see :data:`drumdata.kits.ROLE_CLASS`.
"""
from __future__ import annotations

KIT_ROLES: dict[str, dict[str, str]] = {
    'Audiophob': {
        'Kick': 'kick', 'Stick': 'sidestick', 'Snare Jazz': 'snare', 'Snare Rock': 'snare',
        'Tom Low': 'tom_low', 'Closed HH': 'hh_closed', 'Tom Mid': 'tom_mid',
        'Pedal HH': 'hh_pedal', 'Tom Hi': 'tom_hi', 'Open HH': 'hh_open', 'Ride Jazz': 'ride',
        'Crash': 'crash',
    },
    'BJA_Pacific': {
        'BassDrum': 'kick', 'Snare': 'snare', 'Hi Hat Closed': 'hh_closed',
        'Hi Hat Opened': 'hh_open', 'Tom': 'tom_hi', 'Floor Tom': 'tom_low', 'Crash Left': 'crash',
        'Crash Right': 'crash', 'Ride Bell': 'ride_bell', 'Ride': 'ride', 'Ride 2': 'ride',
        'Snare Roll': 'snare', 'Snare Dry': 'snare', 'Hi Hat Free': 'hh_open',
    },
    'ColomboAcousticDrumkit': {
        'BassDrum': 'kick', 'Stick': 'sidestick', 'Snare1': 'snare', 'redo super opaco': 'snare',
        'Snare Rock': 'snare', 'Tom Low': 'tom_low', 'Closed HH': 'hh_closed',
        'Tom Mid': 'tom_mid', 'Pedal HH': 'hh_pedal', 'Tom Hi': 'tom_hi', 'Open HH': 'hh_open',
        'tomhi2': 'tom_hi', 'tomhi3': 'tom_mid', 'crash16inch': 'crash', 'tomhi4': 'tom_mid',
        'ride-crash20inch': 'ride', 'crash20inch--2': 'crash', 'ride-cup': 'ride_bell',
    },
    'ElectricEmpireKit': {
        'Kick Lite 1': 'kick', 'Kick Lite 2': 'kick', 'Kick Low 1': 'kick', 'Kick Low 2': 'kick',
        'Kick Nz': 'kick', 'Kick Old': 'kick', 'Kick Power': 'kick', 'Kick Ring': 'kick',
        'Kick Stomp': 'kick', 'Kick Dist': 'kick', 'Kick Hard 1': 'kick', 'Kick Hard 2': 'kick',
        'Snare 1': 'snare', 'Snare 2': 'snare', 'Snare 3': 'snare', 'Snare Low': 'snare',
        'Snare Ring': 'snare', 'Hat Closed Bs': 'hh_closed', 'Hat Closed Dirty': 'hh_closed',
        'Hat Low': 'hh_closed', 'Hat Ring 1': 'hh_closed', 'Hat Ring 2': 'hh_closed',
        'Hat Op Dirty': 'hh_open', 'Hat Op Phaser': 'hh_open',
    },
    'ForzeeStereo': {
        'Kick (Tama Superstar 22")': 'kick', 'Tom Low (Tama Superstar 16")': 'tom_low',
        'Tom Mid (Tama Superstar 13")': 'tom_mid', 'Tom High (Tama Superstar 12")': 'tom_hi',
        'Snare (Pearl Free Floating Maple 14x3.5)': 'snare',
        'Snare Rimshot (Pearl Free Floating Maple 14x3.5)': 'rimshot',
        'Snare 2 (Pearl Free Floating Maple 14x3.5)': 'snare',
        'Snare 2 Rimshot (Pearl Free Floating Maple 14x3.5)': 'rimshot',
        'Rim Click (Pearl Free Floating Maple 14x3.5)': 'sidestick',
        'Hi-Hat Closed (Paiste Alpha Metal edge 14")': 'hh_closed',
        'Hi-Hat Open (Paiste Alpha Metal edge 14")': 'hh_open',
        'Hi-Hat Semiopen (Paiste Alpha Metal edge 14")': 'hh_open',
        'Hi-Hat Pedal (Paiste Alpha Metal edge 14")': 'hh_pedal',
        'Ride (Custom, Zagrebin 22")': 'ride', 'Ride Bell (Custom, Zagrebin 22")': 'ride_bell',
        'Ride Bow (Custom, Zagrebin 22")': 'ride', 'China (Paiste Alpha 18")': 'china',
        'Crash/Ride (Paiste Rude Crash/Ride 18")': 'ride',
        'Crash/Ride Bell (Paiste Rude Crash/Ride 18")': 'ride_bell',
        'Crash/Ride Bow (Paiste Rude Crash/Ride 18")': 'ride',
        'Crash (Paiste Rude Thin 18")': 'crash', 'Splash (Paiste Rude 10")': 'splash',
    },
    'GMRockKit': {
        'Kick': 'kick', 'Stick': 'sidestick', 'Snare': 'snare', 'Snare Rimshot': 'rimshot',
        'Floor Tom': 'tom_low', 'Hat Closed': 'hh_closed', 'Tom 2': 'tom_mid',
        'Hat Pedal': 'hh_pedal', 'Tom 1': 'tom_hi', 'Hat Open': 'hh_open', 'Ride': 'ride',
        'Crash': 'crash', 'Ride 2': 'ride', 'Splash': 'splash', 'Hat Semi-Open': 'hh_open',
        'Bell': 'ride_bell',
    },
    'Gimme A Hand 1.0': {
    },
    'HardElectro1': {
        'Kick 1': 'kick', 'Kick 2': 'kick', 'Kick 3': 'kick', 'Snare': 'snare',
        'Closed HH 1': 'hh_closed', 'Closed HH 2': 'hh_closed', 'Closed HH 3': 'hh_closed',
        'Closed HH 4': 'hh_closed', 'Open HH': 'hh_open', 'Side HH': 'hh_closed',
        'Side OHH': 'hh_open',
    },
    'Millo-Drums_v.1': {
        'Kick': 'kick', 'Stick': 'sidestick', 'Snare Jazz': 'snare', 'Snare Rock': 'snare',
        'Tom Low': 'tom_low', 'Closed HH': 'hh_closed', 'Tom Mid': 'tom_mid',
        'Pedal HH': 'hh_pedal', 'Tom Hi': 'tom_hi', 'Open HH': 'hh_open', 'Ride Jazz': 'ride',
        'Crash': 'crash', 'Ride Rock': 'ride', 'Crash Jazz': 'crash',
    },
    'Millo_MultiLayered2': {
        'Kick': 'kick', 'Stick': 'sidestick', 'Snare Jazz': 'snare', 'Snare Rock': 'snare',
        'Tom Low': 'tom_low', 'Closed HH': 'hh_closed', 'Tom Mid': 'tom_mid',
        'Pedal HH': 'hh_pedal', 'Tom Hi': 'tom_hi', 'Open HH': 'hh_open', 'Ride Jazz': 'ride',
        'Crash': 'crash', 'Ride Rock': 'ride', 'Crash Jazz': 'crash',
    },
    'Millo_MultiLayered3': {
        'Kick': 'kick', 'Stick': 'sidestick', 'Snare Roll': 'snare', 'Snare Rock': 'snare',
        'Tom Low': 'tom_low', 'Closed HH': 'hh_closed', 'Tom Mid': 'tom_mid',
        'Pedal HH': 'hh_pedal', 'Tom Hi': 'tom_hi', 'Open HH': 'hh_open', 'Ride Jazz': 'ride',
        'Crash': 'crash',
    },
    'TR808EmulationKit': {
        'Kick Long': 'kick', 'Kick Short': 'kick', 'Snare 1': 'snare', 'Snare 2': 'snare',
        'Tom Low': 'tom_low', 'Tom Mid': 'tom_mid', 'Tom Hi': 'tom_hi', 'Closed Hat': 'hh_closed',
        'Pedal Hat': 'hh_pedal', 'Open Hat': 'hh_open', 'Cymbal': 'crash',
    },
    'The Black Pearl 1.0': {
        'Pearl Kick': 'kick', 'Pearl Side Stick': 'sidestick', 'Pearl Snare': 'snare',
        'Pearl Snare Rimshot': 'rimshot', 'Pearl Tom Floor': 'tom_low',
        'Sabian Hat Closed': 'hh_closed', 'Pearl Tom 2': 'tom_mid', 'Sabian Hat Pedal': 'hh_pedal',
        'Pearl Tom 1': 'tom_hi', 'Sabian Hat Semi-Open': 'hh_open', 'Sabian Hat Open': 'hh_open',
        'Sabian Hat Swish': 'hh_open', 'Sabian Hat Choke': 'hh_closed', 'Paiste Ride': 'ride',
        'Paiste Bell': 'ride_bell', 'Paiste Ride Flink': 'ride', 'Sabian Crash': 'crash',
        'Sabian Crash Flink': 'crash', 'Zildjian Splash': 'splash',
        'Zildjian Splash Choke': 'splash',
    },
    'VariBreaks': {
        'VariBreaks Kick 1': 'kick', 'VariBreaks Kick 2': 'kick', 'VariBreaks Kick 3': 'kick',
        'VariBreaks Snare 1': 'snare', 'VariBreaks Snare 2': 'snare',
        'VariBreaks Snare 3': 'snare', 'VariBreaks Tom Low': 'tom_low',
        'VariBreaks Tom Mid': 'tom_mid', 'VariBreaks Tom Hi': 'tom_hi',
        'VariBreaks Hat 1 Cl': 'hh_closed', 'VariBreaks Hat 1 Pd': 'hh_pedal',
        'VariBreaks Hat 1 Op': 'hh_open', 'VariBreaks Hat 2 Cl': 'hh_closed',
        'VariBreaks Hat 3 Cl': 'hh_closed',
    },
    'circAfrique v4': {
    },
    'rumpf_kit_z01_h2': {
        'c3 - bass drum 1': 'kick', 'c#3 - stick': 'sidestick', 'd3 - snare 1': 'snare',
        'e3 - snare 2': 'snare', 'f3 - bass drum 2': 'kick', 'f#3 - hi-hat closed': 'hh_closed',
        'g3 - bass drum 3': 'kick', 'g#3 - hi-hat pedal': 'hh_pedal', 'a3 - bass drum 4': 'kick',
        'a#3 - hi-hat open': 'hh_open', 'b3 - low tom': 'tom_low', 'c4 - middle tom': 'tom_mid',
        'c#4 - crash': 'crash', 'd4 - high tom': 'tom_hi', 'd#4 - cymbal 1': 'crash',
        'e4 - cymbal 2': 'crash', 'f4 - ride bell': 'ride_bell',
    },
}

# Percussion-only kits ("Gimme A Hand 1.0", "circAfrique v4") map nothing and are never used.
KIT_KIND: dict[str, str] = {
    "Audiophob": "acoustic", "BJA_Pacific": "acoustic", "ColomboAcousticDrumkit": "acoustic",
    "ForzeeStereo": "acoustic", "GMRockKit": "acoustic", "Millo-Drums_v.1": "acoustic",
    "Millo_MultiLayered2": "acoustic", "Millo_MultiLayered3": "acoustic",
    "The Black Pearl 1.0": "acoustic", "rumpf_kit_z01_h2": "acoustic",
    "ElectricEmpireKit": "electronic", "HardElectro1": "electronic",
    "TR808EmulationKit": "electronic", "VariBreaks": "electronic",
    "Gimme A Hand 1.0": "percussion", "circAfrique v4": "percussion",
}

# Split BY KIT so that no test/valid kit (its samples, its room, its drums) is ever heard in training.
# Test: two multi-velocity acoustic kits with all 5 classes, recorded by different people.
# Valid: one more acoustic kit with all 5 classes. The three Millo kits are the same physical
# Ludwig set, so they stay together (in train) to avoid leaking one drum set across splits.
# Every other kit, including kits found in a custom --kits-dir, goes to train.
# Synthetic fallback kits (drumdata.synth) follow the same rule with their own names.
DEFAULT_SPLITS: dict[str, tuple[str, ...]] = {
    "test": ("The Black Pearl 1.0", "BJA_Pacific", "synthetic-F"),
    "valid": ("ColomboAcousticDrumkit", "synthetic-E"),
}
