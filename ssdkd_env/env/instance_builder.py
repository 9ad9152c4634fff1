"""Building an instance set: the reference runs of a suite, played in the environment, with their
states saved at the suite's start rounds (the benchmark that builds the instances, kept apart from
the environment's dynamics, as in DACBench). What an instance is, and loading a set, is
:mod:`ssdkd_env.env.instances`, which the environment imports; this module imports the environment.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from ssdkd_env.common.io import save_torch, write_json
from ssdkd_env.env.config import EnvConfig
from ssdkd_env.env.distillation_env import DistillationEnv
from ssdkd_env.env.instances import (
    INDEX_FILE,
    SUITES,
    Instance,
    InstanceSet,
    Split,
    load_instance_set,
    set_folder,
    teacher_identity,
)


@dataclass
class BuildResult:
    """An instance set and how it was had: built now (in ``seconds``) or found already built."""

    instances: InstanceSet
    built: bool
    seconds: float


def build_instance_set(
    suite: str,
    split: Split,
    *,
    root: str | Path | None = None,
    teacher: str | Path | None = None,
    device: str = "auto",
    overwrite: bool = False,
    progress: bool = True,
) -> BuildResult:
    """Run the reference runs of ``suite``'s ``split`` (the engine's configured actions), save the
    engine state at each start round and write the index; an existing set is loaded instead,
    unless ``overwrite`` (which first removes the set's own files)."""
    definition = SUITES.get(suite)
    folder = set_folder(suite, split, root)
    if (folder / INDEX_FILE).is_file() and not overwrite:
        return BuildResult(load_instance_set(suite, split, root), False, 0.0)
    start = time.perf_counter()
    config = EnvConfig(engine=definition.engine_config(), teacher=None if teacher is None else str(teacher))
    env = DistillationEnv(dataclasses.replace(config, device=device, probe_seed=definition.probe_seed))
    identity = teacher_identity(env.task, teacher, env.teacher_card.arch)
    for old in [folder / INDEX_FILE, *folder.glob(f"{suite}-{split}-*.pt")]:  # only with overwrite: its own files
        old.unlink(missing_ok=True)
    seeds, starts = definition.seeds[split], sorted(set(definition.start_rounds))
    instances: list[Instance] = []
    bar = tqdm(total=len(seeds) * starts[-1], desc=f"{suite}/{split}", unit="round", disable=not progress)
    for seed in seeds:
        env.reset(seed=seed)
        engine = env.engine
        assert engine is not None
        for k in starts:
            while engine.round < k:
                engine.run_round()
                bar.update(1)
            name = f"{suite}-{split}-s{seed}-r{k}"
            save_torch(folder / f"{name}.pt", engine.state_dict())
            instances.append(
                Instance(
                    len(instances),
                    name,
                    definition.task,
                    definition.method,
                    seed,
                    k,
                    definition.budget,
                    f"{name}.pt",
                    identity,
                )
            )
    bar.close()
    env.close()
    built = InstanceSet(suite, split, folder, env.config.engine, env.device.type, identity, tuple(instances))
    write_json(folder / INDEX_FILE, built.index_data(definition.spec(split)))
    return BuildResult(load_instance_set(suite, split, root), True, time.perf_counter() - start)
