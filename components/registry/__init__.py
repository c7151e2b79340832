"""The private registry: pull-through cache and private images, its config, the ML runtime image."""
