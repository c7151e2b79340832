"""What the machine components share: a node's NICs, how MAAS powers it on, the machine MAAS
enlists. Plain values the composition maps from the stack spec."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal


@dataclass(frozen=True)
class Nic:
    """One NIC of a node, a member of its bond."""

    name: str  # interface name on the installed node, e.g. "enp3s0"
    mac: str  # lower-case, colon-separated, e.g. "52:54:00:aa:bb:01"


@dataclass(frozen=True)
class ManualPower:
    """Consumer PCs have no BMC: MAAS asks a person to press the power button."""

    type: ClassVar[Literal["manual"]] = "manual"


@dataclass(frozen=True)
class IpmiPower:
    """A BMC speaking IPMI; its password is passed separately (a secret)."""

    type: ClassVar[Literal["ipmi"]] = "ipmi"
    address: str  # the BMC's IPv4 address
    user: str  # the BMC user


@dataclass(frozen=True)
class AmtPower:
    """Intel AMT (vPro boards); its password is passed separately (a secret)."""

    type: ClassVar[Literal["amt"]] = "amt"
    address: str  # the AMT IPv4 address


@dataclass(frozen=True)
class VirshPower:
    """A libvirt VM: MAAS powers it through its hypervisor."""

    type: ClassVar[Literal["virsh"]] = "virsh"
    uri: str  # the hypervisor's libvirt URI, e.g. "qemu+ssh://virsh@192.168.10.5/system"
    domain: str  # the libvirt domain name, e.g. "akiba-dev01"


# How MAAS powers a machine on; `.type` is the MAAS power type.
Power = ManualPower | IpmiPower | AmtPower | VirshPower


@dataclass(frozen=True)
class Hardware:
    """The least a machine has: MAAS refuses to allocate one with less, and the node's
    capacity (what the scheduler may place there) is planned from it."""

    cpus: int  # CPU threads, as MAAS counts them, e.g. 8
    memory_mib: int  # as MAAS reports it (a little under the installed RAM), e.g. 63488


@dataclass(frozen=True)
class Machine:
    """A machine as MAAS enlists it: by the MAC it PXE-boots from, with its power control."""

    hostname: str  # e.g. "akiba01"
    nics: tuple[Nic, ...]  # bond members; the first one PXE-boots
    power: Power  # how MAAS powers it on
    hardware: Hardware  # the floor MAAS allocates it by

    @property
    def pxe_mac(self) -> str:
        return self.nics[0].mac
