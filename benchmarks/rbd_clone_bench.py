"""The article's headline: a personal copy of a large disk in seconds, not half a day.

`python -m benchmarks.rbd_clone_bench` starts its own single-node Ceph 16.2 (tests/real_ceph.py,
in a temporary directory removed at the end), creates a 10 GiB image and writes data into it in
steps (1 GiB, then 4 GiB in all, by default). At each step, in the same run and against the same
image, it times

    clone       `components.machines.rbd_ops.clone_or_flatten`: the path the RBD component takes, i.e.
                the parent's clone depth, snapshot create, protect, clone (a new snapshot each
                time, so nothing is reused); median of 5;
    full copy   `rbd cp` of the same image as the same cephx user (reads every allocated
                object, writes a new image); median of 3, each copy removed untimed.

The clone should stay flat while the copy grows with the data; target: clone median <= 0.5 s at
every step. Also reported: each Ceph daemon's peak RSS (VmHWM) and the peak of their summed RSS,
sampled every 0.2 s. Disk: the OSD's block file is sparse; at most the data plus one copy of it
is allocated at any time, and everything is deleted at the end.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path

from components.machines.rbd_ops import RbdClient, clone_or_flatten, spec
from tests.real_ceph import Ceph, daemon_pids, missing_tools, start_ceph

GiB = 1 << 30
POOL = "bench"
GOLDEN = "golden"
IMAGE_SIZE = 10 * GiB
TARGET_S = 0.5


@dataclass
class Step:
    written_gib: int
    used_bytes: int
    write_s: float
    clone_s: list[float]
    copy_s: list[float]

    @property
    def clone_median(self) -> float:
        return statistics.median(self.clone_s)

    @property
    def copy_median(self) -> float:
        return statistics.median(self.copy_s)


@dataclass
class Memory:
    """Peak resident memory of the daemons, KiB."""

    hwm_kib: dict[str, int] = field(default_factory=dict)
    peak_sum_kib: int = 0


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def proc_status_kib(pid: int, key: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{key}:"):
            return int(line.split()[1])
    return 0


class MemorySampler:
    """Samples the daemons' summed VmRSS in a thread; VmHWM gives each one's own peak at the end."""

    def __init__(self, pids: dict[str, int], interval: float = 0.2) -> None:
        self.pids, self.interval = pids, interval
        self.peak_sum = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            total = sum(proc_status_kib(pid, "VmRSS") for pid in self.pids.values())
            self.peak_sum = max(self.peak_sum, total)

    def __enter__(self) -> MemorySampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def result(self) -> Memory:
        return Memory({name: proc_status_kib(pid, "VmHWM") for name, pid in self.pids.items()}, self.peak_sum)


def write_data(client: RbdClient, total_gib: int) -> float:
    """Sequential 4 MiB writes from offset 0 up to total_gib (rewrites what an earlier step wrote)."""
    io = ("--io-type", "write", "--io-size", "4M", "--io-threads", "16", "--io-pattern", "seq")
    return timed(partial(client.run, "bench", *io, "--io-total", f"{total_gib}G", spec(POOL, GOLDEN)))


def used_bytes(client: RbdClient, image: str) -> int:
    raw = json.loads(client.run("du", "--format", "json", spec(POOL, image)))
    return sum(int(i["used_size"]) for i in raw["images"] if "snapshot" not in i)


def time_clones(client: RbdClient, gib: int, runs: int) -> list[float]:
    times = []
    for i in range(runs):
        snap, clone = f"s{gib}g-{i}", f"clone-{gib}g-{i}"
        times.append(timed(partial(clone_or_flatten, client, POOL, GOLDEN, snap, POOL, clone)))
        info = client.info(POOL, clone)
        assert info is not None and info.parent is not None and info.parent.snap == snap, info
    return times


def time_copies(client: RbdClient, gib: int, runs: int) -> tuple[list[float], int]:
    times, used = [], 0
    for i in range(runs):
        copy = f"copy-{gib}g-{i}"
        times.append(timed(partial(client.run, "cp", "--no-progress", spec(POOL, GOLDEN), spec(POOL, copy))))
        used = used_bytes(client, copy)
        client.delete(POOL, copy)  # untimed; keeps at most one copy on disk
    return times, used


def drop_clones(client: RbdClient, gib: int, runs: int) -> None:
    """Remove a step's clones and snapshots, so the next step's writes do not copy-on-write."""
    for i in range(runs):
        client.delete(POOL, f"clone-{gib}g-{i}")
        client.remove_snapshot(POOL, GOLDEN, f"s{gib}g-{i}")


def measure(client: RbdClient, steps: Sequence[int], clones: int, copies: int) -> list[Step]:
    client.create(POOL, GOLDEN, IMAGE_SIZE)
    rows = []
    for gib in steps:
        print(f"writing {gib} GiB into the {IMAGE_SIZE // GiB} GiB image...", flush=True)
        write_s = write_data(client, gib)
        print(f"  {clones} clones, {copies} full copies...", flush=True)
        clone_s = time_clones(client, gib, clones)
        copy_s, used = time_copies(client, gib, copies)
        rows.append(Step(gib, used, write_s, clone_s, copy_s))
        drop_clones(client, gib, clones)
    return rows


def report(rows: Sequence[Step], memory: Memory, start_s: float, clones: int, copies: int) -> str:
    lines = [
        f"Ceph 16.2 single node (1 mon, 1 mgr, 1 BlueStore OSD on a sparse file), ready {start_s:.1f} s after start",
        f"image {IMAGE_SIZE // GiB} GiB; clone = depth check + snapshot + protect + clone via "
        f"components.machines.rbd_ops (median of {clones}); full copy = rbd cp (median of {copies})",
        "",
        f"{'data written':>12}  {'copy used':>9}  {'clone median':>12}  {'clone min-max':>13}  "
        f"{'copy median':>11}  {'copy min-max':>13}  {'speedup':>7}",
    ]
    for r in rows:
        lines.append(
            f"{r.written_gib:>8} GiB  {r.used_bytes / GiB:>5.2f} GiB  {r.clone_median:>10.3f} s  "
            f"{min(r.clone_s):>5.3f}-{max(r.clone_s):.3f} s  {r.copy_median:>9.2f} s  "
            f"{min(r.copy_s):>5.2f}-{max(r.copy_s):.2f} s  {r.copy_median / r.clone_median:>6.0f}x"
        )
    met = all(r.clone_median <= TARGET_S for r in rows)
    lines += ["", f"target: clone median <= {TARGET_S} s at every size: {'met' if met else 'NOT met'}", ""]
    lines.append(
        "Ceph daemons' peak RSS (VmHWM): " + ", ".join(f"{n} {k / 1024:.0f} MiB" for n, k in memory.hwm_kib.items())
    )
    lines.append(f"peak of their summed RSS (sampled every 0.2 s): {memory.peak_sum_kib / 1024:.0f} MiB")
    return "\n".join(lines)


def run_on_cluster(ceph: Ceph, args: argparse.Namespace) -> tuple[list[Step], Memory]:
    ceph.create_pool(POOL)
    key, _ = ceph.create_client("bench", {"mon": "profile rbd", "osd": f"profile rbd pool={POOL}"})
    client = RbdClient(ceph.mon_host, "bench", key)
    with MemorySampler(daemon_pids(ceph)) as sampler:
        rows = measure(client, args.steps, args.clones, args.copies)
    return rows, sampler.result()


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.rbd_clone_bench", description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, nargs="+", default=[1, 4], help="GiB written in all at each step")
    parser.add_argument("--clones", type=int, default=5, help="timed clones per step")
    parser.add_argument("--copies", type=int, default=3, help="timed full copies per step")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)
    if sorted(args.steps) != args.steps or args.steps[-1] * GiB > IMAGE_SIZE:
        parser.error(f"--steps must grow and stay within {IMAGE_SIZE // GiB} GiB")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse(argv)
    if missing := missing_tools():
        print(f"Ceph is not installed (missing {', '.join(missing)})", file=sys.stderr)
        return 2
    root = Path(tempfile.mkdtemp(prefix="akiba-rbd-bench-"))
    try:
        started = time.monotonic()
        ceph, stop = start_ceph(root, timeout=120)
        start_s = time.monotonic() - started
        try:
            rows, memory = run_on_cluster(ceph, args)
        finally:
            stop()
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print()
    print(report(rows, memory, start_s, args.clones, args.copies))
    if args.json:
        payload = {"start_s": start_s, "steps": [asdict(r) for r in rows], "memory": asdict(memory)}
        args.json.write_text(json.dumps(payload, indent=2) + "\n")
    return 0  # a report: missing the target is printed, not a failure


if __name__ == "__main__":
    sys.exit(main())
