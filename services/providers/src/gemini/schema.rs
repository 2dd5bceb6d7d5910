//! JSON Schema (as OpenAI tools and `json_schema` carry it) → Gemini's `Schema`, the OpenAPI
//! 3.0 subset that `functionDeclarations[].parameters` and `generationConfig.responseSchema`
//! accept. Gemini answers 400 ("Unknown name …") to any other key, so the translation keeps an
//! allow-list ([`KEPT`]) and rewrites what has a Gemini spelling:
//!
//! - `$ref` to `#/$defs/…` or `#/definitions/…` is inlined (recursive schemas are refused);
//! - `type: [t, "null"]` becomes `type: t, nullable: true` (several types: `anyOf`);
//! - `oneOf` becomes `anyOf`; `null` members of `anyOf` become `nullable: true`, and a single
//!   remaining member is merged into its parent; a one-member `allOf` is merged too;
//! - a string `const` becomes a one-value `enum`;
//! - `format` is kept only where Gemini knows it (`date-time`, `enum`, `int32`, `int64`, `float`,
//!   `double`);
//! - an empty `properties` object is dropped (Gemini wants it non-empty for `OBJECT`).
//!
//! Dropped (no Gemini equivalent): `$schema`, `$id`, `$defs`/`definitions` (after inlining),
//! `$comment`, `additionalProperties`, `unevaluatedProperties`, `patternProperties`,
//! `propertyNames`, `dependentRequired`, `if`/`then`/`else`, `not`, `contains`, `uniqueItems`,
//! `exclusiveMinimum`/`exclusiveMaximum`, `multipleOf`, `examples`, `readOnly`/`writeOnly`,
//! `deprecated`, `strict`, tuple-form `items`, other `format`s, and any other key not in
//! [`KEPT`]. These are constraints the model is then not told about, not data: the schema still
//! describes the same shape, only more loosely.

use std::cell::Cell;

use serde_json::{Map, Value};

#[allow(clippy::wildcard_imports)]
use crate::translate::*;

/// The `Schema` fields Gemini documents, copied as they are (the nested ones are translated).
const KEPT: &[&str] = &[
    "type",
    "format",
    "title",
    "description",
    "nullable",
    "enum",
    "maxItems",
    "minItems",
    "properties",
    "required",
    "minProperties",
    "maxProperties",
    "minLength",
    "maxLength",
    "pattern",
    "example",
    "anyOf",
    "propertyOrdering",
    "default",
    "items",
    "minimum",
    "maximum",
];
/// The `format`s Gemini accepts.
const FORMATS: &[&str] = &["date-time", "enum", "int32", "int64", "float", "double"];
/// How deep schemas (and inlined references) may nest.
const MAX_DEPTH: usize = 32;
/// How many schema nodes one translation may produce (inlined references can multiply them).
const MAX_NODES: usize = 10_000;

/// Translates `schema` (found at `param`, for error messages).
pub(super) fn to_gemini_schema(schema: &Value, param: &str) -> Result<Value, TranslateError> {
    let defs = ["$defs", "definitions"]
        .iter()
        .filter_map(|k| schema.get(*k).and_then(Value::as_object))
        .fold(Map::new(), |mut all, d| {
            all.extend(d.iter().map(|(k, v)| (k.clone(), v.clone())));
            all
        });
    let translator = Translator {
        defs,
        param,
        nodes: Cell::new(0),
    };
    translator.schema(schema, 0)
}

struct Translator<'a> {
    defs: Map<String, Value>,
    param: &'a str,
    nodes: Cell<usize>,
}

impl Translator<'_> {
    fn schema(&self, schema: &Value, depth: usize) -> Result<Value, TranslateError> {
        self.nodes.set(self.nodes.get() + 1);
        if depth > MAX_DEPTH || self.nodes.get() > MAX_NODES {
            return Err(invalid(
                self.param,
                "the schema is too large, nests too deeply or refers to itself",
            ));
        }
        let Some(s) = schema.as_object() else {
            // `true`/`false` schemas and garbage: an unconstrained schema.
            return Ok(Value::Object(Map::new()));
        };
        let mut out = Map::new();
        if let Some(reference) = s.get("$ref") {
            let target = self.definition(reference)?;
            merge(&mut out, self.schema(target, depth + 1)?);
        }
        if let Some(Value::Array(all)) = s.get("allOf") {
            if let [only] = all.as_slice() {
                merge(&mut out, self.schema(only, depth + 1)?);
            }
        }
        for (key, value) in s {
            match key.as_str() {
                "type" => self.kind(value, &mut out),
                "properties" => {
                    let Some(props) = value.as_object().filter(|p| !p.is_empty()) else {
                        continue;
                    };
                    let mut translated = Map::new();
                    for (name, prop) in props {
                        translated.insert(name.clone(), self.schema(prop, depth + 1)?);
                    }
                    out.insert(key.clone(), Value::Object(translated));
                }
                "items" if value.is_object() => {
                    out.insert(key.clone(), self.schema(value, depth + 1)?);
                }
                "anyOf" | "oneOf" => self.any_of(value, depth, &mut out)?,
                "const" if value.is_string() => {
                    out.insert("enum".into(), Value::Array(vec![value.clone()]));
                }
                "format" if value.as_str().is_some_and(|f| FORMATS.contains(&f)) => {
                    out.insert(key.clone(), value.clone());
                }
                // Handled above, or not expressible.
                "items" | "$ref" | "allOf" | "const" | "format" => {}
                k if KEPT.contains(&k) => {
                    out.insert(key.clone(), value.clone());
                }
                _ => {}
            }
        }
        Ok(Value::Object(out))
    }

    /// The schema a local `$ref` (to `#/$defs/…` or `#/definitions/…`) names.
    fn definition(&self, reference: &Value) -> Result<&Value, TranslateError> {
        reference
            .as_str()
            .and_then(|r| {
                r.strip_prefix("#/$defs/")
                    .or_else(|| r.strip_prefix("#/definitions/"))
            })
            .and_then(|name| self.defs.get(name))
            .ok_or_else(|| {
                invalid(
                    self.param,
                    "only local $ref to #/$defs or #/definitions can be sent to Gemini",
                )
            })
    }

    /// `type`, a name or a list of names (with `"null"` meaning `nullable`).
    fn kind(&self, value: &Value, out: &mut Map<String, Value>) {
        let Value::Array(kinds) = value else {
            out.insert("type".into(), value.clone());
            return;
        };
        let mut named: Vec<&Value> = kinds
            .iter()
            .filter(|k| k.as_str() != Some("null"))
            .collect();
        if named.len() < kinds.len() {
            out.insert("nullable".into(), Value::Bool(true));
        }
        match named.as_mut_slice() {
            [] => {
                out.insert("type".into(), "null".into());
            }
            [one] => {
                out.insert("type".into(), (*one).clone());
            }
            many => {
                let alternatives = many.iter().map(|k| object("type", (*k).clone())).collect();
                out.insert("anyOf".into(), Value::Array(alternatives));
            }
        }
    }

    /// `anyOf`/`oneOf`: `null` members become `nullable`; a single other member is merged.
    fn any_of(
        &self,
        value: &Value,
        depth: usize,
        out: &mut Map<String, Value>,
    ) -> Result<(), TranslateError> {
        let Value::Array(members) = value else {
            return Ok(());
        };
        let mut kept = Vec::with_capacity(members.len());
        for member in members {
            if member.get("type").and_then(Value::as_str) == Some("null") {
                out.insert("nullable".into(), Value::Bool(true));
            } else {
                kept.push(self.schema(member, depth + 1)?);
            }
        }
        match kept.len() {
            0 => {}
            1 => {
                if let Some(only) = kept.pop() {
                    merge(out, only);
                }
            }
            _ => {
                out.insert("anyOf".into(), Value::Array(kept));
            }
        }
        Ok(())
    }
}

/// Adds `from`'s keys to `into`, keeping the keys `into` already has.
fn merge(into: &mut Map<String, Value>, from: Value) {
    if let Value::Object(from) = from {
        for (k, v) in from {
            into.entry(k).or_insert(v);
        }
    }
}
