"""How a peer's failure reaches the caller: the caller's field when the peer says the named thing is
wrong, UNAVAILABLE (retryable) when the peer cannot be reached, never INVALID_ARGUMENT for an outage."""

from __future__ import annotations

import grpc
import pytest

from services.kit.errors import (
    DataLoss,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    ServiceError,
    Unauthenticated,
    Unavailable,
)
from services.kit.peers import Peers, peer_error


def rpc_error(code: grpc.StatusCode, details: str = "it went wrong") -> grpc.aio.AioRpcError:
    return grpc.aio.AioRpcError(code, grpc.aio.Metadata(), grpc.aio.Metadata(), details=details)


@pytest.mark.parametrize(
    "code",
    [grpc.StatusCode.NOT_FOUND, grpc.StatusCode.FAILED_PRECONDITION, grpc.StatusCode.PERMISSION_DENIED],
)
def test_what_the_peer_says_of_the_named_thing_lands_on_the_callers_field(code: grpc.StatusCode) -> None:
    error = peer_error(
        rpc_error(code, "projects/p/models/m/versions/9 does not exist"), "registry", "job.base_model"
    )
    assert isinstance(error, InvalidArgument)
    assert error.violations[0].field == "job.base_model"
    assert "versions/9 does not exist" in error.violations[0].description


@pytest.mark.parametrize("code", [grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED])
def test_an_unreachable_peer_is_unavailable_whatever_the_field(code: grpc.StatusCode) -> None:
    error = peer_error(rpc_error(code), "registry", "job.base_model")
    assert isinstance(error, Unavailable) and error.code == "UNAVAILABLE"
    assert error.reason == "PEER_UNAVAILABLE" and "registry" in error.message
    assert not error.violations


def test_without_a_field_the_peers_code_is_kept() -> None:
    assert isinstance(peer_error(rpc_error(grpc.StatusCode.NOT_FOUND), "data"), NotFound)
    assert isinstance(peer_error(rpc_error(grpc.StatusCode.FAILED_PRECONDITION), "data"), FailedPrecondition)
    assert isinstance(peer_error(rpc_error(grpc.StatusCode.UNAUTHENTICATED), "data"), Unauthenticated)
    assert isinstance(peer_error(rpc_error(grpc.StatusCode.DATA_LOSS), "data"), DataLoss)
    internal = peer_error(rpc_error(grpc.StatusCode.INTERNAL), "data", "x")
    assert type(internal) is ServiceError and internal.reason == "PEER_ERROR" and not internal.violations


async def test_a_peer_that_is_down_raises_unavailable_through_a_real_channel() -> None:
    import socket

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    peers = Peers({"registry": f"127.0.0.1:{port}"}, api_key=lambda: "tf_x_y", timeout=3)
    try:
        with pytest.raises(Unavailable) as caught:
            await peers.model_version("projects/p/models/m/versions/1", field="training_job.base_model")
    finally:
        await peers.close()
    assert caught.value.metadata["peer"] == "registry"


async def test_a_peer_without_an_endpoint_is_a_clear_precondition() -> None:
    peers = Peers({})
    with pytest.raises(FailedPrecondition) as caught:
        await peers.model_version("projects/p/models/m/versions/1")
    assert caught.value.reason == "NO_PEER_ENDPOINT" and "TUNEFORGE_REGISTRY_ENDPOINT" in caught.value.message
