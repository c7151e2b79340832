"""The private registry's configuration (CNCF distribution): pure renderers, no Pulumi resources.

The format is distribution's `version: 0.1`, read alike by the `registry:2.8.3` image, Debian
12's `docker-registry` (2.8.2, the tests' real server) and distribution 3.x. Both parsers
ignore unknown keys silently, so a misspelt key is no error: the tests start a real registry
and check behaviour, not the text.

One config per instance, and two kinds of instance:

- the **private** registry: engineers push their images (the ML runtime image, experiments);
  deletes are on so `registry garbage-collect` can reclaim space;
- a **pull-through cache per upstream** (docker.io, nvcr.io, ...): distribution proxies exactly
  one remote per instance and refuses pushes in that mode. Each cache is served under its own
  path prefix `/<upstream>/`, so one address fronts them all: containerd's
  `hosts.toml` entry `[host."https://<mirror>/<upstream>"]` (without `override_path`) requests
  `/<upstream>/v2/...`, which a path-routing ingress hands to that instance as is.

Every instance authenticates with htpasswd (bcrypt is the only hash distribution accepts) and
serves TLS only.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

import bcrypt

from components import yamltext

# Go's bcrypt.DefaultCost. distribution checks the hash on every request (an image pull is
# dozens), so a higher cost slows every pull for little gain against a long random password.
BCRYPT_COST = 10

_HOSTPORT = re.compile(r"^(\[[0-9a-fA-F:]+\]|[A-Za-z0-9.-]*):\d{1,5}$")
_PREFIX = re.compile(r"^/[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)*/$")


def upstream_url(upstream: str) -> str:
    """The registry API endpoint of an upstream named as in image references."""
    # Docker Hub's API is not served at docker.io itself.
    return "https://registry-1.docker.io" if upstream == "docker.io" else f"https://{upstream}"


def cache_prefix(upstream: str) -> str:
    """The path prefix of an upstream's pull-through cache, e.g. "/docker.io/"."""
    return f"/{upstream}/"


def htpasswd_line(user: str, password: str) -> str:
    """One `user:bcrypt-hash` line for distribution's htpasswd file."""
    if not user or set(user) & {":", "\n", "\r"} or user != user.strip():
        raise ValueError(f"htpasswd user {user!r}: must be non-empty, without ':', spaces at the ends or line breaks")
    secret = password.encode()
    # bcrypt reads 72 bytes at most; bcrypt 5 refuses longer input rather than cut it silently.
    if not secret or len(secret) > 72:
        raise ValueError("htpasswd password: must be 1..72 bytes")
    hashed = bcrypt.hashpw(secret, bcrypt.gensalt(rounds=BCRYPT_COST)).decode()
    return f"{user}:{hashed}\n"


def _problems(
    storage_root: str,
    http_addr: str,
    paths: dict[str, str],
    proxy_remote: str | None,
    http_prefix: str | None,
    proxy_credentials: tuple[str | None, str | None],
    debug_addr: str | None,
) -> list[str]:
    problems = [f"{label} {p!r}: must be an absolute path" for label, p in paths.items() if not p.startswith("/")]
    if not storage_root.startswith("/"):
        problems.append(f"storage_root {storage_root!r}: must be an absolute path")
    for label, addr in (("http_addr", http_addr), ("debug_addr", debug_addr)):
        if addr is not None and not _HOSTPORT.match(addr):
            problems.append(f"{label} {addr!r}: must be host:port")
    if proxy_remote is not None:
        url = urlsplit(proxy_remote)
        if url.scheme != "https" or not url.hostname or url.path not in ("", "/"):
            problems.append(f"proxy_remote {proxy_remote!r}: must be https://host[:port]")
    elif any(proxy_credentials):
        problems.append("proxy credentials without proxy_remote")
    if (proxy_credentials[0] is None) != (proxy_credentials[1] is None):
        problems.append("proxy_username and proxy_password go together")
    if http_prefix is not None and not _PREFIX.match(http_prefix):
        problems.append(f"http_prefix {http_prefix!r}: must look like /name/")
    return problems


def render_registry_config(
    storage_root: str,
    http_addr: str,
    htpasswd_path: str,
    tls_cert: str,
    tls_key: str,
    proxy_remote: str | None,
    *,
    http_prefix: str | None = None,
    proxy_username: str | None = None,
    proxy_password: str | None = None,
    debug_addr: str | None = None,
    http_secret: str | None = None,
    realm: str = "akiba-registry",
) -> str:
    """distribution's config.yml for one instance.

    storage_root: the filesystem driver's root (a PVC), e.g. /var/lib/registry;
    http_addr: listen address, e.g. ":5000"; htpasswd_path: bcrypt htpasswd file (it must
    exist: distribution creates a missing one with a random user it only logs);
    tls_cert/tls_key: PEM paths; proxy_remote: the upstream of a pull-through cache (see
    upstream_url), None for the private registry; http_prefix: serve under /name/ (a cache
    per upstream, see cache_prefix); proxy_username/password: upstream credentials (Docker
    Hub's pull limits are per account); debug_addr: health (/debug/health) and Prometheus
    (/metrics) listener, keep it off the Service, e.g. "127.0.0.1:5001" plus a probe port;
    http_secret: signs upload state, the same on every replica behind one Service.
    """
    problems = _problems(
        storage_root,
        http_addr,
        {"htpasswd_path": htpasswd_path, "tls_cert": tls_cert, "tls_key": tls_key},
        proxy_remote,
        http_prefix,
        (proxy_username, proxy_password),
        debug_addr,
    )
    if problems:
        raise ValueError("invalid registry config:\n  " + "\n  ".join(problems))

    http: dict[str, object] = {"addr": http_addr}
    if http_prefix is not None:
        http["prefix"] = http_prefix
    if http_secret is not None:
        http["secret"] = http_secret
    http["tls"] = {"certificate": tls_cert, "key": tls_key, "minimumtls": "tls1.2"}
    http["headers"] = {"X-Content-Type-Options": ["nosniff"]}
    if debug_addr is not None:
        http["debug"] = {"addr": debug_addr, "prometheus": {"enabled": True, "path": "/metrics"}}

    config: dict[str, object] = {
        "version": 0.1,
        "log": {"level": "info", "fields": {"service": "registry"}},
        "storage": {
            "filesystem": {"rootdirectory": storage_root},
            "cache": {"blobdescriptor": "inmemory"},
            # A cache expires what it pulled by itself; deletes serve the private registry's GC.
            "delete": {"enabled": proxy_remote is None},
        },
        "http": http,
        "auth": {"htpasswd": {"realm": realm, "path": htpasswd_path}},
        # The storage check only: a cache whose upstream is down still serves what it holds,
        # so an upstream check would restart healthy pods during an internet outage.
        "health": {"storagedriver": {"enabled": True, "interval": "10s", "threshold": 3}},
    }
    if proxy_remote is not None:
        proxy: dict[str, str] = {"remoteurl": proxy_remote}
        if proxy_username is not None and proxy_password is not None:
            proxy |= {"username": proxy_username, "password": proxy_password}
        config["proxy"] = proxy
    return yamltext.dump(config)
