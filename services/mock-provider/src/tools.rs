//! Scripted tool calls (`tool_call=NAME`): the call every wire format answers with, and its
//! arguments streamed in fragments, so that a gateway must reassemble them.

/// The arguments of every scripted call (compact JSON).
pub const ARGUMENTS: &str = r#"{"location":"Paris","unit":"celsius"}"#;

/// [`ARGUMENTS`] cut into fragments of at most 8 bytes, as providers stream them.
pub fn fragments() -> impl Iterator<Item = &'static str> {
    let bytes = ARGUMENTS.as_bytes();
    (0..bytes.len())
        .step_by(8)
        .filter_map(move |i| ARGUMENTS.get(i..(i + 8).min(bytes.len())))
}

/// The answer of a request in JSON mode (OpenAI `response_format`, Gemini
/// `responseMimeType: application/json`; non-streaming): `{"answer": <text>}`.
pub fn json_answer(text: &str) -> String {
    serde_json::json!({ "answer": text }).to_string()
}

/// The id of the scripted call of request `n`.
pub fn call_id(prefix: &str, n: u64) -> String {
    format!("{prefix}{n:08}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fragments_reassemble_to_the_arguments() {
        assert!(fragments().count() > 3);
        assert_eq!(fragments().collect::<String>(), ARGUMENTS);
        let v: serde_json::Value = serde_json::from_str(ARGUMENTS).expect("json");
        assert_eq!(v["location"], "Paris");
    }
}
