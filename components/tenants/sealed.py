"""An engineer's kubeconfig sealed with age to their own SSH public keys, for their stack output.

Pulumi has no per-output access control: whoever may read the stack (a StackReference, a
`pulumi stack output --show-secrets`) decrypts every secret output, so a plain kubeconfig per
engineer would be every engineer's for anyone who reads one. Sealed to the keys of
`akiba:engineers[].sshKeys`, the output opens only with one of that engineer's private keys:

    pulumi stack output engineerKubeconfig-<login> --show-secrets | age -d -i ~/.ssh/id_ed25519

age takes ssh-ed25519 and ssh-rsa (2048 bits or more) keys as recipients; other kinds (ecdsa,
sk-* security keys) cannot be sealed to and are left out.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence

import pyrage  # type: ignore[import-untyped]  # compiled (rust age), no stubs

# The key types age encrypts to (its ssh recipients); sshd accepts more.
AGE_KEY_TYPES = ("ssh-ed25519", "ssh-rsa")
# age's ASCII armor (C2SP age, "ASCII armor"): PEM-like, standard base64 in 64-column lines.
ARMOR_BEGIN = "-----BEGIN AGE ENCRYPTED FILE-----"
ARMOR_END = "-----END AGE ENCRYPTED FILE-----"
_COLUMNS = 64


def sealable_keys(ssh_keys: Sequence[str]) -> tuple[str, ...]:
    """The keys age can seal to, as given. A line of a supported type that age still refuses
    (an RSA key under 2048 bits; an ed25519 key that is no point of the curve: no private key has
    it) is left out too."""
    usable = []
    for key in ssh_keys:
        if key.split(maxsplit=1)[0] not in AGE_KEY_TYPES:
            continue
        try:
            pyrage.ssh.Recipient.from_str(key)
        except pyrage.RecipientError:
            continue
        usable.append(key)
    return tuple(usable)


def seal(plaintext: str, ssh_keys: Sequence[str]) -> str:
    """`plaintext` encrypted to every key (any one of them opens it), ASCII-armored.

    age draws a fresh file key (and ephemeral keys) on each call: the same plaintext seals to a
    different text every time."""
    if not ssh_keys:
        raise ValueError("no key to seal to")
    recipients = [pyrage.ssh.Recipient.from_str(k) for k in ssh_keys]
    return armor(pyrage.encrypt(plaintext.encode(), recipients))


def armor(data: bytes) -> str:
    """age's armor: `age -d` reads it as it reads `age -a` output (strict: full lines of 64)."""
    text = base64.b64encode(data).decode()
    lines = [text[i : i + _COLUMNS] for i in range(0, len(text), _COLUMNS)]
    return "\n".join([ARMOR_BEGIN, *lines, ARMOR_END]) + "\n"
