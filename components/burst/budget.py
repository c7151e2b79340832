"""The burst spending cap: an AWS Budget on this cluster's tagged costs that mails at 80% of
actual spend and at a forecast over 100%. (A budget warns; it does not stop instances — the
group's maxSize is the hard limit.)"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from components.context import PlatformContext


@dataclass(frozen=True)
class BurstBudgetArgs:
    ctx: PlatformContext
    monthly_usd: float
    notify_email: str
    provider: aws.Provider


class BurstBudget(pulumi.ComponentResource):
    def __init__(self, name: str, args: BurstBudgetArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("akiba:burst:BurstBudget", name, None, opts)
        cluster = args.ctx.cluster_name

        def notify(kind: str, percent: int) -> dict[str, object]:
            return {
                "comparison_operator": "GREATER_THAN",
                "notification_type": kind,
                "threshold": percent,
                "threshold_type": "PERCENTAGE",
                "subscriber_email_addresses": [args.notify_email],
            }

        aws.budgets.Budget(
            "burst",
            name=f"{cluster}-burst",
            budget_type="COST",
            limit_amount=f"{args.monthly_usd:.2f}",
            limit_unit="USD",
            time_unit="MONTHLY",
            # Needs the `akiba:cluster` cost allocation tag activated in the billing console.
            cost_filters=[{"name": "TagKeyValue", "values": [f"user:akiba:cluster${cluster}"]}],
            notifications=[notify("ACTUAL", 80), notify("FORECASTED", 100)],
            opts=pulumi.ResourceOptions(parent=self, provider=args.provider),
        )
        self.register_outputs({})
