"""Where the pinned CRD files come from, and how they are checked.

`crds.sha256` (sha256sum format) pins the three files of the CRD directory. Two of them are
several upstream files joined: each upstream file (they all begin with `---`) followed by a
line `---`, in the order below. That rule and every upstream file's own sha256 were checked
against the upstream git tags: joining the tagged files reproduces the pinned files byte for
byte. `fetch` checks each downloaded upstream file, then each joined file, and writes nothing
unless all of them match; a new directory appears whole or not at all (written beside it, then
renamed). `AKIBA_CRD_MIRROR` replaces the upstream host with a mirror laid out the same way.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

CHECKSUMS = Path(__file__).with_name("crds.sha256")
RAW = "https://raw.githubusercontent.com"
ENV = "AKIBA_CRD_DIR"  # a CRD directory to use as it is (CI sets it)
MIRROR_ENV = "AKIBA_CRD_MIRROR"  # a base URL standing in for RAW (a proxy or an internal mirror)
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


def pins_id(checksums: Path = CHECKSUMS) -> str:
    """A short name for this set of pins: a cache directory per set, so new pins fetch anew."""
    return sha256(checksums.read_bytes())[:16]


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


def what_to_do(dest: Path) -> str:
    return (
        f"where {RAW} is reachable, run `make crds` (python -m tools.plan.crds fetch --dest {dest}); "
        f"behind a proxy or mirror, set {MIRROR_ENV} to a base URL laid out like {RAW}; offline, copy "
        f"a CRD directory fetched elsewhere and `export {ENV}=DIR`"
    )


def download(url: str) -> bytes:
    mirror = os.environ.get(MIRROR_ENV)
    if mirror and url.startswith(RAW + "/"):
        url = mirror.rstrip("/") + url[len(RAW) :]
    with urllib.request.urlopen(url, timeout=60) as response:  # noqa: S310 (the pinned URLs above, or the mirror)
        data: bytes = response.read()
        return data


def fetch(dest: Path, downloader: Downloader | None = None, checksums: Path = CHECKSUMS) -> list[Path]:
    """Download every pinned file; write them all only when every sha256 matches.

    A missing `dest` is made whole in a directory beside it, then renamed into place, so a
    failed or concurrent fetch never leaves a half-filled directory behind."""
    downloader = downloader or download
    pins = pinned(checksums)
    files: dict[str, bytes] = {}
    problems = []
    for source in SOURCES:
        parts = []
        for part in source.parts:
            try:
                parts.append(downloader(part.url))
            except (urllib.error.URLError, OSError) as err:
                reason = getattr(err, "reason", None) or err
                raise FetchError(
                    f"fetch: nothing written; could not download {part.url}: {reason}\n  {what_to_do(dest)}"
                ) from None
        for part, data in zip(source.parts, parts, strict=True):
            if sha256(data) != part.sha256:
                problems.append(f"{part.url}: sha256 {sha256(data)}, expected {part.sha256}")
        files[source.name] = source.join(parts)
        if sha256(files[source.name]) != pins.get(source.name):
            problems.append(f"{source.name}: sha256 {sha256(files[source.name])}, expected {pins.get(source.name)}")
    if problems:
        raise FetchError(
            "fetch: nothing written; checksum mismatch (upstream moved, or something in between changed "
            f"the files; the pins are {checksums.name}):\n  " + "\n  ".join(problems)
        )
    if dest.is_dir():
        return [_replace(dest / name, data) for name, data in files.items()]
    dest.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=dest.parent))
    staging.chmod(0o755)  # mkdtemp's 0700 would become the directory's mode
    try:
        for name, data in files.items():
            (staging / name).write_bytes(data)
        try:
            staging.rename(dest)
        except OSError:
            if not dest.is_dir() or verify(dest, checksums):  # another fetch got there first: fine if whole
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return [dest / name for name in files]


def _replace(path: Path, data: bytes) -> Path:
    tmp = path.with_name(f".{path.name}.part")
    tmp.write_bytes(data)
    os.replace(tmp, path)
    return path
