"""The configuration keys of earlier releases, mapped to where the settings live now.

Until 2026-12-07 every component's settings sat in a shared section of the run's configuration,
whether the run used the component or not. Now each component's options sit beside its name
(``synthesizer_options``, ``memory_options``, ``round_loop_options``) and the probe's inversion has
its own section (``probe_inversion``). A key of the old layout still works, with a one-line notice
naming its new form; like the old layout, it changes nothing in a run that does not use its component:

- ``synthesis.X`` is ``meta-generator.X``: the meta-generator's option (and that of csmi's synthesizer,
  which extends it) and the probe's inversion;
- ``adversarial.student_steps`` and ``adversarial.replay_ratio`` are the adversarial round loop's
  (``adversarial.X``, unchanged); the other ``adversarial.X`` are ``adversarial-generator.X``;
- ``pixel.X`` is ``pixel-inversion.X``; ``vae.X`` is the generative memory's ``vae.X``;
- ``condensed.path`` is ``condensed_path``; the other ``condensed.X`` are ``condensed-guided.X``;
- ``real.data_root`` is ``real-images.data_root``.
"""

from __future__ import annotations

import sys

LEGACY_SECTIONS: tuple[str, ...] = ("synthesis", "adversarial", "vae", "pixel", "condensed", "real")

_COMPONENT_OF_SECTION = {
    "synthesis": "meta-generator",
    "adversarial": "adversarial-generator",
    "vae": "vae",
    "pixel": "pixel-inversion",
    "condensed": "condensed-guided",
    "real": "real-images",
}
_ROUND_LOOP_KEYS = ("adversarial.student_steps", "adversarial.replay_ratio")
_RENAMED = {"condensed.path": "condensed_path"}

_noticed: set[str] = set()


def legacy_target(path: str) -> tuple[str, str | None]:
    """Where the old key ``path`` goes: ``(component, None)`` for a component's option (the key's last
    part), or ``("", new_path)`` for a key that is a plain configuration field now."""
    if path in _RENAMED:
        return "", _RENAMED[path]
    if path in _ROUND_LOOP_KEYS:
        return "adversarial", None
    return _COMPONENT_OF_SECTION[path.split(".", 1)[0]], None


def notice_legacy(what: str, new_form: str | None = None) -> None:
    """Print, once per process for each ``what``, that it is of the old layout (and its new form)."""
    if what in _noticed:
        return
    _noticed.add(what)
    now = f"; it now reads {new_form}" if new_form else ""
    print(f"notice: {what} is of the configuration layout before 2026-12-07{now}", file=sys.stderr)
