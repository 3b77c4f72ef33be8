"""docs/protocol.md must stay the shared spec word for word, plus additions."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SPEC = ROOT.parent / "shared" / "spec" / "protocol.md"


@pytest.mark.smoke
@pytest.mark.skipif(not SPEC.exists(), reason="the shared spec is not checked out beside the project")
def test_docs_protocol_contains_the_shared_spec_verbatim():
    ours = (ROOT / "docs" / "protocol.md").read_text()
    spec_body = SPEC.read_text().split("## Conventions", 1)[1]
    assert "## Conventions" + spec_body in ours
