"""The names every part of tenancy agrees on: an engineer's namespace, their Kubernetes user,
the read-only identity other teams get, and the objects each engineer's namespace holds.

One module so that the RBAC objects, the network policies, the home pods, the policy pack and
the offline access check all speak of the same subjects and places.
"""

from __future__ import annotations

# Label on an engineer's Namespace (value: the login). The API server sets
# kubernetes.io/metadata.name itself, which is what network policies select on: a label an
# engineer could set on a pod or namespace of their own never grants access.
ENGINEER_LABEL = "akiba.io/engineer"
NAMESPACE_PREFIX = "eng-"
# The Kubernetes user other teams' read-only kubeconfig authenticates as.
CONSUMER_USER = "akiba-consumer"

# Objects in each engineer's namespace.
HOME_CLAIM = "home"  # their CephFS home, mounted at /home/<login> in their home pod and Jobs
KUBECONFIG_SECRET = "kubeconfig"  # noqa: S105 (a name) key "config": their own kubeconfig, mounted in their home pod
DATABASE_SECRET = "database"  # noqa: S105 (a name) their personal database's connection (host, port, user, password)
REGISTRY_SECRET = "registry"  # noqa: S105 (a name) their registry account: Docker's config.json, the registry's CA


def engineer_namespace(login: str) -> str:
    """`eng-<login>`: everything of one engineer's lives here."""
    return f"{NAMESPACE_PREFIX}{login}"


def engineer_user(login: str) -> str:
    """The Kubernetes user name in the engineer's client certificate (CN). No groups: every
    grant is bound to this name, so removing the engineer removes every grant at once."""
    return login
