"""Pure helpers for the cluster's PKI: the kubeadm CA hash and the admin kubeconfig."""

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


def render_kubeconfig(cluster: str, server: str, ca_pem: str, cert_pem: str, key_pem: str) -> str:
    """An admin kubeconfig with embedded credentials."""

    def b64(text: str) -> str:
        return base64.b64encode(text.encode()).decode()

    user = f"{cluster}-admin"
    doc = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": cluster, "cluster": {"server": server, "certificate-authority-data": b64(ca_pem)}}],
        "users": [{"name": user, "user": {"client-certificate-data": b64(cert_pem), "client-key-data": b64(key_pem)}}],
        "contexts": [{"name": user, "context": {"cluster": cluster, "user": user}}],
        "current-context": user,
    }
    return yaml.safe_dump(doc, sort_keys=False)
