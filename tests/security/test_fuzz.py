"""Fuzzing the HTTP API from its own OpenAPI schema: valid and malformed requests, never a 5xx.

Bounded so it stays well under two minutes: a fixed number of examples per operation, a fixed
seed (derandomized), a deadline per example, no shrinking. Requests go to the `warm` service
(its real API, Redis, worker and container); what the fuzzer sends as code runs in the sandbox.
"""

import schemathesis
from hypothesis import HealthCheck, Phase, settings
from schemathesis import GenerationMode

from service.api.app import create_app
from service.settings import Settings
from tests.security.probe import Warm

EXAMPLES_PER_OPERATION = 20
DEADLINE_MS = 30_000
READINESS = ("/readyz", "/healthz")  # 503 there means "no free warm container now", by design

# The schema the running service serves is the app's own: built here without starting anything.
schema = schemathesis.openapi.from_dict(create_app(Settings()).openapi())
schema.config.generation.update(modes=[GenerationMode.POSITIVE, GenerationMode.NEGATIVE],
                                max_examples=EXAMPLES_PER_OPERATION, deterministic=True,
                                no_shrink=True)


@schema.parametrize()
@settings(max_examples=EXAMPLES_PER_OPERATION, deadline=DEADLINE_MS, derandomize=True,
          phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
def test_no_server_error(warm: Warm, case: schemathesis.Case) -> None:
    response = case.call(base_url=warm.service.base_url, timeout=60)
    if case.path in READINESS and response.status_code == 503:
        return
    assert response.status_code < 500, (case.method, case.path, case.body, response.text)
