"""The platform's names resolve on the office DNS: MAAS records for the registry, Grafana and every
app, each at every office node (the ingress's NodePorts listen on all of them)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from components.machines.dns import AddressRecord, problems
from stacks import args
from stacks.problems import ConfigError
from tests.conftest import ROOT, STACKS, config_values, edited, parse, stack_file
from tests.test_plan_diff import add_node, diff_of
from tools.plan import references
from tools.plan.runner import Plan

DOMAIN = "maas:index/dnsDomain:DnsDomain"
RECORD = "maas:index/dnsRecord:DnsRecord"


def _expected_names(stack: str) -> set[str]:
    cfg = config_values(stack)
    domain = cfg["akiba:apps"]["domain"]
    registry = cfg["akiba:registry"]["mirror"].split(":")[0]
    return {registry, f"grafana.{domain}", *(f"{a['name']}.{domain}" for a in cfg["akiba:apps"]["apps"])}


@pytest.mark.parametrize("stack", STACKS)
def test_every_ingress_name_is_a_record_at_every_office_node(plans: dict[str, Plan], stack: str) -> None:
    plan = plans[stack]
    assert plan.resources, "the recorded plan is empty"
    records = {r.inputs["fqdn"]: r for r in plan.by_type(RECORD)}
    cfg = config_values(stack)
    vip = cfg["akiba:cluster"].get("apiVip")
    api = f"api.{cfg['akiba:apps']['domain']}"
    assert set(records) == _expected_names(stack) | ({api} if vip else set())
    assert len(plan.by_type(RECORD)) == len(records), "one record per name"
    node_ips = {n["ip"] for n in cfg["akiba:nodes"]}
    for fqdn, r in records.items():
        assert r.inputs["type"] == "A/AAAA", fqdn
        # The API at the controllers' virtual address; everything else at every node's ingress.
        assert set(r.inputs["data"].split(" ")) == ({vip} if fqdn == api else node_ips), fqdn
    assert bool(vip) == (stack == "prod"), "prod's three controllers share a VIP; dev has one controller"


@pytest.mark.parametrize("stack", STACKS)
def test_one_authoritative_domain_holds_the_names_and_comes_first(plans: dict[str, Plan], stack: str) -> None:
    plan = plans[stack]
    (domain,) = plan.by_type(DOMAIN)
    assert domain.inputs["authoritative"] is True
    assert domain.inputs["isDefault"] is False, "MAAS's default domain names the machines"
    (maas_provider,) = plan.by_type("pulumi:providers:maas")
    for r in plan.by_type(RECORD):
        assert r.inputs["fqdn"].endswith("." + domain.inputs["name"])
        assert domain.urn in r.dependencies, r.name
        assert r.provider == maas_provider.urn


def test_prod_names_are_the_ones_the_readme_gives() -> None:
    records = args.office_dns_records(parse(edited("prod", lambda _: None)))
    names = {r.fqdn for r in records}
    assert {"registry.akiba.lan", "grafana.akiba.lan", "icachan.akiba.lan"} <= names


def test_a_registry_named_by_address_gets_no_record() -> None:
    def by_ip(cfg: dict[str, object]) -> None:
        registry = cfg["akiba:registry"]
        assert isinstance(registry, dict)
        registry["mirror"] = "192.168.10.50:30443"

    names = {r.fqdn for r in args.office_dns_records(parse(edited("prod", by_ip)))}
    assert not any(n.startswith("192.") for n in names)
    assert "grafana.akiba.lan" in names


@pytest.mark.parametrize(
    ("record", "says"),
    [
        (AddressRecord("Registry.akiba.lan", ("192.168.10.11",)), "not a lowercase DNS name"),
        (AddressRecord("registry", ("192.168.10.11",)), "inside a domain"),
        (AddressRecord("bad_name.akiba.lan", ("192.168.10.11",)), "not a lowercase DNS name"),
        (AddressRecord("grafana.akiba.lan", ()), "no address"),
        (AddressRecord("grafana.akiba.lan", ("akiba01",)), "not an IPv4 address"),
    ],
)
def test_a_record_maas_would_refuse_is_named(record: AddressRecord, says: str) -> None:
    (found,) = problems((record,))
    assert says in found and record.fqdn in found


def test_a_name_declared_twice_is_named() -> None:
    r = AddressRecord("grafana.akiba.lan", ("192.168.10.11",))
    assert problems((r, r)) == ["'grafana.akiba.lan': declared twice"]


def test_a_new_node_joins_every_name_in_place(tmp_path: Path) -> None:
    """Day 2: one more PC serves the ingress too; every record gets its address by an update."""
    base = references.plan(stack_file("prod"), ROOT)
    assert base.resources, "the recorded plan is empty"

    def add_worker(cfg: dict[str, Any]) -> None:
        add_node(cfg)
        cfg["akiba:nodes"][-1]["role"] = "worker"  # a copy of a PC, which may be a controller

    result = diff_of(base, tmp_path, "prod", prod=add_worker)
    records = [s for s in result.steps.values() if s.resource.type == RECORD]
    ingress = [r for r in base.by_type(RECORD) if not r.inputs["fqdn"].startswith("api.")]  # the API stays on its VIP
    assert records and len(records) == len(ingress)
    assert all(s.action == "update" for s in records), [(s.resource.name, s.action) for s in records]
    assert all("192.168.10.16" in s.resource.inputs["data"].split(" ") for s in records)


@pytest.mark.parametrize("mirror", ["registry..akiba.lan:30443", "-registry.akiba.lan", "registry.akiba-.lan:30443"])
def test_a_registry_host_that_is_no_dns_name_is_refused_at_its_key(mirror: str) -> None:
    def bad(cfg: dict[str, Any]) -> None:
        cfg["akiba:registry"]["mirror"] = mirror

    with pytest.raises(ConfigError) as err:
        parse(edited("prod", bad))
    assert "akiba:registry.mirror" in str(err.value) and "DNS name" in str(err.value), str(err.value)


def test_the_apis_name_is_in_its_certificate(plans: dict[str, Plan]) -> None:
    """api.<domain> resolves to the VIP: a client using the name must find it in the API's
    certificate (kubeadm's ClusterConfiguration certSANs), or TLS fails."""
    plan = plans["prod"]
    (api,) = [r.inputs["fqdn"] for r in plan.by_type(RECORD) if r.inputs["fqdn"].startswith("api.")]
    documents = [r.raw_inputs["stdin"] for r in plan.by_type("command:remote:Command") if "stdin" in r.raw_inputs]
    init = next(d for d in documents if "kind: InitConfiguration" in d)
    files = {f["path"]: f["content"] for f in yaml.safe_load(init)["write_files"] if not f.get("append")}
    (cluster,) = [
        d for d in yaml.safe_load_all(files["/etc/kubernetes/kubeadm.yaml"]) if d["kind"] == "ClusterConfiguration"
    ]
    assert api in cluster["apiServer"]["certSANs"]
