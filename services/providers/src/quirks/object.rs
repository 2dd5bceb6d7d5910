//! JSON read lazily: an object's fields in order, each kept as its JSON text until rewritten.

use std::borrow::Cow;
use std::fmt;

use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;

/// A JSON object's fields in order; values are kept as their JSON text.
pub(super) struct Object<'a> {
    fields: Vec<(String, Slot<'a>)>,
}

/// A value as it came, or rewritten.
enum Slot<'a> {
    Raw(&'a str),
    Owned(String),
}

impl Slot<'_> {
    fn text(&self) -> &str {
        match self {
            Self::Raw(text) => text,
            Self::Owned(text) => text,
        }
    }
}

impl<'a> Object<'a> {
    /// `None` unless `text` is one JSON object.
    pub(super) fn parse(text: &'a str) -> Option<Self> {
        if !is_object(text) {
            return None;
        }
        serde_json::from_str::<Fields<'a>>(text)
            .ok()
            .map(|f| Self { fields: f.0 })
    }

    /// The JSON text of the first field named `key`.
    pub(super) fn get(&self, key: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.text())
    }

    /// Replaces the first field named `key`, or appends it.
    pub(super) fn set(&mut self, key: &str, json: String) {
        match self.fields.iter_mut().find(|(k, _)| k == key) {
            Some((_, slot)) => *slot = Slot::Owned(json),
            None => self.fields.push((key.to_owned(), Slot::Owned(json))),
        }
    }

    /// Removes every field.
    pub(super) fn clear(&mut self) {
        self.fields.clear();
    }

    /// Removes every field named `key`.
    pub(super) fn remove(&mut self, key: &str) {
        self.fields.retain(|(k, _)| k != key);
    }

    pub(super) fn to_json(&self) -> String {
        let size = self
            .fields
            .iter()
            .map(|(k, v)| k.len() + v.text().len() + 4)
            .sum::<usize>();
        let mut out = String::with_capacity(size + 2);
        out.push('{');
        for (i, (key, value)) in self.fields.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push_str(&serde_json::Value::from(key.as_str()).to_string());
            out.push(':');
            out.push_str(value.text());
        }
        out.push('}');
        out
    }
}

/// An object's fields in order, values borrowed from the input.
struct Fields<'a>(Vec<(String, Slot<'a>)>);

impl<'de> Deserialize<'de> for Fields<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct FieldsVisitor;

        impl<'de> Visitor<'de> for FieldsVisitor {
            type Value = Fields<'de>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut fields = Vec::with_capacity(map.size_hint().unwrap_or(8).min(64));
                while let Some((key, value)) = map.next_entry::<String, &'de RawValue>()? {
                    fields.push((key, Slot::Raw(value.get())));
                }
                Ok(Fields(fields))
            }
        }

        deserializer.deserialize_map(FieldsVisitor)
    }
}

/// The items of a JSON array, as their JSON text.
pub(super) fn array(text: &str) -> Option<Vec<&RawValue>> {
    serde_json::from_str(text).ok()
}

pub(super) fn join_array<'a>(items: impl IntoIterator<Item = Cow<'a, str>>) -> String {
    let mut out = String::from("[");
    for (i, item) in items.into_iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&item);
    }
    out.push(']');
    out
}

pub(super) fn is_object(text: &str) -> bool {
    text.trim_start().starts_with('{')
}

pub(super) fn is_null(text: &str) -> bool {
    text.trim() == "null"
}

/// A token count: a non-negative integer, else `None`.
pub(super) fn uint(text: &str) -> Option<u64> {
    serde_json::from_str(text).ok()
}
