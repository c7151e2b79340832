"""Cluster identity: the CAs, service-account keys, the nodes' rotating kubeadm join token, the
key Secrets are encrypted with at rest, the admin kubeconfig (secret) and the explicit
Kubernetes provider every Kubernetes resource uses.

Making the CAs here (as Typhoon does in Terraform) means the join command's CA hash and the
provider's kubeconfig are known without ssh-ing into a controller after `kubeadm init`.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s
import pulumi_random as random
import pulumi_tls as tls

from components.cluster.encryption import render_encryption_config
from components.cluster.join_token import JoinToken, JoinTokenArgs
from components.cluster.pki import ca_cert_hash, render_kubeconfig
from components.context import PlatformContext

TEN_YEARS_H = 87600
ONE_YEAR_H = 8760
CA_USES = ["cert_signing", "crl_signing", "digital_signature", "key_encipherment"]


@dataclass(frozen=True)
class ClusterIdentityArgs:
    ctx: PlatformContext
    api_endpoint: str  # https://host:port the kubeconfig and joining nodes use
    join_token_rotation_days: int  # the office nodes' join token changes after this, expires after twice
    # Generations of the Secrets-at-rest key, the first one encrypting (a rotation adds one, then
    # puts it first, then drops the old one): e.g. (1,) or (2, 1).
    encryption_key_generations: tuple[int, ...]


@dataclass(frozen=True)
class ControllerPki:
    """The files kubeadm expects under /etc/kubernetes/pki, as outputs (keys are secret)."""

    files: pulumi.Output[dict[str, str]]
    # secret: the kube-apiserver's EncryptionConfiguration (the same keys on every controller)
    encryption_config: pulumi.Output[str]


class ClusterIdentity(pulumi.ComponentResource):
    """CAs, keys and bootstrap token of one Kubernetes cluster."""

    ca_cert_pem: pulumi.Output[str]
    ca_key_pem: pulumi.Output[str]
    ca_cert_hash: pulumi.Output[str]
    bootstrap_token: pulumi.Output[str]
    join_token: JoinToken
    encryption_key_name: str  # the key Secrets are written with now, e.g. "key-1"
    kubeconfig: pulumi.Output[str]
    controller_pki: ControllerPki
    provider: k8s.Provider

    def __init__(self, name: str, args: ClusterIdentityArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("akiba:cluster:ClusterIdentity", name, None, opts)
        cluster = args.ctx.cluster_name
        ca_key, ca = self._ca("ca", f"{cluster}-kubernetes-ca")
        etcd_key, etcd_ca = self._ca("etcd-ca", f"{cluster}-etcd-ca")
        proxy_key, proxy_ca = self._ca("front-proxy-ca", f"{cluster}-front-proxy-ca")
        sa_key = tls.PrivateKey("service-account", algorithm="RSA", rsa_bits=2048, opts=self._child())

        admin_key = tls.PrivateKey("admin", algorithm="ECDSA", ecdsa_curve="P256", opts=self._child())
        admin_csr = tls.CertRequest(
            "admin",
            private_key_pem=admin_key.private_key_pem,
            # kubeadm binds this group to cluster-admin (system:masters is break-glass only).
            subject=tls.CertRequestSubjectArgs(common_name=f"{cluster}-admin", organization="kubeadm:cluster-admins"),
            opts=self._child(),
        )
        admin_cert = tls.LocallySignedCert(
            "admin",
            cert_request_pem=admin_csr.cert_request_pem,
            ca_private_key_pem=ca_key.private_key_pem,
            ca_cert_pem=ca.cert_pem,
            validity_period_hours=ONE_YEAR_H,
            early_renewal_hours=ONE_YEAR_H // 12,
            allowed_uses=["client_auth", "digital_signature", "key_encipherment"],
            opts=self._child(),
        )

        # The office nodes' join token: made valid by the first controller's configuration.
        self.join_token = JoinToken(
            "join-token",
            JoinTokenArgs(rotation_hours=24 * args.join_token_rotation_days, description="office nodes"),
            opts=self._child(),
        )
        # 32 random bytes per generation: secretbox's key (components/cluster/encryption.py).
        keys = {
            g: random.RandomBytes(f"secrets-encryption-key-{g}", length=32, opts=self._child())
            for g in args.encryption_key_generations
        }
        self.encryption_key_name = f"key-{args.encryption_key_generations[0]}"

        self.ca_cert_pem = ca.cert_pem
        self.ca_key_pem = ca_key.private_key_pem  # secret: signs the in-cluster TLS certificates
        self.ca_cert_hash = ca_key.public_key_pem.apply(ca_cert_hash)
        self.bootstrap_token = self.join_token.token
        self.kubeconfig = pulumi.Output.secret(
            pulumi.Output.all(ca.cert_pem, admin_cert.cert_pem, admin_key.private_key_pem).apply(
                lambda v: render_kubeconfig(cluster, args.api_endpoint, v[0], v[1], v[2])
            )
        )
        self.controller_pki = ControllerPki(
            files=pulumi.Output.secret(
                pulumi.Output.all(
                    ca.cert_pem,
                    ca_key.private_key_pem,
                    etcd_ca.cert_pem,
                    etcd_key.private_key_pem,
                    proxy_ca.cert_pem,
                    proxy_key.private_key_pem,
                    sa_key.private_key_pem,
                    sa_key.public_key_pem,
                ).apply(
                    lambda v: {
                        "ca.crt": v[0],
                        "ca.key": v[1],
                        "etcd/ca.crt": v[2],
                        "etcd/ca.key": v[3],
                        "front-proxy-ca.crt": v[4],
                        "front-proxy-ca.key": v[5],
                        "sa.key": v[6],
                        "sa.pub": v[7],
                    }
                )
            ),
            encryption_config=pulumi.Output.secret(
                pulumi.Output.all(*(k.base64 for k in keys.values())).apply(
                    lambda secrets: render_encryption_config(
                        [(f"key-{g}", secret) for g, secret in zip(keys, secrets, strict=True)]
                    )
                )
            ),
        )
        self.provider = k8s.Provider(
            "kubernetes",
            kubeconfig=self.kubeconfig,
            # Day 2: the kubeconfig changes whenever the admin certificate is renewed; without a
            # stable identifier pulumi-kubernetes treats that as another cluster and replaces every
            # object it manages, PVCs and Ceph included (provider/pkg/provider/provider.go DiffConfig).
            cluster_identifier=cluster,
            # A changed Secret or ConfigMap updates in place instead of being replaced (delete first,
            # since every one is named): a rotated certificate is not a moment without its Secret.
            enable_secret_mutable=True,
            enable_config_map_mutable=True,
            opts=self._child(),
        )
        self.register_outputs({"caCertHash": self.ca_cert_hash, "kubeconfig": self.kubeconfig})

    def _child(self) -> pulumi.ResourceOptions:
        return pulumi.ResourceOptions(parent=self)

    def _ca(self, name: str, common_name: str) -> tuple[tls.PrivateKey, tls.SelfSignedCert]:
        key = tls.PrivateKey(name, algorithm="RSA", rsa_bits=2048, opts=self._child())
        cert = tls.SelfSignedCert(
            name,
            private_key_pem=key.private_key_pem,
            subject=tls.SelfSignedCertSubjectArgs(common_name=common_name),
            is_ca_certificate=True,
            validity_period_hours=TEN_YEARS_H,
            allowed_uses=CA_USES,
            opts=self._child(),
        )
        return key, cert
