//! `application/x-www-form-urlencoded` bodies → JSON, for senders that post forms
//! (BambooHR's "Form Post" encoding, Slack-style `payload=` senders).
//!
//! Either one field carries a whole JSON document (`payload={...}`), or the fields
//! themselves are the data, flat (`email=a@b.co`) or in bracket notation
//! (`data[employeeId]=7&data[changedFields][0]=firstName`), which becomes nested
//! objects; groups whose keys are exactly `0..n` become arrays, so JSON Pointers
//! read a form exactly as they would read the JSON form of the same payload.

use serde_json::{Map, Value};

/// Deepest bracket nesting accepted: a sender's payloads are a few levels deep, and
/// the bound keeps a hostile key from building an arbitrarily deep tree.
const MAX_DEPTH: usize = 32;

/// Why a form body cannot be read as a payload. Each variant names the form field
/// (the raw key as sent) so the 400 says which one to fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FormError {
    /// The field configured as `form_field` is present but its value is not JSON.
    #[error("form field {field:?} is not valid JSON: {reason}")]
    FieldNotJson {
        /// The configured `form_field` name.
        field: String,
        /// serde_json's description, with line and column inside the field's value.
        reason: String,
    },
    /// A bracketed key nests deeper than [`MAX_DEPTH`] levels.
    #[error("form field {key:?} is nested more than {max_depth} levels deep")]
    TooDeep {
        /// The raw key.
        key: String,
        /// The limit that was exceeded.
        max_depth: usize,
    },
    /// The same path is given both a value (`a=1`) and sub-fields (`a[b]=2`).
    #[error("form field {key:?} is both a value and a group of fields")]
    ValueAndGroup {
        /// The raw key of the second, conflicting field.
        key: String,
    },
}

/// Parses a form body. `json_field` names the field that, when present, holds the
/// whole payload as JSON. Called by [`super::mapping::Mapping::parse`] only, after
/// the signature was checked.
pub fn parse(body: &[u8], json_field: &str) -> Result<Value, FormError> {
    let pairs: Vec<(String, String)> = url::form_urlencoded::parse(body).into_owned().collect();
    if let Some((_, json)) = pairs.iter().find(|(k, _)| k == json_field) {
        return serde_json::from_str(json).map_err(|e| FormError::FieldNotJson {
            field: json_field.to_owned(),
            reason: e.to_string(),
        });
    }
    let mut root = Map::new();
    for (key, value) in pairs {
        let path = split_key(&key)?;
        insert(&mut root, &path, value, &key)?;
    }
    Ok(arrays(Value::Object(root)))
}

/// `a[b][0]` → `["a", "b", "0"]`; `a[]` → `["a", ""]`. A key whose brackets don't
/// pair up is taken literally.
fn split_key(key: &str) -> Result<Vec<String>, FormError> {
    let Some(open) = key.find('[') else {
        return Ok(vec![key.to_owned()]);
    };
    if open == 0 || !key.ends_with(']') {
        return Ok(vec![key.to_owned()]);
    }
    let mut parts = vec![key[..open].to_owned()];
    let mut rest = &key[open..];
    while !rest.is_empty() {
        let Some(inner) = rest.strip_prefix('[') else {
            return Ok(vec![key.to_owned()]);
        };
        let Some(close) = inner.find(']') else {
            return Ok(vec![key.to_owned()]);
        };
        parts.push(inner[..close].to_owned());
        rest = &inner[close + 1..];
        if parts.len() > MAX_DEPTH {
            return Err(FormError::TooDeep {
                key: key.to_owned(),
                max_depth: MAX_DEPTH,
            });
        }
    }
    Ok(parts)
}

fn insert(
    obj: &mut Map<String, Value>,
    path: &[String],
    value: String,
    key: &str,
) -> Result<(), FormError> {
    let Some((first, rest)) = path.split_first() else {
        return Ok(());
    };
    let name = if first.is_empty() {
        obj.len().to_string()
    } else {
        first.clone()
    };
    if rest.is_empty() {
        if obj.get(&name).is_some_and(Value::is_object) {
            return Err(FormError::ValueAndGroup {
                key: key.to_owned(),
            });
        }
        obj.insert(name, Value::String(value));
        return Ok(());
    }
    let child = obj.entry(name).or_insert_with(|| Value::Object(Map::new()));
    match child {
        Value::Object(map) => insert(map, rest, value, key),
        _ => Err(FormError::ValueAndGroup {
            key: key.to_owned(),
        }),
    }
}

/// Turns objects keyed exactly `0..n` into arrays, recursively.
fn arrays(v: Value) -> Value {
    match v {
        Value::Object(map) => {
            let n = map.len();
            let indexed = n > 0 && (0..n).all(|i| map.contains_key(&i.to_string()));
            if indexed {
                let mut items: Vec<(usize, Value)> = map
                    .into_iter()
                    .filter_map(|(k, v)| k.parse::<usize>().ok().map(|i| (i, arrays(v))))
                    .collect();
                items.sort_by_key(|(i, _)| *i);
                Value::Array(items.into_iter().map(|(_, v)| v).collect())
            } else {
                Value::Object(map.into_iter().map(|(k, v)| (k, arrays(v))).collect())
            }
        }
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn bracket_notation_becomes_nested_json() {
        let body = b"type=employee.updated&data%5BcompanyId%5D=12345&data[employeeId]=67890&data[changedFields][0]=firstName&data[changedFields][1]=lastName&tags[]=a&tags[]=b";
        assert_eq!(
            parse(body, "payload").unwrap(),
            json!({
                "type": "employee.updated",
                "data": {"companyId": "12345", "employeeId": "67890", "changedFields": ["firstName", "lastName"]},
                "tags": ["a", "b"]
            })
        );
    }

    #[test]
    fn payload_field_carries_json() {
        let body = b"payload=%7B%22a%22%3A1%7D&other=x";
        assert_eq!(parse(body, "payload").unwrap(), json!({"a": 1}));
        let err = parse(b"payload=%7Bnope", "payload")
            .unwrap_err()
            .to_string();
        assert!(err.contains("not valid JSON"), "{err}");
    }

    #[test]
    fn conflicts_and_odd_keys() {
        assert!(parse(b"a=1&a[b]=2", "payload").is_err());
        assert!(parse(b"a[b]=2&a=1", "payload").is_err());
        assert_eq!(
            parse(b"[x]=1&a[b=2&c]=3", "payload").unwrap(),
            json!({"[x]": "1", "a[b": "2", "c]": "3"})
        );
        let deep = format!("a{}=1", "[x]".repeat(40));
        assert!(parse(deep.as_bytes(), "payload").is_err());
        assert_eq!(parse(b"", "payload").unwrap(), json!({}));
        assert_eq!(
            parse(b"\xff\xfe=1", "payload").unwrap(),
            json!({"\u{fffd}\u{fffd}": "1"})
        );
    }
}
