"""The local runtime's fixtures (real processes in the shared environment), for the end
to end test that creates a service through MCP."""

from tests.provisioning.local.conftest import runtime_settings  # noqa: F401
from tests.rag_template.conftest import generated_venv  # noqa: F401
