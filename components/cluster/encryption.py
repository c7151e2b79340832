"""Kubernetes Secrets encrypted at rest in etcd: the kube-apiserver's EncryptionConfiguration.

secretbox (XSalsa20-Poly1305, 32-byte keys): authenticated encryption with no limit on how many
writes one key may encrypt (aesgcm must be rotated every 200k writes) and no padding oracle
(aescbc, which the Kubernetes docs no longer recommend). KMS v2 would keep the key off the
controllers, but needs a KMS plugin we do not run. The key lives on each controller, root-only,
next to etcd's own keys: it protects etcd's data and its snapshots, not a controller's disk.
(kubernetes.io "Encrypting Confidential Data at Rest".)
"""

from __future__ import annotations

from collections.abc import Sequence

from components import yamltext

ENCRYPTION_DIR = "/etc/kubernetes/enc"
ENCRYPTION_CONFIG = f"{ENCRYPTION_DIR}/encryption-config.yaml"
API_VERSION = "apiserver.config.k8s.io/v1"


def encryption_configuration(keys: Sequence[tuple[str, str]]) -> dict[str, object]:
    """`keys`: (name, base64 of 32 bytes), the first one encrypting, every one decrypting.
    `identity` last: Secrets written before encryption was on stay readable until rewritten."""
    return {
        "apiVersion": API_VERSION,
        "kind": "EncryptionConfiguration",
        "resources": [
            {
                "resources": ["secrets"],
                "providers": [
                    {"secretbox": {"keys": [{"name": name, "secret": secret} for name, secret in keys]}},
                    {"identity": {}},
                ],
            }
        ],
    }


def render_encryption_config(keys: Sequence[tuple[str, str]]) -> str:
    return yamltext.dump(encryption_configuration(keys))


def api_server_settings() -> tuple[list[dict[str, str]], list[dict[str, object]]]:
    """kube-apiserver's extraArgs and extraVolumes for the ClusterConfiguration (kubeadm v1beta4).
    Automatic reload: a rotated key (the file's content) needs no restart of the API server."""
    args = [
        {"name": "encryption-provider-config", "value": ENCRYPTION_CONFIG},
        {"name": "encryption-provider-config-automatic-reload", "value": "true"},
    ]
    volumes: list[dict[str, object]] = [
        {
            "name": "encryption-config",
            "hostPath": ENCRYPTION_DIR,
            "mountPath": ENCRYPTION_DIR,
            "readOnly": True,
            "pathType": "DirectoryOrCreate",
        }
    ]
    return args, volumes
