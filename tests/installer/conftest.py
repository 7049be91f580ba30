from tests.agent.conftest import branch, centre  # noqa: F401 - the sandbox centre and branch fixtures, shared
