"""`make bench`: offline plan time and peak memory of the prod program against the SDK floor.

What is measured
    The prod program (`stacks.program`, run by `tools.plan.runner.run` under the SDK's mock
    engine) on a synthetic prod stack of N nodes, for N in 5, 50 and 500. Each N is measured
    next to the *SDK floor*: a trivial program that registers the same number of bare
    `pulumi.CustomResource`s as the prod program recorded, through the same runner, mocks and
    recording monitor. The floor is what any program declaring that many resources pays the
    SDK; the ratio prod / floor is the program's own overhead (config validation, components,
    rendering user-data), and the target is at most 1.3x at every size, with both growing
    linearly in the number of nodes.

How
    Every measurement is a fresh child process (`python -m benchmarks.plan_bench --child MODE N`),
    so the peak RSS (`ru_maxrss`) belongs to that one run. Both modes do the same setup before
    the clock starts: import the SDKs, the program and its components, the runner, the SDK
    submodules the program loads lazily (found by one discovery run before measuring), and
    build the N-node stack file. Then the child times one `runner.run`. Peak memory is reported
    as the child's total peak RSS (the ratio uses this) and as the growth over the RSS right
    after setup. The parent alternates prod and floor children, at least 3 runs each, and
    reports medians.

The stack file
    Prod's config with `akiba:nodes` replaced by N nodes cycled from prod's own nodes: the first
    is the controller, the rest workers, with unique hostnames (akiba0001...), MACs, LAN IPs and
    AMT power addresses on a /16 office LAN, so the program's validation accepts it as it is.
"""

from __future__ import annotations

import argparse
import cProfile
import importlib
import ipaddress
import itertools
import json
import pkgutil
import pstats
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tools.plan.stackfile import StackFile

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_SIZES = (5, 50, 500)
DEFAULT_RUNS = 3
TARGET = 1.3
RESULT_TAG = "plan-bench-result: "

# What both modes import before the clock starts: the SDKs, the program, its components, the runner.
SETUP_MODULES = (
    "pulumi",
    "pulumi_kubernetes",
    "pulumi_maas",
    "pulumi_tls",
    "pulumi_random",
    "stacks.program",
    "tools.plan.runner",
)

# The synthetic office LAN: room for thousands of nodes, clear of prod's pod, service and VPC networks.
OFFICE_LAN = ipaddress.IPv4Network("172.16.0.0/16")
GATEWAY = OFFICE_LAN.network_address + 1
FIRST_NODE_IP = OFFICE_LAN.network_address + 256 + 10  # 172.16.1.10, 172.16.1.11, ...
FIRST_POWER_IP = OFFICE_LAN.network_address + 32768 + 10  # 172.16.128.10, ...: AMT addresses


# --- the synthetic stack ------------------------------------------------------------------------


def synthetic_nodes(templates: Sequence[dict[str, Any]], count: int) -> list[dict[str, Any]]:
    """`count` nodes cycled from prod's nodes, every identity (hostname, MAC, IP) unique."""
    return [_node(templates[i % len(templates)], i) for i in range(count)]


def _node(template: dict[str, Any], index: int) -> dict[str, Any]:
    node: dict[str, Any] = json.loads(json.dumps(template))  # a deep copy
    node["hostname"] = f"akiba{index + 1:04d}"
    node["role"] = "controller" if index == 0 else "worker"
    node["ip"] = str(FIRST_NODE_IP + index)
    for slot, nic in enumerate(node["nics"]):
        nic["mac"] = _mac(index, slot)
    if node["power"].get("type") == "amt":
        node["power"]["address"] = str(FIRST_POWER_IP + index)
    return node


def _mac(index: int, slot: int) -> str:
    # 02:... is a locally administered unicast prefix: never a real vendor's.
    octets = (0x02, 0xAB, slot, (index >> 16) & 0xFF, (index >> 8) & 0xFF, index & 0xFF)
    return ":".join(f"{o:02x}" for o in octets)


def synthetic_stack(nodes: int) -> StackFile:
    """Prod's stack file with `nodes` nodes on the synthetic office LAN."""
    from tools.plan.stackfile import StackFile, read_stack_file

    prod = read_stack_file(ROOT, "prod")
    config = dict(prod.config)
    network = json.loads(config["akiba:network"])
    network |= {"officeLan": str(OFFICE_LAN), "gateway": str(GATEWAY), "dnsServers": [str(GATEWAY)]}
    config["akiba:network"] = json.dumps(network)
    config["akiba:nodes"] = json.dumps(synthetic_nodes(json.loads(config["akiba:nodes"]), nodes))
    return StackFile(prod.stack, prod.path, config, list(prod.secret_keys))


# --- the child: one measured run -----------------------------------------------------------------


def setup(preload: Sequence[str]) -> None:
    """Identical in both modes: everything imported before the clock starts."""
    for name in (*SETUP_MODULES, *preload):
        importlib.import_module(name)
    components = importlib.import_module("components")
    for info in pkgutil.iter_modules(components.__path__):
        importlib.import_module(f"components.{info.name}")


def floor_program(count: int) -> Callable[[], None]:
    """The SDK floor: `count` bare custom resources, no config read, nothing computed."""
    import pulumi

    def program() -> None:
        for i in range(count):
            pulumi.CustomResource("akiba:bench:Bare", f"r{i}", {})

    return program


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def run_child(mode: str, nodes: int, resources: int, preload: Sequence[str]) -> dict[str, Any]:
    """Set up, then time one plan of the prod program ("akiba") or of the floor ("floor")."""
    setup(preload)
    from tools.plan import runner

    stack_file = synthetic_stack(nodes)
    program = runner.akiba_program if mode == "akiba" else floor_program(resources)
    rss_setup = _peak_rss_mib()
    modules_before = set(sys.modules)
    start = time.perf_counter()
    plan = runner.run(stack_file, program=program)
    seconds = time.perf_counter() - start
    return {
        "mode": mode,
        "nodes": nodes,
        "resources": len(plan.resources),
        "seconds": seconds,
        "peak_mib": _peak_rss_mib(),
        "setup_mib": rss_setup,
        "late_imports": sorted(set(sys.modules) - modules_before),
    }


def profile_child(nodes: int, preload: Sequence[str], top: int) -> None:
    """Where the prod program's time goes at `nodes` nodes (cumulative, top functions)."""
    setup(preload)
    from tools.plan import runner

    stack_file = synthetic_stack(nodes)
    profiler = cProfile.Profile()
    profiler.runcall(runner.run, stack_file)
    pstats.Stats(profiler, stream=sys.stdout).sort_stats("cumulative").print_stats(top)


def discover_lazy_imports(nodes: int) -> list[str]:
    """The modules the prod program imports during its first run (e.g. SDK submodules that
    `pulumi_kubernetes` loads on first attribute access): both modes preload them."""
    setup(())
    from tools.plan import runner

    stack_file = synthetic_stack(nodes)
    before = set(sys.modules)
    runner.run(stack_file)
    return sorted(set(sys.modules) - before)


# --- the parent: alternate children, take medians, print the report ------------------------------


@dataclass(frozen=True)
class Sample:
    seconds: float
    peak_mib: float
    setup_mib: float

    @property
    def delta_mib(self) -> float:
        return self.peak_mib - self.setup_mib


@dataclass(frozen=True)
class Row:
    """Medians of one size."""

    nodes: int
    resources: int
    akiba_s: float
    floor_s: float
    akiba_mib: float
    floor_mib: float
    akiba_delta_mib: float
    floor_delta_mib: float

    @property
    def time_ratio(self) -> float:
        return self.akiba_s / self.floor_s

    @property
    def mem_ratio(self) -> float:
        return self.akiba_mib / self.floor_mib

    @property
    def ms_per_node(self) -> float:
        return 1000 * self.akiba_s / self.nodes

    @property
    def floor_ms_per_resource(self) -> float:
        return 1000 * self.floor_s / self.resources


def _child_command(args: Sequence[str]) -> list[str]:
    return [sys.executable, "-m", "benchmarks.plan_bench", "--child", *args]


def _child(args: Sequence[str]) -> Any:
    """Run one child process; return the JSON result it printed."""
    done = subprocess.run(_child_command(args), cwd=ROOT, capture_output=True, text=True, check=False)
    lines = [line for line in done.stdout.splitlines() if line.startswith(RESULT_TAG)]
    if done.returncode != 0 or not lines:
        raise SystemExit(f"child {' '.join(args)} failed ({done.returncode}):\n{done.stdout}{done.stderr}")
    return json.loads(lines[-1][len(RESULT_TAG) :])


def _measure(mode: str, nodes: int, resources: int, preload: str) -> dict[str, Any]:
    result: dict[str, Any] = _child([mode, str(nodes), "--resources", str(resources), "--preload", preload])
    if result["late_imports"]:
        print(f"  note: {mode} at {nodes} nodes imported {len(result['late_imports'])} modules while timed")
    return result


def _sample(result: dict[str, Any]) -> Sample:
    return Sample(result["seconds"], result["peak_mib"], result["setup_mib"])


def measure_size(nodes: int, runs: int, preload: str) -> Row:
    """Alternate prod and floor children `runs` times; the floor registers what prod recorded."""
    akiba: list[Sample] = []
    floor: list[Sample] = []
    counts: set[int] = set()
    for _ in range(runs):
        result = _measure("akiba", nodes, 0, preload)
        counts.add(result["resources"])
        akiba.append(_sample(result))
        floored = _measure("floor", nodes, result["resources"], preload)
        assert floored["resources"] == result["resources"], "the floor must record as many resources"
        floor.append(_sample(floored))
    assert len(counts) == 1, f"the prod program recorded different resource counts: {sorted(counts)}"

    def med(samples: list[Sample], key: Callable[[Sample], float]) -> float:
        return statistics.median(key(s) for s in samples)

    return Row(
        nodes=nodes,
        resources=counts.pop(),
        akiba_s=med(akiba, lambda s: s.seconds),
        floor_s=med(floor, lambda s: s.seconds),
        akiba_mib=med(akiba, lambda s: s.peak_mib),
        floor_mib=med(floor, lambda s: s.peak_mib),
        akiba_delta_mib=med(akiba, lambda s: s.delta_mib),
        floor_delta_mib=med(floor, lambda s: s.delta_mib),
    )


def _verdict(ratio: float) -> str:
    return "ok" if ratio <= TARGET else "OVER"


def format_table(rows: Sequence[Row]) -> str:
    head = (
        f"{'nodes':>5} {'res':>5} | {'akiba s':>8} {'floor s':>8} {'ratio':>6} {'':>4} | "
        f"{'akiba MiB':>9} {'floor MiB':>9} {'ratio':>6} {'':>4} | "
        f"{'akiba +MiB':>10} {'floor +MiB':>10} | {'ms/node':>8} {'floor ms/res':>12}"
    )
    lines = [head, "-" * len(head)]
    for r in rows:
        lines.append(
            f"{r.nodes:>5} {r.resources:>5} | {r.akiba_s:>8.3f} {r.floor_s:>8.3f} {r.time_ratio:>5.2f}x "
            f"{_verdict(r.time_ratio):>4} | {r.akiba_mib:>9.1f} {r.floor_mib:>9.1f} {r.mem_ratio:>5.2f}x "
            f"{_verdict(r.mem_ratio):>4} | {r.akiba_delta_mib:>10.1f} {r.floor_delta_mib:>10.1f} | "
            f"{r.ms_per_node:>8.2f} {r.floor_ms_per_resource:>12.3f}"
        )
    return "\n".join(lines)


def growth(rows: Sequence[Row]) -> list[str]:
    """Between consecutive sizes: how time grew relative to the resource count (1.0 is linear)."""
    out = []
    for a, b in itertools.pairwise(rows):
        res = b.resources / a.resources
        akiba, floor = b.akiba_s / a.akiba_s, b.floor_s / a.floor_s
        mem_a = b.akiba_delta_mib / a.akiba_delta_mib if a.akiba_delta_mib > 0 else float("nan")
        out.append(
            f"{a.nodes}->{b.nodes} nodes: resources x{res:.2f}; time akiba x{akiba:.2f} ({akiba / res:.2f} of linear), "
            f"floor x{floor:.2f} ({floor / res:.2f} of linear); akiba +MiB x{mem_a:.2f} ({mem_a / res:.2f} of linear)"
        )
    return out


def report(rows: Sequence[Row], runs: int) -> str:
    over = [r for r in rows if r.time_ratio > TARGET or r.mem_ratio > TARGET]
    lines = [
        f"offline plan of the prod program vs the SDK floor (median of {runs} runs each, fresh process per run)",
        f"python {sys.version.split()[0]} on {sys.platform}; ratio = akiba / floor; target <= {TARGET}x",
        "MiB = peak RSS of the run's process; +MiB = peak RSS growth over the RSS after setup",
        "",
        format_table(rows),
        "",
        "growth (time and +MiB relative to resources; 1.00 = linear, < 1 = fixed costs being amortised):",
        *(f"  {line}" for line in growth(rows)),
        "",
    ]
    if over:
        sizes = ", ".join(str(r.nodes) for r in over)
        lines.append(f"TARGET MISSED: a ratio is above {TARGET}x at {sizes} nodes")
    else:
        lines.append(f"target met: every ratio is within {TARGET}x of the floor")
    return "\n".join(lines)


# --- entry points --------------------------------------------------------------------------------


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.plan_bench", description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=list(DEFAULT_SIZES), help="node counts")
    parser.add_argument("--runs", type=int, default=DEFAULT_RUNS, help="runs per mode and size (median)")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--profile", type=int, metavar="NODES", help="profile one prod run at NODES nodes instead")
    parser.add_argument("--top", type=int, default=30, help="functions shown by --profile")
    parser.add_argument("--child", nargs=2, metavar=("MODE", "NODES"), help=argparse.SUPPRESS)
    parser.add_argument("--resources", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--preload", default="", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.runs < 1 or any(n < 1 for n in args.sizes):
        parser.error("--runs and --sizes must be positive")
    return args


def _child_main(args: argparse.Namespace) -> None:
    mode, nodes = args.child[0], int(args.child[1])
    preload = [m for m in args.preload.split(",") if m]
    if mode == "profile":
        profile_child(nodes, preload, args.top)
        return
    if mode == "discover":
        result: Any = discover_lazy_imports(nodes)
    elif mode in ("akiba", "floor"):
        result = run_child(mode, nodes, args.resources, preload)
    else:
        raise SystemExit(f"unknown child mode {mode!r}")
    print(RESULT_TAG + json.dumps(result), flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse(argv)
    if args.child:
        _child_main(args)
        return 0
    sizes = sorted(set(args.sizes))
    preload = ",".join(_child(["discover", str(sizes[0])]))
    if args.profile:
        cmd = _child_command(["profile", str(args.profile), "--preload", preload, "--top", str(args.top)])
        return subprocess.run(cmd, cwd=ROOT, check=False).returncode
    rows = []
    for nodes in sizes:
        print(f"measuring {nodes} nodes ({args.runs} runs each)...", flush=True)
        rows.append(measure_size(nodes, args.runs, preload))
    print()
    print(report(rows, args.runs))
    if args.json:
        payload = {"target": TARGET, "runs": args.runs, "preloaded": preload.split(","), "rows": _json_rows(rows)}
        args.json.write_text(json.dumps(payload, indent=2) + "\n")
    return 0  # a report: missing the target is printed, not a failure


def _json_rows(rows: Sequence[Row]) -> list[dict[str, Any]]:
    return [
        asdict(r) | {"time_ratio": r.time_ratio, "mem_ratio": r.mem_ratio, "ms_per_node": r.ms_per_node} for r in rows
    ]


if __name__ == "__main__":
    sys.exit(main())
