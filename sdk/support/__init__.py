"""Small helpers that more than one layer needs, kept at the bottom so every layer may import them.

Not part of the SDK's public API (``sdk.__all__`` does not name them), and nothing here imports
the agent, the connectors or the sandbox:

- :mod:`sdk.support.files` — atomic file writes (temporary file, fsync, rename, fsync of the folder);
- :mod:`sdk.support.failpoints` — the named crash points of the reliability suite, inert unless
  ``REGBRIDGE_FAILPOINT`` is set;
- :mod:`sdk.support.fonts` — the CJK font certificates and transmittal lists are drawn with
  (needs reportlab: the ``agent`` or ``sandbox`` extra).
"""
