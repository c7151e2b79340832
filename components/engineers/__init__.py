"""Engineer services: each engineer's own home container on every GPU node (sshd as them, their
home, their rootless Docker), its accounts, and the ML image kept on every GPU node."""
