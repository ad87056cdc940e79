from tuneforge.serve.v1 import deployment_pb2 as _deployment_pb2
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class DeploymentEvent(_message.Message):
    __slots__ = ("deployment",)
    DEPLOYMENT_FIELD_NUMBER: _ClassVar[int]
    deployment: _deployment_pb2.Deployment
    def __init__(self, deployment: _Optional[_Union[_deployment_pb2.Deployment, _Mapping]] = ...) -> None: ...

class CallFeedbackEvent(_message.Message):
    __slots__ = ("call_log",)
    CALL_LOG_FIELD_NUMBER: _ClassVar[int]
    call_log: _deployment_pb2.CallLog
    def __init__(self, call_log: _Optional[_Union[_deployment_pb2.CallLog, _Mapping]] = ...) -> None: ...
