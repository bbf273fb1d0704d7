//! The `objects` parameter: a YAML document `array:` whose items are YAML strings, each one
//! describing one Key Vault object, decoded into [`ObjectSpec`]s and validated.
//!
//! Both YAML levels are decoded with a tight `serde-saphyr` budget (depth, events, aliases,
//! scalar bytes), so deep nesting or alias bombs in a SecretProviderClass end in an error, not in
//! an exhausted stack or heap. Error messages carry the parser's message and location but no
//! snippet of the input. Beyond upstream's checks, the object type, file permission, path shape
//! and path collisions are validated here, before anything is fetched.

use std::collections::HashMap;

use serde::Deserialize;

use super::{
    MAX_OBJECTS, MAX_OBJECTS_YAML_BYTES, MAX_VERSION_HISTORY, ObjectEncoding, ObjectFormat, ObjectSpec, ObjectType,
    RequestError, short,
};

/// Longest path element the driver accepts.
pub const MAX_PATH_ELEMENT: usize = 255;
/// Longest path the driver accepts.
pub const MAX_PATH: usize = 4096;

#[derive(Deserialize)]
struct ObjectsDocument {
    #[serde(default)]
    array: Option<Vec<String>>,
}

/// One item as written; every field optional as in upstream's non-strict decoding.
#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct RawObject {
    object_name: Option<String>,
    object_type: Option<String>,
    object_version: Option<String>,
    object_alias: Option<String>,
    object_format: Option<String>,
    object_encoding: Option<String>,
    file_permission: Option<String>,
    object_version_history: Option<i64>,
}

/// Parses and validates `objects` (already trimmed, non-empty), in SecretProviderClass order.
pub fn parse_objects(yaml: &str) -> Result<Vec<ObjectSpec>, RequestError> {
    if yaml.len() > MAX_OBJECTS_YAML_BYTES {
        return Err(RequestError(format!("objects is {} bytes, more than the limit of {MAX_OBJECTS_YAML_BYTES}", yaml.len())));
    }
    let document: Option<ObjectsDocument> =
        from_yaml(yaml).map_err(|e| RequestError(format!("failed to yaml unmarshal objects, error: {e}")))?;
    let items = document.and_then(|d| d.array).unwrap_or_default();
    if items.len() > MAX_OBJECTS {
        return Err(RequestError(format!("objects lists {} objects, more than the limit of {MAX_OBJECTS}", items.len())));
    }
    let objects = items.iter().enumerate().map(|(i, item)| parse_object(i, item)).collect::<Result<Vec<_>, _>>()?;
    check_collisions(&objects)?;
    Ok(objects)
}

fn parse_object(index: usize, item: &str) -> Result<ObjectSpec, RequestError> {
    let raw: RawObject = from_yaml::<Option<RawObject>>(item)
        .map_err(|e| RequestError(format!("unmarshal failed for keyVaultObjects at index {index}, error: {e}")))?
        .unwrap_or_default();
    let text = |field: Option<String>| field.map(|s| s.trim().to_string()).unwrap_or_default();
    let name = text(raw.object_name);
    let type_text = text(raw.object_type);
    let fail = |problem: String| RequestError(format!("object {}/{}: {problem}", short(&type_text), short(&name)));
    let object_type = match type_text.as_str() {
        "secret" => ObjectType::Secret,
        "key" => ObjectType::Key,
        "cert" => ObjectType::Cert,
        other => return Err(fail(format!("invalid objectType {:?}, should be secret, key or cert", short(other)))),
    };
    let format = parse_format(object_type, &text(raw.object_format)).map_err(fail)?;
    let encoding = parse_encoding(object_type, &text(raw.object_encoding)).map_err(fail)?;
    let alias = text(raw.object_alias);
    validate_file_name(if alias.is_empty() { &name } else { &alias }).map_err(fail)?;
    let file_mode = parse_file_mode(&text(raw.file_permission)).map_err(fail)?;
    let version_history = match raw.object_version_history.unwrap_or(0) {
        n if n > i64::from(MAX_VERSION_HISTORY) => {
            return Err(fail(format!("objectVersionHistory {n} is more than the limit of {MAX_VERSION_HISTORY}")));
        }
        // Lossless: 2..=MAX_VERSION_HISTORY fits in u32.
        n if n > 1 => n as u32,
        _ => 1,
    };
    Ok(ObjectSpec {
        name,
        object_type,
        version: text(raw.object_version),
        alias,
        format,
        encoding,
        file_mode,
        version_history,
    })
}

fn parse_format(object_type: ObjectType, value: &str) -> Result<ObjectFormat, String> {
    let format = match value.to_ascii_lowercase().as_str() {
        "" | "pem" => ObjectFormat::Pem,
        "pfx" => ObjectFormat::Pfx,
        _ => return Err(format!("invalid objectFormat {:?}, should be PEM or PFX", short(value))),
    };
    if format == ObjectFormat::Pfx && object_type != ObjectType::Secret {
        return Err("PFX format only supported for objectType: secret".into());
    }
    Ok(format)
}

fn parse_encoding(object_type: ObjectType, value: &str) -> Result<ObjectEncoding, String> {
    if value.is_empty() {
        return Ok(ObjectEncoding::Utf8);
    }
    if object_type != ObjectType::Secret {
        return Err("objectEncoding only supported for objectType: secret".into());
    }
    match value.to_ascii_lowercase().as_str() {
        "utf-8" => Ok(ObjectEncoding::Utf8),
        "base64" => Ok(ObjectEncoding::Base64),
        "hex" => Ok(ObjectEncoding::Hex),
        _ => Err(format!("invalid objectEncoding {:?}, should be hex, base64 or utf-8", short(value))),
    }
}

/// `filePermission`: an octal mode such as `0600` or `644`; empty means the request's mode.
fn parse_file_mode(value: &str) -> Result<Option<u32>, String> {
    if value.is_empty() {
        return Ok(None);
    }
    let bad = || format!("invalid filePermission {:?}, should be an octal mode from 0000 to 0777 such as \"0644\"", short(value));
    if !value.bytes().all(|b| (b'0'..=b'7').contains(&b)) {
        return Err(bad());
    }
    match u32::from_str_radix(value, 8) {
        Ok(mode) if mode <= 0o777 => Ok(Some(mode)),
        _ => Err(bad()),
    }
}

/// The file name (alias, else name) must be a path the driver will write: relative, clean, no
/// `..` anywhere (upstream also rejects `a..b`), element and total lengths within its limits.
pub fn validate_file_name(path: &str) -> Result<(), String> {
    if path.is_empty() {
        return Err("file name must not be empty".into());
    }
    let shown = short(path);
    if path.starts_with('/') {
        return Err(format!("file name {shown:?} must be a relative path"));
    }
    if path.contains("..") {
        return Err(format!("file name {shown:?} must not contain '..'"));
    }
    if path.contains('\0') {
        return Err(format!("file name {shown:?} must not contain a NUL character"));
    }
    if path.len() > MAX_PATH {
        return Err(format!("file name {shown:?} is longer than {MAX_PATH} bytes"));
    }
    for element in path.split('/') {
        if element.is_empty() || element == "." {
            return Err(format!("file name {shown:?} must be a clean relative path (no './', '//' or trailing '/')"));
        }
        if element.len() > MAX_PATH_ELEMENT {
            return Err(format!("file name {shown:?} has a path element longer than {MAX_PATH_ELEMENT} bytes"));
        }
    }
    Ok(())
}

/// Rejects two objects whose files would overlap: the same path, a file that another object
/// needs as a directory, or a multi-version file `<file>/<i>` that is another object's path.
fn check_collisions(objects: &[ObjectSpec]) -> Result<(), RequestError> {
    let mut roots: HashMap<&str, &ObjectSpec> = HashMap::with_capacity(objects.len());
    for object in objects {
        if let Some(first) = roots.insert(object.file_name(), object) {
            return Err(collision(first, object, object.file_name()));
        }
    }
    for object in objects {
        let path = object.file_name();
        for (slash, _) in path.match_indices('/') {
            let (ancestor, rest) = (&path[..slash], &path[slash + 1..]);
            let Some(owner) = roots.get(ancestor) else { continue };
            if !owner.is_multi_version() {
                return Err(collision(owner, object, ancestor));
            }
            let version = rest.split('/').next().unwrap_or(rest);
            if is_version_index(version, owner.version_history) {
                return Err(collision(owner, object, &path[..slash + 1 + version.len()]));
            }
        }
    }
    Ok(())
}

/// `s` is the decimal `i` of a `<file>/<i>` path with `i < n` (written without leading zeros).
fn is_version_index(s: &str, n: u32) -> bool {
    (s == "0" || !s.starts_with('0')) && s.parse::<u32>().is_ok_and(|i| i < n)
}

fn collision(first: &ObjectSpec, second: &ObjectSpec, path: &str) -> RequestError {
    RequestError(format!("object {second}: its file collides with object {first} at path {:?}", short(path)))
}

/// serde-saphyr with limits far above any real SecretProviderClass and far below harm.
fn from_yaml<T: serde::de::DeserializeOwned>(yaml: &str) -> Result<T, String> {
    let options = serde_saphyr::options! {
        budget: serde_saphyr::budget! {
            max_reader_input_bytes: Some(MAX_OBJECTS_YAML_BYTES),
            flow_nesting_limit: 16,
            max_depth: 16,
            max_events: 200_000,
            max_aliases: 100,
            max_anchors: 100,
            max_documents: 1,
            max_nodes: 100_000,
            max_total_scalar_bytes: 2 * MAX_OBJECTS_YAML_BYTES,
            max_recorded_anchor_events: 10_000,
            max_recorded_anchor_bytes: 2 * MAX_OBJECTS_YAML_BYTES,
            max_merge_keys: 100,
        },
        alias_limits: serde_saphyr::alias_limits! {
            max_total_replayed_events: 10_000,
            max_replay_stack_depth: 16,
            max_alias_expansions_per_anchor: 100,
        },
        with_snippet: false,
    };
    serde_saphyr::from_str_with_options(yaml, options).map_err(|e| e.to_string())
}
