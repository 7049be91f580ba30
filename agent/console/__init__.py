"""The agent's local web console (docs/console.md): overview, loans, a loan's timeline, quarantine,
certificates, fees, transmittals and the audit export, in Chinese, behind a login.

- :mod:`agent.console.app`: the pages and actions (Starlette + Jinja2, server-rendered);
- :mod:`agent.console.users`: local users with argon2id password hashes and roles
  (viewer / operator / admin), managed with ``regbridge users``;
- :mod:`agent.console.server`: served by uvicorn — on loopback by default; LAN mode over TLS
  (``[console] tls_cert`` / ``tls_key``) or behind the bank's reverse proxy (``behind_proxy``) —
  from the daemon (``[console] enabled``) or from ``regbridge console``.
"""

from agent.console.app import ConsoleHost, create_app
from agent.console.server import ConsoleServer
from agent.console.users import ROLES, User, UserError, UserStore

__all__ = ["ROLES", "ConsoleHost", "ConsoleServer", "User", "UserError", "UserStore", "create_app"]
