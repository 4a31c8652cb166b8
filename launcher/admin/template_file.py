"""Interview templates as files (YAML or JSON) and durations as people write them.

    role: Backend Engineer
    questions:                # asked in this order
      - Tell me about yourself.
      - Describe a hard bug you fixed.
    time_limit: 10m           # or time_limit_seconds: 600
    language: en-US           # optional (BCP 47), default en-US
    voice: alloy              # optional, default alloy
    instructions: Be kind.    # optional

The file is checked here, so a mistake is reported with its place in the file before anything is
sent; the control service checks the values again (lengths, characters).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml

from interview.v1 import resources_pb2
from launcher.admin.connection import CommandError, invalid_input

TEXT_FIELDS = ("role", "language", "voice", "instructions")
FIELDS = (*TEXT_FIELDS, "questions", "time_limit", "time_limit_seconds")
_DURATION = re.compile(r"^(?:(\d+)d)?\s*(?:(\d+)h)?\s*(?:(\d+)m(?:in)?)?\s*(?:(\d+)s)?$")


def parse_duration(value: object, what: str = "time_limit") -> int:
    """Seconds from 600, "600", "600s", "10m", "1h30m", "7d"."""
    if isinstance(value, bool) or value is None:
        raise invalid_input(f"{what}: a number of seconds or a duration such as 10m, 90s, 1h30m")
    if isinstance(value, int):
        seconds = value
    else:
        text = str(value).strip().lower()
        if text.isdigit():
            seconds = int(text)
        else:
            match = _DURATION.fullmatch(text)
            if not text or match is None or not any(match.groups()):
                raise invalid_input(f"{what}: {value!r} is not a duration (try 600, 90s, 10m or 1h30m)")
            days, hours, minutes, secs = (int(g) if g else 0 for g in match.groups())
            seconds = ((days * 24 + hours) * 60 + minutes) * 60 + secs
    if seconds <= 0:
        raise invalid_input(f"{what}: must be positive")
    return seconds


def load_template_file(path: Path) -> dict[str, Any]:
    """The file's fields, checked; raises CommandError (INVALID_ARGUMENT) naming the problem."""
    where = str(path)
    try:
        raw = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise invalid_input(f"template file {where}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise invalid_input(f"template file {where}: cannot read it ({exc.__class__.__name__})") from None
    try:
        data = json.loads(raw) if path.suffix.lower() == ".json" else yaml.safe_load(raw)
    except json.JSONDecodeError as exc:
        raise invalid_input(f"template file {where}: not valid JSON (line {exc.lineno}: {exc.msg})") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        place = f"line {mark.line + 1}: " if mark is not None else ""
        problem = getattr(exc, "problem", None) or "syntax error"
        raise invalid_input(f"template file {where}: not valid YAML ({place}{problem})") from None
    try:
        return check_fields(data)
    except CommandError as exc:
        raise invalid_input(f"template file {where}: {exc.message}") from None


def check_fields(data: object) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise invalid_input("must be a mapping of fields (role, questions, time_limit, ...)")
    unknown = sorted(str(k) for k in data if k not in FIELDS)
    if unknown:
        raise invalid_input(f"unknown field(s) {', '.join(unknown)}; known: {', '.join(FIELDS)}")
    out: dict[str, Any] = {}
    for name in TEXT_FIELDS:
        if name in data and data[name] is not None:
            if not isinstance(data[name], str):
                raise invalid_input(f"{name}: must be text")
            out[name] = data[name]
    if "questions" in data:
        questions = data["questions"]
        if not isinstance(questions, list):
            raise invalid_input("questions: must be a list of questions")
        for i, q in enumerate(questions):
            if not isinstance(q, str) or not q.strip():
                raise invalid_input(f"questions[{i}]: must be non-empty text")
        out["questions"] = list(questions)
    if "time_limit" in data and "time_limit_seconds" in data:
        raise invalid_input("give time_limit or time_limit_seconds, not both")
    for name in ("time_limit", "time_limit_seconds"):
        if name in data:
            out["time_limit_seconds"] = parse_duration(data[name], name)
    return out


def build_template(fields: dict[str, Any]) -> resources_pb2.Template:
    """A Template from checked fields; the fields a template cannot do without must be there."""
    missing = [name for name, key in (("role", "role"), ("questions", "questions"),
                                      ("time_limit", "time_limit_seconds")) if not fields.get(key)]
    if missing:
        raise invalid_input(f"missing {', '.join(missing)} (from the file or --role/--question/--time-limit)")
    return resources_pb2.Template(
        role=fields["role"], questions=fields["questions"], time_limit_seconds=fields["time_limit_seconds"],
        language=fields.get("language", ""), voice=fields.get("voice", ""),
        instructions=fields.get("instructions", ""))
