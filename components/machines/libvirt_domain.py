"""A libvirt domain as a Pulumi resource: a dynamic provider over `components.machines.libvirt_domain_ops`.
It never starts or stops the VM: MAAS owns its power state (virsh power), and after a power cut the
hypervisor's akiba-start-vms unit starts it in its `startOrder` once its Ceph answers
(components/machines/vm_start.py); libvirt's own autostart is kept off (it would start the VM
before Ceph is up).

Identity: a domain is its hypervisor (by name) and its domain name. The libvirt URI only says how
to reach the hypervisor, and the XML is its definition: `virsh define` of an existing domain (same
name, same UUID) replaces its persistent definition in place, which a running VM takes at its next
boot (libvirt src/conf/virdomainobjlist.c virDomainObjListAddLocked keeps the object and swaps its
definition; a running one gets it as the next definition). The VM's data lives on its RBD images,
separate resources, so even a replacement loses nothing; it still defines the new domain first.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pulumi
from pulumi.dynamic import CreateResult, DiffResult, ReadResult, Resource, ResourceProvider, UpdateResult

from components.machines.identity import adopted, identity_changes, in_place_changes

KIND = "libvirt-domain"

# Another value is another domain: a replacement (another hypervisor, or another name there).
IDENTITY = ("hypervisor", "name")
# Redefined in place: a URI that reaches the same hypervisor (checked), the definition, and its
# start order after a power cut (libvirt metadata, set again after each define).
IN_PLACE = ("uri", "providerXml", "xslt", "startOrder")


def _final_xml(props: dict[str, Any]) -> str:
    from components.machines.vm_domain_xml import apply_xslt

    return apply_xslt(props["providerXml"], props["xslt"])


def _record_start_order(props: dict[str, Any]) -> None:
    from components.machines.libvirt_domain_ops import set_start_order

    # State recorded before the property existed has none: nothing to record.
    if props.get("startOrder") is not None:
        set_start_order(props["uri"], props["name"], int(props["startOrder"]))


class DomainProvider(ResourceProvider):
    def create(self, props: dict[str, Any]) -> CreateResult:
        from components.machines.libvirt_domain_ops import DomainError, define, exists

        # Never over an existing domain: define() would take it over (same name, its UUID kept),
        # and a replaced resource's delete would then undefine it. pulumi-libvirt refuses the same
        # way (libvirt: "domain ... already exists with uuid ...").
        if exists(props["uri"], props["name"]):
            raise DomainError(
                f"domain {props['name']} already exists on {props['uri']}: not defining over it; "
                f"`pulumi import` it, or `virsh undefine {props['name']}` there if it is a leftover"
            )
        define(props["uri"], _final_xml(props))
        _record_start_order(props)
        return CreateResult(id_=props["name"], outs=props)

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        from components.machines.libvirt_domain_ops import exists

        found = exists(props["uri"], id_)
        return ReadResult(id_=id_ if found else None, outs=props if found else {})

    def diff(self, id_: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        """Pure (no libvirt): what the engine and `make plan-diff` classify."""
        replaces = identity_changes(olds, news, IDENTITY)
        updates = in_place_changes(olds, news, IN_PLACE) + adopted(olds, news, IDENTITY)
        # Create-before-delete (the engine's default): the new domain has another name or lives on
        # another hypervisor, so both can be defined at once; create() refuses a clash.
        return DiffResult(changes=bool(replaces or updates), replaces=replaces, delete_before_replace=False)

    def update(self, id_: str, olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        from components.machines.libvirt_domain_ops import DomainError, define, exists

        if olds.get("uri") != news["uri"] and not exists(news["uri"], news["name"]):
            # Defining it there would make a second VM on the same RBD disks, and two VMs
            # writing one disk destroy its file system.
            raise DomainError(
                f"domain {news['name']} is not on {news['uri']} (was reached through {olds.get('uri')}): a new "
                "URI must reach the same hypervisor; to move the VM, change its hypervisor (a replacement)"
            )
        define(news["uri"], _final_xml(news))  # takes effect at the next boot MAAS makes
        _record_start_order(news)
        return UpdateResult(outs=news)

    def delete(self, id_: str, props: dict[str, Any]) -> None:
        from components.machines.libvirt_domain_ops import undefine

        undefine(props["uri"], id_)


@dataclass(frozen=True)
class LibvirtDomainArgs:
    hypervisor: str  # the hypervisor's name in the spec: with `name`, the domain's identity
    uri: str  # the hypervisor's libvirt URI: how to reach it
    name: str
    provider_xml: str  # what pulumi-libvirt's Domain would make for these arguments
    xslt: pulumi.Input[str]  # components.machines.vm_domain_xml.render_xslt
    # After a power cut the hypervisor starts its domains by this, lowest first (controllers 0,
    # workers 1), each once its RBD disks answer; None: not started by it.
    start_order: int | None = None


class LibvirtDomain(Resource):
    name: pulumi.Output[str]

    def __init__(self, name: str, args: LibvirtDomainArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(
            DomainProvider(),
            name,
            {
                "kind": KIND,
                "hypervisor": args.hypervisor,
                "uri": args.uri,
                "name": args.name,
                "providerXml": args.provider_xml,
                "xslt": args.xslt,
                "startOrder": args.start_order,
            },
            opts,
        )
