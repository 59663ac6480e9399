from google.protobuf import struct_pb2 as _struct_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Iterable as _Iterable, Mapping as _Mapping, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class EmitBatchRequest(_message.Message):
    __slots__ = ["events"]
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    events: _containers.RepeatedCompositeFieldContainer[EmitRequest]
    def __init__(self, events: _Optional[_Iterable[_Union[EmitRequest, _Mapping]]] = ...) -> None: ...

class EmitBatchResponse(_message.Message):
    __slots__ = ["results"]
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[EmitResponse]
    def __init__(self, results: _Optional[_Iterable[_Union[EmitResponse, _Mapping]]] = ...) -> None: ...

class EmitRequest(_message.Message):
    __slots__ = ["event", "idempotency_key", "payload", "payload_json", "project"]
    EVENT_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_JSON_FIELD_NUMBER: _ClassVar[int]
    PROJECT_FIELD_NUMBER: _ClassVar[int]
    event: str
    idempotency_key: str
    payload: _struct_pb2.Struct
    payload_json: str
    project: str
    def __init__(self, project: _Optional[str] = ..., event: _Optional[str] = ..., payload: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., payload_json: _Optional[str] = ..., idempotency_key: _Optional[str] = ...) -> None: ...

class EmitResponse(_message.Message):
    __slots__ = ["duplicate", "handlers", "message_id"]
    DUPLICATE_FIELD_NUMBER: _ClassVar[int]
    HANDLERS_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_ID_FIELD_NUMBER: _ClassVar[int]
    duplicate: bool
    handlers: int
    message_id: str
    def __init__(self, message_id: _Optional[str] = ..., handlers: _Optional[int] = ..., duplicate: bool = ...) -> None: ...
