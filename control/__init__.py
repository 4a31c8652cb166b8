"""The gRPC control service: tenants, templates, candidates, invitations, sessions, email."""
