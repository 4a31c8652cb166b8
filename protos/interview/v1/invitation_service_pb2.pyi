import datetime

from google.protobuf import duration_pb2 as _duration_pb2
from interview.v1 import resources_pb2 as _resources_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class CreateInvitationRequest(_message.Message):
    __slots__ = ("tenant_id", "candidate_id", "template_id", "ttl", "send_email", "idempotency_key")
    TENANT_ID_FIELD_NUMBER: _ClassVar[int]
    CANDIDATE_ID_FIELD_NUMBER: _ClassVar[int]
    TEMPLATE_ID_FIELD_NUMBER: _ClassVar[int]
    TTL_FIELD_NUMBER: _ClassVar[int]
    SEND_EMAIL_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    tenant_id: str
    candidate_id: str
    template_id: str
    ttl: _duration_pb2.Duration
    send_email: bool
    idempotency_key: str
    def __init__(self, tenant_id: _Optional[str] = ..., candidate_id: _Optional[str] = ..., template_id: _Optional[str] = ..., ttl: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., send_email: _Optional[bool] = ..., idempotency_key: _Optional[str] = ...) -> None: ...

class CreateInvitationResponse(_message.Message):
    __slots__ = ("invitation", "invite_url", "token")
    INVITATION_FIELD_NUMBER: _ClassVar[int]
    INVITE_URL_FIELD_NUMBER: _ClassVar[int]
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    invitation: _resources_pb2.Invitation
    invite_url: str
    token: str
    def __init__(self, invitation: _Optional[_Union[_resources_pb2.Invitation, _Mapping]] = ..., invite_url: _Optional[str] = ..., token: _Optional[str] = ...) -> None: ...

class GetInvitationRequest(_message.Message):
    __slots__ = ("tenant_id", "invitation_id")
    TENANT_ID_FIELD_NUMBER: _ClassVar[int]
    INVITATION_ID_FIELD_NUMBER: _ClassVar[int]
    tenant_id: str
    invitation_id: str
    def __init__(self, tenant_id: _Optional[str] = ..., invitation_id: _Optional[str] = ...) -> None: ...

class ListInvitationsRequest(_message.Message):
    __slots__ = ("tenant_id", "page_size", "page_token", "candidate_id")
    TENANT_ID_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    CANDIDATE_ID_FIELD_NUMBER: _ClassVar[int]
    tenant_id: str
    page_size: int
    page_token: str
    candidate_id: str
    def __init__(self, tenant_id: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., candidate_id: _Optional[str] = ...) -> None: ...

class ListInvitationsResponse(_message.Message):
    __slots__ = ("invitations", "next_page_token")
    INVITATIONS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    invitations: _containers.RepeatedCompositeFieldContainer[_resources_pb2.Invitation]
    next_page_token: str
    def __init__(self, invitations: _Optional[_Iterable[_Union[_resources_pb2.Invitation, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class RevokeInvitationRequest(_message.Message):
    __slots__ = ("tenant_id", "invitation_id")
    TENANT_ID_FIELD_NUMBER: _ClassVar[int]
    INVITATION_ID_FIELD_NUMBER: _ClassVar[int]
    tenant_id: str
    invitation_id: str
    def __init__(self, tenant_id: _Optional[str] = ..., invitation_id: _Optional[str] = ...) -> None: ...

class ResendInvitationRequest(_message.Message):
    __slots__ = ("tenant_id", "invitation_id", "ttl", "send_email")
    TENANT_ID_FIELD_NUMBER: _ClassVar[int]
    INVITATION_ID_FIELD_NUMBER: _ClassVar[int]
    TTL_FIELD_NUMBER: _ClassVar[int]
    SEND_EMAIL_FIELD_NUMBER: _ClassVar[int]
    tenant_id: str
    invitation_id: str
    ttl: _duration_pb2.Duration
    send_email: bool
    def __init__(self, tenant_id: _Optional[str] = ..., invitation_id: _Optional[str] = ..., ttl: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., send_email: _Optional[bool] = ...) -> None: ...

class LookupInvitationRequest(_message.Message):
    __slots__ = ("token",)
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    token: str
    def __init__(self, token: _Optional[str] = ...) -> None: ...

class LookupInvitationResponse(_message.Message):
    __slots__ = ("invitation", "tenant_display_name", "redeemable")
    INVITATION_FIELD_NUMBER: _ClassVar[int]
    TENANT_DISPLAY_NAME_FIELD_NUMBER: _ClassVar[int]
    REDEEMABLE_FIELD_NUMBER: _ClassVar[int]
    invitation: _resources_pb2.Invitation
    tenant_display_name: str
    redeemable: bool
    def __init__(self, invitation: _Optional[_Union[_resources_pb2.Invitation, _Mapping]] = ..., tenant_display_name: _Optional[str] = ..., redeemable: _Optional[bool] = ...) -> None: ...

class RedeemInvitationRequest(_message.Message):
    __slots__ = ("token", "user_id", "external_account", "external_email")
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    EXTERNAL_ACCOUNT_FIELD_NUMBER: _ClassVar[int]
    EXTERNAL_EMAIL_FIELD_NUMBER: _ClassVar[int]
    token: str
    user_id: str
    external_account: bool
    external_email: str
    def __init__(self, token: _Optional[str] = ..., user_id: _Optional[str] = ..., external_account: _Optional[bool] = ..., external_email: _Optional[str] = ...) -> None: ...

class RedeemInvitationResponse(_message.Message):
    __slots__ = ("session", "candidate", "template", "user_id", "first_redemption")
    SESSION_FIELD_NUMBER: _ClassVar[int]
    CANDIDATE_FIELD_NUMBER: _ClassVar[int]
    TEMPLATE_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    FIRST_REDEMPTION_FIELD_NUMBER: _ClassVar[int]
    session: _resources_pb2.Session
    candidate: _resources_pb2.Candidate
    template: _resources_pb2.Template
    user_id: str
    first_redemption: bool
    def __init__(self, session: _Optional[_Union[_resources_pb2.Session, _Mapping]] = ..., candidate: _Optional[_Union[_resources_pb2.Candidate, _Mapping]] = ..., template: _Optional[_Union[_resources_pb2.Template, _Mapping]] = ..., user_id: _Optional[str] = ..., first_redemption: _Optional[bool] = ...) -> None: ...
