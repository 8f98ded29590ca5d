"""The OpenAPI document is generator-ready: openapi-python-client makes a Python client
from the `/openapi.json` that `make run`'s stack serves, with no warning; installed with
pip into a fresh venv, that client runs the README quickstart (create a call, read it
until `completed`, list agents) and reads an error as our error shape."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.support.all_in_one import running_all_in_one

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]

GENERATOR = Path(sys.executable).parent / "openapi-python-client"
QUICKSTART = Path(__file__).parent / "generated_client" / "quickstart.py"
# The generator's own formatting hooks are not needed to use the client.
# The recording route answers audio/wav and a batch may be posted as text/csv: the
# generator handles both as bytes when told so (docs/api.md gives the same config).
CONFIG = """\
post_hooks: []
project_name_override: switchboard-client
package_name_override: switchboard_client
content_type_overrides:
  audio/wav: application/octet-stream
  text/csv: application/octet-stream
"""


def run(*args: str | Path, cwd: Path | None = None, timeout: float = 300) -> str:
    result = subprocess.run(
        [str(a) for a in args], cwd=cwd, capture_output=True, text=True, timeout=timeout
    )
    assert result.returncode == 0, f"{args}:\n{result.stdout}\n{result.stderr}"
    return result.stdout


def test_a_generated_client_runs_the_readme_quickstart(tmp_path: Path) -> None:
    with running_all_in_one(tmp_path) as system:
        schema = tmp_path / "openapi.json"
        served = httpx.get(f"{system.url}/openapi.json", timeout=10)
        # Provider callbacks are served by the same process, but are not the customer's.
        assert not [path for path in served.json()["paths"] if "/providers/" in path]
        schema.write_text(served.text)
        config = tmp_path / "generator.yaml"
        config.write_text(CONFIG)
        out = tmp_path / "client"
        run(
            GENERATOR, "generate", "--path", schema, "--config", config,
            "--meta", "pdm", "--output-path", out, "--fail-on-warning",
        )  # fmt: skip
        assert (out / "switchboard_client" / "api" / "calls" / "create_call.py").exists()

        venv = tmp_path / "venv"
        run(sys.executable, "-m", "venv", venv)
        python = venv / "bin" / "python"
        run(python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", out)
        seen = json.loads(run(python, QUICKSTART, system.url, system.api_key, timeout=60))

    assert seen["status"] == "completed"
    assert seen["transcript"]
    assert isinstance(seen["duration"], int)
    assert seen["agents"] == ["akylai", "altai", "altynai"]
    assert seen["missing_code"] == "call_not_found"
