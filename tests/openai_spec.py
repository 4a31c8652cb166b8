"""OpenAI's Realtime event schemas from `shared/specs/openai-openapi.yaml`, loaded once per test
run: the one place the tests (protocol, edge, the OpenAI stand-in) get their validators from."""

from __future__ import annotations

import json
from functools import cache
from typing import Any

import yaml
from jsonschema import Draft202012Validator
from referencing import Registry
from referencing.jsonschema import DRAFT202012

from tests.conftest import SHARED

SPEC_PATH = SHARED / "specs" / "openai-openapi.yaml"
SPEC_URI = "urn:openai:openapi"


class OpenAISpec:
    """Validators for the spec's component schemas, and which schema describes which event type."""

    def __init__(self, document: dict[str, Any]) -> None:
        self.schemas: dict[str, Any] = document["components"]["schemas"]
        self.registry: Registry[Any] = Registry().with_resource(SPEC_URI, DRAFT202012.create_resource(document))
        self.server_schema_by_type = self._by_type("RealtimeServerEvent")
        self.client_schema_by_type = self._by_type("RealtimeClientEvent")
        self._validators: dict[str, Draft202012Validator] = {}

    def _by_type(self, union: str) -> dict[str, str]:
        out: dict[str, str] = {}
        for ref in self.schemas[union]["anyOf"]:
            name = ref["$ref"].rsplit("/", 1)[1]
            (event_type,) = self.schemas[name]["properties"]["type"]["enum"]
            out[event_type] = name
        return out

    def validator(self, name: str) -> Draft202012Validator:
        if name not in self._validators:
            ref = {"$ref": f"{SPEC_URI}#/components/schemas/{name}"}
            self._validators[name] = Draft202012Validator(ref, registry=self.registry)
        return self._validators[name]

    def validate(self, name: str, instance: object) -> None:
        errors = sorted(self.validator(name).iter_errors(instance), key=lambda e: list(e.absolute_path))
        if errors:
            raise AssertionError(f"{name}: " + "; ".join(f"{list(e.absolute_path)}: {e.message}" for e in errors[:5]))

    def example(self, name: str) -> dict[str, Any]:
        parsed: dict[str, Any] = json.loads(self.schemas[name]["x-oaiMeta"]["example"])
        return parsed


@cache
def load_openai_spec() -> OpenAISpec:
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    with SPEC_PATH.open("rb") as f:
        return OpenAISpec(yaml.load(f, Loader=loader))
