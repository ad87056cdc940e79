from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Optional as _Optional

DESCRIPTOR: _descriptor.FileDescriptor

class FileEntry(_message.Message):
    __slots__ = ("path", "size_bytes", "sha256")
    PATH_FIELD_NUMBER: _ClassVar[int]
    SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    path: str
    size_bytes: int
    sha256: str
    def __init__(self, path: _Optional[str] = ..., size_bytes: _Optional[int] = ..., sha256: _Optional[str] = ...) -> None: ...

class DatasetVersionRef(_message.Message):
    __slots__ = ("dataset_version", "sampling_rate")
    DATASET_VERSION_FIELD_NUMBER: _ClassVar[int]
    SAMPLING_RATE_FIELD_NUMBER: _ClassVar[int]
    dataset_version: str
    sampling_rate: float
    def __init__(self, dataset_version: _Optional[str] = ..., sampling_rate: _Optional[float] = ...) -> None: ...

class PresignedUrl(_message.Message):
    __slots__ = ("path", "url", "method", "sha256", "size_bytes")
    PATH_FIELD_NUMBER: _ClassVar[int]
    URL_FIELD_NUMBER: _ClassVar[int]
    METHOD_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    path: str
    url: str
    method: str
    sha256: str
    size_bytes: int
    def __init__(self, path: _Optional[str] = ..., url: _Optional[str] = ..., method: _Optional[str] = ..., sha256: _Optional[str] = ..., size_bytes: _Optional[int] = ...) -> None: ...

class FileChunk(_message.Message):
    __slots__ = ("path", "data", "eof", "sha256")
    PATH_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    EOF_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    path: str
    data: bytes
    eof: bool
    sha256: str
    def __init__(self, path: _Optional[str] = ..., data: _Optional[bytes] = ..., eof: _Optional[bool] = ..., sha256: _Optional[str] = ...) -> None: ...
