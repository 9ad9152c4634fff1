"""Condensed samples (train/condense.py, distribution matching) and the csmi method built on them."""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from helpers import random_condensed, random_teacher, saved_random_teacher, tiny_config
from scripts import assert_one_line_error, run_in_process

from ssdkd_env.checkpoint import card_for
from ssdkd_env.common.images import normalize_uint8
from ssdkd_env.condensation import (
    CondensedSet,
    CondenseRun,
    condense,
    dm_loss,
    embedding_net,
    load_condensed,
    pick_real,
)
from ssdkd_env.engine import DistillationEngine
from ssdkd_env.engine.context import RunContext
from ssdkd_env.engine.run import RunSpec, run_distillation
from ssdkd_env.errors import UserError
from ssdkd_env.models import build_model
from ssdkd_env.models.init import seeded
from ssdkd_env.synthesis import SYNTHESIZERS, SynthesisConfig, SynthesisRequest
from ssdkd_env.synthesis.condensed import ProjectionDiscriminator, discriminator_loss
from ssdkd_env.tasks import TASKS, LabeledImages, TaskSpec, TeacherRecipe, get_task, register_task

PER_CLASS_IN_FAKE = 5
CPU = torch.device("cpu")


def fake_images(seed: int = 0) -> LabeledImages:
    """Ten classes of 8x8 images, each a class pattern plus noise."""
    gen = torch.Generator().manual_seed(seed)
    labels = torch.arange(10).repeat(PER_CLASS_IN_FAKE)
    patterns = torch.rand(10, 1, 8, 8, generator=gen)
    noisy = patterns[labels] + 0.3 * torch.rand(labels.numel(), 1, 8, 8, generator=gen)
    return LabeledImages((noisy.clamp(0, 1) * 255).to(torch.uint8), labels)


@pytest.fixture
def fake_task() -> Iterator[TaskSpec]:
    """A registered 8x8 task whose real data is ``fake_images()`` (so the CLI can name it)."""
    data = fake_images()
    task = TaskSpec(
        name="csmi-fake",
        num_classes=10,
        input_shape=(1, 8, 8),
        mean=(0.5,),
        std=(0.25,),
        teacher_arch="cnn",
        student_arch="cnn_half",
        loader=lambda _root, _train, _download: data,
        recipe=TeacherRecipe(epochs=1, batch_size=8, lr=0.1, weight_decay=0.0),
        needs_data_root=False,
        description="fake data for the csmi tests",
    )
    register_task(task)
    yield task
    TASKS.pop(task.name)


# ------------------------------------------------------------------ the data owner's side


def test_condense_beats_its_real_initialisation_on_fixed_embeddings(fake_task: TaskSpec) -> None:
    real = fake_task.load(None, True)
    run = CondenseRun(fake_task, per_class=2, steps=40, lr=0.05, batch_real=5, width=32, progress=False)
    condensed, picked = condense(real, run), pick_real(real, run)  # the same seed: picked is the start
    assert condensed.images.shape == (20, 1, 8, 8) and condensed.images.dtype == torch.float32
    assert torch.bincount(condensed.labels, minlength=10).tolist() == [2] * 10
    assert torch.equal(condensed.labels, picked.labels) and condensed.method == "distribution-matching"
    low, high = (0 - 0.5) / 0.25, (1 - 0.5) / 0.25
    assert condensed.images.min() >= low and condensed.images.max() <= high
    real_x = normalize_uint8(real.images, fake_task.mean, fake_task.std)
    gen = torch.Generator().manual_seed(1234)
    nets = [embedding_net(1, 8, 32, gen) for _ in range(5)]

    def measured(s: CondensedSet) -> float:
        with torch.no_grad():
            return sum(float(dm_loss(net, s.images, s.labels, real_x, real.labels, 10)) for net in nets)

    assert measured(condensed) < 0.5 * measured(picked)
    assert condensed.loss < picked.loss  # the file's own measure agrees


def test_pick_real_takes_k_real_images_per_class(fake_task: TaskSpec) -> None:
    real = fake_task.load(None, True)
    picked = pick_real(real, CondenseRun(fake_task, per_class=3, seed=4, progress=False))
    assert torch.bincount(picked.labels, minlength=10).tolist() == [3] * 10 and picked.method == "real"
    real_x = normalize_uint8(real.images, fake_task.mean, fake_task.std)
    for image, label in zip(picked.images, picked.labels, strict=True):
        same = (real_x == image).flatten(1).all(1)
        assert bool(same.any()) and set(real.labels[same].tolist()) == {int(label)}
    assert len({tuple(x.flatten().tolist()) for x in picked.images}) == 30  # no image twice


def test_condense_cli_writes_both_kinds_of_file(fake_task: TaskSpec, tmp_path: Path) -> None:
    common = ["--task", fake_task.name, "--per-class", "2", "--device", "cpu", "--no-progress"]
    real_file, dm_file = tmp_path / "real.pt", tmp_path / "sub" / "dm.pt"
    result = run_in_process("condense", *common, "--real", "--out", str(real_file))
    assert result.returncode == 0, result.stderr
    result = run_in_process("condense", *common, "--steps", "3", "--width", "8", "--out", str(dm_file))
    assert result.returncode == 0, result.stderr
    real, dm = load_condensed(real_file, fake_task), load_condensed(dm_file, fake_task)
    assert (real.method, dm.method) == ("real", "distribution-matching")
    assert real.images.shape == dm.images.shape == (20, 1, 8, 8) and real.per_class == dm.per_class == 2
    assert set(torch.load(dm_file, weights_only=True)) == {"images", "labels", "task", "per_class", "method", "loss"}


def test_condense_cli_bad_inputs_are_one_line_errors(fake_task: TaskSpec, tmp_path: Path) -> None:
    def condense_cli(*args: str) -> object:
        return run_in_process("condense", "--device", "cpu", "--no-progress", *args)

    out = ["--out", str(tmp_path / "c.pt")]
    assert_one_line_error(condense_cli("--task", fake_task.name, "--per-class", "0", *out), "--per-class")
    assert_one_line_error(condense_cli("--task", fake_task.name, "--per-class", "1", "--steps", "0", *out), "--steps")
    too_many = str(PER_CLASS_IN_FAKE + 1)
    assert_one_line_error(condense_cli("--task", fake_task.name, "--per-class", too_many, *out), "only 5")
    assert_one_line_error(
        condense_cli("--task", fake_task.name, "--per-class", "1", "--out", str(tmp_path)), "is a folder"
    )
    missing = ["--task", "mnist", "--data-root", str(tmp_path / "nowhere"), "--per-class", "1", *out]
    assert_one_line_error(condense_cli(*missing), "no mnist data", "--data-root")


# ------------------------------------------------------------------ the discriminator and the generator


def test_discriminator_learns_to_separate_fixed_features() -> None:
    gen = torch.Generator().manual_seed(0)
    disc = seeded(lambda: ProjectionDiscriminator(16, 4, 32), gen)
    real, real_y = torch.randn(8, 16, generator=gen) + 1.0, torch.arange(4).repeat(2)
    fake, fake_y = torch.randn(64, 16, generator=gen), torch.randint(4, (64,), generator=gen)
    optimizer = torch.optim.Adam(disc.parameters(), lr=1e-2)
    losses = []
    for _ in range(60):
        loss = discriminator_loss(disc, real, real_y, fake, fake_y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.3 * losses[0]


def guided_rounds(name: str, condensed: Path, disc_weight: float, rounds: int = 2) -> list[dict]:
    """``rounds`` rounds of synthesizer ``name`` built as the engine builds it (fixed seeds)."""
    task = get_task("digits")
    config = tiny_config("csmi", **{"condensed_path": str(condensed), "condensed-guided.disc_weight": disc_weight})
    rng = torch.Generator().manual_seed(0)
    student = build_model("cnn_half", 10, 1, generator=torch.Generator().manual_seed(1))
    ctx = RunContext.of_task(
        task, random_teacher(), rng, torch.Generator().manual_seed(2), student=student, condensed_path=str(condensed)
    )
    options = config.options("synthesizer")
    if name == "meta-generator":  # the same options, less the discriminator's
        options = SynthesisConfig(**{f.name: getattr(options, f.name) for f in dataclasses.fields(SynthesisConfig)})
    synth = SYNTHESIZERS.get(name)(options, ctx)
    out = []
    for r in range(rounds):
        result = synth.synthesize(SynthesisRequest(32, torch.zeros(10), r))
        out.append({"images": result.images, "losses": {k: float(v) for k, v in result.losses.items()}})
    synth.close()
    return out


def test_generator_loss_has_the_disc_term_and_weight_zero_is_plain_fast(tmp_path: Path) -> None:
    condensed = random_condensed(tmp_path / "c.pt")
    plain = guided_rounds("meta-generator", condensed, 1.0)
    off = guided_rounds("condensed-guided", condensed, 0.0)
    on = guided_rounds("condensed-guided", condensed, 1.0)
    for p, o in zip(plain, off, strict=True):
        assert torch.equal(p["images"], o["images"])  # weight 0: exactly Fast's inversion
        assert "disc" not in o["losses"] and "disc_d" in o["losses"]
    assert all(r["losses"]["disc"] > 0 and r["losses"]["disc_d"] > 0 for r in on)
    assert not torch.equal(on[0]["images"], plain[0]["images"])


@pytest.mark.parametrize("task", ["digits", "mnist", "cifar10-cpu"])
def test_csmi_is_fast2_plus_guidance_on_every_task(task: str) -> None:
    """csmi's base is Fast2 whatever the task's default number of generator steps (10 on MNIST, 5 on CIFAR-10)."""
    from ssdkd_env.engine.config import make_config

    base, guided = make_config(task, "fast2"), make_config(task, "csmi")
    assert {key: guided.synthesizer_options[key] for key in base.synthesizer_options} == base.synthesizer_options
    assert (guided.synthesizer, base.synthesizer) == ("condensed-guided", "meta-generator")
    assert make_config(task, "csmi", **{"meta-generator.g_steps": 10}).synthesizer_options["g_steps"] == 10


# ------------------------------------------------------------------ csmi runs


def csmi_engine(condensed: Path, seed: int = 0, **overrides: object) -> DistillationEngine:
    task = get_task("digits")
    config = tiny_config("csmi", **{"condensed_path": str(condensed), "probe_size": 0, **overrides})
    return DistillationEngine(config, task, random_teacher(), CPU, seed, task.load(None, False))


def test_condensed_samples_are_in_the_memory_from_the_start_and_stay(tmp_path: Path) -> None:
    path = random_condensed(tmp_path / "c.pt", per_class=2)
    condensed = load_condensed(path, get_task("digits"))
    engine = csmi_engine(path)
    memory = engine.memory
    assert memory is not None and memory.size == 20 and memory.capacity == 3 * 32 + 20
    assert torch.equal(memory.images[:20], condensed.images)
    assert torch.equal(memory.teacher_logits[:20].argmax(1), engine.teacher(condensed.images).argmax(1))
    while not engine.done:
        engine.run_round()
    assert memory.size == memory.capacity and torch.equal(memory.images[:20], condensed.images)
    engine.close()


def test_csmi_run_checkpoints_and_resumes_exactly(tmp_path: Path) -> None:
    condensed = random_condensed(tmp_path / "c.pt")
    full = csmi_engine(condensed)
    rows = [full.run_round().as_dict() for _ in range(3)]
    first = csmi_engine(condensed)
    first.run_round(), first.run_round()
    state = first.state_dict()
    assert {"disc", "disc_optimizer"} <= set(state["synthesizer"])
    resumed = csmi_engine(condensed)
    resumed.load_state_dict(state)
    assert resumed.run_round().as_dict() == rows[-1]
    assert rows[-1]["loss_disc"] > 0 and rows[-1]["loss_disc_d"] > 0
    for engine in (full, first, resumed):
        engine.close()


def test_csmi_distill_run_writes_its_outputs(tmp_path: Path) -> None:
    task = get_task("digits")
    config = tiny_config("csmi", **{"condensed_path": str(random_condensed(tmp_path / "c.pt")), "rounds": 2})
    spec = RunSpec(
        task,
        random_teacher(),
        card_for(task, "cnn_half", "teacher", None),
        CPU,
        0,
        tmp_path / "run",
        task.load(None, False),
        checkpoint_every=1,
        progress=False,
    )
    summary = run_distillation(config, spec)
    assert (tmp_path / "run" / "state.pt").is_file() and summary["student_acc"] is not None
    saved = json.loads((tmp_path / "run" / "config.json").read_text())
    assert saved["condensed_path"] == config.condensed_path and saved["method"] == "csmi"


def test_missing_or_mismatched_condensed_files_are_one_line_errors(tmp_path: Path) -> None:
    digits = get_task("digits")
    cases = {
        None: "condensed_path=FILE",
        tmp_path / "absent.pt": "does not exist",
        random_condensed(tmp_path / "mnist.pt", task="mnist"): "task 'mnist'",
        random_condensed(tmp_path / "big.pt", shape=(1, 32, 32)): "shape (1, 32, 32)",
    }
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"junk")
    cases[junk] = "not a readable condensed-sample file"
    for path, needle in cases.items():
        with pytest.raises(UserError, match=re.escape(needle)) as info:
            load_condensed(path, digits)
        assert "\n" not in str(info.value)
    with pytest.raises(UserError, match="task 'mnist'"):
        csmi_engine(tmp_path / "mnist.pt")
    teacher = saved_random_teacher(tmp_path / "teacher.pt")
    result = run_in_process(
        "distill",
        *("--method", "csmi", "--teacher", str(teacher), "--out", str(tmp_path / "run"), "--no-progress"),
        *("--device", "cpu", "--set", "probe_size=0", "--set", f"condensed_path={tmp_path / 'mnist.pt'}"),
    )
    assert_one_line_error(result, "task 'mnist'", "'digits'")
