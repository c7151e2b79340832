"""pinned-versions: an image is pulled by digest, or by a tag that names a release.

A tag passes when it starts with at least major.minor (`1.37.0`, `v19.2.3`, `17.6-bookworm`,
`3.10`, `2026.11.0`) or a date (`20261101`, `2026-11-01`), and no part of it is a moving
name (`latest`, `main`, `stable`, `nightly`, `3-latest`...). A chart's `image.tag` values
are held to the same rule. No tag, a bare major (`3`,
`v1`) or a branch-like tag fails. A digest (`@sha256:` + 64 hex) passes whatever the tag."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any

from .context import PlanContext
from .k8s import containers, pod_spec
from .model import PlannedResource, PolicyConfig, walk

DIGEST = re.compile(r"@sha256:[0-9a-f]{64}$")
RELEASE_TAG = re.compile(
    r"v?\d+\.\d+(?:[.\-_+][\w.\-+]*)?|\d{8}(?:[.\-_][\w.\-]*)?|\d{4}-\d{2}-\d{2}(?:[.\-_][\w.\-]*)?"
)
MOVING = {"latest", "main", "master", "stable", "edge", "nightly", "dev", "develop", "lts", "rolling", "current"}
MOVING |= {"head", "snapshot", "canary", "next", "unstable", "trunk"}
CHART_VERSION = re.compile(r"v?\d+\.\d+\.\d+([-+][\w.]+)?")


def tag_problem(tag: str) -> str | None:
    """Why an image tag is not a release (None when it is)."""
    if not tag:
        return "has no tag or digest"
    if moving := sorted(MOVING & {p.lower() for p in re.split(r"[.\-_+]", tag)}):
        return f"tag {tag!r} moves ({', '.join(moving)})"
    if not RELEASE_TAG.fullmatch(tag):
        return f"tag {tag!r} is not a release (needs at least major.minor, a date, or a digest)"
    return None


def image_problem(image: Any) -> str | None:
    if not isinstance(image, str) or not image:
        return "has no image"
    if DIGEST.search(image):
        return None
    if "@" in image:
        return "has a digest that is not a full sha256"
    last = image.rsplit("/", 1)[-1]
    return tag_problem(last.split(":", 1)[1] if ":" in last else "")


def _chart_image_tags(values: Any) -> Iterator[tuple[str, Any]]:
    """Image tags a chart's values set (`image.tag`, `operator.image.tag`...)."""
    for path, value in walk(values):
        parts = path.split(".")
        if parts[-1] == "tag" and any("image" in p.lower() for p in parts[:-1]):
            yield path, value


def pinned_versions(res: PlannedResource, _: PolicyConfig, __: PlanContext) -> Iterator[str]:
    for c in containers(pod_spec(res)):
        if problem := image_problem(c.get("image")):
            yield f"container {c.get('name')!r} image {c.get('image')!r} {problem}"
    if res.type.startswith("kubernetes:helm.sh/"):
        version = str(res.props.get("version") or "")
        if not CHART_VERSION.fullmatch(version):
            yield f"Helm chart {res.props.get('chart')!r} version {version!r} is not an exact version"
        values = res.props.get("values")
        for path, tag in _chart_image_tags(values if isinstance(values, Mapping) else {}):
            # An empty tag is the chart's own appVersion, pinned with the chart version.
            if tag not in ("", None) and (problem := tag_problem(str(tag))):
                yield f"Helm value {path}: {problem}"
