//! `application/x-www-form-urlencoded` bodies → JSON, for senders that post forms
//! (BambooHR's "Form Post" encoding, Slack-style `payload=` senders).
//!
//! Either one field carries a whole JSON document (`payload={...}`), or the fields
//! themselves are the data, flat (`email=a@b.co`) or in bracket notation
//! (`data[employeeId]=7&data[changedFields][0]=firstName`), which becomes nested
//! objects; groups whose keys are exactly `0..n` become arrays, so JSON Pointers
//! read a form exactly as they would read the JSON form of the same payload.

use serde_json::{Map, Value};

/// Deepest bracket nesting accepted.
const MAX_DEPTH: usize = 32;

/// Parses a form body. `json_field` names the field that, when present, holds the
/// whole payload as JSON.
pub fn parse(body: &[u8], json_field: &str) -> Result<Value, String> {
    let pairs: Vec<(String, String)> = url::form_urlencoded::parse(body).into_owned().collect();
    if let Some((_, json)) = pairs.iter().find(|(k, _)| k == json_field) {
        return serde_json::from_str(json)
            .map_err(|e| format!("form field {json_field:?} is not valid JSON: {e}"));
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
fn split_key(key: &str) -> Result<Vec<String>, String> {
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
            return Err(format!(
                "form field {key:?} is nested more than {MAX_DEPTH} levels deep"
            ));
        }
    }
    Ok(parts)
}

fn insert(
    obj: &mut Map<String, Value>,
    path: &[String],
    value: String,
    key: &str,
) -> Result<(), String> {
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
            return Err(format!(
                "form field {key:?} is both a value and a group of fields"
            ));
        }
        obj.insert(name, Value::String(value));
        return Ok(());
    }
    let child = obj.entry(name).or_insert_with(|| Value::Object(Map::new()));
    match child {
        Value::Object(map) => insert(map, rest, value, key),
        _ => Err(format!(
            "form field {key:?} is both a value and a group of fields"
        )),
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
        let err = parse(b"payload=%7Bnope", "payload").unwrap_err();
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
