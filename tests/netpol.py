"""A small NetworkPolicy evaluator (networking.k8s.io/v1 semantics, as the Kubernetes docs and
the upstream conformance suite state them), for tests that ask "can this pod reach that one?"
of the policies a plan declares.

- A pod is isolated for a direction when some policy in its namespace selects it and lists that
  direction in policyTypes; an isolated pod admits only what some rule of such a policy admits
  (the union of all of them). A connection needs the sender's egress and the receiver's ingress.
- A peer with namespaceSelector and podSelector means both; with podSelector alone, the policy's
  own namespace; ipBlock matches addresses (kube-router applies it to pod addresses too), minus
  its `except`s. A rule without `to`/`from` admits every peer, without `ports` every port.
- Selectors: matchLabels and matchExpressions (In, NotIn, Exists, DoesNotExist).
Named ports and endPort are not modelled (the platform's policies use neither).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

NAME_LABEL = "kubernetes.io/metadata.name"


@dataclass(frozen=True)
class Endpoint:
    """A pod (namespace set) or an address outside the pod network (namespace None)."""

    ip: str
    namespace: str | None = None
    labels: Mapping[str, str] = field(default_factory=dict)


def pod(namespace: str, ip: str, **labels: str) -> Endpoint:
    return Endpoint(ip, namespace, dict(labels))


def host(ip: str) -> Endpoint:
    return Endpoint(ip)


def selects(selector: Mapping[str, Any] | None, labels: Mapping[str, str]) -> bool:
    if selector is None:
        return False
    if any(labels.get(k) != v for k, v in (selector.get("matchLabels") or {}).items()):
        return False
    for expr in selector.get("matchExpressions") or ():
        key, op, values = expr["key"], expr["operator"], expr.get("values") or []
        ok = {
            "In": key in labels and labels[key] in values,
            "NotIn": key not in labels or labels[key] not in values,
            "Exists": key in labels,
            "DoesNotExist": key not in labels,
        }[op]
        if not ok:
            return False
    return True


def _in_block(block: Mapping[str, Any], ip: str) -> bool:
    addr = ipaddress.ip_address(ip)
    if addr not in ipaddress.ip_network(block["cidr"]):
        return False
    return not any(addr in ipaddress.ip_network(e) for e in block.get("except") or ())


@dataclass(frozen=True)
class Cluster:
    """The policies (namespace, spec) and the namespaces' own labels."""

    policies: tuple[tuple[str, Mapping[str, Any]], ...]
    namespace_labels: Mapping[str, Mapping[str, str]] = field(default_factory=dict)

    def _ns_labels(self, namespace: str) -> dict[str, str]:
        # The API server sets kubernetes.io/metadata.name on every namespace, whatever else it has.
        return {**self.namespace_labels.get(namespace, {}), NAME_LABEL: namespace}

    def _peer(self, peer: Mapping[str, Any], own_namespace: str, other: Endpoint) -> bool:
        if "ipBlock" in peer:
            return _in_block(peer["ipBlock"], other.ip)
        if other.namespace is None:
            return False
        if "namespaceSelector" in peer:
            if not selects(peer["namespaceSelector"], self._ns_labels(other.namespace)):
                return False
        elif other.namespace != own_namespace:
            return False
        return "podSelector" not in peer or selects(peer["podSelector"], other.labels)

    def _isolating(self, subject: Endpoint, direction: str) -> list[Mapping[str, Any]]:
        return [
            spec
            for ns, spec in self.policies
            if ns == subject.namespace
            and selects(spec.get("podSelector"), subject.labels)
            and direction in (spec.get("policyTypes") or ["Ingress"])
        ]

    def _admitted(self, subject: Endpoint, other: Endpoint, port: int, protocol: str, direction: str) -> bool:
        if subject.namespace is None:
            return True  # outside the pod network: no NetworkPolicy applies there
        policies = self._isolating(subject, direction)
        if not policies:
            return True
        key, peers_key = ("egress", "to") if direction == "Egress" else ("ingress", "from")
        for spec in policies:
            for rule in spec.get(key) or ():
                peers: Iterable[Mapping[str, Any]] | None = rule.get(peers_key)
                if peers and not any(self._peer(p, subject.namespace, other) for p in peers):
                    continue
                ports = rule.get("ports")
                if ports and not any(
                    p.get("protocol", "TCP") == protocol and p.get("port") in (None, port) for p in ports
                ):
                    continue
                return True
        return False

    def allows(self, src: Endpoint, dst: Endpoint, port: int, protocol: str = "TCP") -> bool:
        return self._admitted(src, dst, port, protocol, "Egress") and self._admitted(
            dst, src, port, protocol, "Ingress"
        )

    def denies_by_default(self, namespace: str) -> bool:
        """Some policy selects every pod of the namespace for both directions and admits nothing."""
        return any(
            ns == namespace
            and spec.get("podSelector") == {}
            and set(spec.get("policyTypes") or ()) == {"Ingress", "Egress"}
            and not spec.get("ingress")
            and not spec.get("egress")
            for ns, spec in self.policies
        )
