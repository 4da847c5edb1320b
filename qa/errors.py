"""Named errors; the API maps each to one status code and the JSON error shape."""

from __future__ import annotations

from typing import Any


def error_body(code: str, message: str, details: Any = None) -> dict[str, Any]:
    """The one JSON error shape, also for answers given below the app (server limits, proxy checks)."""
    return {"error": {"code": code, "message": message, "details": details}}


class QAError(Exception):
    """Base class: `code` and `status` go straight into the HTTP error body."""

    code = "internal_error"
    status = 500

    def __init__(self, message: str, details: object = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details
        self.headers: dict[str, str] = {}


class ConfigError(QAError):
    """A QA_* setting has a bad value; seen by whoever starts the service."""

    code = "config_error"


class ModelMismatchError(QAError):
    """The index was built with another embedding model; seen at start-up."""

    code = "model_mismatch"
    status = 503


class IndexNotFoundError(QAError):
    """No built index in the index directory; seen at start-up or by `qa ask`."""

    code = "index_not_found"
    status = 503


class StoreUnavailableError(QAError):
    """The index store (a Milvus server, or a Milvus Lite directory) can't be reached or refused a call."""

    code = "store_unavailable"
    status = 503


class RankerMissingError(QAError):
    """No ranker was fitted for this embedding model (`qa calibrate` fits one); seen at start-up and build."""

    code = "ranker_missing"
    status = 503


class IndexFormatError(QAError):
    """The index on disk has another format version; rebuild it."""

    code = "index_format"
    status = 503


class NotReadyError(QAError):
    """The service is still loading; clients should retry."""

    code = "not_ready"
    status = 503


class DocumentNotFoundError(QAError):
    """A doc_id the client named is not in the index."""

    code = "document_not_found"
    status = 404


class UnauthorizedError(QAError):
    """An admin route was called without a bearer token."""

    code = "unauthorized"
    status = 401


class ForbiddenError(QAError):
    """A wrong admin token, or the admin API is disabled (QA_ADMIN_TOKEN unset)."""

    code = "forbidden"
    status = 403


class JobNotFoundError(QAError):
    code = "job_not_found"
    status = 404


class InvalidRequestError(QAError):
    """A request the schema cannot express as invalid: unknown or repeated query parameters."""

    code = "invalid_request"
    status = 422


class UnsupportedMediaTypeError(QAError):
    """A document that is not text/plain or text/markdown, or in a charset other than UTF-8/GB18030."""

    code = "unsupported_media_type"
    status = 415


class InvalidDocumentError(QAError):
    """A document body that does not decode, looks binary, or has nothing visible."""

    code = "invalid_document"
    status = 422


class DocumentTooLargeError(QAError):
    code = "payload_too_large"
    status = 413


class CorpusWriteError(QAError):
    """The corpus directory refused the write (read-only, permissions): nothing was changed."""

    code = "corpus_write_failed"
    status = 500


class CorpusFullError(CorpusWriteError):
    """The corpus volume is full: nothing was changed."""

    status = 507


class RateLimitedError(QAError):
    """Over QA_RATE_LIMIT; the response carries Retry-After."""

    code = "rate_limited"
    status = 429
