"""The pluggable engine: registries, presets as data, the environment as the distill.py run, RNG ownership."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from helpers import TINY, method_inputs, random_teacher, tiny_config

from ssdkd_env.checkpoint import card_for
from ssdkd_env.engine import METHODS, DistillationEngine, make_config, methods_with_memory
from ssdkd_env.engine.context import RunContext
from ssdkd_env.engine.engine import PROBE_SEED_OFFSET
from ssdkd_env.engine.run import RunSpec, run_distillation
from ssdkd_env.env import DistillationEnv, make_env
from ssdkd_env.errors import UserError
from ssdkd_env.losses import KD_LOSSES, per_sample_kl
from ssdkd_env.methods import register_method
from ssdkd_env.observation import ObsField
from ssdkd_env.replay import EVICTION_RULES, MEMORIES, BaseMemory, BufferBatch
from ssdkd_env.synthesis import SYNTHESIZERS, BaseSynthesizer, SynthesisRequest, SynthesisResult
from ssdkd_env.tasks import get_task
from ssdkd_env.tasks.kinds import TASK_KINDS

SEED = 5


def metrics_rows(out: Path) -> list[dict[str, float | None]]:
    with open(out / "metrics.csv") as fh:
        return [
            {k: (None if v == "" else float(v)) for k, v in row.items() if k != "wall_time_s"}
            for row in csv.DictReader(fh)
        ]


@pytest.mark.parametrize("method", methods_with_memory())
def test_env_with_default_action_is_the_distill_run(method: str, tmp_path: Path) -> None:
    """For every preset with a memory, an episode played with ``env.default_action()`` is
    ``train/distill.py --method M``."""
    task, teacher = get_task("digits"), random_teacher()
    overrides = {**TINY, **method_inputs(method, tmp_path)}
    config = make_config("digits", method, **overrides)
    spec = RunSpec(
        task,
        teacher,
        card_for(task, "cnn_half", "teacher", None),
        torch.device("cpu"),
        SEED,
        tmp_path,
        task.load(None, False),
        progress=False,
    )
    run_distillation(config, spec)
    expected = metrics_rows(tmp_path)
    env = DistillationEnv(
        teacher_model=teacher,
        task="digits",
        method=method,
        device="cpu",
        probe_seed=SEED + PROBE_SEED_OFFSET,
        **overrides,
    )
    decision = env.decode_action(env.default_action())
    assert decision == env.config.engine.action  # the preset's decisions survive the canonical action exactly
    env.reset(seed=SEED)
    rows, done = [], False
    while not done:
        _, _, terminated, truncated, info = env.step(env.default_action())
        rows.append({k: (None if info.get(k) is None else float(info[k])) for k in expected[0]})
        done = terminated or truncated
    assert rows == expected
    assert env.engine is not None
    saved = torch.load(tmp_path / "student.pt", weights_only=False)["state_dict"]
    for name, value in env.engine.delivered_student.state_dict().items():
        assert torch.equal(saved[name], value), name


def test_env_steps_leave_the_global_rng_untouched() -> None:
    env = make_env(teacher_model=random_teacher(), task="digits", device="cpu", **TINY)
    torch.manual_seed(1234)
    before = torch.get_rng_state()
    env.reset(seed=0)
    assert torch.equal(torch.get_rng_state(), before)
    for _ in range(2):
        env.step(env.action_space.sample())
        assert torch.equal(torch.get_rng_state(), before)
    env.reset()  # a seed drawn from the environment's own generator
    assert torch.equal(torch.get_rng_state(), before)


def test_engine_does_not_depend_on_the_global_rng() -> None:
    def rows(global_seed: int) -> list[dict[str, Any]]:
        torch.manual_seed(global_seed)
        engine = DistillationEngine(tiny_config(), get_task("digits"), random_teacher(), torch.device("cpu"), 3)
        torch.manual_seed(global_seed + 1)  # whatever the caller does with the global stream meanwhile
        return [engine.run_round().as_dict() for _ in range(2)]

    assert rows(0) == rows(99)


# ---------------------------------------------------------------- a method added by registration only
class NoiseSynthesizer(BaseSynthesizer):
    """Toy synthesizer: Gaussian noise images labelled by the teacher."""

    def __init__(self, options: Any, ctx: RunContext) -> None:
        self.ctx = ctx
        self.calls = 0

    def synthesize(self, request: SynthesisRequest) -> SynthesisResult:
        self.calls += 1
        images = torch.randn(request.n, *self.ctx.input_shape, generator=self.ctx.rng)
        with torch.no_grad():
            logits = self.ctx.teacher(images)
        return SynthesisResult(images, logits.argmax(1), logits, {"noise_std": float(images.std())})

    def state_dict(self) -> dict[str, Any]:
        return {"calls": self.calls}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.calls = int(state["calls"])


class LastBatchMemory(BaseMemory):
    """Toy memory: keeps only the newest samples and replays them uniformly."""

    def __init__(self, num_classes: int) -> None:
        self.num_classes, self.capacity, self.size = num_classes, 1, 0
        self.images = torch.zeros(0)
        self.logits = torch.zeros(0, num_classes)

    @classmethod
    def build(cls, options: Any, ctx: RunContext) -> LastBatchMemory:
        return cls(ctx.num_classes)

    def insert(
        self,
        images: torch.Tensor,
        teacher_logits: torch.Tensor,
        priorities: torch.Tensor,
    ) -> torch.Tensor:
        self.images, self.logits = images, teacher_logits
        self.size = self.capacity = images.shape[0]
        return torch.arange(self.size)

    def sample(self, batch_size: int, generator: torch.Generator | None = None) -> BufferBatch:
        index = torch.randint(self.size, (batch_size,), generator=generator)
        return BufferBatch(index, self.images[index], self.logits[index], torch.ones(batch_size))

    def update_priorities(self, index: torch.Tensor, priorities: torch.Tensor) -> None:
        pass

    def class_histogram(self) -> torch.Tensor:
        return torch.bincount(self.logits.argmax(1), minlength=self.num_classes)

    def contents(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.images, self.logits

    @classmethod
    def observation_fields(cls, num_classes: int) -> list[ObsField]:
        return [ObsField("newest_share", num_classes, 0, 1, "class shares of the newest samples")]

    def stats(self) -> dict[str, torch.Tensor | float]:
        counts = self.class_histogram().float()
        return {"newest_share": counts / counts.sum().clamp_min(1)}

    def state_dict(self) -> dict[str, Any]:
        return {"images": self.images, "logits": self.logits}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.insert(state["images"], state["logits"], torch.zeros(0))


@pytest.fixture
def toy_method() -> Any:
    SYNTHESIZERS.add("toy-noise", NoiseSynthesizer)
    MEMORIES.add("toy-last-batch", LastBatchMemory)
    register_method("toy", {"synthesizer": "toy-noise", "memory": "toy-last-batch"}, "noise into the newest batch")
    yield "toy"
    SYNTHESIZERS.remove("toy-noise")
    MEMORIES.remove("toy-last-batch")
    METHODS.remove("toy")


def test_a_method_plugged_in_by_registration_runs_an_episode(toy_method: str) -> None:
    env = DistillationEnv(teacher_model=random_teacher(), task="digits", method=toy_method, device="cpu", **TINY)
    assert env.observation_names == [
        "progress",
        "newest_share",
        "batch_discrepancy",
        "batch_agreement",
        "probe_kl",
        "probe_agreement",
        "previous_action",
    ]
    assert env.action_names == ["synth_budget"]  # neither toy component declares a decision it acts on
    obs, _ = env.reset(seed=0)
    assert env.observation_space.contains(obs)
    done, rounds = False, 0
    while not done:
        obs, _, terminated, truncated, info = env.step(env.default_action())
        assert env.observation_space.contains(obs) and not info["diverged"]
        assert info["loss_noise_std"] > 0  # the synthesizer's own loss reaches the round's metrics
        done, rounds = terminated or truncated, rounds + 1
    assert env.engine is not None and isinstance(env.engine.synthesizer, NoiseSynthesizer)
    assert rounds == TINY["rounds"] and env.engine.synthesizer.calls == rounds
    assert env.engine.memory is not None and env.engine.memory.size == TINY["action.synth_budget"]


def test_unknown_component_names_are_one_line_errors() -> None:
    for key in ("synthesizer", "memory", "round_loop", "distiller.kd_loss"):
        with pytest.raises(UserError, match="'nope'.*valid") as info:
            make_config("digits", **{key: "nope"})
        assert "\n" not in str(info.value)
    for task, method in (("digits", "nope"), ("nope", "ssdkd")):
        with pytest.raises(UserError, match="'nope'.*valid"):
            make_config(task, method)


# ---------------------------------------------------------------- KD losses and task kinds
def test_kd_losses_are_per_sample_and_zero_on_agreement() -> None:
    t = torch.randn(5, 10)
    s = torch.randn(5, 10)
    for name in KD_LOSSES:
        loss = KD_LOSSES.get(name)
        values = loss.discrepancy(t, s, 4.0)
        assert values.shape == (5,) and bool((values > 0).all())
        assert torch.allclose(loss.discrepancy(t, t.clone(), 4.0), torch.zeros(5), atol=1e-6)
    assert torch.allclose(KD_LOSSES.get("l1").discrepancy(t, s), (t - s).abs().mean(1))
    assert KD_LOSSES.get("kl").scale(4.0) == 16.0 and KD_LOSSES.get("mse").scale(4.0) == 1.0


@pytest.mark.parametrize("kd_loss", ["l1", "mse"])
def test_the_engine_runs_with_another_kd_loss(kd_loss: str) -> None:
    engine = DistillationEngine(
        tiny_config(**{"distiller.kd_loss": kd_loss}), get_task("digits"), random_teacher(), torch.device("cpu"), 0
    )
    metrics = engine.run_round()
    assert np.isfinite(metrics.kd_loss) and metrics.batch_discrepancy > 0


def test_classification_kind_reduces_dense_values_per_sample() -> None:
    kind = TASK_KINDS.get("classification")
    teacher, student = torch.randn(4, 3, 2, 2), torch.randn(4, 3, 2, 2)
    kl = kind.per_sample(per_sample_kl(teacher, student))
    expected = per_sample_kl(teacher.permute(0, 2, 3, 1).reshape(-1, 3), student.permute(0, 2, 3, 1).reshape(-1, 3))
    assert torch.allclose(kl, expected.view(4, 4).mean(1))
    logits = torch.tensor([[2.0, 0.0, 1.0], [0.0, 3.0, 1.0], [5.0, 0.0, 0.0]])
    assert kind.class_histogram(logits, 3).tolist() == [2, 1, 0]
    assert kind.agreement(logits, logits.roll(1, 0)).tolist() == [1.0, 0.0, 0.0]
    assert set(EVICTION_RULES) == {"lowest", "oldest", "class"}


@pytest.mark.parametrize("arch", ["cnn", "cnn_half", "lenet5", "lenet5_half", "wrn16_1", "vgg8", "mobilenetv2"])
def test_a_run_generator_replays_the_global_stream_without_touching_it(arch: str) -> None:
    """Weights drawn from a generator seeded with s equal those of torch.manual_seed(s) + construction."""
    from ssdkd_env.models import Generator, build_model

    torch.manual_seed(11)
    expected = build_model(arch, 10, 3).state_dict()
    state = torch.get_rng_state()
    seeded = build_model(arch, 10, 3, generator=torch.Generator().manual_seed(11)).state_dict()
    assert torch.equal(torch.get_rng_state(), state)
    assert seeded.keys() == expected.keys() and all(torch.equal(seeded[k], expected[k]) for k in expected)
    from ssdkd_env.models.init import seeded as seeded_build

    torch.manual_seed(3)
    generator = Generator(16, (3, 8, 8), 8, "sigmoid", (0.4, 0.5, 0.6), (0.2, 0.2, 0.3)).state_dict()
    again = seeded_build(
        lambda: Generator(16, (3, 8, 8), 8, "sigmoid", (0.4, 0.5, 0.6), (0.2, 0.2, 0.3)),
        torch.Generator().manual_seed(3),
    ).state_dict()
    assert all(torch.equal(again[k], generator[k]) for k in generator)  # constants (mean, std) kept too
