"""A complete distillation run with its outputs: the loop behind ``train/distill.py``."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from ssdkd_env.checkpoint import ModelCard, card_for, save_model
from ssdkd_env.common.images import predict_logits
from ssdkd_env.common.io import load_data_file, save_torch, write_json
from ssdkd_env.engine.config import EngineConfig
from ssdkd_env.engine.engine import DistillationEngine
from ssdkd_env.errors import UserError
from ssdkd_env.reporting import (
    RunLog,
    peak_memory_mb,
    sample_confidence,
    save_curves,
    save_sample_diagnostics,
    save_sample_grid,
    save_segmentation_grid,
)
from ssdkd_env.synthesis import SynthesisRequest
from ssdkd_env.tasks import LabeledImages, TaskSpec

ACCURACY_MILESTONES = (0.90, 0.95, 0.97, 0.98)
STATE_FILE = "state.pt"
# what a run writes in its folder: a folder holding any of them holds a run (ssdkd_env/common/runfolder.py)
RUN_FILES = (
    "config.json",
    STATE_FILE,
    "summary.json",
    "metrics.csv",
    "student.pt",
    "tb",
    "curves.png",
    "buffer_samples.png",
    "sample_diagnostics.png",
)
GENERATOR_GRID_SIZE = 100  # images in the sample grid of a method without a memory


@dataclass
class RunSpec:
    """Inputs of one run besides its configuration."""

    task: TaskSpec
    teacher: torch.nn.Module
    teacher_card: ModelCard
    device: torch.device
    seed: int
    out_dir: Path
    test_set: LabeledImages | None = None
    resume: bool = False
    checkpoint_every: int = 10
    progress: bool = True


def load_resume_state(out_dir: Path) -> dict[str, Any]:
    """The checkpoint a run left in ``out_dir``."""
    path = out_dir / STATE_FILE
    if not path.is_file():
        raise UserError(f"--resume: no checkpoint {path}; start the run without --resume")
    state = load_data_file(path, "run checkpoint", "start the run afresh with --overwrite")
    if not isinstance(state, dict):
        raise UserError(f"--resume: {path} is not a run checkpoint; start the run afresh with --overwrite")
    return state


def run_distillation(config: EngineConfig, spec: RunSpec) -> dict[str, Any]:
    """Run every round of ``config``, writing metrics, figures, checkpoints and ``summary.json``."""
    out = spec.out_dir
    out.mkdir(parents=True, exist_ok=True)
    engine = DistillationEngine(config, spec.task, spec.teacher, spec.device, spec.seed, spec.test_set)
    elapsed_before = 0.0
    log = RunLog(out, "distill", resume=spec.resume)
    if spec.resume:
        state = load_resume_state(out)
        try:
            engine.load_state_dict(state["engine"])
            elapsed_before = float(state["wall_time_s"])
        except (KeyError, ValueError, TypeError, RuntimeError) as exc:  # another version's or shape's state
            raise UserError(
                f"--resume: {out / STATE_FILE} does not fit this version of the run ({type(exc).__name__}: {exc}); "
                "start the run afresh with --overwrite"
            ) from None
        log.truncate(engine.round)
    write_json(out / "config.json", {"seed": spec.seed, **config.to_dict()})
    start = time.perf_counter()
    bar = tqdm(
        total=config.rounds,
        initial=engine.round,
        desc=f"{config.method} {spec.task.name}",
        unit="round",
        disable=not spec.progress,
    )
    while not engine.done:
        metrics = engine.run_round()
        wall = elapsed_before + time.perf_counter() - start
        log.append({**metrics.as_dict(), "wall_time_s": round(wall, 3)})
        postfix = {"probe": f"{metrics.probe_agreement:.3f}"}
        if metrics.test_acc is not None:
            postfix["acc"] = f"{metrics.test_acc:.4f}"
        bar.set_postfix(postfix)
        bar.update(1)
        if engine.done or engine.round % max(1, spec.checkpoint_every) == 0:
            save_torch(out / STATE_FILE, {"engine": engine.state_dict(), "wall_time_s": wall})
    bar.close()
    wall_time = elapsed_before + time.perf_counter() - start
    log.close()

    scores = engine.test_scores()
    student_acc = None if scores is None else scores[engine.kind.metric]
    save_model(
        out / "student.pt",
        engine.delivered_student,
        card_for(spec.task, engine_arch(config, spec.task), "student", student_acc),
    )
    _figures(engine, log, out, spec.task)
    engine.close()
    summary = {
        "method": config.method,
        "task": spec.task.name,
        "teacher_arch": spec.teacher_card.arch,
        "student_arch": engine_arch(config, spec.task),
        "metric": engine.kind.metric,  # what the *_acc fields measure: accuracy, or mIoU for segmentation
        "teacher_acc": spec.teacher_card.test_acc,
        "student_acc": student_acc,
        "student_scores": scores,
        "best_student_acc": max(log.column("test_acc")[1], default=None),
        **accuracy_over_run(log.column("test_acc")[1]),
        "probe_agreement": log.rows[-1]["probe_agreement"],
        "probe_kl": log.rows[-1]["probe_kl"],
        "synthetic_samples": engine.synthetic_samples,
        "synthesis": engine.synthesizer.report(),
        "buffer_size": 0 if engine.memory is None else engine.memory.capacity,
        "buffer_filled": 0 if engine.memory is None else engine.memory.size,
        "rounds": engine.round,
        "kd_steps": engine.distiller.steps,
        "wall_time_s": round(wall_time, 2),
        "time_to_accuracy": _milestones(log),
        **peak_memory_mb(spec.device),
        "buffer_memory_mb": 0.0 if engine.memory is None else round(engine.memory.memory_bytes() / 2**20, 2),
        "seed": spec.seed,
        "device": str(spec.device),
        "config": config.to_dict(),
    }
    write_json(out / "summary.json", summary)
    return summary


def engine_arch(config: EngineConfig, task: TaskSpec) -> str:
    return config.student_arch or task.student_arch


def accuracy_over_run(accuracies: list[float]) -> dict[str, float | None]:
    """PRE-DFKD's view of a run without a validation set (Binici et al., AAAI 2022): the mean and
    the variance of the student's test accuracy over every measured round, in percent and percent
    squared as in its tables (a method that peaks and then forgets shows a low mean and a high variance)."""
    if not accuracies:
        return {"acc_mean_over_run": None, "acc_variance_over_run": None}
    values = torch.tensor(accuracies, dtype=torch.float64) * 100
    return {
        "acc_mean_over_run": round(values.mean().item(), 3),
        "acc_variance_over_run": round(values.var(unbiased=False).item(), 3),
    }


def _milestones(log: RunLog) -> dict[str, dict[str, float] | None]:
    """First wall time, round and sample count at which the real accuracy reached each milestone."""
    out: dict[str, dict[str, float] | None] = {}
    for level in ACCURACY_MILESTONES:
        hit = next((r for r in log.rows if r.get("test_acc") not in (None, "") and float(r["test_acc"]) >= level), None)
        out[f"{level:.2f}"] = (
            None
            if hit is None
            else {
                "wall_time_s": hit["wall_time_s"],
                "round": hit["round"],
                "synthetic_samples": hit["synthetic_samples"],
            }
        )
    return out


def _figures(engine: DistillationEngine, log: RunLog, out: Path, task: TaskSpec) -> None:
    """``buffer_samples.png`` (what the memory holds at the end) or, for a method without a memory,
    ``generator_samples.png`` (a fresh batch from its synthesizer); ``sample_diagnostics.png``
    (teacher confidence and class shares of those samples); ``curves.png``."""
    if engine.memory is not None:
        images, outputs = engine.memory.contents()
        name = "buffer_samples.png"
    else:
        fresh = engine.synthesizer.synthesize(
            SynthesisRequest(GENERATOR_GRID_SIZE, torch.zeros(task.num_classes), engine.round)
        )
        images, outputs, name = fresh.images, fresh.teacher_logits, "generator_samples.png"
    classes = engine.kind.predicted_classes(outputs)
    save_sample_grid(
        out / name, images, classes, task.num_classes, task.mean, task.std, confidence=sample_confidence(outputs)
    )
    source = "memory" if engine.memory is not None else "generator batch"
    save_sample_diagnostics(
        out / "sample_diagnostics.png",
        sample_confidence(outputs),
        classes,
        task.num_classes,
        f"{engine.config.method} on {task.name}: {source} at round {engine.round}",
    )
    if engine.kind.dense:
        _segmentation_figures(engine, out, images)
    series = {"probe agreement": log.column("probe_agreement")}
    if any(r.get("test_acc") not in (None, "") for r in log.rows):
        series["student test accuracy"] = log.column("test_acc")
    save_curves(out / "curves.png", series, "round", f"{engine.config.method} on {task.name}")


SEGMENTATION_GRID_ROWS = 8


@torch.no_grad()
def _segmentation_figures(engine: DistillationEngine, out: Path, synthetic: torch.Tensor) -> None:
    """``segmentation_samples.png``: input, ground truth, teacher and student masks on real test
    images (when the run has them); ``segmentation_synthetic.png``: input, teacher and student
    masks on synthetic samples (the memory's, or a generator batch)."""
    task = engine.task
    sets: dict[str, tuple[torch.Tensor, torch.Tensor | None]] = {
        "segmentation_synthetic.png": (synthetic[:SEGMENTATION_GRID_ROWS], None)
    }
    if engine.test_x is not None and engine.test_y is not None:
        sets["segmentation_samples.png"] = (engine.test_x[:SEGMENTATION_GRID_ROWS], engine.test_y)
    for name, (images, labels) in sets.items():
        masks = {} if labels is None else {"labels": labels[: len(images)]}
        masks["teacher"] = predict_logits(engine.teacher, images).argmax(1)
        masks["student"] = predict_logits(engine.delivered_student, images).argmax(1)
        save_segmentation_grid(out / name, images, masks, task.num_classes, task.mean, task.std)
