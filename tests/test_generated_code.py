"""The committed gRPC code matches protos/: regenerate into a temporary folder and compare."""

from __future__ import annotations

import filecmp
from pathlib import Path

from protos.generate import PROTO_ROOT, generate


def test_generated_code_is_current(tmp_path: Path) -> None:
    generate(tmp_path)
    fresh = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*_pb2*.py*"))
    committed = sorted(p.relative_to(PROTO_ROOT) for p in PROTO_ROOT.rglob("*_pb2*.py*"))
    assert fresh == committed, "generated files differ: run `python protos/generate.py`"
    stale = [str(p) for p in fresh if not filecmp.cmp(tmp_path / p, PROTO_ROOT / p, shallow=False)]
    assert not stale, f"stale generated code {stale}: run `python protos/generate.py`"
