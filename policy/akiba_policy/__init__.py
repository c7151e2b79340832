"""akiba's guard rails: rules over planned resources, shared by the Pulumi policy pack
(`pulumi preview --policy-pack policy`) and the offline gate of `make plan` / `make test`."""
