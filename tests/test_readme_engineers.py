"""README, "For ML engineers": every command an engineer is told to run is checked against prod's
offline plan, as `tarui` would run it. Each kind of command has its own check (who may do it,
that what it names exists, that the pod it makes would be admitted and placed); a command this
test does not know fails it, so the README and the platform cannot drift apart unnoticed.
"""

from __future__ import annotations

import base64
import posixpath
import re
import runpy
import shlex
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from components.engineers.home_containers import default_ssh_port, host_key_alias
from components.tenants.names import (
    DATABASE_SECRET,
    HOME_CLAIM,
    KUBECONFIG_SECRET,
    engineer_namespace,
)
from components.tenants.sealed import ARMOR_BEGIN
from tests.conftest import ROOT, config_values, stack_file
from tests.pod_security import baseline
from tools.plan.__main__ import cluster_settings
from tools.plan.access import objects_of
from tools.plan.access.evaluator import Authorizer, Request
from tools.plan.access.model import Identity
from tools.plan.artifacts import is_manifest, manifest_of
from tools.plan.checkers import _kubernetes_validate, _validate_resource
from tools.plan.cluster import check
from tools.plan.runner import Plan

README = ROOT / "README.md"
LOGIN, UID, STACK = "tarui", 2001, "prod"
NS = engineer_namespace(LOGIN)
# What a pipe after a checked command may do with its output: nothing that reaches the cluster.
FILTERS = {"base64", "jq", "head", "less", "age"}
# kubectl's resource words -> (API group, resource).
RESOURCES = {
    "pods": ("", "pods"),
    "pod": ("", "pods"),
    "secret": ("", "secrets"),
    "secrets": ("", "secrets"),
    "resourcequota": ("", "resourcequotas"),
    "limitrange": ("", "limitranges"),
    "networkpolicies": ("networking.k8s.io", "networkpolicies"),
    "jobs": ("batch", "jobs"),
    "job": ("batch", "jobs"),
    "nodes": ("", "nodes"),
}
KINDS = {"Job": ("batch", "jobs"), "Pod": ("", "pods"), "CronJob": ("batch", "cronjobs")}


def section(text: str | None = None) -> str:
    text = README.read_text() if text is None else text
    start = text.index("## For ML engineers\n")
    return text[start : text.index("\n## ", start + 1)]


def commands(text: str | None = None) -> list[str]:
    return [
        line.strip()
        for block in re.findall(r"^```sh\n(.*?)^```", section(text), re.S | re.M)
        for line in block.splitlines()
        if line.strip() and not line.strip().startswith("#")
    ]


def unknown(text: str | None = None) -> list[str]:
    """Commands of the section that no check here covers."""
    return [c for c in commands(text) if shlex.split(c)[0] not in CHECKS]


# --- the plan, as tarui meets it ------------------------------------------------------------


class Tenant:
    """Prod's plan seen from one engineer: their objects, their rights, their home pod."""

    def __init__(self, plan: Plan) -> None:
        assert plan.resources, "the plan is empty"
        self.plan = plan
        self.objects = [manifest_of(r.raw_inputs) for r in plan.resources if is_manifest(r.type)]
        self.reach = Authorizer(objects_of(plan)).reach(Identity.user_named(LOGIN, LOGIN))
        self.jobs: dict[str, dict[str, Any]] = {}  # applied by earlier commands, by name

    def get(self, kind: str, name: str, namespace: str = NS) -> dict[str, Any]:
        found = [
            o
            for o in self.objects
            if o.get("kind") == kind
            and o["metadata"].get("name") == name
            and o["metadata"].get("namespace", "") == namespace
        ]
        assert len(found) == 1, f"the plan declares no {kind} {namespace}/{name}"
        return found[0]

    def can(self, verb: str, group: str, resource: str, namespace: str = NS, name: str = "") -> None:
        request = Request(verb, group, resource, namespace, name)
        assert self.reach.can(request, named_only=False), f"{LOGIN} may not {request}"

    @property
    def home_pod(self) -> dict[str, Any]:
        spec: dict[str, Any] = self.get("DaemonSet", "home")["spec"]["template"]["spec"]
        return spec

    def shell(self) -> dict[str, Any]:
        (container,) = [c for c in self.home_pod["containers"] if c["name"] == "home"]
        found: dict[str, Any] = container
        return found

    def session_env(self) -> dict[str, str]:
        """What sshd sets in every session (SetEnv in the engineer's own sshd_config)."""
        config = self.get("ConfigMap", "home-accounts")["data"]["sshd_config"]
        line = next(ln for ln in config.splitlines() if ln.startswith("SetEnv "))
        return dict(item.split("=", 1) for item in shlex.split(line)[1:])

    def home_nodes(self) -> set[str]:
        report = check(self.plan, cluster_settings(stack_file(STACK).config))
        (home,) = [p for p in report.placements if p.workload.namespace == NS and p.workload.name == "home"]
        return {n.name for n in home.placed}


@pytest.fixture(scope="module")
def tenant(plans: dict[str, Plan]) -> Tenant:
    return Tenant(plans[STACK])


# --- one check per kind of command -----------------------------------------------------------


def check_ssh(t: Tenant, argv: list[str]) -> None:
    assert argv[1] == "-p", argv
    port, target, remote = int(argv[2]), argv[3], argv[4:]
    user, node = target.split("@")
    assert user == LOGIN
    service = t.get("Service", "ssh")["spec"]
    assert service["type"] == "NodePort" and service["externalTrafficPolicy"] == "Local"
    assert [p["nodePort"] for p in service["ports"]] == [port] == [default_ssh_port(UID)]
    # externalTrafficPolicy Local: the node named must run this engineer's home pod itself.
    assert node in t.home_nodes(), f"{LOGIN}'s home pod is not placed on {node}"
    if remote:
        assert remote[0] == "cat" and len(remote) == 2, remote
        path = remote[1]
        assert t.session_env()["KUBECONFIG"] == path
        mounts = {m["mountPath"]: m["name"] for m in t.shell()["volumeMounts"]}
        volume = next(v for v in t.home_pod["volumes"] if v["name"] == mounts[posixpath.dirname(path)])
        assert volume["secret"]["secretName"] == KUBECONFIG_SECRET
        kubeconfig = t.get("Secret", KUBECONFIG_SECRET)
        data = kubeconfig.get("stringData") or {k: base64.b64decode(v).decode() for k, v in kubeconfig["data"].items()}
        config = yaml.safe_load(data[posixpath.basename(path)])
        assert config["contexts"][0]["context"]["namespace"] == NS


def check_kubectl(t: Tenant, argv: list[str]) -> None:
    args: list[str] = []
    namespace, files, output = NS, [], ""
    it = iter(argv[1:])
    for a in it:
        if a in ("-n", "--namespace"):
            namespace = next(it)
        elif a == "-f" and args == ["apply"]:  # a file; `logs -f` follows
            files.append(next(it))
        elif a == "-o":
            output = next(it)
        elif not a.startswith("-"):
            args.append(a)
    verb, *rest = args
    if verb == "apply":
        for file in files:
            for doc in yaml.safe_load_all((ROOT / file).read_text()):
                check_applied(t, doc)
    elif verb == "get":
        group, resource = RESOURCES[rest[0]]
        name = rest[1] if len(rest) > 1 else ""
        t.can("get" if name else "list", group, resource, namespace, name)
        if name:
            obj = t.get(_kind(resource), name, namespace)
            if output.startswith("jsonpath="):
                key = re.fullmatch(r"jsonpath=\{\.data\.(\w+)\}", output)
                assert key and key[1] in {**obj.get("data", {}), **obj.get("stringData", {})}, output
    elif verb == "logs":
        kind, name = rest[0].split("/")
        assert kind == "job" and name in t.jobs, f"logs of a Job the README did not submit: {rest[0]}"
        t.can("get", "", "pods/log", namespace)
    else:
        pytest.fail(f"kubectl {verb}: no check for it in this test")


def _kind(resource: str) -> str:
    return {"secrets": "Secret", "resourcequotas": "ResourceQuota", "limitranges": "LimitRange"}[resource]


def check_applied(t: Tenant, doc: dict[str, Any]) -> None:
    """An object the engineer applies: theirs to create, valid, admitted by Pod Security, and its
    pods able to run as them with their home, the platform's image and a known priority."""
    namespace = doc["metadata"]["namespace"]
    assert namespace == NS
    group, resource = KINDS[doc["kind"]]
    t.can("create", group, resource, namespace)
    utils = _kubernetes_validate()
    version = config_values(STACK)["akiba:cluster"]["kubernetesVersion"]
    minor = ".".join(version.split(".")[:2]) + ".0"
    assert _validate_resource(utils, doc, "README", minor) is None
    pod = doc["spec"]["template"]["spec"]
    assert baseline(doc["spec"]["template"]) == [], (
        "Pod Security baseline (the namespace's enforce level) would refuse it"
    )
    security = pod["securityContext"]
    assert (security["runAsUser"], security["runAsGroup"]) == (UID, UID)
    claims = [v["persistentVolumeClaim"]["claimName"] for v in pod["volumes"] if "persistentVolumeClaim" in v]
    assert claims == [HOME_CLAIM]
    t.get("PersistentVolumeClaim", HOME_CLAIM)
    priorities = {o["metadata"]["name"] for o in t.objects if o.get("kind") == "PriorityClass"}
    assert pod["priorityClassName"] in priorities
    images = {c["image"] for c in pod["containers"]}
    # The platform's ML image, by the tag it pushes (the ref it builds adds the digest).
    assert images == {t.session_env()["AKIBA_ML_IMAGE"].split("@")[0]}, "the Job runs the ML image the platform builds"
    t.jobs[doc["metadata"]["name"]] = doc


def check_gpu_shell(t: Tenant, argv: list[str]) -> None:
    script = runpy.run_path(str(ROOT / "images" / "ml-runtime" / "akiba-gpu-shell"))
    env = t.session_env()
    image = env["AKIBA_ML_IMAGE"]
    cut = argv.index("--") if "--" in argv else len(argv)
    args = script["parse"]([*argv[1:cut], "--image", image, *argv[cut:]])
    pod = script["pod_manifest"](
        name="gpu-shell-test",
        login=LOGIN,
        uid=UID,
        gid=UID,
        image=image,
        gpus=args.gpus,
        model=args.model,
    )
    assert baseline(pod) == []
    t.can("create", "", "pods")
    t.can("create", "", "pods/exec")
    t.can("delete", "", "pods")
    if args.model:
        models = {g["model"] for n in config_values(STACK)["akiba:nodes"] for g in n.get("gpus", [])}
        assert args.model in models, f"prod has no {args.model}"
    quota = t.get("ResourceQuota", "engineer")["spec"]["hard"]
    assert int(quota["requests.nvidia.com/gpu"]) >= args.gpus


def check_mount(t: Tenant, argv: list[str]) -> None:
    assert argv[:3] == ["sudo", "mount", "-t"] and argv[3] == "nfs4", argv
    options, source = argv[5], argv[6]
    port = int(dict(o.split("=") for o in options.split(","))["port"])
    node, path = source.split(":")
    nfs = t.plan.raw_outputs["nfs"]
    assert nfs["port"] == port and node in {n["hostname"] for n in config_values(STACK)["akiba:nodes"]}
    assert nfs["exports"][LOGIN]["path"] == path == f"/homes/{LOGIN}"
    mine = next(e for e in config_values(STACK)["akiba:engineers"] if e["name"] == LOGIN)
    assert nfs["exports"][LOGIN]["clients"] == mine["nfsClients"], "exported to the declared machines only"


def check_docker(t: Tenant, argv: list[str]) -> None:
    env = t.session_env()
    assert env["DOCKER_HOST"] == "tcp://127.0.0.1:2376" and env["DOCKER_TLS_VERIFY"] == "1"
    assert any("docker" in c["image"] for c in t.home_pod["containers"] if c["name"] != "home")
    verb = argv[1]
    if verb in ("build", "run"):
        # Rootless Docker in a pod has no bridge network (README: "pass --network host").
        assert "--network" in argv and argv[argv.index("--network") + 1] == "host"
    image = argv[argv.index("-t") + 1] if "-t" in argv else argv[-1]
    if verb in ("build", "push"):
        assert image.startswith(config_values(STACK)["akiba:registry"]["mirror"] + "/")
        assert re.search(r":\d+\.\d+", image.rsplit("/", 1)[1]), "a pinned tag, as the policy pack asks"


def check_pulumi(t: Tenant, argv: list[str]) -> None:
    """`pulumi stack output engineerKubeconfig-<login> --show-secrets`: their own output exists, is
    a Pulumi secret and is sealed with age (what `| age -d -i ~/.ssh/id_ed25519` opens)."""
    assert argv[1:3] == ["stack", "output"] and "--show-secrets" in argv, argv
    name = f"engineerKubeconfig-{LOGIN}"
    assert name in argv and name in t.plan.secret_outputs
    assert t.plan.raw_outputs[name].startswith(ARMOR_BEGIN)
    keys = next(e["sshKeys"] for e in config_values(STACK)["akiba:engineers"] if e["name"] == LOGIN)
    assert any(k.startswith("ssh-ed25519 ") for k in keys), "the README opens it with ~/.ssh/id_ed25519"


CHECKS = {
    "pulumi": check_pulumi,
    "ssh": check_ssh,
    "kubectl": check_kubectl,
    "akiba-gpu-shell": check_gpu_shell,
    "sudo": check_mount,
    "docker": check_docker,
}


def pipeline(line: str) -> Iterator[list[str]]:
    """The command before any redirect, then each stage after a pipe."""
    for stage in line.split(" | "):
        argv = shlex.split(stage)
        if ">" in argv:
            argv = argv[: argv.index(">")]
        yield argv


# --- the tests --------------------------------------------------------------------------------


def test_the_section_has_commands_and_this_test_knows_each() -> None:
    found = commands()
    assert len(found) >= 10, found
    assert unknown() == []


def test_every_command_works_for_the_engineer(tenant: Tenant) -> None:
    checked = 0
    for line in commands():
        first, *after = pipeline(line)
        CHECKS[first[0]](tenant, first)
        assert all(stage[0] in FILTERS for stage in after), line
        checked += 1
    assert checked == len(commands())


def test_the_ssh_config_block_matches_the_plan(tenant: Tenant) -> None:
    (config,) = re.findall(r"^```\n(# ~/\.ssh/config\n.*?)^```", section(), re.S | re.M)
    settings: dict[str, list[str]] = {}
    for line in config.splitlines():
        if line.strip() and not line.strip().startswith("#"):
            key, *values = line.split("#")[0].split()
            settings[key] = values
    assert settings["User"] == [LOGIN]
    assert settings["Port"] == [str(default_ssh_port(UID))]
    assert settings["HostKeyAlias"] == [host_key_alias(LOGIN)]
    # Every host the block names runs the engineer's home pod, and every such node is named.
    assert set(settings["Host"]) == tenant.home_nodes()


def test_what_the_engineer_is_told_they_cannot_do_they_cannot(tenant: Tenant) -> None:
    """The section's promises: nothing in another engineer's namespace, nothing in the
    platform's, and their database reachable through their own Secret only."""
    others = [e["name"] for e in config_values(STACK)["akiba:engineers"] if e["name"] != LOGIN]
    assert others
    for other in others:
        for verb, resource in (("get", "secrets"), ("create", "pods"), ("get", "persistentvolumeclaims")):
            assert not tenant.reach.can(Request(verb, "", resource, engineer_namespace(other)))
    assert not tenant.reach.can(Request("get", "", "secrets", "akiba-db"))
    tenant.get("Secret", DATABASE_SECRET)


def test_a_command_this_test_does_not_know_fails_it() -> None:
    """The guard above can fail: a README that tells engineers to run something unchecked."""
    text = README.read_text().replace(
        "```sh\nakiba-gpu-shell\n", "```sh\nnerdctl run --privileged x\nakiba-gpu-shell\n"
    )
    assert unknown(text) == ["nerdctl run --privileged x"]
