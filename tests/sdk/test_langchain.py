"""LangChain's `ChatOpenAI` (the `langchain-openai` package) pointed at the gateway: `invoke`,
`stream` (with the usage chunk LangChain asks for), and a tool call round trip through the OpenAI
family and a translated one (Anthropic)."""

from __future__ import annotations

import pytest
from langchain_core.messages import HumanMessage, ToolMessage
from langchain_core.tools import tool
from langchain_openai import ChatOpenAI

from conftest import OPERATOR_KEY, Stack

WEATHER = {"location": "Paris", "unit": "celsius"}


@tool
def get_weather(location: str, unit: str) -> str:
    """Current weather for a city, in celsius or fahrenheit."""
    return "18 C" if unit == "celsius" else "64 F"


def chat(stack: Stack, model: str) -> ChatOpenAI:
    # Chat Completions (not LangChain's Responses API mode), with the usage chunk on streams.
    return ChatOpenAI(model=model, base_url=stack.base_url, api_key=OPERATOR_KEY, max_retries=0, max_tokens=16,
                      stream_usage=True, use_responses_api=False)


def test_invoke(stack: Stack) -> None:
    answer = chat(stack, "gpt-test").invoke("Say something.")
    assert isinstance(answer.content, str) and answer.content.strip()
    usage = answer.usage_metadata
    assert usage is not None and usage["input_tokens"] > 0 and usage["output_tokens"] > 0
    assert usage["total_tokens"] == usage["input_tokens"] + usage["output_tokens"]
    assert answer.response_metadata["finish_reason"] in ("stop", "length")


def test_stream(stack: Stack) -> None:
    chunks = list(chat(stack, "gpt-test").stream("Say something."))
    assert len(chunks) > 2, chunks
    text = "".join(c.content for c in chunks if isinstance(c.content, str))
    assert text.strip()
    # LangChain asks for the usage chunk (stream_options.include_usage) and attaches it.
    usage = [c.usage_metadata for c in chunks if c.usage_metadata]
    assert len(usage) == 1 and usage[0]["output_tokens"] > 0, usage
    invoked = chat(stack, "gpt-test").invoke("Say something.")
    assert invoked.usage_metadata["input_tokens"] == usage[0]["input_tokens"]


@pytest.mark.parametrize("model", ["openai-tools", "claude-tools"])
def test_tool_call_round_trip(stack: Stack, model: str) -> None:
    llm = chat(stack, model).bind_tools([get_weather])
    question = HumanMessage("What is the weather in Paris?")
    first = llm.invoke([question])
    assert first.response_metadata["finish_reason"] == "tool_calls"
    [call] = first.tool_calls
    assert call["name"] == "get_weather"
    assert call["args"] == WEATHER
    streamed = None
    for chunk in llm.stream([question]):
        streamed = chunk if streamed is None else streamed + chunk
    assert streamed is not None and [c["args"] for c in streamed.tool_calls] == [WEATHER]
    result = ToolMessage(get_weather.invoke(call["args"]), tool_call_id=call["id"])
    answer = llm.invoke([question, first, result])
    assert answer.response_metadata["finish_reason"] == "stop"
    assert not answer.tool_calls and answer.content.strip()
