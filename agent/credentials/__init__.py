"""The branch's signing keys: custody (where each private key is kept, encrypted) and rotation.

The room where a new custody (a PKCS#11 token, an HSM) or a new signature suite (SM2) goes:
:class:`~agent.credentials.custody.KeyCustody` keeps and loads keys, :mod:`~agent.credentials.rotation`
replaces the one that signs.
"""
