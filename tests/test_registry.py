"""The private registry: rendered configs run a real distribution (Debian's docker-registry) on
loopback, and skopeo pushes and pulls a hand-made OCI image through it.

Three real instances, all TLS with a throwaway self-signed certificate, state in a temp dir,
stopped by PID: the private registry (htpasswd), a stand-in upstream (anonymous, like Docker
Hub's public images) and a pull-through cache of that upstream under its path prefix.
In CI a missing docker-registry, skopeo or openssl fails the tests; elsewhere they skip.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import http.server
import io
import json
import os
import secrets
import socket
import ssl
import subprocess
import tarfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import bcrypt
import pytest
import yaml
from pulumi.runtime.mocks import MockResourceArgs

from components.registry.config import BCRYPT_COST, cache_prefix, htpasswd_line, render_registry_config
from components.registry.credentials import PULL_USER, PUSH_USER, accounts_htpasswd, basic_authorization, htpasswd
from components.registry.engineer_login import (
    CA_KEY,
    CLIENT_VOLUME,
    CONFIG_KEY,
    DAEMON_CERTS_DIR,
    DAEMON_VOLUME,
    DOCKER_CONFIG_DIR,
    docker_config,
)
from components.registry.registry import NAMESPACE
from components.tenants.names import REGISTRY_SECRET, engineer_namespace
from tests.conftest import ROOT, config_values, edited, require_tool
from tests.servers import free_port, stop
from tools.plan import references
from tools.plan.mocks import AkibaMocks, Recorded
from tools.plan.runner import Plan

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
UPSTREAM = "upstream.test"  # the cache's upstream, named as an image reference would name it


# --- pure renderers -------------------------------------------------------------------------


def test_htpasswd_line_is_a_bcrypt_hash_of_the_password() -> None:
    user, hashed = htpasswd_line("alice", "s3cret").rstrip("\n").split(":", 1)
    assert user == "alice"
    assert hashed.startswith("$2b$10$")  # Go's x/crypto/bcrypt reads 2a/2b/2y alike
    assert bcrypt.checkpw(b"s3cret", hashed.encode())
    assert not bcrypt.checkpw(b"wrong", hashed.encode())


@pytest.mark.parametrize(("user", "password"), [("a:b", "pw"), ("", "pw"), ("alice\n", "pw"), ("alice", "x" * 73)])
def test_htpasswd_line_refuses_what_would_break_the_file(user: str, password: str) -> None:
    with pytest.raises(ValueError):
        htpasswd_line(user, password)


def test_every_registry_config_problem_is_reported_at_once() -> None:
    with pytest.raises(ValueError) as err:
        render_registry_config(
            "var/lib/registry",
            "5000",
            "htpasswd",
            "/tls/tls.crt",
            "/tls/tls.key",
            "http://registry-1.docker.io",
            http_prefix="docker.io",
            proxy_username="bot",
        )
    for expected in [
        "storage_root 'var/lib/registry'",
        "http_addr '5000'",
        "htpasswd_path 'htpasswd'",
        "proxy_remote 'http://registry-1.docker.io': must be https",
        "proxy_username and proxy_password go together",
        "http_prefix 'docker.io'",
    ]:
        assert expected in str(err.value)


def test_private_registry_deletes_and_a_cache_never_does() -> None:
    args = ("/var/lib/registry", ":5000", "/auth/htpasswd", "/tls/tls.crt", "/tls/tls.key")
    private = yaml.safe_load(render_registry_config(*args, None))
    cache = yaml.safe_load(render_registry_config(*args, "https://nvcr.io", http_prefix=cache_prefix("nvcr.io")))
    assert private["storage"]["delete"]["enabled"] is True and "proxy" not in private
    assert cache["storage"]["delete"]["enabled"] is False
    assert cache["proxy"] == {"remoteurl": "https://nvcr.io"}
    assert cache["http"]["prefix"] == "/nvcr.io/"
    for doc in (private, cache):
        assert doc["version"] == 0.1
        assert doc["auth"]["htpasswd"]["path"] == "/auth/htpasswd"
        assert doc["http"]["tls"]["minimumtls"] == "tls1.2"


# --- a hand-made OCI image ------------------------------------------------------------------


@dataclass(frozen=True)
class Image:
    layout: Path  # an OCI image layout, tag "1"
    manifest_digest: str
    blob_digests: tuple[str, ...]  # config and layer


def _blob(layout: Path, data: bytes) -> str:
    digest = hashlib.sha256(data).hexdigest()
    (layout / "blobs" / "sha256" / digest).write_bytes(data)
    return f"sha256:{digest}"


def _tiny_image(layout: Path) -> Image:
    """The smallest real image: one gzip layer with one file, its config, a manifest, an index."""
    (layout / "blobs" / "sha256").mkdir(parents=True)
    tar_bytes = io.BytesIO()
    with tarfile.open(fileobj=tar_bytes, mode="w", format=tarfile.PAX_FORMAT) as tar:
        content = f"akiba registry test {secrets.token_hex(8)}\n".encode()  # unique: no blob is cached yet
        info = tarfile.TarInfo("hello.txt")
        info.size, info.mtime, info.mode = len(content), 0, 0o644
        tar.addfile(info, io.BytesIO(content))
    diff_id = f"sha256:{hashlib.sha256(tar_bytes.getvalue()).hexdigest()}"
    layer = gzip.compress(tar_bytes.getvalue(), mtime=0)
    layer_digest = _blob(layout, layer)
    config = json.dumps(
        {"architecture": "amd64", "os": "linux", "config": {}, "rootfs": {"type": "layers", "diff_ids": [diff_id]}}
    ).encode()
    config_digest = _blob(layout, config)
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": config_digest,
                "size": len(config),
            },
            "layers": [
                {"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": layer_digest, "size": len(layer)}
            ],
        }
    ).encode()
    manifest_digest = _blob(layout, manifest)
    index = {
        "schemaVersion": 2,
        "manifests": [
            {
                "mediaType": OCI_MANIFEST,
                "digest": manifest_digest,
                "size": len(manifest),
                "annotations": {"org.opencontainers.image.ref.name": "1"},
            }
        ],
    }
    (layout / "index.json").write_text(json.dumps(index))
    (layout / "oci-layout").write_text(json.dumps({"imageLayoutVersion": "1.0.0"}))
    return Image(layout, manifest_digest, (config_digest, layer_digest))


def test_tiny_image_is_a_valid_layout(tmp_path: Path) -> None:
    """skopeo reads the hand-made layout back, digest for digest (no registry needed)."""
    skopeo = require_tool("skopeo", "apt-get install skopeo")
    image = _tiny_image(tmp_path / "src")
    raw = subprocess.run(
        [skopeo, "inspect", "--raw", f"oci:{image.layout}:1"], capture_output=True, check=True, timeout=60
    ).stdout
    assert f"sha256:{hashlib.sha256(raw).hexdigest()}" == image.manifest_digest


# --- real registries ------------------------------------------------------------------------


@dataclass
class Registry:
    name: str
    port: int
    proc: subprocess.Popen[bytes]
    log: Path
    debug_port: int


@dataclass
class Setup:
    state: Path
    cert: Path  # PEM; also the CA every client trusts
    certs_dir: Path  # skopeo's --*-cert-dir: the CA as ca.crt
    user: str
    password: str
    pull_authorization: str  # the header every node's containerd sends (hosts.toml)
    private: Registry
    upstream: Registry
    cache: Registry
    env: dict[str, str]  # for skopeo: no host credentials, policy or registries.conf
    policy: Path


def _start(name: str, config: str, state: Path, env: Mapping[str, str]) -> Registry:
    registry = require_tool("docker-registry", "apt-get install docker-registry")
    path = state / f"{name}.yml"
    path.write_text(config)
    doc = yaml.safe_load(config)
    port = int(doc["http"]["addr"].rsplit(":", 1)[1])
    debug_port = int(doc["http"].get("debug", {}).get("addr", ":0").rsplit(":", 1)[1])
    log = state / f"{name}.log"
    with log.open("ab") as out:
        proc = subprocess.Popen([registry, "serve", str(path)], stdout=out, stderr=out, env=dict(env))
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"{name} registry exited with {proc.returncode}:\n{log.read_text()}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return Registry(name, port, proc, log, debug_port)
        time.sleep(0.05)
    stop(proc)
    pytest.fail(f"{name} registry did not listen on 127.0.0.1:{port} within 20 s:\n{log.read_text()}")


def _self_signed(state: Path) -> tuple[Path, Path]:
    openssl = require_tool("openssl", "apt-get install openssl")
    cert, key = state / "tls.crt", state / "tls.key"
    subprocess.run(
        [
            *(openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"),
            # Go wants the address in subjectAltName; a CN alone is ignored.
            *("-days", "1", "-subj", "/CN=akiba-registry-test", "-addext", "subjectAltName=IP:127.0.0.1"),
            *("-keyout", str(key), "-out", str(cert)),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    return cert, key


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    require_tool("docker-registry", "apt-get install docker-registry")
    require_tool("skopeo", "apt-get install skopeo")
    state = tmp_path_factory.mktemp("registry")
    cert, key = _self_signed(state)
    certs_dir = state / "certs.d"
    certs_dir.mkdir()
    (certs_dir / "ca.crt").write_bytes(cert.read_bytes())
    user, password = "pusher", secrets.token_urlsafe(24)
    pull_password = secrets.token_urlsafe(24)
    passwd = state / "htpasswd"

    def bcrypt_hash(secret: str) -> str:  # what random.RandomPassword's bcrypt_hash holds
        return bcrypt.hashpw(secret.encode(), bcrypt.gensalt(rounds=BCRYPT_COST)).decode()

    # Both accounts, as the Registry component writes the file from RegistryCredentials.
    passwd.write_text(htpasswd([(user, bcrypt_hash(password)), (PULL_USER, bcrypt_hash(pull_password))]))
    # REGISTRY_* variables override the config file; none may leak in from the caller.
    base_env = {k: v for k, v in os.environ.items() if not k.startswith("REGISTRY_")}

    def config(name: str, remote: str | None, prefix: str | None) -> str:
        (state / name).mkdir()
        return render_registry_config(
            str(state / name),
            f"127.0.0.1:{free_port()}",
            str(passwd),
            str(cert),
            str(key),
            remote,
            http_prefix=prefix,
            debug_addr=f"127.0.0.1:{free_port()}",
        )

    procs: list[subprocess.Popen[bytes]] = []
    try:
        private = _start("private", config("private", None, None), state, base_env)
        procs.append(private.proc)
        # The upstream stands in for Docker Hub's public images: anonymous pulls. (distribution 2.8
        # answers only bearer challenges upstream, so it could not log in to an htpasswd upstream.)
        upstream_doc = yaml.safe_load(config("upstream", None, None))
        del upstream_doc["auth"]
        upstream = _start("upstream", yaml.safe_dump(upstream_doc), state, base_env)
        procs.append(upstream.proc)
        # The cache trusts the test CA (Go reads SSL_CERT_FILE); it contacts its upstream at start.
        cache_env = base_env | {"SSL_CERT_FILE": str(cert)}
        cache_config = config("cache", f"https://127.0.0.1:{upstream.port}", cache_prefix(UPSTREAM))
        cache = _start("cache", cache_config, state, cache_env)
        procs.append(cache.proc)

        home = state / "home"
        home.mkdir()
        (home / "registries.conf").write_text("")
        policy = state / "policy.json"
        policy.write_text(json.dumps({"default": [{"type": "insecureAcceptAnything"}]}))
        env = base_env | {
            "HOME": str(home),
            "XDG_RUNTIME_DIR": str(home),
            "REGISTRY_AUTH_FILE": str(home / "auth.json"),
            "CONTAINERS_REGISTRIES_CONF": str(home / "registries.conf"),
        }
        pull = basic_authorization(PULL_USER, pull_password)
        yield Setup(state, cert, certs_dir, user, password, pull, private, upstream, cache, env, policy)
    finally:
        for proc in procs:
            stop(proc)


def _skopeo(setup: Setup, *args: str) -> subprocess.CompletedProcess[str]:
    skopeo = require_tool("skopeo", "apt-get install skopeo")
    return subprocess.run(
        [skopeo, "--policy", str(setup.policy), *args], capture_output=True, text=True, timeout=120, env=setup.env
    )


def _creds(setup: Setup) -> str:
    return f"{setup.user}:{setup.password}"


def _get(
    setup: Setup,
    url: str,
    *,
    auth: bool = True,
    method: str = "GET",
    accept: str = OCI_MANIFEST,
    authorization: str | None = None,
) -> tuple[int, Mapping[str, str], bytes]:
    assert url.startswith(("https://127.0.0.1:", "http://127.0.0.1:"))  # loopback only
    request = urllib.request.Request(url, method=method, headers={"Accept": accept})  # noqa: S310 - checked above
    if authorization is not None:
        request.add_header("Authorization", authorization)
    elif auth:
        token = base64.b64encode(_creds(setup).encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
    context = ssl.create_default_context(cafile=str(setup.cert)) if url.startswith("https") else None
    try:
        with urllib.request.urlopen(request, timeout=30, context=context) as response:  # noqa: S310 - checked above
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as err:
        return err.code, dict(err.headers), err.read()


@pytest.mark.checker
def test_push_then_pull_back_gives_the_same_digests(setup: Setup, tmp_path: Path) -> None:
    image = _tiny_image(tmp_path / "src")
    ref = f"docker://127.0.0.1:{setup.private.port}/test/tiny:1"
    pushed = _skopeo(
        setup,
        "copy",
        "--preserve-digests",
        "--dest-creds",
        _creds(setup),
        "--dest-cert-dir",
        str(setup.certs_dir),
        f"oci:{image.layout}:1",
        ref,
    )
    assert pushed.returncode == 0, pushed.stderr + setup.private.log.read_text()[-2000:]

    out = tmp_path / "out"
    pulled = _skopeo(
        setup,
        "copy",
        "--preserve-digests",
        "--src-creds",
        _creds(setup),
        "--src-cert-dir",
        str(setup.certs_dir),
        ref,
        f"oci:{out}:1",
    )
    assert pulled.returncode == 0, pulled.stderr
    index = json.loads((out / "index.json").read_text())
    assert [m["digest"] for m in index["manifests"]] == [image.manifest_digest]
    for digest in (image.manifest_digest, *image.blob_digests):
        data = (out / "blobs" / "sha256" / digest.removeprefix("sha256:")).read_bytes()
        assert f"sha256:{hashlib.sha256(data).hexdigest()}" == digest


@pytest.mark.checker
def test_push_without_or_with_wrong_credentials_is_refused(setup: Setup, tmp_path: Path) -> None:
    image = _tiny_image(tmp_path / "src")
    ref = f"docker://127.0.0.1:{setup.private.port}/test/intruder:1"
    cert_dir = ["--dest-cert-dir", str(setup.certs_dir)]
    anonymous = _skopeo(setup, "copy", "--dest-no-creds", *cert_dir, f"oci:{image.layout}:1", ref)
    wrong = _skopeo(setup, "copy", "--dest-creds", f"{setup.user}:wrong", *cert_dir, f"oci:{image.layout}:1", ref)
    for result in (anonymous, wrong):
        assert result.returncode != 0
        assert "authentication required" in result.stderr or "unauthorized" in result.stderr, result.stderr
    # Nor can anyone read without credentials.
    status, headers, _ = _get(setup, f"https://127.0.0.1:{setup.private.port}/v2/_catalog", auth=False)
    assert status == 401
    assert headers.get("Www-Authenticate", "").startswith('Basic realm="akiba-registry"')
    assert "test/intruder" not in _get(setup, f"https://127.0.0.1:{setup.private.port}/v2/_catalog")[2].decode()


@pytest.mark.checker
def test_nodes_pull_with_the_pull_accounts_static_header(setup: Setup) -> None:
    """containerd sends hosts.toml's `Authorization` header with every request, without a 401
    first: distribution's htpasswd auth takes it as it comes, on the private registry and on
    each cache. (It also lets akiba-pull push: htpasswd has no read-only users.)"""
    for url in (
        f"https://127.0.0.1:{setup.private.port}/v2/",
        f"https://127.0.0.1:{setup.cache.port}{cache_prefix(UPSTREAM)}v2/",
    ):
        status, _, body = _get(setup, url, authorization=setup.pull_authorization)
        assert status == 200, body
        wrong = basic_authorization(PULL_USER, "not-the-password")
        assert _get(setup, url, authorization=wrong)[0] == 401


@pytest.mark.checker
def test_plain_http_is_not_served(setup: Setup) -> None:
    status, _, body = _get(setup, f"http://127.0.0.1:{setup.private.port}/v2/", auth=False)
    assert status == 400 and b"HTTPS server" in body  # Go's TLS listener turns plain HTTP away


@pytest.mark.checker
def test_health_and_metrics_answer_on_the_debug_listener(setup: Setup) -> None:
    status, _, body = _get(setup, f"http://127.0.0.1:{setup.private.debug_port}/debug/health", auth=False)
    assert status == 200, body
    assert json.loads(body) == {}  # no failing checks
    status, _, body = _get(setup, f"http://127.0.0.1:{setup.private.debug_port}/metrics", auth=False, accept="*/*")
    assert status == 200 and b"registry_" in body


def _via_cache(setup: Setup, path: str, **kwargs: Any) -> tuple[int, Mapping[str, str], bytes]:
    # The URL containerd builds for [host."https://<mirror>/<upstream>"] without override_path:
    # the host's path, then /v2/..., and ?ns=<upstream> naming the registry it stands in for.
    return _get(setup, f"https://127.0.0.1:{setup.cache.port}{cache_prefix(UPSTREAM)}v2/{path}?ns={UPSTREAM}", **kwargs)


@pytest.mark.checker
def test_cache_pulls_through_and_keeps_serving_when_the_upstream_is_gone(setup: Setup, tmp_path: Path) -> None:
    image = _tiny_image(tmp_path / "src")
    pushed = _skopeo(
        setup,
        "copy",
        "--preserve-digests",
        "--dest-no-creds",
        "--dest-cert-dir",
        str(setup.certs_dir),
        f"oci:{image.layout}:1",
        f"docker://127.0.0.1:{setup.upstream.port}/library/tiny:1",
    )
    assert pushed.returncode == 0, pushed.stderr

    assert _via_cache(setup, "library/tiny/manifests/1", auth=False)[0] == 401

    def pull() -> None:
        status, headers, body = _via_cache(setup, "library/tiny/manifests/1")
        assert status == 200, body.decode() + setup.cache.log.read_text()[-2000:]
        assert headers["Docker-Content-Digest"] == image.manifest_digest
        assert f"sha256:{hashlib.sha256(body).hexdigest()}" == image.manifest_digest
        for digest in image.blob_digests:
            status, _, blob = _via_cache(setup, f"library/tiny/blobs/{digest}", accept="*/*")
            assert status == 200
            assert f"sha256:{hashlib.sha256(blob).hexdigest()}" == digest

    pull()
    # distribution streams a first pull to the client and stores the blob from a second upstream
    # download in the background; only a finished store survives an upstream outage.
    blobs = setup.state / "cache" / "docker" / "registry" / "v2" / "blobs" / "sha256"
    stored = [blobs / d[7:9] / d[7:] / "data" for d in image.blob_digests]
    deadline = time.monotonic() + 20
    while not all(p.exists() for p in stored) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert all(p.exists() for p in stored), setup.cache.log.read_text()[-2000:]
    # The internet goes away: what the cache pulled once it still serves, tag included.
    stop(setup.upstream.proc)
    pull()


@pytest.mark.checker
def test_cache_refuses_pushes(setup: Setup) -> None:
    """A cache cannot double as the private registry: distribution refuses uploads in proxy mode."""
    status, _, body = _via_cache(setup, "library/mine/blobs/uploads/", method="POST", accept="*/*")
    assert status in (405, 501), body
    assert b"UNSUPPORTED" in body


# --- one account per engineer ---------------------------------------------------------------

MIRROR = "registry.akiba.lan:30443"


def _bcrypt(secret: str) -> str:  # what random.RandomPassword's bcrypt_hash holds
    return bcrypt.hashpw(secret.encode(), bcrypt.gensalt(rounds=BCRYPT_COST)).decode()


def _lines(text: str) -> dict[str, str]:
    return dict(line.split(":", 1) for line in text.splitlines())


def _login_of(config_json: str, registry: str) -> tuple[str, str]:
    """(user, password) that Docker sends to `registry` with this config.json."""
    auth = json.loads(config_json)["auths"][registry]["auth"]
    user, password = base64.b64decode(auth).decode().split(":", 1)
    return user, password


def test_each_engineers_docker_config_authenticates_as_themselves_and_only_them() -> None:
    passwords = {login: secrets.token_urlsafe(24) for login in ("tanaka", "sato")}
    passwd = accounts_htpasswd(_bcrypt("push"), _bcrypt("pull"), {k: _bcrypt(v) for k, v in passwords.items()})
    hashes = _lines(passwd)
    assert list(hashes) == [PUSH_USER, PULL_USER, "sato", "tanaka"]
    for login, password in passwords.items():
        user, sent = _login_of(docker_config(MIRROR, login, password), MIRROR)
        assert user == login
        assert bcrypt.checkpw(sent.encode(), hashes[login].encode())
        for other in set(passwords) - {login}:  # nobody else's line takes it
            assert not bcrypt.checkpw(sent.encode(), hashes[other].encode())


def test_removing_an_engineer_drops_their_line_and_keeps_everyone_elses() -> None:
    hashes = {login: _bcrypt(login) for login in ("tanaka", "sato", "kenji")}
    before = _lines(accounts_htpasswd("push-hash", "pull-hash", hashes))
    after = _lines(accounts_htpasswd("push-hash", "pull-hash", {k: v for k, v in hashes.items() if k != "sato"}))
    assert "sato" in before and "sato" not in after
    assert after == {k: v for k, v in before.items() if k != "sato"}


@pytest.mark.parametrize("login", [PUSH_USER, PULL_USER])
def test_an_engineer_cannot_take_the_registrys_own_account(login: str) -> None:
    with pytest.raises(ValueError, match=login):
        accounts_htpasswd("a", "b", {login: "c"})


@dataclass
class Kubelet:
    """A Secret volume the way the kubelet writes it: files are symlinks through `..data` to a
    timestamped directory, swapped atomically on every update."""

    root: Path
    generation: int = 0

    def write(self, files: Mapping[str, str]) -> None:
        self.generation += 1
        target = self.root / f"..{self.generation}"
        target.mkdir()
        for name, text in files.items():
            (target / name).write_text(text)
        link = self.root / "..data_tmp"
        link.symlink_to(target.name)
        link.rename(self.root / "..data")
        for name in files:
            if not (self.root / name).is_symlink():
                (self.root / name).symlink_to(f"..data/{name}")


@pytest.mark.checker
def test_an_engineers_config_pushes_as_them_until_they_are_removed(tmp_path: Path) -> None:
    """A real registry reads the htpasswd as the pod mounts it: an engineer's config.json (as an
    authfile: skopeo reads Docker's format) pushes, the registry logs the push as theirs, and once
    their line is gone from the Secret the same config is refused, without a restart."""
    require_tool("skopeo", "apt-get install skopeo")
    cert, key = _self_signed(tmp_path)
    certs_dir = tmp_path / "certs.d"
    certs_dir.mkdir()
    (certs_dir / "ca.crt").write_bytes(cert.read_bytes())
    passwords = {login: secrets.token_urlsafe(24) for login in ("tanaka", "sato")}
    hashes = {login: _bcrypt(p) for login, p in passwords.items()}
    auth = tmp_path / "auth"
    auth.mkdir()
    kubelet = Kubelet(auth)
    kubelet.write({"htpasswd": accounts_htpasswd(_bcrypt("push"), _bcrypt("pull"), hashes)})
    (tmp_path / "data").mkdir()
    port = free_port()
    config = render_registry_config(
        str(tmp_path / "data"), f"127.0.0.1:{port}", str(auth / "htpasswd"), str(cert), str(key), None
    )
    base_env = {k: v for k, v in os.environ.items() if not k.startswith("REGISTRY_")}
    registry = _start("engineers", config, tmp_path, base_env)
    home = tmp_path / "home"
    home.mkdir()
    (home / "registries.conf").write_text("")
    policy = tmp_path / "policy.json"
    policy.write_text(json.dumps({"default": [{"type": "insecureAcceptAnything"}]}))
    env = base_env | {
        "HOME": str(home),
        "XDG_RUNTIME_DIR": str(home),
        "REGISTRY_AUTH_FILE": str(home / "none.json"),
        "CONTAINERS_REGISTRIES_CONF": str(home / "registries.conf"),
    }
    address = f"127.0.0.1:{port}"

    def push(login: str, repository: str) -> subprocess.CompletedProcess[str]:
        authfile = tmp_path / f"{login}.json"  # what their Secret `registry` holds as config.json
        authfile.write_text(docker_config(address, login, passwords[login]))
        image = _tiny_image(tmp_path / f"src-{secrets.token_hex(4)}")
        return subprocess.run(
            [
                *(require_tool("skopeo", "apt-get install skopeo"), "--policy", str(policy), "copy"),
                *("--dest-authfile", str(authfile), "--dest-cert-dir", str(certs_dir)),
                *(f"oci:{image.layout}:1", f"docker://{address}/{repository}:1"),
            ],
            capture_output=True,
            text=True,
            timeout=120,
            env=env,
        )

    try:
        pushed = push("tanaka", "tanaka/experiment")
        assert pushed.returncode == 0, pushed.stderr + registry.log.read_text()[-2000:]
        log = registry.log.read_text()
        assert 'auth.user.name="tanaka"' in log or "auth.user.name=tanaka" in log, log[-2000:]
        # Any account may push anywhere: htpasswd has no per-repository rights.
        assert push("sato", "tanaka/experiment").returncode == 0

        kubelet.write({"htpasswd": accounts_htpasswd(_bcrypt("push"), _bcrypt("pull"), {"sato": hashes["sato"]})})
        refused = push("tanaka", "tanaka/experiment")
        assert refused.returncode != 0
        assert "authentication required" in refused.stderr or "unauthorized" in refused.stderr, refused.stderr
        assert push("sato", "sato/experiment").returncode == 0, "removing one engineer locked out another"
        assert registry.proc.poll() is None  # the same process: no restart was needed
    finally:
        stop(registry.proc)


class _StandInDaemon(http.server.BaseHTTPRequestHandler):
    """The Docker Engine API as far as `docker push` uses it: the CLI only hands the daemon the
    credentials (X-Registry-Auth); the daemon pushes."""

    pushes: ClassVar[list[tuple[str, str]]] = []  # (path, X-Registry-Auth)

    def _answer(self, body: bytes, content_type: str) -> None:
        self.send_response(200)
        self.send_header("Api-Version", "1.47")
        self.send_header("Ostype", "linux")
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def do_HEAD(self) -> None:
        self._answer(b"OK", "text/plain")

    def do_GET(self) -> None:
        self._answer(b"OK", "text/plain")

    def do_POST(self) -> None:
        self.pushes.append((self.path, self.headers.get("X-Registry-Auth", "")))
        self._answer(b'{"status":"pushed"}\n', "application/json")

    def log_message(self, *_: Any) -> None:
        pass


def _tree(root: Path) -> dict[str, float]:
    return {str(p.relative_to(root)): p.stat().st_mtime for p in [root, *root.rglob("*")]}


@pytest.mark.checker
def test_docker_push_sends_the_engineers_own_credentials_from_the_read_only_config(tmp_path: Path) -> None:
    """The real docker CLI with DOCKER_CONFIG on the Secret's config.json: `docker push` to the
    registry sends the engineer's account without a `docker login`, and writes nothing there."""
    docker = require_tool("docker", "the Docker CLI")
    config_dir = tmp_path / "docker-config"  # the Secret's view in the home pod
    config_dir.mkdir()
    (config_dir / CONFIG_KEY).write_text(docker_config(MIRROR, "tanaka", "tanakas-password"))
    before = _tree(config_dir)
    _StandInDaemon.pushes.clear()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _StandInDaemon)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(tmp_path / "home"),
        "DOCKER_HOST": f"tcp://127.0.0.1:{server.server_address[1]}",
        "DOCKER_CONFIG": str(config_dir),
        "BUILDX_CONFIG": str(tmp_path / "home" / ".docker" / "buildx"),
    }
    try:
        pushed = subprocess.run(
            [docker, "push", f"{MIRROR}/tanaka/experiment:1"], capture_output=True, text=True, timeout=60, env=env
        )
        elsewhere = subprocess.run(
            [docker, "push", "ghcr.io/tanaka/experiment:1"], capture_output=True, text=True, timeout=60, env=env
        )
    finally:
        server.shutdown()
        server.server_close()
    assert pushed.returncode == 0, pushed.stderr
    assert elsewhere.returncode == 0, elsewhere.stderr
    (path, header), (_, other) = _StandInDaemon.pushes
    assert "/images/registry.akiba.lan:30443/tanaka/experiment/push" in path
    sent = json.loads(base64.urlsafe_b64decode(header + "=" * (-len(header) % 4)))
    assert (sent["username"], sent["password"]) == ("tanaka", "tanakas-password")
    # Another registry gets nothing of the account.
    assert "tanakas-password" not in base64.urlsafe_b64decode(other + "=" * (-len(other) % 4)).decode()
    assert _tree(config_dir) == before  # read-only in the pod: a push must not need to write


# --- the accounts in the plans --------------------------------------------------------------


def _engineers(stack: str) -> list[str]:
    return [e["name"] for e in config_values(stack)["akiba:engineers"]]


def _answered(plan: Plan) -> dict[str, dict[str, Any]]:
    """Each RandomPassword's state as the mock engine answered it (result, bcryptHash)."""
    mocks = AkibaMocks()
    return {
        r.name: mocks.new_resource(MockResourceArgs(r.type, r.name, r.raw_inputs, custom=True))[1]
        for r in plan.by_type("random:index/randomPassword:RandomPassword")
    }


def _string_data(plan: Plan, namespace: str, name: str) -> tuple[Recorded, dict[str, str]]:
    (secret,) = [
        r
        for r in plan.by_type("kubernetes:core/v1:Secret")
        if r.inputs["metadata"].get("namespace") == namespace and r.inputs["metadata"]["name"] == name
    ]
    return secret, secret.raw_inputs["stringData"]


@pytest.mark.parametrize("stack", ["prod", "dev"])
def test_every_engineer_pushes_as_themselves_with_their_namespaces_secret(plans: dict[str, Plan], stack: str) -> None:
    plan = plans[stack]
    assert plan.resources, stack
    mirror = config_values(stack)["akiba:registry"]["mirror"]
    htpasswd_secret, files = _string_data(plan, NAMESPACE, "registry-htpasswd")
    assert any(p.startswith("stringData") for p in htpasswd_secret.secret_paths)  # hashes stay secret
    lines = _lines(files["htpasswd"])
    randoms = _answered(plan)
    engineers = _engineers(stack)
    assert engineers
    assert set(lines) == {PUSH_USER, PULL_USER, *engineers}
    sent = {}
    for login in engineers:
        secret, data = _string_data(plan, engineer_namespace(login), REGISTRY_SECRET)
        assert any(p.startswith("stringData") for p in secret.secret_paths), (stack, login)
        user, password = _login_of(data[CONFIG_KEY], mirror)
        assert user == login, (stack, login)
        # The mock engine's bcrypt hash is no real hash: the password and the line both come
        # from the engineer's own RandomPassword (the renderer's bcrypt is tested above).
        account = randoms[f"registry-engineer-{login}"]
        assert password == account["result"] and lines[login] == account["bcryptHash"], (stack, login)
        assert data[CA_KEY] == plan.raw_outputs["caCertPem"]  # the CA the registry's certificate is signed by
        sent[login] = password
    assert len(set(sent.values())) == len(sent)  # nobody shares a password
    assert plan.raw_outputs["registryPushPassword"] not in sent.values()


def test_removing_an_engineer_removes_their_account_and_nothing_else() -> None:
    gone = _engineers("prod")[-1]
    plan = references.plan(edited("prod", lambda v: v.__setitem__("akiba:engineers", v["akiba:engineers"][:-1])), ROOT)
    assert plan.resources, "prod: the recorded plan is empty"
    _, files = _string_data(plan, NAMESPACE, "registry-htpasswd")
    lines = _lines(files["htpasswd"])
    assert gone not in lines
    assert not [r.name for r in plan.resources if "registry" in r.name and gone in r.name.split("-")]
    assert not [
        r.name
        for r in plan.by_type("kubernetes:core/v1:Secret")
        if r.inputs["metadata"].get("namespace") == engineer_namespace(gone)
    ]
    # The others keep their passwords (same resources, same hashes): nobody's push breaks.
    randoms = _answered(plan)
    for login in _engineers("prod")[:-1]:
        assert lines[login] == randoms[f"registry-engineer-{login}"]["bcryptHash"], login


def _home_pods(plan: Plan) -> list[tuple[str, dict[str, Any]]]:
    return [
        (r.inputs["metadata"]["namespace"], r.raw_inputs["spec"]["template"]["spec"])
        for r in plan.by_type("kubernetes:apps/v1:DaemonSet")
        if r.inputs["metadata"]["name"] == "home"
    ]


@pytest.mark.parametrize("stack", ["prod", "dev"])
def test_home_pod_gives_only_the_shell_its_own_docker_config_and_the_daemon_the_ca(
    plans: dict[str, Plan], stack: str
) -> None:
    plan = plans[stack]
    assert plan.resources, stack
    mirror = config_values(stack)["akiba:registry"]["mirror"]
    pods = _home_pods(plan)
    assert sorted(ns for ns, _ in pods) == sorted(engineer_namespace(login) for login in _engineers(stack))
    for namespace, pod in pods:
        # A pod mounts Secrets of its own namespace only: `registry` here is this engineer's.
        views = {
            v["name"]: v["secret"] for v in pod["volumes"] if v.get("secret", {}).get("secretName") == REGISTRY_SECRET
        }
        assert {n: [i["key"] for i in s["items"]] for n, s in views.items()} == {
            CLIENT_VOLUME: [CONFIG_KEY],
            DAEMON_VOLUME: [CA_KEY],
        }, namespace
        mounts = {c["name"]: {m["name"]: m for m in c.get("volumeMounts", [])} for c in pod["containers"]}
        shell = mounts.pop("home")
        assert shell[CLIENT_VOLUME]["mountPath"] == DOCKER_CONFIG_DIR and shell[CLIENT_VOLUME]["readOnly"]
        assert "subPath" not in shell[CLIENT_VOLUME]  # a new password reaches the running pod
        assert DAEMON_VOLUME not in shell
        (daemon,) = mounts.values()
        assert CLIENT_VOLUME not in daemon  # the password stays with the CLI
        assert daemon[DAEMON_VOLUME]["mountPath"] == f"{DAEMON_CERTS_DIR}/{mirror}"


@pytest.mark.parametrize("stack", ["prod", "dev"])
def test_every_ssh_session_reads_docker_config_from_the_secret(plans: dict[str, Plan], stack: str) -> None:
    plan = plans[stack]
    assert plan.resources, stack
    mirror = config_values(stack)["akiba:registry"]["mirror"]
    configs = {
        r.inputs["metadata"]["namespace"]: r.raw_inputs["data"]["sshd_config"]
        for r in plan.by_type("kubernetes:core/v1:ConfigMap")
        if r.inputs["metadata"]["name"] == "home-accounts"
    }
    for login in _engineers(stack):
        (set_env,) = [
            line.split()[1:] for line in configs[engineer_namespace(login)].splitlines() if line.startswith("SetEnv ")
        ]
        assert {
            f"DOCKER_CONFIG={DOCKER_CONFIG_DIR}",
            f"BUILDX_CONFIG=/home/{login}/.docker/buildx",  # buildx writes; DOCKER_CONFIG is read-only
            f"AKIBA_REGISTRY={mirror}",
        } <= set(set_env), (stack, login)


def test_registry_reads_the_htpasswd_secret_as_a_directory_so_updates_arrive(plans: dict[str, Plan]) -> None:
    for stack, plan in plans.items():
        assert plan.resources, stack
        deployments = [
            r
            for r in plan.by_type("kubernetes:apps/v1:Deployment")
            if r.inputs["metadata"].get("namespace") == NAMESPACE
        ]
        assert deployments, stack
        for d in deployments:
            spec = d.raw_inputs["spec"]["template"]["spec"]
            (auth,) = [
                v["name"] for v in spec["volumes"] if v.get("secret", {}).get("secretName") == "registry-htpasswd"
            ]
            (mount,) = [m for c in spec["containers"] for m in c["volumeMounts"] if m["name"] == auth]
            assert "subPath" not in mount, (stack, d.name)  # the kubelet does not update a subPath
