"""/v1/tools: the OpenAI function-calling definitions, and running the calls a model makes."""

import base64
import json
from dataclasses import dataclass

import httpx
from jsonschema import Draft202012Validator

EXPECTED = {"run_python", "run_code", "open_session", "run_in_session", "close_session"}


def tool(client: httpx.Client, name: str, **arguments) -> dict:
    response = client.post(f"/v1/tools/{name}", json=arguments)
    assert response.status_code == 200, response.text
    return response.json()


def test_the_tools_array_is_openai_function_calling(client: httpx.Client) -> None:
    tools = client.get("/v1/tools").json()
    assert isinstance(tools, list) and {t["function"]["name"] for t in tools} == EXPECTED
    for entry in tools:
        assert set(entry) == {"type", "function"} and entry["type"] == "function"
        function = entry["function"]
        assert set(function) == {"name", "description", "parameters"}
        assert function["description"]
        Draft202012Validator.check_schema(function["parameters"])
        assert function["parameters"]["type"] == "object"
    run_python = next(t["function"] for t in tools if t["function"]["name"] == "run_python")
    Draft202012Validator(run_python["parameters"]).validate({"code": "print(1)", "timeout": 5})


def test_run_python_answers_text_for_the_model(client: httpx.Client) -> None:
    out = tool(client, "run_python", code="print(6 * 7)")
    assert out["is_error"] is False and out["images"] == []
    text = json.loads(out["content"])
    assert (text["outcome"], text["stdout"], text["stderr"]) == ("ok", "42\n", "")
    assert out["result"]["stdout"] == "42\n"
    failed = json.loads(tool(client, "run_python", code="1/0")["content"])
    assert failed["outcome"] == "error" and "ZeroDivisionError" in failed["stderr"]


def test_sessions_through_tools_with_a_plot(client: httpx.Client) -> None:
    opened = tool(client, "open_session", idle_ttl_s=60)
    sid = json.loads(opened["content"])["session_id"]
    tool(client, "run_in_session", session_id=sid, code="data = [1, 4, 9]")
    out = tool(client, "run_in_session", session_id=sid, return_files=["*.png"],
               code="import matplotlib.pyplot as plt\nplt.plot(data)\nplt.show()\nsum(data)")
    text = json.loads(out["content"])
    assert (text["value"], text["files"]) == ("14", ["figure-1.png"])
    assert "base64" not in out["content"]
    (image,) = out["images"]
    assert image["name"] == "figure-1.png" and image["media_type"] == "image/png"
    assert base64.b64decode(image["base64"]).startswith(b"\x89PNG")
    closed = json.loads(tool(client, "close_session", session_id=sid)["content"])
    assert closed == {"session_id": sid, "state": "closed"}
    gone = tool(client, "run_in_session", session_id=sid, code="data")
    assert gone["is_error"] is True and json.loads(gone["content"])["error"] == "session_closed"


def test_refusals_are_tool_errors(client: httpx.Client) -> None:
    bad = tool(client, "run_python", code="1", bogus=True)
    assert bad["is_error"] and json.loads(bad["content"])["error"] == "invalid_arguments"
    limit = tool(client, "run_python", code="1", timeout=10**6)
    assert limit["is_error"] and json.loads(limit["content"])["error"] == "limit_exceeded"
    missing = tool(client, "run_in_session", session_id="nope", code="1")
    assert missing["is_error"] and json.loads(missing["content"])["error"] == "not_found"
    unknown = client.post("/v1/tools/rm_rf", json={})
    assert (unknown.status_code, unknown.json()["error"]) == (404, "not_found")


# --- the README's agent loop, with a scripted model in place of the LLM -----------------------------

@dataclass
class Function:
    name: str
    arguments: str


@dataclass
class ToolCall:
    id: str
    function: Function


@dataclass
class Message:
    content: str | None
    tool_calls: list[ToolCall] | None


class ScriptedModel:
    """Answers as a chat model would: tool calls, then text built from what the tools said."""

    def __init__(self) -> None:
        self.turn = 0
        self.seen: list[list[dict]] = []

    def reply(self, messages: list, tools: list[dict]) -> Message:
        assert {t["function"]["name"] for t in tools} == EXPECTED
        self.turn += 1
        self.seen.append(list(messages))
        if self.turn == 1:
            return Message(None, [ToolCall("c1", Function("open_session", "{}"))])
        session_id = json.loads(messages[2]["content"])["session_id"]
        if self.turn == 2:
            code = "import matplotlib.pyplot as plt\nxs = range(11)\nplt.plot(xs, [x * x for x in xs])"
            return Message(None, [ToolCall("c2", Function("run_in_session", json.dumps(
                {"session_id": session_id, "code": code, "return_files": ["*.png"]})))])
        if self.turn == 3:
            return Message(None, [ToolCall("c3", Function("run_in_session", json.dumps(
                {"session_id": session_id, "code": "sum(x * x for x in xs)"}))),
                ToolCall("c4", Function("close_session", json.dumps({"session_id": session_id})))])
        value = next(json.loads(m["content"])["value"] for m in messages
                     if isinstance(m, dict) and m.get("tool_call_id") == "c3")
        return Message(f"The sum is {value}.", None)


def test_the_readme_agent_loop(client: httpx.Client) -> None:
    """The loop of the README's "For agents" section, as written there."""
    model = ScriptedModel()
    tools = client.get("/v1/tools").json()
    messages: list = [{"role": "user", "content": "Plot x**2 for x in 0..10 and sum them."}]
    while True:
        reply = model.reply(messages, tools)
        messages.append(reply)
        if not reply.tool_calls:
            break
        for call in reply.tool_calls:
            out = client.post(f"/v1/tools/{call.function.name}",
                              json=json.loads(call.function.arguments)).json()
            messages.append({"role": "tool", "tool_call_id": call.id, "content": out["content"]})
            for image in out["images"]:
                messages.append({"role": "user", "content": [{"type": "image_url", "image_url": {
                    "url": f"data:{image['media_type']};base64,{image['base64']}"}}]})
    assert reply.content == "The sum is 385."
    images = [m for m in messages if isinstance(m, dict) and m["role"] == "user"
              and isinstance(m["content"], list)]
    assert len(images) == 1
    assert images[0]["content"][0]["image_url"]["url"].startswith("data:image/png;base64,iVBOR")
