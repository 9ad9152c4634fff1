"""PRE-DFKD's generative pseudo-replay memory: no stored images, constant footprint, teacher-labelled samples."""

from __future__ import annotations

import copy
from typing import Any

import pytest
import torch
from helpers import random_teacher, tiny_config

from ssdkd_env.context import RunContext
from ssdkd_env.engine.engine import DistillationEngine
from ssdkd_env.env.spaces import observation_fields
from ssdkd_env.observation import assemble
from ssdkd_env.replay import MEMORIES, GenerativeReplay, VAEConfig
from ssdkd_env.replay.generative import ConvVAE
from ssdkd_env.tasks import get_task

TASK = get_task("digits")
TEACHER = random_teacher()
CONFIG = VAEConfig(latent=8, width=8, train_steps=4, batch_size=16)


def make_memory(seed: int = 0, config: VAEConfig = CONFIG, capacity: int = 64) -> GenerativeReplay:
    context = RunContext.of_task(
        TASK,
        TEACHER,
        torch.Generator().manual_seed(seed + 1),
        torch.Generator().manual_seed(seed),
        buffer_size=capacity,
    )
    return GenerativeReplay(config, context)


def batch(n: int = 32, seed: int = 5) -> tuple[torch.Tensor, torch.Tensor]:
    """Learnable images (ramps with two random slopes) normalised as the task's, with the teacher's logits."""
    slopes = torch.rand(n, 2, 1, 1, 1, generator=torch.Generator().manual_seed(seed))
    y, x = torch.meshgrid(
        torch.linspace(0, 1, TASK.input_shape[1]), torch.linspace(0, 1, TASK.input_shape[2]), indexing="ij"
    )
    pixels = (slopes[:, 0] * x + slopes[:, 1] * y).clamp(0, 1)
    mean = torch.tensor(TASK.mean).view(1, -1, 1, 1)
    std = torch.tensor(TASK.std).view(1, -1, 1, 1)
    images = (pixels - mean) / std
    with torch.no_grad():
        return images, TEACHER(images)


def insert(memory: GenerativeReplay, times: int = 1, **kwargs: Any) -> None:
    for i in range(times):
        images, logits = batch(seed=i)
        memory.insert(images, logits, torch.ones(images.shape[0]), **kwargs)


def tensors(value: Any) -> list[torch.Tensor]:
    if isinstance(value, torch.Tensor):
        return [value]
    if isinstance(value, dict):
        return [t for v in value.values() for t in tensors(v)]
    if isinstance(value, list | tuple):
        return [t for v in value for t in tensors(v)]
    return []


def test_registered_and_stores_no_images() -> None:
    assert MEMORIES.get("vae") is GenerativeReplay
    memory = make_memory(config=VAEConfig(latent=8, width=8, train_steps=1, batch_size=16))
    insert(memory)
    after_one = memory.memory_bytes()
    shapes_one = {k: v.shape for k, v in vars(memory).items() if isinstance(v, torch.Tensor)}
    insert(memory, 9)
    assert memory.memory_bytes() == after_one > 0
    assert {k: v.shape for k, v in vars(memory).items() if isinstance(v, torch.Tensor)} == shapes_one
    image_dims = tuple(TASK.input_shape)
    assert not [t.shape for t in tensors(memory.state_dict()) if tuple(t.shape[-3:]) == image_dims]
    assert memory.inserted == 320 and memory.size == memory.capacity == 64


def test_training_on_a_fixed_batch_lowers_the_loss() -> None:
    memory = make_memory(config=VAEConfig(latent=8, width=8, train_steps=1, batch_size=32, lr=3e-3))
    images, logits = batch()
    losses = []
    for _ in range(40):
        memory.insert(images, logits, torch.ones(32))
        recon, teacher_term, _ = memory.last_losses.tolist()
        losses.append(recon + teacher_term)
    assert sum(losses[-5:]) < 0.5 * sum(losses[:5]), losses


def test_replace_fraction_scales_the_steps_once_full() -> None:
    memory = make_memory(config=VAEConfig(latent=8, width=8, train_steps=12, batch_size=8), capacity=32)
    insert(memory, replace_fraction=0.0)  # 32 free slots: every sample counts
    assert memory.steps == 12 and memory.size == 32
    images, logits = batch()
    slots = memory.insert(images, logits, torch.ones(32), replace_fraction=0.25)  # 8 of 32 count: 3 steps
    assert memory.steps == 15 and slots.tolist() == list(range(8))
    assert memory.insert(images, logits, torch.ones(32), replace_fraction=0.0).numel() == 0 and memory.steps == 15
    first = torch.bincount(batch(seed=0)[1].argmax(1), minlength=TASK.num_classes).float()
    counts = torch.bincount(logits.argmax(1), minlength=TASK.num_classes).float()
    assert torch.allclose(memory.class_histogram(), first + 0.25 * counts)


def test_samples_are_normalised_images_labelled_by_the_teacher() -> None:
    memory = make_memory()
    with pytest.raises(RuntimeError):
        memory.sample(4)
    insert(memory)
    drawn = memory.sample(12, generator=torch.Generator().manual_seed(3))
    assert drawn.images.shape == (12, *TASK.input_shape)
    mean, std = TASK.mean[0], TASK.std[0]
    assert float(drawn.images.min()) >= (0 - mean) / std - 1e-5 and float(drawn.images.max()) <= (1 - mean) / std + 1e-5
    with torch.no_grad():
        assert torch.allclose(drawn.teacher_logits, TEACHER(drawn.images), atol=1e-5)
    assert torch.equal(drawn.weights, torch.ones(12)) and drawn.index.tolist() == list(range(12))
    images, outputs = memory.contents()
    assert images.shape[0] == outputs.shape[0] > 0
    assert torch.equal(memory.contents()[0], images)  # fixed preview latents


def test_seeding_reproduces_samples_and_checkpoints_round_trip() -> None:
    global_state = torch.get_rng_state()
    a, b = make_memory(seed=1), make_memory(seed=1)
    insert(a, 2)
    insert(b, 2)
    draw = a.sample(8, generator=torch.Generator().manual_seed(9)).images
    assert torch.equal(torch.get_rng_state(), global_state)  # only the run's generators are drawn from
    assert torch.equal(draw, b.sample(8, generator=torch.Generator().manual_seed(9)).images)
    assert not torch.equal(draw, make_memory(seed=2).vae.decode(torch.zeros(1, 8)).expand_as(draw))
    restored = make_memory(seed=7)
    restored.load_state_dict(a.state_dict())
    restored.generator.set_state(a.generator.get_state())
    assert torch.equal(restored.sample(8, generator=torch.Generator().manual_seed(9)).images, draw)
    assert torch.equal(restored.contents()[0], a.contents()[0])
    insert(a)  # the optimiser's state came along: training continues identically
    insert(restored)
    again = [m.sample(8, generator=torch.Generator().manual_seed(4)).images for m in (a, restored)]
    assert torch.equal(*again) and torch.equal(restored.last_losses, a.last_losses)


def test_stats_fill_every_declared_observation_field() -> None:
    memory = make_memory()
    fields = observation_fields(TASK.num_classes, GenerativeReplay)
    values: dict[str, Any] = {"progress": 0.0, "batch_discrepancy": 0.0, "batch_agreement": 0.0, "probe_kl": 0.0}
    values |= {"probe_agreement": 0.0, "previous_action": [0.0] * 7}
    assert assemble(fields, {**values, **memory.stats()}, 3).shape[0] > 0  # empty memory: zeros
    insert(memory)
    stats = memory.stats()
    obs = assemble(fields, {**values, **stats}, 3)
    assert stats["buffer_fill"] == 0.5 and float(torch.as_tensor(stats["class_share"]).sum()) == pytest.approx(1.0)
    assert [stats[k] for k in ("vae_reconstruction", "vae_teacher", "vae_kl")] == memory.last_losses.tolist()
    assert 0 <= obs.min() and obs.max() <= 1


def test_teacher_weights_get_no_gradient() -> None:
    teacher = random_teacher().requires_grad_(True)
    memory = GenerativeReplay(CONFIG, RunContext.of_task(TASK, teacher, torch.Generator(), buffer_size=8))
    images, logits = batch()
    memory.insert(images, logits, torch.ones(32))
    assert all(p.grad is None for p in teacher.parameters())


def test_engine_runs_with_the_vae_memory() -> None:
    config = tiny_config("ssdkd", memory="vae", rounds=2, **{"vae.latent": 8, "vae.width": 8, "vae.train_steps": 2})
    engine = DistillationEngine(config, TASK, TEACHER, torch.device("cpu"), seed=0)
    first = engine.run_round()
    state = copy.deepcopy(engine.state_dict())
    second = engine.run_round()
    assert engine.done and second.round == 2 and first.buffer_fill == 0.5 and second.buffer_fill == 1.0
    assert isinstance(engine.memory, GenerativeReplay) and engine.memory.steps == 4
    resumed = DistillationEngine(config, TASK, TEACHER, torch.device("cpu"), seed=1, probe=engine.probe)
    resumed.load_state_dict(state)
    assert resumed.run_round() == second  # a checkpoint resumes the run exactly


@pytest.mark.parametrize("shape", [(1, 8, 8), (1, 28, 28), (3, 32, 32)])
def test_vae_is_sized_from_the_input_shape(shape: tuple[int, int, int]) -> None:
    vae = ConvVAE(shape, latent=4, width=4, mean=[0.5] * shape[0], std=[0.25] * shape[0])
    with torch.no_grad():
        mu, logvar = vae.encode(torch.zeros(2, *shape))
        images = vae.decode(mu)
    assert mu.shape == logvar.shape == (2, 4)
    assert images.shape == (2, *shape) and float(images.min()) >= -2 and float(images.max()) <= 2
    with pytest.raises(ValueError, match="divisible by 4"):
        ConvVAE((1, 30, 30), latent=4, width=4)
