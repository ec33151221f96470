"""ccspec: declarative, GitOps-style workflow specs for hybrid HPC and cloud analytics."""

from __future__ import annotations

__version__ = "0.1.0"
