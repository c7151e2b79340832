"""The machines nodes run on: MAAS-deployed PCs and libvirt VMs with disks on Ceph RBD."""
