"""Speed benchmarks of the distillation round: named configurations, the harness, its report."""

from ssdkd_env.benchmarking.configs import BENCH_CONFIGS, BenchConfig, get_bench_config, register_bench_config
from ssdkd_env.benchmarking.harness import run_benchmark
from ssdkd_env.benchmarking.report import format_report

__all__ = [
    "BENCH_CONFIGS",
    "BenchConfig",
    "format_report",
    "get_bench_config",
    "register_bench_config",
    "run_benchmark",
]
