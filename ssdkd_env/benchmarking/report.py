"""The benchmark's result as a plain-text report with aligned tables."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

PHASE_LABELS = {
    "synthesis": "synthesis (inversion)",
    "memory": "memory work",
    "distillation": "distillation (student steps)",
    "measurement": "measurement (probe)",
    "round_loop_other": "round loop, other",
    "env_overhead": "environment overhead",
}


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    """Lines of a table: the first column left-aligned, the others right-aligned."""
    widths = [max(len(str(row[i])) for row in [headers, *rows]) for i in range(len(headers))]

    def line(cells: Sequence[str]) -> str:
        parts = [cells[0].ljust(widths[0])] + [c.rjust(w) for c, w in zip(cells[1:], widths[1:], strict=True)]
        return "   ".join(parts).rstrip()

    return [line(headers), "-" * len(line(headers)), *(line(row) for row in rows)]


def seconds(value: float) -> str:
    return f"{value:.1f}" if value >= 100 else f"{value:.3f}" if value >= 1 else f"{value:.4f}"


def duration(value: float) -> str:
    """``value`` seconds in the largest unit that keeps it above 1."""
    if value >= 7200:
        return f"{value / 3600:.1f} h"
    if value >= 120:
        return f"{value / 60:.1f} min"
    return f"{value:.1f} s"


def si(value: float, unit: str) -> str:
    """``value`` with an SI prefix, e.g. ``1.23 GFLOP``."""
    for prefix, scale in (("P", 1e15), ("T", 1e12), ("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(value) >= scale:
            return f"{value / scale:.3g} {prefix}{unit}"
    return f"{value:.3g} {unit}"


def percent(value: float) -> str:
    return f"{100 * value:.1f}%"


def format_report(result: dict[str, Any]) -> str:
    """The printed report of :func:`~ssdkd_env.benchmarking.run_benchmark`'s result."""
    system, schedule, measured = result["system"], result["schedule"], result["measured"]
    phases, flops, memory, projection = result["phases"], result["flops"], result["memory"], result["projection"]
    threads = system["threads"]
    lines = [
        f"SSD-KD speed benchmark '{result['config']}': task {result['task']}, "
        f"teacher {result['teacher']} -> student {result['student']}",
        f"WEIGHTS ARE RANDOM: {result['weights']}",
        f"torch {system['torch']} on {system['device']} ({system['device_name']}), "
        f"{threads} thread{'s' if threads != 1 else ''}, {system['date']}",
        f"schedule: {schedule['rounds']} rounds x {schedule['kd_steps']} KD steps of batch {schedule['batch_size']}; "
        f"{schedule['synth_budget']} new images per round ({schedule['g_steps']} generator steps); "
        f"buffer {schedule['buffer_size']:,}; probe {schedule['probe_size']}",
        f"measured: medians of {measured['rounds']} rounds after {measured['warmup_rounds']} warm-up, "
        f"{measured['kd_steps_per_round']} KD steps each ({measured['steady_state']})",
        "",
    ]
    rows = [
        [
            PHASE_LABELS[name],
            seconds(p["measured_s"]),
            percent(p["measured_share"]),
            seconds(p["projected_s"]),
            percent(p["projected_share"]),
        ]
        for name, p in phases.items()
    ]
    rows.append(["total (one environment step)", seconds(measured["round_s"]), "", seconds(projection["round_s"]), ""])
    headers = ["phase", "measured s/round", "share", f"at {schedule['kd_steps']} KD steps s/round", "share"]
    lines += table(headers, rows)
    throughput = result["throughput"]
    distill_rate = throughput["distillation_images_per_s"]
    cuda = memory["cuda_max_allocated_mb"]
    current = memory["current_rss_mb"]
    lines += [
        "",
        f"throughput:  inversion {throughput['inversion_images_per_s']:,.0f} img/s, distillation "
        + ("-" if distill_rate is None else f"{distill_rate:,.0f} img/s (KD samples)"),
        f"FLOPs:       {si(flops['per_round'], 'FLOP')} per round; "
        f"achieved {si(flops['achieved_flops_per_s'], 'FLOP/s')}"
        f" = {percent(flops['achieved_fraction_of_peak'])} of {si(flops['peak_flops_per_s'], 'FLOP/s')}"
        f" ({flops['peak_source']})",
        f"             synthesis {si(flops['synthesis_flops_per_s'], 'FLOP/s')}, "
        f"distillation {si(flops['distillation_flops_per_s'], 'FLOP/s')}",
        f"memory:      peak RSS {memory['peak_rss_mb']:,.0f} MiB"
        + ("" if current is None else f", current RSS {current:,.0f} MiB")
        + ("" if cuda is None else f", CUDA max allocated {cuda:,.0f} MiB"),
        f"projection:  {projection['rounds']} rounds x {seconds(projection['round_s'])} s = "
        f"{duration(projection['total_s'])}",
        f"             includes {projection['includes']}",
        f"             excludes {projection['excludes']}",
    ]
    if result["scaling"]:
        lines += [
            "",
            f"scaling: memory work per round of this schedule ({schedule['synth_budget']} inserted, "
            f"{schedule['kd_steps']} x sample {schedule['batch_size']} + update, stats) by buffer size",
        ]
        rows = [
            [
                str(row["classes"]),
                f"{row['capacity']:,}",
                seconds(row["memory_s"]),
                seconds(row["round_s"]),
                percent(row["memory_share"]),
            ]
            for row in result["scaling"]
        ]
        lines += table(["classes", "buffer", "memory s/round", "round s", "memory share"], rows)
    lines += ["", f"benchmark wall time {duration(result['wall_time_s'])}"]
    return "\n".join(lines)
