"""Cluster identity: the CAs, service-account keys, kubeadm bootstrap token, the admin
kubeconfig (secret) and the explicit Kubernetes provider every Kubernetes resource uses.

Making the CAs here (as Typhoon does in Terraform) means the join command's CA hash and the
provider's kubeconfig are known without ssh-ing into a controller after `kubeadm init`.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s
import pulumi_random as random
import pulumi_tls as tls

from components.cluster.pki import ca_cert_hash, render_kubeconfig
from components.context import PlatformContext

TEN_YEARS_H = 87600
ONE_YEAR_H = 8760
CA_USES = ["cert_signing", "crl_signing", "digital_signature", "key_encipherment"]


@dataclass(frozen=True)
class ClusterIdentityArgs:
    ctx: PlatformContext
    api_endpoint: str  # https://host:port the kubeconfig and joining nodes use


@dataclass(frozen=True)
class ControllerPki:
    """The files kubeadm expects under /etc/kubernetes/pki, as outputs (keys are secret)."""

    files: pulumi.Output[dict[str, str]]


class ClusterIdentity(pulumi.ComponentResource):
    """CAs, keys and bootstrap token of one Kubernetes cluster."""

    ca_cert_pem: pulumi.Output[str]
    ca_key_pem: pulumi.Output[str]
    ca_cert_hash: pulumi.Output[str]
    bootstrap_token: pulumi.Output[str]
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

        # kubeadm token format: [a-z0-9]{6}.[a-z0-9]{16}; the id is public, the secret is not.
        token_id = random.RandomString("bootstrap-token-id", length=6, special=False, upper=False, opts=self._child())
        token_secret = random.RandomPassword(
            "bootstrap-token-secret", length=16, special=False, upper=False, opts=self._child()
        )

        self.ca_cert_pem = ca.cert_pem
        self.ca_key_pem = ca_key.private_key_pem  # secret: signs the in-cluster TLS certificates
        self.ca_cert_hash = ca_key.public_key_pem.apply(ca_cert_hash)
        self.bootstrap_token = pulumi.Output.secret(pulumi.Output.concat(token_id.result, ".", token_secret.result))
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
            )
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
