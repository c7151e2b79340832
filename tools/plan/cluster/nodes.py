"""The nodes as the cluster will know them, read from what the plan gives each machine.

Every node's identity comes from its own user-data, the way the kubelet registers it: the kubeadm
`nodeRegistration` (name, taints, the kubelet's `--node-labels`), containerd's
`certs.d/*/hosts.toml` and the `/etc/hosts` lines it appends. The kubelet's configuration
(reserved CPU and memory, eviction threshold, pod limit) is the cluster's: the one beside the
InitConfiguration, which `kubeadm init` stores and every `kubeadm join` reads back. Capacity
comes from where the plan pins the hardware: the MAAS allocation constraints (`min_cpu_count`,
`min_memory`) of a PC or VM, and the burst group's first instance type (the one the
cluster-autoscaler models). The burst group is a node *template*: no node exists until a
pending pod makes the autoscaler add one.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

import yaml

from components.cluster.bootstrap import CERTS_D, IMDS_NODE_IP, KUBEADM_CONFIG, PKI_DIR
from tools.plan.artifacts import CLOUD_CONFIG, REMOTE_COMMAND, user_data_of
from tools.plan.cluster import quantity
from tools.plan.cluster.model import CONTROL_PLANE, OS_ARCH, HostEntry, Node, NodeKind, RegistryHosts, Taint
from tools.plan.mocks import Recorded
from tools.plan.runner import Plan

CLUSTER_CA = f"{PKI_DIR}/ca.crt"  # kubeadm writes it on init and on join
OWN_ADDRESS = "(own address)"
ASG = "aws:autoscaling/group:Group"
LAUNCH_TEMPLATE = "aws:ec2/launchTemplate:LaunchTemplate"
CA_TEMPLATE = "k8s.io/cluster-autoscaler/node-template/"
AWS_MTU = 9001  # current-generation EC2 interfaces (jumbo frames inside the VPC)
# The kubelet's defaults (KubeletConfiguration v1beta1) when the config leaves them out.
DEFAULT_EVICTION_MEMORY = "100Mi"
DEFAULT_MAX_PODS = 110


class NodeError(Exception):
    """Something about a node the cluster check cannot read or must refuse."""


def cloud_config(text: str) -> dict[str, Any]:
    doc = yaml.safe_load(text.removeprefix(CLOUD_CONFIG))
    return doc if isinstance(doc, dict) else {}


def written_files(doc: Mapping[str, Any]) -> dict[str, list[str]]:
    """path -> contents written there (several when lines are appended)."""
    files: dict[str, list[str]] = {}
    for f in doc.get("write_files") or ():
        files.setdefault(str(f["path"]), []).append(str(f.get("content", "")))
    return files


def _registration(kubeadm: str) -> tuple[dict[str, Any], bool]:
    """(nodeRegistration, is a control-plane node) of a kubeadm config."""
    for doc in yaml.safe_load_all(kubeadm):
        kind = (doc or {}).get("kind")
        if kind in ("InitConfiguration", "JoinConfiguration"):
            return doc.get("nodeRegistration") or {}, kind == "InitConfiguration" or "controlPlane" in doc
    raise NodeError("its kubeadm config has no InitConfiguration or JoinConfiguration")


def _labels_and_taints(registration: Mapping[str, Any], control_plane: bool) -> tuple[dict[str, str], list[Taint]]:
    args = {a["name"]: str(a["value"]) for a in registration.get("kubeletExtraArgs") or ()}
    labels = dict(OS_ARCH)
    for pair in filter(None, args.get("node-labels", "").split(",")):
        key, _, value = pair.partition("=")
        labels[key] = value
    if control_plane:
        labels |= {CONTROL_PLANE: "", "node.kubernetes.io/exclude-from-external-load-balancers": ""}
    if "taints" in registration and registration["taints"] is not None:
        raw = registration["taints"]
    else:  # kubeadm's default: a control-plane node is tainted unless the list is given (even empty)
        raw = [{"key": CONTROL_PLANE, "effect": "NoSchedule"}] if control_plane else []
    taints = [Taint(str(t["key"]), str(t.get("value", "")), str(t["effect"])) for t in raw]
    return labels, taints


def allocatable(cpus: Decimal, memory: Decimal, kubelet: Mapping[str, Any]) -> dict[str, Decimal]:
    """capacity - kubeReserved - systemReserved - the hard eviction threshold (memory)."""
    reserved_cpu = Decimal(0)
    reserved_memory = Decimal(0)
    for key in ("kubeReserved", "systemReserved"):
        block = kubelet.get(key) or {}
        reserved_cpu += quantity.parse(block.get("cpu", "0"))
        reserved_memory += quantity.parse(block.get("memory", "0"))
    eviction = (kubelet.get("evictionHard") or {}).get("memory.available", DEFAULT_EVICTION_MEMORY)
    return {
        "cpu": cpus - reserved_cpu,
        "memory": memory - reserved_memory - quantity.parse(eviction),
        "pods": Decimal(int(kubelet.get("maxPods", DEFAULT_MAX_PODS))),
    }


def registries(files: Mapping[str, list[str]]) -> dict[str, RegistryHosts]:
    """containerd's view of each registry namespace (certs.d/<namespace>/hosts.toml)."""
    out = {}
    for path, contents in files.items():
        if not (path.startswith(CERTS_D + "/") and path.endswith("/hosts.toml")):
            continue
        namespace = path.removeprefix(CERTS_D + "/").removesuffix("/hosts.toml")
        doc = tomllib.loads(contents[-1])

        def entry(url: str, raw: Mapping[str, Any]) -> HostEntry:
            ca = raw.get("ca", ())
            return HostEntry(
                url=url,
                capabilities=tuple(raw.get("capabilities", ("pull", "resolve", "push"))),
                ca=(ca,) if isinstance(ca, str) else tuple(ca),
                headers={k: v[0] if isinstance(v, list) else str(v) for k, v in (raw.get("header") or {}).items()},
                override_path=bool(raw.get("override_path", False)),
            )

        server = str(doc.get("server", f"https://{namespace}"))
        out[namespace] = RegistryHosts(
            namespace=namespace,
            hosts=tuple(entry(url, raw) for url, raw in (doc.get("host") or {}).items()),
            server=entry(server, doc),
        )
    return out


def etc_hosts(files: Mapping[str, list[str]], own_address: str) -> dict[str, str]:
    names: dict[str, str] = {}
    for content in files.get("/etc/hosts", ()):
        for line in content.splitlines():
            fields = line.split("#", 1)[0].split()
            for name in fields[1:]:
                names[name] = own_address if fields[0] in (IMDS_NODE_IP, own_address) else fields[0]
    return names


def cluster_kubelet(plan: Plan) -> dict[str, Any] | None:
    """The KubeletConfiguration `kubeadm init` stores for the cluster; None without an init node."""
    for r in plan.by_type(REMOTE_COMMAND):
        files = written_files(cloud_config(user_data_of(r.type, r.raw_inputs) or ""))
        if KUBEADM_CONFIG in files:
            docs = [d for d in yaml.safe_load_all(files[KUBEADM_CONFIG][-1]) if d]
            if any(d.get("kind") == "InitConfiguration" for d in docs):
                return next((d for d in docs if d.get("kind") == "KubeletConfiguration"), {})
    return None


def _node(
    name_hint: str, kind: NodeKind, source: str, user_data: str, cpus: Decimal, memory: Decimal, kubelet: dict[str, Any]
) -> Node:
    """One node from its user-data; `kind` unless its akiba.io/node-kind label says otherwise."""
    doc = cloud_config(user_data)
    files = written_files(doc)
    if KUBEADM_CONFIG not in files:
        raise NodeError(f"its configuration writes no {KUBEADM_CONFIG}")
    registration, control_plane = _registration(files[KUBEADM_CONFIG][-1])
    labels, taints = _labels_and_taints(registration, control_plane)
    name = str(registration.get("name") or name_hint)
    args = {a["name"]: str(a["value"]) for a in registration.get("kubeletExtraArgs") or ()}
    address = args.get("node-ip", "")
    own = OWN_ADDRESS if address in ("", IMDS_NODE_IP) else address
    labels["kubernetes.io/hostname"] = name
    mtus = [
        int(iface["mtu"])
        for path, contents in files.items()
        if path.startswith("/etc/netplan/")
        for section in ("bonds", "ethernets")
        for iface in ((yaml.safe_load(contents[-1]) or {}).get("network", {}).get(section) or {}).values()
        if "mtu" in iface
    ]
    label_kind = labels.get("akiba.io/node-kind")
    return Node(
        name=name,
        kind=label_kind if label_kind in ("baremetal", "vm", "burst") else kind,  # type: ignore[arg-type]
        source=source,
        labels=labels,
        taints=tuple(taints),
        capacity=allocatable(cpus, memory, kubelet),
        gpus=int(labels.get("akiba.io/gpu-count", "0") or 0),
        address=own,
        registries=registries(files),
        etc_hosts=etc_hosts(files, own),
        files=frozenset({CLUSTER_CA, *files}),
        security_profiles=security_profiles(files),
        mtu=min(mtus) if mtus else None,
    )


SECCOMP_DIR = "/var/lib/kubelet/seccomp/"  # the kubelet's default root-dir + seccomp
APPARMOR_DIR = "/etc/apparmor.d/"
_APPARMOR_PROFILE = re.compile(r"^\s*profile\s+([^\s{]+)", re.M)


def security_profiles(files: Mapping[str, list[str]]) -> frozenset[str]:
    """The Localhost profiles a node's configuration installs: seccomp files under the kubelet's
    directory, AppArmor profiles by the names their files declare (what a pod names)."""
    found = {f"seccomp:{path.removeprefix(SECCOMP_DIR)}" for path in files if path.startswith(SECCOMP_DIR)}
    for path, contents in files.items():
        if path.startswith(APPARMOR_DIR):
            found |= {f"apparmor:{name}" for text in contents for name in _APPARMOR_PROFILE.findall(text)}
    return frozenset(found)


# (subject, message): what the check cannot read about a node.
Unreadable = list[tuple[str, str]]


def configurations(plan: Plan) -> dict[str, str]:
    """Each node component's configuration document, by the component's URN: its converge
    command sits in a NodeConverge inside it (components/machines/baremetal_node.py)."""
    parents = {r.urn: r.parent for r in plan.resources}
    out = {}
    for r in plan.by_type(REMOTE_COMMAND):
        text = user_data_of(r.type, r.raw_inputs)
        if text is not None:
            out[parents.get(r.parent, "")] = text
    return out


def machine_nodes(plan: Plan, kubelet: dict[str, Any]) -> tuple[list[Node], Unreadable]:
    """PCs and VMs: each MAAS deployment, sized by its allocation constraints, configured by
    its node's configuration document."""
    nodes: list[Node] = []
    problems: Unreadable = []
    documents = configurations(plan)
    for r in plan.by_type("maas:index/instance:Instance"):
        alloc = r.raw_inputs.get("allocateParams") or {}
        source = f"MAAS deployment {r.name}"
        if "minCpuCount" not in alloc or "minMemory" not in alloc:
            problems.append(
                (source, "no min_cpu_count/min_memory in its allocation: the node's CPU and memory are unknown")
            )
            continue
        text = documents.get(r.parent)
        if text is None:
            problems.append((source, "no configuration command (converge) in its node: it would stay bare"))
            continue
        try:
            node = _node(
                r.name,
                "baremetal",
                source,
                text or "",
                Decimal(int(alloc["minCpuCount"])),
                Decimal(int(alloc["minMemory"])) * 2**20,  # MAAS counts memory in MiB
                kubelet,
            )
        except NodeError as err:
            problems.append((source, str(err)))
            continue
        nodes.append(node)
    return sorted(nodes, key=lambda n: n.name), problems


def _asg_tags(group: Recorded) -> dict[str, str]:
    return {str(t["key"]): str(t["value"]) for t in group.raw_inputs.get("tags") or ()}


def burst_templates(
    plan: Plan, instance_types: Mapping[str, tuple[int, float]], kubelet: dict[str, Any]
) -> tuple[list[Node], Unreadable]:
    """The burst group as the autoscaler models it (first instance type), with the labels and
    taints its nodes really register with (that type's launch template). A disagreement between
    the two means the autoscaler scales for pods the new node then refuses, or never scales."""
    templates: dict[str, Recorded] = {r.id: r for r in plan.by_type(LAUNCH_TEMPLATE)}
    nodes: list[Node] = []
    problems: Unreadable = []
    for group in plan.by_type(ASG):
        inputs = group.raw_inputs
        name = str(inputs.get("name") or group.name)
        subject = f"burst group {name}"
        lt = (inputs.get("mixedInstancesPolicy") or {}).get("launchTemplate") or {}
        overrides = lt.get("overrides") or []
        if not overrides:
            problems.append((subject, "no instance types"))
            continue
        first = overrides[0]
        itype = str(first["instanceType"])
        spec = first.get("launchTemplateSpecification") or lt.get("launchTemplateSpecification") or {}
        template = templates.get(str(spec.get("launchTemplateId")))
        if template is None or itype not in instance_types:
            problems.append((subject, f"cannot find the launch template or size of {itype}"))
            continue
        cpus, memory_gib = instance_types[itype]
        source = f"burst group {name} ({itype}, launch template {template.name})"
        try:
            node = _node(
                f"burst-{itype}",
                "burst",
                source,
                user_data_of(template.type, template.raw_inputs) or "",
                Decimal(cpus),
                Decimal(str(memory_gib)) * 2**30,
                kubelet,
            )
        except NodeError as err:
            problems.append((source, str(err)))
            continue
        node.name = f"{name}({itype})"
        node.labels["kubernetes.io/hostname"] = node.name
        node.template = True
        node.mtu = AWS_MTU
        node.max_count = int(inputs.get("maxSize", 0))
        problems += [(subject, message) for message in _template_mismatch(_asg_tags(group), node)]
        nodes.append(node)
    return nodes, problems


def _template_mismatch(tags: Mapping[str, str], node: Node) -> list[str]:
    model_labels = {k.removeprefix(CA_TEMPLATE + "label/"): v for k, v in tags.items() if "/label/" in k}
    model_taints = {
        k.removeprefix(CA_TEMPLATE + "taint/"): v for k, v in tags.items() if k.startswith(CA_TEMPLATE + "taint/")
    }
    real_taints = {t.key: f"{t.value}:{t.effect}" for t in node.taints}
    problems = []
    for key, value in model_labels.items():
        if node.labels.get(key) != value:
            problems.append(
                f"the autoscaler models label {key}={value}, its nodes register {key}={node.labels.get(key, '(none)')}"
            )
    if model_taints != real_taints:
        problems.append(f"the autoscaler models taints {model_taints}, its nodes register {real_taints}")
    gpus = tags.get(CA_TEMPLATE + "resources/nvidia.com/gpu")
    if node.gpus and gpus != str(node.gpus):
        problems.append(f"the autoscaler models {gpus} GPU(s), its nodes have {node.gpus}")
    return problems
