"""The SB3 agents' files read as data only: SB3's ``model.zip`` without unpickling anything, and the
run state SB3 would pickle (observations, episode statistics, buffers, random states) as arrays
(``.npz``, read with ``allow_pickle=False``) and JSON."""

from __future__ import annotations

import json
import zipfile
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import torch
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.buffers import BaseBuffer

from ssdkd_env.errors import UserError

SERIALIZED = ":serialized:"  # how SB3 marks a value of its zip's data JSON that it pickled
FIX = "save the agent again, or start the run afresh"


def _reason(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {' '.join(str(exc).split()) or 'no detail'}"


def read_model_data(file: Path) -> dict[str, Any]:
    """The ``data`` JSON of SB3's zip, as it is (pickled values stay base64 text); the archive's
    checksums are verified first, so a damaged or truncated file is a one-line :class:`UserError`."""
    try:
        with zipfile.ZipFile(file) as archive:
            damaged = archive.testzip()
            if damaged is not None:
                raise zipfile.BadZipFile(f"member '{damaged}' fails its checksum")
            data = json.loads(archive.read("data"))
    except (OSError, EOFError, KeyError, ValueError, zipfile.BadZipFile, zlib.error) as exc:
        raise UserError(f"{file} is not a readable SB3 model ({_reason(exc)}); {FIX}") from None
    if not isinstance(data, dict):
        raise UserError(f"{file} is not a readable SB3 model (its data is not a JSON object); {FIX}")
    return data


def custom_objects(data: dict[str, Any], fresh: BaseAlgorithm, file: Path) -> dict[str, Any]:
    """A replacement for every value SB3 would unpickle from ``data``, taken from ``fresh`` (a model
    built with the same hyper-parameters on the same environment).

    SB3 uses these in place of the pickles, so loading runs no code from the file. They are the
    model's set-up (policy class, spaces, schedules, buffer classes) and its run state
    (``_last_obs``, ``ep_info_buffer``, ...), which a fresh model has empty: the saved run state is
    read back from the sidecar (:func:`read_run_state`); a model.zip without one (written by the
    release of 2026-12-07 or before) continues with a fresh episode, as SB3's own ``load`` does. A pickled value that is
    not a data attribute of ``fresh`` is refused.
    """
    objects = {}
    for key, value in data.items():
        if isinstance(value, dict) and SERIALIZED in value:
            if key not in vars(fresh):
                raise UserError(
                    f"{file} holds a pickled '{key}', which {type(fresh).__name__} has no attribute for; refused "
                    f"(files are loaded as data only, never unpickled); {FIX}"
                )
            objects[key] = vars(fresh)[key]
    return objects


def buffer_arrays(buffer: BaseBuffer) -> dict[str, np.ndarray]:
    """The arrays of a rollout or replay buffer, by attribute name."""
    return {name: value for name, value in vars(buffer).items() if isinstance(value, np.ndarray)}


def restore_buffer(buffer: BaseBuffer, arrays: dict[str, np.ndarray], meta: dict[str, Any], file: Path) -> None:
    """Put the arrays and position saved from a buffer of the same kind and size back into ``buffer``."""
    for name, current in buffer_arrays(buffer).items():
        saved = arrays.get(f"buffer.{name}")
        if saved is None or saved.shape != current.shape or saved.dtype != current.dtype:
            got = "nothing" if saved is None else f"{saved.dtype}{list(saved.shape)}"
            raise UserError(
                f"{file}: the saved buffer's '{name}' ({got}) does not fit this agent's "
                f"({current.dtype}{list(current.shape)}); {FIX}"
            )
        setattr(buffer, name, saved)
    pos, full = meta.get("pos"), meta.get("full")
    if not (isinstance(pos, int) and 0 <= pos <= buffer.buffer_size and isinstance(full, bool)):
        raise UserError(f"{file}: the saved buffer position {pos!r} (full: {full!r}) is invalid; {FIX}")
    buffer.pos, buffer.full = pos, full


def random_states() -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """The global random states SB3 draws from (torch's CPU generator: actions; numpy's: minibatches)."""
    _, key, pos, has_gauss, cached = np.random.get_state(legacy=True)
    arrays = {"rng.torch": torch.get_rng_state().numpy(), "rng.numpy": np.asarray(key)}
    return arrays, {"pos": int(pos), "has_gauss": int(has_gauss), "cached_gaussian": float(cached)}


def restore_random_states(arrays: dict[str, np.ndarray], meta: dict[str, Any], file: Path) -> None:
    """Set back what :func:`random_states` returned."""
    try:
        torch.set_rng_state(torch.from_numpy(arrays["rng.torch"]))
        np.random.set_state(("MT19937", arrays["rng.numpy"], meta["pos"], meta["has_gauss"], meta["cached_gaussian"]))
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:
        raise UserError(f"{file}: the saved random states are invalid ({_reason(exc)}); {FIX}") from None


def generator_state(generator: np.random.Generator) -> dict[str, Any]:
    """A numpy generator's state as JSON values."""
    return dict(generator.bit_generator.state)


def episode_starts(saved: Any, n_envs: int, file: Path) -> list[tuple[int, np.random.Generator]]:
    """The episode seed and random generator (gymnasium's PCG64) of each of ``n_envs`` environments,
    from the JSON list saved of them."""
    if not (isinstance(saved, list) and len(saved) == n_envs and all(isinstance(e, dict) for e in saved)):
        raise UserError(f"{file}: the saved environment states are not {n_envs} entries; {FIX}")
    starts = []
    for entry in saved:
        bits = np.random.PCG64()
        try:
            bits.state = entry["np_random"]
            seed = entry["episode_seed"]
            if not isinstance(seed, int):
                raise TypeError(f"episode_seed {seed!r} is not an integer")
        except (TypeError, ValueError, KeyError) as exc:
            raise UserError(f"{file}: a saved environment state is invalid ({_reason(exc)}); {FIX}") from None
        starts.append((seed, np.random.Generator(bits)))
    return starts


def write_run_state(folder: Path, name: str, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> None:
    """``name.npz`` (the arrays) and ``name.json`` (the rest) in ``folder`` (the temporary folder of
    an atomic save)."""
    with (folder / f"{name}.npz").open("wb") as fh:
        np.savez(fh, allow_pickle=False, **arrays)  # type: ignore[arg-type]  # numpy's stubs mistype **arrays
    (folder / f"{name}.json").write_text(json.dumps(meta, default=float) + "\n")  # default: numpy scalars


def read_run_state(folder: Path, name: str) -> tuple[dict[str, np.ndarray], dict[str, Any]] | None:
    """What :func:`write_run_state` wrote, or None when ``folder`` has none; arrays are read with
    ``allow_pickle=False`` (an object array is refused), damage is a one-line :class:`UserError`."""
    arrays_file, meta_file = folder / f"{name}.npz", folder / f"{name}.json"
    if not arrays_file.is_file() and not meta_file.is_file():
        return None
    try:
        with np.load(arrays_file, allow_pickle=False) as npz:
            arrays = {key: npz[key] for key in npz.files}
        meta = json.loads(meta_file.read_text())
    except (OSError, EOFError, KeyError, ValueError, zipfile.BadZipFile, zlib.error) as exc:
        raise UserError(f"{folder}: the run state {name}.npz/.json is not readable ({_reason(exc)}); {FIX}") from None
    if not isinstance(meta, dict):
        raise UserError(f"{meta_file} is not a JSON object; {FIX}")
    return arrays, meta
