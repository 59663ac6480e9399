from google.protobuf import empty_pb2 as _empty_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Iterable as _Iterable, Mapping as _Mapping, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class CreateHandlerRequest(_message.Message):
    __slots__ = ["client_certificate", "client_key", "content_type", "enabled", "event", "headers", "method", "project", "timeout_ms", "url"]
    class HeadersEntry(_message.Message):
        __slots__ = ["key", "value"]
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    CLIENT_CERTIFICATE_FIELD_NUMBER: _ClassVar[int]
    CLIENT_KEY_FIELD_NUMBER: _ClassVar[int]
    CONTENT_TYPE_FIELD_NUMBER: _ClassVar[int]
    ENABLED_FIELD_NUMBER: _ClassVar[int]
    EVENT_FIELD_NUMBER: _ClassVar[int]
    HEADERS_FIELD_NUMBER: _ClassVar[int]
    METHOD_FIELD_NUMBER: _ClassVar[int]
    PROJECT_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_MS_FIELD_NUMBER: _ClassVar[int]
    URL_FIELD_NUMBER: _ClassVar[int]
    client_certificate: str
    client_key: str
    content_type: Handler.ContentType
    enabled: bool
    event: str
    headers: _containers.ScalarMap[str, str]
    method: Handler.Method
    project: str
    timeout_ms: int
    url: str
    def __init__(self, project: _Optional[str] = ..., event: _Optional[str] = ..., url: _Optional[str] = ..., method: _Optional[_Union[Handler.Method, str]] = ..., content_type: _Optional[_Union[Handler.ContentType, str]] = ..., headers: _Optional[_Mapping[str, str]] = ..., timeout_ms: _Optional[int] = ..., enabled: bool = ..., client_certificate: _Optional[str] = ..., client_key: _Optional[str] = ...) -> None: ...

class DeleteHandlerRequest(_message.Message):
    __slots__ = ["id"]
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class GetHandlerRequest(_message.Message):
    __slots__ = ["id"]
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class Handler(_message.Message):
    __slots__ = ["client_certificate", "client_key", "content_type", "create_time", "disabled_reason", "enabled", "event", "headers", "id", "method", "previous_secret_expire_time", "project", "secret", "timeout_ms", "update_time", "url"]
    class ContentType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = []
    class Method(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = []
    class HeadersEntry(_message.Message):
        __slots__ = ["key", "value"]
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    CLIENT_CERTIFICATE_FIELD_NUMBER: _ClassVar[int]
    CLIENT_KEY_FIELD_NUMBER: _ClassVar[int]
    CONTENT_TYPE_FIELD_NUMBER: _ClassVar[int]
    CONTENT_TYPE_UNSPECIFIED: Handler.ContentType
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    DISABLED_REASON_FIELD_NUMBER: _ClassVar[int]
    ENABLED_FIELD_NUMBER: _ClassVar[int]
    EVENT_FIELD_NUMBER: _ClassVar[int]
    FORM: Handler.ContentType
    GET: Handler.Method
    HEADERS_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    JSON: Handler.ContentType
    METHOD_FIELD_NUMBER: _ClassVar[int]
    METHOD_UNSPECIFIED: Handler.Method
    POST: Handler.Method
    PREVIOUS_SECRET_EXPIRE_TIME_FIELD_NUMBER: _ClassVar[int]
    PROJECT_FIELD_NUMBER: _ClassVar[int]
    PUT: Handler.Method
    SECRET_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_MS_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    URL_FIELD_NUMBER: _ClassVar[int]
    client_certificate: str
    client_key: str
    content_type: Handler.ContentType
    create_time: _timestamp_pb2.Timestamp
    disabled_reason: str
    enabled: bool
    event: str
    headers: _containers.ScalarMap[str, str]
    id: str
    method: Handler.Method
    previous_secret_expire_time: _timestamp_pb2.Timestamp
    project: str
    secret: str
    timeout_ms: int
    update_time: _timestamp_pb2.Timestamp
    url: str
    def __init__(self, id: _Optional[str] = ..., project: _Optional[str] = ..., event: _Optional[str] = ..., url: _Optional[str] = ..., method: _Optional[_Union[Handler.Method, str]] = ..., content_type: _Optional[_Union[Handler.ContentType, str]] = ..., headers: _Optional[_Mapping[str, str]] = ..., timeout_ms: _Optional[int] = ..., enabled: bool = ..., disabled_reason: _Optional[str] = ..., secret: _Optional[str] = ..., create_time: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ..., update_time: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ..., previous_secret_expire_time: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ..., client_certificate: _Optional[str] = ..., client_key: _Optional[str] = ...) -> None: ...

class ListHandlersRequest(_message.Message):
    __slots__ = ["event", "project"]
    EVENT_FIELD_NUMBER: _ClassVar[int]
    PROJECT_FIELD_NUMBER: _ClassVar[int]
    event: str
    project: str
    def __init__(self, project: _Optional[str] = ..., event: _Optional[str] = ...) -> None: ...

class ListHandlersResponse(_message.Message):
    __slots__ = ["handlers"]
    HANDLERS_FIELD_NUMBER: _ClassVar[int]
    handlers: _containers.RepeatedCompositeFieldContainer[Handler]
    def __init__(self, handlers: _Optional[_Iterable[_Union[Handler, _Mapping]]] = ...) -> None: ...

class RotateHandlerSecretRequest(_message.Message):
    __slots__ = ["expire_previous", "id", "previous_secret_ttl_seconds"]
    EXPIRE_PREVIOUS_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    PREVIOUS_SECRET_TTL_SECONDS_FIELD_NUMBER: _ClassVar[int]
    expire_previous: bool
    id: str
    previous_secret_ttl_seconds: int
    def __init__(self, id: _Optional[str] = ..., previous_secret_ttl_seconds: _Optional[int] = ..., expire_previous: bool = ...) -> None: ...

class UpdateHandlerRequest(_message.Message):
    __slots__ = ["clear_headers", "client_certificate", "client_key", "content_type", "enabled", "event", "headers", "id", "method", "timeout_ms", "url"]
    class HeadersEntry(_message.Message):
        __slots__ = ["key", "value"]
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    CLEAR_HEADERS_FIELD_NUMBER: _ClassVar[int]
    CLIENT_CERTIFICATE_FIELD_NUMBER: _ClassVar[int]
    CLIENT_KEY_FIELD_NUMBER: _ClassVar[int]
    CONTENT_TYPE_FIELD_NUMBER: _ClassVar[int]
    ENABLED_FIELD_NUMBER: _ClassVar[int]
    EVENT_FIELD_NUMBER: _ClassVar[int]
    HEADERS_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    METHOD_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_MS_FIELD_NUMBER: _ClassVar[int]
    URL_FIELD_NUMBER: _ClassVar[int]
    clear_headers: bool
    client_certificate: str
    client_key: str
    content_type: Handler.ContentType
    enabled: bool
    event: str
    headers: _containers.ScalarMap[str, str]
    id: str
    method: Handler.Method
    timeout_ms: int
    url: str
    def __init__(self, id: _Optional[str] = ..., event: _Optional[str] = ..., url: _Optional[str] = ..., method: _Optional[_Union[Handler.Method, str]] = ..., content_type: _Optional[_Union[Handler.ContentType, str]] = ..., headers: _Optional[_Mapping[str, str]] = ..., clear_headers: bool = ..., timeout_ms: _Optional[int] = ..., enabled: bool = ..., client_certificate: _Optional[str] = ..., client_key: _Optional[str] = ...) -> None: ...
