"""What the plan-diff gate refuses to replace or delete without an explicit allowance: the one
definition of "stateful or critical" for a change. Data-holding kinds come from the policy pack
(its `stateful-protected` rule), so the two never disagree.

- machine:  a MAAS deployment or machine (a reinstall / release), an EC2 instance, a libvirt VM
- disk:     an RBD image (a VM's disk)
- volume:   what the policy pack calls stateful: PVCs, PVs, Ceph/Rook data CRs, EBS, S3
- identity: the cluster's keys and CAs: every tls PrivateKey (the CA keys, the service-account
            key, the registry's key, the engineers' SSH host key), every SelfSignedCert and a
            LocallySignedCert that is itself a CA, and raw key material from random (RandomBytes: the
            WireGuard gateway key the office peer pins).

Not gated, judged: a leaf certificate (LocallySignedCert, not a CA) is re-issued by the same CA and
trusted as before; random passwords and strings (the kubeadm join token, registry and database
passwords) are credentials, and replacing one rotates it. What consumes them shows in the same
diff (a Secret, a kubeconfig, a node's user-data) and the gate judges that on its own: a new admin
certificate that replaces the kubernetes provider, and with it every volume, is refused there.
CertRequests are derived from a key and replaced with it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from components.machines.libvirt_domain import KIND as LIBVIRT_DOMAIN
from components.machines.rbd_image import KIND as RBD_IMAGE
from policy.akiba_policy.rules import STATEFUL_K8S_KINDS, STATEFUL_TYPES
from tools.plan.replacement.dynamic import TYPE as DYNAMIC

MACHINES = {
    "maas:index/instance:Instance": "machine",
    "maas:index/machine:Machine": "machine",
    "aws:ec2/instance:Instance": "machine",
}
IDENTITY = {
    "tls:index/privateKey:PrivateKey",
    "tls:index/selfSignedCert:SelfSignedCert",
    "random:index/randomBytes:RandomBytes",
}
SIGNED_CERT = "tls:index/locallySignedCert:LocallySignedCert"


def category(typ: str, inputs: Mapping[str, Any]) -> str | None:
    """machine, disk, volume, identity, or None for what may be replaced freely."""
    if typ in MACHINES:
        return MACHINES[typ]
    if typ in IDENTITY or (typ == SIGNED_CERT and inputs.get("isCaCertificate") is True):
        return "identity"
    if typ == DYNAMIC:
        kind = inputs.get("kind")
        return "disk" if kind == RBD_IMAGE else "machine" if kind == LIBVIRT_DOMAIN else None
    if typ in STATEFUL_TYPES:
        return "volume"
    kubernetes_object = typ.startswith("kubernetes:") and not typ.startswith(("kubernetes:helm", "kubernetes:yaml"))
    if kubernetes_object and typ.rsplit(":", 1)[-1] in STATEFUL_K8S_KINDS:
        return "volume"
    return None
