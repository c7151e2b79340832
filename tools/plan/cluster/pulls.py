"""Can the node that runs a pod pull its images? containerd's resolution, per node.

For an image `<namespace>/<repo>:<tag>` containerd reads `certs.d/<namespace>/hosts.toml`, tries
each `[host."<url>"]` that may pull, in order, then the `server` (without the file: the namespace
itself, `registry-1.docker.io` for docker.io). An endpoint on the platform's own registry works
only if its name resolves on that node, the node trusts its CA (the cluster CA, by the entry's
`ca`) and the request carries credentials (the entry's `Authorization` header; a pod's
`imagePullSecrets` count for the `server` only). Public registries are reached over the internet
with the system trust store. An image is pullable if some endpoint works; a cache of the platform
that is configured but cannot work is a problem too: containerd silently falls back to upstream,
and the cache (the point of the registry) is never used.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from tools.plan.cluster.model import HostEntry, Node

DOCKER_HUB = "docker.io"
DEFAULT_CAPABILITIES = ("pull", "resolve", "push")


@dataclass(frozen=True)
class PlatformRegistry:
    """A registry the platform serves itself (not on the internet)."""

    host: str  # host:port, the image namespace, e.g. registry.akiba.lan:30443
    requires_auth: bool
    ca_files: frozenset[str]  # CA bundles on a node that verify its certificate

    @property
    def name(self) -> str:
        return self.host.rsplit(":", 1)[0] if ":" in self.host else self.host


def namespace_of(image: str) -> str:
    """The registry namespace of an image reference (Docker's normalization)."""
    first, sep, _ = image.partition("/")
    if not sep or ("." not in first and ":" not in first and first != "localhost"):
        return DOCKER_HUB
    return first


def repository_of(image: str) -> str:
    """`namespace/path` without tag or digest."""
    ref = image.split("@", 1)[0]
    last = ref.rsplit("/", 1)
    if ":" in last[-1]:
        ref = ref[: ref.rfind(":")]
    if namespace_of(image) == DOCKER_HUB and not ref.startswith(DOCKER_HUB + "/"):
        ref = f"{DOCKER_HUB}/{ref if '/' in ref else 'library/' + ref}"
    return ref


def _server(namespace: str) -> str:
    return "https://registry-1.docker.io" if namespace == DOCKER_HUB else f"https://{namespace}"


def endpoints(node: Node, namespace: str) -> list[tuple[HostEntry, bool]]:
    """(endpoint, is the server) in the order containerd tries them."""
    hosts = node.registries.get(namespace)
    if hosts is None:
        return [(HostEntry(_server(namespace), DEFAULT_CAPABILITIES, (), {}), True)]
    mirrors = [(h, False) for h in hosts.hosts if "pull" in h.capabilities]
    return [*mirrors, (hosts.server, True)]


def endpoint_problem(
    node: Node,
    entry: HostEntry,
    platform: Mapping[str, PlatformRegistry],
    addresses: frozenset[str],
    has_pull_secret: bool,
) -> str | None:
    """Why containerd on this node cannot use this endpoint; None if it can."""
    host = urlsplit(entry.url).netloc
    registry = platform.get(host)
    if registry is None:
        return None  # a public registry: internet, public DNS, the system trust store
    where = node.etc_hosts.get(registry.name)
    if where is None:
        return f"{registry.name} does not resolve on the node (no /etc/hosts entry, no DNS record)"
    if where != node.address and where not in addresses:
        return f"{registry.name} resolves to {where}, which is no node (the ingress NodePort listens on the nodes)"
    if not set(entry.ca) & registry.ca_files:
        return f"containerd does not trust {host}'s certificate (no `ca` naming the cluster CA)"
    if not set(entry.ca) <= node.files:
        return f"the CA file {', '.join(sorted(set(entry.ca) - node.files))} is not on the node"
    authorized = any(k.lower() == "authorization" for k in entry.headers)
    if registry.requires_auth and not authorized and not has_pull_secret:
        return f"no credentials for {host} (no Authorization header in hosts.toml, no imagePullSecrets)"
    return None


@dataclass(frozen=True)
class PullResult:
    source: str | None  # the endpoint the image comes from; None: it cannot be pulled
    problems: tuple[str, ...]  # why endpoints before it (or all of them) fail


def pull(
    node: Node,
    image: str,
    platform: Mapping[str, PlatformRegistry],
    addresses: frozenset[str],
    pull_secret_hosts: frozenset[str] = frozenset(),
) -> PullResult:
    namespace = namespace_of(image)
    problems: list[str] = []
    for entry, is_server in endpoints(node, namespace):
        secret = is_server and urlsplit(entry.url).netloc in pull_secret_hosts
        problem = endpoint_problem(node, entry, platform, addresses, secret)
        if problem is None:
            return PullResult(entry.url, tuple(problems))
        problems.append(f"{entry.url}: {problem}")
    return PullResult(None, tuple(problems))
