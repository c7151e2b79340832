"""The home container's sshd: the rendered config passes `sshd -t`, and a real sshd on loopback
lets an engineer in with a key and nobody in any other way.

The real-sshd tests run as root (sshd switches to the user; the test user is made with useradd
and removed afterwards). In CI a missing tool or root fails them; elsewhere they skip.
"""

from __future__ import annotations

import grp
import os
import pwd
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

from components.engineers.home_sshd import (
    CIPHERS,
    KEX_ALGORITHMS,
    MACS,
    Engineer,
    engineer_problems,
    render_authorized_keys,
    render_group_entries,
    render_passwd_entries,
    render_shadow_entries,
    render_sshd_config,
)
from tests.conftest import IN_CI, require_tool
from tests.servers import free_port, stop

# A real ed25519 public key (its private half was thrown away): for the pure tests.
KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOl+A//5LFfTZpfE7f7fCgRJMx1vwhPES+k37g0FJiRB alice@laptop"
ALICE = Engineer("alice", 2001, 2001, (KEY,), "Alice Example")
BOB = Engineer("bob", 2002, 2002, (KEY.replace("alice", "bob"),))
PRIVSEP = Path("/run/sshd")  # sshd's privilege separation directory


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


def test_accounts_render_as_passwd_group_and_shadow_lines() -> None:
    assert render_passwd_entries([ALICE, BOB]) == (
        "alice:x:2001:2001:Alice Example:/home/alice:/bin/bash\nbob:x:2002:2002::/home/bob:/bin/bash\n"
    )
    assert render_group_entries([ALICE, BOB], {"docker": 2375}) == (
        "alice:x:2001:\nbob:x:2002:\ndocker:x:2375:alice,bob\n"
    )
    # Not "!": with UsePAM no, sshd refuses a "!" account even with a valid key (tested below).
    assert render_shadow_entries([ALICE]) == "alice:*:::::::\n"
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


# --- real checkers --------------------------------------------------------------------------


@pytest.fixture(scope="module", autouse=True)
def privsep_dir() -> None:
    """sshd refuses to start, even for -t, without /run/sshd (the package's init makes it).

    Made if missing and left in place, as the init script leaves it: removing it at the end would
    break a concurrent run of these tests that found it already there.
    """
    if os.geteuid() == 0:
        PRIVSEP.mkdir(mode=0o755, exist_ok=True)


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


# --- a real sshd on loopback ----------------------------------------------------------------


@dataclass
class Home:
    engineer: Engineer
    port: int
    state: Path
    key: Path  # the engineer's private key
    host_key: str  # "<type> <base64>" of sshd's host key
    log: Path


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


def _free_id() -> int:
    """An id free as uid and gid, from a random start so concurrent runs rarely pick the same."""
    taken = {p.pw_uid for p in pwd.getpwall()} | {g.gr_gid for g in grp.getgrall()}
    start = secrets.randbelow(1000)
    return next(i for i in (59000 + (start + k) % 1000 for k in range(1000)) if i not in taken)


def _create_account(name: str, key: str, homes: Path) -> Engineer:
    """groupadd/useradd from the rendered passwd line (so the tests check what it means);
    another id when a concurrent run took the one picked (exit status 4: id not unique)."""
    for _ in range(20):
        ids = _free_id()
        engineer = Engineer(name, ids, ids, (key,), "Akiba Test")
        _, _, uid, gid, gecos, home, shell = render_passwd_entries([engineer], home_root=str(homes)).strip().split(":")
        if _account_tool("groupadd", "-g", gid, name, ok=(0, 4)).returncode == 4:
            continue
        useradd = ("useradd", "-u", uid, "-g", gid, "-c", gecos, "-d", home, "-s", shell, "-M", name)
        if _account_tool(*useradd, ok=(0, 4)).returncode == 4:
            _sh("groupdel", name)
            continue
        return engineer
    pytest.fail("no free uid/gid in 59000..59999")


def _account_tool(*args: str, ok: tuple[int, ...] = (0,)) -> subprocess.CompletedProcess[str]:
    """Run useradd & co.; exit status 10 ("cannot lock /etc/passwd|group") means another run
    holds the lock for a moment, so try again."""
    for _ in range(50):
        result = subprocess.run(list(args), capture_output=True, text=True, timeout=30)
        if result.returncode != 10:
            break
        time.sleep(0.1)
    assert result.returncode in ok, f"{args}: {result.stderr}"
    return result


def _sh(*args: str) -> None:
    _account_tool(*args)


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


def _start_sshd(config: Path, port: int, log: Path, *extra: str) -> subprocess.Popen[bytes]:
    sshd = _tool("sshd", "apt-get install openssh-server")
    # -D: stay in the foreground (our child, stopped by PID); -e: log to stderr, i.e. the log file.
    with log.open("ab") as out:
        proc = subprocess.Popen([sshd, "-D", "-e", "-f", str(config), "-p", str(port), *extra], stderr=out)
    _wait_listening(proc, port, log)
    return proc


@pytest.fixture(scope="module")
def home() -> Iterator[Home]:
    _tool("sshd", "apt-get install openssh-server")
    _tool("ssh", "apt-get install openssh-client")
    _require_root()
    for tool in ("useradd", "userdel", "usermod", "chage"):
        _tool(tool, "apt-get install passwd")

    state = _root_owned_tmp()
    name = f"akt{secrets.token_hex(4)}"  # unique, so a leftover from a killed run never collides
    procs: list[subprocess.Popen[bytes]] = []
    created = False
    try:
        client = state / "client"
        client.mkdir(mode=0o700)
        key = _keygen(client / "id_ed25519")
        _keygen(state / "ssh_host_ed25519_key")

        created = True  # from here on, teardown removes whatever of the account exists
        # Homes in the state dir, not under /home.
        engineer = _create_account(name, key, state / "homes")
        _set_shadow(name, render_shadow_entries([engineer]).split(":")[1])
        home_dir = state / "homes" / name
        home_dir.parent.mkdir(mode=0o755)
        home_dir.mkdir(mode=0o700)
        os.chown(home_dir, engineer.uid, engineer.gid)

        keys = state / "authorized_keys"
        keys.mkdir(mode=0o755)
        (keys / name).write_text(render_authorized_keys(engineer))
        # root's file holds the same key: root must still be refused.
        (keys / "root").write_text(render_authorized_keys(engineer))

        port = free_port()
        host_key = state / "ssh_host_ed25519_key"
        config = state / "sshd_config"
        config.write_text(
            render_sshd_config(
                port,
                [name],
                [str(host_key)],
                listen_addresses=["127.0.0.1"],
                authorized_keys_dir=str(keys),
                pid_file=str(state / "sshd.pid"),
            )
        )
        host_pub = " ".join(Path(f"{host_key}.pub").read_text().split()[:2])
        log = state / "sshd.log"
        procs.append(_start_sshd(config, port, log))
        yield Home(engineer, port, state, client / "id_ed25519", host_pub, log)
    finally:
        for proc in procs:
            stop(proc)
        if created:
            # 6: no such user/group (userdel removes the user's own group; a failed useradd leaves it).
            _account_tool("userdel", name, ok=(0, 6))
            _account_tool("groupdel", name, ok=(0, 6))
        shutil.rmtree(state, ignore_errors=True)


def _set_shadow(name: str, password_field: str) -> None:
    _sh("usermod", "-p", password_field, name)
    # Aging off, as render_shadow_entries writes it (a 0 last-change would force a change).
    _sh("chage", "-d", "-1", "-m", "-1", "-M", "-1", "-W", "-1", "-I", "-1", "-E", "-1", name)


def _ssh_args(home: Home, port: int, *, batch: bool = True) -> list[str]:
    """ssh to 127.0.0.1:port with nothing from the caller's ~/.ssh, the agent or a known_hosts."""
    known_hosts = home.state / "client" / f"known_hosts_{port}"
    # The host key, checked: we talk to our sshd and to nothing else that took the port.
    known_hosts.write_text(f"[127.0.0.1]:{port} {home.host_key}\n")
    args = [_tool("ssh", "apt-get install openssh-client"), "-F", "/dev/null", "-p", str(port)]
    args += ["-o", f"UserKnownHostsFile={known_hosts}", "-o", "StrictHostKeyChecking=yes"]
    args += ["-o", "ConnectTimeout=10", "-o", "IdentityAgent=none", "-o", "IdentitiesOnly=yes"]
    # BatchMode: never prompt; without it (for sshpass) allow exactly one password prompt.
    return [*args, "-o", "BatchMode=yes" if batch else "NumberOfPasswordPrompts=1"]


def _ssh(home: Home, user: str, *options: str, command: str = "true") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*_ssh_args(home, home.port), *options, f"{user}@127.0.0.1", command],
        capture_output=True,
        text=True,
        timeout=30,
        stdin=subprocess.DEVNULL,
    )


def _log_says(home: Home, text: str) -> bool:
    deadline = time.monotonic() + 5  # sshd's child logs just after the client hangs up
    while time.monotonic() < deadline:
        if text in home.log.read_text():
            return True
        time.sleep(0.05)
    return False


@pytest.mark.checker
def test_engineer_logs_in_with_key_as_their_own_uid(home: Home) -> None:
    e = home.engineer
    result = _ssh(home, e.name, "-i", str(home.key), command="id -u; id -g; pwd")
    assert result.returncode == 0, result.stderr + home.log.read_text()
    assert result.stdout.split() == [str(e.uid), str(e.gid), str(home.state / "homes" / e.name)]
    # The system reads the account exactly as rendered.
    passwd = subprocess.run(["getent", "passwd", e.name], capture_output=True, text=True).stdout
    assert passwd == render_passwd_entries([e], home_root=str(home.state / "homes"))
    group = subprocess.run(["getent", "group", e.name], capture_output=True, text=True).stdout
    assert group == render_group_entries([e], {})
    shadow = subprocess.run(["getent", "shadow", e.name], capture_output=True, text=True).stdout
    assert shadow == render_shadow_entries([e])


@pytest.mark.checker
def test_password_login_is_refused_though_the_password_is_right(home: Home) -> None:
    sshpass = require_tool("sshpass", "apt-get install sshpass")
    openssl = require_tool("openssl", "apt-get install openssl")
    e = home.engineer
    password = secrets.token_urlsafe(12)
    # On stdin: token_urlsafe may start with "-", which openssl would take for an option.
    hashed = subprocess.run(
        [openssl, "passwd", "-6", "-stdin"], input=password, capture_output=True, text=True, check=True, timeout=30
    )
    _set_shadow(e.name, hashed.stdout.strip())
    password_only = ["-o", "PreferredAuthentications=password,keyboard-interactive", "-o", "PubkeyAuthentication=no"]
    try:
        env = {**os.environ, "SSHPASS": password}
        refused = subprocess.run(
            [sshpass, "-e", *_ssh_args(home, home.port, batch=False), *password_only, f"{e.name}@127.0.0.1", "true"],
            capture_output=True,
            text=True,
            timeout=30,
            env=env,
        )
        assert refused.returncode != 0
        # The server offers nothing but keys.
        assert "Permission denied (publickey)" in refused.stderr, refused.stderr

        # Control: the same sshd config with passwords turned on (command-line options win)
        # accepts this password, so the refusal above is the config's doing.
        port = free_port()
        control = _start_sshd(
            home.state / "sshd_config",
            port,
            home.state / "sshd-control.log",
            "-o",
            "PasswordAuthentication=yes",
            "-o",
            "AuthenticationMethods=any",
            "-o",
            f"PidFile={home.state / 'sshd-control.pid'}",
        )
        try:
            args = _ssh_args(home, port, batch=False)
            accepted = subprocess.run(
                [sshpass, "-e", *args, *password_only, f"{e.name}@127.0.0.1", "true"],
                capture_output=True,
                text=True,
                timeout=30,
                env=env,
            )
            assert accepted.returncode == 0, accepted.stderr
        finally:
            stop(control)
    finally:
        _set_shadow(e.name, render_shadow_entries([e]).split(":")[1])


@pytest.mark.checker
def test_root_is_refused_even_with_an_authorized_key(home: Home) -> None:
    result = _ssh(home, "root", "-i", str(home.key))
    assert result.returncode != 0
    assert "Permission denied" in result.stderr
    assert _log_says(home, "User root from 127.0.0.1 not allowed because not listed in AllowUsers")


@pytest.mark.checker
def test_keys_in_the_home_directory_grant_nothing(home: Home) -> None:
    """AuthorizedKeysFile points at the platform's files: a key dropped into ~/.ssh is ignored."""
    e = home.engineer
    other = home.state / "client" / "id_other"
    pub = _keygen(other) if not other.exists() else Path(f"{other}.pub").read_text()
    ssh_dir = home.state / "homes" / e.name / ".ssh"
    ssh_dir.mkdir(mode=0o700, exist_ok=True)
    (ssh_dir / "authorized_keys").write_text(pub + "\n")
    for path in (ssh_dir, ssh_dir / "authorized_keys"):
        os.chown(path, e.uid, e.gid)
    result = _ssh(home, e.name, "-i", str(other))
    assert result.returncode != 0
    assert "Permission denied (publickey)" in result.stderr


@pytest.mark.checker
def test_a_locked_shadow_entry_refuses_even_a_valid_key(home: Home) -> None:
    """Why render_shadow_entries writes "*": with UsePAM no, "!" (useradd's default) locks keys out."""
    e = home.engineer
    _set_shadow(e.name, "!")
    try:
        result = _ssh(home, e.name, "-i", str(home.key))
        assert result.returncode != 0
        assert _log_says(home, f"User {e.name} not allowed because account is locked")
    finally:
        _set_shadow(e.name, render_shadow_entries([e]).split(":")[1])
    assert _ssh(home, e.name, "-i", str(home.key)).returncode == 0
