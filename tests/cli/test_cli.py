"""The `durably` command, run as a real subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest


def durably(
    *args: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, **(env or {})}
    full_env.pop("DURABLY_WORLD", None)
    return subprocess.run(
        [sys.executable, "-m", "durably", *args],
        cwd=cwd,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_demo_then_inspect(tmp_path: Path) -> None:
    out = durably("demo", "--json", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    demo = json.loads(out.stdout)
    assert demo["status"] == "completed"
    assert demo["world"] == "sqlite:///.durably/durably.db"
    assert (tmp_path / ".durably" / "durably.db").exists()
    run_id = demo["run_id"]

    runs = json.loads(durably("inspect", "runs", "--json", cwd=tmp_path).stdout)
    assert [r["run_id"] for r in runs] == [run_id]

    run = json.loads(durably("inspect", "run", run_id, "--json", cwd=tmp_path).stdout)
    assert run["status"] == "completed"
    assert [s["name"] for s in run["steps"]] == [
        "fetch_user_profile",
        "provision_site",
        "send_welcome_email",
    ]
    assert run["steps"][1]["attempts"] == 2

    events = json.loads(durably("inspect", "events", run_id, "--json", cwd=tmp_path).stdout)
    types = [e["type"] for e in events]
    assert types[0] == "run_created" and types[-1] == "run_completed"
    assert "step_retrying" in types
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))

    human = durably("inspect", "run", run_id, cwd=tmp_path)
    assert "provision_site" in human.stdout and "completed" in human.stdout

    filtered = durably("inspect", "runs", "--status", "failed", "--json", cwd=tmp_path)
    assert json.loads(filtered.stdout) == []


def test_demo_human_output_names_the_inspect_command(tmp_path: Path) -> None:
    out = durably("demo", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "durably inspect run run_" in out.stdout


def test_unknown_run_is_a_clear_error(tmp_path: Path) -> None:
    out = durably("inspect", "run", "run_missing", "--world", "memory://", cwd=tmp_path)
    assert out.returncode == 1
    assert "no run with id 'run_missing'" in out.stderr


def test_unknown_world_scheme(tmp_path: Path) -> None:
    out = durably("inspect", "runs", "--world", "ftp://x", cwd=tmp_path)
    assert out.returncode == 1
    assert "unknown world URL" in out.stderr


@pytest.mark.parametrize(
    "args",
    [
        ["inspect", "runs"],
        ["inspect", "runs", "--world", "sqlite:///dev/null/x.db"],
        ["inspect", "run", "run_x", "--world", "sqlite:///typo/x.db"],
        ["inspect", "events", "run_x", "--world", "sqlite:///typo/x.db"],
        ["inspect", "hooks", "--world", "sqlite:///typo/x.db"],
        ["inspect", "deployments", "--world", "sqlite:///typo/x.db"],
    ],
)
def test_read_only_commands_create_no_database(tmp_path: Path, args: list[str]) -> None:
    out = durably(*args, cwd=tmp_path)
    assert out.returncode == 1, out.stdout
    assert "no database at " in out.stderr and "no runs" not in out.stdout
    assert "--world" in out.stderr and "DURABLY_WORLD" in out.stderr
    assert list(tmp_path.iterdir()) == []  # no folder, no database, no key file


def test_a_url_missing_its_slashes_shows_the_forms(tmp_path: Path) -> None:
    out = durably("inspect", "runs", "--world", "sqlite:/x.db", cwd=tmp_path)
    assert out.returncode == 1
    assert "sqlite:////abs/path.db" in out.stderr and "(none)" not in out.stderr


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("no_such_module:wf", "cannot import module 'no_such_module'"),
        ("badmod:wf", "ZeroDivisionError"),
        ("goodmod:nothing", "has no attribute 'nothing'"),
        ("goodmod:value", "not a durably Workflows registry"),
        ("goodmod", "expected MODULE:ATTR"),
    ],
)
def test_worker_bad_targets(tmp_path: Path, target: str, message: str) -> None:
    (tmp_path / "badmod.py").write_text("x = 1 / 0\n")
    (tmp_path / "goodmod.py").write_text("value = 3\n")
    out = durably("worker", target, cwd=tmp_path)
    assert out.returncode == 1
    assert message in out.stderr


def test_python_dash_m_and_help(tmp_path: Path) -> None:
    out = durably("--help", cwd=tmp_path)
    assert out.returncode == 0
    for cmd in ("demo", "worker", "inspect", "cancel"):
        assert cmd in out.stdout


def _hint_lines(stdout: str) -> list[str]:
    lines = stdout.splitlines()
    return [line.strip() for line in lines[lines.index("look at it:") + 1 :]]


@pytest.mark.parametrize("how", ["script", "module"])
def test_demo_hint_is_a_command_that_works_without_the_venv_on_path(
    tmp_path: Path, how: str
) -> None:
    # As after `make demo`: the venv's bin is not on the PATH, yet the hint must run.
    bin_dir = Path(sys.executable).parent
    path = os.pathsep.join(
        p for p in os.environ.get("PATH", "").split(os.pathsep) if Path(p) != bin_dir
    )
    env = {**os.environ, "PATH": path}
    env.pop("DURABLY_WORLD", None)
    argv = [str(bin_dir / "durably")] if how == "script" else [sys.executable, "-m", "durably"]
    out = subprocess.run(
        [*argv, "demo"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    hints = _hint_lines(out.stdout)
    assert hints and "inspect run run_" in hints[0]
    outputs = []
    for hint in hints:
        shown = subprocess.run(
            hint, shell=True, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60
        )
        assert shown.returncode == 0, f"{hint!r}: {shown.stdout}{shown.stderr}"
        outputs.append(shown.stdout)
    assert "provision_site" in outputs[0]
