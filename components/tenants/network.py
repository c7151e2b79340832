"""Each engineer's namespace talks only to what it needs: nothing by default, in or out; then
their own pods among themselves, cluster DNS, their own database (not anyone else's), the API
server, the ingress (the registry and the apps), the internet, and ssh to their home from the
office LAN. Another engineer's pods, the platform's pods and the machines of the office LAN are
not reachable from here (kube-router enforces it: components/cluster/network_policies.py).

Peers are chosen by `kubernetes.io/metadata.name`, which the API server sets on every namespace:
a label an engineer sets on their own pods or namespace never widens what is admitted.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from components.context import PlatformContext
from components.tenants.names import engineer_namespace

NAMESPACE_NAME = "kubernetes.io/metadata.name"  # set by the API server on every namespace
EVERYWHERE = "0.0.0.0/0"
LINK_LOCAL = "169.254.0.0/16"  # a cloud node's metadata service (its IAM credentials) lives here
# Never "the internet" for an engineer's pod, whatever this stack declares: the other stack's LAN
# (dev's 192.168.20.0/24 is routed to prod's office), a VPN, a router, carrier-grade NAT.
NOT_INTERNET = ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", LINK_LOCAL)
# kubeadm's CoreDNS: its pods in kube-system carry k8s-app=kube-dns.
DNS_NAMESPACE, DNS_PODS = "kube-system", {"k8s-app": "kube-dns"}


def in_namespace(namespace: str, pods: dict[str, str] | None = None) -> dict[str, Any]:
    """A peer: the pods of one namespace (those with `pods` labels, else all)."""
    peer: dict[str, Any] = {"namespaceSelector": {"matchLabels": {NAMESPACE_NAME: namespace}}}
    if pods is not None:
        peer["podSelector"] = {"matchLabels": pods}
    return peer


def tcp(*ports: int) -> list[dict[str, Any]]:
    return [{"protocol": "TCP", "port": p} for p in ports]


def dns_egress() -> dict[str, Any]:
    """An egress rule: cluster DNS, UDP and TCP."""
    return {
        "to": [in_namespace(DNS_NAMESPACE, DNS_PODS)],
        "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}],
    }


DEFAULT_DENY = "default-deny"


def default_deny() -> dict[str, Any]:
    """Selects every pod for both directions and admits nothing: what no other policy of the
    namespace admits is dropped."""
    return {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}


@dataclass(frozen=True)
class ClusterPlaces:
    """Where what an engineer's pods may reach lives, and what counts as inside the office."""

    pod_cidr: str  # e.g. 10.244.0.0/16: other pods only by an explicit allow
    service_cidr: str  # e.g. 10.96.0.0/12
    office_lan: str  # e.g. 192.168.10.0/24: its machines are not the internet; ssh comes from here
    private: tuple[str, ...]  # other networks of the platform's, e.g. the burst VPC and tunnel
    api_addresses: tuple[str, ...]  # the controllers' and the VIP's addresses (the API on 6443)
    api_port: int  # 6443
    node_addresses: tuple[str, ...]  # every node: the ingress listens on each one's node ports
    ingress_node_ports: tuple[int, ...]  # e.g. (30080, 30443): the apps and the registry
    ingress_namespace: str  # e.g. traefik
    ingress_pod_ports: tuple[int, ...]  # what those node ports lead to in its pods, e.g. (8000, 8443)
    database_namespace: str  # akiba-db


@dataclass(frozen=True)
class EngineerNetwork:
    login: str  # their namespace is eng-<login>
    database_pods: dict[str, str] | None  # labels of their own database's pods; None: they have none
    ssh_port: int  # the port sshd listens on in their home pod, e.g. 2222


def engineer_policies(engineer: EngineerNetwork, places: ClusterPlaces) -> dict[str, dict[str, Any]]:
    """name -> NetworkPolicy spec, for the engineer's namespace."""
    own = engineer_namespace(engineer.login)
    every_node = [{"ipBlock": {"cidr": f"{ip}/32"}} for ip in places.node_addresses]
    api = [{"ipBlock": {"cidr": f"{ip}/32"}} for ip in places.api_addresses]
    outside = list(
        dict.fromkeys([places.pod_cidr, places.service_cidr, places.office_lan, *places.private, *NOT_INTERNET])
    )
    policies: dict[str, dict[str, Any]] = {
        DEFAULT_DENY: default_deny(),
        "same-namespace": {
            "podSelector": {},
            "policyTypes": ["Ingress", "Egress"],
            "ingress": [{"from": [in_namespace(own)]}],
            "egress": [{"to": [in_namespace(own)]}],
        },
        "dns": {
            "podSelector": {},
            "policyTypes": ["Egress"],
            "egress": [dns_egress()],
        },
        "platform": {
            "podSelector": {},
            "policyTypes": ["Egress"],
            "egress": [
                # kubectl and the in-cluster client: the kubernetes Service leads to the controllers.
                {"to": api, "ports": tcp(places.api_port)},
                # The registry and the apps through the ingress: on a node's own port (another node's
                # address), or already led to an ingress pod (this node's address).
                {"to": every_node, "ports": tcp(*places.ingress_node_ports)},
                {"to": [in_namespace(places.ingress_namespace)], "ports": tcp(*places.ingress_pod_ports)},
            ],
        },
        "internet": {
            "podSelector": {},
            "policyTypes": ["Egress"],
            "egress": [{"to": [{"ipBlock": {"cidr": EVERYWHERE, "except": outside}}]}],
        },
        # The NodePort keeps the client's address (externalTrafficPolicy Local): the office LAN's.
        "ssh": {
            "podSelector": {},
            "policyTypes": ["Ingress"],
            "ingress": [{"from": [{"ipBlock": {"cidr": places.office_lan}}], "ports": tcp(engineer.ssh_port)}],
        },
    }
    if engineer.database_pods is not None:
        policies["database"] = {
            "podSelector": {},
            "policyTypes": ["Egress"],
            "egress": [{"to": [in_namespace(places.database_namespace, engineer.database_pods)], "ports": tcp(5432)}],
        }
    return policies


@dataclass(frozen=True)
class EngineerNetworkPoliciesArgs:
    ctx: PlatformContext
    provider: k8s.Provider
    places: ClusterPlaces
    engineers: tuple[EngineerNetwork, ...]
    namespaces: Mapping[str, pulumi.Resource]  # login -> their Namespace


class EngineerNetworkPolicies(pulumi.ComponentResource):
    """The policies of every engineer's namespace (`names[login]`: the policies' names)."""

    names: dict[str, list[str]]

    def __init__(
        self, name: str, args: EngineerNetworkPoliciesArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("akiba:tenants:EngineerNetworkPolicies", name, None, opts)
        self.names = {}
        for engineer in args.engineers:
            ns = engineer_namespace(engineer.login)
            inside = pulumi.ResourceOptions(
                parent=self, provider=args.provider, depends_on=[args.namespaces[engineer.login]]
            )
            policies = engineer_policies(engineer, args.places)
            for policy, spec in policies.items():
                # The deny stays with a retained namespace when the engineer leaves the stack
                # (the allows go): what still runs there reaches nothing and nothing reaches it.
                retain = pulumi.ResourceOptions(retain_on_delete=policy == DEFAULT_DENY and args.ctx.protect_stateful)
                k8s.networking.v1.NetworkPolicy(
                    f"{ns}-{policy}",
                    metadata={"name": policy, "namespace": ns, "labels": args.ctx.labels},
                    spec=spec,
                    opts=pulumi.ResourceOptions.merge(inside, retain),
                )
            self.names[engineer.login] = sorted(policies)
        self.register_outputs({"policies": self.names})
