"""Centre dialects: the wire formats of registration platforms that do not speak RegBridge's contract.

:mod:`sdk.dialects.province` is the envelope of a provincial 总对总 platform (headers ``appId``,
``timestamp``, ``nonce``; a body ``{encData, encKey, iv, signature}`` in SM4-CBC and SM2) — behind the
``gm`` extra, like :mod:`sdk.gm`. :mod:`sdk.dialects.fields` maps TD/T 1066 field names and code
tables (data in ``config/dialects/``) to and from :mod:`sdk.models`. ``import sdk`` imports neither.
"""

from __future__ import annotations

__all__: list[str] = []
