"""The home container's sshd: the rendered config passes `sshd -t`, and two real sshds on
loopback, run as the home pods run them, let each engineer into their own home and nowhere else.

Each engineer's sshd runs as that engineer's uid (setpriv: no capabilities, no_new_privs, as
the pod's securityContext) in a mount namespace of its own (unshare) that sees what their pod
sees: /etc/passwd and /etc/group with the image's lines plus theirs, their own home at
/home/<login> and no other, their sshd_config, host key and authorized_keys, all rendered by
components.engineers.home_containers. The accounts exist only inside those namespaces: nothing
is added to this machine's /etc/passwd. Starting them needs root (CI runs as root); in CI a
missing tool or root fails the tests, elsewhere they skip.
"""

from __future__ import annotations

import grp
import os
import pwd
import re
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from components.engineers.home_containers import SESSION_ENV, accounts_config, known_hosts_line, sshd_config
from components.engineers.home_sshd import (
    CIPHERS,
    KEX_ALGORITHMS,
    MACS,
    Engineer,
    engineer_problems,
    render_authorized_keys,
    render_group_entries,
    render_passwd_entries,
    render_sshd_config,
)
from components.engineers.rootless_docker import docker_client_env
from tests.conftest import IN_CI, require_tool
from tests.servers import free_port, stop

# What every session of a home pod gets for the engineer's own Docker daemon.
DOCKER_ENV = {e["name"]: e["value"] for e in docker_client_env()}
# A real ed25519 public key (its private half was thrown away): for the pure tests.
KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOl+A//5LFfTZpfE7f7fCgRJMx1vwhPES+k37g0FJiRB alice@laptop"
ALICE = Engineer("alice", 2001, 2001, (KEY,), "Alice Example")
BOB = Engineer("bob", 2002, 2002, (KEY.replace("alice", "bob"),))


def _tool(name: str, install: str) -> str:
    # sshd lives in /usr/sbin, which a non-login PATH may lack.
    sbin = Path("/usr/sbin") / name
    return str(sbin) if sbin.exists() else require_tool(name, install)


def _require_root() -> None:
    if os.geteuid() != 0:
        message = "a real sshd that switches users needs root"
        if IN_CI:
            pytest.fail(f"{message}: CI runs as root")
        pytest.skip(message)


def _keygen(path: Path) -> str:
    """A fresh ed25519 key pair; returns the public key line."""
    ssh_keygen = _tool("ssh-keygen", "apt-get install openssh-client")
    subprocess.run([ssh_keygen, "-q", "-t", "ed25519", "-N", "", "-C", path.name, "-f", str(path)], check=True)
    return Path(f"{path}.pub").read_text().strip()


# --- pure renderers -------------------------------------------------------------------------


def test_accounts_render_as_passwd_and_group_lines() -> None:
    assert render_passwd_entries([ALICE, BOB]) == (
        "alice:x:2001:2001:Alice Example:/home/alice:/bin/bash\nbob:x:2002:2002::/home/bob:/bin/bash\n"
    )
    assert render_group_entries([ALICE, BOB], {"docker": 2375}) == (
        "alice:x:2001:\nbob:x:2002:\ndocker:x:2375:alice,bob\n"
    )
    # The home pod's own: only its engineer, no shared group.
    assert render_group_entries([ALICE]) == "alice:x:2001:\n"
    assert render_authorized_keys(ALICE) == KEY + "\n"


def test_every_engineer_problem_is_reported_at_once() -> None:
    bad = [
        Engineer("Alice", 2001, 2001, (KEY,)),
        Engineer("root", 0, 0, (KEY,)),
        Engineer("carol", 2001, 500, ()),
        Engineer("dave", 2003, 2003, ("ssh-dss AAAAB3NzaC1kc3MAAACBAP",)),
        Engineer("erin", 2004, 2004, ("ssh-rsa " + KEY.split()[1],)),  # an ed25519 blob labelled rsa
        Engineer("frank", 2005, 2005, (KEY,), "Frank: admin"),
    ]
    problems = "\n".join(engineer_problems(bad))
    for expected in [
        "'Alice': not a login name",
        "root: the name is reserved",
        "root: uid 0 is outside",
        "carol: gid 500 is outside",
        "carol: no ssh key",
        "dave: ssh_keys[0] key type 'ssh-dss' is not accepted",
        "erin: ssh_keys[0] key data does not hold a ssh-rsa key",
        "frank: full_name: 'Frank: admin' must not contain ':'",
        "uid used by more than one engineer: 2001",
    ]:
        assert expected in problems
    with pytest.raises(ValueError, match="invalid engineers"):
        render_passwd_entries(bad)


def test_sshd_config_refuses_what_would_open_it_up() -> None:
    with pytest.raises(ValueError) as err:
        render_sshd_config(22, [], [], listen_addresses=["127.0.0.1"])
    assert "port 22" in str(err.value) and "AllowUsers would be empty" in str(err.value)
    assert "no host key" in str(err.value)
    with pytest.raises(ValueError, match="'root': not a login name"):
        render_sshd_config(2222, ["root"], ["/k"], listen_addresses=["127.0.0.1"])
    with pytest.raises(ValueError, match="must be an absolute path"):
        render_sshd_config(2222, ["alice"], ["/k"], listen_addresses=["127.0.0.1"], authorized_keys_dir="keys\nx")
    # A value sshd would split or a quote that would end it early.
    with pytest.raises(ValueError, match="SetEnv PATH="):
        render_sshd_config(2222, ["alice"], ["/k"], listen_addresses=["127.0.0.1"], set_env={"PATH": "/a b"})


def test_the_pod_config_serves_its_engineer_alone() -> None:
    data = accounts_config(ALICE, {"DOCKER_HOST": "tcp://127.0.0.1:2376"})
    assert data["passwd"] == "alice:x:2001:2001:Alice Example:/home/alice:/bin/bash\n"
    assert data["authorized_keys"] == KEY + "\n"
    config = data["sshd_config"]
    assert "AllowUsers alice\n" in config and "Port 2222\n" in config
    assert "AuthorizedKeysFile /etc/ssh/authorized_keys/%u\n" in config
    (set_env,) = [line for line in config.splitlines() if line.startswith("SetEnv ")]
    assert "DOCKER_HOST=tcp://127.0.0.1:2376" in set_env.split()
    assert f"KUBECONFIG={SESSION_ENV['KUBECONFIG']}" in set_env.split()
    assert "bob" not in "".join(data.values())


# --- real checkers --------------------------------------------------------------------------


@pytest.fixture(scope="module", autouse=True)
def privsep_dir() -> None:
    """sshd refuses to start, even for -t, without /run/sshd (the package's init makes it).

    Made if missing and left in place, as the init script leaves it: removing it at the end would
    break a concurrent run of these tests that found it already there.
    """
    if os.geteuid() == 0:
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)


@pytest.fixture
def host_key(tmp_path: Path) -> Path:
    _keygen(tmp_path / "ssh_host_ed25519_key")
    return tmp_path / "ssh_host_ed25519_key"


def _sshd_t(config: str, where: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    sshd = _tool("sshd", "apt-get install openssh-server")
    path = where / "sshd_config"
    path.write_text(config)
    return subprocess.run([sshd, "-t" if not extra else "-T", "-f", str(path), *extra], capture_output=True, text=True)


@pytest.mark.checker
def test_rendered_config_passes_sshd_t_and_means_what_it_says(tmp_path: Path, host_key: Path) -> None:
    config = render_sshd_config(
        2222,
        ["alice", "bob"],
        [str(host_key)],
        listen_addresses=["127.0.0.1"],
        authorized_keys_dir=str(tmp_path / "keys"),
        pid_file=str(tmp_path / "sshd.pid"),
    )
    checked = _sshd_t(config, tmp_path)
    assert checked.returncode == 0, checked.stderr
    # `sshd -T` prints the effective settings for a connection: what sshd itself understood.
    effective = _sshd_t(config, tmp_path, "-C", "user=alice,host=laptop,addr=127.0.0.1")
    assert effective.returncode == 0, effective.stderr
    settings = {line.split(" ", 1)[0]: line.split(" ", 1)[1] for line in effective.stdout.splitlines() if " " in line}
    assert settings["passwordauthentication"] == "no"
    assert settings["kbdinteractiveauthentication"] == "no"
    assert settings["permitrootlogin"] == "no"
    assert settings["usepam"] == "no"
    assert settings["authenticationmethods"] == "publickey"
    assert settings["authorizedkeysfile"] == f"{tmp_path}/keys/%u"
    assert settings["x11forwarding"] == "no"
    assert settings["permituserenvironment"] == "no"
    assert settings["port"] == "2222"
    # Every algorithm kept: sshd drops none it does not know silently, but check what it uses.
    assert settings["kexalgorithms"] == ",".join(KEX_ALGORITHMS)
    assert settings["ciphers"] == ",".join(CIPHERS)
    assert settings["macs"] == ",".join(MACS)


@pytest.mark.checker
def test_sshd_t_rejects_an_algorithm_this_openssh_lacks(tmp_path: Path, host_key: Path) -> None:
    """The check is real: ML-KEM key exchange (OpenSSH 9.9+) is refused by Debian 12's 9.2."""
    config = render_sshd_config(2222, ["alice"], [str(host_key)], listen_addresses=["127.0.0.1"])
    bad = config.replace("KexAlgorithms ", "KexAlgorithms mlkem768x25519-sha256,")
    version = subprocess.run([_tool("sshd", "apt-get install openssh-server"), "-V"], capture_output=True, text=True)
    if "OpenSSH_9.9" in version.stderr or "OpenSSH_1" in version.stderr:
        pytest.skip(f"this sshd knows ML-KEM ({version.stderr.strip()})")
    checked = _sshd_t(bad, tmp_path)
    assert checked.returncode != 0
    assert "KexAlgorithms" in checked.stderr


# --- two engineers' sshds on loopback, each as its pod runs it ------------------------------


@dataclass
class Pod:
    """One engineer's home pod, as far as sshd and a session can tell."""

    engineer: Engineer
    port: int
    key: Path  # the engineer's private key (the client's)
    host_key: str  # "<type> <base64>" of this pod's host key
    log: Path
    store: Path  # what backs this pod's files; hidden from every pod's namespace
    proc: subprocess.Popen[bytes]


def _root_owned_tmp() -> Path:
    """A state dir whose every parent is root-owned and not group/world writable.

    StrictModes checks each directory above AuthorizedKeysFile up to "/", so /tmp (mode 1777)
    would make sshd ignore the keys; /run is root's 0755 tmpfs.
    """
    for base in ("/run", "/var/lib"):
        if os.access(base, os.W_OK):
            path = Path(tempfile.mkdtemp(prefix="akiba-sshd-test-", dir=base))
            path.chmod(0o755)
            return path
    pytest.fail("no root-owned writable directory for sshd's state (/run, /var/lib)")


def _free_ids(count: int) -> list[int]:
    """Ids free as uid and gid on this machine, from a random start (concurrent runs)."""
    taken = {p.pw_uid for p in pwd.getpwall()} | {g.gr_gid for g in grp.getgrall()}
    start = secrets.randbelow(1000)
    free = (i for i in (59000 + (start + k) % 1000 for k in range(1000)) if i not in taken)
    return [next(free) for _ in range(count)]


def _wait_listening(proc: subprocess.Popen[bytes], port: int, log: Path) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"sshd exited with {proc.returncode}:\n{log.read_text()}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    pytest.fail(f"sshd did not listen on 127.0.0.1:{port} within 10 s:\n{log.read_text()}")


def _pod_files(engineer: Engineer, store: Path, view: Path, port: int, host_key: Path) -> None:
    """The pod's files, from the same renderers its ConfigMap and Secret use, owned and moded as
    the kubelet leaves them: ConfigMap and Secret files root's and 0444, the home the engineer's."""
    data = accounts_config(engineer, DOCKER_ENV)
    config = sshd_config(
        engineer,
        DOCKER_ENV,
        port=port,
        listen="127.0.0.1",
        host_key=f"{view}/etc/ssh_host_ed25519_key",
        authorized_keys_dir=f"{view}/etc/authorized_keys",
        pid_file=f"{view}/run/sshd.pid",
    )
    # The same config as the pod's, but for where its files are and where it listens.
    moved = {"Port", "ListenAddress", "HostKey", "AuthorizedKeysFile", "PidFile"}
    ours, pods = config.splitlines(), data["sshd_config"].splitlines()
    assert len(ours) == len(pods)
    assert {a.split(" ", 1)[0] for a, b in zip(ours, pods, strict=True) if a != b} == moved

    etc = store / "etc"
    (etc / "authorized_keys").mkdir(parents=True, mode=0o755)
    files = {
        etc / "sshd_config": config,
        etc / "authorized_keys" / engineer.name: data["authorized_keys"],
        # root's file holds the engineer's key too: root must still be refused.
        etc / "authorized_keys" / "root": data["authorized_keys"],
        # What the init container writes: the image's lines (here this machine's), then theirs.
        etc / "passwd": Path("/etc/passwd").read_text() + data["passwd"],
        etc / "group": Path("/etc/group").read_text() + data["group"],
    }
    for path, text in files.items():
        path.write_text(text)
        path.chmod(0o444)
    shutil.copy(host_key, etc / "ssh_host_ed25519_key")
    (etc / "ssh_host_ed25519_key").chmod(0o444)  # the Secret's defaultMode
    for writable, mode in (("home", 0o750), ("run", 0o700)):
        (store / writable).mkdir(mode=mode)
        os.chown(store / writable, engineer.uid, engineer.gid)


def _start_pod(engineer: Engineer, state: Path, port: int, *extra: str) -> subprocess.Popen[bytes]:
    """sshd in a mount namespace that sees only this engineer's files, as their uid."""
    sshd = _tool("sshd", "apt-get install openssh-server")
    store, view, login = state / "store" / engineer.name, state / "pod", engineer.name
    script = "\n".join(
        [
            "set -eu",
            f"mount --bind {store} {view}",  # this pod's files, where every pod has its own
            f"mount -t tmpfs -o mode=0755 akiba-test {state}/store",  # every engineer's store hidden
            f"mount --bind {view}/etc/passwd /etc/passwd",
            f"mount --bind {view}/etc/group /etc/group",
            "mount -t tmpfs -o mode=0755 akiba-test /home",  # the home volume, and no other
            f"mkdir /home/{login}",
            f"mount --bind {view}/home /home/{login}",
            # runAsUser/runAsGroup, capabilities drop ALL, allowPrivilegeEscalation false.
            f"exec setpriv --reuid={engineer.uid} --regid={engineer.gid} --clear-groups --inh-caps=-all"
            f" --bounding-set=-all --no-new-privs -- {sshd} -D -e -f {view}/etc/sshd_config {' '.join(extra)}",
        ]
    )
    log = state / "logs" / f"{login}-{port}.log"
    # unshare and sh exec: the PID is sshd's own, stopped by the test.
    with log.open("ab") as out:
        proc = subprocess.Popen(["unshare", "--mount", "--propagation", "private", "sh", "-c", script], stderr=out)
    _wait_listening(proc, port, log)
    return proc


@pytest.fixture(scope="module")
def pods() -> Iterator[dict[str, Pod]]:
    for tool, package in (("sshd", "openssh-server"), ("ssh", "openssh-client"), ("ssh-keygen", "openssh-client")):
        _tool(tool, f"apt-get install {package}")
    for tool in ("unshare", "setpriv", "mount"):
        require_tool(tool, "apt-get install util-linux")
    _require_root()

    state = _root_owned_tmp()
    procs: list[subprocess.Popen[bytes]] = []
    try:
        for private in ("client", "logs"):
            (state / private).mkdir(mode=0o700)
        (state / "store").mkdir(mode=0o755)
        (state / "pod").mkdir(mode=0o755)  # every pod's view is mounted here, in its own namespace
        suffix = secrets.token_hex(3)  # unique names: a leftover from a killed run never collides
        out: dict[str, Pod] = {}
        for role, ids in zip(("a", "b"), _free_ids(2), strict=True):
            login = f"akt{role}{suffix}"
            key = state / "client" / f"id_{login}"
            engineer = Engineer(login, ids, ids, (_keygen(key),), "Akiba Test")
            host_key = state / "client" / f"host_{login}"
            _keygen(host_key)
            port = free_port()
            _pod_files(engineer, state / "store" / login, state / "pod", port, host_key)
            procs.append(_start_pod(engineer, state, port))
            host_pub = " ".join(Path(f"{host_key}.pub").read_text().split()[:2])
            log = state / "logs" / f"{login}-{port}.log"
            out[role] = Pod(engineer, port, key, host_pub, log, state / "store" / login, procs[-1])
        yield out
    finally:
        for proc in procs:
            stop(proc)
        shutil.rmtree(state, ignore_errors=True)


def _ssh_args(pod: Pod, port: int | None = None, *, batch: bool = True) -> list[str]:
    """ssh to 127.0.0.1 with nothing from the caller's ~/.ssh or agent, checking the pod's host
    key under its alias (HostKeyAlias, as the README's ~/.ssh/config does)."""
    port = port or pod.port
    known_hosts = pod.log.parent.parent / "client" / f"known_hosts_{port}"
    known_hosts.write_text(known_hosts_line(pod.engineer.name, pod.host_key) + "\n")
    args = [_tool("ssh", "apt-get install openssh-client"), "-F", "/dev/null", "-p", str(port)]
    args += ["-o", f"UserKnownHostsFile={known_hosts}", "-o", "StrictHostKeyChecking=yes"]
    args += ["-o", f"HostKeyAlias=akiba-home-{pod.engineer.name}"]
    args += ["-o", "ConnectTimeout=10", "-o", "IdentityAgent=none", "-o", "IdentitiesOnly=yes"]
    # BatchMode: never prompt; without it (for sshpass) allow exactly one password prompt.
    return [*args, "-o", "BatchMode=yes" if batch else "NumberOfPasswordPrompts=1"]


def _ssh(pod: Pod, user: str, key: Path, command: str = "true") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*_ssh_args(pod), "-i", str(key), f"{user}@127.0.0.1", command],
        capture_output=True,
        text=True,
        timeout=30,
        stdin=subprocess.DEVNULL,
    )


def _log_says(pod: Pod, text: str) -> bool:
    deadline = time.monotonic() + 5  # sshd's child logs just after the client hangs up
    while time.monotonic() < deadline:
        if text in pod.log.read_text():
            return True
        time.sleep(0.05)
    return False


def _status(pid: int) -> dict[str, str]:
    lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    return {k: v.strip() for k, _, v in (line.partition(":") for line in lines)}


@pytest.mark.checker
def test_sshd_runs_as_its_engineer_with_no_privilege(pods: dict[str, Pod]) -> None:
    for pod in pods.values():
        status, uid = _status(pod.proc.pid), pod.engineer.uid
        assert status["Name"] == "sshd"
        assert status["Uid"].split() == [str(uid)] * 4 and status["Gid"].split() == [str(pod.engineer.gid)] * 4
        assert int(status["CapEff"], 16) == 0 and int(status["CapBnd"], 16) == 0
        assert status["NoNewPrivs"] == "1"


@pytest.mark.checker
def test_each_engineer_logs_in_to_their_own_home_as_themselves(pods: dict[str, Pod]) -> None:
    for pod in pods.values():
        e = pod.engineer
        command = "id -u; id -g; pwd; echo $KUBECONFIG $DOCKER_HOST; echo $PATH; ls -A /home; getent passwd $(id -un)"
        result = _ssh(pod, e.name, pod.key, command)
        assert result.returncode == 0, result.stderr + pod.log.read_text()
        uid, gid, cwd, clients, path, homes, passwd = result.stdout.splitlines()
        assert (uid, gid, cwd) == (str(e.uid), str(e.gid), f"/home/{e.name}")
        # sshd builds the session's environment from scratch: the platform's reaches it by SetEnv.
        assert clients.split() == [SESSION_ENV["KUBECONFIG"], DOCKER_ENV["DOCKER_HOST"]]
        assert path == SESSION_ENV["PATH"]
        assert homes == e.name  # one home in the pod: theirs
        assert passwd + "\n" == render_passwd_entries([e])  # the account as rendered
        assert _log_says(pod, f"Accepted publickey for {e.name} from 127.0.0.1")


@pytest.mark.checker
def test_a_key_opens_only_its_own_engineers_home(pods: dict[str, Pod]) -> None:
    a, b = pods["a"], pods["b"]
    for pod, user, key in ((b, b.engineer.name, a.key), (b, a.engineer.name, a.key), (a, a.engineer.name, b.key)):
        result = _ssh(pod, user, key, "echo in")
        assert result.returncode != 0 and "in" not in result.stdout.split()
        assert "Permission denied (publickey)" in result.stderr, result.stderr
    # The other engineer is not even an account in this pod.
    assert _log_says(b, f"Invalid user {a.engineer.name} from 127.0.0.1")


@pytest.mark.checker
def test_a_session_reaches_nothing_of_the_other_engineer(pods: dict[str, Pod]) -> None:
    for me, other in ((pods["a"], pods["b"]), (pods["b"], pods["a"])):
        theirs = other.engineer.name
        pod_view = me.store.parent.parent / "pod"
        # Each a path the other engineer's pod uses, or a way around the mounts through /proc.
        paths = [
            f"/home/{theirs}",
            f"{other.store}/home",
            f"{other.store}/etc/ssh_host_ed25519_key",
            f"{other.store}/etc/authorized_keys/{theirs}",
            f"/proc/{other.proc.pid}/root/home/{theirs}",
            f"/proc/{other.proc.pid}/root{pod_view}/etc/ssh_host_ed25519_key",
            f"/proc/{other.proc.pid}/root{pod_view}/etc/authorized_keys/{theirs}",
        ]
        probe = "; ".join(
            f"if cat {p} >/dev/null 2>&1 || ls {p} >/dev/null 2>&1; then echo READ {p}; fi" for p in paths
        )
        result = _ssh(me, me.engineer.name, me.key, f"{probe}; getent passwd {theirs} || echo no-account")
        assert result.returncode == 0, result.stderr
        assert result.stdout.split() == ["no-account"], result.stdout
        # Control: the same probe reads this pod's own host key. Its engineer can read it (sshd
        # runs as them), which is why every engineer's home has a host key of its own.
        own = _ssh(me, me.engineer.name, me.key, f"ssh-keygen -y -f {pod_view}/etc/ssh_host_ed25519_key")
        assert own.returncode == 0 and own.stdout.split()[:2] == me.host_key.split(), own.stderr
        assert other.host_key != me.host_key


@pytest.mark.checker
def test_root_is_refused_even_with_an_authorized_key(pods: dict[str, Pod]) -> None:
    pod = pods["a"]
    result = _ssh(pod, "root", pod.key, "echo in")
    assert result.returncode != 0 and "Permission denied" in result.stderr
    # sshd's first refusal: an account it reads as locked (as here), or not in AllowUsers.
    assert _log_says(pod, "User root "), pod.log.read_text()
    assert re.search(r"User root (from 127\.0\.0\.1 )?not allowed because", pod.log.read_text())


@pytest.mark.checker
def test_passwords_are_not_even_offered(pods: dict[str, Pod]) -> None:
    sshpass = require_tool("sshpass", "apt-get install sshpass")
    pod = pods["a"]
    password_only = ["-o", "PreferredAuthentications=password,keyboard-interactive", "-o", "PubkeyAuthentication=no"]

    def try_password(port: int) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sshpass, "-e", *_ssh_args(pod, port, batch=False), *password_only, f"{pod.engineer.name}@127.0.0.1"],
            capture_output=True,
            text=True,
            timeout=30,
            env={**os.environ, "SSHPASS": secrets.token_urlsafe(12)},
            stdin=subprocess.DEVNULL,
        )

    refused = try_password(pod.port)
    assert refused.returncode != 0
    # The methods the server offers: keys, nothing else.
    assert "Permission denied (publickey)" in refused.stderr, refused.stderr

    # Control: the same pod with passwords turned on (command-line options win) offers them, so
    # the refusal above is the config's doing.
    port = free_port()
    state = pod.store.parent.parent
    control = _start_pod(
        pod.engineer,
        state,
        port,
        "-p",
        str(port),
        "-o",
        "PasswordAuthentication=yes",
        "-o",
        "AuthenticationMethods=any",
        "-o",
        f"PidFile={state}/pod/run/control.pid",
    )
    try:
        offered = try_password(port)
        assert offered.returncode != 0
        assert re.search(r"Permission denied \([a-z,-]*password", offered.stderr), offered.stderr
    finally:
        stop(control)


@pytest.mark.checker
def test_keys_in_the_home_directory_grant_nothing(pods: dict[str, Pod]) -> None:
    """AuthorizedKeysFile is the platform's file: a key dropped into ~/.ssh is ignored."""
    pod = pods["a"]
    other = pod.key.parent / "id_dropped"
    pub = _keygen(other)
    dropped = f"mkdir -p -m 0700 ~/.ssh && echo '{pub}' > ~/.ssh/authorized_keys && chmod 0600 ~/.ssh/authorized_keys"
    assert _ssh(pod, pod.engineer.name, pod.key, dropped).returncode == 0
    result = _ssh(pod, pod.engineer.name, other)
    assert result.returncode != 0
    assert "Permission denied (publickey)" in result.stderr


@pytest.mark.checker
def test_keys_in_a_world_writable_directory_are_refused(pods: dict[str, Pod]) -> None:
    """Why the pod mounts authorized_keys as one file (subPath): a whole ConfigMap volume's
    directory is world-writable (0777), and StrictModes then ignores the keys in it."""
    pod = pods["a"]
    e, state = pod.engineer, pod.store.parent.parent
    volume = pod.store / "etc" / "volume"
    volume.mkdir(mode=0o777)
    volume.chmod(0o777)  # mkdir's mode is masked by the umask
    (volume / e.name).write_text(render_authorized_keys(e))
    (volume / e.name).chmod(0o444)
    port = free_port()
    view = f"{state}/pod"
    options = [f"AuthorizedKeysFile={view}/etc/volume/%u", f"PidFile={view}/run/volume.pid"]
    proc = _start_pod(e, state, port, "-p", str(port), *(a for o in options for a in ("-o", o)))
    try:
        result = subprocess.run(
            [*_ssh_args(pod, port), "-i", str(pod.key), f"{e.name}@127.0.0.1", "true"],
            capture_output=True,
            text=True,
            timeout=30,
            stdin=subprocess.DEVNULL,
        )
        assert result.returncode != 0 and "Permission denied (publickey)" in result.stderr, result.stderr
        log = state / "logs" / f"{e.name}-{port}.log"
        deadline = time.monotonic() + 5
        while "bad ownership or modes for directory" not in log.read_text() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert f"bad ownership or modes for directory {view}/etc/volume" in log.read_text()
    finally:
        stop(proc)
