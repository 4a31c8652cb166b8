import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from interview.v1 import resources_pb2 as _resources_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class GetSessionRequest(_message.Message):
    __slots__ = ("tenant_id", "session_id")
    TENANT_ID_FIELD_NUMBER: _ClassVar[int]
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    tenant_id: str
    session_id: str
    def __init__(self, tenant_id: _Optional[str] = ..., session_id: _Optional[str] = ...) -> None: ...

class ListSessionsRequest(_message.Message):
    __slots__ = ("tenant_id", "page_size", "page_token", "candidate_id", "status", "created_after", "created_before")
    TENANT_ID_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    CANDIDATE_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    CREATED_AFTER_FIELD_NUMBER: _ClassVar[int]
    CREATED_BEFORE_FIELD_NUMBER: _ClassVar[int]
    tenant_id: str
    page_size: int
    page_token: str
    candidate_id: str
    status: _resources_pb2.SessionStatus
    created_after: _timestamp_pb2.Timestamp
    created_before: _timestamp_pb2.Timestamp
    def __init__(self, tenant_id: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., candidate_id: _Optional[str] = ..., status: _Optional[_Union[_resources_pb2.SessionStatus, str]] = ..., created_after: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., created_before: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ListSessionsResponse(_message.Message):
    __slots__ = ("sessions", "next_page_token")
    SESSIONS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    sessions: _containers.RepeatedCompositeFieldContainer[_resources_pb2.Session]
    next_page_token: str
    def __init__(self, sessions: _Optional[_Iterable[_Union[_resources_pb2.Session, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class GetTranscriptRequest(_message.Message):
    __slots__ = ("tenant_id", "session_id", "after_sequence", "page_size")
    TENANT_ID_FIELD_NUMBER: _ClassVar[int]
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    AFTER_SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    tenant_id: str
    session_id: str
    after_sequence: int
    page_size: int
    def __init__(self, tenant_id: _Optional[str] = ..., session_id: _Optional[str] = ..., after_sequence: _Optional[int] = ..., page_size: _Optional[int] = ...) -> None: ...

class GetTranscriptResponse(_message.Message):
    __slots__ = ("items", "has_more")
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    HAS_MORE_FIELD_NUMBER: _ClassVar[int]
    items: _containers.RepeatedCompositeFieldContainer[_resources_pb2.TranscriptItem]
    has_more: bool
    def __init__(self, items: _Optional[_Iterable[_Union[_resources_pb2.TranscriptItem, _Mapping]]] = ..., has_more: _Optional[bool] = ...) -> None: ...

class WatchSessionRequest(_message.Message):
    __slots__ = ("tenant_id", "session_id", "after_sequence")
    TENANT_ID_FIELD_NUMBER: _ClassVar[int]
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    AFTER_SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    tenant_id: str
    session_id: str
    after_sequence: int
    def __init__(self, tenant_id: _Optional[str] = ..., session_id: _Optional[str] = ..., after_sequence: _Optional[int] = ...) -> None: ...

class WatchSessionResponse(_message.Message):
    __slots__ = ("session", "transcript_item")
    SESSION_FIELD_NUMBER: _ClassVar[int]
    TRANSCRIPT_ITEM_FIELD_NUMBER: _ClassVar[int]
    session: _resources_pb2.Session
    transcript_item: _resources_pb2.TranscriptItem
    def __init__(self, session: _Optional[_Union[_resources_pb2.Session, _Mapping]] = ..., transcript_item: _Optional[_Union[_resources_pb2.TranscriptItem, _Mapping]] = ...) -> None: ...

class EndSessionRequest(_message.Message):
    __slots__ = ("tenant_id", "session_id", "reason")
    TENANT_ID_FIELD_NUMBER: _ClassVar[int]
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    tenant_id: str
    session_id: str
    reason: str
    def __init__(self, tenant_id: _Optional[str] = ..., session_id: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class UpdateSessionStatusRequest(_message.Message):
    __slots__ = ("session_id", "status", "reason")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    status: _resources_pb2.SessionStatus
    reason: str
    def __init__(self, session_id: _Optional[str] = ..., status: _Optional[_Union[_resources_pb2.SessionStatus, str]] = ..., reason: _Optional[str] = ...) -> None: ...

class AppendTranscriptItemsRequest(_message.Message):
    __slots__ = ("session_id", "items")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    items: _containers.RepeatedCompositeFieldContainer[_resources_pb2.TranscriptItem]
    def __init__(self, session_id: _Optional[str] = ..., items: _Optional[_Iterable[_Union[_resources_pb2.TranscriptItem, _Mapping]]] = ...) -> None: ...

class AppendTranscriptItemsResponse(_message.Message):
    __slots__ = ("inserted", "duplicates", "last_sequence")
    INSERTED_FIELD_NUMBER: _ClassVar[int]
    DUPLICATES_FIELD_NUMBER: _ClassVar[int]
    LAST_SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    inserted: int
    duplicates: int
    last_sequence: int
    def __init__(self, inserted: _Optional[int] = ..., duplicates: _Optional[int] = ..., last_sequence: _Optional[int] = ...) -> None: ...
