"""A failed run is told by its cause: a full or read-only disk, a full or unreachable tracking store."""

from __future__ import annotations

from pipelines.engine.environment import disk_errno_in_text, tracking_failure_kind


def test_disk_errors_and_store_failures_are_told_apart() -> None:
    assert disk_errno_in_text("OSError: [Errno 28] No space left on device: '/c/x.npz'") == (28, "/c/x.npz")
    assert disk_errno_in_text("OSError: [Errno 30] Read-only file system") == (30, None)
    # TensorFlow's C++ writers (a SavedModel exported for the converter) name the path and strerror only.
    tf_error = "ResourceExhaustedError: /c/split/savedmodel-x/saved_model.pb.tmp51; No space left on device"
    assert disk_errno_in_text(tf_error) == (28, "/c/split/savedmodel-x/saved_model.pb.tmp51")
    assert disk_errno_in_text("ValueError: shapes (1, 2); (3,) do not match") is None
    assert disk_errno_in_text("ValueError: [Errno 2] No such file or directory: 'x'") is None  # input, not disk
    assert tracking_failure_kind("OperationalError: database or disk is full") == "the store is full"
    assert tracking_failure_kind("MlflowException: Max retries exceeded (Connection refused)") == (
        "the server is unreachable"
    )
    assert tracking_failure_kind("attempt to write a readonly database") == "permission was denied"
    # HTTP statuses count as statuses only: this connection-refused error names a port holding "403"
    refused = (
        "MlflowException: API request to http://127.0.0.1:45403/api/2.0/mlflow/experiments/get-by-name failed with "
        "exception HTTPConnectionPool(host='127.0.0.1', port=45403): Max retries exceeded (Connection refused)"
    )
    assert tracking_failure_kind(refused) == "the server is unreachable"
    assert tracking_failure_kind("MlflowException: API request failed with error code 403 != 200") == (
        "permission was denied"
    )
    assert tracking_failure_kind("HTTPError: 503 Server Error: Service Unavailable for url: http://h:8403/x") == (
        "the server is unreachable"
    )
    assert tracking_failure_kind("RestException: the server answered with status 403.") == "permission was denied"
    assert tracking_failure_kind("MlflowException: run 5034030 has no metric 'x'") == "the store returned an error"
    assert tracking_failure_kind("MlflowException: no run at http://h:403/x or /runs/403/y") == (
        "the store returned an error"
    )
