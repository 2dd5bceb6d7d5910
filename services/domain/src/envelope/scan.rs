//! The first reading of a body: its nesting depth, and its top-level fields as raw JSON.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use serde_json::value::RawValue;

use super::limits::EnvelopeLimits;
use crate::invalid::InvalidRequest;

/// Refuses a body nested deeper than `max_depth` arrays and objects, anywhere (an unknown field
/// is forwarded upstream as it came, so its depth is bounded here, before any parser recurses).
/// A byte scan: brackets inside strings (and escaped quotes) are skipped.
pub fn check_depth(body: &[u8], max_depth: usize) -> Result<(), InvalidRequest> {
    let mut depth = 0usize;
    let mut at = 0usize;
    while let Some(&b) = body.get(at) {
        at += 1;
        match b {
            // A string: jump to its closing quote (memchr over the text, skipping escapes).
            b'"' => loop {
                match memchr::memchr2(b'"', b'\\', &body[at.min(body.len())..]) {
                    Some(i) if body[at + i] == b'\\' => at += i + 2,
                    Some(i) => {
                        at += i + 1;
                        break;
                    }
                    None => return Ok(()),
                }
            },
            b'[' | b'{' => {
                depth += 1;
                if depth > max_depth {
                    return Err(InvalidRequest::new(
                        "nesting_too_deep",
                        None,
                        format!(
                            "The request body nests arrays and objects more than {max_depth} \
                             levels deep (the limit)."
                        ),
                    ));
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    Ok(())
}

/// Refuses a body whose top-level object names a field twice (`duplicate_field`, 400), or that
/// is not a JSON object: the one rule every entry point applies, so no two readers of a body
/// can disagree on which of two values counts.
pub fn check_top_level(body: &[u8], limits: &EnvelopeLimits) -> Result<(), InvalidRequest> {
    check_depth(body, limits.max_depth)?;
    parse_top_level(body, limits).map(|_| ())
}

pub(super) fn parse_top_level<'a>(
    body: &'a [u8],
    limits: &EnvelopeLimits,
) -> Result<TopLevel<'a>, InvalidRequest> {
    let text = std::str::from_utf8(body).map_err(|_| {
        InvalidRequest::new("invalid_json", None, "The request body is not valid UTF-8.")
    })?;
    let mut de = serde_json::Deserializer::from_str(text);
    let parsed = de.deserialize_any(TopLevelVisitor {
        max_fields: limits.max_fields,
    });
    let parsed = parsed.and_then(|top| de.end().map(|()| top));
    parsed.map_err(|e| {
        let text = e.to_string();
        if let Some(rest) = text.strip_prefix("duplicate field ") {
            let name = rest.split('`').nth(1).unwrap_or_default();
            InvalidRequest::new(
                "duplicate_field",
                Some(name),
                format!("The field '{name}' appears more than once in the request body."),
            )
        } else if text.starts_with("too many fields") {
            InvalidRequest::new(
                "too_many_fields",
                None,
                format!(
                    "The request body has more than {} top-level fields.",
                    limits.max_fields
                ),
            )
        } else if text.starts_with("not an object") {
            InvalidRequest::new(
                "invalid_json",
                None,
                "The request body must be a JSON object.",
            )
        } else {
            InvalidRequest::new(
                "invalid_json",
                None,
                format!("We could not parse the JSON body of your request: {text}."),
            )
        }
    })
}

pub(super) struct TopLevel<'a>(pub(super) Vec<(Cow<'a, str>, &'a RawValue)>);

struct TopLevelVisitor {
    max_fields: usize,
}

impl<'de> Visitor<'de> for TopLevelVisitor {
    type Value = TopLevel<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("not an object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut fields: Vec<(Cow<'de, str>, &'de RawValue)> = Vec::with_capacity(16);
        while let Some(BorrowedStr(key)) = map.next_key::<BorrowedStr<'de>>()? {
            if fields.iter().any(|(k, _)| *k == key) {
                return Err(de::Error::custom(format_args!("duplicate field `{key}`")));
            }
            if fields.len() == self.max_fields {
                return Err(de::Error::custom("too many fields"));
            }
            let value: &'de RawValue = map.next_value()?;
            fields.push((key, value));
        }
        Ok(TopLevel(fields))
    }

    // Any other JSON type is refused with the "not an object" marker.
    fn visit_seq<A: SeqAccess<'de>>(self, _: A) -> Result<Self::Value, A::Error> {
        Err(de::Error::custom("not an object"))
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
        Err(E::custom("not an object"))
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
        Err(E::custom("not an object"))
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
        Err(E::custom("not an object"))
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
        Err(E::custom("not an object"))
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
        Err(E::custom("not an object"))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Err(E::custom("not an object"))
    }
}

/// A string that borrows from the input when it has no escapes.
pub(super) struct BorrowedStr<'a>(pub(super) Cow<'a, str>);

impl<'de> Deserialize<'de> for BorrowedStr<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = BorrowedStr<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(BorrowedStr(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(BorrowedStr(Cow::Owned(v.to_owned())))
            }
        }
        d.deserialize_str(V)
    }
}
