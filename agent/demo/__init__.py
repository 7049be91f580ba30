"""The demo: a sandbox centre, an enrolled agent and three loan systems' sample exports, end to end.

- :mod:`agent.demo.run`: ``regbridge demo`` (:func:`run_demo`);
- :mod:`agent.demo.samples`: the sample exports (config/samples/) and materials, built from the
  sandbox's seeded register; the tests and the benchmarks use them too.

This package is the only part of the agent that imports the sandbox (import-linter checks it),
and only its public names.
"""

from agent.demo.run import EXPECTED, MARKER, DemoFolderRefused, prepare_demo_folder, run_demo

__all__ = ["EXPECTED", "MARKER", "DemoFolderRefused", "prepare_demo_folder", "run_demo"]
