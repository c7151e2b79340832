"""The article's second headline: the private registry cut a 10 GB image pull from 70 to 5 minutes.

`python -m benchmarks.pull_bench` (as root: it makes a network namespace) starts two real
registries, Debian's docker-registry (CNCF distribution 2.8), in a temporary directory removed at
the end:

    upstream  stands in for Docker Hub: anonymous, TLS from a throwaway CA (openssl), inside a
              network namespace the bench creates and removes; its only way out is a veth pair
              shaped with tbf, both ways, to an office internet line (default 20 Mbit/s: the
              seed's 10 GB in 70 min is ~19 Mbit/s);
    cache     the project's pull-through cache on loopback: config from render_registry_config
              (proxy to the upstream, served under /docker.io/, htpasswd, TLS from the same CA),
              trusting the CA through SSL_CERT_FILE.

It pushes a generated image into the upstream before the line is shaped (random, incompressible
uncompressed tar layers; 96 MiB in 4 layers by default), then pulls it as containerd does: with
the hosts.toml the project's bootstrap renders for docker.io (mirror first, then the server; /v2
after each host's path unless override_path; the host's CA and headers), HEAD then GET of the
manifest, every blob 3 at a time (containerd's default) and each checked against its sha256. The
client discards what it reads: no content store, no unpacking.

    cold  an empty cache (a fresh storage directory and a restarted cache each run): every blob
          crosses the line, twice: distribution 2.8 streams a blob it lacks to the client and
          downloads it again to store it, both at once (the cluster's registry:3.0.0 stores what
          it streams, one download, so its cold pull takes about half); median of 3;
    warm  the same pull from the cache the last cold run filled; median of 5. Each request pays
          the cache's htpasswd check (bcrypt), and the tag is still looked up upstream.

The default size keeps the run near 5 minutes at 20 Mbit/s (each cold pull moves twice the image
over the line); `--size-mib 256` takes about 12.

Reported: the image's exact size, the line rate, both medians and throughputs, the ratio
cold/warm, the bytes that crossed the line, and the seed's 10 GB extrapolated at this line rate
next to its 70 -> 5 minutes. Target: cold/warm >= 14 (the seed's 70/5). The figures also go to
build/bench/pull.json as one JSON line.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import http.client
import io
import json
import os
import secrets
import shutil
import socket
import ssl
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
import tomllib
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlencode, urljoin, urlsplit

from components.cluster.bootstrap import CERTS_D, PKI_DIR, _containerd_files
from components.registry.config import cache_prefix, htpasswd_line, render_registry_config
from tests.servers import free_port, stop

MiB = 1 << 20
UPSTREAM = "docker.io"
REPO, TAG = "akiba/pull-bench", "1"
MIRROR_HOST = "registry.akiba.lan"  # the prod stack's mirror name; the client resolves it to loopback
SEED_BYTES = 10 * 10**9  # the article's "10GB"
SEED_DIRECT_MIN, SEED_CACHED_MIN = 70, 5
TARGET_RATIO = SEED_DIRECT_MIN / SEED_CACHED_MIN
CONCURRENT_DOWNLOADS = 3  # containerd's max_concurrent_downloads default
CHUNK = MiB
# A private /30 for the veth pair: the root namespace's end, then the upstream's.
HOST_IP, NS_IP, PREFIX_LEN = "10.254.77.1", "10.254.77.2", 30
UPSTREAM_PORT = 5000

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
MANIFEST_TYPES = (
    OCI_MANIFEST,
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
)
TOOLS = {"ip": "iproute2", "tc": "iproute2", "docker-registry": "docker-registry", "openssl": "openssl"}


Response = http.client.HTTPResponse
T = TypeVar("T")


class PullError(RuntimeError):
    pass


# --- containerd's hosts.toml rules ------------------------------------------------------------


@dataclass(frozen=True)
class RegistryHost:
    """One endpoint of a hosts.toml, as containerd's config.ConfigureHosts makes it."""

    scheme: str
    host: str  # host[:port]
    path: str  # the API root, e.g. /docker.io/v2
    capabilities: frozenset[str]
    ca: tuple[str, ...] = ()
    skip_verify: bool = False
    headers: tuple[tuple[str, str], ...] = ()


def _join(*parts: str) -> str:
    """Go's path.Join for paths without dot segments: one leading slash, no empty segments."""
    return "/" + "/".join(seg for part in parts for seg in part.split("/") if seg)


def _strings(value: object, key: str) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return list(value)
    raise ValueError(f"hosts.toml: {key} must be a string or a list of strings")


def _host(url: str, table: Mapping[str, Any], base_dir: str) -> RegistryHost:
    if not url.startswith("http"):
        url = "https://" + url
    parts = urlsplit(url)
    path = _join(parts.path) if parts.path else ""
    if not table.get("override_path", False) and not path.endswith("/v2"):
        path += "/v2"
    caps = frozenset(c.lower() for c in table.get("capabilities", ())) or frozenset({"pull", "resolve", "push"})
    if caps - {"pull", "resolve", "push"}:
        raise ValueError(f"hosts.toml: unknown capability in {sorted(caps)}")
    ca = tuple(os.path.join(base_dir, p) for p in _strings(table.get("ca", []), "ca"))
    headers = tuple((k, v) for k, vs in table.get("header", {}).items() for v in _strings(vs, f"header {k}"))
    return RegistryHost(parts.scheme, parts.netloc, path, caps, ca, bool(table.get("skip_verify", False)), headers)


def default_server(namespace: str) -> str:
    return "https://registry-1.docker.io" if namespace == "docker.io" else f"https://{namespace}"


def parse_hosts_toml(text: str, namespace: str, base_dir: str = "/") -> list[RegistryHost]:
    """The hosts in containerd's order: every [host."..."] as written, then `server` (the default
    endpoint of the namespace when absent). A relative `ca` is relative to the hosts.toml's folder."""
    doc = tomllib.loads(text)
    hosts = [_host(url, table, base_dir) for url, table in doc.get("host", {}).items()]
    return [*hosts, _host(doc.get("server") or default_server(namespace), doc, base_dir)]


def is_proxy(host: str, namespace: str) -> bool:
    """containerd names the registry a mirror stands in for with ?ns=<namespace>."""
    return host != namespace and not (namespace == "docker.io" and host == "registry-1.docker.io")


def request_url(host: RegistryHost, namespace: str, repo: str, *parts: str) -> str:
    url = f"{host.scheme}://{host.host}{_join(host.path, repo, *parts)}"
    return url + "?" + urlencode({"ns": namespace}) if is_proxy(host.host, namespace) else url


def image_ref(ref: str) -> tuple[str, str, str]:
    """docker.io/<repo>:<tag> -> (namespace, repo, tag), with docker.io's library/ for one-part names."""
    namespace, _, rest = ref.partition("/")
    repo, _, tag = rest.rpartition(":")
    if not namespace or not repo or not tag or "@" in ref:
        raise ValueError(f"{ref!r}: expected <registry>/<repo>:<tag>")
    if namespace == "docker.io" and "/" not in repo:
        repo = f"library/{repo}"
    return namespace, repo, tag


# --- HTTP with a hosts-file override ----------------------------------------------------------


class _Plain(http.client.HTTPConnection):
    def __init__(self, host: str, address: str, timeout: float) -> None:
        super().__init__(host, timeout=timeout)
        self.address = address

    def connect(self) -> None:
        self.sock = socket.create_connection((self.address, self.port), self.timeout)


class _Tls(http.client.HTTPSConnection):
    """Connects to `address`; TLS still checks the certificate against the URL's host name."""

    def __init__(self, host: str, address: str, context: ssl.SSLContext, timeout: float) -> None:
        super().__init__(host, timeout=timeout, context=context)
        self.address, self.tls = address, context

    def connect(self) -> None:
        sock = socket.create_connection((self.address, self.port), self.timeout)
        self.sock = self.tls.wrap_socket(sock, server_hostname=self.host)


def tls_context(ca: Sequence[str | Path], skip_verify: bool = False) -> ssl.SSLContext:
    context = ssl.create_default_context()
    for path in ca:
        context.load_verify_locations(cafile=str(path))
    if skip_verify:
        context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    return context


@dataclass(frozen=True)
class Http:
    resolve: Mapping[str, str] = field(default_factory=dict)  # host name -> address (an /etc/hosts)
    timeout: float = 60

    def open(
        self,
        method: str,
        url: str,
        headers: Sequence[tuple[str, str]] = (),
        body: bytes | None = None,
        context: ssl.SSLContext | None = None,
    ) -> Response:
        """Sends one request on a new connection (closed with the response); the caller reads it."""
        parts = urlsplit(url)
        name = parts.hostname or ""
        address = self.resolve.get(name, name)
        conn: http.client.HTTPConnection
        if parts.scheme == "https":
            conn = _Tls(parts.netloc, address, context or tls_context(()), self.timeout)
        else:
            conn = _Plain(parts.netloc, address, self.timeout)
        conn.putrequest(method, parts.path + (f"?{parts.query}" if parts.query else ""), skip_accept_encoding=True)
        length = [("Content-Length", str(len(body)))] if body is not None else []
        for key, value in [("Connection", "close"), *headers, *length]:
            conn.putheader(key, value)
        conn.endheaders(body)
        return conn.getresponse()

    def call(self, method: str, url: str, *, expect: int, **kw: Any) -> Response:
        with self.open(method, url, **kw) as resp:
            resp.read()
        if resp.status != expect:
            raise PullError(f"{method} {url}: {resp.status} {resp.reason}")
        return resp


# --- the pull client --------------------------------------------------------------------------


@dataclass
class Pulled:
    seconds: float
    bytes: int
    hosts: list[str]  # the host that answered each request


def _digest(data: bytes) -> str:
    return f"sha256:{hashlib.sha256(data).hexdigest()}"


class Client:
    """Pulls one image by containerd's rules: each request goes to the capable hosts in order and
    falls through on a connection error or an HTTP error status; every byte is checked by digest."""

    def __init__(self, hosts: Sequence[RegistryHost], namespace: str, http: Http) -> None:
        self.hosts, self.namespace, self.http = list(hosts), namespace, http
        self.contexts = {h: tls_context(h.ca, h.skip_verify) for h in self.hosts if h.scheme == "https"}

    def _first(
        self, capability: str, repo: str, parts: Sequence[str], method: str, accept: str, read: Callable[[Response], T]
    ) -> tuple[RegistryHost, T]:
        """The first capable host's answer, in order; the next host on a connection error or a
        status >= 400 (containerd's resolver and fetcher alike); a 3xx stops the pull."""
        errors = []
        for host in (h for h in self.hosts if capability in h.capabilities):
            url = request_url(host, self.namespace, repo, *parts)
            headers = [("Accept", accept), *host.headers]
            try:
                with self.http.open(method, url, headers, context=self.contexts.get(host)) as resp:
                    if resp.status < 300:
                        return host, read(resp)
                    resp.read()
            except (OSError, http.client.HTTPException) as exc:
                errors.append(f"{method} {url}: {exc}")
                continue
            if resp.status < 400:
                raise PullError(f"{method} {url}: unexpected {resp.status} {resp.reason}")
            errors.append(f"{method} {url}: {resp.status} {resp.reason}")
        raise PullError(f"no host could {capability} {repo}/{'/'.join(parts)}:\n  " + "\n  ".join(errors))

    def resolve(self, repo: str, tag: str) -> tuple[RegistryHost, str]:
        def digest(resp: Response) -> str:
            if found := resp.headers.get("Docker-Content-Digest"):
                return found
            raise PullError(f"HEAD manifests/{tag}: no Docker-Content-Digest")

        return self._first("resolve", repo, ("manifests", tag), "HEAD", ", ".join(MANIFEST_TYPES), digest)

    def fetch(self, repo: str, kind: str, digest: str, size: int | None = None) -> tuple[RegistryHost, bytes | int]:
        """A manifest comes back as bytes; a blob is streamed, checked and counted, not kept."""

        def read(resp: Response) -> bytes | int:
            sha, total, kept = hashlib.sha256(), 0, bytearray()
            while chunk := resp.read(CHUNK):
                sha.update(chunk)
                total += len(chunk)
                if kind == "manifests":
                    kept += chunk
            if f"sha256:{sha.hexdigest()}" != digest or (size is not None and total != size):
                raise PullError(f"{kind}/{digest}: got {total} bytes with sha256:{sha.hexdigest()}")
            return bytes(kept) if kind == "manifests" else total

        accept = ", ".join(MANIFEST_TYPES) if kind == "manifests" else "*/*"
        return self._first("pull", repo, (kind, digest), "GET", accept, read)

    def pull(self, ref: str) -> Pulled:
        namespace, repo, tag = image_ref(ref)
        if namespace != self.namespace:
            raise ValueError(f"{ref}: this client holds the hosts of {self.namespace}")
        start = time.perf_counter()
        resolved_by, digest = self.resolve(repo, tag)
        fetched_by, raw = self.fetch(repo, "manifests", digest)
        assert isinstance(raw, bytes)
        manifest = json.loads(raw)
        if manifest.get("mediaType", OCI_MANIFEST) not in MANIFEST_TYPES[:2]:
            raise PullError(f"{ref}: {manifest.get('mediaType')} (an index) is not handled by this client")
        blobs = [manifest["config"], *manifest["layers"]]
        with ThreadPoolExecutor(CONCURRENT_DOWNLOADS) as pool:
            done = list(pool.map(lambda d: self.fetch(repo, "blobs", d["digest"], d["size"]), blobs))
        seconds = time.perf_counter() - start
        total = len(raw) + sum(int(n) for _, n in done)
        return Pulled(seconds, total, [h.host for h in (resolved_by, fetched_by, *(h for h, _ in done))])


# --- the project's configuration --------------------------------------------------------------


def project_hosts_toml(mirror: str, ca_path: Path, auth_header: str) -> str:
    """docker.io's hosts.toml as the project's bootstrap renders it for every node (the cache first,
    with the pull account's Authorization header), the node's cluster CA swapped for the throwaway
    CA. The one place that calls the renderer."""
    files = {f["path"]: f["content"] for f in _containerd_files(mirror, (UPSTREAM,), auth_header)}
    text = files[f"{CERTS_D}/{UPSTREAM}/hosts.toml"]
    node_ca = f'"{PKI_DIR}/ca.crt"'
    if node_ca not in text or auth_header not in text:
        raise RuntimeError(f"the bootstrap's hosts.toml changed (CA {node_ca}, header); update the bench:\n{text}")
    return text.replace(node_ca, json.dumps(str(ca_path)))


# --- throwaway PKI, namespace, registries -----------------------------------------------------


def _run(*cmd: str) -> str:
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)}: exit {done.returncode}\n{done.stderr.strip()}")
    return done.stdout


def make_pki(d: Path) -> dict[str, tuple[Path, Path]]:
    """A throwaway CA and a server certificate each for the upstream (its IP) and the cache
    (the mirror's name). Returns {"ca"|"upstream"|"cache": (cert, key)}."""
    ec = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes")
    ca, ca_key = d / "ca.crt", d / "ca.key"
    _run("openssl", "req", "-x509", *ec, "-days", "1", "-subj", "/CN=akiba pull-bench CA", "-keyout", str(ca_key),
         "-out", str(ca))  # fmt: skip
    pki = {"ca": (ca, ca_key)}
    for name, san in (("upstream", f"IP:{NS_IP}"), ("cache", f"DNS:{MIRROR_HOST},IP:127.0.0.1")):
        cert, key, csr, ext = (d / f"{name}.{s}" for s in ("crt", "key", "csr", "ext"))
        ext.write_text(f"subjectAltName={san}\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n")
        _run("openssl", "req", "-new", *ec, "-subj", f"/CN={name}", "-keyout", str(key), "-out", str(csr))
        _run("openssl", "x509", "-req", "-in", str(csr), "-CA", str(ca), "-CAkey", str(ca_key), "-days", "1",
             "-set_serial", str(secrets.randbits(63)), "-extfile", str(ext), "-out", str(cert))  # fmt: skip
        pki[name] = (cert, key)
    return pki


@dataclass(frozen=True)
class Line:
    netns: str
    host_dev: str  # the root namespace's end of the veth
    ns_dev: str

    def received_bytes(self) -> int:
        """Bytes that came down the line into the root namespace."""
        return int(Path(f"/sys/class/net/{self.host_dev}/statistics/rx_bytes").read_text())


@contextmanager
def network_namespace() -> Iterator[Line]:
    """A netns joined to the root namespace by a veth pair in a private /30; removed at the end."""
    tag = str(os.getpid())
    line = Line(f"akiba-pull-{tag}", f"akp{tag}h", f"akp{tag}n")
    try:
        _run("ip", "netns", "add", line.netns)
        _run("ip", "link", "add", line.host_dev, "type", "veth", "peer", "name", line.ns_dev, "netns", line.netns)
        _run("ip", "addr", "add", f"{HOST_IP}/{PREFIX_LEN}", "dev", line.host_dev)
        _run("ip", "link", "set", line.host_dev, "up")
        inside = ("ip", "netns", "exec", line.netns)
        _run(*inside, "ip", "addr", "add", f"{NS_IP}/{PREFIX_LEN}", "dev", line.ns_dev)
        _run(*inside, "ip", "link", "set", line.ns_dev, "up")
        _run(*inside, "ip", "link", "set", "lo", "up")
        yield line
    finally:
        subprocess.run(["ip", "link", "del", line.host_dev], capture_output=True, timeout=60)  # takes its peer
        subprocess.run(["ip", "netns", "del", line.netns], capture_output=True, timeout=60)


def shape(line: Line, mbit: float) -> None:
    """tbf at `mbit` on both ends of the veth: downloads leave the namespace's end, requests ours."""
    burst = max(64 * 1024, int(mbit * 1e6 / 8 / 100))  # 10 ms of the rate, at least a GSO packet
    tbf = ("root", "tbf", "rate", f"{mbit}mbit", "burst", str(burst), "latency", "100ms")
    _run("tc", "qdisc", "replace", "dev", line.host_dev, *tbf)
    _run("ip", "netns", "exec", line.netns, "tc", "qdisc", "replace", "dev", line.ns_dev, *tbf)


def start_registry(
    name: str, config: str, state: Path, env: Mapping[str, str], address: tuple[str, int], netns: str | None = None
) -> subprocess.Popen[bytes]:
    path, log = state / f"{name}.yml", state / f"{name}.log"
    path.write_text(config)
    inside = ["ip", "netns", "exec", netns] if netns else []  # it execs the command: the PID is the registry's
    with log.open("ab") as out:
        proc = subprocess.Popen([*inside, "docker-registry", "serve", str(path)], stdout=out, stderr=out, env=dict(env))
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{name} registry exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        with socket.socket() as s:
            if s.connect_ex(address) == 0:
                return proc
        time.sleep(0.05)
    stop(proc)
    raise RuntimeError(f"{name} registry did not listen on {address} within 30 s:\n{log.read_text()[-3000:]}")


# --- the image --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Image:
    manifest: bytes
    blobs: tuple[bytes, ...]  # config, then layers

    @property
    def size(self) -> int:
        return len(self.manifest) + sum(map(len, self.blobs))


def make_image(total: int, layers: int) -> Image:
    """Layers of random bytes (one file per uncompressed tar: nothing to gain from compression)."""
    tars = []
    for i in range(layers):
        content = os.urandom(total // layers)
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
            info = tarfile.TarInfo(f"pull-bench/layer-{i}.bin")
            info.size, info.mtime, info.mode = len(content), 0, 0o644
            tar.addfile(info, io.BytesIO(content))
        tars.append(buf.getvalue())
    diff_ids = [_digest(t) for t in tars]
    config = json.dumps(
        {"architecture": "amd64", "os": "linux", "config": {}, "rootfs": {"type": "layers", "diff_ids": diff_ids}}
    ).encode()
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": _digest(config), "size": len(config)},
        "layers": [{"mediaType": OCI_LAYER, "digest": d, "size": len(t)} for d, t in zip(diff_ids, tars, strict=True)],
    }
    return Image(json.dumps(manifest).encode(), (config, *tars))


def push(http: Http, base: str, context: ssl.SSLContext, image: Image) -> None:
    """Monolithic uploads (POST, then PUT with the digest), then the manifest by tag."""
    for blob in image.blobs:
        started = http.call("POST", f"{base}/v2/{REPO}/blobs/uploads/", expect=202, context=context, body=b"")
        location = urljoin(base, started.headers["Location"])
        sep = "&" if "?" in location else "?"
        octets = [("Content-Type", "application/octet-stream")]
        url = f"{location}{sep}digest={_digest(blob)}"
        http.call("PUT", url, expect=201, context=context, body=blob, headers=octets)
    typed = [("Content-Type", OCI_MANIFEST)]
    url = f"{base}/v2/{REPO}/manifests/{TAG}"
    http.call("PUT", url, expect=201, context=context, body=image.manifest, headers=typed)


# --- the measurement --------------------------------------------------------------------------


@dataclass
class Cold:
    seconds: float  # until the client had every blob
    filled_s: float  # until the cache had stored every blob
    line_bytes: int  # received over the line, from the pull's start until the cache was filled


@dataclass
class Result:
    image_bytes: int
    layers: int
    line_mbit: float
    cold: list[Cold]
    warm_s: list[float]
    warm_line_bytes: int  # over the line during all the warm pulls
    hosts: list[str]  # who answered, in the last pull

    @property
    def cold_median(self) -> float:
        return statistics.median(c.seconds for c in self.cold)

    @property
    def warm_median(self) -> float:
        return statistics.median(self.warm_s)


@dataclass(frozen=True)
class Setup:
    state: Path
    line: Line
    pki: dict[str, tuple[Path, Path]]
    htpasswd: Path
    client: Client
    cache_port: int
    env: dict[str, str]


def _stored(storage: Path, image: Image) -> bool:
    blobs = storage / "docker" / "registry" / "v2" / "blobs" / "sha256"
    return all((blobs / d[7:9] / d[7:] / "data").exists() for d in map(_digest, image.blobs))


@contextmanager
def cache(setup: Setup, run: int) -> Iterator[tuple[Path, subprocess.Popen[bytes]]]:
    """The project's cache on an empty storage directory; stopped and emptied at the end."""
    storage = setup.state / f"cache-{run}"
    storage.mkdir()
    cert, key = setup.pki["cache"]
    config = render_registry_config(
        str(storage),
        f"127.0.0.1:{setup.cache_port}",
        str(setup.htpasswd),
        str(cert),
        str(key),
        f"https://{NS_IP}:{UPSTREAM_PORT}",
        http_prefix=cache_prefix(UPSTREAM),
    )
    proc = start_registry(f"cache-{run}", config, setup.state, setup.env, ("127.0.0.1", setup.cache_port))
    try:
        yield storage, proc
    finally:
        stop(proc)
        shutil.rmtree(storage, ignore_errors=True)


def cold_pull(setup: Setup, storage: Path, image: Image, line_mbit: float) -> Cold:
    before, start = setup.line.received_bytes(), time.perf_counter()
    pulled = setup.client.pull(f"{UPSTREAM}/{REPO}:{TAG}")
    assert pulled.bytes == image.size, (pulled.bytes, image.size)
    # distribution stores a proxied blob from a download of its own in the background; the warm
    # pulls must not start before it is done. Generous: four times the image at line rate.
    deadline = time.monotonic() + 60 + 4 * image.size * 8 / (line_mbit * 1e6)
    while not _stored(storage, image):
        if time.monotonic() > deadline:
            log = storage.parent / f"{storage.name}.log"
            raise RuntimeError(f"the cache did not store every blob it served:\n{log.read_text()[-3000:]}")
        time.sleep(0.05)
    return Cold(pulled.seconds, time.perf_counter() - start, setup.line.received_bytes() - before)


def measure(setup: Setup, image: Image, args: argparse.Namespace) -> Result:
    cold: list[Cold] = []
    warm: list[float] = []
    hosts: list[str] = []
    warm_bytes = 0
    for run in range(args.cold_runs):
        with cache(setup, run) as (storage, _):
            print(f"cold pull {run + 1}/{args.cold_runs} (empty cache)...", flush=True)
            cold.append(cold_pull(setup, storage, image, args.line_mbit))
            print(f"  {cold[-1].seconds:.1f} s; cache filled after {cold[-1].filled_s:.1f} s", flush=True)
            if run == args.cold_runs - 1:
                before = setup.line.received_bytes()
                for _ in range(args.warm_runs):
                    pulled = setup.client.pull(f"{UPSTREAM}/{REPO}:{TAG}")
                    warm.append(pulled.seconds)
                    hosts = pulled.hosts
                print(f"{args.warm_runs} warm pulls: " + ", ".join(f"{s:.2f}" for s in warm) + " s", flush=True)
                warm_bytes = setup.line.received_bytes() - before
    return Result(image.size, args.layers, args.line_mbit, cold, warm, warm_bytes, hosts)


def upstream_config(state: Path, cert: Path, key: Path) -> str:
    """Docker Hub's stand-in: anonymous pulls (and pushes, for the setup), TLS. JSON is YAML."""
    storage = state / "upstream"
    storage.mkdir()
    return json.dumps(
        {
            "version": "0.1",
            "log": {"level": "warn"},
            "storage": {"filesystem": {"rootdirectory": str(storage)}},
            "http": {"addr": f"{NS_IP}:{UPSTREAM_PORT}", "tls": {"certificate": str(cert), "key": str(key)}},
        }
    )


def run(state: Path, args: argparse.Namespace) -> tuple[Result, str]:
    pki = make_pki(state)
    ca = pki["ca"][0]
    env = {k: v for k, v in os.environ.items() if not k.startswith("REGISTRY_")}  # they override configs
    image = make_image(args.size_mib * MiB, args.layers)
    http = Http({MIRROR_HOST: "127.0.0.1"})
    with network_namespace() as line:
        config = upstream_config(state, *pki["upstream"])
        upstream = start_registry("upstream", config, state, env, (NS_IP, UPSTREAM_PORT), line.netns)
        try:
            push(http, f"https://{NS_IP}:{UPSTREAM_PORT}", tls_context([ca]), image)  # before the line is shaped
            shape(line, args.line_mbit)
            user, password = "akiba-pull", secrets.token_urlsafe(24)
            htpasswd = state / "htpasswd"
            htpasswd.write_text(htpasswd_line(user, password))
            auth = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
            cache_port = free_port()
            hosts_toml = project_hosts_toml(f"{MIRROR_HOST}:{cache_port}", ca, auth)
            hosts_dir = state / "certs.d" / UPSTREAM
            hosts_dir.mkdir(parents=True)
            (hosts_dir / "hosts.toml").write_text(hosts_toml)
            client = Client(parse_hosts_toml(hosts_toml, UPSTREAM, str(hosts_dir)), UPSTREAM, http)
            print("hosts.toml (the project's bootstrap renderer, CA path rewritten):")
            print("  " + hosts_toml.replace(auth, "Basic <redacted>").strip().replace("\n", "\n  "), flush=True)
            setup = Setup(state, line, pki, htpasswd, client, cache_port, env | {"SSL_CERT_FILE": str(ca)})
            return measure(setup, image, args), hosts_toml
        finally:
            stop(upstream)


def _rate(n_bytes: float, seconds: float) -> str:
    return f"{n_bytes / seconds / 1e6:.1f} MB/s ({n_bytes * 8 / seconds / 1e6:.1f} Mbit/s)"


def figures(r: Result) -> dict[str, object]:
    scale = SEED_BYTES / r.image_bytes
    return {
        "image_bytes": r.image_bytes,
        "image_mib": r.image_bytes / MiB,
        "layers": r.layers,
        "line_mbit": r.line_mbit,
        "cold_s": [c.seconds for c in r.cold],
        "cold_median_s": r.cold_median,
        "cold_filled_s": [c.filled_s for c in r.cold],
        "cold_line_bytes": [c.line_bytes for c in r.cold],
        "warm_s": r.warm_s,
        "warm_median_s": r.warm_median,
        "warm_line_bytes": r.warm_line_bytes,
        "ratio": r.cold_median / r.warm_median,
        "cold_bytes_per_s": r.image_bytes / r.cold_median,
        "warm_bytes_per_s": r.image_bytes / r.warm_median,
        "extrapolated_10gb_cold_min": r.cold_median * scale / 60,
        "extrapolated_10gb_warm_min": r.warm_median * scale / 60,
        "seed_min": [SEED_DIRECT_MIN, SEED_CACHED_MIN],
        "hosts": sorted(set(r.hosts)),
    }


def report(r: Result) -> str:
    cold_s = [c.seconds for c in r.cold]
    ratio = r.cold_median / r.warm_median
    scale = SEED_BYTES / r.image_bytes
    cold_line = statistics.median(c.line_bytes for c in r.cold)
    filled = statistics.median(c.filled_s for c in r.cold)

    def row(label: str, times: Sequence[float]) -> str:
        median = statistics.median(times)
        spread = f"{min(times):.2f}-{max(times):.2f} s"
        return f"{label:<20}{len(times):>4}  {median:>8.2f} s  {spread:>16}  {_rate(r.image_bytes, median)}"

    return "\n".join(
        [
            f"image {UPSTREAM}/{REPO}:{TAG}: {r.image_bytes:,} bytes ({r.image_bytes / MiB:.2f} MiB): manifest, "
            f"config and {r.layers} layers of random bytes",
            f"upstream line: {r.line_mbit:g} Mbit/s (tbf both ways on the veth into the upstream's network "
            f"namespace); the image alone at that rate: {r.image_bytes * 8 / (r.line_mbit * 1e6):.1f} s",
            "cache: docker-registry (distribution 2.8) configured by render_registry_config, on loopback; "
            f"every request of the last pull answered by {', '.join(sorted(set(r.hosts)))}",
            "",
            f"{'':20}{'runs':>4}  {'median':>10}  {'min-max':>16}  throughput",
            row("cold (empty cache)", cold_s),
            row("warm (cache full)", r.warm_s),
            f"cold/warm: {ratio:.0f}x",
            "",
            f"down the line per cold pull (frames, median): {cold_line:,.0f} bytes = {cold_line / r.image_bytes:.2f}x "
            f"the image (distribution 2.8 downloads a blob it lacks twice; 3.x once); the cache held the whole "
            f"image {filled:.1f} s after a cold pull began",
            f"down the line during the {len(r.warm_s)} warm pulls: {r.warm_line_bytes:,} bytes",
            "",
            f"seed: a 10 GB image, {SEED_DIRECT_MIN} min from Docker Hub -> {SEED_CACHED_MIN} min from the private "
            f"registry ({TARGET_RATIO:.0f}x)",
            f"EXTRAPOLATED to 10 GB (10^10 bytes) at {r.line_mbit:g} Mbit/s, linearly: cold "
            f"{r.cold_median * scale / 60:.0f} min, warm {r.warm_median * scale / 60:.1f} min (warm: an upper bound, "
            "much of a warm pull here is per-request cost; loopback, no LAN hop, no unpacking)",
            f"target: cold/warm >= {TARGET_RATIO:.0f} (the seed's {SEED_DIRECT_MIN}/{SEED_CACHED_MIN}): "
            + ("met" if ratio >= TARGET_RATIO else "NOT met"),
        ]
    )


def preflight() -> list[str]:
    problems = [f"{tool} not found (apt-get install {pkg})" for tool, pkg in TOOLS.items() if not shutil.which(tool)]
    if os.geteuid() != 0:
        problems.insert(0, "not root: the bench creates a network namespace and shapes a veth with tc")
    return problems


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.pull_bench", description=__doc__.split("\n")[0])
    parser.add_argument("--size-mib", type=int, default=96, help="the image's layers in all, MiB")
    parser.add_argument("--layers", type=int, default=4, help="layers in the image")
    parser.add_argument("--line-mbit", type=float, default=20.0, help="the upstream line, Mbit/s")
    parser.add_argument("--cold-runs", type=int, default=3, help="cold pulls, each into an empty cache (>= 3)")
    parser.add_argument("--warm-runs", type=int, default=5, help="warm pulls from the filled cache (>= 5)")
    parser.add_argument("--json", type=Path, default=Path("build/bench/pull.json"), help="the figures, one JSON line")
    args = parser.parse_args(argv)
    if args.cold_runs < 3 or args.warm_runs < 5:
        parser.error("a median needs --cold-runs >= 3 and --warm-runs >= 5")
    if args.size_mib < 1 or not 1 <= args.layers <= args.size_mib or args.line_mbit <= 0:
        parser.error("--size-mib >= --layers >= 1 and --line-mbit > 0")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse(argv)
    if problems := preflight():
        print("pull_bench cannot run:\n  " + "\n  ".join(problems), file=sys.stderr)
        return 2
    state = Path(tempfile.mkdtemp(prefix="akiba-pull-bench-"))
    try:
        result, _ = run(state, args)
    finally:
        shutil.rmtree(state, ignore_errors=True)
    print()
    print(report(result))
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(figures(result)) + "\n")
    return 0  # a report: missing the target is printed, not a failure


if __name__ == "__main__":
    sys.exit(main())
