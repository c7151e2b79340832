"""Another team's program: deploy into the akiba cluster with what its outputs contract says."""

from consumer import main

main()
