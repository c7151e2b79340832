"""Engineer services: the ssh-able home container on every GPU node and its accounts."""
