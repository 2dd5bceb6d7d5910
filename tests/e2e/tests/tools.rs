//! Multi-turn tool conversations (call → result → answer) through every wire family, plain and
//! streamed, on `/v1/chat/completions` and on the Anthropic-compatible `/v1/messages`. The mock
//! answers `tool_call=get_weather` deployments with a call until the conversation ends with the
//! tool's result.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use reqwest::Method;
use serde_json::{json, Value};
use tollgate_e2e::{config, header, sse_data, Gateway, Mock, KEY};

const FAMILIES: [&str; 5] = ["openai", "anthropic", "gemini", "cohere", "bedrock"];

fn tools_config(mock: &Mock) -> String {
    let extra = format!(
        r#"
[providers.claude]
preset = "mock-anthropic"
base_url = "{url}/v1"

[providers.gem]
preset = "mock-gemini"
base_url = "{url}/v1beta"

[providers.co]
preset = "mock-cohere"
base_url = "{url}/v2"

[providers.aws]
preset = "mock-bedrock"
base_url = "{url}"
aws_region = "us-east-1"

[deployments.bedrock]
provider = "aws"
model = "anthropic.claude-mock-v1:0@tool_call=get_weather,tokens=4"

[models.bedrock]
deployments = ["bedrock"]

[deployments.cohere]
provider = "co"
model = "cohere-mock@tool_call=get_weather,tokens=4"

[models.cohere]
deployments = ["cohere"]

[deployments.openai]
provider = "mock"
model = "mock-gpt@tool_call=get_weather,tokens=4"

[deployments.anthropic]
provider = "claude"
model = "claude-mock@tool_call=get_weather,tokens=4"

[deployments.gemini]
provider = "gem"
model = "gemini-mock@tool_call=get_weather,tokens=4"

[models.openai]
deployments = ["openai"]

[models.anthropic]
deployments = ["anthropic"]

[models.gemini]
deployments = ["gemini"]
"#,
        url = mock.url
    );
    config(&mock.url, &extra)
}

fn weather_tool() -> Value {
    json!([{"type": "function", "function": {"name": "get_weather", "description": "Weather now",
        "parameters": {"type": "object", "properties": {"location": {"type": "string"},
        "unit": {"type": "string"}}, "required": ["location"]}}}])
}

fn question(model: &str) -> Value {
    json!({"model": model, "tools": weather_tool(), "max_tokens": 50,
           "messages": [{"role": "user", "content": "weather in Paris?"}]})
}

fn expected_args() -> Value {
    json!({"location": "Paris", "unit": "celsius"})
}

#[tokio::test]
async fn a_tool_call_and_its_result_round_trip_through_every_family() {
    let mock = Mock::start();
    let gw = Gateway::start(&tools_config(&mock)).await;
    for family in FAMILIES {
        // Turn 1: the model calls the tool.
        let res = gw.chat(question(family)).await;
        assert_eq!(res.status(), 200, "{family}");
        let body: Value = res.json().await.unwrap();
        let choice = &body["choices"][0];
        assert_eq!(choice["finish_reason"], "tool_calls", "{family}: {body}");
        let call = &choice["message"]["tool_calls"][0];
        assert_eq!(call["type"], "function", "{family}");
        assert_eq!(call["function"]["name"], "get_weather", "{family}");
        let args: Value =
            serde_json::from_str(call["function"]["arguments"].as_str().unwrap()).unwrap();
        assert_eq!(args, expected_args(), "{family}");
        let call_id = call["id"].as_str().unwrap().to_owned();
        assert!(!call_id.is_empty());

        // Turn 2: the result goes back; the model answers with text.
        let mut follow = question(family);
        follow["messages"] = json!([
            {"role": "user", "content": "weather in Paris?"},
            choice["message"].clone(),
            {"role": "tool", "tool_call_id": call_id, "content": "{\"temperature\": 18}"}
        ]);
        let res = gw.chat(follow).await;
        assert_eq!(res.status(), 200, "{family}");
        let body: Value = res.json().await.unwrap();
        assert_eq!(
            body["choices"][0]["finish_reason"], "stop",
            "{family}: {body}"
        );
        assert_eq!(
            body["choices"][0]["message"]["content"]
                .as_str()
                .unwrap()
                .split_whitespace()
                .count(),
            4,
            "{family}"
        );
        // What the provider received carries the call and its result in its own format.
        let sent = mock.last_body().await;
        match family {
            "anthropic" => {
                let turns = sent["messages"].as_array().unwrap();
                assert_eq!(turns[1]["content"][0]["type"], "tool_use", "{sent}");
                assert_eq!(turns[2]["content"][0]["type"], "tool_result", "{sent}");
                assert_eq!(turns[2]["content"][0]["tool_use_id"], call_id.as_str());
                assert_eq!(sent["tools"][0]["name"], "get_weather");
            }
            "gemini" => {
                let contents = sent["contents"].as_array().unwrap();
                assert_eq!(
                    contents[1]["parts"][0]["functionCall"]["name"], "get_weather",
                    "{sent}"
                );
                let response = &contents[2]["parts"][0]["functionResponse"];
                assert_eq!(response["name"], "get_weather", "{sent}");
                assert_eq!(response["response"]["temperature"], 18);
                assert_eq!(
                    sent["tools"][0]["functionDeclarations"][0]["name"],
                    "get_weather"
                );
            }
            "bedrock" => {
                let turns = sent["messages"].as_array().unwrap();
                assert_eq!(
                    turns[1]["content"][0]["toolUse"]["name"], "get_weather",
                    "{sent}"
                );
                let result = &turns[2]["content"][0]["toolResult"];
                assert_eq!(result["toolUseId"], call_id.as_str(), "{sent}");
                assert_eq!(result["content"][0]["json"]["temperature"], 18);
                assert_eq!(
                    sent["toolConfig"]["tools"][0]["toolSpec"]["name"],
                    "get_weather"
                );
            }
            "cohere" => {
                assert_eq!(
                    sent["messages"][1]["tool_calls"][0]["function"]["name"], "get_weather",
                    "{sent}"
                );
                assert_eq!(sent["messages"][2]["role"], "tool", "{sent}");
                assert_eq!(sent["messages"][2]["tool_call_id"], call_id.as_str());
            }
            _ => assert_eq!(sent["messages"][2]["role"], "tool", "{sent}"),
        }
    }
}

#[tokio::test]
async fn streamed_tool_call_arguments_arrive_whole_from_every_family() {
    let mock = Mock::start();
    let gw = Gateway::start(&tools_config(&mock)).await;
    for family in FAMILIES {
        let mut q = question(family);
        q["stream"] = json!(true);
        let res = gw.chat(q).await;
        assert_eq!(res.status(), 200, "{family}");
        let events = sse_data(&res.text().await.unwrap());
        assert_eq!(events.last().unwrap(), "[DONE]", "{family}");
        let chunks: Vec<Value> = events[..events.len() - 1]
            .iter()
            .map(|e| serde_json::from_str(e).unwrap())
            .collect();
        let mut name = String::new();
        let mut args = String::new();
        let mut finish = Value::Null;
        for c in &chunks {
            for call in c["choices"][0]["delta"]["tool_calls"]
                .as_array()
                .into_iter()
                .flatten()
            {
                assert_eq!(call["index"], 0, "{family}: {c}");
                name.push_str(call["function"]["name"].as_str().unwrap_or_default());
                args.push_str(call["function"]["arguments"].as_str().unwrap_or_default());
            }
            if !c["choices"][0]["finish_reason"].is_null() {
                finish = c["choices"][0]["finish_reason"].clone();
            }
        }
        assert_eq!(name, "get_weather", "{family}");
        let args: Value = serde_json::from_str(&args).unwrap();
        assert_eq!(args, expected_args(), "{family}");
        assert_eq!(finish, "tool_calls", "{family}");
    }
}

#[tokio::test]
async fn the_messages_endpoint_speaks_tool_use_with_any_family() {
    let mock = Mock::start();
    let gw = Gateway::start(&tools_config(&mock)).await;
    for family in FAMILIES {
        let ask = json!({"model": family, "max_tokens": 50,
            "tools": [{"name": "get_weather", "description": "Weather now",
                       "input_schema": {"type": "object", "properties": {"location": {"type": "string"}}}}],
            "messages": [{"role": "user", "content": "weather in Paris?"}]});
        let res = gw
            .anonymous(Method::POST, "/v1/messages")
            .header("x-api-key", KEY)
            .json(&ask)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200, "{family}");
        let msg: Value = res.json().await.unwrap();
        assert_eq!(msg["stop_reason"], "tool_use", "{family}: {msg}");
        let tool_use = msg["content"]
            .as_array()
            .unwrap()
            .iter()
            .find(|b| b["type"] == "tool_use")
            .unwrap()
            .clone();
        assert_eq!(tool_use["name"], "get_weather");
        assert_eq!(tool_use["input"], expected_args(), "{family}");

        let mut answer = ask.clone();
        answer["messages"] = json!([
            {"role": "user", "content": "weather in Paris?"},
            {"role": "assistant", "content": [tool_use]},
            {"role": "user", "content": [{"type": "tool_result",
                "tool_use_id": msg["content"].as_array().unwrap().iter()
                    .find(|b| b["type"] == "tool_use").unwrap()["id"], "content": "18 C"}]}
        ]);
        let res = gw
            .anonymous(Method::POST, "/v1/messages")
            .header("x-api-key", KEY)
            .json(&answer)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200, "{family}");
        assert_eq!(header(&res, "x-tollgate-deployment"), family);
        let msg: Value = res.json().await.unwrap();
        assert_eq!(msg["stop_reason"], "end_turn", "{family}: {msg}");
        assert_eq!(msg["content"][0]["type"], "text");
    }
}

/// A 1×1 PNG, as a data URL.
const PIXEL: &str = "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==";

#[tokio::test]
async fn images_stop_sequences_and_json_output_reach_every_family_in_its_own_terms() {
    let mock = Mock::start();
    let extra = tools_config(&mock).replace("tool_call=get_weather,", "");
    let gw = Gateway::start(&extra).await;
    let schema = json!({"type": "json_schema", "json_schema": {"name": "answer", "schema": {
        "type": "object", "properties": {"answer": {"type": "string"}}, "required": ["answer"]}}});
    for family in FAMILIES {
        // An image part and stop sequences.
        let res = gw
            .chat(
                json!({"model": family, "max_tokens": 50, "stop": ["tok9"], "messages": [
                {"role": "user", "content": [{"type": "text", "text": "what is this?"},
                    {"type": "image_url", "image_url": {"url": PIXEL}}]}]}),
            )
            .await;
        assert_eq!(res.status(), 200, "{family}");
        let sent = mock.last_body().await;
        let data = PIXEL.split_once(",").unwrap().1;
        match family {
            "anthropic" => {
                let image = &sent["messages"][0]["content"][1];
                assert_eq!(image["type"], "image", "{sent}");
                assert_eq!(image["source"]["type"], "base64");
                assert_eq!(image["source"]["media_type"], "image/png");
                assert_eq!(image["source"]["data"], data);
                assert_eq!(sent["stop_sequences"], json!(["tok9"]));
            }
            "gemini" => {
                let image = &sent["contents"][0]["parts"][1]["inlineData"];
                assert_eq!(image["mimeType"], "image/png", "{sent}");
                assert_eq!(image["data"], data);
                assert_eq!(sent["generationConfig"]["stopSequences"], json!(["tok9"]));
            }
            "bedrock" => {
                let image = &sent["messages"][0]["content"][1]["image"];
                assert_eq!(image["format"], "png", "{sent}");
                assert_eq!(image["source"]["bytes"], data);
                assert_eq!(sent["inferenceConfig"]["stopSequences"], json!(["tok9"]));
            }
            "cohere" => {
                let image = &sent["messages"][0]["content"][1];
                assert_eq!(image["type"], "image_url", "{sent}");
                assert_eq!(image["image_url"]["url"], PIXEL);
                assert_eq!(sent["stop_sequences"], json!(["tok9"]));
            }
            _ => {
                assert_eq!(sent["messages"][0]["content"][1]["image_url"]["url"], PIXEL);
                assert_eq!(sent["stop"], json!(["tok9"]));
            }
        }

        // Structured output: the answer is the JSON the schema asks for. Converse has no JSON
        // mode: Bedrock refuses it (400 naming the parameter) rather than ignoring it.
        if family == "bedrock" {
            let res = gw
                .chat(
                    json!({"model": family, "max_tokens": 50, "response_format": schema,
                    "messages": [{"role": "user", "content": "answer in JSON"}]}),
                )
                .await;
            assert_eq!(res.status(), 400);
            let err: Value = res.json().await.unwrap();
            assert!(
                err["error"]["message"]
                    .as_str()
                    .unwrap()
                    .contains("response_format"),
                "{err}"
            );
            continue;
        }
        let res = gw
            .chat(
                json!({"model": family, "max_tokens": 50, "response_format": schema,
                "messages": [{"role": "user", "content": "answer in JSON"}]}),
            )
            .await;
        assert_eq!(res.status(), 200, "{family}");
        let body: Value = res.json().await.unwrap();
        assert_eq!(
            body["choices"][0]["finish_reason"], "stop",
            "{family}: {body}"
        );
        let content: Value =
            serde_json::from_str(body["choices"][0]["message"]["content"].as_str().unwrap())
                .unwrap();
        assert!(content.is_object(), "{family}: {content}");
        let sent = mock.last_body().await;
        match family {
            // Anthropic has no JSON mode: a forced tool whose input schema is the schema.
            "anthropic" => {
                assert_eq!(sent["tools"][0]["name"], "json_output", "{sent}");
                assert_eq!(
                    sent["tools"][0]["input_schema"]["required"],
                    json!(["answer"])
                );
                assert_eq!(sent["tool_choice"]["name"], "json_output");
                assert_eq!(content, expected_args());
            }
            "gemini" => {
                assert_eq!(
                    sent["generationConfig"]["responseMimeType"],
                    "application/json"
                );
                assert_eq!(
                    sent["generationConfig"]["responseSchema"]["required"],
                    json!(["answer"]),
                    "{sent}"
                );
                assert!(content["answer"].is_string());
            }
            "cohere" => {
                assert_eq!(sent["response_format"]["type"], "json_object", "{sent}");
                assert_eq!(
                    sent["response_format"]["json_schema"]["required"],
                    json!(["answer"])
                );
                assert!(content["answer"].is_string());
            }
            _ => {
                assert_eq!(sent["response_format"], schema);
                assert!(content["answer"].is_string());
            }
        }
    }
}
