"""Storage: Rook Ceph on the nodes' SSDs, its pools and classes, shared homes and personal databases."""
