"""The GPU benchmark as Kubernetes Jobs: one per GPU model present (the article's charts:
speed, energy and cost per model), results appended to a shared volume on Ceph, and
`make gpu-report` turns them into the charts. The Job manifest itself is built by
`benchmarks.gpu.job`, next to the payload it runs."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from functools import partial
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from benchmarks.gpu.job import benchmark_job_manifest
from benchmarks.gpu.names import Size
from components.cluster.priorities import BATCH, RETRY_DISRUPTED
from components.context import PlatformContext

RESULTS_PVC = "gpu-benchmark-results"


def _job_spec(model: str, image: str, *, labels: dict[str, str], size: Size) -> dict[str, Any]:
    spec: dict[str, Any] = benchmark_job_manifest(model, image, "__namespace__", RESULTS_PVC, labels, size=size)["spec"]
    # Batch work: an interactive pod that needs the GPU preempts it, and the retry is free.
    spec["template"]["spec"]["priorityClassName"] = BATCH
    spec["podFailurePolicy"] = copy.deepcopy(RETRY_DISRUPTED)
    return spec


@dataclass(frozen=True)
class GpuBenchmarkArgs:
    ctx: PlatformContext
    provider: k8s.Provider
    namespace: pulumi.Input[str]
    image: pulumi.Input[str]  # the benchmark image the program builds, by digest
    gpu_models: tuple[str, ...]  # node label values: one Job each
    storage_class: str  # ReadWriteMany (CephFS)
    results_size: str
    size: Size
    after: tuple[pulumi.Resource, ...] = ()  # the PriorityClasses its pods name


class GpuBenchmark(pulumi.ComponentResource):
    def __init__(self, name: str, args: GpuBenchmarkArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("akiba:benchmark:GpuBenchmark", name, None, opts)
        on_cluster = pulumi.ResourceOptions(parent=self, provider=args.provider)
        results = k8s.core.v1.PersistentVolumeClaim(
            RESULTS_PVC,
            metadata={"name": RESULTS_PVC, "namespace": args.namespace, "labels": args.ctx.labels},
            spec={
                "accessModes": ["ReadWriteMany"],  # every model's Job appends its own file
                "storageClassName": args.storage_class,
                "resources": {"requests": {"storage": args.results_size}},
            },
            # Measurements are data: protected in prod, kept if the program stops declaring them.
            opts=args.ctx.stateful(self, provider=args.provider),
        )
        self.jobs: dict[str, k8s.batch.v1.Job] = {}
        image = pulumi.Output.from_input(args.image)
        for model in args.gpu_models:
            # The name and labels do not depend on the image: only the spec waits for its digest.
            manifest = benchmark_job_manifest(
                model, "registry.invalid/placeholder:0", "__namespace__", RESULTS_PVC, args.ctx.labels, size=args.size
            )
            metadata = {**manifest["metadata"], "namespace": args.namespace}
            self.jobs[model] = k8s.batch.v1.Job(
                manifest["metadata"]["name"],
                metadata=metadata,
                spec=image.apply(partial(_job_spec, model, labels=args.ctx.labels, size=args.size)),
                opts=pulumi.ResourceOptions.merge(
                    on_cluster, pulumi.ResourceOptions(depends_on=[results, *args.after])
                ),
            )
        self.register_outputs({"resultsClaim": results.metadata.name})
