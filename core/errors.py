"""The one base of every error that core raises for something a user can fix.

Library code raises a subclass with a one-line message; only ``core.cli`` turns these
into a printed line and exit status 2, and the viewer shows the message as it is.
"""

from __future__ import annotations


class CoreError(ValueError):
    """Something the user can fix (a bad file, missing weights, a wrong option): one line."""


class OptionError(CoreError):
    """An option that cannot be honoured on this machine (e.g. a CUDA device that is absent)."""
