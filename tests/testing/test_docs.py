"""docs/testing.md shows the drip-campaign test as it is in tests/testing/."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_docs_show_the_drip_campaign_test_as_it_is() -> None:
    doc = (ROOT / "docs" / "testing.md").read_text()
    source = (ROOT / "tests" / "testing" / "test_drip_campaign.py").read_text()
    marker = "<!-- drip: the text of tests/testing/test_drip_campaign.py"
    assert marker in doc
    shown = doc.split(marker, 1)[1].split("```python\n", 1)[1].split("```", 1)[0]
    assert shown == source
