"""The cluster itself: identity and PKI, node bootstrap (cloud-init), namespaces, add-ons, Helm and raw objects."""
