"""The software's version, printed on every report and export that says what made it.

Kept equal to ``[project] version`` in pyproject.toml (a test checks), so a report can be
traced to the code without the package being installed.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
