"""ssdkd_env: data-free knowledge distillation (SSD-KD and related methods) as a Gymnasium environment.

``import ssdkd_env`` registers the environments ``SSDKD-v0`` (any task, full runs) and
``SSDKD-Digits-Tiny-v0`` (a digits run that steps in a fraction of a second, for tests and examples).
"""

from gymnasium.envs.registration import register

__version__ = "0.1.0"

TINY_DIGITS: dict[str, object] = {
    "rounds": 8,
    "kd_steps": 5,
    "buffer_size": 128,
    "probe_size": 64,
    "probe_rounds": 4,
    "action.synth_budget": 32,
    "distiller.batch_size": 32,
    "synthesis.nz": 32,
    "synthesis.ngf": 16,
    "synthesis.warmup_rounds": 2,
}
"""Engine overrides of the tiny digits variant."""

register(id="SSDKD-v0", entry_point="ssdkd_env.env:make_env")
register(
    id="SSDKD-Digits-Tiny-v0",
    entry_point="ssdkd_env.env:make_env",
    kwargs={"task": "digits", "device": "cpu", **TINY_DIGITS},
)
