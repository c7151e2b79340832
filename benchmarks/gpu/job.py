"""The Kubernetes Job that runs the benchmark payload on a node of one GPU model: a pure
function returning the manifest (a dict), for a component to declare and tests to validate.

The pod lands on the model's nodes by the `akiba.io/gpu-model` label, tolerates the GPU taint,
asks for one whole GPU, and appends its JSON lines to `/results/<model>.jsonl` on a shared
volume, so `python -m benchmarks.gpu.report /results/*.jsonl` sees every model.
"""

from __future__ import annotations

import re
from typing import Any

from benchmarks.gpu.names import WORKLOADS, Size, Workload

MODEL_LABEL = "akiba.io/gpu-model"
GPU_RESOURCE = "nvidia.com/gpu"
GPU_TAINT = {"key": "nvidia.com/gpu", "operator": "Equal", "value": "present", "effect": "NoSchedule"}
RESULTS_DIR = "/results"
TMP_DIR = "/tmp"  # noqa: S108  (the pod's own emptyDir, not a shared host /tmp)

_LABEL_VALUE = re.compile(r"^[a-z0-9]([a-z0-9.-]{0,61}[a-z0-9])?$")
_DIGEST = re.compile(r"@sha256:[0-9a-f]{64}$")
_TAG = re.compile(r":([\w][\w.-]{0,127})$")


def _check_image(image: str) -> None:
    # A moving tag would make two runs of "the same" benchmark run different code.
    if _DIGEST.search(image):
        return
    tag = _TAG.search(image.rsplit("/", 1)[-1])
    if tag is None:
        raise ValueError(f"image {image!r} is not pinned: give a tag (repo:1.2.3) or a digest (repo@sha256:...)")
    if tag.group(1) == "latest":
        raise ValueError(f"image {image!r} is pinned to 'latest', which moves: give a version tag or a digest")


def benchmark_job_manifest(
    gpu_model: str,
    image: str,
    namespace: str,
    results_pvc: str,
    labels: dict[str, str],
    *,
    workloads: tuple[Workload, ...] = WORKLOADS,
    size: Size = "standard",
    batch_size: int = 128,
    warmup: int = 10,
    iterations: int = 200,
    # The article's char_cnn.py was CPU-bound: whole cores, the same on every model (2 fit the
    # smallest burst type, g4dn.xlarge: 4 vCPUs, 3 allocatable), so GPUs are compared alike.
    cpu: str = "2",
    memory: str = "8Gi",
    run_as_user: int = 65532,  # the images' unprivileged user (1000 and up belong to engineers)
    backoff_limit: int = 1,  # a benchmark that failed twice will fail a third time
    ttl_seconds_after_finished: int = 7 * 24 * 3600,  # the results live on the volume, not in the Job
    active_deadline_seconds: int = 3600,
) -> dict[str, Any]:
    """A batch/v1 Job running `python -m benchmarks.gpu.run` on one node of `gpu_model`.

    gpu_model: the node label value, e.g. "gtx-1080"; image: a pinned reference to an image with
    this repository's `benchmarks` package and benchmarks/gpu/requirements.txt installed (a CUDA
    12.6 torch build for Maxwell/Pascal cards); results_pvc: a ReadWriteMany claim shared by the
    Jobs of every model (each writes its own file); labels: the platform's labels, added to.
    """
    if not _LABEL_VALUE.match(gpu_model):
        raise ValueError(f"gpu_model {gpu_model!r} is not a valid label value")
    _check_image(image)
    if not workloads or any(w not in WORKLOADS for w in workloads):
        raise ValueError(f"workloads must be some of {WORKLOADS}, got {workloads}")

    name = f"gpu-benchmark-{gpu_model.replace('.', '-')}"
    pod_labels = {**labels, "app.kubernetes.io/name": "gpu-benchmark", MODEL_LABEL: gpu_model}
    amounts = {"cpu": cpu, "memory": memory, GPU_RESOURCE: "1"}
    args = [
        *("--workload", *workloads),
        *("--device", "cuda"),  # not auto: a pod without its GPU must fail, not file a CPU run as the card
        *("--size", size),
        *("--batch-size", str(batch_size)),
        *("--warmup", str(warmup)),
        *("--iterations", str(iterations)),
        *("--gpu-model", gpu_model),  # the payload refuses to run if the card is not this model
        *("--out", f"{RESULTS_DIR}/{gpu_model}.jsonl"),
    ]
    container = {
        "name": "benchmark",
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "command": ["python", "-m", "benchmarks.gpu.run"],
        "args": args,
        "env": [
            {"name": "HOME", "value": TMP_DIR},  # caches go to the writable emptyDir
            {"name": "PYTHONUNBUFFERED", "value": "1"},
            # NVML (libnvidia-ml) is mounted into the container only with the "utility" capability.
            {"name": "NVIDIA_DRIVER_CAPABILITIES", "value": "compute,utility"},
        ],
        "resources": {"requests": dict(amounts), "limits": dict(amounts)},
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "runAsNonRoot": True,
            "capabilities": {"drop": ["ALL"]},
        },
        "volumeMounts": [
            {"name": "results", "mountPath": RESULTS_DIR},
            {"name": "tmp", "mountPath": TMP_DIR},
        ],
    }
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "namespace": namespace, "labels": dict(pod_labels)},
        "spec": {
            "backoffLimit": backoff_limit,
            "ttlSecondsAfterFinished": ttl_seconds_after_finished,
            "activeDeadlineSeconds": active_deadline_seconds,
            "template": {
                "metadata": {"labels": dict(pod_labels)},
                "spec": {
                    "restartPolicy": "Never",
                    "nodeSelector": {MODEL_LABEL: gpu_model},
                    "tolerations": [dict(GPU_TAINT)],
                    "automountServiceAccountToken": False,  # the benchmark never calls the API
                    "enableServiceLinks": False,
                    "securityContext": {
                        "runAsNonRoot": True,
                        "runAsUser": run_as_user,
                        "runAsGroup": run_as_user,
                        "fsGroup": run_as_user,  # so the non-root user can write to the volume
                        "seccompProfile": {"type": "RuntimeDefault"},
                    },
                    "containers": [container],
                    "volumes": [
                        {"name": "results", "persistentVolumeClaim": {"claimName": results_pvc}},
                        {"name": "tmp", "emptyDir": {"sizeLimit": "1Gi"}},
                    ],
                },
            },
        },
    }
