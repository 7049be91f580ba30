"""The registration centre as the pipeline sees it: one small port, and its adapters.

- :mod:`agent.centre.port`: :class:`CentrePort`, the operations the stages use (the only thing they import);
- :mod:`agent.centre.api`: :class:`ApiCentre`, the port over RegBridge's own API (``sdk.Client``);
- :mod:`agent.centre.province`: :class:`ProvinceCentre`, the port over a provincial 总对总 platform's envelope;
- :mod:`agent.centre.client`: the connection to the configured centre (transport, SDK client, clock).

A centre dialect is a new adapter module here, implementing :class:`CentrePort` (docs/dialects.md).
"""

from agent.centre.api import ApiCentre
from agent.centre.port import CentrePort

__all__ = ["ApiCentre", "CentrePort"]
