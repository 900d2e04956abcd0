"""The README's quick start is examples/quickstart.py, byte for byte, and runs as printed."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BLOCK = re.compile(
    r"<!-- quickstart:[^\n]*-->\n```python\n(?P<code>.*?)```\n<!-- /quickstart -->", re.DOTALL
)


def readme_quickstart() -> str:
    found = BLOCK.findall((ROOT / "README.md").read_text(encoding="utf-8"))
    assert len(found) == 1, "the README must have one quick-start block between its markers"
    code: str = found[0]
    return code


def test_readme_quickstart_is_examples_quickstart() -> None:
    assert readme_quickstart().encode() == (ROOT / "examples" / "quickstart.py").read_bytes()


def test_readme_quickstart_runs_as_printed_and_says_how_to_look(tmp_path: Path) -> None:
    (tmp_path / "quickstart.py").write_text(readme_quickstart(), encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if k != "DURABLY_WORLD"}
    out = subprocess.run(
        [sys.executable, "quickstart.py"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].startswith("started run_"), out.stdout
    assert "email to u1: your site is live at https://grace.example.com" in lines
    assert "result {'user': 'u1', 'host': 'grace.example.com'}" in lines
    hint = lines[-1]
    assert re.fullmatch(r"look at it: durably inspect run run_\w+", hint), hint

    # The command it prints shows the run: `durably` is this environment's script.
    argv = shlex.split(hint.removeprefix("look at it: "))
    argv[0] = str(Path(sys.executable).parent / "durably")
    shown = subprocess.run(argv, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert shown.returncode == 0, shown.stdout + shown.stderr
    assert "completed" in shown.stdout
    for step in ("fetch_user_profile", "create_dns_record", "sleep", "send_email"):
        assert step in shown.stdout
