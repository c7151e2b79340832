"""Engineers as tenants: their namespace, identity, rights, quota and network."""
