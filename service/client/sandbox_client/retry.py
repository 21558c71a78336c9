"""What is retried, and how long to wait: only what is safe to repeat and not the code's fault."""

import email.utils
import random
from dataclasses import dataclass
from datetime import UTC, datetime

import httpx

RETRY_STATUSES = frozenset({429, 503, 504})
# No connection, or the connection closed before the whole answer came.
DROPPED = (httpx.NetworkError, httpx.RemoteProtocolError)


class SandboxHTTPError(Exception):
    """The service refused the request (after retries, for 429, 503 and 504)."""

    def __init__(self, status: int, error: str, message: str):
        super().__init__(f"{status} {error}: {message}")
        self.status = status
        self.error = error
        self.message = message


@dataclass(frozen=True)
class RetryPolicy:
    max_retries: int = 5
    backoff_s: float = 0.5
    max_backoff_s: float = 30.0

    def spent(self, attempt: int) -> bool:
        """True when attempt number `attempt` (0 first) was the last one allowed."""
        return attempt >= self.max_retries

    def delay(self, attempt: int, retry_after: str | None = None) -> float:
        """Seconds to wait before retry number `attempt` (0 first): exponential backoff with
        jitter, and never less than the server's Retry-After."""
        backoff = min(self.max_backoff_s, self.backoff_s * 2 ** attempt)
        return max(parse_retry_after(retry_after), backoff * random.uniform(0.5, 1.0))


def parse_retry_after(value: str | None) -> float:
    """Retry-After in seconds, from delta-seconds or an HTTP date; 0 when absent or unreadable."""
    if not value:
        return 0.0
    if value.strip().isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return 0.0
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def refusal(response: httpx.Response) -> SandboxHTTPError:
    try:
        detail = response.json()
    except ValueError:
        detail = {}
    if not isinstance(detail, dict):
        detail = {}
    return SandboxHTTPError(response.status_code, str(detail.get("error", "http_error")),
                            str(detail.get("message", response.text[:200])))


def retry_now(response: httpx.Response, attempt: int, policy: RetryPolicy) -> bool:
    """False for a success; True for a refusal to retry; raises the other refusals (and a
    retryable one once the retries are spent). The response must have been read."""
    if response.is_success:
        return False
    if response.status_code in RETRY_STATUSES and not policy.spent(attempt):
        return True
    raise refusal(response)
