"""What enforces NetworkPolicy beside flannel: kube-router's network policy controller alone
(`--run-firewall`, no routing, no service proxy, no CNI). flannel keeps the VXLAN pod network,
kube-proxy the Services; kube-router turns each NetworkPolicy into iptables rules and ipsets on
every node. flannel does not enforce NetworkPolicy at all (flannel README), so without this
every policy the platform declares would be a comment.

Why kube-router: it is exactly what k3s runs beside its flannel VXLAN to enforce NetworkPolicy
(embedded there), its rules live in the kernel (an agent restart leaves them in place), and it
needs no datastore. Its firewall needs NET_ADMIN and NET_RAW in the host's network namespace,
not a privileged container (no module loading or sysctl in the policy controller).

Sources, kube-router v2.11.1: docs/user-guide.md (flags, requirements, NetworkPolicy
default-deny), daemonset/kube-router-firewall-daemonset.yaml and the ClusterRole of
daemonset/generic-kuberouter-all-features.yaml (read-only part: the firewall writes nothing).
"""

from __future__ import annotations

from typing import Any

VERSION = "v2.11.1"
IMAGE = f"docker.io/cloudnativelabs/kube-router:{VERSION}"
NAME = "kube-router"
NAMESPACE = "kube-system"  # a node agent of the platform's, beside kube-proxy: no engineer has rights here
HEALTH_PORT = 20244
# Every node, whatever its taints (GPU, control plane, burst, not-ready): a node without the agent
# enforces no policy for the pods on it.
EVERY_NODE = [{"operator": "Exists"}]


def cluster_role_rules() -> list[dict[str, Any]]:
    """Read what the policies select on; it writes nothing to the API."""
    read = ["get", "list", "watch"]
    return [
        {"apiGroups": [""], "resources": ["namespaces", "pods", "services", "nodes", "endpoints"], "verbs": read},
        {"apiGroups": ["networking.k8s.io"], "resources": ["networkpolicies"], "verbs": read},
        {"apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"], "verbs": read},
    ]


def args(service_cidr: str) -> list[str]:
    return [
        "--run-firewall=true",
        "--run-router=false",  # flannel routes the pod network
        "--run-service-proxy=false",  # kube-proxy serves the Services
        "--enable-cni=false",  # flannel's CNI configuration stays the only one
        f"--service-cluster-ip-range={service_cidr}",
        # A new pod is rejected, not open, until its firewall chain exists (kube-router's
        # NetworkPolicy default-deny): a short Job cannot slip out before its policy applies.
        "--netpol-default-deny=true",
        f"--health-port={HEALTH_PORT}",
    ]


def daemonset_spec(service_cidr: str, labels: dict[str, str]) -> dict[str, Any]:
    selector = {"app.kubernetes.io/name": NAME}
    return {
        "selector": {"matchLabels": selector},
        "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1}},
        "template": {
            "metadata": {"labels": {**labels, **selector}},
            "spec": {
                "serviceAccountName": NAME,
                "priorityClassName": "system-node-critical",  # like flannel and kube-proxy
                "hostNetwork": True,  # its rules are the node's
                "tolerations": EVERY_NODE,
                "containers": [
                    {
                        "name": NAME,
                        "image": IMAGE,
                        "args": args(service_cidr),
                        "env": [{"name": "NODE_NAME", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}}],
                        "livenessProbe": {
                            "httpGet": {"path": "/healthz", "port": HEALTH_PORT},
                            "initialDelaySeconds": 10,
                            "periodSeconds": 3,
                        },
                        "resources": {
                            "requests": {"cpu": "100m", "memory": "128Mi"},
                            "limits": {"cpu": "500m", "memory": "512Mi"},
                        },
                        "securityContext": {
                            "privileged": False,
                            "allowPrivilegeEscalation": False,
                            "capabilities": {"drop": ["ALL"], "add": ["NET_ADMIN", "NET_RAW"]},
                        },
                        # The lock iptables takes on the node, shared with kube-proxy and flannel.
                        "volumeMounts": [{"name": "xtables-lock", "mountPath": "/run/xtables.lock"}],
                    }
                ],
                "volumes": [
                    {"name": "xtables-lock", "hostPath": {"path": "/run/xtables.lock", "type": "FileOrCreate"}}
                ],
            },
        },
    }
