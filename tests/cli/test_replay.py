"""`durably inspect events RUN --export FILE` and `durably replay FILE MODULE:ATTR`, as real
subprocesses: a history exported from an encrypted world replays against the code that
wrote it (exit 0), a reordered step is caught (exit 1, naming the step index, what the
log has and what the code called), bad input exits 2."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from durably import NonDeterminismError, Workflows
from durably.crypto import is_sealed
from durably.testing import replay

SHOP = """
import asyncio
from durably import Workflows, sleep

wf = Workflows(world="sqlite:///shop.db")

@wf.step
async def validate(order: str) -> str:
    return order.upper()

@wf.step
async def reserve(order: str) -> int:
    return 3

@wf.step
async def charge(order: str, amount: int) -> str:
    return f"charged {{amount}} for {{order}}"

@wf.workflow
async def checkout(order: str) -> str:
    order = await validate(order)
    {body}
    await sleep(0.01)
    return receipt

async def main() -> None:
    async with wf:
        run = await wf.start(checkout, "o-1")
        await run.return_value(timeout=30)
        print(run.run_id)

if __name__ == "__main__":
    asyncio.run(main())
"""

IN_ORDER = "n = await reserve(order); receipt = await charge(order, n)"
REORDERED = "receipt = await charge(order, 3); n = await reserve(order)"


def durably(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "DURABLY_WORLD"}
    env["PYTHONPATH"] = str(cwd)
    return subprocess.run(
        [sys.executable, "-m", "durably", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.fixture
def exported(tmp_path: Path) -> Path:
    (tmp_path / "shop_v1.py").write_text(SHOP.format(body=IN_ORDER))
    (tmp_path / "shop_v2.py").write_text(SHOP.format(body=REORDERED))
    ran = subprocess.run(
        [sys.executable, "shop_v1.py"], cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert ran.returncode == 0, ran.stderr
    run_id = ran.stdout.strip()
    out = durably(
        "inspect",
        "events",
        run_id,
        "--export",
        "h.json",
        "--world",
        "sqlite:///shop.db",
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr
    assert "exported" in out.stderr and "audit" in out.stderr
    return tmp_path / "h.json"


def test_export_writes_a_decrypted_history_and_audits_it(exported: Path) -> None:
    doc = json.loads(exported.read_text())
    assert doc["format"] == "durably.history/1" and doc["workflow"] == "checkout"
    assert doc["status"] == "completed"
    names = [e["data"].get("name") for e in doc["events"] if e["type"] == "step_created"]
    assert names == ["validate", "reserve", "charge"]
    # The payloads are plaintext in the file (the world stores them encrypted)...
    payloads = [base64.b64decode(e["payload"]) for e in doc["events"] if e["payload"]]
    assert payloads and not any(is_sealed(p) for p in payloads)
    assert json.loads(payloads[0]) == {"a": ["o-1"], "k": {}}
    events = json.loads(
        durably(
            "inspect",
            "events",
            doc["run_id"],
            "--json",
            "--world",
            "sqlite:///shop.db",
            cwd=exported.parent,
        ).stdout
    )
    # ...and the run's log says who decrypted them for an export.
    [audit] = [e for e in events if e["type"] == "data_decrypted"]
    assert audit["data"]["what"] == "export" and audit["data"]["via"] == "cli"


def test_replay_passes_against_the_same_code(exported: Path) -> None:
    out = durably("replay", "h.json", "shop_v1:wf", cwd=exported.parent)
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stdout.startswith("ok: h.json: run ")


def test_replay_catches_a_reordered_step(exported: Path) -> None:
    out = durably("replay", "h.json", "shop_v2:wf", cwd=exported.parent)
    assert out.returncode == 1, out.stdout + out.stderr
    print(out.stdout)
    assert "DIVERGED: h.json" in out.stdout and "at step 1 " in out.stdout
    assert "the log has:     step 'reserve'" in out.stdout
    assert "the code called: step 'charge'" in out.stdout
    as_json = durably("replay", "h.json", "shop_v2:wf", "--json", cwd=exported.parent)
    [report] = json.loads(as_json.stdout)
    assert report["compatible"] is False
    assert report["divergence"]["index"] == 1
    assert (report["divergence"]["recorded"], report["divergence"]["called"]) == (
        "step 'reserve'",
        "step 'charge'",
    )


async def test_testing_replay_raises_on_the_reordered_step(exported: Path) -> None:
    ns: dict[str, object] = {}
    exec(compile(SHOP.format(body=REORDERED), "shop_v2", "exec"), ns)
    wf = ns["wf"]
    assert isinstance(wf, Workflows)
    with pytest.raises(NonDeterminismError, match=r"diverged at step 1: the log has step "):
        await replay(exported, wf)
    ns1: dict[str, object] = {}
    exec(compile(SHOP.format(body=IN_ORDER), "shop_v1", "exec"), ns1)
    report = await replay(exported, ns1["wf"])  # type: ignore[arg-type]
    assert report.ok and report.calls == 4  # validate, reserve, charge, the sleep


def test_replay_exits_2_on_bad_input(exported: Path) -> None:
    cwd = exported.parent
    (cwd / "junk.json").write_text("not json")
    (cwd / "other.py").write_text(
        "from durably import Workflows\nwf = Workflows(world='memory://')\n"
    )
    for args in (
        ("replay", "missing.json", "shop_v1:wf"),
        ("replay", "junk.json", "shop_v1:wf"),
        ("replay", "h.json", "other:wf"),  # no workflow 'checkout' there
        ("replay", "h.json", "nosuchmodule:wf"),
    ):
        out = durably(*args, cwd=cwd)
        assert out.returncode == 2, (args, out.stdout, out.stderr)
        assert out.stderr.startswith("error: "), out.stderr
