"""ML workloads for people: the web apps and the GPU benchmark Jobs."""
