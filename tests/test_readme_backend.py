"""The README's backend example runs as written and reproduces fit bit for bit (it asserts it)."""
import os
import re
import subprocess
import sys
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_backend_example_runs(tmp_path):
    text = README.read_text()
    block = re.search(r"<!-- backend-example -->\n```python\n(.*?)```\n<!-- /backend-example -->", text, re.S)
    assert block, "the README lost its backend example"
    script = tmp_path / "backend_example.py"
    script.write_text(block.group(1))
    env = dict(os.environ, PYTHONPATH=str(README.parent) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    run = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=env, capture_output=True, text=True,
                         timeout=600)
    assert run.returncode == 0, run.stderr[-4000:]
    assert "fit's ELBO trace, bit for bit" in run.stdout
