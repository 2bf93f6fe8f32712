"""The model card's schema: its keys, its version, and the check made when a card is read.

A checkpoint ``ID`` is ``ID.safetensors`` (the weights) and ``ID.json``, its model card
(see :mod:`mdsr_plugin.neural.checkpoint`).  The card is one JSON object; this module
names every key that code writes or reads, so that ``mdsr-train``, the registry, the
upsampler, ``mdsr-models`` and the bench scripts agree on one spelling:

======================  ==============  ==============================================
key                     type            meaning
======================  ==============  ==============================================
``id``                  str             the checkpoint's name (its file stem)
``version``             int             the model's own version
``card_version``        int             this schema's version, :data:`CARD_VERSION`
``code_version``        str             the mdsr_plugin that trained it
``config``              dict            the architecture's configuration (built by
                                        :func:`mdsr_plugin.neural.models.default_config`;
                                        ``arch``, ``bidirectional``, ``numbers``,
                                        ``masses`` (u), ``width``, ``depth``, ...;
                                        for a periodic box's ``arch`` ``"local"``,
                                        :func:`mdsr_plugin.neural.local.default_local_config`:
                                        ``elements``, ``cutoff`` (Å) instead of atoms)
``weights``             str             the weights file's name, next to the card
``weights_sha256``      str             its sha256
``molecule``            str             a name for people
``numbers``             list of int     atomic numbers, in the checkpoint's atom order
``bonds``               list of [i, j]  the molecular graph, in that order
``fine_dt_fs``          number          the output step it serves, fs
``coarse_dt_fs``        number          the coarse step it was trained at, fs
``factors``             list of int     fine steps per coarse step it serves
``input_modes``         list of str     ``"velocities"`` (positions with velocities)
                                        and/or ``"positions"`` (positions only)
``normalisation``       dict            the data statistics inputs are scaled by
``training``            dict            ``files``, ``settings``, ``provenance`` (how
                                        the data were made: ``potential``,
                                        ``temperatures_K``, ``thermostats``, ``seeds``,
                                        ``held_out``), ``history_tail``, ``complete``,
                                        ``epochs``
``validation``          dict            metrics (:func:`mdsr_plugin.metrics.compare`)
                                        of the checkpoint and of the classical methods:
                                        ``position_mae`` (the checkpoint's, Å),
                                        ``windows``, one entry per method, and
                                        ``held_out`` (below)
======================  ==============  ==============================================

``id``, ``card_version``, ``config``, ``weights``, ``weights_sha256``, ``fine_dt_fs``
and ``factors`` are required; every key present must have its type.  ``weights`` is
a bare file name ending in ``.safetensors`` (the card names a file beside itself,
never a path elsewhere).  A card written by a newer schema than this code reads is
refused.

Held-out validation
    ``validation.held_out.rows`` is a list of rows, one per held-out reference file,
    input mode, factor and method (:func:`held_out_row`): ``file``, ``mode``,
    ``factor``, ``method``, ``gaps`` and the metrics of
    :func:`mdsr_plugin.metrics.compare`.  ``bench/neural_accuracy.py --publish``
    records them (:func:`record_held_out`); :func:`classical_is_better` (which the
    ``auto`` method asks) and ``mdsr-models show`` read them.

Extending
    A new key: name it here, give it a type in :data:`_TYPES` (and make it required
    only if every card ever written has it).  A key whose meaning changes: raise
    :data:`CARD_VERSION` and teach :func:`validate_card` the older versions.  The
    shipped cards in ``models/`` are hashed by ``models/manifest.json``: the schema
    must accept them as they are.
"""

from __future__ import annotations

from numbers import Real

__all__ = [
    "CARD_VERSION", "CheckpointError", "validate_card", "is_weights_name",
    "input_mode", "held_out_row", "held_out_rows", "record_held_out", "held_out_means", "held_out_position_mae",
    "classical_is_better", "baseline_method",
]

CARD_VERSION = 1
"""The version of this schema; written into every card as ``card_version``."""


class CheckpointError(ValueError):
    """A checkpoint that is missing, altered or incompatible."""


class UnknownCheckpoint(CheckpointError):
    """No registered id and no card file by that name (a mistyped ``--model``)."""


# ----------------------------------------------------------------------------- top-level keys
ID = "id"
MODEL_VERSION = "version"
CARD_VERSION_KEY = "card_version"
CODE_VERSION = "code_version"
CONFIG = "config"
WEIGHTS = "weights"
WEIGHTS_SHA256 = "weights_sha256"
MOLECULE = "molecule"
NUMBERS = "numbers"  # also a key of ``config``
BONDS = "bonds"
FINE_DT_FS = "fine_dt_fs"
COARSE_DT_FS = "coarse_dt_fs"
FACTORS = "factors"
INPUT_MODES = "input_modes"
NORMALISATION = "normalisation"
TRAINING = "training"
VALIDATION = "validation"

# ----------------------------------------------------------------------------- config keys read outside the models
ARCH = "arch"
BIDIRECTIONAL = "bidirectional"
MASSES = "masses"

# ----------------------------------------------------------------------------- input modes
MODE_VELOCITIES = "velocities"
MODE_POSITIONS = "positions"
DEFAULT_INPUT_MODES = [MODE_VELOCITIES]
"""What a card without ``input_modes`` serves."""

# ----------------------------------------------------------------------------- training
FILES = "files"
SETTINGS = "settings"
PROVENANCE = "provenance"
HISTORY_TAIL = "history_tail"
COMPLETE = "complete"
EPOCHS = "epochs"
# provenance (free-form JSON from ``mdsr-train --provenance``; these are the keys read)
POTENTIAL = "potential"
TEMPERATURES_K = "temperatures_K"
THERMOSTATS = "thermostats"
SEEDS = "seeds"
TEMPERATURE_K = "temperature_K"  # of provenance.held_out
SEED = "seed"  # of provenance.held_out

# ----------------------------------------------------------------------------- validation
POSITION_MAE = "position_mae"  # Å; the checkpoint's at the top of ``validation``, and a metric
VELOCITY_MAE = "velocity_mae"  # Å/fs
WINDOWS = "windows"  # metrics on the training run's validation windows
HERMITE_POSITION_MAE = "hermite_position_mae"
HERMITE_VELOCITY_MAE = "hermite_velocity_mae"
GAPS_PER_TRAJECTORY = "gaps_per_trajectory"
POSITIONS_ONLY_SUFFIX = "_positions_only"  # ``neural_positions_only``: a method's score without velocities
HELD_OUT = "held_out"  # validation.held_out, and provenance.held_out (which data were held out)
NOTE = "note"
ROWS = "rows"
# held-out row keys
ROW_FILE = "file"
ROW_MODE = "mode"
ROW_FACTOR = "factor"
ROW_METHOD = "method"
ROW_GAPS = "gaps"
NEURAL = "neural"  # the checkpoint's method name in rows and in ``validation``

REQUIRED = (ID, CARD_VERSION_KEY, CONFIG, WEIGHTS, WEIGHTS_SHA256, FINE_DT_FS, FACTORS)


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value) -> bool:
    return isinstance(value, Real) and not isinstance(value, bool)


def _is_mode(value) -> bool:
    return value in (MODE_VELOCITIES, MODE_POSITIONS)


def _list_of(name: str, check):
    return f"a list of {name}", lambda value: isinstance(value, list) and all(map(check, value))


_STR, _DICT = ("a string", lambda v: isinstance(v, str)), ("an object", lambda v: isinstance(v, dict))
_INT, _NUMBER = ("an integer", _is_int), ("a number", _is_number)
_BOOL = ("true or false", lambda v: isinstance(v, bool))
_INTS = _list_of("integers", _is_int)
_PAIRS = _list_of("atom pairs", lambda v: isinstance(v, list) and len(v) == 2 and all(map(_is_int, v)))
#: Key → (what it must be, the test), for every key a card may have.
_TYPES = {
    ID: _STR, MODEL_VERSION: _INT, CARD_VERSION_KEY: _INT, CODE_VERSION: _STR, CONFIG: _DICT, WEIGHTS: _STR,
    WEIGHTS_SHA256: _STR, MOLECULE: _STR, NUMBERS: _INTS, BONDS: _PAIRS,
    FINE_DT_FS: _NUMBER, COARSE_DT_FS: _NUMBER, FACTORS: _INTS, INPUT_MODES: _list_of("input modes", _is_mode),
    NORMALISATION: _DICT, TRAINING: _DICT, VALIDATION: _DICT,
}
_CONFIG_TYPES = {ARCH: _STR, BIDIRECTIONAL: _BOOL, NUMBERS: _INTS, MASSES: _list_of("numbers", _is_number)}
# A periodic box's local integrator (``arch`` "local") has no atoms of its own: it knows
# elements and a cutoff, and takes the atoms and masses of the box it is given.
LOCAL_ARCH = "local"
ELEMENTS = "elements"
CUTOFF = "cutoff"
_LOCAL_CONFIG_TYPES = {ARCH: _STR, BIDIRECTIONAL: _BOOL, ELEMENTS: _INTS, CUTOFF: _NUMBER}
_ROW_TYPES = {ROW_FACTOR: _INT, ROW_MODE: ("an input mode", _is_mode), ROW_METHOD: _STR, POSITION_MAE: _NUMBER}


def validate_card(card, path) -> dict:
    """Check a model card against this schema; returns it unchanged.

    Parameters
    ----------
    card : object
        The parsed JSON of the card.
    path : path-like
        Where it was read from, for the message.

    Raises
    ------
    CheckpointError
        One line naming the card and the first missing key, wrong type or
        unsupported ``card_version``.
    """
    where = f"{path}: model card"
    if not isinstance(card, dict):
        raise CheckpointError(f"{where} is a JSON {type(card).__name__}, not an object")
    _check_members(card, _TYPES, REQUIRED, where)
    if not is_weights_name(card[WEIGHTS]):
        raise CheckpointError(f"{where}: {WEIGHTS!r} is {card[WEIGHTS]!r}, not the name of a .safetensors file "
                              "beside the card; refusing it")
    version = card[CARD_VERSION_KEY]
    if not 1 <= version <= CARD_VERSION:
        raise CheckpointError(f"{where} has version {version}, which this mdsr_plugin does not read "
                              f"(it reads 1 to {CARD_VERSION})")
    config_types = _LOCAL_CONFIG_TYPES if isinstance(card[CONFIG], dict) and card[CONFIG].get(ARCH) == LOCAL_ARCH \
        else _CONFIG_TYPES
    _check_members(card[CONFIG], config_types, config_types, f"{where}'s {CONFIG!r}")
    held_out = card.get(VALIDATION, {}).get(HELD_OUT, {})
    _check_members(held_out, {ROWS: ("a list", lambda v: isinstance(v, list))}, (),
                   f"{where}'s '{VALIDATION}.{HELD_OUT}'")
    for k, row in enumerate(held_out.get(ROWS, [])):
        _check_members(row, _ROW_TYPES, _ROW_TYPES, f"{where}'s held-out row {k}")
    return card


def is_weights_name(name: str) -> bool:
    """Whether ``name`` is a bare ``*.safetensors`` file name: no folder, no ``..``, nothing
    that would make a card point at a file outside its own folder."""
    return (isinstance(name, str) and name.endswith(".safetensors") and len(name) > len(".safetensors")
            and not any(c in name for c in ("/", "\\", "\0")))


def _check_members(record, types: dict, required, where: str) -> None:
    if not isinstance(record, dict):
        raise CheckpointError(f"{where} is not an object")
    for key in required:
        if key not in record:
            raise CheckpointError(f"{where} lacks {key!r}")
    for key, (kind, check) in types.items():
        if key in record and not check(record[key]):
            raise CheckpointError(f"{where}: {key!r} is not {kind}")


# ----------------------------------------------------------------------------- held-out validation
def input_mode(has_velocities: bool) -> str:
    """The input mode of an input with or without velocities."""
    return MODE_VELOCITIES if has_velocities else MODE_POSITIONS


def held_out_row(file: str, mode: str, factor: int, method: str, gaps: int, metrics: dict) -> dict:
    """One row of ``validation.held_out.rows``.

    Parameters
    ----------
    file : str
        The held-out reference's name (its file stem).
    mode : {"velocities", "positions"}
        The input: positions with velocities, or positions only.
    factor : int
    method : str
        ``"neural"`` (the checkpoint) or a classical method's name.
    gaps : int
        Coarse gaps reconstructed.
    metrics : dict
        :func:`mdsr_plugin.metrics.compare` of the reconstruction: ``position_mae`` (Å),
        ``velocity_mae`` (Å/fs), ``distance_mae`` (Å), ``spectral_overlap``.
    """
    return {ROW_FILE: file, ROW_MODE: mode, ROW_FACTOR: factor, ROW_METHOD: method, ROW_GAPS: gaps, **metrics}


def held_out_rows(card: dict) -> list[dict]:
    """The card's held-out rows; empty when it has none."""
    return card.get(VALIDATION, {}).get(HELD_OUT, {}).get(ROWS, [])


def record_held_out(card: dict, rows: list[dict], note: str) -> None:
    """Put ``rows`` (from :func:`held_out_row`) and a note on what was held out into ``card``."""
    card.setdefault(VALIDATION, {})[HELD_OUT] = {NOTE: note, ROWS: rows}


def held_out_means(card: dict, factor: int, has_velocities: bool) -> dict:
    """Mean held-out position MAE (Å) of every method in the card's rows at ``factor``
    for this input mode; empty when the card has no such rows."""
    mode = input_mode(has_velocities)
    errors = {}
    for row in held_out_rows(card):
        if row[ROW_FACTOR] == factor and row[ROW_MODE] == mode:
            errors.setdefault(row[ROW_METHOD], []).append(row[POSITION_MAE])
    return {method: sum(values) / len(values) for method, values in errors.items()}


def classical_is_better(card: dict, factor: int, has_velocities: bool, classical: str) -> bool:
    """Whether the card's held-out validation shows ``classical`` with a lower mean
    position MAE than the checkpoint at ``factor`` for this input mode; False when
    the card has no rows for either."""
    means = held_out_means(card, factor, has_velocities)
    return NEURAL in means and classical in means and means[classical] < means[NEURAL]


def held_out_position_mae(rows) -> dict:
    """Held-out rows grouped for tables.

    Returns
    -------
    dict
        ``(file, mode, factor)`` → {method: position MAE, Å}, ordered by reference file,
        then velocities before positions, then factor.
    """
    grouped = {}
    for row in sorted(rows, key=lambda r: (r[ROW_FILE], r[ROW_MODE] != MODE_VELOCITIES, r[ROW_FACTOR])):
        grouped.setdefault((row[ROW_FILE], row[ROW_MODE], row[ROW_FACTOR]), {})[row[ROW_METHOD]] = row[POSITION_MAE]
    return grouped


def baseline_method(mode: str) -> str:
    """The floor's classical baseline for an input mode: cubic Hermite with velocities, else the spline."""
    return "hermite" if mode == MODE_VELOCITIES else "spline"
