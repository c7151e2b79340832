"""The cluster check: the plan read the way the cluster would run it.

Which node each pod lands on (taints, selectors, GPUs, room, ports), whether that node can pull
its image, whether a container of an image the program builds starts as the user the pod
grants — every problem is a failure of the plan. `make plan` runs it after the artifact
checkers and before the policy gate, prints the placement table and writes it to
build/plan/<stack>/placement.txt (and .json).

Modules: `nodes` (nodes from their user-data), `workloads` (pod templates from manifests),
`charts` (the workloads each pinned chart creates, from the values passed), `addons` (kubeadm's
and Rook's own pods), `scheduler` (kube-scheduler's filters and a placement), `pulls`
(containerd's resolution per node), `start` (image user vs entrypoint), `rules` (the problems),
`report` (the table).
"""

from tools.plan.cluster.rules import Problem, Report, Settings, check

__all__ = ["Problem", "Report", "Settings", "check"]
