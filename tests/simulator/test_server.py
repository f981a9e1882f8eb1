"""The simulator spoken to as curl would: raw HTTP, no project client in between."""

from __future__ import annotations

import json

import pytest
import requests

from bot.simulator import DEMO_API_KEY, DEMO_API_USER, SimulatorServer, sample_state

AUTH = {"api_user": DEMO_API_USER, "api_key": DEMO_API_KEY}


def post(server: SimulatorServer, path: str, data: dict[str, str] | str) -> requests.Response:
    return requests.post(server.url + path, data=data, timeout=5)


def test_retrieve_answers_as_real_traffic_did(simulator: SimulatorServer):
    response = post(
        simulator, "customer.limit.json", {**AUTH, "user": "globex", "task": "retrieve"}
    )
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/json"
    assert response.json() == [
        {"credit": "10000", "credit_remain": "640", "last_reset": "2026-11-01"}
    ]


def test_get_with_a_query_string_works_too(simulator: SimulatorServer):
    response = requests.get(
        simulator.url + "customer.limit.json",
        params={**AUTH, "user": "stark-industries", "task": "retrieve"},
        timeout=5,
    )
    assert response.json() == []


def test_last_duplicate_parameter_wins_as_in_php(simulator: SimulatorServer):
    body = f"api_user=demo&api_key={DEMO_API_KEY}&user=globex&task=increment&credits=5&task=none"
    assert post(simulator, "customer.limit.json", body).json() == {"message": "success"}
    [write] = simulator.state.writes()
    assert write.task == "none"


def test_xml_success_and_error_bodies(simulator: SimulatorServer):
    ok = post(simulator, "customer.limit.xml", {**AUTH, "user": "globex", "task": "none"})
    assert b"<result><message>success</message></result>" in ok.content
    assert ok.headers["Content-Type"].startswith("text/xml")
    error = post(simulator, "customer.limit.xml", {**AUTH, "user": "nobody", "task": "retrieve"})
    assert error.status_code == 200
    assert b"<errors><error>User does not exist</error></errors>" in error.content


def test_bad_credentials_get_http_200_and_an_error_object(simulator: SimulatorServer):
    response = post(
        simulator, "customer.limit.json", {"api_user": "demo", "api_key": "x", "task": "retrieve"}
    )
    assert response.status_code == 200
    assert response.json()["error"]["code"] == 401
    assert simulator.state.calls()[0].outcome == "unauthorized"


def test_call_log_never_records_credentials(simulator: SimulatorServer):
    post(simulator, "customer.limit.json", {**AUTH, "user": "globex", "task": "retrieve"})
    logged = requests.get(simulator.url.replace("/apiv2/", "/_sim/calls"), timeout=5).json()
    assert logged[0]["params"] == {"user": "globex", "task": "retrieve"}
    assert DEMO_API_KEY not in json.dumps(logged)


def test_faults_can_be_added_over_http(simulator: SimulatorServer):
    control = simulator.url.replace("/apiv2/", "/_sim/faults")
    assert requests.post(control, json={"kind": "status", "arg": "503", "times": 1}, timeout=5).ok
    assert requests.post(control, json={"kind": "bogus"}, timeout=5).status_code == 400
    first = post(simulator, "customer.limit.json", {**AUTH, "user": "globex", "task": "retrieve"})
    second = post(simulator, "customer.limit.json", {**AUTH, "user": "globex", "task": "retrieve"})
    assert (first.status_code, second.status_code) == (503, 200)


def test_rate_limit_answers_429_with_headers():
    state = sample_state(rate_limit=2)
    with SimulatorServer(state).running() as server:
        statuses = [
            post(server, "customer.limit.json", {**AUTH, "user": "globex", "task": "retrieve"})
            for _ in range(3)
        ]
    assert [r.status_code for r in statuses] == [200, 200, 429]
    limited = statuses[2]
    assert int(limited.headers["Retry-After"]) >= 1
    assert limited.headers["X-RateLimit-Limit"] == "2"
    assert limited.json() == {"errors": [{"field": None, "message": "too many requests"}]}


@pytest.mark.parametrize("path", ["customer.nothing.json", "customer.limit.yaml", "../etc"])
def test_unknown_paths_are_404(simulator: SimulatorServer, path: str):
    assert post(simulator, path, AUTH).status_code == 404


def test_recurring_then_increment_follows_the_recorded_sequence(simulator: SimulatorServer):
    def call(**params: str) -> object:
        return post(simulator, "customer.limit.json", {**AUTH, "user": "hooli", **params}).json()

    assert call(task="total", credits="200") == {"message": "success"}
    assert call(task="retrieve")[0]["credit_remain"] == "200"  # type: ignore[index]
    call(task="recurring", credits="400", period="daily")
    assert call(task="retrieve")[0]["credit"] == "400"  # type: ignore[index]
    call(task="increment", credits="400")
    assert call(task="retrieve")[0] == {  # type: ignore[index]
        "credit": "0",
        "credit_remain": "800",
        "last_reset": simulator.state.subusers["hooli"].last_reset,
    }
    call(task="decrement", credits="400")
    call(task="none")
    assert call(task="retrieve") == []


def test_v3_patch_remaining_keeps_the_recurring_plan_as_the_spec_example_shows(
    simulator: SimulatorServer,
):
    # OAI spec (twilio/sendgrid-oai tsg_subusers_v3.yaml): PATCH …/credits/remaining answers
    # {"remain":100,"total":100,"used":0,"type":"recurring","reset_frequency":"monthly"}.
    headers = {"Authorization": f"Bearer {DEMO_API_KEY}"}
    url = simulator.base_url + "v3/subusers/acme-eu/credits/remaining"
    for update in (500, -200):
        answer = requests.patch(url, json={"allocation_update": update}, headers=headers, timeout=5)
        assert answer.status_code == 200
    body = answer.json()
    assert (body["type"], body["reset_frequency"], body["total"]) == ("recurring", "monthly", 50000)
    assert body["remain"] == 31_500


def test_v2_cannot_ask_for_v3_semantics(simulator: SimulatorServer):
    params = {**AUTH, "user": "acme-eu"}
    sneaky = {**params, "task": "increment", "credits": "1", "keep_plan": "1"}
    post(simulator, "customer.limit.json", sneaky)
    retrieved = post(simulator, "customer.limit.json", {**params, "task": "retrieve"}).json()
    assert retrieved[0]["credit"] == "0"  # as recorded (§2.1): the plan is gone
