"""The pull bench's client follows containerd's hosts.toml rules (a wrong rule would time the wrong
path): mirror hosts in file order, then `server`; /v2 after each host's path unless override_path;
?ns=<registry> on a mirror only; a host's headers to that host only; the next host on a connection
error or an HTTP error; every byte checked by digest. Against an in-process HTTP registry."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from benchmarks.pull_bench import (
    Client,
    Http,
    Image,
    PullError,
    image_ref,
    make_image,
    parse_hosts_toml,
    project_hosts_toml,
    request_url,
)
from tests.servers import free_port

REF = "docker.io/akiba/demo:1"


def test_the_projects_hosts_toml_tries_the_cache_first_then_docker_hub() -> None:
    text = project_hosts_toml("registry.akiba.lan:30443", Path("/tmp/ca.crt"), "Basic dXNlcjpwdw==")
    mirror, server = parse_hosts_toml(text, "docker.io")
    assert mirror.ca == ("/tmp/ca.crt",)
    assert mirror.headers == (("Authorization", "Basic dXNlcjpwdw=="),)
    assert mirror.capabilities == {"pull", "resolve"}
    assert request_url(mirror, "docker.io", "library/ubuntu", "manifests", "24.04") == (
        "https://registry.akiba.lan:30443/docker.io/v2/library/ubuntu/manifests/24.04?ns=docker.io"
    )
    assert (server.host, server.headers, server.ca) == ("registry-1.docker.io", (), ())
    assert server.capabilities == {"pull", "resolve", "push"}
    assert request_url(server, "docker.io", "library/ubuntu", "blobs", "sha256:ab") == (
        "https://registry-1.docker.io/v2/library/ubuntu/blobs/sha256:ab"
    )


@pytest.mark.parametrize(
    ("url", "override", "expected"),
    [
        ("https://m.lan/docker.io", False, "https://m.lan/docker.io/v2/r/x/manifests/1"),
        ("https://m.lan/docker.io/v2", False, "https://m.lan/docker.io/v2/r/x/manifests/1"),  # not twice
        ("https://m.lan/custom/api", True, "https://m.lan/custom/api/r/x/manifests/1"),
        ("https://m.lan", False, "https://m.lan/v2/r/x/manifests/1"),
        ("https://m.lan", True, "https://m.lan/r/x/manifests/1"),
        ("https://m.lan/", False, "https://m.lan/v2/r/x/manifests/1"),
        ("m.lan:5000", False, "https://m.lan:5000/v2/r/x/manifests/1"),  # no scheme: https
        ("http://m.lan:5000/a//b/", False, "http://m.lan:5000/a/b/v2/r/x/manifests/1"),
    ],
)
def test_v2_follows_the_hosts_path_unless_override_path(url: str, override: bool, expected: str) -> None:
    text = f'[host."{url}"]\n  override_path = {str(override).lower()}\n'
    mirror, _ = parse_hosts_toml(text, "docker.io")
    assert request_url(mirror, "docker.io", "r/x", "manifests", "1") == f"{expected}?ns=docker.io"


def test_server_defaults_to_the_registry_itself_and_is_no_mirror() -> None:
    [hub] = parse_hosts_toml("", "docker.io")
    [nvcr] = parse_hosts_toml("", "nvcr.io")
    assert (
        request_url(hub, "docker.io", "library/x", "manifests", "1")
        == "https://registry-1.docker.io/v2/library/x/manifests/1"
    )
    assert request_url(nvcr, "nvcr.io", "nvidia/cuda", "manifests", "1") == "https://nvcr.io/v2/nvidia/cuda/manifests/1"


def test_host_settings_are_read_as_containerd_reads_them(tmp_path: Path) -> None:
    text = (
        'server = "https://up.example"\n'
        '[host."https://b.lan"]\n  ca = ["b.crt", "/abs/c.crt"]\n  capabilities = ["pull"]\n'
        '  [host."https://b.lan".header]\n    X-One = "1"\n    X-Many = ["a", "b"]\n'
        '[host."https://a.lan"]\n  skip_verify = true\n'
    )
    b, a, up = parse_hosts_toml(text, "docker.io", str(tmp_path))
    assert [b.host, a.host, up.host] == ["b.lan", "a.lan", "up.example"]  # file order, not sorted
    assert b.ca == (str(tmp_path / "b.crt"), "/abs/c.crt")  # relative to the hosts.toml's folder
    assert b.capabilities == {"pull"} and a.capabilities == {"pull", "resolve", "push"}
    assert b.headers == (("X-One", "1"), ("X-Many", "a"), ("X-Many", "b"))
    assert a.skip_verify and not b.skip_verify
    with pytest.raises(ValueError, match="capability"):
        parse_hosts_toml('[host."https://x"]\n  capabilities = ["pul"]\n', "docker.io")


def test_image_refs_get_docker_hubs_library_prefix() -> None:
    assert image_ref("docker.io/ubuntu:24.04") == ("docker.io", "library/ubuntu", "24.04")
    assert image_ref("docker.io/akiba/demo:1") == ("docker.io", "akiba/demo", "1")
    assert image_ref("registry.lan:5000/a/b:c") == ("registry.lan:5000", "a/b", "c")


# --- against an in-process registry ---------------------------------------------------------


@dataclass
class Seen:
    host: str
    method: str
    path: str
    query: str
    authorization: str | None


@dataclass
class FakeRegistry:
    """One HTTP server that answers as several hosts (by the Host header), each one way."""

    image: Image
    port: int = 0
    modes: dict[str, str] = field(default_factory=dict)  # host name -> serve | 404 | 500 | corrupt
    seen: list[Seen] = field(default_factory=list)

    def content(self, path: str) -> tuple[bytes, str] | None:
        kind, _, ref = path.rpartition("/")
        if kind.endswith("/manifests") and ref in ("1", _digest(self.image.manifest)):
            return self.image.manifest, "application/vnd.oci.image.manifest.v1+json"
        blobs = {_digest(b): b for b in self.image.blobs}
        return (blobs[ref], "application/octet-stream") if kind.endswith("/blobs") and ref in blobs else None


def _digest(data: bytes) -> str:
    return f"sha256:{hashlib.sha256(data).hexdigest()}"


def _handler(registry: FakeRegistry) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:  # quiet
            pass

        def do_HEAD(self) -> None:
            self.answer(body=False)

        def do_GET(self) -> None:
            self.answer(body=True)

        def answer(self, body: bool) -> None:
            host = self.headers["Host"].split(":")[0]
            url = urlsplit(self.path)
            registry.seen.append(Seen(host, self.command, url.path, url.query, self.headers["Authorization"]))
            mode = registry.modes.get(host, "404")
            found = registry.content(url.path) if mode in ("serve", "corrupt") else None
            if found is None:
                self.send_response(500 if mode == "500" else 404)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            data, media_type = found
            if mode == "corrupt" and "/blobs/" in url.path:
                data = bytes([data[0] ^ 1]) + data[1:]
            self.send_response(200)
            self.send_header("Content-Type", media_type)
            self.send_header("Content-Length", str(len(data)))
            self.send_header("Docker-Content-Digest", _digest(data))
            self.end_headers()
            if body:
                self.wfile.write(data)

    return Handler


@pytest.fixture
def registry() -> Iterator[FakeRegistry]:
    fake = FakeRegistry(make_image(64 * 1024, 3))
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(fake))
    fake.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield fake
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def _client(
    registry: FakeRegistry, *, mirror_port: int | None = None, mirror_caps: str = '"pull", "resolve"'
) -> Client:
    text = (
        f'server = "http://hub.test:{registry.port}"\n\n'
        f'[host."http://cache.test:{mirror_port or registry.port}/docker.io"]\n'
        f"  capabilities = [{mirror_caps}]\n"
        f'  [host."http://cache.test:{mirror_port or registry.port}/docker.io".header]\n'
        '    Authorization = "Basic bm9kZTpwdw=="\n'
    )
    http = Http({"cache.test": "127.0.0.1", "hub.test": "127.0.0.1"}, timeout=10)
    return Client(parse_hosts_toml(text, "docker.io"), "docker.io", http)


def test_a_pull_goes_to_the_mirror_under_its_path_with_its_header(registry: FakeRegistry) -> None:
    registry.modes = {"cache.test": "serve", "hub.test": "serve"}
    pulled = _client(registry).pull(REF)
    assert pulled.bytes == registry.image.size
    assert {s.host for s in registry.seen} == {"cache.test"}
    assert registry.seen[0].method == "HEAD" and registry.seen[0].path == "/docker.io/v2/akiba/demo/manifests/1"
    assert registry.seen[1].path == f"/docker.io/v2/akiba/demo/manifests/{_digest(registry.image.manifest)}"
    blobs = {s.path for s in registry.seen[2:]}
    assert blobs == {f"/docker.io/v2/akiba/demo/blobs/{_digest(b)}" for b in registry.image.blobs}
    assert all(s.query == "ns=docker.io" for s in registry.seen)
    assert all(s.authorization == "Basic bm9kZTpwdw==" for s in registry.seen)


@pytest.mark.parametrize("mirror", ["404", "500", "unreachable"])
def test_a_failing_mirror_falls_through_to_the_server_without_the_mirrors_header(
    registry: FakeRegistry, mirror: str
) -> None:
    registry.modes = {"cache.test": mirror, "hub.test": "serve"}
    client = _client(registry, mirror_port=free_port() if mirror == "unreachable" else None)
    assert client.pull(REF).bytes == registry.image.size
    hub = [s for s in registry.seen if s.host == "hub.test"]
    assert len(hub) == 2 + len(registry.image.blobs)  # HEAD, manifest, blobs
    assert all(s.path.startswith("/v2/akiba/demo/") and s.authorization is None for s in hub)
    # Not docker.io's own endpoint (registry-1.docker.io, first test): containerd still names the registry.
    assert all(s.query == "ns=docker.io" for s in hub)
    if mirror != "unreachable":  # every request asked the mirror first
        assert [s.host for s in registry.seen[:2]] == ["cache.test", "hub.test"]
        assert len(registry.seen) == 2 * len(hub)


def test_a_pull_only_mirror_is_not_asked_to_resolve_a_tag(registry: FakeRegistry) -> None:
    registry.modes = {"cache.test": "serve", "hub.test": "serve"}
    _client(registry, mirror_caps='"pull"').pull(REF)
    assert [(s.host, s.method) for s in registry.seen[:2]] == [("hub.test", "HEAD"), ("cache.test", "GET")]
    assert {s.host for s in registry.seen[1:]} == {"cache.test"}


def test_a_corrupt_blob_fails_the_pull(registry: FakeRegistry) -> None:
    registry.modes = {"cache.test": "corrupt", "hub.test": "serve"}
    with pytest.raises(PullError, match="sha256"):
        _client(registry).pull(REF)
