"""Diagnostic for docs/notebook/2026-12-03.md ("CamVid"), not a method: it reads the real training frames.

Scores each distilled student on the real test split as it is, then again after its BatchNorm
running statistics are re-estimated on the real training frames (a cumulative average over one
pass; the weights are untouched). If the second score is much higher, the student's
normalisation, fitted to synthetic images, is what fails on real ones.

    python docs/diagnostics/bn_recalibration.py TASK DATA_ROOT RUN_DIR [RUN_DIR ...]
"""

from __future__ import annotations

import json
import sys

import torch

from ssdkd_env.checkpoint import load_model
from ssdkd_env.common.images import normalize_uint8
from ssdkd_env.tasks import get_task
from ssdkd_env.tasks.kinds import TASK_KINDS


def main(task_name: str, data_root: str, runs: list[str]) -> None:
    task = get_task(task_name)
    kind = TASK_KINDS.get(task.kind)
    test = task.load(data_root, train=False)
    test_x = normalize_uint8(test.images, task.mean, task.std)
    train_x = normalize_uint8(task.load(data_root, train=True).images, task.mean, task.std)
    scores = {}
    for run in runs:
        model, _ = load_model(f"{run}/student.pt", task=task_name)
        before = kind.score(model.eval(), test_x, test.labels)
        for module in model.modules():
            if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
                module.reset_running_stats()
                module.momentum = None  # a cumulative average over the pass
        model.train()
        with torch.no_grad():
            for i in range(0, len(train_x), 16):
                model(train_x[i : i + 16])
        after = kind.score(model.eval(), test_x, test.labels)
        scores[run] = {"as_distilled": before, "bn_from_real_train": after}
    print(json.dumps(scores, indent=1))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3:])
