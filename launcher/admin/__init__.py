"""The `interview` admin commands (tenants, keys, templates, candidates, invite, sessions,
transcript, watch), which talk to the control service over its gRPC API."""

from launcher.admin.commands import register

__all__ = ["register"]
