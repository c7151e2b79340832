"""akiba: the whole ML platform as one Pulumi stack. See README.md."""

from stacks.program import main

main()
