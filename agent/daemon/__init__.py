"""The daemon: the agent composed from its rooms, and the scheduler that drives its stages.

- :mod:`agent.daemon.agent`: :class:`Agent` builds the state, the centre port, the credentials and
  the connectors into the stages' context, and runs one round of each stage
  (:meth:`Agent.run_until_idle` drives them in a loop for the demo and the tests);
- :mod:`agent.daemon.scheduler`: :func:`run_daemon`, ``regbridge run`` (apscheduler jobs, signals);
- :mod:`agent.daemon.supervision`: the pause, the centre's reachability, the disk, the inboxes;
- :mod:`agent.daemon.metrics`, :mod:`agent.daemon.webhook`, :mod:`agent.daemon.systemd`: what the
  daemon serves and tells (``/metrics`` and ``/healthz``, the webhook receiver, sd_notify).

Nothing in :mod:`agent.pipeline` imports this package.
"""

from agent.daemon.agent import Agent, AgentBusy, Progress
from agent.daemon.scheduler import run_daemon

__all__ = ["Agent", "AgentBusy", "Progress", "run_daemon"]
