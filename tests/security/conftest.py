from tests.agent.conftest import branch, centre  # noqa: F401 - the sandbox centre and an enrolled branch
from tests.sandbox.conftest import bank, sandbox, suite  # noqa: F401 - the centre over HTTP (its crypto suite), an enrolled bank key
