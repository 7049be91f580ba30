from tests.agent.conftest import centre  # noqa: F401 - the sandbox centre fixture, shared
