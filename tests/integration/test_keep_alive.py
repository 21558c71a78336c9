"""A client's pooled connection, idle past the pool expiry of common HTTP clients, is still served.

Clients expire idle connections on their own clock (httpx after 5 s). Were the API to close
them at the same moment, a request sent just before the client's expiry would meet a connection
the API is closing and be dropped unanswered.
"""

import http.client
import json
import time

from tests.support import Service

CLIENT_POOL_EXPIRY_S = 5.0  # httpx's default keepalive_expiry


def run_on(connection: http.client.HTTPConnection, code: str) -> dict:
    connection.request("POST", "/v1/run", body=json.dumps({"code": code}),
                       headers={"content-type": "application/json"})
    response = connection.getresponse()
    body = response.read()
    assert response.status == 200, body
    return json.loads(body)


def test_a_connection_idle_past_client_pool_expiry_is_still_served(service: Service) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", service.port, timeout=60)
    try:
        assert run_on(connection, "print(1)")["stdout"] == "1\n"
        local = connection.sock.getsockname()
        time.sleep(CLIENT_POOL_EXPIRY_S + 1)
        assert run_on(connection, "print(2)")["stdout"] == "2\n"
        assert connection.sock.getsockname() == local, "the request went over a new connection"
    finally:
        connection.close()
