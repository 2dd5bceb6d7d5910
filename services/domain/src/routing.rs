//! A request's routing preferences, OpenRouter-compatible: the `provider` object, the `models`
//! fallback list and the `:floor` / `:nitro` model suffixes. Preferences only ever narrow what
//! the tenant's policy allows; the router applies them (see the gateway's `routing` module).

use std::str::FromStr;

use rust_decimal::Decimal;
use serde::Deserialize;
use serde_json::value::RawValue;

use crate::invalid::InvalidRequest;

/// Most entries in `models`, and in each list of the `provider` object.
pub const MAX_LIST: usize = 32;

/// How to order the eligible deployments.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Sort {
    /// Cheapest expected cost for this request first.
    Price,
    /// Highest output tokens per second first.
    Throughput,
    /// Lowest time to first token first.
    Latency,
}

/// `data_collection`: whether deployments that may store or train on prompts are acceptable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DataCollection {
    Allow,
    Deny,
}

/// `max_price`: the most the caller will pay, in dollars per million tokens (`prompt`,
/// `completion`) and in dollars per request and per image.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MaxPrice {
    pub prompt: Option<Decimal>,
    pub completion: Option<Decimal>,
    pub request: Option<Decimal>,
    pub image: Option<Decimal>,
}

/// The `provider` object of a request (or a key's default).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProviderPrefs {
    /// Providers or deployments (by name) to try first, in this order.
    pub order: Option<Vec<String>>,
    /// Only these providers or deployments.
    pub only: Option<Vec<String>>,
    /// Never these providers or deployments.
    pub ignore: Option<Vec<String>>,
    /// `false`: only the deployments named in `order` (or, without `order`, only the first
    /// ranked one) are tried. Default `true`.
    pub allow_fallbacks: Option<bool>,
    pub sort: Option<Sort>,
    pub max_price: Option<MaxPrice>,
    /// Only deployments known to support every capability the request uses.
    pub require_parameters: Option<bool>,
    pub data_collection: Option<DataCollection>,
    /// Only zero-data-retention deployments.
    pub zdr: Option<bool>,
    /// Acceptable quantizations (`fp8`, `bf16`, …).
    pub quantizations: Option<Vec<String>>,
    /// Acceptable model versions or checkpoints (a Tollgate extension): a deployment whose
    /// version is not listed (or unknown) is never used.
    pub versions: Option<Vec<String>>,
}

/// The `provider` field as it is sent.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WirePrefs<'a> {
    #[serde(default)]
    order: Option<Vec<String>>,
    #[serde(default)]
    only: Option<Vec<String>>,
    #[serde(default)]
    ignore: Option<Vec<String>>,
    #[serde(default)]
    allow_fallbacks: Option<bool>,
    #[serde(default)]
    sort: Option<Sort>,
    #[serde(default, borrow)]
    max_price: Option<WirePrice<'a>>,
    #[serde(default)]
    require_parameters: Option<bool>,
    #[serde(default)]
    data_collection: Option<DataCollection>,
    #[serde(default)]
    zdr: Option<bool>,
    #[serde(default)]
    quantizations: Option<Vec<String>>,
    #[serde(default)]
    versions: Option<Vec<String>>,
}

/// `provider.max_price` as it is sent: each price a number or a numeric string.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WirePrice<'a> {
    #[serde(default, borrow)]
    prompt: Option<&'a RawValue>,
    #[serde(default, borrow)]
    completion: Option<&'a RawValue>,
    #[serde(default, borrow)]
    request: Option<&'a RawValue>,
    #[serde(default, borrow)]
    image: Option<&'a RawValue>,
}

impl WirePrice<'_> {
    fn parse(self) -> Result<MaxPrice, InvalidRequest> {
        Ok(MaxPrice {
            prompt: price("prompt", self.prompt)?,
            completion: price("completion", self.completion)?,
            request: price("request", self.request)?,
            image: price("image", self.image)?,
        })
    }
}

/// One `provider.max_price` entry: a non-negative decimal.
fn price(name: &str, v: Option<&RawValue>) -> Result<Option<Decimal>, InvalidRequest> {
    let Some(v) = v else { return Ok(None) };
    let text = v.get().trim_matches('"');
    Decimal::from_str(text)
        .ok()
        .filter(|d| !d.is_sign_negative())
        .map(Some)
        .ok_or_else(|| {
            InvalidRequest::new(
                "invalid_value",
                Some(&format!("provider.max_price.{name}")),
                format!("'provider.max_price.{name}' must be a non-negative number."),
            )
        })
}

impl ProviderPrefs {
    /// Parses the raw JSON of a `provider` field; errors name the offending parameter.
    pub fn parse(raw: &str) -> Result<Self, InvalidRequest> {
        if raw.trim() == "null" {
            return Ok(Self::default());
        }
        let w: WirePrefs<'_> = serde_json::from_str(raw).map_err(|e| {
            InvalidRequest::new(
                "invalid_value",
                Some("provider"),
                format!("Invalid 'provider' preferences: {e}."),
            )
        })?;
        let max_price = match w.max_price {
            Some(p) => Some(p.parse()?),
            None => None,
        };
        let prefs = Self {
            order: w.order,
            only: w.only,
            ignore: w.ignore,
            allow_fallbacks: w.allow_fallbacks,
            sort: w.sort,
            max_price,
            require_parameters: w.require_parameters,
            data_collection: w.data_collection,
            zdr: w.zdr,
            quantizations: w.quantizations,
            versions: w.versions,
        };
        prefs.check_list_lengths()?;
        Ok(prefs)
    }

    /// Refuses a list with more than [`MAX_LIST`] entries.
    fn check_list_lengths(&self) -> Result<(), InvalidRequest> {
        for (name, list) in [
            ("order", &self.order),
            ("only", &self.only),
            ("ignore", &self.ignore),
            ("quantizations", &self.quantizations),
            ("versions", &self.versions),
        ] {
            if list.as_ref().is_some_and(|l| l.len() > MAX_LIST) {
                return Err(InvalidRequest::new(
                    "array_too_long",
                    Some(&format!("provider.{name}")),
                    format!("'provider.{name}' has more than {MAX_LIST} entries."),
                ));
            }
        }
        Ok(())
    }

    /// `self` with each field the request left unset taken from `defaults` (a key's defaults).
    pub fn or(self, defaults: &ProviderPrefs) -> Self {
        let d = defaults.clone();
        Self {
            order: self.order.or(d.order),
            only: self.only.or(d.only),
            ignore: self.ignore.or(d.ignore),
            allow_fallbacks: self.allow_fallbacks.or(d.allow_fallbacks),
            sort: self.sort.or(d.sort),
            max_price: self.max_price.or(d.max_price),
            require_parameters: self.require_parameters.or(d.require_parameters),
            data_collection: self.data_collection.or(d.data_collection),
            zdr: self.zdr.or(d.zdr),
            quantizations: self.quantizations.or(d.quantizations),
            versions: self.versions.or(d.versions),
        }
    }
}

/// Parses the raw JSON of a `models` field: a non-empty list of model names.
pub fn parse_models(raw: &str) -> Result<Vec<String>, InvalidRequest> {
    let models: Vec<String> = serde_json::from_str(raw).map_err(|_| {
        InvalidRequest::new(
            "invalid_type",
            Some("models"),
            "Invalid type for 'models': expected an array of model names.",
        )
    })?;
    if models.len() > MAX_LIST {
        return Err(InvalidRequest::new(
            "array_too_long",
            Some("models"),
            format!("'models' has more than {MAX_LIST} entries."),
        ));
    }
    if models.iter().any(String::is_empty) {
        return Err(InvalidRequest::new(
            "invalid_value",
            Some("models"),
            "'models' must not contain an empty name.",
        ));
    }
    Ok(models)
}

/// A model name's routing suffix: `name:floor` sorts by price, `name:nitro` by throughput.
pub fn split_suffix(model: &str) -> (&str, Option<Sort>) {
    if let Some(base) = model.strip_suffix(":floor") {
        (base, Some(Sort::Price))
    } else if let Some(base) = model.strip_suffix(":nitro") {
        (base, Some(Sort::Throughput))
    } else {
        (model, None)
    }
}

/// What a request needs of a deployment (for `require_parameters`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Needs {
    pub tools: bool,
    pub vision: bool,
    pub json: bool,
    pub json_schema: bool,
}

impl Needs {
    /// The capability names, as deployments declare them.
    pub fn names(self) -> impl Iterator<Item = &'static str> {
        [
            (self.tools, "tools"),
            (self.vision, "vision"),
            (self.json, "json"),
            (self.json_schema, "json_schema"),
        ]
        .into_iter()
        .filter_map(|(needed, name)| needed.then_some(name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_openrouter_preferences_exactly() {
        let p = ProviderPrefs::parse(
            r#"{"order":["a","b"],"allow_fallbacks":false,"sort":"price",
               "max_price":{"prompt":1.25,"completion":"10"},"zdr":true,
               "data_collection":"deny","quantizations":["fp8"],"versions":["2024-08-06"]}"#,
        )
        .expect("valid");
        assert_eq!(p.order, Some(vec!["a".into(), "b".into()]));
        assert_eq!(p.allow_fallbacks, Some(false));
        assert_eq!(p.sort, Some(Sort::Price));
        let max = p.max_price.expect("max_price");
        assert_eq!(max.prompt, Some(Decimal::new(125, 2)));
        assert_eq!(max.completion, Some(Decimal::new(10, 0)));
        assert_eq!(p.data_collection, Some(DataCollection::Deny));
        assert_eq!(p.versions, Some(vec!["2024-08-06".into()]));
    }

    #[test]
    fn refuses_unknown_fields_and_bad_values() {
        for (raw, param) in [
            (r#"{"ordr":["a"]}"#, "provider"),
            (r#"{"sort":"fastest"}"#, "provider"),
            (
                r#"{"max_price":{"prompt":-1}}"#,
                "provider.max_price.prompt",
            ),
            (
                r#"{"max_price":{"prompt":"cheap"}}"#,
                "provider.max_price.prompt",
            ),
            (r#"[1]"#, "provider"),
        ] {
            let e = ProviderPrefs::parse(raw).expect_err(raw);
            assert_eq!(e.param.as_deref(), Some(param), "{raw}");
        }
        assert!(parse_models(r#"["a",""]"#).is_err());
        assert!(parse_models(r#""a""#).is_err());
        assert_eq!(
            parse_models(r#"["a","b"]"#).expect("valid"),
            vec!["a".to_owned(), "b".to_owned()]
        );
    }

    #[test]
    fn request_fields_win_over_key_defaults() {
        let key = ProviderPrefs {
            versions: Some(vec!["v1".into()]),
            sort: Some(Sort::Latency),
            ..ProviderPrefs::default()
        };
        let req = ProviderPrefs {
            sort: Some(Sort::Price),
            ..ProviderPrefs::default()
        };
        let merged = req.or(&key);
        assert_eq!(merged.sort, Some(Sort::Price));
        assert_eq!(merged.versions, Some(vec!["v1".into()]));
    }

    #[test]
    fn suffixes_pick_a_sort() {
        assert_eq!(split_suffix("gpt:floor"), ("gpt", Some(Sort::Price)));
        assert_eq!(split_suffix("gpt:nitro"), ("gpt", Some(Sort::Throughput)));
        assert_eq!(split_suffix("gpt"), ("gpt", None));
    }
}
