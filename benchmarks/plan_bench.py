"""`make bench`: offline plan time and peak memory of the prod program against two SDK floors.

What is measured
    The prod program (`stacks.program`, run by `tools.plan.runner.run` under the SDK's mock
    engine) on a synthetic prod stack of N nodes, for N in 5, 50 and 500. Each N is measured
    next to two floors, trivial programs run through the same runner, mocks and recording
    monitor, that register the same number R of resources as the prod program recorded:

    bare floor
        R bare `pulumi.CustomResource("akiba:bench:Bare", f"r{i}", {})`, with empty inputs.
        What any program declaring R resources pays the SDK, whatever it declares.
    replay floor
        R `pulumi.CustomResource("akiba:bench:Replay", ...)` with the same names (made unique
        with the index) and the same input values the prod program registered, as plain
        literals: no Outputs, no components, no applies, no parent or depends_on. What the SDK
        charges for serialising that volume of inputs and resolving one Output per input
        property, costs the bare floor never pays and no program declaring these resources
        could avoid.

    So akiba / bare floor is everything above a bare registration, while akiba / replay floor
    is the program's own overhead: config validation, component resources, Outputs and
    applies, rendering user-data. The target is at most 1.3x at every size, with both growing
    linearly in the number of nodes; the report states the verdict against each floor.

How
    Every measurement is a fresh child process (`python -m benchmarks.plan_bench --child MODE N`),
    so the peak RSS (`ru_maxrss`) belongs to that one run. All modes do the same setup before
    the clock starts: import the SDKs, the program and its components and the runner, plan a
    5-node prod once (so the modules the SDKs load lazily are loaded), and build the N-node
    stack file. The replay mode also loads its inputs (a JSON file the first
    prod run of that size wrote, after its clock stopped) before the clock starts. Then the
    child times one `runner.run`. Peak memory is reported as the child's total peak RSS (the
    ratios use this) and as the growth over the RSS right after setup. Per size the parent runs
    prod first (it writes the replay file), then bare floor, replay floor and prod in turn, at
    least 3 runs each, and reports medians.

Checked vs unchecked
    The same stack through what `make plan` does after evaluating it: write the artifacts
    (tools/plan/artifacts.py) and run every real checker on them (check_artifacts in
    tools/plan/__main__.py: cloud-init schema, netplan generate, kubernetes-validate, the CRD
    schemas, libvirt's domain schema). One child per run times the unchecked plan (`runner.run`)
    and then, in the same process, writing and checking; checked = plan + write + check, and
    its ratio to the plan is taken per run, so both sides share the process and the machine's
    load at that moment. The target is at most 2x at every size. Every checker must run (a
    missing one fails the child instead of making the number small).

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
import os
import pkgutil
import pstats
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tools.plan.mocks import Recorded
    from tools.plan.stackfile import StackFile

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_SIZES = (5, 50, 500)
DEFAULT_RUNS = 3
TARGET = 1.3
CHECKED_TARGET = 2.0
# Where the checked target applies: below it the checkers' fixed start-up (cloud-init's import, the
# CRD index, Kubernetes' schemas: about a second of CPU) outweighs a plan of a second or two.
CHECKED_TARGET_NODES = 500
RESULT_TAG = "plan-bench-result: "

# What every mode imports before the clock starts: the SDKs, the program, its components, the runner.
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
    # A disk's by-id name carries its own serial: one host's only.
    disks = node.get("disks", {})
    if "boot" in disks:
        disks["boot"] = _own_disk(disks["boot"], index)
    disks["ceph"] = [_own_disk(d, index) for d in disks.get("ceph", [])]
    return node


def _own_disk(path: str, index: int) -> str:
    """The node's own serial in the name, before a USB disk's LUN suffix (-0:0)."""
    return re.sub(r"(-\d+:\d+)?$", lambda m: f"_N{index + 1:04d}{m.group(0)}", path, count=1)


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
    # The API's virtual IP moves onto the synthetic LAN with the nodes.
    cluster = json.loads(config["akiba:cluster"])
    if cluster.get("apiVip"):
        config["akiba:cluster"] = json.dumps(cluster | {"apiVip": str(GATEWAY + 9)})
    # The PCs are what grows ("juju add-unit -n48 akiba"); the platform VM is one of a kind.
    pcs = [n for n in json.loads(config["akiba:nodes"]) if n["power"]["type"] != "virsh"]
    config["akiba:nodes"] = json.dumps(synthetic_nodes(pcs, nodes))
    return StackFile(prod.stack, prod.path, config, list(prod.secret_keys))


# --- the child: one measured run -----------------------------------------------------------------


def setup() -> None:
    """Identical in every mode: everything imported before the clock starts."""
    for name in SETUP_MODULES:
        importlib.import_module(name)
    # The SDKs load most modules lazily on first use; importing them by name breaks their lazy
    # attributes (a module shadows the class of the same name). So both modes warm up the same
    # way instead: one small plan of the real program, before the clock.
    from tools.plan import runner

    runner.run(synthetic_stack(5))  # the smallest valid prod: 3 copies need 3 hosts
    components = importlib.import_module("components")
    for info in pkgutil.walk_packages(components.__path__, "components."):
        importlib.import_module(info.name)


def floor_program(count: int) -> Callable[[], None]:
    """The SDK floor: `count` bare custom resources, no config read, nothing computed."""
    import pulumi

    def program() -> None:
        for i in range(count):
            pulumi.CustomResource("akiba:bench:Bare", f"r{i}", {})

    return program


def replay_program(items: Sequence[dict[str, Any]]) -> Callable[[], None]:
    """The replay floor: the prod program's registrations as plain literals, one custom resource each."""
    import pulumi

    def program() -> None:
        for i, item in enumerate(items):
            pulumi.CustomResource("akiba:bench:Replay", item["name"] + f"-{i}", item["inputs"])

    return program


def write_replay(resources: Sequence[Recorded], path: Path) -> None:
    """What the replay floor registers: each recorded resource's name and plain inputs."""
    items = [{"name": r.name, "inputs": r.raw_inputs} for r in resources]
    path.write_text(json.dumps(items, default=str))


def read_replay(path: Path) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = json.loads(path.read_text())
    return items


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def run_child(mode: str, nodes: int, resources: int, replay: Path | None) -> dict[str, Any]:
    """Set up, then time one plan of the prod program ("akiba"), the bare floor ("floor") or the
    replay floor ("replay", which reads `replay`). With `replay`, "akiba" writes that file after
    its clock stops."""
    setup()
    from tools.plan import runner

    stack_file = synthetic_stack(nodes)
    program: Callable[[], None]
    if mode == "akiba":
        program = runner.akiba_program
    elif mode == "floor":
        program = floor_program(resources)
    elif mode == "replay":
        if replay is None:
            raise SystemExit("the replay mode needs --replay FILE")
        program = replay_program(read_replay(replay))
    else:
        raise SystemExit(f"unknown child mode {mode!r}")
    rss_setup = _peak_rss_mib()
    modules_before = set(sys.modules)
    start = time.perf_counter()
    plan = runner.run(stack_file, program=program)
    seconds = time.perf_counter() - start
    late_imports = sorted(set(sys.modules) - modules_before)
    if mode == "akiba" and replay is not None:
        write_replay(plan.resources, replay)
    return {
        "mode": mode,
        "nodes": nodes,
        "resources": len(plan.resources),
        "seconds": seconds,
        "peak_mib": _peak_rss_mib(),
        "setup_mib": rss_setup,
        "late_imports": late_imports,
    }


def run_checked_child(nodes: int) -> dict[str, Any]:
    """Set up, then time one plan (unchecked), then writing its artifacts and checking them."""
    setup()
    from tools.plan import artifacts, runner
    from tools.plan.__main__ import _kubernetes_version, check_artifacts

    stack_file = synthetic_stack(nodes)
    start = time.perf_counter()
    plan = runner.run(stack_file)
    plan_s = time.perf_counter() - start
    with tempfile.TemporaryDirectory(prefix="plan-bench-checked-") as out:
        start = time.perf_counter()
        art = artifacts.write(plan, Path(out) / stack_file.stack)
        write_s = time.perf_counter() - start
        start = time.perf_counter()
        failed = check_artifacts(art, _kubernetes_version(stack_file.config))
        check_s = time.perf_counter() - start
    if failed:
        raise SystemExit(f"the checkers failed at {nodes} nodes (output above): no figure for a check that did not run")
    files = {
        "user_data": len(art.user_data),
        "netplan": len(art.netplan),
        "manifests": len(art.manifests),
        "domains": len(art.domains),
    }
    return {
        "mode": "checked",
        "nodes": nodes,
        "resources": len(plan.resources),
        "plan_s": plan_s,
        "write_s": write_s,
        "check_s": check_s,
        "files": files,
    }


def profile_child(nodes: int, top: int) -> None:
    """Where the prod program's time goes at `nodes` nodes (cumulative, top functions)."""
    setup()
    from tools.plan import runner

    stack_file = synthetic_stack(nodes)
    profiler = cProfile.Profile()
    profiler.runcall(runner.run, stack_file)
    pstats.Stats(profiler, stream=sys.stdout).sort_stats("cumulative").print_stats(top)


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
    replay_s: float
    akiba_mib: float
    floor_mib: float
    replay_mib: float
    akiba_delta_mib: float
    floor_delta_mib: float
    replay_delta_mib: float

    @property
    def time_ratio(self) -> float:
        """akiba / bare floor."""
        return self.akiba_s / self.floor_s

    @property
    def mem_ratio(self) -> float:
        """akiba / bare floor."""
        return self.akiba_mib / self.floor_mib

    @property
    def replay_time_ratio(self) -> float:
        """akiba / replay floor."""
        return self.akiba_s / self.replay_s

    @property
    def replay_mem_ratio(self) -> float:
        """akiba / replay floor."""
        return self.akiba_mib / self.replay_mib

    @property
    def ms_per_node(self) -> float:
        return 1000 * self.akiba_s / self.nodes

    @property
    def floor_ms_per_resource(self) -> float:
        return 1000 * self.floor_s / self.resources

    @property
    def replay_ms_per_resource(self) -> float:
        return 1000 * self.replay_s / self.resources

    def over(self) -> tuple[bool, bool]:
        """Whether a ratio (time or memory) misses the target: against the bare floor, the replay floor."""
        return (
            max(self.time_ratio, self.mem_ratio) > TARGET,
            max(self.replay_time_ratio, self.replay_mem_ratio) > TARGET,
        )


def _child_command(args: Sequence[str]) -> list[str]:
    return [sys.executable, "-m", "benchmarks.plan_bench", "--child", *args]


def _child(args: Sequence[str]) -> Any:
    """Run one child process; return the JSON result it printed."""
    env = {k: v for k, v in os.environ.items() if k != "AKIBA_ALLOW_MISSING_CHECKERS"}  # every checker runs
    done = subprocess.run(_child_command(args), cwd=ROOT, capture_output=True, text=True, check=False, env=env)
    lines = [line for line in done.stdout.splitlines() if line.startswith(RESULT_TAG)]
    if done.returncode != 0 or not lines:
        raise SystemExit(f"child {' '.join(args)} failed ({done.returncode}):\n{done.stdout}{done.stderr}")
    return json.loads(lines[-1][len(RESULT_TAG) :])


def _measure(mode: str, nodes: int, resources: int, replay: Path | None = None) -> dict[str, Any]:
    args = [mode, str(nodes), "--resources", str(resources)]
    result: dict[str, Any] = _child([*args, "--replay", str(replay)] if replay else args)
    if result["late_imports"]:
        print(f"  note: {mode} at {nodes} nodes imported {len(result['late_imports'])} modules while timed")
    return result


def _sample(result: dict[str, Any]) -> Sample:
    return Sample(result["seconds"], result["peak_mib"], result["setup_mib"])


def measure_size(nodes: int, runs: int) -> Row:
    """Prod first (its first run writes the replay file), then bare floor, replay floor and prod in
    turn, `runs` of each; both floors register as many resources as prod recorded."""
    akiba: list[Sample] = []
    floor: list[Sample] = []
    replay: list[Sample] = []
    counts: set[int] = set()
    with tempfile.TemporaryDirectory(prefix="plan-bench-") as tmp:
        replay_file = Path(tmp) / f"replay-{nodes}.json"
        for run in range(runs):
            result = _measure("akiba", nodes, 0, replay_file if run == 0 else None)
            counts.add(result["resources"])
            akiba.append(_sample(result))
            resources = result["resources"]
            floored = _measure("floor", nodes, resources)
            assert floored["resources"] == resources, "the bare floor must record as many resources"
            floor.append(_sample(floored))
            replayed = _measure("replay", nodes, resources, replay_file)
            assert replayed["resources"] == resources, "the replay floor must record as many resources"
            replay.append(_sample(replayed))
    assert len(counts) == 1, f"the prod program recorded different resource counts: {sorted(counts)}"

    def med(samples: list[Sample], key: Callable[[Sample], float]) -> float:
        return statistics.median(key(s) for s in samples)

    return Row(
        nodes=nodes,
        resources=counts.pop(),
        akiba_s=med(akiba, lambda s: s.seconds),
        floor_s=med(floor, lambda s: s.seconds),
        replay_s=med(replay, lambda s: s.seconds),
        akiba_mib=med(akiba, lambda s: s.peak_mib),
        floor_mib=med(floor, lambda s: s.peak_mib),
        replay_mib=med(replay, lambda s: s.peak_mib),
        akiba_delta_mib=med(akiba, lambda s: s.delta_mib),
        floor_delta_mib=med(floor, lambda s: s.delta_mib),
        replay_delta_mib=med(replay, lambda s: s.delta_mib),
    )


@dataclass(frozen=True)
class CheckedRow:
    """Medians of one size: the unchecked plan, then writing and checking in the same process."""

    nodes: int
    runs: int
    resources: int
    files: dict[str, int]
    plan_s: float
    write_s: float
    check_s: float
    checked_s: float
    ratio: float  # median of each run's checked / plan

    @property
    def over(self) -> bool:
        return self.nodes >= CHECKED_TARGET_NODES and self.ratio > CHECKED_TARGET

    @property
    def verdict(self) -> str:
        if self.nodes < CHECKED_TARGET_NODES:
            return "info"
        return "OVER" if self.over else "ok"


def measure_checked(nodes: int, runs: int) -> CheckedRow:
    results = [_child(["checked", str(nodes)]) for _ in range(runs)]

    def med(key: Callable[[dict[str, Any]], float]) -> float:
        return statistics.median(key(r) for r in results)

    def checked(r: dict[str, Any]) -> float:
        return float(r["plan_s"] + r["write_s"] + r["check_s"])

    return CheckedRow(
        nodes=nodes,
        runs=runs,
        resources=results[0]["resources"],
        files=results[0]["files"],
        plan_s=med(lambda r: r["plan_s"]),
        write_s=med(lambda r: r["write_s"]),
        check_s=med(lambda r: r["check_s"]),
        checked_s=med(checked),
        ratio=med(lambda r: checked(r) / r["plan_s"]),
    )


def checked_report(rows: Sequence[CheckedRow]) -> str:
    head = (
        f"{'nodes':>5} {'runs':>4} {'res':>5} {'files':>6} | {'plan s':>8} | {'write s':>8} {'check s':>8} | "
        f"{'checked s':>9} | {'checked/plan':<13}"
    )
    lines = [
        f"checked vs unchecked plan (medians, fresh process per run; target: checked <= {CHECKED_TARGET}x the plan "
        f"at {CHECKED_TARGET_NODES}+ nodes)",
        "plan = the unchecked plan (runner.run); write = the artifacts; check = every real checker;",
        "checked = plan + write + check, in the same process as its plan; checked/plan = median of the per-run ratios",
        "files = user-data + netplan + manifests + libvirt domains checked",
        f"info = below {CHECKED_TARGET_NODES} nodes: the checkers' fixed start-up (~1 s of CPU) outweighs the plan",
        "",
        head,
        "-" * len(head),
    ]
    for r in rows:
        lines.append(
            f"{r.nodes:>5} {r.runs:>4} {r.resources:>5} {sum(r.files.values()):>6} | {r.plan_s:>8.3f} | "
            f"{r.write_s:>8.3f} "
            f"{r.check_s:>8.3f} | {r.checked_s:>9.3f} | {r.ratio:>5.2f}x {r.verdict:<4}"
        )
    over = [str(r.nodes) for r in rows if r.over]
    judged = [str(r.nodes) for r in rows if r.nodes >= CHECKED_TARGET_NODES]
    lines.append("")
    if over:
        lines.append(f"TARGET MISSED: checked is above {CHECKED_TARGET}x the plan at {', '.join(over)} nodes")
    elif judged:
        lines.append(f"target met: checked is within {CHECKED_TARGET}x the plan at {', '.join(judged)} nodes")
    else:
        lines.append(f"no verdict: the target applies at {CHECKED_TARGET_NODES}+ nodes (--sizes)")
    return "\n".join(lines)


def _verdict(ratio: float) -> str:
    return "ok" if ratio <= TARGET else "OVER"


def _ratio(ratio: float) -> str:
    return f"{ratio:>5.2f}x {_verdict(ratio):<4}"


def format_table(rows: Sequence[Row]) -> str:
    """Two blocks per size: time, then peak memory; each with its ratio to the bare and the replay floor."""
    time_head = (
        f"{'nodes':>5} {'res':>5} | {'akiba s':>8} {'bare s':>8} {'replay s':>8} | "
        f"{'/bare':<10} {'/replay':<10} | {'ms/node':>8} {'bare ms/res':>11} {'replay ms/res':>13}"
    )
    mem_head = (
        f"{'nodes':>5} {'res':>5} | {'akiba MiB':>9} {'bare MiB':>9} {'replay MiB':>10} | "
        f"{'/bare':<10} {'/replay':<10} | {'akiba +MiB':>10} {'bare +MiB':>10} {'replay +MiB':>11}"
    )
    lines = ["time", time_head, "-" * len(time_head)]
    for r in rows:
        lines.append(
            f"{r.nodes:>5} {r.resources:>5} | {r.akiba_s:>8.3f} {r.floor_s:>8.3f} {r.replay_s:>8.3f} | "
            f"{_ratio(r.time_ratio)} {_ratio(r.replay_time_ratio)} | "
            f"{r.ms_per_node:>8.2f} {r.floor_ms_per_resource:>11.3f} {r.replay_ms_per_resource:>13.3f}"
        )
    lines += ["", "peak memory", mem_head, "-" * len(mem_head)]
    for r in rows:
        lines.append(
            f"{r.nodes:>5} {r.resources:>5} | {r.akiba_mib:>9.1f} {r.floor_mib:>9.1f} {r.replay_mib:>10.1f} | "
            f"{_ratio(r.mem_ratio)} {_ratio(r.replay_mem_ratio)} | "
            f"{r.akiba_delta_mib:>10.1f} {r.floor_delta_mib:>10.1f} {r.replay_delta_mib:>11.1f}"
        )
    return "\n".join(lines)


def growth(rows: Sequence[Row]) -> list[str]:
    """Between consecutive sizes: how time grew relative to the resource count (1.0 is linear)."""
    out = []
    for a, b in itertools.pairwise(rows):
        res = b.resources / a.resources
        akiba, floor, replay = b.akiba_s / a.akiba_s, b.floor_s / a.floor_s, b.replay_s / a.replay_s
        mem_a = b.akiba_delta_mib / a.akiba_delta_mib if a.akiba_delta_mib > 0 else float("nan")
        out.append(
            f"{a.nodes}->{b.nodes} nodes: resources x{res:.2f}; time akiba x{akiba:.2f} ({akiba / res:.2f} of linear), "
            f"bare x{floor:.2f} ({floor / res:.2f}), replay x{replay:.2f} ({replay / res:.2f}); "
            f"akiba +MiB x{mem_a:.2f} ({mem_a / res:.2f} of linear)"
        )
    return out


def _worst(ratios: Sequence[float]) -> str:
    worst = max(ratios)
    return f"{_verdict(worst)} {worst:.2f}x"


def verdicts(rows: Sequence[Row]) -> list[str]:
    """Per size, the verdict against each floor (the worse of time and memory), then overall."""
    lines = [
        f"{r.nodes} nodes: vs bare floor: {_worst([r.time_ratio, r.mem_ratio])} "
        f"(time {r.time_ratio:.2f}x, mem {r.mem_ratio:.2f}x); "
        f"vs replay floor: {_worst([r.replay_time_ratio, r.replay_mem_ratio])} "
        f"(time {r.replay_time_ratio:.2f}x, mem {r.replay_mem_ratio:.2f}x)"
        for r in rows
    ]
    for index, floor in enumerate(("bare", "replay")):
        over = [str(r.nodes) for r in rows if r.over()[index]]
        if over:
            lines.append(f"TARGET MISSED vs the {floor} floor: a ratio is above {TARGET}x at {', '.join(over)} nodes")
        else:
            lines.append(f"target met vs the {floor} floor: every ratio is within {TARGET}x")
    return lines


def report(rows: Sequence[Row], runs: int) -> str:
    return "\n".join(
        [
            f"offline plan of the prod program vs two SDK floors (median of {runs} runs each, fresh process per run)",
            f"python {sys.version.split()[0]} on {sys.platform}; target: akiba <= {TARGET}x each floor",
            "bare = as many empty-input custom resources; replay = the same names and inputs as plain literals",
            "/bare = akiba / bare floor (everything above a bare registration);",
            "/replay = akiba / replay floor (own overhead: components, Outputs/applies, user-data, validation)",
            "MiB = peak RSS of the run's process; +MiB = peak RSS growth over the RSS after setup",
            "",
            format_table(rows),
            "",
            "growth (time and +MiB relative to resources; 1.00 = linear, < 1 = fixed costs being amortised):",
            *(f"  {line}" for line in growth(rows) or ["(needs at least two sizes)"]),
            "",
            "verdict (worse of time and memory):",
            *(f"  {line}" for line in verdicts(rows)),
        ]
    )


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
    parser.add_argument("--replay", type=Path, help=argparse.SUPPRESS)
    parser.add_argument(
        "--checked-runs", type=int, help="runs per size of the checked plan (default: --runs; one at 500+ nodes)"
    )
    only = parser.add_mutually_exclusive_group()
    only.add_argument("--floors-only", action="store_true", help="only the program against the SDK floors")
    only.add_argument("--checked-only", action="store_true", help="only the checked vs unchecked plan")
    args = parser.parse_args(argv)
    if args.runs < 1 or any(n < 1 for n in args.sizes) or (args.checked_runs is not None and args.checked_runs < 1):
        parser.error("--runs, --checked-runs and --sizes must be positive")
    return args


def _checked_runs(args: argparse.Namespace, nodes: int) -> int:
    """A checked run at 500 nodes takes most of a minute on a loaded 2-core machine: fewer there."""
    if args.checked_runs is not None:
        return int(args.checked_runs)
    return int(args.runs) if nodes < 500 else min(int(args.runs), 2)


def _child_main(args: argparse.Namespace) -> None:
    mode, nodes = args.child[0], int(args.child[1])
    if mode == "profile":
        profile_child(nodes, args.top)
        return
    result = run_checked_child(nodes) if mode == "checked" else run_child(mode, nodes, args.resources, args.replay)
    print(RESULT_TAG + json.dumps(result), flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse(argv)
    if args.child:
        _child_main(args)
        return 0
    sizes = sorted(set(args.sizes))
    if args.profile:
        cmd = _child_command(["profile", str(args.profile), "--top", str(args.top)])
        return subprocess.run(cmd, cwd=ROOT, check=False).returncode
    rows = []
    checked: list[CheckedRow] = []
    for nodes in sizes:
        if not args.checked_only:
            print(f"measuring {nodes} nodes against the floors ({args.runs} runs each)...", flush=True)
            rows.append(measure_size(nodes, args.runs))
        if not args.floors_only:
            runs = _checked_runs(args, nodes)
            print(f"measuring the checked plan at {nodes} nodes ({runs} runs)...", flush=True)
            checked.append(measure_checked(nodes, runs))
    if rows:
        print()
        print(report(rows, args.runs))
    if checked:
        print()
        print(checked_report(checked))
    if args.json:
        payload: dict[str, Any] = {"target": TARGET, "runs": args.runs}
        if rows:
            payload["floors"] = {
                "floor": "bare: as many CustomResources with empty inputs",
                "replay": "replay: the prod program's names and inputs as plain-literal CustomResources",
            }
            payload["rows"] = _json_rows(rows)
        if checked:
            payload["checked_target"] = CHECKED_TARGET
            payload["checked"] = [asdict(r) | {"over": r.over, "verdict": r.verdict} for r in checked]
        args.json.write_text(json.dumps(payload, indent=2) + "\n")
    return 0  # a report: missing the target is printed, not a failure


def _json_rows(rows: Sequence[Row]) -> list[dict[str, Any]]:
    return [
        asdict(r)
        | {
            "time_ratio": r.time_ratio,
            "mem_ratio": r.mem_ratio,
            "replay_time_ratio": r.replay_time_ratio,
            "replay_mem_ratio": r.replay_mem_ratio,
            "ms_per_node": r.ms_per_node,
            "over_bare_floor": r.over()[0],
            "over_replay_floor": r.over()[1],
        }
        for r in rows
    ]


if __name__ == "__main__":
    sys.exit(main())
