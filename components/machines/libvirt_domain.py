"""A libvirt domain as a Pulumi resource: a dynamic provider over `components.machines.libvirt_domain_ops`.
It never starts or stops the VM: MAAS owns its power state (virsh power)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pulumi
from pulumi.dynamic import CreateResult, DiffResult, ReadResult, Resource, ResourceProvider, UpdateResult

KIND = "libvirt-domain"


def _final_xml(props: dict[str, Any]) -> str:
    from components.machines.vm_domain_xml import apply_xslt

    return apply_xslt(props["providerXml"], props["xslt"])


class DomainProvider(ResourceProvider):
    def create(self, props: dict[str, Any]) -> CreateResult:
        from components.machines.libvirt_domain_ops import define

        define(props["uri"], _final_xml(props))
        return CreateResult(id_=props["name"], outs=props)

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        from components.machines.libvirt_domain_ops import exists

        found = exists(props["uri"], id_)
        return ReadResult(id_=id_ if found else None, outs=props if found else {})

    def diff(self, id_: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        replaces = [k for k in ("uri", "name") if olds.get(k) != news.get(k)]
        changes = replaces or olds.get("providerXml") != news.get("providerXml") or olds.get("xslt") != news.get("xslt")
        return DiffResult(changes=bool(changes), replaces=replaces, delete_before_replace=True)

    def update(self, id_: str, olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        from components.machines.libvirt_domain_ops import define

        define(news["uri"], _final_xml(news))  # takes effect at the next boot MAAS makes
        return UpdateResult(outs=news)

    def delete(self, id_: str, props: dict[str, Any]) -> None:
        from components.machines.libvirt_domain_ops import undefine

        undefine(props["uri"], id_)


@dataclass(frozen=True)
class LibvirtDomainArgs:
    uri: str  # the hypervisor's libvirt URI
    name: str
    provider_xml: str  # what pulumi-libvirt's Domain would make for these arguments
    xslt: pulumi.Input[str]  # components.machines.vm_domain_xml.render_xslt


class LibvirtDomain(Resource):
    name: pulumi.Output[str]

    def __init__(self, name: str, args: LibvirtDomainArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(
            DomainProvider(),
            name,
            {"kind": KIND, "uri": args.uri, "name": args.name, "providerXml": args.provider_xml, "xslt": args.xslt},
            opts,
        )
