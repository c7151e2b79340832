"""Pure helpers for the cluster's PKI: the kubeadm CA hash and kubeconfigs (the admin's, and each
client certificate's: engineers, other teams)."""

from __future__ import annotations

import base64
import hashlib

import yaml


def pem_body(pem: str) -> bytes:
    """The DER bytes inside one PEM block."""
    lines = [ln.strip() for ln in pem.strip().splitlines() if ln.strip() and not ln.startswith("-----")]
    return base64.b64decode("".join(lines))


def ca_cert_hash(ca_public_key_pem: str) -> str:
    """kubeadm's `--discovery-token-ca-cert-hash`: SHA-256 of the CA's SubjectPublicKeyInfo.

    `tls.PrivateKey.public_key_pem` is exactly that SPKI ("BEGIN PUBLIC KEY"), so joining nodes
    can pin the CA without anyone reading it off a controller.
    """
    return "sha256:" + hashlib.sha256(pem_body(ca_public_key_pem)).hexdigest()


def render_kubeconfig(
    cluster: str,
    server: str,
    ca_pem: str,
    cert_pem: str,
    key_pem: str,
    *,
    user: str | None = None,
    namespace: str | None = None,
) -> str:
    """A kubeconfig with embedded credentials: the admin's (no `user`), or the certificate's
    `user` (its CN), whose context starts in `namespace` (an engineer's own)."""

    def b64(text: str) -> str:
        return base64.b64encode(text.encode()).decode()

    name = user or f"{cluster}-admin"
    # The admin context keeps its old name: the provider's kubeconfig must not change for nothing.
    context_name = f"{user}@{cluster}" if user else name
    context: dict[str, str] = {"cluster": cluster, "user": name}
    if namespace:
        context["namespace"] = namespace
    doc = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": cluster, "cluster": {"server": server, "certificate-authority-data": b64(ca_pem)}}],
        "users": [{"name": name, "user": {"client-certificate-data": b64(cert_pem), "client-key-data": b64(key_pem)}}],
        "contexts": [{"name": context_name, "context": context}],
        "current-context": context_name,
    }
    return yaml.safe_dump(doc, sort_keys=False)
