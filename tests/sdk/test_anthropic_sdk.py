"""The official `anthropic` Python SDK against the gateway's Anthropic-compatible entry point
(`/v1/messages`), served by providers of every wire family, and the official `openai` SDK against
the Anthropic and Gemini families (the mock speaks each provider's format)."""
from __future__ import annotations

import json

import anthropic
import openai
import pytest

FAMILIES = ["short-test", "claude-test", "gemini-test", "cohere-test", "bedrock-test"]
TOOLS = [
    {
        "name": "get_weather",
        "description": "Current weather for a city",
        "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    }
]


@pytest.mark.parametrize("model", FAMILIES)
def test_messages_create(anthropic_client: anthropic.Anthropic, model: str) -> None:
    message = anthropic_client.messages.create(
        model=model,
        max_tokens=64,
        system="be brief",
        messages=[{"role": "user", "content": "say hello please"}],
    )
    assert message.type == "message"
    assert message.role == "assistant"
    assert message.stop_reason == "end_turn"
    [block] = message.content
    assert block.type == "text"
    assert len(block.text.split()) == 6
    assert message.usage.input_tokens > 0
    assert message.usage.output_tokens > 0


@pytest.mark.parametrize("model", FAMILIES)
def test_messages_stream(anthropic_client: anthropic.Anthropic, model: str) -> None:
    with anthropic_client.messages.stream(
        model=model,
        max_tokens=64,
        messages=[{"role": "user", "content": "say hello please"}],
    ) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert len(text.split()) == 6
    assert final.content[0].text == text
    assert final.stop_reason == "end_turn"
    assert final.usage.output_tokens > 0


def test_messages_with_tools_and_a_tool_result_turn(anthropic_client: anthropic.Anthropic) -> None:
    # The mock answers with text; what is proven here is that a tool conversation (definitions,
    # a tool_use turn and its tool_result) is accepted and translated for the provider.
    message = anthropic_client.messages.create(
        model="short-test",
        max_tokens=64,
        tools=TOOLS,
        tool_choice={"type": "auto"},
        messages=[
            {"role": "user", "content": "weather in Paris?"},
            {
                "role": "assistant",
                "content": [{"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}}],
            },
            {
                "role": "user",
                "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "18 C, cloudy"}],
            },
        ],
    )
    assert message.content[0].type == "text"
    with anthropic_client.messages.stream(
        model="claude-test", max_tokens=64, tools=TOOLS, messages=[{"role": "user", "content": "weather in Paris?"}]
    ) as stream:
        assert stream.get_final_message().stop_reason == "end_turn"


def test_count_tokens(anthropic_client: anthropic.Anthropic) -> None:
    counted = anthropic_client.messages.count_tokens(
        model="short-test", messages=[{"role": "user", "content": "say hello please"}]
    )
    assert counted.input_tokens > 0


def test_errors_are_anthropic_errors(anthropic_client: anthropic.Anthropic) -> None:
    with pytest.raises(anthropic.NotFoundError) as info:
        anthropic_client.messages.create(model="nope", max_tokens=8, messages=[{"role": "user", "content": "x"}])
    assert info.value.body["error"]["type"] == "not_found_error"
    bad = anthropic.Anthropic(base_url=str(anthropic_client.base_url), api_key="tg-live-nope", max_retries=0)
    with pytest.raises(anthropic.AuthenticationError):
        bad.messages.create(model="short-test", max_tokens=8, messages=[{"role": "user", "content": "x"}])


@pytest.mark.parametrize("model", ["claude-test", "gemini-test", "cohere-test", "bedrock-test"])
def test_openai_sdk_against_other_families(client: openai.OpenAI, model: str) -> None:
    completion = client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": "say hello please"}], max_tokens=64
    )
    text = completion.choices[0].message.content
    assert len(text.split()) == 6
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage.completion_tokens == 6
    chunks = list(
        client.chat.completions.create(
            model=model,
            messages=[{"role": "user", "content": "say hello please"}],
            max_tokens=64,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    streamed = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert streamed == text
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 6
    assert json.loads(chunks[-1].model_dump_json())["choices"] == []


TOOL_FAMILIES = ["openai-tools", "claude-tools", "gemini-tools", "cohere-tools", "bedrock-tools"]
WEATHER = {"location": "Paris", "unit": "celsius"}


@pytest.mark.parametrize("model", TOOL_FAMILIES)
def test_anthropic_sdk_tool_use_round_trip(anthropic_client: anthropic.Anthropic, model: str) -> None:
    question = [{"role": "user", "content": "weather in Paris?"}]
    first = anthropic_client.messages.create(model=model, max_tokens=64, tools=TOOLS, messages=question)
    assert first.stop_reason == "tool_use"
    [call] = [b for b in first.content if b.type == "tool_use"]
    assert call.name == "get_weather" and call.input == WEATHER
    # Streamed, the SDK reassembles the input from its partial JSON deltas.
    with anthropic_client.messages.stream(model=model, max_tokens=64, tools=TOOLS, messages=question) as stream:
        streamed = stream.get_final_message()
    [streamed_call] = [b for b in streamed.content if b.type == "tool_use"]
    assert streamed_call.input == WEATHER
    answer = anthropic_client.messages.create(
        model=model,
        max_tokens=64,
        tools=TOOLS,
        messages=question
        + [
            {"role": "assistant", "content": [call.model_dump()]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": call.id, "content": "18 C"}]},
        ],
    )
    assert answer.stop_reason == "end_turn"
    assert len(answer.content[0].text.split()) == 6


@pytest.mark.parametrize("model", TOOL_FAMILIES)
def test_openai_sdk_tool_call_round_trip(client: openai.OpenAI, model: str) -> None:
    tools = [{"type": "function", "function": {"name": t["name"], "description": t["description"],
              "parameters": t["input_schema"]}} for t in TOOLS]
    question = [{"role": "user", "content": "weather in Paris?"}]
    first = client.chat.completions.create(model=model, messages=question, tools=tools, max_tokens=64)
    assert first.choices[0].finish_reason == "tool_calls"
    [call] = first.choices[0].message.tool_calls
    assert call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == WEATHER
    arguments = ""
    for chunk in client.chat.completions.create(model=model, messages=question, tools=tools, max_tokens=64, stream=True):
        for delta in (chunk.choices[0].delta.tool_calls or []) if chunk.choices else []:
            arguments += delta.function.arguments or ""
    assert json.loads(arguments) == WEATHER
    answer = client.chat.completions.create(
        model=model,
        tools=tools,
        max_tokens=64,
        messages=question
        + [
            first.choices[0].message.model_dump(exclude_none=True),
            {"role": "tool", "tool_call_id": call.id, "content": "18 C"},
        ],
    )
    assert answer.choices[0].finish_reason == "stop"
    assert len(answer.choices[0].message.content.split()) == 6
