//! RFC 7644 §3.5.2 PATCH on a stored User: every operation applied to a copy, in
//! order, and the result checked as a whole, so a request is applied entirely or
//! not at all.
//!
//! Both providers' dialects are accepted: Okta sends `{"op":"replace","value":
//! {"active":false}}` (no `path`), Entra ID `{"op":"Replace","path":"active",
//! "value":"False"}`. `op` is compared without case (`replace`, `Replace`,
//! `REPLACE`, `rePlace`); paths are parsed by the `scim_v2` crate's grammar and
//! may name a sub-attribute (`name.givenName`), an extension attribute
//! (`urn:…:enterprise:2.0:User:department`) or a filtered value
//! (`emails[type eq "work"].value`).

use scim_v2::{
    filter::{AttrExp, AttrPath, CompValue, CompareOp, PatchPath, PatchValuePath, ValFilter},
    models::others::{OperationTarget, PatchOp, PatchOperation},
};
use serde_json::{Map, Value};

use super::{
    error::ScimError,
    resource::{ENTERPRISE_SCHEMA, USER_SCHEMA, as_bool, canonical_name, find_key},
};
use crate::domain::json_kind;

/// Parses a PATCH body: a `PatchOp` message with at least one operation.
pub fn parse(body: Value) -> Result<PatchOp, ScimError> {
    let Value::Object(mut message) = body else {
        return Err(ScimError::invalid_syntax(format!(
            "a PATCH body is a PatchOp object, not {}",
            json_kind(&body)
        )));
    };
    let schemas_ok = message
        .get("schemas")
        .and_then(Value::as_array)
        .is_some_and(|s| {
            s.iter().any(|s| {
                s.as_str()
                    .is_some_and(|s| s.eq_ignore_ascii_case(scim_v2::schema_urns::PATCH_OP))
            })
        });
    if !schemas_ok {
        return Err(ScimError::invalid_syntax(format!(
            "schemas must list {}",
            scim_v2::schema_urns::PATCH_OP
        )));
    }
    // The RFC spells `Operations`; accept any case of the member and of each `op`.
    let key = find_key(&message, "Operations")
        .ok_or_else(|| ScimError::invalid_syntax("Operations is required"))?;
    let mut operations = message.remove(&key).unwrap_or(Value::Null);
    let Value::Array(list) = &mut operations else {
        return Err(ScimError::invalid_syntax("Operations must be an array"));
    };
    if list.is_empty() {
        return Err(ScimError::invalid_syntax("Operations is empty"));
    }
    for op in list.iter_mut() {
        let Value::Object(op) = op else {
            return Err(ScimError::invalid_syntax(
                "each operation must be an object",
            ));
        };
        for member in ["op", "path", "value"] {
            if let Some(k) = find_key(op, member).filter(|k| k != member)
                && let Some(v) = op.remove(&k)
            {
                op.insert(member.to_owned(), v);
            }
        }
        if op
            .get("op")
            .and_then(Value::as_str)
            .is_some_and(|o| o.eq_ignore_ascii_case("remove"))
            && !op.contains_key("path")
        {
            return Err(ScimError::no_target(
                "remove needs a path (RFC 7644 §3.5.2.2)",
            ));
        }
        match op.get_mut("op") {
            Some(Value::String(name)) => *name = name.to_ascii_lowercase(),
            _ => {
                return Err(ScimError::invalid_syntax(
                    "each operation needs op: add, remove or replace",
                ));
            }
        }
    }
    let message = serde_json::json!({
        "schemas": [scim_v2::schema_urns::PATCH_OP],
        "Operations": operations,
    });
    serde_json::from_value(message).map_err(|e| {
        let text = e.to_string();
        if text.contains("path") {
            ScimError::invalid_path(format!("bad PATCH operation: {text}"))
        } else {
            ScimError::invalid_value(format!("bad PATCH operation: {text}"))
        }
    })
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Op {
    Add,
    Replace,
}

/// Applies every operation of `patch` to `resource` (a stored User without `id`
/// and `meta`) and returns the result; the caller validates it as a whole.
pub fn apply(resource: &Value, patch: &PatchOp) -> Result<Value, ScimError> {
    let mut out = match resource {
        Value::Object(o) => o.clone(),
        _ => Map::new(),
    };
    for operation in &patch.operations {
        match operation {
            PatchOperation::Add(target) => set(&mut out, Op::Add, target)?,
            PatchOperation::Replace(target) => set(&mut out, Op::Replace, target)?,
            PatchOperation::Remove { path, .. } => remove(&mut out, path)?,
        }
    }
    Ok(Value::Object(out))
}

/// The object an attribute path lives in: the root, or the extension it names.
fn container<'a>(
    root: &'a mut Map<String, Value>,
    path: &AttrPath,
) -> Result<&'a mut Map<String, Value>, ScimError> {
    match path.uri.as_deref() {
        None => Ok(root),
        Some(uri) if uri.eq_ignore_ascii_case(USER_SCHEMA) => Ok(root),
        Some(uri) if uri.eq_ignore_ascii_case(ENTERPRISE_SCHEMA) => {
            let ext = root
                .entry(ENTERPRISE_SCHEMA.to_owned())
                .or_insert_with(|| Value::Object(Map::new()));
            if !ext.is_object() {
                *ext = Value::Object(Map::new());
            }
            match ext {
                Value::Object(o) => Ok(o),
                _ => Err(ScimError::invalid_path("the extension is not an object")),
            }
        }
        Some(uri) => Err(ScimError::invalid_path(format!(
            "offboard keeps the core User schema and {ENTERPRISE_SCHEMA}, not {uri}"
        ))),
    }
}

fn guard_read_only(name: &str) -> Result<(), ScimError> {
    if ["id", "meta"].iter().any(|r| r.eq_ignore_ascii_case(name)) {
        return Err(ScimError::mutability(format!(
            "{name} is read-only: offboard assigns it"
        )));
    }
    Ok(())
}

/// `add` or `replace`, with or without a path.
fn set(root: &mut Map<String, Value>, op: Op, target: &OperationTarget) -> Result<(), ScimError> {
    match target {
        OperationTarget::WithoutPath { value } => {
            // Each member is an attribute (maybe `urn:…:attr` or dotted `name.givenName`,
            // as some providers send) set as if it were the path.
            for (key, v) in value {
                if key.eq_ignore_ascii_case(ENTERPRISE_SCHEMA) {
                    set_extension(root, op, v)?;
                    continue;
                }
                let path: PatchPath = key.parse().map_err(|e| {
                    ScimError::invalid_path(format!("{key:?} is not an attribute path: {e}"))
                })?;
                match path {
                    PatchPath::Attr(path) => set_attr(root, op, &path, v.clone())?,
                    PatchPath::Value(_) => {
                        return Err(ScimError::invalid_path(format!(
                            "{key:?}: a filter belongs in path, not in a value's member names"
                        )));
                    }
                }
            }
            Ok(())
        }
        OperationTarget::WithPath { path, value } => {
            let value = value
                .clone()
                .ok_or_else(|| ScimError::invalid_value("add and replace need a value"))?;
            match path {
                PatchPath::Attr(path) if names_extension(path) => set_extension(root, op, &value),
                PatchPath::Attr(path) => set_attr(root, op, path, value),
                PatchPath::Value(path) => set_filtered(root, op, path, value),
            }
        }
    }
}

/// Whether `path` is the enterprise extension's URN itself, which the grammar
/// reads as attribute `User` of a schema `urn:…:enterprise:2.0`. In a resource
/// the extension is the complex value named by its URN (RFC 7643 §3.3), and a
/// path names extension attributes through that URN (RFC 7644 §3.10), so the
/// bare URN as a path (as scim2-tester and other clients send it) targets the
/// extension as one complex attribute.
fn names_extension(path: &AttrPath) -> bool {
    path.sub_attr.is_none()
        && path.uri.as_deref().is_some_and(|uri| {
            format!("{uri}:{}", path.name).eq_ignore_ascii_case(ENTERPRISE_SCHEMA)
        })
}

/// `add`/`replace` of the enterprise extension as a whole: each attribute of the
/// value is set as if it were the path (RFC 7644 §3.5.2.1 and §3.5.2.3: the
/// sub-attributes named are added or replaced, the others are left alone). A
/// `schemas` member (what a client serialising the extension as a resource part
/// sends) names the extension, and is no attribute of it.
fn set_extension(root: &mut Map<String, Value>, op: Op, value: &Value) -> Result<(), ScimError> {
    let Value::Object(ext) = value else {
        return Err(ScimError::invalid_value(format!(
            "{ENTERPRISE_SCHEMA} must be an object, not {}",
            json_kind(value)
        )));
    };
    for (name, v) in ext {
        if name.eq_ignore_ascii_case("schemas") {
            continue;
        }
        let path = AttrPath {
            uri: Some(ENTERPRISE_SCHEMA.to_owned()),
            name: name.clone(),
            sub_attr: None,
        };
        set_attr(root, op, &path, v.clone())?;
    }
    Ok(())
}

/// Sets one attribute (or sub-attribute). `add` appends to a multi-valued
/// attribute and merges into a complex one; `replace` overwrites, except that a
/// complex value replaces only the sub-attributes it names (RFC 7644 §3.5.2.3).
fn set_attr(
    root: &mut Map<String, Value>,
    op: Op,
    path: &AttrPath,
    value: Value,
) -> Result<(), ScimError> {
    guard_read_only(&path.name)?;
    let name = canonical_name(&path.name);
    let object = container(root, path)?;
    let key = find_key(object, &name).unwrap_or(name);
    match &path.sub_attr {
        Some(sub) => {
            let parent = object
                .entry(key.clone())
                .or_insert_with(|| Value::Object(Map::new()));
            let Value::Object(parent) = parent else {
                return Err(ScimError::invalid_path(format!(
                    "{key} is not a complex attribute, so {key}.{sub} does not exist"
                )));
            };
            let sub_key = find_key(parent, sub).unwrap_or_else(|| sub.clone());
            parent.insert(sub_key, value);
        }
        None => {
            let merged = match (op, object.remove(&key), value) {
                (Op::Add, Some(Value::Array(mut old)), Value::Array(new)) => {
                    for v in new {
                        if !old.contains(&v) {
                            old.push(v);
                        }
                    }
                    Value::Array(old)
                }
                (_, Some(Value::Object(mut old)), Value::Object(new)) => {
                    old.extend(new);
                    Value::Object(old)
                }
                (_, _, new) => new,
            };
            object.insert(key, merged);
        }
    }
    Ok(())
}

/// `add`/`replace` on `attr[filter]` or `attr[filter].sub`: every element the filter
/// matches is changed. With no match, `add` appends a new element built from the
/// filter's `eq` terms (how Entra ID adds a work e-mail); `replace` is `noTarget`.
fn set_filtered(
    root: &mut Map<String, Value>,
    op: Op,
    path: &PatchValuePath,
    value: Value,
) -> Result<(), ScimError> {
    guard_read_only(&path.attr.name)?;
    let name = canonical_name(&path.attr.name);
    let object = container(root, &path.attr)?;
    let key = find_key(object, &name).unwrap_or(name);
    let list = object
        .entry(key.clone())
        .or_insert_with(|| Value::Array(Vec::new()));
    let Value::Array(list) = list else {
        return Err(ScimError::invalid_path(format!(
            "{key} is not multi-valued, so it cannot be filtered"
        )));
    };
    let mut matched = false;
    for element in list.iter_mut() {
        if !matches(element, &path.filter)? {
            continue;
        }
        matched = true;
        match (&path.sub_attr, element) {
            (Some(sub), Value::Object(e)) => {
                let sub_key = find_key(e, sub).unwrap_or_else(|| sub.clone());
                e.insert(sub_key, value.clone());
            }
            (None, Value::Object(e)) => match &value {
                Value::Object(new) => e.extend(new.clone()),
                other => {
                    return Err(ScimError::invalid_value(format!(
                        "{key}[…] is replaced by an object, not {}",
                        json_kind(other)
                    )));
                }
            },
            (_, other) => *other = value.clone(),
        }
    }
    if matched {
        return Ok(());
    }
    if op == Op::Replace {
        return Err(ScimError::no_target(format!(
            "no value of {key} matches the filter in the path"
        )));
    }
    let mut element = Map::new();
    seed_from_filter(&path.filter, &mut element)?;
    match (&path.sub_attr, value) {
        (Some(sub), v) => {
            element.insert(sub.clone(), v);
        }
        (None, Value::Object(new)) => element.extend(new),
        (None, other) => {
            return Err(ScimError::invalid_value(format!(
                "{key}[…] is added as an object, not {}",
                json_kind(&other)
            )));
        }
    }
    list.push(Value::Object(element));
    Ok(())
}

/// The sub-attributes an `eq` filter fixes, for a value `add` creates.
fn seed_from_filter(filter: &ValFilter, element: &mut Map<String, Value>) -> Result<(), ScimError> {
    match filter {
        ValFilter::Attr(AttrExp::Comparison(path, CompareOp::Eq, value)) => {
            element.insert(path.name.clone(), comp_json(value));
            Ok(())
        }
        ValFilter::And(operands) => operands
            .as_slice()
            .iter()
            .try_for_each(|f| seed_from_filter(f, element)),
        _ => Err(ScimError::no_target(
            "no value matches the filter, and only eq terms joined by and say what to add",
        )),
    }
}

fn comp_json(value: &CompValue) -> Value {
    match value {
        CompValue::False => Value::Bool(false),
        CompValue::True => Value::Bool(true),
        CompValue::Null => Value::Null,
        CompValue::Number(n) => Value::Number(n.clone()),
        CompValue::Str(s) => Value::String(s.clone()),
    }
}

/// `remove` of an attribute, a sub-attribute, or the values a filter matches.
fn remove(root: &mut Map<String, Value>, path: &PatchPath) -> Result<(), ScimError> {
    match path {
        PatchPath::Attr(path) if names_extension(path) => {
            // RFC 7644 §3.5.2.2: the extension and all its attributes are removed;
            // `schemas` no longer lists it (RFC 7643 §3: it names what is present).
            if let Some(key) = find_key(root, ENTERPRISE_SCHEMA) {
                root.remove(&key);
            }
            if let Some(Value::Array(schemas)) = root.get_mut("schemas") {
                schemas.retain(|s| {
                    !s.as_str()
                        .is_some_and(|s| s.eq_ignore_ascii_case(ENTERPRISE_SCHEMA))
                });
            }
            Ok(())
        }
        PatchPath::Attr(path) => {
            guard_read_only(&path.name)?;
            let object = container(root, path)?;
            let Some(key) = find_key(object, &path.name) else {
                return Ok(());
            };
            match &path.sub_attr {
                None => {
                    object.remove(&key);
                }
                Some(sub) => {
                    if let Some(Value::Object(parent)) = object.get_mut(&key)
                        && let Some(sub_key) = find_key(parent, sub)
                    {
                        parent.remove(&sub_key);
                    }
                }
            }
            Ok(())
        }
        PatchPath::Value(path) => {
            guard_read_only(&path.attr.name)?;
            let object = container(root, &path.attr)?;
            let Some(key) = find_key(object, &path.attr.name) else {
                return Ok(());
            };
            let Some(Value::Array(list)) = object.get_mut(&key) else {
                return Ok(());
            };
            let mut kept = Vec::with_capacity(list.len());
            for element in list.drain(..) {
                let hit = matches(&element, &path.filter)?;
                match (&path.sub_attr, hit, element) {
                    (Some(sub), true, Value::Object(mut e)) => {
                        if let Some(sub_key) = find_key(&e, sub) {
                            e.remove(&sub_key);
                        }
                        kept.push(Value::Object(e));
                    }
                    (None, true, _) => {}
                    (_, _, element) => kept.push(element),
                }
            }
            if kept.is_empty() {
                object.remove(&key);
            } else {
                object.insert(key, Value::Array(kept));
            }
            Ok(())
        }
    }
}

/// Whether one value of a multi-valued attribute matches a `[…]` filter.
fn matches(element: &Value, filter: &ValFilter) -> Result<bool, ScimError> {
    Ok(match filter {
        ValFilter::Attr(AttrExp::Present(path)) => sub_value(element, path).is_some(),
        ValFilter::Attr(AttrExp::Comparison(path, op, expected)) => {
            compare(sub_value(element, path), op, expected)?
        }
        ValFilter::Not(inner) => !matches(element, inner)?,
        ValFilter::And(operands) => {
            for f in operands.as_slice() {
                if !matches(element, f)? {
                    return Ok(false);
                }
            }
            true
        }
        ValFilter::Or(operands) => {
            for f in operands.as_slice() {
                if matches(element, f)? {
                    return Ok(true);
                }
            }
            false
        }
    })
}

fn sub_value<'a>(element: &'a Value, path: &AttrPath) -> Option<&'a Value> {
    let object = element.as_object()?;
    let key = find_key(object, &path.name)?;
    object.get(&key).filter(|v| !v.is_null())
}

/// `eq`, `ne`, `co`, `sw`, `ew` on strings (without case: RFC 7643 makes the
/// sub-attributes offboard filters on, `type` and `value`, caseExact false) and
/// `eq`/`ne` on booleans and numbers; ordering operators are refused.
fn compare(
    actual: Option<&Value>,
    op: &CompareOp,
    expected: &CompValue,
) -> Result<bool, ScimError> {
    let Some(actual) = actual else {
        return Ok(matches!(op, CompareOp::Ne));
    };
    match (actual, expected) {
        (Value::String(a), CompValue::Str(e)) => {
            let (a, e) = (a.to_lowercase(), e.to_lowercase());
            Ok(match op {
                CompareOp::Eq => a == e,
                CompareOp::Ne => a != e,
                CompareOp::Co => a.contains(&e),
                CompareOp::Sw => a.starts_with(&e),
                CompareOp::Ew => a.ends_with(&e),
                _ => {
                    return Err(ScimError::invalid_filter(
                        "gt, ge, lt and le are not supported in a PATCH path",
                    ));
                }
            })
        }
        (actual, CompValue::True | CompValue::False) => {
            let want = matches!(expected, CompValue::True);
            let equal = as_bool(actual) == Some(want);
            match op {
                CompareOp::Eq => Ok(equal),
                CompareOp::Ne => Ok(!equal),
                _ => Err(ScimError::invalid_filter(
                    "booleans compare with eq or ne only",
                )),
            }
        }
        (Value::Number(a), CompValue::Number(e)) => match op {
            CompareOp::Eq => Ok(a == e),
            CompareOp::Ne => Ok(a != e),
            _ => Err(ScimError::invalid_filter(
                "numbers compare with eq or ne in a PATCH path",
            )),
        },
        _ => Ok(matches!(op, CompareOp::Ne)),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn patched(resource: Value, operations: Value) -> Result<Value, ScimError> {
        let ops = parse(json!({
            "schemas": [scim_v2::schema_urns::PATCH_OP],
            "Operations": operations,
        }))?;
        apply(&resource, &ops)
    }

    #[test]
    fn the_extension_urn_as_a_path_targets_the_whole_extension() {
        let user = json!({
            "schemas": [USER_SCHEMA, ENTERPRISE_SCHEMA],
            "userName": "a@example.com",
            ENTERPRISE_SCHEMA: { "department": "Sales", "costCenter": "7" },
        });
        // add/replace: the sub-attributes named are set, the others kept; the
        // value's own `schemas` is not an attribute.
        for op in ["add", "Replace"] {
            let out = patched(
                user.clone(),
                json!([{ "op": op, "path": ENTERPRISE_SCHEMA, "value": {
                    "schemas": [ENTERPRISE_SCHEMA],
                    "department": "Support",
                    "manager": { "value": "boss" },
                }}]),
            )
            .unwrap();
            assert_eq!(
                out[ENTERPRISE_SCHEMA],
                json!({ "department": "Support", "costCenter": "7", "manager": { "value": "boss" } }),
                "{op}"
            );
        }
        // remove: the extension is gone, and `schemas` no longer lists it.
        let out = patched(
            user,
            json!([{ "op": "remove", "path": ENTERPRISE_SCHEMA.to_ascii_lowercase() }]),
        )
        .unwrap();
        assert!(out.get(ENTERPRISE_SCHEMA).is_none(), "{out}");
        assert_eq!(out["schemas"], json!([USER_SCHEMA]));
    }

    #[test]
    fn an_extension_attribute_path_still_names_one_attribute() {
        let out = patched(
            json!({ "schemas": [USER_SCHEMA], "userName": "a@example.com" }),
            json!([{ "op": "add", "path": format!("{ENTERPRISE_SCHEMA}:department"), "value": "Sales" }]),
        )
        .unwrap();
        assert_eq!(out[ENTERPRISE_SCHEMA], json!({ "department": "Sales" }));
    }
}
