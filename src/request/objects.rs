//! The `objects` parameter: a YAML document `array:` whose items are YAML strings, each one
//! describing one Key Vault object, decoded into [`ObjectSpec`]s and validated.
//!
//! Both YAML levels are decoded with a tight `serde-saphyr` budget (depth, events, aliases,
//! scalar bytes), so deep nesting or alias bombs in a SecretProviderClass end in an error, not in
//! an exhausted stack or heap. Error messages carry the parser's message and location but no
//! snippet of the input. Beyond upstream's checks, the object type, name and version, file
//! permission, path shape and path collisions are validated here, before anything is fetched.
//!
//! Fields beyond upstream's (README "Object fields beyond upstream"): `jmesPath` (a secret's
//! JSON fields as files; expressions checked by [`crate::content::jmes::validate`], their files
//! part of the collision and file-count checks), `objectNotAfter` (RFC 3339; not with
//! `objectVersion`) and the object's own `keyvaultName` (validated as the SecretProviderClass's).

use std::collections::HashMap;

use serde::Deserialize;

use super::{
    JmesPathEntry, MAX_OBJECTS, MAX_OBJECTS_YAML_BYTES, MAX_VERSION_HISTORY, NotAfter,
    ObjectEncoding, ObjectFormat, ObjectSpec, ObjectType, RequestError, short,
};
use crate::content::jmes;

/// Longest path element the driver accepts.
pub const MAX_PATH_ELEMENT: usize = 255;
/// Longest path the driver accepts.
pub const MAX_PATH: usize = 4096;
/// Longest Key Vault object name.
const MAX_KEY_VAULT_NAME: usize = 127;
/// Most object versions (files before the optional `.crt`/`.key` split) one mount may ask for:
/// the sum over its objects of `objectVersionHistory` (1 for an object without history). A
/// mount over it is refused before anything is fetched; 1,000 entries stay well within the
/// driver's 4 MiB response at Key Vault's typical value sizes.
pub const MAX_FILES_PER_MOUNT: usize = 1000;

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
    jmes_path: Option<Vec<RawJmesPath>>,
    object_not_after: Option<String>,
    keyvault_name: Option<String>,
}

/// One `jmesPath` entry as written.
#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct RawJmesPath {
    path: Option<String>,
    object_alias: Option<String>,
}

/// Parses and validates `objects` (already trimmed, non-empty), in SecretProviderClass order.
pub fn parse_objects(yaml: &str) -> Result<Vec<ObjectSpec>, RequestError> {
    if yaml.len() > MAX_OBJECTS_YAML_BYTES {
        return Err(RequestError(format!(
            "objects is {} bytes, more than the limit of {MAX_OBJECTS_YAML_BYTES}",
            yaml.len()
        )));
    }
    let document: Option<ObjectsDocument> = from_yaml(yaml)
        .map_err(|e| RequestError(format!("failed to yaml unmarshal objects, error: {e}")))?;
    let items = document.and_then(|d| d.array).unwrap_or_default();
    if items.len() > MAX_OBJECTS {
        return Err(RequestError(format!(
            "objects lists {} objects, more than the limit of {MAX_OBJECTS}",
            items.len()
        )));
    }
    let objects = items
        .iter()
        .enumerate()
        .map(|(i, item)| parse_object(i, item))
        .collect::<Result<Vec<_>, _>>()?;
    check_file_count(&objects)?;
    check_collisions(&objects)?;
    Ok(objects)
}

/// Refuses a mount whose objects × versions exceed [`MAX_FILES_PER_MOUNT`], naming the object
/// at which the count passes the limit.
fn check_file_count(objects: &[ObjectSpec]) -> Result<(), RequestError> {
    let count = |o: &ObjectSpec| o.version_history.max(1) as usize * o.files_per_version();
    let mut files = 0usize;
    for object in objects {
        files += count(object);
        if files > MAX_FILES_PER_MOUNT {
            let total: usize = objects.iter().map(count).sum();
            return Err(RequestError(format!(
                "object {object}: the mount asks for {total} object versions (objects × objectVersionHistory, each jmesPath entry counting as one more object), more than the limit of {MAX_FILES_PER_MOUNT}; split the SecretProviderClass or lower objectVersionHistory"
            )));
        }
    }
    Ok(())
}

fn parse_object(index: usize, item: &str) -> Result<ObjectSpec, RequestError> {
    let raw: RawObject = from_yaml::<Option<RawObject>>(item)
        .map_err(|e| {
            RequestError(format!(
                "unmarshal failed for keyVaultObjects at index {index}, error: {e}"
            ))
        })?
        .unwrap_or_default();
    let text = |field: Option<String>| field.map(|s| s.trim().to_string()).unwrap_or_default();
    let name = text(raw.object_name);
    let type_text = text(raw.object_type);
    let fail = |problem: String| {
        RequestError(format!(
            "object {}/{}: {problem}",
            short(&type_text),
            short(&name)
        ))
    };
    let object_type = match type_text.as_str() {
        "secret" => ObjectType::Secret,
        "key" => ObjectType::Key,
        "cert" => ObjectType::Cert,
        other => {
            return Err(fail(format!(
                "invalid objectType {:?}, should be secret, key or cert",
                short(other)
            )));
        }
    };
    let format = parse_format(object_type, &text(raw.object_format)).map_err(fail)?;
    let encoding = parse_encoding(object_type, &text(raw.object_encoding)).map_err(fail)?;
    let alias = text(raw.object_alias);
    validate_file_name(if alias.is_empty() { &name } else { &alias }).map_err(fail)?;
    let version = text(raw.object_version);
    validate_key_vault_id("objectName", &name, false).map_err(fail)?;
    validate_key_vault_id("objectVersion", &version, true).map_err(fail)?;
    let file_mode = parse_file_mode(&text(raw.file_permission)).map_err(fail)?;
    let version_history = match raw.object_version_history.unwrap_or(0) {
        n if n > i64::from(MAX_VERSION_HISTORY) => {
            return Err(fail(format!(
                "objectVersionHistory {n} is more than the limit of {MAX_VERSION_HISTORY}"
            )));
        }
        // Lossless: 2..=MAX_VERSION_HISTORY fits in u32.
        n if n > 1 => n as u32,
        _ => 1,
    };
    let jmes_path = parse_jmes_path(raw.jmes_path, object_type, format, encoding).map_err(fail)?;
    let not_after = match raw.object_not_after.map(|t| t.trim().to_string()) {
        None => None,
        Some(t) if t.is_empty() => None,
        Some(t) => Some(parse_not_after(&t, &version).map_err(fail)?),
    };
    let vault = match text(raw.keyvault_name) {
        v if v.is_empty() => None,
        v => {
            super::validate_vault_name(&v).map_err(|e| fail(e.0))?;
            Some(v.to_ascii_lowercase())
        }
    };
    Ok(ObjectSpec {
        name,
        object_type,
        version,
        alias,
        format,
        encoding,
        file_mode,
        version_history,
        jmes_path,
        not_after,
        vault,
    })
}

/// `jmesPath`: secrets only, with their value written as is (utf-8, not PFX); each entry has a
/// valid expression within the limits of [`jmes`] and a valid file name.
fn parse_jmes_path(
    raw: Option<Vec<RawJmesPath>>,
    object_type: ObjectType,
    format: ObjectFormat,
    encoding: ObjectEncoding,
) -> Result<Vec<JmesPathEntry>, String> {
    let Some(raw) = raw.filter(|entries| !entries.is_empty()) else {
        return Ok(Vec::new());
    };
    if object_type != ObjectType::Secret {
        return Err("jmesPath is only supported for objectType: secret".into());
    }
    if format == ObjectFormat::Pfx {
        return Err(
            "jmesPath cannot be combined with objectFormat: pfx (the value must be JSON)".into(),
        );
    }
    if encoding != ObjectEncoding::Utf8 {
        return Err("jmesPath cannot be combined with objectEncoding base64 or hex (the value must be JSON text)".into());
    }
    if raw.len() > jmes::MAX_PATHS_PER_OBJECT {
        return Err(format!(
            "jmesPath has {} entries, more than the limit of {}",
            raw.len(),
            jmes::MAX_PATHS_PER_OBJECT
        ));
    }
    let entries = raw
        .into_iter()
        .enumerate()
        .map(|(i, entry)| {
            let path = entry.path.unwrap_or_default().trim().to_string();
            let alias = entry.object_alias.unwrap_or_default().trim().to_string();
            let at = if path.is_empty() {
                format!("jmesPath entry {i}")
            } else {
                format!("jmesPath path {:?}", short(&path))
            };
            jmes::validate(&path).map_err(|e| format!("{at}: {e}"))?;
            if alias.is_empty() {
                return Err(format!(
                    "{at}: objectAlias is required (the file the result is written to)"
                ));
            }
            validate_file_name(&alias).map_err(|e| format!("{at}: {e}"))?;
            Ok(JmesPathEntry { path, alias })
        })
        .collect::<Result<Vec<_>, String>>()?;
    jmes::validate_all(entries.iter().map(|e| e.path.as_str()))?;
    Ok(entries)
}

/// `objectNotAfter`: an RFC 3339 time, and no `objectVersion` beside it.
fn parse_not_after(text: &str, version: &str) -> Result<NotAfter, String> {
    if !version.is_empty() {
        return Err(format!(
            "objectNotAfter cannot be combined with objectVersion {:?}: objectNotAfter picks the version; remove one of them",
            short(version)
        ));
    }
    let time = time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
        .map_err(|_| {
            format!(
                "invalid objectNotAfter {:?}, should be an RFC 3339 time such as \"2026-01-31T12:00:00Z\"",
                short(text)
            )
        })?;
    Ok(NotAfter {
        unix: time.unix_timestamp(),
        text: text.to_string(),
    })
}

fn parse_format(object_type: ObjectType, value: &str) -> Result<ObjectFormat, String> {
    let format = match value.to_ascii_lowercase().as_str() {
        "" | "pem" => ObjectFormat::Pem,
        "pfx" => ObjectFormat::Pfx,
        _ => {
            return Err(format!(
                "invalid objectFormat {:?}, should be PEM or PFX",
                short(value)
            ));
        }
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
        _ => Err(format!(
            "invalid objectEncoding {:?}, should be hex, base64 or utf-8",
            short(value)
        )),
    }
}

/// Key Vault object names (and version ids) are 1–127 letters, digits and dashes. Checked up
/// front because they go into request URLs, and so a typo fails before anything is fetched; the
/// Key Vault client applies the same rule to every name and version it puts in a URL.
pub fn validate_key_vault_id(field: &str, value: &str, may_be_empty: bool) -> Result<(), String> {
    if value.is_empty() && may_be_empty {
        return Ok(());
    }
    let valid = (1..=MAX_KEY_VAULT_NAME).contains(&value.len())
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-');
    if valid {
        return Ok(());
    }
    Err(format!(
        "invalid {field} {:?}, Key Vault names are 1 to {MAX_KEY_VAULT_NAME} letters, digits and dashes",
        short(value)
    ))
}

/// `filePermission`: an octal mode such as `0600` or `644`; empty means the request's mode.
fn parse_file_mode(value: &str) -> Result<Option<u32>, String> {
    if value.is_empty() {
        return Ok(None);
    }
    let bad = || {
        format!(
            "invalid filePermission {:?}, should be an octal mode from 0000 to 0777 such as \"0644\"",
            short(value)
        )
    };
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
        return Err(format!(
            "file name {shown:?} must not contain a NUL character"
        ));
    }
    if path.len() > MAX_PATH {
        return Err(format!(
            "file name {shown:?} is longer than {MAX_PATH} bytes"
        ));
    }
    for element in path.split('/') {
        if element.is_empty() || element == "." {
            return Err(format!(
                "file name {shown:?} must be a clean relative path (no './', '//' or trailing '/')"
            ));
        }
        if element.len() > MAX_PATH_ELEMENT {
            return Err(format!(
                "file name {shown:?} has a path element longer than {MAX_PATH_ELEMENT} bytes"
            ));
        }
    }
    Ok(())
}

/// One file root of the mount: an object's own file or one of its `jmesPath` files, with the
/// number of versions written under it (`<path>/<i>` when more than one).
struct Root<'a> {
    path: &'a str,
    owner: &'a ObjectSpec,
    versions: u32,
}

/// Rejects two objects whose files would overlap: the same path, a file that another object
/// needs as a directory, or a multi-version file `<file>/<i>` that is another object's path.
/// `jmesPath` files take part like objects' own files.
fn check_collisions(objects: &[ObjectSpec]) -> Result<(), RequestError> {
    let mut all: Vec<Root<'_>> = Vec::with_capacity(objects.len());
    for object in objects {
        all.push(Root {
            path: object.file_name(),
            owner: object,
            versions: object.version_history,
        });
        for entry in &object.jmes_path {
            all.push(Root {
                path: &entry.alias,
                owner: object,
                versions: object.version_history,
            });
        }
    }
    let mut roots: HashMap<&str, &Root<'_>> = HashMap::with_capacity(all.len());
    for root in &all {
        if let Some(first) = roots.insert(root.path, root) {
            return Err(collision(first.owner, root.owner, root.path));
        }
    }
    for root in &all {
        let path = root.path;
        for (slash, _) in path.match_indices('/') {
            let (ancestor, rest) = (&path[..slash], &path[slash + 1..]);
            let Some(owner) = roots.get(ancestor) else {
                continue;
            };
            if owner.versions <= 1 {
                return Err(collision(owner.owner, root.owner, ancestor));
            }
            let version = rest.split('/').next().unwrap_or(rest);
            if is_version_index(version, owner.versions) {
                return Err(collision(
                    owner.owner,
                    root.owner,
                    &path[..slash + 1 + version.len()],
                ));
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
    RequestError(format!(
        "object {second}: its file collides with object {first} at path {:?}; give one of them another objectAlias",
        short(path)
    ))
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

#[cfg(test)]
mod tests;
