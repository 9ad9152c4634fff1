"""Instance sets (DACBench conventions): episodes that start from saved states of reference runs.

An *instance* is a teacher, the complete engine state of a reference run of a suite's
configuration (seed ``s``) after ``k`` rounds, and a budget of rounds to play from there. A
*suite* (:data:`SUITES`) names the configuration, the reference seeds of its ``train`` and
``test`` splits (disjoint, so the test split is held out) and the start rounds; an *instance
set* is one split of a suite, built once by ``train/build_instances.py`` into
``cache_dir()/instances/<suite>/<split>``: one state file per instance (data only) and
``index.json``. ``gym.make(..., suite="digits", instance_set="train")`` plays them.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, cast

import torch

from ssdkd_env.common.io import cache_dir, default_teacher_dir, load_data_file
from ssdkd_env.distillation import ProbeSet
from ssdkd_env.engine import EngineConfig, make_config
from ssdkd_env.env.regimes import REGIMES, default_regime
from ssdkd_env.errors import UserError
from ssdkd_env.registry import Registry
from ssdkd_env.tasks import TaskSpec, get_task
from ssdkd_env.tasks.kinds import TASK_KINDS
from ssdkd_env.zoo import find_zoo_teacher, sha256_of

Split = Literal["train", "test"]
SPLITS: tuple[Split, ...] = ("train", "test")
INDEX_FILE = "index.json"
INDEX_FORMAT = 1
TeacherSource = Literal["checkpoint", "cache", "zoo"]


@dataclass(frozen=True)
class Suite:
    """Reference runs of one task and method, and where in them the episodes start.

    ``engine``: dotted overrides over ``make_config(task, method)``; ``seeds``: the reference seeds
    of each split; an instance starts after each of ``start_rounds`` and plays ``budget`` rounds.
    ``env``: the ``EnvConfig`` settings its episodes are played with (e.g. ``compute_cost``); they do
    not change the saved states, so they are not part of :meth:`spec`."""

    description: str
    task: str
    seeds: dict[str, tuple[int, ...]]
    start_rounds: tuple[int, ...]
    budget: int
    method: str = "ssdkd"
    engine: dict[str, Any] = field(default_factory=dict)
    env: dict[str, Any] = field(default_factory=dict)
    probe_seed: int = 0

    def __post_init__(self) -> None:
        if set(self.seeds) != set(SPLITS) or not all(self.seeds.values()):
            raise ValueError(f"a suite names reference seeds for each of {SPLITS}")
        if set(self.seeds["train"]) & set(self.seeds["test"]):
            raise ValueError("the train and test splits of a suite share no reference seed")
        if not self.start_rounds or min(self.start_rounds) < 0 or self.budget < 1:
            raise ValueError("a suite needs start rounds >= 0 and a budget of at least 1 round")

    def engine_config(self) -> EngineConfig:
        """The reference runs' configuration (episodes keep it, so schedules continue as in the run)."""
        config = make_config(self.task, self.method, **self.engine)
        last = max(self.start_rounds) + self.budget
        if last > config.rounds:
            raise UserError(f"suite of {self.task}: start round + budget = {last} exceeds its {config.rounds} rounds")
        return config

    def spec(self, split: Split) -> dict[str, Any]:
        """What the instance set of ``split`` is made from (an index written from another spec is stale)."""
        return {
            "task": self.task,
            "method": self.method,
            "engine": self.engine,
            "seeds": list(self.seeds[split]),
            "start_rounds": list(self.start_rounds),
            "budget": self.budget,
            "probe_seed": self.probe_seed,
        }


SUITES: Registry[Suite] = Registry("instance suite")

# The digits agent configuration (its default regime, 'budget') in a 16-round run: instances after 3 and
# 6 rounds, 10 rounds each; the 36 reference rounds of both splits take a few minutes on 2 CPU cores.
SUITES.add(
    "digits",
    Suite(
        "digits, the 'budget' regime in a 16-round run: starts after rounds 3 and 6, 10 rounds each; "
        "reference seeds 0-3 (train) and 100-101 (test)",
        task="digits",
        seeds={"train": (0, 1, 2, 3), "test": (100, 101)},
        start_rounds=(3, 6),
        budget=10,
        engine={**REGIMES.get(default_regime("digits")).engine, "rounds": 16},
        env=REGIMES.get(default_regime("digits")).env,
    ),
)

# The CIFAR-like suite: CIFAR-10 at 16x16 (task cifar10-16, cnn -> cnn_half) under the 'budget' regime's
# scarcity, in 24-round runs, with KD batches of 64 (a step of about 0.75 s on 2 cores, 1.1 s at 128);
# instances after rounds 6 and 12, 10 rounds each. Reference seeds 0-4 train, 100-102 test. Measured in
# docs/notebook/2026-12-07.md ("A CIFAR-like suite").
SUITES.add(
    "cifar10-16",
    Suite(
        "CIFAR-10 at 16x16, the 'budget' regime in a 24-round run: starts after rounds 6 and 12, 10 rounds each; "
        "reference seeds 0-4 (train) and 100-102 (test)",
        task="cifar10-16",
        seeds={"train": (0, 1, 2, 3, 4), "test": (100, 101, 102)},
        start_rounds=(6, 12),
        budget=10,
        engine={**REGIMES.get("budget").engine, "rounds": 24, "distiller.batch_size": 64},
        env=REGIMES.get("budget").env,
    ),
)


@dataclass(frozen=True)
class TeacherIdentity:
    """Which teacher the states were made with: where it came from and its file's sha256."""

    task: str
    arch: str
    source: TeacherSource
    path: str
    sha256: str


def teacher_identity(task: TaskSpec, teacher: str | Path | None, arch: str) -> TeacherIdentity:
    """The file behind the teacher that ``obtain_teacher(task, teacher, ...)`` loads (the same order:
    the checkpoint given, else the task's cached teacher, else the zoo's)."""
    cached = default_teacher_dir(task.name, task.teacher_arch) / "teacher.pt"
    shipped = None if teacher is not None or cached.is_file() else find_zoo_teacher(task.name, task.teacher_arch)
    source: TeacherSource = "cache"
    path = cached
    if teacher is not None:
        source, path = "checkpoint", Path(teacher).resolve()
    elif shipped is not None:
        source, path = "zoo", shipped.path
    return TeacherIdentity(task.name, arch, source, str(path), sha256_of(path))


@dataclass(frozen=True)
class Instance:
    """Where one episode starts: reference run ``seed`` after ``start_round`` rounds, for ``budget`` rounds."""

    index: int
    name: str
    task: str
    method: str
    seed: int
    start_round: int
    budget: int
    state_file: str  # inside the instance set's folder
    teacher: TeacherIdentity

    @property
    def end_round(self) -> int:
        return self.start_round + self.budget


def rebuild_command(suite: str, split: str, root: Path | None = None) -> str:
    out = "" if root is None else f" --out {root}"
    return f"python train/build_instances.py --suite {suite} --split {split}{out} --overwrite"


@dataclass(frozen=True)
class InstanceSet:
    """One split of a suite: its instances, the reference runs' configuration and where the states are."""

    suite: str
    split: Split
    folder: Path
    engine: EngineConfig
    device: str  # the device type the states were made on (their generator states are of that kind)
    teacher: TeacherIdentity
    instances: tuple[Instance, ...]
    root: Path | None = None  # the suite folder given instead of the cache's (for the rebuild command)

    def __len__(self) -> int:
        return len(self.instances)

    def __iter__(self) -> Iterator[Instance]:
        return iter(self.instances)

    def __getitem__(self, index: int) -> Instance:
        return self.instances[index]

    @property
    def fix(self) -> str:
        return f"rebuild it with {rebuild_command(self.suite, self.split, self.root)}"

    def state(self, index: int) -> dict[str, Any]:
        """The engine state instance ``index`` starts from (read as data only)."""
        instance = self.instances[index]
        path = self.folder / instance.state_file
        if not path.is_file():
            raise UserError(f"instance set {self.suite}/{self.split}: state file {path} is missing; {self.fix}")
        state = load_data_file(path, "instance state", self.fix)
        if not isinstance(state, dict) or state.get("round") != instance.start_round:
            raise UserError(f"{path} is not the state of instance {instance.name}; {self.fix}")
        return state

    def probe(self, device: torch.device) -> ProbeSet:
        """The probe set of the reference runs (the same in every state of a set)."""
        probe = self.state(0)["probe"]
        kind = TASK_KINDS.get(get_task(self.engine.task).kind)
        return ProbeSet(probe["images"].to(device), probe["teacher_logits"].to(device), int(probe["synthesized"]), kind)

    def check_teacher(self, actual: TeacherIdentity) -> None:
        """Refuse a teacher other than the one the states were made with."""
        if actual.sha256 != self.teacher.sha256:
            raise UserError(
                f"instance set {self.suite}/{self.split} was built with the teacher {self.teacher.path} "
                f"(sha256 {self.teacher.sha256[:12]}), not {actual.path} (sha256 {actual.sha256[:12]}): pass "
                f"teacher={self.teacher.path}, or {self.fix} --teacher {actual.path}"
            )

    def check_device(self, device: torch.device) -> None:
        if device.type != self.device:
            raise UserError(
                f"instance set {self.suite}/{self.split} was built on {self.device}, not {device.type} (the states "
                f"hold generator states of that device): use device='{self.device}', or build it on "
                f"{device.type} with --device {device.type} --out DIR"
            )

    def index_data(self, spec: dict[str, Any]) -> dict[str, Any]:
        return {
            "format": INDEX_FORMAT,
            "suite": self.suite,
            "split": self.split,
            "spec": spec,
            "device": self.device,
            "teacher": dataclasses.asdict(self.teacher),
            "engine": self.engine.to_dict(),
            "instances": [{k: v for k, v in dataclasses.asdict(i).items() if k != "teacher"} for i in self.instances],
        }


def set_folder(suite: str, split: str, root: str | Path | None = None) -> Path:
    """Where the instance set ``suite``/``split`` lives: ``root/<split>``, by default in the cache."""
    return (Path(root) if root is not None else cache_dir() / "instances" / suite) / split


def load_instance_set(suite: str, split: str, root: str | Path | None = None) -> InstanceSet:
    """The built instance set; a missing, stale or damaged one is a one-line error naming the command
    that builds it."""
    definition = SUITES.get(suite)
    if split not in SPLITS:
        raise UserError(f"unknown instance split '{split}'; valid: {', '.join(SPLITS)}")
    given = Path(root) if root is not None else None
    folder = set_folder(suite, split, root)
    index = folder / INDEX_FILE
    command = rebuild_command(suite, split, given)
    if not index.is_file():
        raise UserError(
            f"no instance set {suite}/{split} in {folder}: build it with {command.removesuffix(' --overwrite')}"
        )
    try:
        data = json.loads(index.read_text())
        if data["format"] != INDEX_FORMAT or data["suite"] != suite or data["split"] != split:
            raise ValueError("another set's index")
        teacher = TeacherIdentity(**data["teacher"])
        instances = tuple(Instance(**entry, teacher=teacher) for entry in data["instances"])
        engine = EngineConfig.from_dict(data["engine"])
        device = str(data["device"])
        spec = data["spec"]
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise UserError(f"{index} is damaged ({type(exc).__name__}: {exc}); rebuild it with {command}") from None
    if spec != json.loads(json.dumps(definition.spec(split))):  # the JSON form: tuples read back as lists
        raise UserError(f"instance set {suite}/{split} in {folder} was built from another definition; {command}")
    missing = [i.state_file for i in instances if not (folder / i.state_file).is_file()]
    if missing:
        raise UserError(
            f"instance set {suite}/{split}: state file {folder / missing[0]} is missing; rebuild it with {command}"
        )
    return InstanceSet(suite, cast(Split, split), folder, engine, device, teacher, instances, given)
