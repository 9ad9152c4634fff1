"""Methods: round loops (what one round does) and presets (which components and settings a method uses).

Importing this package registers the built-in round loops and method presets.
"""

from ssdkd_env.methods import adversarial, fresh, replay  # noqa: F401  (registration)
from ssdkd_env.methods.base import ROUND_LOOPS, RoundContext, RoundLoop, RoundOutcome
from ssdkd_env.methods.presets import METHODS, MethodPreset, register_method

__all__ = ["METHODS", "ROUND_LOOPS", "MethodPreset", "RoundContext", "RoundLoop", "RoundOutcome", "register_method"]
