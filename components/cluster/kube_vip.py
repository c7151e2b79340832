"""kube-vip: the API server's virtual IP, moved between the controllers.

Why kube-vip and not keepalived (+ haproxy): the office has no load balancer, and kube-vip is the
option kubeadm's HA guide names for a VIP without one (kubernetes/kubeadm docs/ha-considerations.md,
"kube-vip"): one static pod per controller, from /etc/kubernetes/manifests like the API server
itself, so the kubelet keeps it running and `kubeadm upgrade` leaves it alone; no package, no
config file and no health-check script on the host. Leader election on a Lease picks the
controller that holds the address; it answers ARP for it on the office LAN (layer 2, the fanless
switch needs nothing) and sends gratuitous ARP when the address moves. keepalived would need the
same address juggling through VRRP plus a script to follow the API server's health.

The manifest follows what `kube-vip manifest pod --controlplane --arp --leaderElection` writes
(kube-vip docs, "Static Pods"; env names from kube-vip pkg/kubevip/config_envvar.go).
"""

from __future__ import annotations

from typing import Any

from components import yamltext

IMAGE = "ghcr.io/kube-vip/kube-vip:v1.0.4"
MANIFEST = "/etc/kubernetes/manifests/kube-vip.yaml"
# The program writes the manifest here; the bootstrap script installs it (after the init or join).
STAGED = "/etc/akiba/kube-vip.yaml"
ADMIN_CONF = "/etc/kubernetes/admin.conf"
# Kubernetes >= 1.29: during `kubeadm init` admin.conf has no rights yet (its group is bound
# to cluster-admin by the init itself, after it waits on the API through the VIP): the first
# controller's kube-vip reads super-admin.conf until the init is done (kube-vip docs, "Static
# Pods", "kube-vip on Kubernetes 1.29+"; kube-vip issue #684).
SUPER_ADMIN_CONF = "/etc/kubernetes/super-admin.conf"
LEASE = "plndr-cp-lock"  # kube-vip's default name for the control plane's Lease


def manifest(vip: str, port: int, interface: str) -> dict[str, Any]:
    """The static pod: ARP on `interface` (the node's bond), the control plane only (no
    Services of type LoadBalancer), leader election on a Lease in kube-system."""
    env = {
        "vip_arp": "true",
        "port": str(port),
        "vip_interface": interface,
        "vip_subnet": "32",
        "dns_mode": "first",
        "cp_enable": "true",
        "cp_namespace": "kube-system",
        "svc_enable": "false",
        "vip_leaderelection": "true",
        "vip_leasename": LEASE,
        # The address moves about 5 s after its holder stops renewing.
        "vip_leaseduration": "5",
        "vip_renewdeadline": "3",
        "vip_retryperiod": "1",
        "address": vip,
    }
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "kube-vip", "namespace": "kube-system"},
        "spec": {
            "containers": [
                {
                    "name": "kube-vip",
                    "image": IMAGE,
                    "imagePullPolicy": "IfNotPresent",
                    "args": ["manager"],
                    "env": [{"name": k, "value": v} for k, v in env.items()]
                    + [{"name": "vip_nodename", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}}],
                    # Adding the address and sending ARP is all it does on the host.
                    "securityContext": {"capabilities": {"add": ["NET_ADMIN", "NET_RAW"], "drop": ["ALL"]}},
                    "volumeMounts": [{"name": "kubeconfig", "mountPath": ADMIN_CONF, "readOnly": True}],
                }
            ],
            # kube-vip talks to the API server at kubernetes:<port>: this node's own, not the VIP
            # it is about to bring up.
            "hostAliases": [{"ip": "127.0.0.1", "hostnames": ["kubernetes"]}],
            "hostNetwork": True,
            "priorityClassName": "system-node-critical",
            "volumes": [{"name": "kubeconfig", "hostPath": {"path": ADMIN_CONF}}],
        },
    }


def render(vip: str, port: int, interface: str) -> str:
    return yamltext.dump(manifest(vip, port, interface))


def install_lines(first_controller: bool) -> tuple[list[str], list[str]]:
    """Bootstrap-script lines (before, after) the node's `kubeadm init` or `join`. The first
    controller needs its VIP during the init, with super-admin.conf; the others join through
    the VIP the first one holds and start theirs afterwards (kube-vip docs: copy the manifest
    to the other controllers after they join). After that, and at every converge, the staged
    manifest is installed when it differs: the kubelet restarts the static pod by itself."""
    before = [
        "  install -d -m 0755 /etc/kubernetes/manifests",
        f"  sed 's#path: {ADMIN_CONF}#path: {SUPER_ADMIN_CONF}#' {STAGED} > {MANIFEST}",
    ]
    if not first_controller:
        before = []
    after = [
        f"if ! cmp -s {STAGED} {MANIFEST}; then",
        f"  install -D -m 0600 {STAGED} {MANIFEST}",
        "fi",
    ]
    return before, after
