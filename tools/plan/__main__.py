"""`python -m tools.plan plan --stack prod` and `python -m tools.plan diff --stack prod --base REV`.

The offline plan is the project's main job: it runs the real program under the SDK's mock
engine, prints what `pulumi preview` would create, writes the rendered artifacts and checks
each with its real checker. No Pulumi CLI, plugin or credentials needed.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from components.burst.instance_types import INSTANCE_TYPES
from stacks.problems import ConfigError
from tools.plan import access, artifacts, checkers, cluster, crds, policy_gate, report
from tools.plan.access.report import render as access_lines
from tools.plan.access.report import write as access_file
from tools.plan.cluster.nodes import CLUSTER_CA
from tools.plan.cluster.pulls import PlatformRegistry
from tools.plan.cluster.report import render as cluster_report_lines
from tools.plan.cluster.report import write as cluster_report_file
from tools.plan.diff import allowances, diff_against
from tools.plan.mocks import DuplicateUrnError
from tools.plan.references import plan as plan_stack
from tools.plan.runner import ROOT
from tools.plan.stackfile import StackFileError, filled_message, read_stack_file


def _section(config: dict[str, str], key: str) -> dict[str, Any]:
    raw = config.get(f"akiba:{key}")
    value = json.loads(raw) if raw else {}
    return value if isinstance(value, dict) else {}


def _kubernetes_version(config: dict[str, str]) -> str:
    return str(_section(config, "cluster").get("kubernetesVersion", "1.36.0"))


def plan_command(stack: str, out_root: Path, check: bool, stack_dir: Path = ROOT) -> int:
    try:
        stack_file = read_stack_file(stack_dir, stack)
        if filled := filled_message(stack_file):
            print(filled)
        plan = plan_stack(stack_file, stack_dir)
    except (ConfigError, StackFileError, DuplicateUrnError) as err:
        print(err, file=sys.stderr)
        return 2
    if not plan.resources:
        print(f"stack {stack}: the program declared nothing", file=sys.stderr)
        return 1
    print(report.render(plan))
    art = artifacts.write(plan, out_root / stack)
    print(
        f"\nWrote {art.plan_json}, {len(art.user_data)} user-data, {len(art.netplan)} netplan, "
        f"{len(art.manifests)} manifest file(s) under {art.root}"
    )
    checked = check_artifacts(art, _kubernetes_version(stack_file.config)) if check else 0
    cluster_report = cluster.check(plan, cluster_settings(stack_file.config))
    print()
    print("\n".join(cluster_report_lines(cluster_report)))
    print(f"Wrote {cluster_report_file(cluster_report, art.root)}")
    access_report = access.check(plan, access.engineers_of(stack_file.config))
    print()
    print("\n".join(access_lines(access_report)))
    print(f"Wrote {access_file(access_report, art.root)}")
    lines, passed = policy_gate.report(policy_gate.check(plan))
    print("\n".join(lines))
    if not check:  # plan-diff: report, but let the diff go on
        return 0
    return 1 if checked or cluster_report.problems or access_report.problems or not passed else 0


def cluster_settings(config: dict[str, str]) -> cluster.Settings:
    """What the cluster check needs from the stack config besides the plan."""
    registry = str(_section(config, "registry").get("mirror", ""))
    protect = bool(_section(config, "cluster").get("protectStateful", False))
    return cluster.Settings(
        kubernetes_version=_kubernetes_version(config),
        platform_registries=(PlatformRegistry(host=registry, requires_auth=True, ca_files=frozenset({CLUSTER_CA})),)
        if registry
        else (),
        require_failover=protect,
        instance_types={name: (t.vcpus, t.memory_gib) for name, t in INSTANCE_TYPES.items()},
        root=ROOT,
    )


def check_artifacts(art: artifacts.Artifacts, kubernetes_version: str) -> int:
    from concurrent.futures import ThreadPoolExecutor

    allow_missing = os.environ.get("AKIBA_ALLOW_MISSING_CHECKERS") == "1" and os.environ.get("CI") != "true"
    jobs: list[tuple[str, Callable[[], list[checkers.Finding]]]] = [
        ("cloud-init schema", lambda: checkers.cloud_init(art.user_data)),
        ("netplan generate", lambda: checkers.netplan(art.netplan)),
        ("kubernetes-validate --strict", lambda: checkers.kubernetes(art.manifests, kubernetes_version)),
        ("CRD schemas", lambda: checkers.custom_resources(art.manifests, crds.default_dir())),
        ("libvirt domains (xsltproc + virt-xml-validate)", lambda: checkers.libvirt_domains(art.domains)),
    ]
    # All at once: most of them wait on their own processes (the cloud-init and netplan workers,
    # xsltproc), which keeps every core busy; results are reported in this order.
    with ThreadPoolExecutor(max_workers=len(jobs)) as pool:
        running = [(label, pool.submit(job)) for label, job in jobs]
        findings: list[checkers.Finding] = []
        for label, future in running:
            try:
                found = future.result()
            except checkers.MissingCheckerError as err:
                if allow_missing:
                    print(f"SKIPPED {label}: {err}")
                    continue
                print(f"error: {err}; set AKIBA_ALLOW_MISSING_CHECKERS=1 to skip it on a laptop", file=sys.stderr)
                return 1
            findings += found
            print(f"checked {label}: {'ok' if not found else f'{len(found)} invalid'}")
    for finding in findings:
        print(finding, file=sys.stderr)
    return 1 if findings else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.plan", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("plan", help="offline plan of one stack")
    p.add_argument("--stack", required=True)
    p.add_argument("--out", type=Path, default=ROOT / "build" / "plan")
    p.add_argument("--no-check", action="store_true", help="report only: the checkers and the policy gate do not fail")
    p.add_argument("--stack-dir", type=Path, default=ROOT, help="where Pulumi.<stack>.yaml lives")
    d = sub.add_parser("diff", help="what `pulumi up` would do to each resource, against a git revision; gated")
    d.add_argument("--stack", required=True)
    d.add_argument("--base", required=True, help="git revision to compare with, e.g. origin/main")
    d.add_argument(
        "--allow-replace",
        action="append",
        default=[],
        metavar="ID",
        help="allow replacing/deleting exactly these stateful or critical resources (ids as printed, "
        "space-separated; also AKIBA_ALLOW_REPLACE)",
    )
    d.add_argument("--out", type=Path, default=ROOT / "build" / "plan-diff", help="where <stack>.json goes")
    args = parser.parse_args(argv)
    if args.command == "plan":
        return plan_command(args.stack, args.out, not args.no_check, args.stack_dir)
    return diff_against(args.stack, args.base, allowances(args.allow_replace), args.out)


if __name__ == "__main__":
    sys.exit(main())
