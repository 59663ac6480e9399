from google.protobuf import empty_pb2 as _empty_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Iterable as _Iterable, Mapping as _Mapping, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class AccessToken(_message.Message):
    __slots__ = ["create_time", "expire_time", "name", "project", "scope"]
    class Scope(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = []
    ADMIN: AccessToken.Scope
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    EXPIRE_TIME_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    PROJECT_ADMIN: AccessToken.Scope
    PROJECT_FIELD_NUMBER: _ClassVar[int]
    READ_ONLY: AccessToken.Scope
    SCOPE_FIELD_NUMBER: _ClassVar[int]
    SCOPE_UNSPECIFIED: AccessToken.Scope
    create_time: _timestamp_pb2.Timestamp
    expire_time: _timestamp_pb2.Timestamp
    name: str
    project: str
    scope: AccessToken.Scope
    def __init__(self, name: _Optional[str] = ..., scope: _Optional[_Union[AccessToken.Scope, str]] = ..., project: _Optional[str] = ..., create_time: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ..., expire_time: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class CreateAccessTokenRequest(_message.Message):
    __slots__ = ["expire_time", "name", "project", "scope"]
    EXPIRE_TIME_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    PROJECT_FIELD_NUMBER: _ClassVar[int]
    SCOPE_FIELD_NUMBER: _ClassVar[int]
    expire_time: _timestamp_pb2.Timestamp
    name: str
    project: str
    scope: AccessToken.Scope
    def __init__(self, name: _Optional[str] = ..., scope: _Optional[_Union[AccessToken.Scope, str]] = ..., project: _Optional[str] = ..., expire_time: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class CreateAccessTokenResponse(_message.Message):
    __slots__ = ["access_token", "token"]
    ACCESS_TOKEN_FIELD_NUMBER: _ClassVar[int]
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    access_token: AccessToken
    token: str
    def __init__(self, access_token: _Optional[_Union[AccessToken, _Mapping]] = ..., token: _Optional[str] = ...) -> None: ...

class GetCallerRequest(_message.Message):
    __slots__ = []
    def __init__(self) -> None: ...

class ListAccessTokensRequest(_message.Message):
    __slots__ = []
    def __init__(self) -> None: ...

class ListAccessTokensResponse(_message.Message):
    __slots__ = ["access_tokens"]
    ACCESS_TOKENS_FIELD_NUMBER: _ClassVar[int]
    access_tokens: _containers.RepeatedCompositeFieldContainer[AccessToken]
    def __init__(self, access_tokens: _Optional[_Iterable[_Union[AccessToken, _Mapping]]] = ...) -> None: ...

class RevokeAccessTokenRequest(_message.Message):
    __slots__ = ["name"]
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...
