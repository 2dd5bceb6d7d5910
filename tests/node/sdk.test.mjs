// The official OpenAI Node SDK (npm `openai`) against a running gateway: a chat completion and a
// stream. tests/sdk/test_node_sdk.py starts the gateway and runs this with `node --test`, naming
// it in TOLLGATE_BASE_URL and the key in TOLLGATE_KEY.
import assert from "node:assert/strict";
import { test } from "node:test";
import OpenAI from "openai";

const client = new OpenAI({
  baseURL: process.env.TOLLGATE_BASE_URL,
  apiKey: process.env.TOLLGATE_KEY,
  maxRetries: 0,
});
const messages = [{ role: "user", content: "Say something." }];

test("chat completion", async () => {
  const completion = await client.chat.completions.create({ model: "gpt-test", messages, max_tokens: 12 });
  assert.equal(completion.object, "chat.completion");
  assert.ok(completion.id);
  const [choice] = completion.choices;
  assert.equal(choice.message.role, "assistant");
  assert.ok(choice.message.content.trim().length > 0);
  assert.ok(["stop", "length"].includes(choice.finish_reason));
  const usage = completion.usage;
  assert.ok(usage.prompt_tokens > 0 && usage.completion_tokens > 0);
  assert.equal(usage.total_tokens, usage.prompt_tokens + usage.completion_tokens);
});

test("chat stream with usage", async () => {
  const stream = await client.chat.completions.create({
    model: "gpt-test",
    messages,
    max_tokens: 12,
    stream: true,
    stream_options: { include_usage: true },
  });
  let text = "";
  let usage = null;
  let chunks = 0;
  for await (const chunk of stream) {
    chunks += 1;
    assert.equal(chunk.object, "chat.completion.chunk");
    text += chunk.choices[0]?.delta?.content ?? "";
    if (chunk.usage) usage = chunk.usage;
  }
  assert.ok(chunks > 2);
  assert.ok(text.trim().length > 0);
  assert.ok(usage && usage.completion_tokens > 0);
});

test("errors are the SDK's typed errors", async () => {
  await assert.rejects(
    client.chat.completions.create({ model: "no-such-model", messages }),
    (e) => e instanceof OpenAI.NotFoundError && e.status === 404,
  );
});
