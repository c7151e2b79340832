"""`pulumi preview --policy-pack policy`: akiba's guard rails (rules in akiba_policy/rules.py)."""

from akiba_policy.pack import POLICIES
from pulumi_policy import PolicyPack

PolicyPack(name="akiba-guardrails", policies=POLICIES)
