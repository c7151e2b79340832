"""Reads every output of akiba's contract v2 (see README "Outputs for other teams")."""

from __future__ import annotations

import pulumi
import pulumi_kubernetes as k8s

CONTRACT_MAJOR = "2"


def _check_version(version: str) -> str:
    if version != CONTRACT_MAJOR:
        raise pulumi.RunError(f"akiba outputs contract {version}, this program reads {CONTRACT_MAJOR}")
    return version


def main() -> None:
    stack = pulumi.Config().get("akibaStack") or "my-org/akiba/prod"
    akiba = pulumi.StackReference(stack)
    version = akiba.require_output("contractVersion").apply(_check_version)

    # Other teams act on akiba's cluster as akiba-consumer: read-only, no Secrets, no writes.
    # The kubeconfig stays a secret all the way into the provider; akiba renews its
    # certificate, so this program reads it again on every update.
    akiba_cluster = k8s.Provider("akiba", kubeconfig=akiba.require_output("consumerKubeconfig"))
    # What it may do there: read (here, the namespace the cluster's own add-ons run in).
    system = k8s.core.v1.Namespace.get(
        "akiba-kube-system", "kube-system", opts=pulumi.ResourceOptions(provider=akiba_cluster)
    )
    pulumi.export("akibaSystemNamespace", system.metadata.apply(lambda m: m.name if m else None))
    # What it writes goes to this team's own cluster (the default provider), never akiba's.
    k8s.core.v1.ConfigMap(
        "akiba-endpoints",
        metadata={"name": "akiba-endpoints", "namespace": "default"},
        data={
            "apiEndpoint": akiba.require_output("apiEndpoint"),
            "clusterName": akiba.require_output("clusterName"),
            "registryMirror": akiba.require_output("registryMirror"),
            "maasUrl": akiba.require_output("maasUrl"),
            "podCidr": akiba.require_output("podCidr"),
            "serviceCidr": akiba.require_output("serviceCidr"),
            "caCertPem": akiba.require_output("caCertPem"),
        },
    )
    gpus = akiba.require_output("gpusByModel")
    nodes = akiba.require_output("nodes")
    burst = akiba.require_output("burst")
    nfs = akiba.require_output("nfs")
    ceph = akiba.require_output("ceph")
    databases = akiba.require_output("personalDatabases")  # endpoints; passwords stay with each engineer
    engineers = akiba.require_output("engineers")
    pulumi.export("dashboard", akiba.require_output("dashboardUrl"))
    registry = akiba.require_output("registry")
    push_password = akiba.require_output("registryPushPassword")  # stays secret
    pulumi.export("mlImage", registry.apply(lambda r: r["mlRuntimeImage"]))
    pulumi.export("canPush", pulumi.Output.secret(push_password.apply(bool)))
    pulumi.export("vmNames", akiba.require_output("vms").apply(sorted))
    pulumi.export("libvirtKeyKnown", pulumi.Output.secret(akiba.require_output("cephLibvirtKey").apply(bool)))
    pulumi.export("appUrls", akiba.require_output("apps"))
    pulumi.export("homesMount", nfs.apply(lambda n: f"{n['servers'][0]}:{n['export']} (port {n['port']})"))
    pulumi.export("vmPool", ceph.apply(lambda c: c["vmPool"]))
    pulumi.export("databaseHosts", databases.apply(lambda d: {k: v["host"] for k, v in d.items()}))
    pulumi.export("sshPorts", engineers.apply(lambda es: {login: e["sshPort"] for login, e in es.items()}))
    pulumi.export("contractVersion", version)
    pulumi.export("totalGpus", gpus.apply(lambda by_model: sum(by_model.values())))
    pulumi.export("gpuNodes", nodes.apply(lambda ns: sorted(n["hostname"] for n in ns if n["gpuCount"])))
    pulumi.export("burstTypes", burst.apply(lambda b: b["instanceTypes"] if b["enabled"] else []))
