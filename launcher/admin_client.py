"""A small synchronous client of the control API for the `interview` admin commands.

The address and credential come from flags, else the environment, else what `interview up`
wrote in the data directory, so on one machine no flag is needed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import grpc
from google.protobuf.json_format import MessageToDict

from interview.v1 import outbox_service_pb2, outbox_service_pb2_grpc
from interview_core.config import ConfigError, Settings
from launcher.local_credentials import with_local_credentials


@dataclass
class AdminClient:
    channel: grpc.Channel
    token: str

    @classmethod
    def from_settings(cls, settings: Settings, *, token: str | None = None,
                      address: str | None = None) -> AdminClient:
        if not token:
            if not settings.admin_token and not (settings.data_dir / "credentials.json").exists():
                raise ConfigError("no credential: pass --token, set INTERVIEW_ADMIN_TOKEN, or run "
                                  "`interview up` here first")
            token = with_local_credentials(settings).admin_token
        return cls(grpc.insecure_channel(address or settings.control_address), token)

    @property
    def _metadata(self) -> list[tuple[str, str]]:
        return [("authorization", f"Bearer {self.token}")]

    def list_outbox(self, *, tenant_id: str = "", limit: int = 20) -> list[dict[str, Any]]:
        stub = outbox_service_pb2_grpc.OutboxServiceStub(self.channel)
        out: list[dict[str, Any]] = []
        token = ""
        while len(out) < limit:
            response = stub.ListOutboxMessages(
                outbox_service_pb2.ListOutboxMessagesRequest(
                    tenant_id=tenant_id, page_size=min(100, limit - len(out)), page_token=token),
                metadata=self._metadata, timeout=10)
            out.extend(MessageToDict(m) for m in response.messages)
            token = response.next_page_token
            if not token:
                break
        return out
