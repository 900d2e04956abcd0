"""durably installed as a user installs it: without extras, the core alone works and each
optional feature names its extra; ``python -m build`` makes a wheel and an sdist that install
and run the demo.

The venv tests install from a copy of this source tree into fresh venvs (about a minute,
marked ``slow``; ``make test`` runs them like the others).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tomllib
import zipfile
from collections.abc import Sequence
from pathlib import Path

import pytest

from durably import _extras
from durably.errors import MissingExtraError

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
OPTIONAL = ("asyncpg", "orjson", "starlette", "uvicorn", "jinja2", "opentelemetry", "pydantic_ai")


def _names(requirements: Sequence[str]) -> set[str]:
    return {r.split(">")[0].split("=")[0].split("[")[0].strip().lower() for r in requirements}


def test_extras_add_up() -> None:
    extras = PYPROJECT["project"]["optional-dependencies"]
    core = _names(PYPROJECT["project"]["dependencies"])
    features = ("postgres", "web", "otel", "mcp", "ai")
    assert not core & {
        "asyncpg", "orjson", "starlette", "uvicorn", "jinja2", "opentelemetry-api",
        "pydantic-ai-slim", "mcp",
    }  # fmt: skip
    union = set().union(*(set(extras[f]) for f in features))
    assert set(extras["all"]) == union, "`all` is every feature extra, nothing else"
    assert set(extras["dev"]) >= union, "`dev` includes every extra"
    # The import names the guards check are the packages the extras install.
    import_names = {"opentelemetry-api": "opentelemetry", "pydantic-ai-slim": "pydantic_ai"}
    for f in features:
        assert {import_names.get(n, n) for n in _names(extras[f])} == set(_extras.EXTRAS[f])


def test_a_missing_extra_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(_extras.EXTRAS, "postgres", ("durably_no_such_module",))
    with pytest.raises(MissingExtraError) as e:
        _extras.require("postgres", "The PostgreSQL world")
    assert 'pip install "durably[postgres]"' in str(e.value)
    assert isinstance(e.value, ImportError)


# --- real installs ---------------------------------------------------------------------

_IGNORE = shutil.ignore_patterns(
    ".git", ".venv", "venv", "build", "dist", "*.egg-info", "__pycache__", ".durably",
    ".mypy_cache", ".ruff_cache", ".pytest_cache", "results",
)  # fmt: skip


def run(argv: Sequence[str], cwd: Path, check: bool = True) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DURABLY_WORLD", "VIRTUAL_ENV")}
    out = subprocess.run(list(argv), cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    if check:
        assert out.returncode == 0, f"{argv}: {out.stdout}{out.stderr}"
    return out


def make_venv(where: Path) -> Path:
    """A fresh venv; its bin folder."""
    run([sys.executable, "-m", "venv", str(where)], cwd=where.parent)
    return where / "bin"


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the source tree, as a fresh clone has it (builds write into it)."""
    dest = tmp_path_factory.mktemp("src") / "durably"
    shutil.copytree(ROOT, dest, ignore=_IGNORE)
    return dest


@pytest.fixture(scope="module")
def plain(source: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The bin folder of a venv where `pip install .` installed durably, no extras."""
    bin_dir = make_venv(tmp_path_factory.mktemp("plain") / "venv")
    run([str(bin_dir / "python"), "-m", "pip", "install", "--quiet", str(source)], cwd=source)
    return bin_dir


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_plain_install_is_the_core_and_runs_the_demo(plain: Path, tmp_path: Path) -> None:
    py = str(plain / "python")
    absent = run(
        [py, "-c", "import importlib.util as u, json, sys; "
         f"print(json.dumps([m for m in {list(OPTIONAL)!r} if u.find_spec(m)]))"],
        cwd=tmp_path,
    )  # fmt: skip
    assert json.loads(absent.stdout) == [], "a plain install pulls no optional dependency"

    # The core imports and runs: the package, both embedded worlds, the CLI.
    run([py, "-c", "import durably, durably.cli, durably.worlds.sqlite, durably.worlds.memory, "
         "durably.http.payloads"], cwd=tmp_path)  # fmt: skip
    demo = run([str(plain / "durably"), "demo", "--json"], cwd=tmp_path)
    run_id = json.loads(demo.stdout)["run_id"]
    shown = run([str(plain / "durably"), "inspect", "run", run_id], cwd=tmp_path)
    assert "provision_site" in shown.stdout and "completed" in shown.stdout
    quick = run([py, str(ROOT / "examples" / "quickstart.py")], cwd=tmp_path)
    assert "result {'user': 'u1', 'host': 'grace.example.com'}" in quick.stdout


@pytest.mark.slow
@pytest.mark.timeout(900)
@pytest.mark.parametrize(
    ("argv", "extra"),
    [
        (["python", "-c", "from durably import Workflows; Workflows(world='postgresql://x/y')"],
         "postgres"),
        (["durably", "inspect", "runs", "--world", "postgresql://x/y"], "postgres"),
        (["python", "-c", "import durably.http; durably.http.app"], "web"),
        (["python", "-c", "from durably.web import create_app"], "web"),
        (["durably", "web"], "web"),
        (["durably", "mcp"], "mcp"),
        (["python", "-c", "import durably.ai"], "ai"),
    ],
    ids=["Workflows-postgres", "cli-postgres", "http-app", "dashboard-module", "durably-web",
         "durably-mcp", "ai"],
)  # fmt: skip
def test_a_feature_without_its_extra_names_the_extra(
    plain: Path, tmp_path: Path, argv: list[str], extra: str
) -> None:
    out = run([str(plain / argv[0]), *argv[1:]], cwd=tmp_path, check=False)
    assert out.returncode != 0
    assert f'pip install "durably[{extra}]"' in out.stderr, out.stderr
    if argv[0] == "durably":
        assert "Traceback" not in out.stderr, "the CLI says it in one line"


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_build_makes_a_wheel_and_an_sdist_that_install_and_run(
    source: Path, tmp_path: Path
) -> None:
    dist = tmp_path / "dist"
    # `python -m build` builds the sdist, then the wheel from it: a working wheel also
    # shows the sdist holds everything.
    run([sys.executable, "-m", "build", "--outdir", str(dist), str(source)], cwd=source)
    version = PYPROJECT["project"]["version"]
    wheel = dist / f"durably-{version}-py3-none-any.whl"
    assert wheel.exists() and (dist / f"durably-{version}.tar.gz").exists(), os.listdir(dist)
    names = zipfile.ZipFile(wheel).namelist()
    for needed in ("durably/py.typed", "durably/SKILL.md", "durably/web/templates/base.html"):
        assert needed in names, needed
    assert any(n.startswith("durably/worlds/sqlite/migrations/") for n in names)
    assert any(n.startswith("durably/worlds/postgres/migrations/") for n in names)

    bin_dir = make_venv(tmp_path / "venv")
    run([str(bin_dir / "python"), "-m", "pip", "install", "--quiet", str(wheel)], cwd=tmp_path)
    demo = run([str(bin_dir / "durably"), "demo", "--json"], cwd=tmp_path)
    assert json.loads(demo.stdout)["status"] == "completed"
