"""Valid sample data for tests: see :mod:`sandbox.samples` (shared with the demo)."""

from sandbox.samples import *  # noqa: F403
from sandbox.samples import _pointers  # noqa: F401
