"""The private registry (CNCF distribution) on Ceph: private images, and a pull-through cache
per upstream registry, all behind https://<registry host>:<ingress port>/ — `/v2/...` is the
private registry, `/<upstream>/v2/...` that upstream's cache (distribution proxies one remote
per instance). Every node's containerd uses the caches as mirrors (the bootstrap renders that).

TLS: the ingress and each instance present certificates from the cluster CA, which every node
already trusts (/etc/kubernetes/pki/ca.crt). Every request needs an account
(`components.registry.credentials`): `akiba-push` for `pulumi up` and other teams, `akiba-pull`
for the nodes' containerd, and one per engineer (`components.registry.engineer_login`). Any
account may push anywhere: htpasswd has no per-repository rights.

The accounts reach the running registry without a restart: the htpasswd Secret is mounted as a
directory (not subPath), so the kubelet rewrites the file in place, and distribution re-reads it
on the next request whose file's mtime differs (registry/auth/htpasswd/access.go, since 2.6).
A restart would stop every node's pulls (one replica per instance, Recreate).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_kubernetes as k8s
import pulumi_random as random
import pulumi_tls as tls

from components.cluster.namespaces import declare_namespace
from components.cluster.priorities import PLATFORM
from components.context import PlatformContext
from components.registry.config import cache_prefix, render_registry_config, upstream_url
from components.registry.credentials import PUSH_USER as PUSH_USER  # re-exported: callers import it from here
from components.registry.credentials import RegistryCredentials
from components.storage.ceph_storage import RBD_CLASS

NAMESPACE = "akiba-registry"
IMAGE = "docker.io/library/registry:3.0.0"
CERT_DIR, AUTH_DIR, DATA_DIR = "/etc/registry/tls", "/etc/registry/auth", "/var/lib/registry"
SERVERS_SCHEME = {"traefik.ingress.kubernetes.io/service.serversscheme": "https"}


def instance_name(upstream: str | None) -> str:
    return "registry" if upstream is None else "cache-" + upstream.replace(".", "-")


def instance_pod(name: str, labels: dict[str, str]) -> dict[str, Any]:
    probe = {"httpGet": {"path": "/debug/health", "port": 5001}, "periodSeconds": 10}
    return {
        "metadata": {"labels": labels},
        "spec": {
            "automountServiceAccountToken": False,
            "priorityClassName": PLATFORM,  # every node pulls from it: nothing may evict it
            "securityContext": {
                "runAsNonRoot": True,
                "runAsUser": 1000,
                "fsGroup": 1000,
                "seccompProfile": {"type": "RuntimeDefault"},
            },
            "containers": [
                {
                    "name": "registry",
                    "image": IMAGE,
                    "args": ["serve", "/etc/registry/config.yml"],
                    "ports": [{"name": "https", "containerPort": 5000}],
                    "readinessProbe": probe,
                    "livenessProbe": probe,
                    "resources": {
                        "requests": {"cpu": "100m", "memory": "256Mi"},
                        "limits": {"cpu": "2", "memory": "1Gi"},
                    },
                    "securityContext": {
                        "allowPrivilegeEscalation": False,
                        "readOnlyRootFilesystem": True,
                        "capabilities": {"drop": ["ALL"]},
                    },
                    "volumeMounts": [
                        {"name": "config", "mountPath": "/etc/registry/config.yml", "subPath": "config.yml"},
                        {"name": "tls", "mountPath": CERT_DIR},
                        # A directory: a new htpasswd reaches the running registry (see above).
                        {"name": "auth", "mountPath": AUTH_DIR},
                        {"name": "data", "mountPath": DATA_DIR},
                    ],
                }
            ],
            "volumes": [
                {"name": "config", "secret": {"secretName": f"{name}-config"}},
                {"name": "tls", "secret": {"secretName": "registry-tls"}},
                {"name": "auth", "secret": {"secretName": "registry-htpasswd"}},
                {"name": "data", "persistentVolumeClaim": {"claimName": f"{name}-data"}},
            ],
        },
    }


@dataclass(frozen=True)
class RegistryArgs:
    ctx: PlatformContext
    provider: k8s.Provider
    host: str  # registry.akiba.lan
    upstreams: tuple[str, ...]
    ca_cert_pem: pulumi.Output[str]
    ca_key_pem: pulumi.Output[str]  # secret
    ingress_class: str
    credentials: RegistryCredentials  # the accounts the htpasswd file holds
    private_size: str = "500Gi"
    cache_size: str = "200Gi"


class Registry(pulumi.ComponentResource):
    push_password: pulumi.Output[str]

    def __init__(self, name: str, args: RegistryArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("akiba:registry:Registry", name, None, opts)
        ctx = args.ctx
        on_cluster = pulumi.ResourceOptions(parent=self, provider=args.provider)
        ns = declare_namespace(NAMESPACE, "restricted", ctx, on_cluster)
        in_ns = pulumi.ResourceOptions.merge(on_cluster, pulumi.ResourceOptions(depends_on=[ns]))
        child = pulumi.ResourceOptions(parent=self)

        key = tls.PrivateKey("registry-tls", algorithm="ECDSA", ecdsa_curve="P256", opts=child)
        csr = tls.CertRequest(
            "registry-tls",
            private_key_pem=key.private_key_pem,
            subject={"common_name": args.host},
            # One wildcard for every instance's Service: adding an upstream must not re-issue the
            # certificate (nor rewrite its Secret under the running instances).
            dns_names=[args.host, f"*.{NAMESPACE}.svc"],
            opts=child,
        )
        cert = tls.LocallySignedCert(
            "registry-tls",
            cert_request_pem=csr.cert_request_pem,
            ca_private_key_pem=args.ca_key_pem,
            ca_cert_pem=args.ca_cert_pem,
            validity_period_hours=8760,
            early_renewal_hours=720,
            allowed_uses=["server_auth", "digital_signature", "key_encipherment"],
            opts=child,
        )
        k8s.core.v1.Secret(
            "registry-tls",
            metadata={"name": "registry-tls", "namespace": NAMESPACE, "labels": ctx.labels},
            type="kubernetes.io/tls",
            string_data=pulumi.Output.all(cert.cert_pem, key.private_key_pem).apply(
                lambda v: {"tls.crt": v[0], "tls.key": v[1]}
            ),
            opts=in_ns,
        )
        self.push_password = args.credentials.push_password
        k8s.core.v1.Secret(
            "registry-htpasswd",
            metadata={"name": "registry-htpasswd", "namespace": NAMESPACE, "labels": ctx.labels},
            string_data=args.credentials.htpasswd.apply(lambda text: {"htpasswd": text}),
            opts=in_ns,
        )
        upload_secret = random.RandomPassword("registry-http-secret", length=32, special=False, opts=child)

        paths = []
        for upstream in (None, *args.upstreams):
            iname = instance_name(upstream)
            labels = {**ctx.labels, "app.kubernetes.io/name": iname}
            config = upload_secret.result.apply(
                lambda s, u=upstream: render_registry_config(
                    DATA_DIR,
                    ":5000",
                    f"{AUTH_DIR}/htpasswd",
                    f"{CERT_DIR}/tls.crt",
                    f"{CERT_DIR}/tls.key",
                    upstream_url(u) if u else None,
                    http_prefix=cache_prefix(u) if u else None,
                    debug_addr=":5001",
                    http_secret=s,
                )
            )
            k8s.core.v1.Secret(
                f"{iname}-config",
                metadata={"name": f"{iname}-config", "namespace": NAMESPACE, "labels": labels},
                string_data=config.apply(lambda c: {"config.yml": c}),
                opts=in_ns,
            )
            data = k8s.core.v1.PersistentVolumeClaim(
                f"{iname}-data",
                metadata={"name": f"{iname}-data", "namespace": NAMESPACE, "labels": labels},
                spec={
                    "accessModes": ["ReadWriteOnce"],
                    "storageClassName": RBD_CLASS,
                    "resources": {"requests": {"storage": args.cache_size if upstream else args.private_size}},
                },
                opts=ctx.stateful(self, provider=args.provider, depends_on=[ns]),
            )
            k8s.apps.v1.Deployment(
                iname,
                metadata={"name": iname, "namespace": NAMESPACE, "labels": labels},
                spec={
                    "replicas": 1,
                    "strategy": {"type": "Recreate"},  # one pod on a ReadWriteOnce volume
                    "selector": {"matchLabels": {"app.kubernetes.io/name": iname}},
                    "template": instance_pod(iname, labels),
                },
                opts=pulumi.ResourceOptions.merge(in_ns, pulumi.ResourceOptions(depends_on=[data])),
            )
            k8s.core.v1.Service(
                iname,
                metadata={"name": iname, "namespace": NAMESPACE, "labels": labels, "annotations": SERVERS_SCHEME},
                spec={"selector": {"app.kubernetes.io/name": iname}, "ports": [{"name": "https", "port": 5000}]},
                opts=in_ns,
            )
            prefix = cache_prefix(upstream) if upstream else "/v2"
            paths.append(
                {
                    "path": prefix,
                    "pathType": "Prefix",
                    "backend": {"service": {"name": iname, "port": {"name": "https"}}},
                }
            )
        k8s.networking.v1.Ingress(
            "registry",
            metadata={"name": "registry", "namespace": NAMESPACE, "labels": ctx.labels},
            spec={
                "ingressClassName": args.ingress_class,
                "tls": [{"hosts": [args.host], "secretName": "registry-tls"}],
                "rules": [{"host": args.host, "http": {"paths": paths}}],
            },
            opts=in_ns,
        )
        self.register_outputs({"host": args.host})
