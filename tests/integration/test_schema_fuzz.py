"""Property-based requests from the gateway's own OpenAPI schema (schemathesis).

Whatever a client sends that the schema allows, or nearly allows, the gateway answers without
a server error, and its responses match what the schema says. (Schemathesis' pytest plugin
does not run under pytest 9 yet, so the operations are driven through Hypothesis directly.)
"""

from __future__ import annotations

import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance

from tests.support.stack import Stack


def test_no_server_errors_and_responses_match_the_schema(local_stack: Stack) -> None:
    schema = schemathesis.openapi.from_url(f"{local_stack.url}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 10  # the whole API, not an empty schema

    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=20,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def exercise(case: schemathesis.Case) -> None:
            case.call_and_validate(
                base_url=local_stack.url,
                checks=[not_a_server_error, response_schema_conformance],
                timeout=30,
            )

        exercise()
