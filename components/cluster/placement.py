"""Where the platform's own pods may run, in one place.

Every office node (PC or VM, controllers included) runs platform services: each has GPUs, and
GPUs are kept for the pods that ask for them by the `nvidia.com/gpu` resource, not by a taint.
Burst nodes are paid by the hour: they carry the GPU taint, so only pods that tolerate it (GPU
work) land there; what must never run there (the home container, the autoscaler that removes
them) also requires an office node.
"""

from __future__ import annotations

from typing import Any

NODE_KIND = "akiba.io/node-kind"
# A VM whose disks are images in this cluster's own Ceph: Ceph's daemons must not run there (a
# mon whose store sits on the Ceph it serves stalls with it, and after a power cut the VM cannot
# boot until Ceph has quorum). dev's VMs boot from prod's Ceph, not dev's: they do not carry it.
BOOTS_FROM_CLUSTER_CEPH = "akiba.io/boots-from-cluster-ceph"
NOT_ON_CEPH_BACKED_VMS: dict[str, Any] = {
    "requiredDuringSchedulingIgnoredDuringExecution": {
        "nodeSelectorTerms": [{"matchExpressions": [{"key": BOOTS_FROM_CLUSTER_CEPH, "operator": "DoesNotExist"}]}]
    }
}
OFFICE_NODE_KINDS = ["baremetal", "vm"]  # `akiba.io/node-kind` of the office's own nodes
ON_OFFICE_NODES: dict[str, Any] = {
    "nodeAffinity": {
        "requiredDuringSchedulingIgnoredDuringExecution": {
            "nodeSelectorTerms": [
                {"matchExpressions": [{"key": NODE_KIND, "operator": "In", "values": OFFICE_NODE_KINDS}]}
            ]
        }
    }
}
