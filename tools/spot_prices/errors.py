"""The one exception family the CLI turns into a one-line message and exit status 2."""

from __future__ import annotations


class SpotPriceError(Exception):
    """A problem the user can fix (config, catalogue, credentials, network): no traceback."""


class SettingsError(SpotPriceError):
    """The stack's burst section or a command-line override is unusable."""


class UnknownInstanceTypeError(SpotPriceError):
    """An instance type the catalogue has no GPU facts for."""


class FetchError(SpotPriceError):
    """EC2 could not be asked: no credentials, no network, or the request was refused."""
