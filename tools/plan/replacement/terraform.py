"""Bridged Terraform providers (pulumi-tls, pulumi-random, pulumi-maas, pulumi-aws): a change
replaces the resource when it touches an attribute the Terraform schema marks ForceNew (SDKv2) or
RequiresReplace (plugin framework), or when the resource has no Update at all.

The bridge asks for delete-before-replace only when the resource is replaced and an auto-named
`name` was set explicitly (pulumi/pulumi-terraform-bridge pkg/tfbridge/provider.go Diff and
pkg/tfbridge/schema.go nameRequiresDeleteBeforeReplace): the new object could not take the name.

Input names here are Pulumi's (camelCase; a MaxItems=1 block is an object)."""

from __future__ import annotations

from dataclasses import dataclass

from tools.plan.replacement.model import Change, Source, Verdict
from tools.plan.replacement.paths import Path, parse, touches

ALL = ("*",)  # every input forces a new resource


@dataclass(frozen=True)
class Rule:
    source: Source
    force_new: tuple[str, ...]  # property paths, or ALL
    except_: tuple[str, ...] = ()  # with ALL: the inputs that update in place
    autonamed: bool = False  # the provider auto-names `name` (explicit name -> delete first)
    note: str = ""
    create_first_fails: str = ""


def _tls(file: str) -> Source:
    return Source("hashicorp/terraform-provider-tls", f"internal/provider/{file}")


def _random(file: str) -> Source:
    return Source("hashicorp/terraform-provider-random", f"internal/provider/{file}")


def _aws(file: str) -> Source:
    return Source("hashicorp/terraform-provider-aws", file)


_MAAS = "canonical/terraform-provider-maas"  # v1.2.0, the version pulumi-maas 1.0.3 bridges

# Every input of every tls resource is RequiresReplace except `early_renewal_hours` (plan modifiers
# in each resource's schema; PrivateKey's Update is a no-op).
_TLS = {
    "tls:index/privateKey:PrivateKey": Rule(_tls("resource_private_key.go"), ALL),
    "tls:index/selfSignedCert:SelfSignedCert": Rule(
        _tls("resource_self_signed_cert.go"), ALL, except_=("earlyRenewalHours",)
    ),
    "tls:index/locallySignedCert:LocallySignedCert": Rule(
        _tls("resource_locally_signed_cert.go"), ALL, except_=("earlyRenewalHours",)
    ),
    "tls:index/certRequest:CertRequest": Rule(_tls("resource_cert_request.go"), ALL),
}

# Every random resource's inputs (keepers, length, character classes...) are RequiresReplace:
# a new value is the only way to change one.
_RANDOM = {
    f"random:index/{t[0].lower() + t[1:]}:{t}": Rule(_random(f"resource_{f}.go"), ALL)
    for t, f in (
        ("RandomPassword", "password"),
        ("RandomString", "string"),
        ("RandomBytes", "bytes"),
        ("RandomId", "id"),
        ("RandomInteger", "integer"),
        ("RandomPet", "pet"),
        ("RandomShuffle", "shuffle"),
        ("RandomUuid", "uuid"),
    )
}

_MAAS_RULES = {
    # No UpdateContext: every input (allocate_params, deploy_params with the user-data,
    # network_interfaces) is ForceNew. Create allocates the machine `allocateParams.hostname`
    # names, which the old deployment still holds: create-before-delete cannot succeed.
    "maas:index/instance:Instance": Rule(
        Source(_MAAS, "maas/resource_maas_instance.go"),
        ALL,
        create_first_fails="MAAS cannot allocate the machine for the new deployment while the old one "
        "holds it: create-before-delete fails; the resource needs deleteBeforeReplace",
    ),
    # resourceMachineUpdate exists and no attribute is ForceNew: every change updates in place.
    "maas:index/machine:Machine": Rule(Source(_MAAS, "maas/resource_maas_machine.go"), ()),
    # A domain updates in place (no ForceNew attribute); a record only replaces for a new `type`
    # (its `data`, the addresses, and its name update the MAAS DNS resource in place).
    "maas:index/dnsDomain:DnsDomain": Rule(Source(_MAAS, "maas/resource_maas_dns_domain.go"), ()),
    "maas:index/dnsRecord:DnsRecord": Rule(Source(_MAAS, "maas/resource_maas_dns_record.go"), ("type",)),
}

_EC2 = "internal/service/ec2/"
_AWS = {
    "aws:ec2/instance:Instance": Rule(
        _aws(_EC2 + "ec2_instance.go"),
        (
            "ami",
            "associatePublicIpAddress",
            "availabilityZone",
            "cpuOptions.amdSevSnp",
            "cpuOptions.coreCount",
            "cpuOptions.threadsPerCore",
            "cpuCoreCount",
            "cpuThreadsPerCore",
            "ebsBlockDevices",
            "ebsOptimized",
            "enclaveOptions.enabled",
            "ephemeralBlockDevices",
            "hibernation",
            "hostId",
            "ipv6AddressCount",
            "ipv6Addresses",
            "keyName",
            "launchTemplate.id",
            "launchTemplate.name",
            "networkInterfaces",
            "placementGroup",
            "placementPartitionNumber",
            "privateIp",
            "rootBlockDevice.encrypted",
            "rootBlockDevice.kmsKeyId",
            "securityGroups",
            "subnetId",
            "tenancy",
        ),
    ),
    # Everything but the name updates in place: an update writes a new template version.
    "aws:ec2/launchTemplate:LaunchTemplate": Rule(
        _aws(_EC2 + "ec2_launch_template.go"),
        ("name", "namePrefix"),
        autonamed=True,
        note="an update writes a new template version",
    ),
    "aws:autoscaling/group:Group": Rule(
        _aws("internal/service/autoscaling/group.go"), ("name", "namePrefix"), autonamed=True
    ),
    "aws:ec2/vpc:Vpc": Rule(_aws(_EC2 + "vpc_.go"), ("cidrBlock", "ipv4IpamPoolId", "ipv4NetmaskLength")),
    "aws:ec2/subnet:Subnet": Rule(
        _aws(_EC2 + "vpc_subnet.go"),
        (
            "availabilityZone",
            "availabilityZoneId",
            "cidrBlock",
            "ipv4IpamPoolId",
            "ipv4NetmaskLength",
            "ipv6IpamPoolId",
            "ipv6Native",
            "ipv6NetmaskLength",
            "outpostArn",
            "vpcId",
        ),
    ),
    "aws:ec2/securityGroup:SecurityGroup": Rule(
        _aws(_EC2 + "vpc_security_group.go"), ("name", "namePrefix", "description", "vpcId"), autonamed=True
    ),
    "aws:ec2/internetGateway:InternetGateway": Rule(_aws(_EC2 + "vpc_internet_gateway.go"), ()),
    "aws:ec2/routeTable:RouteTable": Rule(_aws(_EC2 + "vpc_route_table.go"), ("vpcId",)),
    "aws:ec2/routeTableAssociation:RouteTableAssociation": Rule(
        _aws(_EC2 + "vpc_route_table_association.go"), ("subnetId", "gatewayId")
    ),
    "aws:ec2/eip:Eip": Rule(
        _aws(_EC2 + "ec2_eip.go"),
        (
            "address",
            "customerOwnedIpv4Pool",
            "domain",
            "ipamPoolId",
            "networkBorderGroup",
            "publicIpv4Pool",
            "vpc",
        ),
    ),
    # UpdateUser renames and moves a user in place.
    "aws:iam/user:User": Rule(_aws("internal/service/iam/user.go"), (), autonamed=True),
    "aws:iam/accessKey:AccessKey": Rule(_aws("internal/service/iam/access_key.go"), ("user", "pgpKey")),
    "aws:iam/userPolicy:UserPolicy": Rule(
        _aws("internal/service/iam/user_policy.go"), ("user", "name", "namePrefix"), autonamed=True
    ),
    "aws:budgets/budget:Budget": Rule(
        _aws("internal/service/budgets/budget.go"), ("accountId", "name", "namePrefix"), autonamed=True
    ),
    # PutParameter with Overwrite updates the value, type, description, key and tier in place (a
    # new version); a new name or data type is a new parameter, and so is a tier going down from
    # Advanced to Standard (CustomizeDiff ForceNewIfChange: AWS refuses the downgrade; diff()).
    "aws:ssm/parameter:Parameter": Rule(
        _aws("internal/service/ssm/parameter.go"), ("name", "dataType"), autonamed=True
    ),
}

RULES: dict[str, Rule] = {**_TLS, **_RANDOM, **_MAAS_RULES, **_AWS}
PACKAGES = ("tls", "random", "maas", "aws")


def _launch_template_version(change: Change) -> list[str]:
    """aws_instance's CustomizeDiff forces a new instance when it no longer runs the version
    `launchTemplate.version` names ($Latest, $Default): updating its launch template writes a new
    version, so the instance is replaced at the next plan that reads it back."""
    template = change.news.get("launchTemplate")
    if not isinstance(template, dict) or template.get("version") not in ("$Latest", "$Default"):
        return []
    return [
        urn
        for urn, action in change.dependency_actions.items()
        if action == "update" and urn.split("::")[-2].endswith("aws:ec2/launchTemplate:LaunchTemplate")
    ]


def diff(change: Change) -> Verdict | None:
    rule = RULES.get(change.type)
    if rule is None:
        if change.type.split(":", 1)[0] in PACKAGES:
            return Verdict(notes=[f"no replacement rule for {change.type}: assumed to update in place"])
        return None
    if rule.force_new == ALL:
        keep = [parse(p) for p in rule.except_]
        replaces = [p for p in change.paths if not any(touches(k, p, change.olds, change.news) for k in keep)]
    else:
        patterns: list[Path] = [parse(p) for p in rule.force_new]
        replaces = [p for p in change.paths if any(touches(f, p, change.olds, change.news) for f in patterns)]
    notes = [rule.note] if rule.note and not replaces else []
    if change.type == "aws:ec2/instance:Instance":
        if change.news.get("userDataReplaceOnChange") is True:
            replaces += [p for p in change.paths if p[:1] in (("userData",), ("userDataBase64",))]
        if templates := _launch_template_version(change):
            replaces.append(("launchTemplate", "version"))
            notes.append(
                f"its launch template {templates[0].rsplit('::', 1)[-1]} gets a new version: the "
                "instance (launchTemplate.version $Latest) is replaced once the provider reads it back"
            )
    tiers = (change.olds.get("tier"), change.news.get("tier"))
    if change.type == "aws:ssm/parameter:Parameter" and tiers == ("Advanced", "Standard"):
        replaces.append(("tier",))
    dbr = bool(replaces) and rule.autonamed and isinstance(change.news.get("name"), str)
    if dbr:
        notes.append("its name is set explicitly: the old one is deleted first to free the name")
    return Verdict(
        replaces=replaces,
        delete_before_replace=dbr,
        source=rule.source,
        notes=notes,
        create_first_fails=rule.create_first_fails,
    )
