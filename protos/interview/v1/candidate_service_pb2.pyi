from interview.v1 import resources_pb2 as _resources_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class UpsertCandidateRequest(_message.Message):
    __slots__ = ("tenant_id", "email", "external_id", "full_name", "idempotency_key")
    TENANT_ID_FIELD_NUMBER: _ClassVar[int]
    EMAIL_FIELD_NUMBER: _ClassVar[int]
    EXTERNAL_ID_FIELD_NUMBER: _ClassVar[int]
    FULL_NAME_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    tenant_id: str
    email: str
    external_id: str
    full_name: str
    idempotency_key: str
    def __init__(self, tenant_id: _Optional[str] = ..., email: _Optional[str] = ..., external_id: _Optional[str] = ..., full_name: _Optional[str] = ..., idempotency_key: _Optional[str] = ...) -> None: ...

class UpsertCandidateResponse(_message.Message):
    __slots__ = ("candidate", "created")
    CANDIDATE_FIELD_NUMBER: _ClassVar[int]
    CREATED_FIELD_NUMBER: _ClassVar[int]
    candidate: _resources_pb2.Candidate
    created: bool
    def __init__(self, candidate: _Optional[_Union[_resources_pb2.Candidate, _Mapping]] = ..., created: _Optional[bool] = ...) -> None: ...

class GetCandidateRequest(_message.Message):
    __slots__ = ("tenant_id", "candidate_id")
    TENANT_ID_FIELD_NUMBER: _ClassVar[int]
    CANDIDATE_ID_FIELD_NUMBER: _ClassVar[int]
    tenant_id: str
    candidate_id: str
    def __init__(self, tenant_id: _Optional[str] = ..., candidate_id: _Optional[str] = ...) -> None: ...

class ListCandidatesRequest(_message.Message):
    __slots__ = ("tenant_id", "page_size", "page_token")
    TENANT_ID_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    tenant_id: str
    page_size: int
    page_token: str
    def __init__(self, tenant_id: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListCandidatesResponse(_message.Message):
    __slots__ = ("candidates", "next_page_token")
    CANDIDATES_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    candidates: _containers.RepeatedCompositeFieldContainer[_resources_pb2.Candidate]
    next_page_token: str
    def __init__(self, candidates: _Optional[_Iterable[_Union[_resources_pb2.Candidate, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...
