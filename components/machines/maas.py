"""The only module that talks to `pulumi-maas`.

pulumi-maas 1.0.3 (terraform-provider-maas 1.2.0) is unmaintained since 2023; everything the
platform needs from MAAS goes through these few functions so it can be replaced in one place.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Literal

import pulumi

# pulumi-maas 1.0.3 imports pkg_resources (setuptools is pinned below 81 for it); its
# deprecation warning says nothing the user can act on.
with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message="pkg_resources is deprecated", category=UserWarning)
    import pulumi_maas as maas

from components.machines.types import AmtPower, Hardware, IpmiPower, Machine, Power, VirshPower


@dataclass(frozen=True)
class MaasTarget:
    """Where MAAS puts the machines and what it installs on them."""

    distro_series: Literal["jammy", "noble"]  # the Ubuntu release MAAS deploys
    hwe_kernel: str | None  # e.g. "hwe-24.04"; None: MAAS's default kernel
    pool: str | None  # MAAS resource pool for the machines; None: MAAS's default
    zone: str | None  # MAAS zone for the machines; None: MAAS's default


@dataclass(frozen=True)
class MaasSettings:
    """What every MAAS call needs: the provider and where machines go."""

    provider: maas.Provider
    target: MaasTarget


def make_provider(name: str, url: str, api_key: pulumi.Output[str], parent: pulumi.Resource | None) -> maas.Provider:
    """The MAAS provider for the region API at `url` over TLS (e.g. https://192.168.10.2:5443/MAAS)."""
    return maas.Provider(
        name, api_url=url, api_key=api_key, api_version="2.0", opts=pulumi.ResourceOptions(parent=parent)
    )


def power_parameters(power: Power, password: pulumi.Output[str] | None) -> pulumi.Input[dict[str, str]]:
    """MAAS power parameters by power type (MAAS API names: power_address, power_user, ...)."""
    plain: dict[str, str]
    if isinstance(power, IpmiPower):
        plain = {"power_address": power.address, "power_user": power.user}
    elif isinstance(power, AmtPower):
        plain = {"power_address": power.address}
    elif isinstance(power, VirshPower):
        # The dev "machines" are libvirt domains: MAAS powers them through the hypervisor.
        plain = {"power_address": power.uri, "power_id": power.domain}
    else:
        return {}  # manual: MAAS asks a person to press the power button
    if password is None:
        return plain
    return pulumi.Output.secret(password.apply(lambda pw: {**plain, "power_pass": pw}))


def enlist(
    name: str,
    machine: Machine,
    power_params: pulumi.Input[dict[str, str]],
    settings: MaasSettings,
    parent: pulumi.Resource,
) -> maas.Machine:
    """Enlist a machine by the MAC of the NIC it PXE-boots from."""
    return maas.Machine(
        name,
        hostname=machine.hostname,
        pxe_mac_address=machine.pxe_mac,
        power_type=machine.power.type,
        power_parameters=power_params,
        pool=settings.target.pool,
        zone=settings.target.zone,
        opts=pulumi.ResourceOptions(parent=parent, provider=settings.provider),
    )


def deploy(
    name: str,
    hostname: str,
    hardware: Hardware,
    machine: maas.Machine,
    user_data: pulumi.Output[str],
    settings: MaasSettings,
    parent: pulumi.Resource,
    after: tuple[pulumi.Resource, ...] = (),
) -> maas.Instance:
    """Allocate exactly that machine, if it has at least `hardware`, and deploy Ubuntu with the
    node's install user-data.

    terraform-provider-maas 1.2.0 has no update for `maas_instance` (resource_maas_instance.go:
    no UpdateContext, every argument ForceNew): any input change releases and redeploys the
    machine. So the inputs are only what cannot change without a new machine (see
    bootstrap.render_install_user_data); a reinstall is asked for per node with
    `pulumi up --replace <urn>`. Replacing deletes first: the machine (its hostname) is the one
    MAAS would have to allocate for the new deployment."""
    return maas.Instance(
        name,
        # The hostname the machine was enlisted with; depends_on orders the two. The floor makes
        # MAAS refuse a machine smaller than the node was planned as (a swapped board, a dead
        # DIMM) instead of deploying it into a cluster that schedules for more.
        allocate_params=maas.InstanceAllocateParamsArgs(
            hostname=hostname, min_cpu_count=hardware.cpus, min_memory=hardware.memory_mib
        ),
        deploy_params=maas.InstanceDeployParamsArgs(
            distro_series=settings.target.distro_series,
            hwe_kernel=settings.target.hwe_kernel,
            user_data=user_data,
        ),
        opts=pulumi.ResourceOptions(
            parent=parent, provider=settings.provider, depends_on=[machine, *after], delete_before_replace=True
        ),
    )


def dns_domain(name: str, domain: str, settings: MaasSettings, parent: pulumi.Resource) -> maas.DnsDomain:
    """A DNS zone MAAS's bind serves (authoritative: MAAS answers for it, never forwards it).

    Not MAAS's default domain: that one (`maas` unless changed) names the deployed machines,
    and a second stack's domain must not take it over. A domain MAAS already has (made in its
    UI) is a creation error; `pulumi import maas:index/dnsDomain:DnsDomain <name> <id>` adopts it."""
    return maas.DnsDomain(
        name,
        name=domain,
        authoritative=True,
        is_default=False,
        opts=pulumi.ResourceOptions(parent=parent, provider=settings.provider),
    )


def dns_address_record(
    name: str,
    fqdn: str,
    addresses: tuple[str, ...],
    domain: maas.DnsDomain,
    settings: MaasSettings,
    parent: pulumi.Resource,
) -> maas.DnsRecord:
    """One name with every address in `addresses` (round robin).

    terraform-provider-maas 1.2.0 (maas/resource_maas_dns_record.go): type "A/AAAA" is a MAAS
    DNS resource whose `ip_addresses` is `data` as given, space-separated for several (its
    importer joins them the same way); `data` updates in place, only `type` forces a new one.
    Its delete then releases each address (`ipaddresses release`), which may fail for an address
    MAAS holds for a deployed machine: removing a name may need `maas <profile> dnsresource
    delete <id>` by hand and `pulumi state delete` of the record."""
    return maas.DnsRecord(
        name,
        type="A/AAAA",
        fqdn=fqdn,
        data=" ".join(addresses),
        opts=pulumi.ResourceOptions(parent=parent, provider=settings.provider, depends_on=[domain]),
    )
