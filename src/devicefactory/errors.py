"""The AFS error catalogue: every error the service reports, with its code and message.

Exception tree (all carry an HTTP status and render as
``{"error": [{"code": ..., "message": ...}]}``):

    ServiceError
    ├── Unauthorized          AFS-401  401
    ├── Forbidden             AFS-403  403
    ├── NotFound              AFS-404  404
    ├── RequestTimeout        AFS-408  408   (a request body that stopped arriving)
    ├── PayloadTooLarge       AFS-413  413
    ├── HeadersTooLarge       AFS-431  431
    ├── TooManyRequests       AFS-429  429   (a limit; with Retry-After)
    ├── TooSlow               AFS-503  503   (a query stopped by the statement timeout)
    ├── WriteLost             AFS-503  503   (a group commit that failed: nothing kept, try again)
    ├── Conflict              AFS-409  409   (admin: a taken email, name, ...)
    └── ValidationFailed      AFS-600  422   (and the numbered AFS-60x below)
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import ClassVar


class ServiceError(Exception):
    """An error the caller caused, with the AFS code and HTTP status to report it with."""

    code: ClassVar[str] = "AFS-600"
    status_code: ClassVar[int] = 422

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message
        # Set by a service that recorded the refusal itself (a failed job, a failed
        # sign-in): the boundary then commits that record instead of rolling back.
        self.commit_recorded = False
        # Seconds after which a retry may succeed (the Retry-After header), if known.
        self.retry_after: int | None = None
        # Response headers that say more than the body may (the body keeps the seed's shape).
        self.headers: dict[str, str] = {}

    def recorded(self) -> ServiceError:
        self.commit_recorded = True
        return self

    def as_dict(self) -> dict[str, str]:
        return {"code": self.code, "message": self.message}


class Unauthorized(ServiceError):
    code = "AFS-401"
    status_code = 401

    def __init__(self, message: str = "Unauthorized: missing, unknown or expired token") -> None:
        super().__init__(message)


class InvalidCredentials(Unauthorized):
    def __init__(self) -> None:
        super().__init__("Invalid email or password")


class Forbidden(ServiceError):
    code = "AFS-403"
    status_code = 403

    def __init__(self, message: str = "Forbidden: your role may not perform this operation") -> None:
        super().__init__(message)


class NotFound(ServiceError):
    code = "AFS-404"
    status_code = 404

    def __init__(self, message: str = "Not found") -> None:
        super().__init__(message)


class AccountLocked(Unauthorized):
    """Said alike of every email, known or not (§11): it reveals nothing about accounts."""

    def __init__(self, minutes: int) -> None:
        unit = "minute" if minutes == 1 else "minutes"
        super().__init__(
            f"Too many failed sign-ins: signing in with this email is locked for {minutes} more {unit}"
        )


class KeyUnavailable(ServiceError):
    """The master key that sealed a device's private key is not loaded (an operator's error:
    a process left on a key that a rotation replaced)."""

    code = "AFS-503"
    status_code = 503

    def __init__(self) -> None:
        super().__init__(
            "Service Unavailable: the master key that sealed this device's key is not loaded here; "
            "the operator must restart the service with the current master key"
        )


class RequestTimeout(ServiceError):
    code = "AFS-408"
    status_code = 408

    def __init__(self, seconds: float) -> None:
        super().__init__(f"Request Timeout: no part of the request body arrived for {seconds:g} seconds")


class HeadersTooLarge(ServiceError):
    code = "AFS-431"
    status_code = 431

    def __init__(self, limit: int) -> None:
        super().__init__(f"Request Header Fields Too Large: the headers may hold at most {limit} bytes")


class TooManyRequests(ServiceError):
    """AFS-429: a limit was reached; ``retry_after`` says when to try again."""

    code = "AFS-429"
    status_code = 429

    def __init__(self, what: str, retry_after: int) -> None:
        super().__init__(f"Too many requests: {what}. Retry after {retry_after} seconds")
        self.retry_after = retry_after


class WriteLost(ServiceError):
    """A write that could not be committed, through no fault of its own (the commit of the
    batch it was group committed in failed): nothing of it was kept, and it may be sent again."""

    code = "AFS-503"
    status_code = 503

    def __init__(self) -> None:
        super().__init__(
            "Service Unavailable: the change could not be committed and nothing of it was kept; try again"
        )
        self.retry_after = 1


class TooSlow(ServiceError):
    code = "AFS-503"
    status_code = 503

    def __init__(self) -> None:
        super().__init__(
            "Service Unavailable: the request took too long and was stopped; narrow it or try again later"
        )
        self.retry_after = 30


class Conflict(ServiceError):
    code = "AFS-409"
    status_code = 409


class PayloadTooLarge(ServiceError):
    code = "AFS-413"
    status_code = 413

    def __init__(self, limit: int) -> None:
        super().__init__(f"Request body is larger than the limit of {limit} bytes")


FAILURES_PREFIX = "There were some failures while processing: "
RESERVABLE_HEADER = "X-Reservable-Now"


class ValidationFailed(ServiceError):
    """AFS-600: the generic validation error; the message lists each failure (the seed's form)."""

    code = "AFS-600"

    @classmethod
    def of(cls, failures: Iterable[str]) -> ValidationFailed:
        return cls(FAILURES_PREFIX + ", ".join(failures))


class MalformedRequest(ValidationFailed):
    """AFS-600 for a body that is not JSON, or not a JSON object; in the seed's form too."""

    def __init__(self, what: str) -> None:
        super().__init__(FAILURES_PREFIX + what)


class InvalidModel(ServiceError):
    code = "AFS-601"

    def __init__(self, model: object) -> None:
        super().__init__(f"{model} is not a valid model")


class InvalidCount(ServiceError):
    code = "AFS-602"

    def __init__(self, count: object) -> None:
        super().__init__(f"{count} is not a valid integer number between 1 and 1000")


class CountTooLow(ServiceError):
    code = "AFS-603"

    def __init__(self) -> None:
        super().__init__("Count should be higher or equal than 1")


class ReservationLimitExceeded(ServiceError):
    code = "AFS-604"

    def __init__(self, limit: int) -> None:
        super().__init__(f"A max of {limit} devices can be reserved")


class KeyPoolExhausted(ServiceError):
    code = "AFS-605"

    def __init__(self, retry_after: int | None = None, *, reservable: int | None = None) -> None:
        super().__init__("There are not enough reservable devices for your request. Please try later")
        self.retry_after = retry_after
        if reservable is not None:
            # How many DSNs the caller could reserve right now (docs/api.md).
            self.headers[RESERVABLE_HEADER] = str(reservable)


class AlreadyManufactured(ServiceError):
    code = "AFS-606"

    def __init__(self) -> None:
        super().__init__("Device is already manufactured")


class MissingAttributes(ServiceError):
    code = "AFS-607"

    def __init__(self, attrs: Iterable[str]) -> None:
        self.attrs = list(attrs)
        super().__init__("There are some missing required attrs: " + ", ".join(self.attrs))


class InvalidDate(ServiceError):
    code = "AFS-608"

    def __init__(self, value: object) -> None:
        super().__init__(f"{value} is not valid. Valid date format is %Y/%m/%d %H:%M:%S %Z")


class AlreadyProvisioned(ServiceError):
    code = "AFS-609"

    def __init__(self) -> None:
        super().__init__("Device is already provisioned")


class MissingFactoryCertificate(ServiceError):
    """A reserve for an OEM with no certificate: its bundle could only be sent in clear."""

    code = "AFS-610"

    def __init__(self, oem_id: str) -> None:
        super().__init__(
            f"OEM {oem_id} has no factory certificate: upload one before reserving "
            f"(PUT /devicefactory/v1/admin/oems/{oem_id}/certificate)"
        )
