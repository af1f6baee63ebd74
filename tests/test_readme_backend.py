"""The documentation's backend example runs as written and reproduces fit bit for bit (it asserts it).

The example lives in docs/guide/engine.md (the README links to it), between the markers below.
"""
import os
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PAGE = REPO / "docs" / "guide" / "engine.md"


def test_readme_backend_example_runs(tmp_path):
    text = PAGE.read_text()
    block = re.search(r"<!-- backend-example -->\n```python\n(.*?)```\n<!-- /backend-example -->", text, re.S)
    assert block, "docs/guide/engine.md lost its backend example"
    script = tmp_path / "backend_example.py"
    script.write_text(block.group(1))
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    run = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=env, capture_output=True, text=True,
                         timeout=600)
    assert run.returncode == 0, run.stderr[-4000:]
    assert "fit's ELBO trace, bit for bit" in run.stdout
