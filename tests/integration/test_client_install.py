"""The client is a distribution of its own: `pip install service/client` into a fresh venv brings
httpx and pydantic, and neither the server package nor FastAPI, Redis or docker."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SERVER_SIDE = ("service", "fastapi", "starlette", "uvicorn", "redis", "docker", "mcp")
CHECK = f"""
import importlib.metadata, importlib.util
import sandbox_client
from sandbox_client import SandboxClient, AsyncSandboxClient, RunResult
print(sorted(importlib.metadata.requires("sandbox-client")))
print([name for name in {SERVER_SIDE!r} if importlib.util.find_spec(name)])
"""


def test_installs_alone(tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    # A venv without pip of its own (quicker to make): this pip installs into it.
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True,
                   timeout=120)
    python = str(venv / "bin" / "python")
    subprocess.run([sys.executable, "-m", "pip", "--python", python, "install", "-q",
                    str(ROOT / "service" / "client")], check=True, timeout=300, cwd=tmp_path)
    found = subprocess.run([python, "-c", CHECK], check=True, timeout=60, cwd=tmp_path,
                           capture_output=True, text=True).stdout.splitlines()
    assert found[0].startswith("['httpx") and "pydantic" in found[0] and "fastapi" not in found[0]
    assert found[1] == "[]"
