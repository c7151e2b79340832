"""The home container's sshd and its accounts: pure renderers, no Pulumi resources.

Each engineer has their own home pod (a DaemonSet in their namespace, on every office GPU node,
components.engineers.home_containers): sshd from the ML runtime image, running AS THE ENGINEER,
with their CephFS home and nobody else's. A non-root sshd can log in only the user it runs as
(OpenSSH's session setup refuses any other uid), so one pod per engineer is exactly what it can
serve. Engineers `ssh -p <their port> <login>@<node>` and land in the same home and the same
tools on every node.

Accounts come from the platform, not from the image or the home directory:

- `/etc/passwd` and `/etc/group` get the engineer's line, rendered from config with fixed
  uid/gid, so a file written on one node is owned by the same person on every other node and in
  every Job that mounts the shared home. No shadow line: a non-root sshd cannot read
  /etc/shadow, and with `UsePAM no` it then takes the passwd entry's "x", which is neither a
  lock nor a password that can match.
- `authorized_keys` live under `/etc/ssh/authorized_keys/%u` (a ConfigMap, root-owned and
  read-only), not in `~/.ssh`: a key is granted or revoked by a config change, and a key an
  engineer (or a compromised process) drops into their home grants nothing.

How the GPUs are shared between interactive use and scheduled jobs:

- Every GPU is handed out by the scheduler, and only by it: a pod that requests `nvidia.com/gpu`
  gets whole GPUs, exclusively among pods, for as long as it runs.
- The home pod requests no GPU and sets no `NVIDIA_VISIBLE_DEVICES`: a login sees no GPU and can
  neither take one from a running Job nor keep one from the scheduler while logged out.
- Interactive GPU work (a notebook, a quick experiment) runs as a pod of its own that requests
  the GPUs it uses: `akiba-gpu-shell [N]` in a login (images/ml-runtime/akiba-gpu-shell) starts
  one in the engineer's namespace with their kubeconfig (mounted in the home pod, `KUBECONFIG`
  set), waits for free GPUs like a Job does, and holds them until the shell exits.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import pyrage  # type: ignore[import-untyped]  # compiled (rust age), no stubs

# Debian's adduser range for normal users; below is the system range, 65534 is nobody.
UID_MIN = 1000
UID_MAX = 59999

# POSIX-portable names, as Debian's adduser accepts by default (NAME_REGEX).
_NAME = re.compile(r"^[a-z][-a-z0-9_]{0,31}$")
# Names that a human account must never take: they belong to the image or to the system.
_RESERVED = frozenset({"root", "daemon", "bin", "sys", "sync", "nobody", "sshd", "messagebus", "docker"})

# Key types OpenSSH 9.x accepts, by the name at the start of a public key.
# ssh-dss is out (off by default since 7.0, gone in 10.0); "ssh-rsa" keys still sign with rsa-sha2-*.
KEY_TYPES = frozenset(
    {
        "ssh-ed25519",
        "sk-ssh-ed25519@openssh.com",
        "ecdsa-sha2-nistp256",
        "ecdsa-sha2-nistp384",
        "ecdsa-sha2-nistp521",
        "sk-ecdsa-sha2-nistp256@openssh.com",
        "ssh-rsa",
    }
)

# Algorithms both OpenSSH 9.2 (Debian 12) and 9.6 (Ubuntu 24.04, the image) accept. The
# post-quantum mlkem768x25519-sha256 arrived in 9.9: adding it here would make sshd refuse
# to start on these versions. AEAD or CTR ciphers, encrypt-then-MAC MACs only; Terrapin
# (CVE-2023-48795) is closed by "strict kex", native in 9.6 and backported to Debian 12's 9.2.
KEX_ALGORITHMS = (
    "sntrup761x25519-sha512@openssh.com",
    "curve25519-sha256",
    "curve25519-sha256@libssh.org",
    "diffie-hellman-group16-sha512",
    "diffie-hellman-group18-sha512",
)
CIPHERS = (
    "chacha20-poly1305@openssh.com",
    "aes256-gcm@openssh.com",
    "aes128-gcm@openssh.com",
    "aes256-ctr",
    "aes192-ctr",
    "aes128-ctr",
)
MACS = ("hmac-sha2-512-etm@openssh.com", "hmac-sha2-256-etm@openssh.com", "umac-128-etm@openssh.com")
HOST_KEY_ALGORITHMS = ("ssh-ed25519", "rsa-sha2-512", "rsa-sha2-256")
PUBKEY_ALGORITHMS = (
    "ssh-ed25519",
    "sk-ssh-ed25519@openssh.com",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
    "sk-ecdsa-sha2-nistp256@openssh.com",
    "rsa-sha2-512",
    "rsa-sha2-256",
)

AUTHORIZED_KEYS_DIR = "/etc/ssh/authorized_keys"
HOME_PORT = 2222  # in the pod: unprivileged, as sshd runs as the engineer
PID_FILE = "/run/home/sshd.pid"  # an emptyDir the engineer may write
_ENV_NAME = re.compile(r"^[A-Z_][A-Z0-9_]*$")


@dataclass(frozen=True)
class Engineer:
    name: str  # login name, e.g. "tanaka"
    uid: int  # stable on every node and in every pod that mounts the shared home, e.g. 2001
    gid: int  # the engineer's own group (same number as uid by convention), e.g. 2001
    ssh_keys: tuple[str, ...]  # OpenSSH public keys: "ssh-ed25519 AAAA... comment"
    full_name: str = ""  # the GECOS field, e.g. "Taro Tanaka"
    shell: str = "/bin/bash"


def key_problems(key: str) -> list[str]:
    """What is wrong with one public key line; empty when sshd would accept it."""
    parts = key.split()
    if "\n" in key or "\r" in key or len(parts) < 2:
        return ["is not one line of '<type> <base64> [comment]'"]
    kind, blob = parts[0], parts[1]
    if kind not in KEY_TYPES:
        return [f"key type {kind!r} is not accepted (one of {', '.join(sorted(KEY_TYPES))})"]
    try:
        raw = base64.b64decode(blob, validate=True)
    except binascii.Error:
        return ["key data is not base64"]
    # The blob starts with its own type as an SSH string: a copy-paste mix-up shows here.
    size = int.from_bytes(raw[:4], "big")
    if len(raw) < 4 + size or raw[4 : 4 + size] != kind.encode():
        return [f"key data does not hold a {kind} key"]
    if kind == "ssh-ed25519" and not _on_the_curve(key):
        # sshd reads it, but no private key has it: the engineer could never log in with it.
        return ["key data is no ed25519 public key (not a point of the curve): no private key matches it"]
    return []


def _on_the_curve(key: str) -> bool:
    """Whether an ssh-ed25519 line holds a real public key: age's parser (pyrage, which the
    sealed kubeconfigs use) decodes the point and refuses one off the curve."""
    try:
        pyrage.ssh.Recipient.from_str(key)
    except pyrage.RecipientError:
        return False
    return True


def _text_problems(label: str, value: str) -> list[str]:
    # One config line per value: a colon breaks passwd/group, a newline injects lines.
    return [f"{label}: {value!r} must not contain ':' or line breaks"] if set(value) & {":", "\n", "\r"} else []


def engineer_problems(engineers: Sequence[Engineer]) -> list[str]:
    """Every problem with the engineer list at once, each prefixed with the engineer's name."""
    problems: list[str] = []
    for e in engineers:
        if not _NAME.match(e.name):
            problems.append(f"{e.name!r}: not a login name ({_NAME.pattern})")
        elif e.name in _RESERVED:
            problems.append(f"{e.name}: the name is reserved for the system")
        for label, value in (("uid", e.uid), ("gid", e.gid)):
            if not UID_MIN <= value <= UID_MAX:
                problems.append(f"{e.name}: {label} {value} is outside {UID_MIN}..{UID_MAX}")
        problems += [f"{e.name}: {p}" for p in _text_problems("full_name", e.full_name)]
        if not e.shell.startswith("/") or _text_problems("shell", e.shell):
            problems.append(f"{e.name}: shell {e.shell!r} must be an absolute path")
        if not e.ssh_keys:
            problems.append(f"{e.name}: no ssh key: the account could never log in")
        for i, key in enumerate(e.ssh_keys):
            problems += [f"{e.name}: ssh_keys[{i}] {p}" for p in key_problems(key)]
    for label, values in (
        ("name", [e.name for e in engineers]),
        ("uid", [str(e.uid) for e in engineers]),
        ("gid", [str(e.gid) for e in engineers]),
    ):
        dupes = sorted(v for v, n in Counter(values).items() if n > 1)
        if dupes:
            problems.append(f"{label} used by more than one engineer: {', '.join(dupes)}")
    return problems


def _checked(engineers: Sequence[Engineer]) -> Sequence[Engineer]:
    problems = engineer_problems(engineers)
    if problems:
        raise ValueError("invalid engineers:\n  " + "\n  ".join(problems))
    return engineers


def render_passwd_entries(engineers: Sequence[Engineer], home_root: str = "/home") -> str:
    """Lines for /etc/passwd; the password lives in shadow ("x")."""
    return "".join(
        f"{e.name}:x:{e.uid}:{e.gid}:{e.full_name}:{home_root}/{e.name}:{e.shell}\n" for e in _checked(engineers)
    )


def render_group_entries(engineers: Sequence[Engineer], shared_groups: Mapping[str, int] | None = None) -> str:
    """Lines for /etc/group: each engineer's own group, then groups every engineer joins.

    shared_groups: name -> gid of groups every listed engineer joins, e.g. {"render": 2400};
    the home pod needs none (its Docker is the engineer's own rootless daemon).
    """
    shared_groups = shared_groups or {}
    checked = _checked(engineers)
    problems = [f"group {name!r}: not a group name" for name in shared_groups if not _NAME.match(name)]
    names, gids = {e.name for e in checked}, {e.gid for e in checked}
    problems += [
        f"group {n}: name or gid {g} is an engineer's" for n, g in shared_groups.items() if n in names or g in gids
    ]
    problems += [f"group {n}: gid {g} is not positive" for n, g in shared_groups.items() if g <= 0]
    if problems:
        raise ValueError("invalid groups:\n  " + "\n  ".join(problems))
    members = ",".join(e.name for e in checked)
    lines = [f"{e.name}:x:{e.gid}:\n" for e in checked]
    lines += [f"{name}:x:{gid}:{members}\n" for name, gid in shared_groups.items()]
    return "".join(lines)


def render_authorized_keys(engineer: Engineer) -> str:
    """The engineer's authorized_keys file, one key a line, for AuthorizedKeysFile .../%u."""
    return "".join(" ".join(key.split()) + "\n" for key in _checked([engineer])[0].ssh_keys)


def _list(values: Iterable[str]) -> str:
    return ",".join(values)


def render_sshd_config(
    port: int,
    users: Sequence[str],
    host_key_paths: Sequence[str],
    *,
    listen_addresses: Sequence[str],
    authorized_keys_dir: str = AUTHORIZED_KEYS_DIR,
    pid_file: str = PID_FILE,
    set_env: Mapping[str, str] | None = None,
) -> str:
    """sshd_config for the home container: key-only logins for the listed engineers.

    port: >= 1024: sshd runs as the engineer, who may not bind a privileged port; users: the
    login names (AllowUsers), in a home pod just its engineer; listen_addresses: e.g.
    ["0.0.0.0"] in the pod's own network namespace; host_key_paths: private host keys, mounted
    from the engineer's Secret so the fingerprint survives pod restarts and is the same on
    every node; authorized_keys_dir: where the platform provisions `<dir>/<user>` files;
    pid_file: somewhere the engineer may write; set_env: variables every session gets
    (sshd builds a session's environment from scratch: the container's own never reaches it),
    e.g. {"KUBECONFIG": "/etc/akiba/kube/config"}.
    """
    set_env = dict(set_env or {})
    problems = [] if 1024 <= port <= 65535 else [f"port {port} is outside 1024..65535"]
    if not users:
        problems.append("no users: AllowUsers would be empty and let everyone in")
    problems += [f"user {u!r}: not a login name" for u in users if not _NAME.match(u) or u in _RESERVED]
    if not host_key_paths:
        problems.append("no host key")
    for label, path in [("host key", p) for p in host_key_paths] + [
        ("authorized_keys_dir", authorized_keys_dir),
        ("pid_file", pid_file),
    ]:
        if not path.startswith("/") or any(c.isspace() for c in path):
            problems.append(f"{label} {path!r}: must be an absolute path without spaces")
    problems += [f"listen address {a!r}: must not contain spaces" for a in listen_addresses if " " in a]
    problems += [
        f"SetEnv {k}={v!r}: a variable name and a value without spaces or quotes"
        for k, v in set_env.items()
        if not _ENV_NAME.match(k) or not v or any(c.isspace() or c in "\"'\\" for c in v)
    ]
    if problems:
        raise ValueError("invalid sshd config:\n  " + "\n  ".join(problems))

    lines = [
        "# Rendered by components/engineers/home_sshd.py: the whole file, no Include of the distribution's",
        "# sshd_config.d (a drop-in there could turn passwords back on).",
        f"Port {port}",
        *(f"ListenAddress {address}" for address in listen_addresses),
        *(f"HostKey {path}" for path in host_key_paths),
        f"PidFile {pid_file}",
        "",
        "# Key-only: no passwords, no keyboard-interactive, no PAM (which could add either back).",
        "PubkeyAuthentication yes",
        "AuthenticationMethods publickey",
        "PasswordAuthentication no",
        "KbdInteractiveAuthentication no",
        "PermitEmptyPasswords no",
        "HostbasedAuthentication no",
        "IgnoreRhosts yes",
        "UsePAM no",
        "PermitRootLogin no",
        f"AllowUsers {' '.join(users)}",
        "# Keys come from the platform (a ConfigMap), never from the shared home.",
        f"AuthorizedKeysFile {authorized_keys_dir}/%u",
        "# The keys file and every directory above it: root's or the user's, never group/world-writable.",
        "StrictModes yes",
        "MaxAuthTries 3",
        "LoginGraceTime 30",
        "",
        f"KexAlgorithms {_list(KEX_ALGORITHMS)}",
        f"Ciphers {_list(CIPHERS)}",
        f"MACs {_list(MACS)}",
        f"HostKeyAlgorithms {_list(HOST_KEY_ALGORITHMS)}",
        f"PubkeyAcceptedAlgorithms {_list(PUBKEY_ALGORITHMS)}",
        "",
        "# ssh -L for Jupyter and TensorBoard; nothing that exposes the node or the client further.",
        "AllowTcpForwarding local",
        "GatewayPorts no",
        "PermitTunnel no",
        "X11Forwarding no",
        "# A forwarded agent on a shared node is usable by anyone with root there.",
        "AllowAgentForwarding no",
        "PermitUserEnvironment no",
        "AcceptEnv LANG LC_*",
        "",
        "# Dead connections go away; training survives in tmux.",
        "ClientAliveInterval 60",
        "ClientAliveCountMax 3",
        "UseDNS no",
        "PrintMotd no",
        "# A non-root sshd cannot write lastlog; the session's environment is the platform's.",
        "PrintLastLog no",
        *([f"SetEnv {' '.join(f'{k}={v}' for k, v in sorted(set_env.items()))}"] if set_env else []),
        "# Key fingerprints in the log: which key logged in, for audits.",
        "LogLevel VERBOSE",
        "# In-process sftp: scp (SFTP protocol since OpenSSH 9.0) and editors' remote mode need it.",
        "Subsystem sftp internal-sftp",
    ]
    return "\n".join(lines) + "\n"
