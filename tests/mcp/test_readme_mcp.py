"""The README's MCP Python client example, run as written (a subprocess of this interpreter)
against the live server, with the URL and key it reads from the environment."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from tests.openai.conftest import LiveServer

README = Path(__file__).resolve().parents[2] / "README.md"
HANDBOOK = "Every employee gets 25 days of paid leave per year, booked through the HR portal."


def python_client_block() -> str:
    section = README.read_text().split("### Python client", 1)[1]
    match = re.search(r"```python\n(.*?)```", section, re.DOTALL)
    assert match, "the MCP section's Python example is missing from the README"
    return match.group(1)


def test_readme_python_client_as_written_lists_tools_and_answers(
    mcp_server: LiveServer, tmp_path: Path
) -> None:
    key = mcp_server.new_key("mcp-readme@example.com")
    mcp_server.upload(key, "Handbook", HANDBOOK)
    script = tmp_path / "client.py"
    script.write_text(python_client_block())
    result = subprocess.run(  # noqa: S603 - the README's own example
        [sys.executable, str(script)],
        env={
            **os.environ,
            "CHATBOT_MCP_URL": f"{mcp_server.url}/mcp",
            "CHATBOT_API_KEY": key,
        },
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert "search_knowledge_base" in lines[0]
    assert "read_document" in lines[0]
    assert lines[1].startswith("Handbook ")
    assert "[1]" in result.stdout  # the fake LLM's cited answer
    assert "Sources:" in result.stdout
