"""Writes what the offline plan rendered under build/plan/<stack>/, secrets scrubbed.

plan.json (urn, type, parent, dependencies, protect, inputs with secrets masked), each node's
cloud-init user-data, each node's netplan file, and each Kubernetes manifest as YAML.
"""

from __future__ import annotations

import base64
import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from components import yamltext
from tools.plan.mocks import MASK
from tools.plan.runner import Plan

CLOUD_CONFIG = "#cloud-config\n"
DYNAMIC = "pulumi-python:dynamic:Resource"
NETPLAN_PATH = "/etc/netplan/60-akiba-bond.yaml"
# Inputs the Kubernetes provider adds that are not part of the manifest.
_K8S_INTERNAL = {"__fieldManager", "__defaults", "__inputs", "__initialApiVersion"}


@dataclass
class Artifacts:
    root: Path
    plan_json: Path
    user_data: list[Path] = field(default_factory=list)
    netplan: list[Path] = field(default_factory=list)
    manifests: list[Path] = field(default_factory=list)
    # libvirt domains: (provider XML, XSLT, final XML path the checker writes)
    domains: list[tuple[Path, Path, Path]] = field(default_factory=list)


def scrub(value: Any, secrets: set[str]) -> Any:
    """Replace every known secret inside strings of a structure with the mask."""
    if isinstance(value, str):
        for secret in secrets:
            if secret in value:
                value = value.replace(secret, MASK)
        return value
    if isinstance(value, dict):
        return {k: scrub(v, secrets) for k, v in value.items()}
    if isinstance(value, list):
        return [scrub(v, secrets) for v in value]
    return value


def plan_document(plan: Plan) -> dict[str, Any]:
    return {
        "stack": plan.stack,
        "resources": [
            {
                "urn": r.urn,
                "type": r.type,
                "name": r.name,
                "parent": r.parent,
                "custom": r.custom,
                "provider": r.provider,
                "dependencies": r.dependencies,
                "protect": r.protect,
                "retainOnDelete": r.retain_on_delete,
                "secretInputs": r.secret_digests,
                "inputs": r.inputs,
            }
            for r in plan.resources
        ],
        "outputs": plan.outputs,
        "secretOutputs": sorted(plan.secret_outputs),
    }


REMOTE_COMMAND = "command:remote:Command"


def user_data_of(typ: str, raw_inputs: dict[str, Any]) -> str | None:
    """The cloud-init text a resource carries: MAAS deployments (the install), each node's
    configuration (its converge command's stdin, components/machines/node_converge.py) and EC2
    launch templates."""
    if typ == "maas:index/instance:Instance":
        return str(raw_inputs["deployParams"]["userData"])
    if typ == REMOTE_COMMAND and str(raw_inputs.get("stdin", "")).startswith(CLOUD_CONFIG):
        return str(raw_inputs["stdin"])
    if typ == "aws:ec2/launchTemplate:LaunchTemplate" and raw_inputs.get("userData"):
        return base64.b64decode(raw_inputs["userData"]).decode()
    return None


def manifest_of(raw_inputs: dict[str, Any]) -> dict[str, Any]:
    """The object as `kubectl apply` would take it, in the usual key order."""
    manifest = {k: v for k, v in raw_inputs.items() if k not in _K8S_INTERNAL}
    head = [k for k in ("apiVersion", "kind", "metadata") if k in manifest]
    return {k: manifest[k] for k in head} | {k: v for k, v in manifest.items() if k not in head}


def is_manifest(typ: str) -> bool:
    return typ.startswith("kubernetes:") and not typ.startswith(("kubernetes:helm", "kubernetes:yaml"))


def write(plan: Plan, out: Path) -> Artifacts:
    if out.exists():
        shutil.rmtree(out)
    for sub in ("user-data", "netplan", "manifests", "libvirt"):
        (out / sub).mkdir(parents=True)
    secrets = plan.secret_values
    art = Artifacts(root=out, plan_json=out / "plan.json")
    art.plan_json.write_text(json.dumps(scrub(plan_document(plan), secrets), indent=2, sort_keys=False) + "\n")
    for r in plan.resources:
        text = user_data_of(r.type, r.raw_inputs)
        if text is not None:
            doc = scrub(yaml.load(text.removeprefix(CLOUD_CONFIG), Loader=yaml.CSafeLoader), secrets)
            path = out / "user-data" / f"{r.name}.yaml"
            path.write_text(CLOUD_CONFIG + yamltext.dump(doc))
            art.user_data.append(path)
            for f in doc.get("write_files", []):
                if f["path"] == NETPLAN_PATH:
                    np = out / "netplan" / f"{r.name}.yaml"
                    np.write_text(f["content"])
                    art.netplan.append(np)
        elif r.type == DYNAMIC and r.raw_inputs.get("kind") == "libvirt-domain":
            base = out / "libvirt" / r.raw_inputs["name"]
            provider, xslt = base.with_suffix(".provider.xml"), base.with_suffix(".xslt")
            provider.write_text(r.raw_inputs["providerXml"])
            xslt.write_text(r.raw_inputs["xslt"])
            art.domains.append((provider, xslt, base.with_suffix(".xml")))
        elif is_manifest(r.type):
            manifest = scrub(manifest_of(r.raw_inputs), secrets)
            name = f"{manifest.get('kind', 'Object')}-{r.name}.yaml".lower()
            path = out / "manifests" / name
            path.write_text(yamltext.dump(manifest))
            art.manifests.append(path)
    return art
