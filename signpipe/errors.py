"""Named errors raised by the plain-logic modules; routes and tasks turn them into states."""

from __future__ import annotations


class SignpipeError(Exception):
    """Base: a user-facing message plus optional structured details."""

    def __init__(self, message: str, details: object = None):
        super().__init__(message)
        self.message = message
        self.details = details


class UploadRejected(SignpipeError):
    """The upload itself is not acceptable (type, size, content); carries an HTTP status."""

    def __init__(self, message: str, status: int = 400, details: object = None):
        super().__init__(message, details)
        self.status = status


class InvalidArchive(SignpipeError):
    """The archive is corrupt, empty, of the wrong kind or shaped wrongly."""


class UnsafeArchive(InvalidArchive):
    """The archive tries something a recording never needs (escaping paths, links, bombs)."""


class InvalidRecording(SignpipeError):
    """The extracted tree is not a valid recording; details lists every problem found."""


class RecordingExists(SignpipeError):
    """A recording with this id is already stored."""


class PipelineFailed(SignpipeError):
    """The pipeline command failed; details holds the exit code and the last log lines."""


class PipelineStopped(PipelineFailed):
    """The run was stopped on purpose (cancelled, or its attempt taken over); details say why."""


class StorageFull(SignpipeError):
    """The server's disk has no room for this upload or extraction."""


class ServiceUnavailable(SignpipeError):
    """A backing service (Redis, the broker) is down; the request may be retried later."""
