"""Fast's growing pool seeded with the condensed samples of csmi (memory ``condensed-pool``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch

from ssdkd_env.common.images import predict_logits
from ssdkd_env.condensation import load_condensed
from ssdkd_env.replay.base import MEMORIES
from ssdkd_env.replay.buffer import GrowingPool, _buffer_args

if TYPE_CHECKING:
    from ssdkd_env.context import RunContext


class CondensedPool(GrowingPool):
    """A growing pool whose first slots hold the condensed samples ("Condensed-sample guided model
    inversion", 2024: the student trains on synthetic plus condensed samples).

    They are inserted when the run is built, labelled by the teacher's outputs, with priority 1;
    the pool never evicts, so they stay for the whole run. Its capacity is the run's synthetic
    samples plus the condensed ones.
    """

    condensed: int  # how many of the first slots hold condensed samples

    @classmethod
    def build(cls, options: Any, ctx: RunContext) -> CondensedPool:
        condensed = load_condensed(ctx.condensed_path, ctx.require_task("the condensed pool"))
        n = condensed.images.shape[0]
        pool = cls(cls.capacity_for(options, ctx) + n, **_buffer_args(ctx))
        images = condensed.images.to(ctx.device)
        with torch.no_grad():
            logits = predict_logits(ctx.teacher, images, precision=ctx.precision)
        pool.insert(images, logits, torch.ones(n, device=ctx.device))
        pool.condensed = n
        return pool


MEMORIES.add("condensed-pool", CondensedPool)
