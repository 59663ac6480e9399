from google.protobuf import duration_pb2 as _duration_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Iterable as _Iterable, Mapping as _Mapping, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Attempt(_message.Message):
    __slots__ = ["connect_us", "delivery_id", "dns_us", "duration_us", "error_class", "error_message", "first_byte_us", "manual", "number", "request_headers", "response_body", "response_headers", "start_time", "status_code", "tls_us", "total_us"]
    CONNECT_US_FIELD_NUMBER: _ClassVar[int]
    DELIVERY_ID_FIELD_NUMBER: _ClassVar[int]
    DNS_US_FIELD_NUMBER: _ClassVar[int]
    DURATION_US_FIELD_NUMBER: _ClassVar[int]
    ERROR_CLASS_FIELD_NUMBER: _ClassVar[int]
    ERROR_MESSAGE_FIELD_NUMBER: _ClassVar[int]
    FIRST_BYTE_US_FIELD_NUMBER: _ClassVar[int]
    MANUAL_FIELD_NUMBER: _ClassVar[int]
    NUMBER_FIELD_NUMBER: _ClassVar[int]
    REQUEST_HEADERS_FIELD_NUMBER: _ClassVar[int]
    RESPONSE_BODY_FIELD_NUMBER: _ClassVar[int]
    RESPONSE_HEADERS_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    STATUS_CODE_FIELD_NUMBER: _ClassVar[int]
    TLS_US_FIELD_NUMBER: _ClassVar[int]
    TOTAL_US_FIELD_NUMBER: _ClassVar[int]
    connect_us: int
    delivery_id: str
    dns_us: int
    duration_us: int
    error_class: str
    error_message: str
    first_byte_us: int
    manual: bool
    number: int
    request_headers: _containers.RepeatedCompositeFieldContainer[Header]
    response_body: str
    response_headers: _containers.RepeatedCompositeFieldContainer[Header]
    start_time: _timestamp_pb2.Timestamp
    status_code: int
    tls_us: int
    total_us: int
    def __init__(self, delivery_id: _Optional[str] = ..., number: _Optional[int] = ..., manual: bool = ..., start_time: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ..., duration_us: _Optional[int] = ..., dns_us: _Optional[int] = ..., connect_us: _Optional[int] = ..., tls_us: _Optional[int] = ..., first_byte_us: _Optional[int] = ..., total_us: _Optional[int] = ..., status_code: _Optional[int] = ..., request_headers: _Optional[_Iterable[_Union[Header, _Mapping]]] = ..., response_headers: _Optional[_Iterable[_Union[Header, _Mapping]]] = ..., response_body: _Optional[str] = ..., error_class: _Optional[str] = ..., error_message: _Optional[str] = ...) -> None: ...

class CancelRecoveryRequest(_message.Message):
    __slots__ = ["id"]
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class Delivery(_message.Message):
    __slots__ = ["attempt_count", "attempts", "create_time", "event", "handler_id", "handler_url", "id", "last_error_class", "last_status_code", "message_id", "next_attempt_time", "project", "status", "update_time"]
    class Status(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = []
    ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_COUNT_FIELD_NUMBER: _ClassVar[int]
    CANCELLED: Delivery.Status
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    EVENT_FIELD_NUMBER: _ClassVar[int]
    FAILED: Delivery.Status
    HANDLER_ID_FIELD_NUMBER: _ClassVar[int]
    HANDLER_URL_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    LAST_ERROR_CLASS_FIELD_NUMBER: _ClassVar[int]
    LAST_STATUS_CODE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_ID_FIELD_NUMBER: _ClassVar[int]
    NEXT_ATTEMPT_TIME_FIELD_NUMBER: _ClassVar[int]
    PENDING: Delivery.Status
    PROJECT_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    STATUS_UNSPECIFIED: Delivery.Status
    SUCCEEDED: Delivery.Status
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    attempt_count: int
    attempts: _containers.RepeatedCompositeFieldContainer[Attempt]
    create_time: _timestamp_pb2.Timestamp
    event: str
    handler_id: str
    handler_url: str
    id: str
    last_error_class: str
    last_status_code: int
    message_id: str
    next_attempt_time: _timestamp_pb2.Timestamp
    project: str
    status: Delivery.Status
    update_time: _timestamp_pb2.Timestamp
    def __init__(self, id: _Optional[str] = ..., message_id: _Optional[str] = ..., project: _Optional[str] = ..., event: _Optional[str] = ..., handler_id: _Optional[str] = ..., handler_url: _Optional[str] = ..., status: _Optional[_Union[Delivery.Status, str]] = ..., attempt_count: _Optional[int] = ..., last_status_code: _Optional[int] = ..., last_error_class: _Optional[str] = ..., next_attempt_time: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ..., create_time: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ..., update_time: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ..., attempts: _Optional[_Iterable[_Union[Attempt, _Mapping]]] = ...) -> None: ...

class GetDeliveryRequest(_message.Message):
    __slots__ = ["id"]
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class GetHandlerStatsRequest(_message.Message):
    __slots__ = ["bucket", "handler_id", "window"]
    BUCKET_FIELD_NUMBER: _ClassVar[int]
    HANDLER_ID_FIELD_NUMBER: _ClassVar[int]
    WINDOW_FIELD_NUMBER: _ClassVar[int]
    bucket: _duration_pb2.Duration
    handler_id: str
    window: _duration_pb2.Duration
    def __init__(self, handler_id: _Optional[str] = ..., window: _Optional[_Union[_duration_pb2.Duration, _Mapping]] = ..., bucket: _Optional[_Union[_duration_pb2.Duration, _Mapping]] = ...) -> None: ...

class GetMessageRequest(_message.Message):
    __slots__ = ["id"]
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class GetRecoveryRequest(_message.Message):
    __slots__ = ["id"]
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class HandlerStats(_message.Message):
    __slots__ = ["attempts", "buckets", "cancelled", "consecutive_failures", "disabled_reason", "enabled", "failed", "failed_attempts", "handler_id", "latency_p50_ms", "latency_p90_ms", "latency_p99_ms", "pending", "since", "succeeded", "success_ratio", "window"]
    class Bucket(_message.Message):
        __slots__ = ["attempts", "cancelled", "failed", "failed_attempts", "pending", "start_time", "succeeded"]
        ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
        CANCELLED_FIELD_NUMBER: _ClassVar[int]
        FAILED_ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
        FAILED_FIELD_NUMBER: _ClassVar[int]
        PENDING_FIELD_NUMBER: _ClassVar[int]
        START_TIME_FIELD_NUMBER: _ClassVar[int]
        SUCCEEDED_FIELD_NUMBER: _ClassVar[int]
        attempts: int
        cancelled: int
        failed: int
        failed_attempts: int
        pending: int
        start_time: _timestamp_pb2.Timestamp
        succeeded: int
        def __init__(self, start_time: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ..., succeeded: _Optional[int] = ..., failed: _Optional[int] = ..., pending: _Optional[int] = ..., cancelled: _Optional[int] = ..., attempts: _Optional[int] = ..., failed_attempts: _Optional[int] = ...) -> None: ...
    ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    BUCKETS_FIELD_NUMBER: _ClassVar[int]
    CANCELLED_FIELD_NUMBER: _ClassVar[int]
    CONSECUTIVE_FAILURES_FIELD_NUMBER: _ClassVar[int]
    DISABLED_REASON_FIELD_NUMBER: _ClassVar[int]
    ENABLED_FIELD_NUMBER: _ClassVar[int]
    FAILED_ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    FAILED_FIELD_NUMBER: _ClassVar[int]
    HANDLER_ID_FIELD_NUMBER: _ClassVar[int]
    LATENCY_P50_MS_FIELD_NUMBER: _ClassVar[int]
    LATENCY_P90_MS_FIELD_NUMBER: _ClassVar[int]
    LATENCY_P99_MS_FIELD_NUMBER: _ClassVar[int]
    PENDING_FIELD_NUMBER: _ClassVar[int]
    SINCE_FIELD_NUMBER: _ClassVar[int]
    SUCCEEDED_FIELD_NUMBER: _ClassVar[int]
    SUCCESS_RATIO_FIELD_NUMBER: _ClassVar[int]
    WINDOW_FIELD_NUMBER: _ClassVar[int]
    attempts: int
    buckets: _containers.RepeatedCompositeFieldContainer[HandlerStats.Bucket]
    cancelled: int
    consecutive_failures: int
    disabled_reason: str
    enabled: bool
    failed: int
    failed_attempts: int
    handler_id: str
    latency_p50_ms: float
    latency_p90_ms: float
    latency_p99_ms: float
    pending: int
    since: _timestamp_pb2.Timestamp
    succeeded: int
    success_ratio: float
    window: _duration_pb2.Duration
    def __init__(self, handler_id: _Optional[str] = ..., window: _Optional[_Union[_duration_pb2.Duration, _Mapping]] = ..., succeeded: _Optional[int] = ..., failed: _Optional[int] = ..., pending: _Optional[int] = ..., cancelled: _Optional[int] = ..., success_ratio: _Optional[float] = ..., attempts: _Optional[int] = ..., failed_attempts: _Optional[int] = ..., latency_p50_ms: _Optional[float] = ..., latency_p90_ms: _Optional[float] = ..., latency_p99_ms: _Optional[float] = ..., consecutive_failures: _Optional[int] = ..., enabled: bool = ..., disabled_reason: _Optional[str] = ..., since: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ..., buckets: _Optional[_Iterable[_Union[HandlerStats.Bucket, _Mapping]]] = ...) -> None: ...

class Header(_message.Message):
    __slots__ = ["name", "value"]
    NAME_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    name: str
    value: str
    def __init__(self, name: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...

class ListDeliveriesRequest(_message.Message):
    __slots__ = ["event", "handler_id", "page_size", "page_token", "project", "since", "status", "until"]
    class Status(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = []
    ANY: ListDeliveriesRequest.Status
    CANCELLED: ListDeliveriesRequest.Status
    EVENT_FIELD_NUMBER: _ClassVar[int]
    FAILED: ListDeliveriesRequest.Status
    FAILING: ListDeliveriesRequest.Status
    HANDLER_ID_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    PENDING: ListDeliveriesRequest.Status
    PROJECT_FIELD_NUMBER: _ClassVar[int]
    SINCE_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    SUCCEEDED: ListDeliveriesRequest.Status
    UNTIL_FIELD_NUMBER: _ClassVar[int]
    event: str
    handler_id: str
    page_size: int
    page_token: str
    project: str
    since: _timestamp_pb2.Timestamp
    status: ListDeliveriesRequest.Status
    until: _timestamp_pb2.Timestamp
    def __init__(self, project: _Optional[str] = ..., handler_id: _Optional[str] = ..., event: _Optional[str] = ..., status: _Optional[_Union[ListDeliveriesRequest.Status, str]] = ..., since: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ..., until: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListDeliveriesResponse(_message.Message):
    __slots__ = ["deliveries", "next_page_token"]
    DELIVERIES_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    deliveries: _containers.RepeatedCompositeFieldContainer[Delivery]
    next_page_token: str
    def __init__(self, deliveries: _Optional[_Iterable[_Union[Delivery, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class ListMessagesRequest(_message.Message):
    __slots__ = ["event", "page_size", "page_token", "project", "since", "until"]
    EVENT_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    PROJECT_FIELD_NUMBER: _ClassVar[int]
    SINCE_FIELD_NUMBER: _ClassVar[int]
    UNTIL_FIELD_NUMBER: _ClassVar[int]
    event: str
    page_size: int
    page_token: str
    project: str
    since: _timestamp_pb2.Timestamp
    until: _timestamp_pb2.Timestamp
    def __init__(self, project: _Optional[str] = ..., event: _Optional[str] = ..., since: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ..., until: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListMessagesResponse(_message.Message):
    __slots__ = ["messages", "next_page_token"]
    MESSAGES_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    messages: _containers.RepeatedCompositeFieldContainer[Message]
    next_page_token: str
    def __init__(self, messages: _Optional[_Iterable[_Union[Message, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class ListRecoveriesRequest(_message.Message):
    __slots__ = ["project"]
    PROJECT_FIELD_NUMBER: _ClassVar[int]
    project: str
    def __init__(self, project: _Optional[str] = ...) -> None: ...

class ListRecoveriesResponse(_message.Message):
    __slots__ = ["recoveries"]
    RECOVERIES_FIELD_NUMBER: _ClassVar[int]
    recoveries: _containers.RepeatedCompositeFieldContainer[Recovery]
    def __init__(self, recoveries: _Optional[_Iterable[_Union[Recovery, _Mapping]]] = ...) -> None: ...

class Message(_message.Message):
    __slots__ = ["create_time", "deliveries", "event", "id", "idempotency_key", "payload", "project", "sender"]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    DELIVERIES_FIELD_NUMBER: _ClassVar[int]
    EVENT_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    PROJECT_FIELD_NUMBER: _ClassVar[int]
    SENDER_FIELD_NUMBER: _ClassVar[int]
    create_time: _timestamp_pb2.Timestamp
    deliveries: _containers.RepeatedCompositeFieldContainer[Delivery]
    event: str
    id: str
    idempotency_key: str
    payload: str
    project: str
    sender: str
    def __init__(self, id: _Optional[str] = ..., project: _Optional[str] = ..., event: _Optional[str] = ..., payload: _Optional[str] = ..., idempotency_key: _Optional[str] = ..., sender: _Optional[str] = ..., create_time: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ..., deliveries: _Optional[_Iterable[_Union[Delivery, _Mapping]]] = ...) -> None: ...

class RecoverFailedRequest(_message.Message):
    __slots__ = ["dry_run", "event", "handler_id", "project", "rate_per_second", "since", "until"]
    DRY_RUN_FIELD_NUMBER: _ClassVar[int]
    EVENT_FIELD_NUMBER: _ClassVar[int]
    HANDLER_ID_FIELD_NUMBER: _ClassVar[int]
    PROJECT_FIELD_NUMBER: _ClassVar[int]
    RATE_PER_SECOND_FIELD_NUMBER: _ClassVar[int]
    SINCE_FIELD_NUMBER: _ClassVar[int]
    UNTIL_FIELD_NUMBER: _ClassVar[int]
    dry_run: bool
    event: str
    handler_id: str
    project: str
    rate_per_second: int
    since: _timestamp_pb2.Timestamp
    until: _timestamp_pb2.Timestamp
    def __init__(self, project: _Optional[str] = ..., handler_id: _Optional[str] = ..., event: _Optional[str] = ..., since: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ..., until: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ..., dry_run: bool = ..., rate_per_second: _Optional[int] = ...) -> None: ...

class Recovery(_message.Message):
    __slots__ = ["create_time", "event", "failed", "finish_time", "handler_id", "id", "matched", "pending", "project", "rate_per_second", "requeued", "since", "state", "succeeded", "until"]
    class State(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = []
    CANCELLED: Recovery.State
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    DONE: Recovery.State
    EVENT_FIELD_NUMBER: _ClassVar[int]
    FAILED_FIELD_NUMBER: _ClassVar[int]
    FINISH_TIME_FIELD_NUMBER: _ClassVar[int]
    HANDLER_ID_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    MATCHED_FIELD_NUMBER: _ClassVar[int]
    PENDING_FIELD_NUMBER: _ClassVar[int]
    PROJECT_FIELD_NUMBER: _ClassVar[int]
    RATE_PER_SECOND_FIELD_NUMBER: _ClassVar[int]
    REQUEUED_FIELD_NUMBER: _ClassVar[int]
    RUNNING: Recovery.State
    SINCE_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    STATE_UNSPECIFIED: Recovery.State
    SUCCEEDED_FIELD_NUMBER: _ClassVar[int]
    UNTIL_FIELD_NUMBER: _ClassVar[int]
    create_time: _timestamp_pb2.Timestamp
    event: str
    failed: int
    finish_time: _timestamp_pb2.Timestamp
    handler_id: str
    id: str
    matched: int
    pending: int
    project: str
    rate_per_second: int
    requeued: int
    since: _timestamp_pb2.Timestamp
    state: Recovery.State
    succeeded: int
    until: _timestamp_pb2.Timestamp
    def __init__(self, id: _Optional[str] = ..., project: _Optional[str] = ..., handler_id: _Optional[str] = ..., event: _Optional[str] = ..., since: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ..., until: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ..., rate_per_second: _Optional[int] = ..., state: _Optional[_Union[Recovery.State, str]] = ..., matched: _Optional[int] = ..., requeued: _Optional[int] = ..., succeeded: _Optional[int] = ..., failed: _Optional[int] = ..., pending: _Optional[int] = ..., create_time: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ..., finish_time: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class RedeliverRequest(_message.Message):
    __slots__ = ["delivery_id"]
    DELIVERY_ID_FIELD_NUMBER: _ClassVar[int]
    delivery_id: str
    def __init__(self, delivery_id: _Optional[str] = ...) -> None: ...

class TailDeliveriesRequest(_message.Message):
    __slots__ = ["event", "handler_id", "project"]
    EVENT_FIELD_NUMBER: _ClassVar[int]
    HANDLER_ID_FIELD_NUMBER: _ClassVar[int]
    PROJECT_FIELD_NUMBER: _ClassVar[int]
    event: str
    handler_id: str
    project: str
    def __init__(self, project: _Optional[str] = ..., handler_id: _Optional[str] = ..., event: _Optional[str] = ...) -> None: ...

class TailDeliveriesResponse(_message.Message):
    __slots__ = ["attempt", "delivery"]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    DELIVERY_FIELD_NUMBER: _ClassVar[int]
    attempt: Attempt
    delivery: Delivery
    def __init__(self, delivery: _Optional[_Union[Delivery, _Mapping]] = ..., attempt: _Optional[_Union[Attempt, _Mapping]] = ...) -> None: ...
