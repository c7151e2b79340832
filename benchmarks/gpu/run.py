"""`python -m benchmarks.gpu.run`: time the training workloads on one device and append one
JSON line per workload (speed, power, energy, cost) to --out.

    python -m benchmarks.gpu.run --workload image-cnn char-cnn --device auto --out results.jsonl
"""

from __future__ import annotations

import argparse
import datetime as dt
import platform
import socket
import sys
from dataclasses import dataclass
from pathlib import Path

import torch

from benchmarks.gpu import devices, nvml, prices, results
from benchmarks.gpu.measure import Measurement, measure
from benchmarks.gpu.names import SIZES, WORKLOADS, Workload
from benchmarks.gpu.workloads import build


class UsageError(Exception):
    """The run cannot start as asked; the message says what to change."""


@dataclass(frozen=True)
class Target:
    device: torch.device
    gpu_model: str
    gpu_name: str
    cuda_uuid: str | None


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks.gpu.run", description=__doc__.split("\n\n")[0])
    p.add_argument("--workload", nargs="+", choices=WORKLOADS, default=list(WORKLOADS), help="one or both")
    p.add_argument("--device", choices=("auto", "cuda", "cpu"), default="auto", help="auto: CUDA when present")
    p.add_argument("--size", choices=SIZES, default="standard", help="tiny: seconds on a laptop CPU (tests)")
    p.add_argument("--batch-size", type=_positive, default=128)
    p.add_argument("--warmup", type=_non_negative, default=10)
    p.add_argument("--iterations", type=_positive, default=200)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--prices", type=Path, default=prices.DEFAULT_PRICES, help="price table (YAML or JSON)")
    p.add_argument("--out", type=Path, required=True, help="JSON lines file; results are appended")
    p.add_argument(
        "--gpu-model",
        help="the node's akiba.io/gpu-model label; default: derived from the device name",
    )
    p.add_argument("--power-interval-ms", type=_positive, default=50)
    return p.parse_args(argv)


def _positive(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text}")
    return value


def _non_negative(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected zero or more, got {text}")
    return value


def host_cpu() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def select(choice: str, gpu_model: str | None) -> Target:
    """The device to run on and the model slug its results are filed under."""
    if choice == "cpu" or (choice == "auto" and not torch.cuda.is_available()):
        if gpu_model not in (None, devices.CPU_SLUG):
            raise UsageError(f"--gpu-model {gpu_model} given, but the run is on the CPU")
        return Target(torch.device("cpu"), devices.CPU_SLUG, host_cpu(), None)
    if not torch.cuda.is_available():
        raise UsageError(f"--device cuda, but torch {torch.__version__} sees no CUDA device")
    device = torch.device("cuda", 0)
    name = torch.cuda.get_device_name(device)
    capability = torch.cuda.get_device_capability(device)
    if not devices.arch_supported(capability, torch.cuda.get_arch_list()):
        raise UsageError(
            f"torch {torch.__version__} has no kernels for {name} (sm_{capability[0]}{capability[1]}); it has"
            f" {' '.join(torch.cuda.get_arch_list())}. Maxwell and Pascal cards need a CUDA 12.6 build of torch"
            " (see benchmarks/gpu/requirements.txt)."
        )
    detected = devices.slug_for(name)
    if gpu_model and devices.is_known(name) and gpu_model != detected:
        # A wrong node label would file one card's figures under another: refuse.
        raise UsageError(f"--gpu-model {gpu_model}, but this device is {name} ({detected})")
    uuid = str(getattr(torch.cuda.get_device_properties(device), "uuid", "")) or None
    return Target(device, gpu_model or detected, name, uuid)


def _cost_fields(table: prices.PriceTable, model: str, mean_w: float | None, it_per_s: float) -> dict[str, object]:
    try:
        cost = prices.hourly_cost(table, model, mean_w)
    except prices.NotPricedError as exc:
        return {
            "price_kind": None,
            "cost_source": f"unavailable: {exc}",
            "cost_per_hour_yen": None,
            "cost_per_hour_dollar": None,
            "iterations_per_yen": None,
            "iterations_per_dollar": None,
        }
    return {
        "price_kind": table.models[model].kind,
        "cost_source": cost.basis,
        "cost_per_hour_yen": cost.yen,
        "cost_per_hour_dollar": cost.dollar,
        "iterations_per_yen": prices.iterations_per_unit(it_per_s, cost.yen),
        "iterations_per_dollar": prices.iterations_per_unit(it_per_s, cost.dollar),
    }


def to_result(
    args: argparse.Namespace,
    target: Target,
    workload: Workload,
    m: Measurement,
    driver: str | None,
    table: prices.PriceTable,
) -> results.BenchmarkResult:
    it_per_s = args.iterations / m.seconds
    p = m.power
    return results.BenchmarkResult.model_validate(
        {
            "timestamp": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "hostname": socket.gethostname(),
            "gpu_model": target.gpu_model,
            "gpu_name": target.gpu_name,
            "device": target.device.type,
            "host_cpu": host_cpu(),
            "cpu_threads": torch.get_num_threads(),
            "driver_version": driver,
            "cuda_version": torch.version.cuda if target.device.type == "cuda" else None,
            "torch_version": torch.__version__,
            "workload": workload,
            "size": args.size,
            "batch_size": args.batch_size,
            "warmup": args.warmup,
            "iterations": args.iterations,
            "seed": args.seed,
            "seconds": m.seconds,
            "iterations_per_s": it_per_s,
            "samples_per_s": it_per_s * args.batch_size,
            "final_loss": m.final_loss,
            "power_source": m.power_source,
            "power_samples": p.samples if p else None,
            "mean_w": p.mean_w if p else None,
            "peak_w": p.peak_w if p else None,
            "energy_j": p.energy_j if p else None,
            "energy_counter_j": m.energy_counter_j,
            "iterations_per_joule": args.iterations / p.energy_j if p and p.energy_j > 0 else None,
            **_cost_fields(table, target.gpu_model, p.mean_w if p else None, it_per_s),
        }
    )


def summary_line(r: results.BenchmarkResult) -> str:
    power = (
        f"{r.mean_w:.1f} W mean, {r.peak_w:.1f} W peak, {r.energy_j:.1f} J, {r.iterations_per_joule:.4g} it/J"
        if r.mean_w is not None and r.peak_w is not None and r.energy_j is not None and r.iterations_per_joule
        else f"power {r.power_source}"
    )
    cost = f"{r.iterations_per_yen:.4g} it/yen" if r.iterations_per_yen is not None else f"cost {r.cost_source}"
    return (
        f"{r.workload} ({r.size}, batch {r.batch_size}) on {r.gpu_model} [{r.gpu_name}]: "
        f"{r.iterations} it in {r.seconds:.3f} s = {r.iterations_per_s:.2f} it/s, {r.samples_per_s:.1f} samples/s, "
        f"loss {r.final_loss:.4f}; {power}; {cost}"
    )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        table = prices.load(args.prices)  # a bad table fails before minutes of benchmarking
        target = select(args.device, args.gpu_model)
    except (prices.PriceTableError, UsageError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2

    meter: nvml.NvmlDevice | None = None
    no_meter = "CPU run: NVML measures NVIDIA GPUs only"
    if target.device.type == "cuda":
        # cuDNN picks the fastest convolution algorithms during the warm-up, as training would.
        torch.backends.cudnn.benchmark = True
        try:
            meter = nvml.open_device(target.cuda_uuid)
        except nvml.NvmlUnavailableError as exc:
            no_meter = str(exc)

    def synchronize() -> None:
        if target.device.type == "cuda":
            torch.cuda.synchronize(target.device)

    try:
        for workload in args.workload:
            step = build(workload, args.size, args.batch_size, target.device, args.seed)
            m = measure(step, args.warmup, args.iterations, synchronize, meter, no_meter, args.power_interval_ms / 1000)
            result = to_result(args, target, workload, m, meter.driver_version if meter else None, table)
            results.append(args.out, result)
            print(summary_line(result), flush=True)
            del step
            if target.device.type == "cuda":
                torch.cuda.empty_cache()  # the next workload starts from the same free memory
    finally:
        if meter is not None:
            meter.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
