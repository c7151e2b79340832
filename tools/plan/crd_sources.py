"""Where the pinned CRD files come from, and how they are checked.

`crds.sha256` (sha256sum format) pins the three files of the CRD directory. Two of them are
several upstream files joined: each upstream file (they all begin with `---`) followed by a
line `---`, in the order below. That rule and every upstream file's own sha256 were checked
against the upstream git tags: joining the tagged files reproduces the pinned files byte for
byte. `fetch` checks each downloaded upstream file, then each joined file, and writes nothing
unless all of them match.
"""

from __future__ import annotations

import hashlib
import os
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

CHECKSUMS = Path(__file__).with_name("crds.sha256")
RAW = "https://raw.githubusercontent.com"
SEPARATOR = b"---\n"

Downloader = Callable[[str], bytes]


@dataclass(frozen=True)
class Part:
    url: str
    sha256: str


@dataclass(frozen=True)
class Source:
    name: str
    parts: tuple[Part, ...]
    separator: bytes = b""  # after each part

    def join(self, parts: list[bytes]) -> bytes:
        return b"".join(part + self.separator for part in parts)


_SNAPSHOTTER = f"{RAW}/kubernetes-csi/external-snapshotter/v8.6.0/client/config/crd/snapshot.storage.k8s.io_"
_PROMETHEUS = (
    f"{RAW}/prometheus-operator/prometheus-operator/v0.93.0/example/prometheus-operator-crd/monitoring.coreos.com_"
)
SOURCES = (
    Source(
        "rook-ceph-v1.20.6.crds.yaml",
        (
            Part(
                f"{RAW}/rook/rook/v1.20.6/deploy/examples/crds.yaml",
                "7fa7462d44b35d636703a03a88120030692a06a05ac91ec253200cb4ae8c37cf",
            ),
        ),
    ),
    Source(
        "external-snapshotter-v8.6.0.crds.yaml",
        (
            Part(
                f"{_SNAPSHOTTER}volumesnapshotclasses.yaml",
                "75e6565aac2c0f2949ed13ea884bbaa388cb7be576b558b709cf1168e011828d",
            ),
            Part(
                f"{_SNAPSHOTTER}volumesnapshotcontents.yaml",
                "895a3c1e73b60f06a0deb566dd123d01bdf1b2efc5d5ff5231ff8bbcf42dafc7",
            ),
            Part(
                f"{_SNAPSHOTTER}volumesnapshots.yaml",
                "b032116e987fb1d7d93cec7d942833adeb9d95c9bdc7e00c10b280c2fe4a6c33",
            ),
        ),
        SEPARATOR,
    ),
    Source(
        "prometheus-operator-v0.93.0.crds.yaml",
        (
            Part(
                f"{_PROMETHEUS}servicemonitors.yaml", "a99047972c9dd7679ce2050b9968e8a08773492e671b3e17abd476d42aa78a32"
            ),
            Part(f"{_PROMETHEUS}podmonitors.yaml", "45a93443daa687d3654f7e9631909ff7edcdf3ec09c5e60251b74aa2722aee5d"),
            Part(
                f"{_PROMETHEUS}prometheusrules.yaml", "78be98554b9c8506ab2b4f4feb91c5f3a56e536a0a510f3a8e876a459970d56d"
            ),
        ),
        SEPARATOR,
    ),
)


class FetchError(Exception):
    pass


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def pinned(checksums: Path = CHECKSUMS) -> dict[str, str]:
    """File name -> sha256, from a `sha256sum` file."""
    pins = {}
    for line in checksums.read_text().splitlines():
        if line.strip():
            digest, name = line.split(maxsplit=1)
            pins[name.lstrip("*")] = digest
    return pins


def verify(crd_dir: Path, checksums: Path = CHECKSUMS) -> list[str]:
    """One line per pinned file that is missing or differs; empty when the directory matches."""
    problems = []
    for name, digest in pinned(checksums).items():
        path = crd_dir / name
        if not path.is_file():
            problems.append(f"{path}: missing (python -m tools.plan.crds fetch --dest {crd_dir})")
        elif (found := sha256(path.read_bytes())) != digest:
            problems.append(f"{path}: sha256 {found}, expected {digest} ({checksums.name})")
    return problems


def download(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=60) as response:  # noqa: S310 (fixed https URLs above)
        data: bytes = response.read()
        return data


def fetch(dest: Path, downloader: Downloader | None = None, checksums: Path = CHECKSUMS) -> list[Path]:
    """Download every pinned file; write them all only when every sha256 matches."""
    downloader = downloader or download
    pins = pinned(checksums)
    files: dict[str, bytes] = {}
    problems = []
    for source in SOURCES:
        parts = [downloader(part.url) for part in source.parts]
        for part, data in zip(source.parts, parts, strict=True):
            if sha256(data) != part.sha256:
                problems.append(f"{part.url}: sha256 {sha256(data)}, expected {part.sha256}")
        files[source.name] = source.join(parts)
        if sha256(files[source.name]) != pins.get(source.name):
            problems.append(f"{source.name}: sha256 {sha256(files[source.name])}, expected {pins.get(source.name)}")
    if problems:
        raise FetchError("fetch: nothing written; checksum mismatch:\n  " + "\n  ".join(problems))
    dest.mkdir(parents=True, exist_ok=True)
    written = []
    for name, data in files.items():
        tmp = dest / f".{name}.part"
        tmp.write_bytes(data)
        os.replace(tmp, dest / name)
        written.append(dest / name)
    return written
