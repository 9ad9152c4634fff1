"""MB-DFKD and the adversarial round with a memory: the bank replays beside every fresh batch,
evicts first in, first out, and the generator's BN constraint and learning-rate schedule apply."""

from __future__ import annotations

import pytest
import torch
from helpers import random_teacher, tiny_config

from ssdkd_env.engine import DistillationEngine, make_config, methods_with_memory
from ssdkd_env.env import DistillationEnv
from ssdkd_env.losses import jensen_shannon
from ssdkd_env.synthesis.adversarial import class_balance, generator_objective
from ssdkd_env.tasks import get_task

SMALL = {"adversarial-generator.nz": 16, "adversarial-generator.ngf": 8}


def engine_for(method: str, seed: int = 0, **overrides: object) -> DistillationEngine:
    config = tiny_config(method, **{**SMALL, **overrides})
    return DistillationEngine(config, get_task("digits"), random_teacher(), torch.device("cpu"), seed)


def test_mb_dfkd_is_dfad_with_a_fifo_bank_and_the_bn_constraint() -> None:
    config = make_config("digits", "mb-dfkd")
    assert (config.round_loop, config.synthesizer, config.memory) == ("adversarial", "adversarial-generator", "replay")
    assert config.action.eviction == "oldest" and config.synthesizer_options["bn_weight"] > 0
    assert config.round_loop_options["replay_ratio"] > 0 and "mb-dfkd" in methods_with_memory()


def test_each_student_step_replays_from_the_bank_once_it_holds_samples() -> None:
    engine = engine_for("mb-dfkd", kd_steps=5, **{"adversarial.replay_ratio": 0.5})
    assert engine.memory is not None
    seen: list[int] = []
    step = engine.distiller.step
    engine.distiller.step = lambda batch: (seen.append(batch.images.shape[0]), step(batch))[1]  # type: ignore[method-assign]
    engine.run_round()
    engine.run_round()
    n = engine.config.distiller.batch_size
    assert seen == [n] * 5 + [n + n // 2] * 5  # the bank is empty during the first round
    assert engine.memory.size == 2 * engine.config.action.synth_budget


def test_bank_evicts_the_oldest_samples_in_order() -> None:
    engine = engine_for("mb-dfkd", kd_steps=1, buffer_size=64, **{"action.synth_budget": 32})
    memory = engine.memory
    assert memory is not None
    births = []
    for _ in range(4):
        engine.run_round()
        births.append(sorted(memory.birth_round[: memory.size].tolist()))
    # 32 samples a round into 64 slots: after round r the bank holds rounds r-1 and r only
    assert births[1] == [0] * 32 + [1] * 32
    assert births[2] == [1] * 32 + [2] * 32
    assert births[3] == [2] * 32 + [3] * 32


def test_bn_constraint_is_a_weighted_term_of_the_generator_loss() -> None:
    engine = engine_for(
        "mb-dfkd", kd_steps=5, **{"adversarial.student_steps": 1, "adversarial-generator.bn_weight": 2.0}
    )
    metrics = engine.run_round().as_dict()
    assert metrics["loss_generator_bn"] > 0
    assert metrics["loss_generator"] == pytest.approx(metrics["loss_generator_adv"] + metrics["loss_generator_bn"])
    plain = engine_for("dfad", kd_steps=5).run_round().as_dict()
    assert "loss_generator_bn" not in plain and plain["loss_generator"] == plain["loss_generator_adv"]


def test_generator_learning_rate_follows_the_student_schedule() -> None:
    engine = engine_for("dfad", rounds=4, kd_steps=5, **{"adversarial.student_steps": 5})
    base = engine.config.synthesizer_options["lr"]
    rates = []
    for _ in range(4):
        engine.run_round()
        rates.append(engine.synthesizer.optimizer.param_groups[0]["lr"])  # type: ignore[attr-defined]
    scales = [rate / base for rate in rates]
    assert scales == sorted(scales, reverse=True) and scales[0] < 1 and scales[-1] < 0.1
    assert scales[-1] == pytest.approx(engine.distiller.lr_scale, abs=0.1)


def test_js_objective_and_class_balance() -> None:
    same = torch.randn(4, 10)
    assert jensen_shannon(same, same).abs().max() < 1e-6
    far = jensen_shannon(torch.tensor([[50.0, 0.0]]), torch.tensor([[0.0, 50.0]]))
    assert far.item() == pytest.approx(torch.log(torch.tensor(2.0)).item(), abs=1e-5)
    assert generator_objective(torch.tensor(0.25), "one-minus-js").item() == pytest.approx(0.75)
    even = torch.eye(10) * 20  # one confident prediction per class: balanced
    assert class_balance(even).item() == pytest.approx(0.0, abs=1e-5)
    assert class_balance(torch.zeros(10, 10).index_fill_(1, torch.tensor([3]), 20.0)).item() > 2.0


def test_environment_drives_mb_dfkd() -> None:
    env = DistillationEnv(
        task="digits",
        method="mb-dfkd",
        teacher_model=random_teacher(),
        **{**SMALL, "rounds": 2, "kd_steps": 2, "buffer_size": 32, "probe_size": 8},
    )
    obs, _ = env.reset(seed=0)
    obs, reward, terminated, truncated, _ = env.step(env.action_space.sample())
    assert env.observation_space.contains(obs) and isinstance(reward, float)
    env.close()
