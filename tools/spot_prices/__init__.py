"""Spot price report for the burst group: `python -m tools.spot_prices --stack prod`.

Reads the stack file's `akiba:burst` section, asks EC2 for the spot price history of the
configured instance types and zones, and reports price per GPU-hour, the cheapest choice and
the hourly cost at `maxSize`. The arithmetic lives in `figures` and never touches AWS.
"""
