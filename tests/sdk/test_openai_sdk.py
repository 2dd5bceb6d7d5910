"""Conformance of Tollgate with the official OpenAI Python SDK and the official OpenAPI spec.

Every request goes through `openai.OpenAI` pointed at the gateway, which proxies to the scripted
mock provider. The mock is deterministic (services/mock-provider/src/generate.rs): a token is a
whitespace-separated word, generated word i is `tok{i}`, the text is `max_tokens` words (16 by
default, finish_reason "length" when max_tokens cut it, else "stop"), and prompt tokens are the
words of every message's text. So content and usage are asserted exactly.

Raw bodies (via `.with_raw_response` / `.with_streaming_response`, which go through the same SDK
client) are validated against the spec's schemas with the `validate` fixture from conftest.py.
"""

from __future__ import annotations

import array
import json
from typing import Any

import httpx2
import openai
import pytest
from openai.types import Completion, CreateEmbeddingResponse, Model
from openai.types.chat import ChatCompletion, ChatCompletionChunk

from conftest import OPERATOR_KEY, SpecValidator, Stack

CHAT_MODEL = "gpt-test"
EMBED_MODEL = "embed-test"


def words(*texts: str) -> int:
    return sum(len(t.split()) for t in texts)


def generated(n: int) -> str:
    """The mock's text of n words."""
    return " ".join(f"tok{i}" for i in range(n))


def sse_data(lines: list[str]) -> list[str]:
    """The `data:` payloads of an SSE body, one per event (multi-line data joined by newlines)."""
    events: list[str] = []
    current: list[str] = []
    for line in lines + [""]:
        if line == "":
            if current:
                events.append("\n".join(current))
                current = []
        elif line.startswith("data:"):
            current.append(line[5:].removeprefix(" "))
    return events


def raw_stream(method: Any, **params: Any) -> tuple[int, str, list[str]]:
    """Calls `<resource>.with_streaming_response.create(stream=True, ...)`: (status, content type,
    SSE data payloads)."""
    with method(stream=True, **params) as response:
        lines = list(response.iter_lines())
        return response.status_code, response.headers.get("content-type", ""), sse_data(lines)


def error_body(err: openai.APIStatusError) -> dict[str, Any]:
    return json.loads(err.response.text)


# --------------------------------------------------------------------------------------------
# Chat completions
# --------------------------------------------------------------------------------------------

SYSTEM = "You are a terse assistant."
USER = "Say hello to the gateway please"
PARTS = ["first part here", "and a second"]


def chat_messages() -> list[dict[str, Any]]:
    return [
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": USER},
        # Array content: the gateway must pass it through untouched (the mock counts text parts).
        {"role": "user", "content": [{"type": "text", "text": p} for p in PARTS]},
    ]


PROMPT_WORDS = words(SYSTEM, USER, *PARTS)


@pytest.mark.parametrize(
    ("max_tokens", "length", "finish_reason"),
    [(5, 5, "length"), (None, 16, "stop")],
    ids=["max_tokens=5", "default-length"],
)
def test_chat_completion(client: openai.OpenAI, max_tokens: int | None, length: int, finish_reason: str) -> None:
    params: dict[str, Any] = {"max_tokens": max_tokens} if max_tokens is not None else {}
    completion = client.chat.completions.create(model=CHAT_MODEL, messages=chat_messages(), **params)

    assert isinstance(completion, ChatCompletion)
    assert completion.object == "chat.completion"
    assert completion.id
    assert len(completion.choices) == 1
    choice = completion.choices[0]
    assert choice.index == 0
    assert choice.message.role == "assistant"
    assert choice.message.content == generated(length)
    assert choice.finish_reason == finish_reason
    assert completion.usage is not None
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens, completion.usage.total_tokens) == (
        PROMPT_WORDS,
        length,
        PROMPT_WORDS + length,
    )


def test_chat_completion_with_n_choices(client: openai.OpenAI) -> None:
    completion = client.chat.completions.create(
        model=CHAT_MODEL, messages=[{"role": "user", "content": "hi"}], n=3, max_completion_tokens=2
    )
    assert [c.index for c in completion.choices] == [0, 1, 2]
    assert all(c.message.content == generated(2) for c in completion.choices)
    assert completion.usage is not None
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == (1, 6)


def test_chat_completion_raw_body_matches_spec(client: openai.OpenAI, validate: SpecValidator) -> None:
    raw = client.chat.completions.with_raw_response.create(model=CHAT_MODEL, messages=chat_messages(), max_tokens=3)
    assert raw.status_code == 200
    assert raw.headers["content-type"].startswith("application/json")
    body = raw.http_response.json()
    validate(body, "CreateChatCompletionResponse")
    assert body["object"] == "chat.completion"
    parsed = raw.parse()
    assert parsed.id == body["id"]
    assert parsed.choices[0].message.content == generated(3)


def test_chat_stream_with_include_usage(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(
        model=CHAT_MODEL,
        messages=chat_messages(),
        max_tokens=4,
        stream=True,
        stream_options={"include_usage": True},
    )
    assert isinstance(stream, openai.Stream)
    chunks = list(stream)  # the SDK stops at `data: [DONE]`; an error event would raise here

    assert len(chunks) >= 3
    assert all(isinstance(c, ChatCompletionChunk) and c.object == "chat.completion.chunk" for c in chunks)
    assert len({c.id for c in chunks}) == 1, "every chunk of one completion has the same id"
    content_chunks, usage_chunk = chunks[:-1], chunks[-1]
    assert content_chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in content_chunks)
    assert text == generated(4)
    finishes = [c.choices[0].finish_reason for c in content_chunks if c.choices[0].finish_reason]
    assert finishes == ["length"]
    # Only the last chunk carries usage, with no choices.
    assert all(c.usage is None for c in content_chunks)
    assert usage_chunk.choices == []
    assert usage_chunk.usage is not None
    assert (usage_chunk.usage.prompt_tokens, usage_chunk.usage.completion_tokens, usage_chunk.usage.total_tokens) == (
        PROMPT_WORDS,
        4,
        PROMPT_WORDS + 4,
    )


def test_chat_stream_without_include_usage_has_no_usage_chunk(client: openai.OpenAI) -> None:
    # The gateway asks the provider for usage anyway (to meter the request); the client did not.
    stream = client.chat.completions.create(model=CHAT_MODEL, messages=chat_messages(), max_tokens=4, stream=True)
    chunks = list(stream)
    assert chunks, "the stream produced chunks"
    assert all(c.usage is None for c in chunks), [c.usage for c in chunks if c.usage is not None]
    assert all(len(c.choices) == 1 for c in chunks), "no choices-less (usage) chunk"
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == generated(4)
    assert chunks[-1].choices[0].finish_reason == "length"


@pytest.mark.parametrize("include_usage", [True, False], ids=["include_usage", "no_usage"])
def test_chat_stream_raw_chunks_match_spec(client: openai.OpenAI, validate: SpecValidator, include_usage: bool) -> None:
    params: dict[str, Any] = {"stream_options": {"include_usage": True}} if include_usage else {}
    status, content_type, events = raw_stream(
        client.chat.completions.with_streaming_response.create,
        model=CHAT_MODEL,
        messages=chat_messages(),
        max_tokens=3,
        **params,
    )
    assert status == 200
    assert content_type.startswith("text/event-stream")
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    for chunk in chunks:
        validate(chunk, "CreateChatCompletionStreamResponse")
    with_usage = [c for c in chunks if c.get("usage") is not None]
    if include_usage:
        assert with_usage == [chunks[-1]]
        assert chunks[-1]["choices"] == []
        assert chunks[-1]["usage"]["prompt_tokens"] == PROMPT_WORDS
        assert chunks[-1]["usage"]["completion_tokens"] == 3
    else:
        assert with_usage == []
        assert all(c["choices"] for c in chunks)


# --------------------------------------------------------------------------------------------
# Legacy completions
# --------------------------------------------------------------------------------------------

PROMPT = "Once upon a time there"


def test_completion(client: openai.OpenAI, validate: SpecValidator) -> None:
    raw = client.completions.with_raw_response.create(model=CHAT_MODEL, prompt=PROMPT, max_tokens=3)
    body = raw.http_response.json()
    validate(body, "CreateCompletionResponse")

    completion = raw.parse()
    assert isinstance(completion, Completion)
    assert completion.object == "text_completion"
    assert len(completion.choices) == 1
    assert completion.choices[0].text == generated(3)
    assert completion.choices[0].finish_reason == "length"
    assert completion.usage is not None
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens, completion.usage.total_tokens) == (
        words(PROMPT),
        3,
        words(PROMPT) + 3,
    )


def test_completion_plain_call(client: openai.OpenAI) -> None:
    completion = client.completions.create(model=CHAT_MODEL, prompt=[PROMPT, "second prompt"])
    # n choices per prompt, in order; default length 16 words.
    assert [c.index for c in completion.choices] == [0, 1]
    assert all(c.text == generated(16) and c.finish_reason == "stop" for c in completion.choices)
    assert completion.usage is not None
    assert completion.usage.prompt_tokens == words(PROMPT, "second prompt")
    assert completion.usage.completion_tokens == 32


@pytest.mark.parametrize("include_usage", [True, False], ids=["include_usage", "no_usage"])
def test_completion_stream(client: openai.OpenAI, include_usage: bool) -> None:
    params: dict[str, Any] = {"stream_options": {"include_usage": True}} if include_usage else {}
    stream = client.completions.create(model=CHAT_MODEL, prompt=PROMPT, max_tokens=4, stream=True, **params)
    chunks = list(stream)
    assert all(isinstance(c, Completion) and c.object == "text_completion" for c in chunks)
    content = [c for c in chunks if c.choices]
    assert "".join(c.choices[0].text for c in content) == generated(4)
    assert [c.choices[0].finish_reason for c in content if c.choices[0].finish_reason] == ["length"]
    if include_usage:
        assert chunks[-1].choices == []
        assert chunks[-1].usage is not None
        assert (chunks[-1].usage.prompt_tokens, chunks[-1].usage.completion_tokens) == (words(PROMPT), 4)
        assert all(c.usage is None for c in chunks[:-1])
    else:
        assert content == chunks, "no choices-less (usage) chunk"
        assert all(c.usage is None for c in chunks)


def _as_stream_chunk(schema: dict[str, Any]) -> None:
    """CreateCompletionResponse relaxed the way CreateChatCompletionStreamResponse differs from
    CreateChatCompletionResponse: `choices[].finish_reason` and `usage` may be null."""
    finish = schema["properties"]["choices"]["items"]["properties"]
    finish["finish_reason"] = {"anyOf": [finish["finish_reason"], {"type": "null"}]}
    schema["properties"]["usage"] = {"anyOf": [schema["properties"]["usage"], {"type": "null"}]}


def test_completion_stream_raw_chunks(client: openai.OpenAI, validate: SpecValidator) -> None:
    # The spec has no chunk schema for legacy completions. CreateCompletionResponse's description
    # says "both the streamed and non-streamed response objects share the same shape", but it
    # allows neither `finish_reason: null` (every chunk before the finishing one) nor
    # `usage: null` (every chunk before the last with include_usage), which is how OpenAI streams
    # them, and how the spec's own chat chunk schema (CreateChatCompletionStreamResponse) has
    # them. So the non-streamed response is validated against the spec as-is (test_completion),
    # and the chunks against CreateCompletionResponse with just those two fields made nullable
    # (its `$ref`s still resolve into the spec).
    validate.derived("CreateCompletionResponse (stream chunk)", "CreateCompletionResponse", _as_stream_chunk)
    status, content_type, events = raw_stream(
        client.completions.with_streaming_response.create,
        model=CHAT_MODEL,
        prompt=PROMPT,
        max_tokens=3,
        stream_options={"include_usage": True},
    )
    assert status == 200
    assert content_type.startswith("text/event-stream")
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    assert len(chunks) >= 2
    for chunk in chunks:
        validate(chunk, "CreateCompletionResponse (stream chunk)")
        assert chunk["object"] == "text_completion"
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["completion_tokens"] == 3


# --------------------------------------------------------------------------------------------
# Embeddings
# --------------------------------------------------------------------------------------------


def _recorded_embedding_request(stack: Stack, marker: str) -> dict[str, Any]:
    """The body the mock provider received for the embeddings request whose input contains marker."""
    recent = httpx2.get(f"{stack.mock.url}/mock/requests", timeout=10).json()
    bodies = [r["body"] for r in recent if r.get("route", "").endswith("embeddings") and marker in json.dumps(r["body"])]
    assert bodies, f"the mock saw no embeddings request with {marker!r}"
    return bodies[-1]


def test_embeddings_sdk_default_is_base64_and_decoded(client: openai.OpenAI, stack: Stack) -> None:
    inputs = ["alpha beta gamma", "delta"]
    default = client.embeddings.create(model=EMBED_MODEL, input=inputs)
    # The SDK asked for base64 on its own, and the gateway passed that on to the provider.
    assert _recorded_embedding_request(stack, "alpha beta gamma").get("encoding_format") == "base64"

    assert isinstance(default, CreateEmbeddingResponse)
    assert default.object == "list"
    assert [d.index for d in default.data] == [0, 1]
    assert all(d.object == "embedding" for d in default.data)
    # The SDK decoded the base64 strings into float lists (8 dimensions by default at the mock).
    assert all(isinstance(d.embedding, list) and len(d.embedding) == 8 for d in default.data)
    assert all(-1.0 <= x <= 1.0 for d in default.data for x in d.embedding)
    assert (default.usage.prompt_tokens, default.usage.total_tokens) == (4, 4)

    # The same vectors as the float format, to float32 precision (base64 carries float32 bytes).
    floats = client.embeddings.create(model=EMBED_MODEL, input=inputs, encoding_format="float")
    for b64_item, float_item in zip(default.data, floats.data, strict=True):
        assert b64_item.embedding == array.array("f", float_item.embedding).tolist()


def test_embeddings_base64_raw_body(client: openai.OpenAI) -> None:
    raw = client.embeddings.with_raw_response.create(model=EMBED_MODEL, input="one two")
    body = raw.http_response.json()
    # The wire format is a base64 string, which CreateEmbeddingResponse (`embedding: number[]`)
    # does not describe, so this body is not schema-validated; the float format is, below.
    assert isinstance(body["data"][0]["embedding"], str)
    assert len(raw.parse().data[0].embedding) == 8


def test_embeddings_float(client: openai.OpenAI, validate: SpecValidator) -> None:
    raw = client.embeddings.with_raw_response.create(
        model=EMBED_MODEL, input=["x y", "z"], encoding_format="float", dimensions=5
    )
    body = raw.http_response.json()
    validate(body, "CreateEmbeddingResponse")
    result = raw.parse()
    assert [len(d.embedding) for d in result.data] == [5, 5]
    assert [d.index for d in result.data] == [0, 1]
    assert result.data[0].embedding != result.data[1].embedding
    assert result.data[0].embedding == body["data"][0]["embedding"]
    assert (result.usage.prompt_tokens, result.usage.total_tokens) == (3, 3)


# --------------------------------------------------------------------------------------------
# Models
# --------------------------------------------------------------------------------------------


def test_models_list(client: openai.OpenAI, validate: SpecValidator) -> None:
    raw = client.models.with_raw_response.list()
    body = raw.http_response.json()
    validate(body, "ListModelsResponse")
    for item in body["data"]:
        validate(item, "Model")

    models = {m.id: m for m in raw.parse()}
    assert {CHAT_MODEL, EMBED_MODEL, "org/gpt-slash"} <= set(models)
    assert all(isinstance(m, Model) and m.object == "model" for m in models.values())
    assert (models[CHAT_MODEL].owned_by, models[CHAT_MODEL].created) == ("tests", 1700000000)


def test_models_retrieve(client: openai.OpenAI, validate: SpecValidator) -> None:
    raw = client.models.with_raw_response.retrieve(CHAT_MODEL)
    validate(raw.http_response.json(), "Model")
    model = raw.parse()
    assert (model.id, model.object, model.owned_by, model.created) == (CHAT_MODEL, "model", "tests", 1700000000)


def test_models_retrieve_id_with_a_slash(client: openai.OpenAI) -> None:
    # The SDK percent-encodes the id as one path segment: GET /v1/models/org%2Fgpt-slash.
    model = client.models.retrieve("org/gpt-slash")
    assert model.id == "org/gpt-slash"


# --------------------------------------------------------------------------------------------
# Errors as the SDK's exception classes
# --------------------------------------------------------------------------------------------


def assert_error(err: openai.APIStatusError, validate: SpecValidator, status: int, code: str, kind: str) -> None:
    assert err.status_code == status
    assert err.response.headers["content-type"].startswith("application/json")
    validate(error_body(err), "ErrorResponse")
    # The SDK unwraps {"error": {...}} into err.body and its attributes.
    assert isinstance(err.body, dict)
    assert err.body["code"] == code
    assert err.code == code
    assert err.type == kind
    assert isinstance(err.body["message"], str) and err.body["message"]


def test_unknown_model_is_not_found(client: openai.OpenAI, validate: SpecValidator) -> None:
    with pytest.raises(openai.NotFoundError) as info:
        client.chat.completions.create(model="no-such-model", messages=[{"role": "user", "content": "hi"}])
    assert_error(info.value, validate, 404, "model_not_found", "invalid_request_error")
    assert info.value.param == "model"
    assert info.value.request_id, "x-request-id is exposed as err.request_id"

    with pytest.raises(openai.NotFoundError) as info:
        client.models.retrieve("no-such-model")
    assert_error(info.value, validate, 404, "model_not_found", "invalid_request_error")

    with pytest.raises(openai.NotFoundError) as info:
        client.embeddings.create(model="no-such-model", input="x")
    assert_error(info.value, validate, 404, "model_not_found", "invalid_request_error")


@pytest.mark.parametrize(
    ("messages", "code", "param"),
    [
        ([], "array_too_short", "messages"),
        ([{"role": "user", "content": "hi"}, {"role": "wizard", "content": "hi"}], "invalid_value", "messages[1].role"),
    ],
    ids=["empty-messages", "invalid-role"],
)
def test_invalid_chat_request_is_bad_request(
    client: openai.OpenAI, validate: SpecValidator, messages: list[Any], code: str, param: str
) -> None:
    # The SDK's params are TypedDicts: it does not check them, so these reach the gateway.
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model=CHAT_MODEL, messages=messages)
    assert_error(info.value, validate, 400, code, "invalid_request_error")
    assert info.value.param == param


def test_invalid_completion_prompt_is_bad_request(client: openai.OpenAI, validate: SpecValidator) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        client.completions.create(model=CHAT_MODEL, prompt=7)  # type: ignore[arg-type]
    assert_error(info.value, validate, 400, "invalid_type", "invalid_request_error")
    assert info.value.param == "prompt"


def test_wrong_api_key_is_authentication_error(stack: Stack, validate: SpecValidator) -> None:
    assert OPERATOR_KEY != "sk-wrong-key"
    with openai.OpenAI(base_url=stack.base_url, api_key="sk-wrong-key", max_retries=0) as bad:
        with pytest.raises(openai.AuthenticationError) as info:
            bad.chat.completions.create(model=CHAT_MODEL, messages=[{"role": "user", "content": "hi"}])
        assert_error(info.value, validate, 401, "invalid_api_key", "invalid_request_error")
        with pytest.raises(openai.AuthenticationError) as info:
            bad.models.list()
        assert_error(info.value, validate, 401, "invalid_api_key", "invalid_request_error")


UPSTREAM_FAILURES = [
    # (public model, gateway status, error code, retry-after header)
    ("broken-500", 502, "upstream_server_error", None),
    ("unavailable-503", 503, "upstream_server_error", None),
    ("rate-limited-429", 503, "upstream_rate_limited", "3"),
    ("hangs", 504, "upstream_first_byte_timeout", None),
    ("malformed", 502, "upstream_malformed_response", None),
]


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
@pytest.mark.parametrize(("model", "status", "code", "retry_after"), UPSTREAM_FAILURES, ids=[f[0] for f in UPSTREAM_FAILURES])
def test_upstream_failure_is_api_status_error(
    client: openai.OpenAI,
    validate: SpecValidator,
    model: str,
    status: int,
    code: str,
    retry_after: str | None,
    stream: bool,
) -> None:
    # A failure before any content is an HTTP error, streaming or not: the SDK raises on create().
    with pytest.raises(openai.APIStatusError) as info:
        client.chat.completions.create(model=model, messages=[{"role": "user", "content": "hi"}], stream=stream)
    err = info.value
    assert isinstance(err, openai.InternalServerError), type(err)  # the SDK's class for every 5xx
    assert_error(err, validate, status, code, "upstream_error")
    assert err.response.headers.get("retry-after") == retry_after


def test_upstream_400_is_bad_request(client: openai.OpenAI, validate: SpecValidator) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model="rejects-400", messages=[{"role": "user", "content": "hi"}])
    assert_error(info.value, validate, 400, "upstream_rejected_request", "invalid_request_error")


def test_stream_error_before_first_content_is_an_http_error(client: openai.OpenAI, validate: SpecValidator) -> None:
    with pytest.raises(openai.InternalServerError) as info:
        client.chat.completions.create(model="first-error", messages=[{"role": "user", "content": "hi"}], stream=True)
    assert_error(info.value, validate, 502, "upstream_stream_error", "upstream_error")


def test_chat_stream_broken_midway_raises_from_iteration(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(
        model="cut-after-2", messages=[{"role": "user", "content": "hi"}], stream=True
    )
    received: list[ChatCompletionChunk] = []
    with pytest.raises(openai.APIError) as info:
        for chunk in stream:
            received.append(chunk)
    err = info.value
    # The HTTP status was 200: this is the SDK's stream-error path (an SSE event with an `error`
    # key), a plain APIError carrying that error object, not an APIStatusError.
    assert not isinstance(err, openai.APIStatusError)
    assert isinstance(err.body, dict)
    assert err.body["code"] == err.code == "upstream_connection_broken"
    assert err.type == "upstream_error"
    assert err.message == err.body["message"]
    # The content before the break reached the client.
    assert "".join(c.choices[0].delta.content or "" for c in received if c.choices) == "tok0 tok1 "


def test_completion_stream_broken_midway_raises_from_iteration(client: openai.OpenAI) -> None:
    stream = client.completions.create(model="cut-after-2", prompt="hi", stream=True)
    received: list[Completion] = []
    with pytest.raises(openai.APIError) as info:
        for chunk in stream:
            received.append(chunk)
    assert not isinstance(info.value, openai.APIStatusError)
    assert info.value.code == "upstream_connection_broken"
    assert "".join(c.choices[0].text for c in received if c.choices) == "tok0 tok1 "


def test_broken_stream_raw_events(client: openai.OpenAI, validate: SpecValidator) -> None:
    status, _, events = raw_stream(
        client.chat.completions.with_streaming_response.create,
        model="cut-after-2",
        messages=[{"role": "user", "content": "hi"}],
    )
    assert status == 200
    assert "[DONE]" not in events, "a broken stream never ends cleanly"
    last = json.loads(events[-1])
    validate(last, "ErrorResponse")
    assert last["error"]["code"] == "upstream_connection_broken"
    # Before the error event, a closing chunk says the choice ended in error: `finish_reason:
    # "error"` is Tollgate's documented extension of the spec's enum (docs/routing.md), so it is
    # checked by value and the rest of the chunk against the spec.
    closing = json.loads(events[-2])
    assert closing["choices"][0]["finish_reason"] == "error"
    closing["choices"][0]["finish_reason"] = "stop"
    validate(closing, "CreateChatCompletionStreamResponse")
    for event in events[:-2]:
        chunk = json.loads(event)
        assert all(c.get("finish_reason") != "error" for c in chunk["choices"])
        validate(chunk, "CreateChatCompletionStreamResponse")


# --------------------------------------------------------------------------------------------
# The harness
# --------------------------------------------------------------------------------------------


def test_the_gateway_runs_on_the_backend_under_test(stack: Stack) -> None:
    """TOLLGATE_TEST_POSTGRES really switches the gateway's store (readyz names its backend)."""
    expected = "postgres" if stack.database_url.startswith("postgres") else "sqlite"
    ready = httpx2.get(f"{stack.gateway.url}/readyz", timeout=10)
    assert ready.status_code == 200
    assert ready.json() == {"status": "ready", "store": expected}


# --------------------------------------------------------------------------------------------
# The validator itself
# --------------------------------------------------------------------------------------------


def test_the_spec_validator_rejects_what_the_spec_rejects(validate: SpecValidator) -> None:
    """Guards the other tests against a vacuous validator (e.g. a `$ref` that resolved to `{}`)."""
    chunk = {
        "id": "c",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "m",
        "choices": [{"index": 0, "delta": {"content": "x"}, "finish_reason": None}],
        "usage": None,
    }
    validate(chunk, "CreateChatCompletionStreamResponse")  # `nullable: true` fields accept null
    with pytest.raises(AssertionError, match="finish_reason"):
        validate({**chunk, "choices": [{**chunk["choices"][0], "finish_reason": "bogus"}]}, "CreateChatCompletionStreamResponse")
    with pytest.raises(AssertionError, match="usage"):
        validate({**chunk, "usage": {"prompt_tokens": "seven"}}, "CreateChatCompletionStreamResponse")
    with pytest.raises(AssertionError, match="'choices' is a required property"):
        validate({k: v for k, v in chunk.items() if k != "choices"}, "CreateChatCompletionStreamResponse")
    with pytest.raises(AssertionError, match="'param' is a required property"):
        validate({"error": {"message": "m", "type": "t", "code": None}}, "ErrorResponse")
    with pytest.raises(AssertionError):
        validate({"object": "list", "data": [{"id": "m", "object": "model"}]}, "ListModelsResponse")
