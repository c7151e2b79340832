"""The only module that talks to `pulumi-maas`.

pulumi-maas 1.0.3 (terraform-provider-maas 1.2.0) is unmaintained since 2023; everything the
platform needs from MAAS goes through these few functions so it can be replaced in one place.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import pulumi

# pulumi-maas 1.0.3 imports pkg_resources (setuptools is pinned below 81 for it); its
# deprecation warning says nothing the user can act on.
with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message="pkg_resources is deprecated", category=UserWarning)
    import pulumi_maas as maas

from stacks.spec import AmtPower, IpmiPower, MaasSpec, NodeSpec, VirshPower


@dataclass(frozen=True)
class MaasSettings:
    """What every MAAS call needs: the provider and where machines go."""

    provider: maas.Provider
    spec: MaasSpec


def make_provider(
    name: str, spec: MaasSpec, api_key: pulumi.Output[str], parent: pulumi.Resource | None
) -> maas.Provider:
    return maas.Provider(
        name, api_url=spec.url, api_key=api_key, api_version="2.0", opts=pulumi.ResourceOptions(parent=parent)
    )


def power_parameters(
    node: NodeSpec, password: pulumi.Output[str] | None, hypervisor_uris: dict[str, str]
) -> pulumi.Input[dict[str, str]]:
    """MAAS power parameters by power type (MAAS API names: power_address, power_user, ...)."""
    power = node.power
    plain: dict[str, str]
    if isinstance(power, IpmiPower):
        plain = {"power_address": power.address, "power_user": power.user}
    elif isinstance(power, AmtPower):
        plain = {"power_address": power.address}
    elif isinstance(power, VirshPower):
        # The dev "machines" are libvirt domains: MAAS powers them through the hypervisor.
        plain = {"power_address": hypervisor_uris[power.hypervisor], "power_id": power.domain}
    else:
        return {}  # manual: MAAS asks a person to press the power button
    if password is None:
        return plain
    return pulumi.Output.secret(password.apply(lambda pw: {**plain, "power_pass": pw}))


def enlist(
    name: str,
    node: NodeSpec,
    power_params: pulumi.Input[dict[str, str]],
    settings: MaasSettings,
    parent: pulumi.Resource,
) -> maas.Machine:
    """Enlist a machine by the MAC of the NIC it PXE-boots from."""
    return maas.Machine(
        name,
        hostname=node.hostname,
        pxe_mac_address=node.pxe_mac,
        power_type=node.power.type,
        power_parameters=power_params,
        pool=settings.spec.pool,
        zone=settings.spec.zone,
        opts=pulumi.ResourceOptions(parent=parent, provider=settings.provider),
    )


def deploy(
    name: str,
    hostname: str,
    machine: maas.Machine,
    user_data: pulumi.Output[str],
    settings: MaasSettings,
    parent: pulumi.Resource,
    after: tuple[pulumi.Resource, ...] = (),
) -> maas.Instance:
    """Allocate exactly that machine and deploy Ubuntu with the node's user-data."""
    return maas.Instance(
        name,
        # The hostname the machine was enlisted with; depends_on orders the two.
        allocate_params=maas.InstanceAllocateParamsArgs(hostname=hostname),
        deploy_params=maas.InstanceDeployParamsArgs(
            distro_series=settings.spec.distro_series,
            hwe_kernel=settings.spec.hwe_kernel,
            user_data=user_data,
        ),
        opts=pulumi.ResourceOptions(parent=parent, provider=settings.provider, depends_on=[machine, *after]),
    )
