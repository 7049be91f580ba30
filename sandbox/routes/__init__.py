"""The HTTP routes, one module per resource group; :func:`sandbox.app.create_app` includes them.

Handlers are thin: authenticate (:class:`~sandbox.routes.common.Context`), call the centre's
office, answer.
"""
