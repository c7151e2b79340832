"""A client certificate signed by the cluster CA, and the kubeconfig that carries it.

The API server takes the certificate's CN as the user name and its O entries as groups. These
certificates have a CN and no O: every grant is bound to the user by name, so deleting an
engineer's bindings revokes everything they had (a group could be granted elsewhere).
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_tls as tls

from components.cluster.pki import render_kubeconfig

# A `pulumi up` this close to the end of a certificate's life replaces it with a fresh one.
RENEW_BEFORE_HOURS = 7 * 24
CLIENT_USES = ["client_auth", "digital_signature"]


@dataclass(frozen=True)
class ClusterAccess:
    """What every kubeconfig of the cluster carries, and the CA that signs its certificates."""

    cluster_name: str
    api_endpoint: str  # https://host:6443
    ca_cert_pem: pulumi.Input[str]
    ca_key_pem: pulumi.Input[str]  # secret
    certificate_days: int  # validity of each client certificate


def client_kubeconfig(
    name: str, user: str, namespace: str | None, access: ClusterAccess, parent: pulumi.Resource
) -> pulumi.Output[str]:
    """A key, a certificate for `user` (CN, no O) and the kubeconfig with both (secret)."""
    opts = pulumi.ResourceOptions(parent=parent)
    key = tls.PrivateKey(name, algorithm="ECDSA", ecdsa_curve="P256", opts=opts)
    csr = tls.CertRequest(
        name,
        private_key_pem=key.private_key_pem,
        subject=tls.CertRequestSubjectArgs(common_name=user),
        opts=opts,
    )
    cert = tls.LocallySignedCert(
        name,
        cert_request_pem=csr.cert_request_pem,
        ca_private_key_pem=access.ca_key_pem,
        ca_cert_pem=access.ca_cert_pem,
        validity_period_hours=access.certificate_days * 24,
        # pulumi-tls never renews on its own: once a `pulumi up` (or preview) runs within these
        # hours of the end, the provider reports the certificate ready_for_renewal and that up
        # replaces it, same key, new dates. Without an up in that window it simply expires, so
        # run `pulumi up` at least weekly. The old certificate stays valid until its own end
        # (client certificates cannot be revoked): what revokes access is removing the bindings.
        early_renewal_hours=RENEW_BEFORE_HOURS,
        allowed_uses=CLIENT_USES,
        opts=opts,
    )
    return pulumi.Output.secret(
        pulumi.Output.all(access.ca_cert_pem, cert.cert_pem, key.private_key_pem).apply(
            lambda v: render_kubeconfig(
                access.cluster_name, access.api_endpoint, v[0], v[1], v[2], user=user, namespace=namespace
            )
        )
    )
