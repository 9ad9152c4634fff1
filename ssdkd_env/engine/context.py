"""``RunContext``, re-exported from its leaf module ``ssdkd_env.context``."""

from ssdkd_env.context import RunContext

__all__ = ["RunContext"]
