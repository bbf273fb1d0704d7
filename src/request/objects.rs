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
mod tests {
    use super::*;

    fn one(item: &str) -> Result<ObjectSpec, String> {
        let yaml = format!(
            "array:\n  - |\n{}",
            item.lines()
                .map(|l| format!("    {l}\n"))
                .collect::<String>()
        );
        parse_objects(&yaml)
            .map_err(|e| e.0)
            .map(|mut v| v.remove(0))
    }

    fn err(item: &str) -> String {
        one(item).unwrap_err()
    }

    #[test]
    fn e2e_style_block_strings() {
        let yaml = r#"
array:
  - |
    objectName: secret1
    objectType: secret
    objectVersion: ""
  - |
    objectName: key1
    objectType: key
    objectAlias: " keys/key1 "
    objectVersion: 6b6ee2b5b8e24d3c8a4b9c6d
  - |
    objectName: cert1
    objectType: cert
    objectFormat: PEM
    filePermission: 0755
  - |
    objectName: pfx1
    objectType: secret
    objectFormat: PFX
    objectEncoding: BasE64
    filePermission: "0600"
    objectVersionHistory: 5
    unknownField: ignored
"#;
        let objects = parse_objects(yaml).unwrap();
        assert_eq!(objects.len(), 4);
        assert_eq!(objects[0].id(), "secret/secret1");
        assert_eq!(objects[0].file_name(), "secret1");
        assert_eq!(objects[0].version, "");
        assert_eq!(objects[0].file_mode, None);
        assert_eq!(objects[0].version_history, 1);
        assert_eq!(objects[1].alias, "keys/key1");
        assert_eq!(objects[1].version, "6b6ee2b5b8e24d3c8a4b9c6d");
        assert_eq!(objects[2].file_mode, Some(0o755));
        assert_eq!(objects[3].format, ObjectFormat::Pfx);
        assert_eq!(objects[3].encoding, ObjectEncoding::Base64);
        assert_eq!(objects[3].file_mode, Some(0o600));
        assert_eq!(objects[3].version_history, 5);
        assert!(objects[3].is_multi_version());
        assert_eq!(objects[3].to_string(), "secret/pfx1");
    }

    #[test]
    fn empty_and_keyless_documents_have_no_objects() {
        for yaml in ["array:", "array: []", "# nothing", "other: 1", "array: ~"] {
            assert!(parse_objects(yaml).unwrap().is_empty(), "{yaml}");
        }
    }

    #[test]
    fn structural_yaml_errors() {
        for yaml in [
            "- |\n  objectName: secret1\n  objectType: secret",
            "invalid",
            "array:\n  - objectName: a\n    objectType: secret",
            "array: [1, [2]]",
            "array:\n- a\narray:\n- b",
        ] {
            let e = parse_objects(yaml).unwrap_err().0;
            assert!(
                e.starts_with("failed to yaml unmarshal objects, error:"),
                "{yaml}: {e}"
            );
        }
        let e = parse_objects("array:\n  - \"objectName: [\"")
            .unwrap_err()
            .0;
        assert!(
            e.contains("unmarshal failed for keyVaultObjects at index 0"),
            "{e}"
        );
        let e = parse_objects("array:\n  - |\n    objectName: a\n    objectType: secret\n    objectVersionHistory: many").unwrap_err().0;
        assert!(e.contains("index 0"), "{e}");
    }

    #[test]
    fn yaml_errors_show_location_but_no_snippet() {
        let e = parse_objects("array:\n  - a\n  b: [SECRETISH")
            .unwrap_err()
            .0;
        assert!(e.contains("line"), "{e}");
        assert!(!e.contains("SECRETISH"), "{e}");
    }

    #[test]
    fn object_type_is_case_sensitive() {
        assert!(err("objectName: a\nobjectType: Secret").contains(
            "object Secret/a: invalid objectType \"Secret\", should be secret, key or cert"
        ));
        assert!(err("objectName: a").contains("object /a: invalid objectType \"\""));
    }

    #[test]
    fn object_format() {
        // §7 B 19.
        assert_eq!(
            one("objectName: a\nobjectType: cert\nobjectFormat: \"\"")
                .unwrap()
                .format,
            ObjectFormat::Pem
        );
        let e = err("objectName: db-pass\nobjectType: secret\nobjectFormat: pkcs");
        assert_eq!(
            e,
            "object secret/db-pass: invalid objectFormat \"pkcs\", should be PEM or PFX"
        );
        assert!(
            err("objectName: a\nobjectType: cert\nobjectFormat: pfx")
                .contains("PFX format only supported for objectType: secret")
        );
        assert!(
            err("objectName: a\nobjectType: key\nobjectFormat: PFX")
                .contains("PFX format only supported")
        );
        assert_eq!(
            one("objectName: a\nobjectType: secret\nobjectFormat: PFX")
                .unwrap()
                .format,
            ObjectFormat::Pfx
        );
        assert_eq!(
            one("objectName: a\nobjectType: secret\nobjectFormat: pfx")
                .unwrap()
                .format,
            ObjectFormat::Pfx
        );
    }

    #[test]
    fn object_encoding() {
        // §7 B 20.
        assert_eq!(
            one("objectName: a\nobjectType: cert\nobjectEncoding: \"\"")
                .unwrap()
                .encoding,
            ObjectEncoding::Utf8
        );
        let e = err("objectName: secret1\nobjectType: secret\nobjectEncoding: utf-16");
        assert!(e.contains("object secret/secret1: invalid objectEncoding \"utf-16\", should be hex, base64 or utf-8"), "{e}");
        assert!(
            err("objectName: a\nobjectType: cert\nobjectEncoding: base64")
                .contains("objectEncoding only supported for objectType: secret")
        );
        assert!(
            err("objectName: a\nobjectType: key\nobjectEncoding: utf-16")
                .contains("objectEncoding only supported")
        );
        assert_eq!(
            one("objectName: a\nobjectType: secret\nobjectEncoding: BasE64")
                .unwrap()
                .encoding,
            ObjectEncoding::Base64
        );
        assert_eq!(
            one("objectName: a\nobjectType: secret\nobjectEncoding: HEX")
                .unwrap()
                .encoding,
            ObjectEncoding::Hex
        );
        assert_eq!(
            one("objectName: a\nobjectType: secret\nobjectEncoding: UTF-8")
                .unwrap()
                .encoding,
            ObjectEncoding::Utf8
        );
    }

    #[test]
    fn file_names() {
        // §7 B 21.
        assert!(
            err("objectName: /secret1\nobjectType: secret")
                .contains("file name \"/secret1\" must be a relative path")
        );
        assert!(
            err("objectName: secret1/..\nobjectType: secret").contains("must not contain '..'")
        );
        assert!(
            err("objectName: ../secret1\nobjectType: secret").contains("must not contain '..'")
        );
        assert!(
            err("objectName: n\nobjectAlias: a..b\nobjectType: secret")
                .contains("must not contain '..'")
        );
        assert!(
            err("objectName: \"\"\nobjectType: secret").contains("file name must not be empty")
        );
        assert!(
            err("objectName: real\nobjectAlias: /abs\nobjectType: secret")
                .contains("object secret/real: file name \"/abs\"")
        );
        for bad in ["./a", "a//b", "a/", "a/./b", "."] {
            assert!(
                err(&format!("objectName: \"{bad}\"\nobjectType: secret"))
                    .contains("clean relative path"),
                "{bad}"
            );
        }
        let long = "x".repeat(256);
        assert!(
            err(&format!("objectName: {long}\nobjectType: secret")).contains("longer than 255")
        );
        let total = vec!["y".repeat(200); 21].join("/");
        assert!(
            err(&format!("objectName: {total}\nobjectType: secret")).contains("longer than 4096")
        );
        assert!(err("objectName: \"a\\0b\"\nobjectType: secret").contains("NUL"));
        assert_eq!(
            one("objectName: \" secret1 \"\nobjectType: \" secret \"")
                .unwrap()
                .file_name(),
            "secret1"
        );
        assert_eq!(
            one("objectName: n\nobjectAlias: dir/sub/file\nobjectType: secret")
                .unwrap()
                .file_name(),
            "dir/sub/file"
        );
        assert!(validate_file_name(&"z".repeat(255)).is_ok());
    }

    #[test]
    fn key_vault_names_and_versions() {
        let e = err("objectName: db_pass\nobjectType: secret");
        assert!(
            e.contains("object secret/db_pass: invalid objectName \"db_pass\""),
            "{e}"
        );
        let e = err("objectName: \"\"\nobjectAlias: file\nobjectType: secret");
        assert!(e.contains("invalid objectName \"\""), "{e}");
        let long = "n".repeat(128);
        assert!(
            err(&format!("objectName: {long}\nobjectType: secret")).contains("invalid objectName")
        );
        let e = err("objectName: a\nobjectType: secret\nobjectVersion: ../keys/x");
        assert!(e.contains("invalid objectVersion"), "{e}");
        for version in ["", "latest", "6b6ee2b5b8e24d3c8a4b9c6d0e1f2a3b"] {
            let item = format!("objectName: a-1\nobjectType: secret\nobjectVersion: \"{version}\"");
            assert_eq!(one(&item).unwrap().version, version);
        }
    }

    #[test]
    fn file_permission() {
        for (value, mode) in [
            ("\"0600\"", 0o600),
            ("0755", 0o755),
            ("\"644\"", 0o644),
            ("\"0\"", 0),
            ("\"0777\"", 0o777),
            ("\"00640\"", 0o640),
        ] {
            assert_eq!(
                one(&format!(
                    "objectName: a\nobjectType: secret\nfilePermission: {value}"
                ))
                .unwrap()
                .file_mode,
                Some(mode),
                "{value}"
            );
        }
        assert_eq!(
            one("objectName: a\nobjectType: secret\nfilePermission: \"\"")
                .unwrap()
                .file_mode,
            None
        );
        for bad in [
            "\"0900\"",
            "900",
            "0o600",
            "rw-",
            "\"1777\"",
            "\"-1\"",
            "\"+644\"",
            "\"99999999999999999999\"",
        ] {
            let e = err(&format!(
                "objectName: a\nobjectType: secret\nfilePermission: {bad}"
            ));
            assert!(
                e.contains("object secret/a: invalid filePermission"),
                "{bad}: {e}"
            );
        }
    }

    #[test]
    fn version_history_is_clamped() {
        for (value, expected) in [
            ("", 1),
            ("0", 1),
            ("-5", 1),
            ("1", 1),
            ("2", 2),
            ("200", 200),
            ("1000", 1000),
        ] {
            let item = format!("objectName: a\nobjectType: secret\nobjectVersionHistory: {value}");
            assert_eq!(one(&item).unwrap().version_history, expected, "{value}");
        }
        let e = err("objectName: a\nobjectType: secret\nobjectVersionHistory: 1001");
        assert!(
            e.contains("object secret/a: objectVersionHistory 1001 is more than the limit of 1000"),
            "{e}"
        );
    }

    fn list(items: &[&str]) -> String {
        let mut yaml = String::from("array:\n");
        for item in items {
            yaml.push_str("  - |\n");
            for line in item.lines() {
                yaml.push_str(&format!("    {line}\n"));
            }
        }
        yaml
    }

    #[test]
    fn collisions() {
        let cases: [(&[&str], &str); 6] = [
            (
                &[
                    "objectName: a\nobjectType: secret",
                    "objectName: a\nobjectType: key",
                ],
                "object key/a: its file collides with object secret/a at path \"a\"",
            ),
            (
                &[
                    "objectName: a\nobjectType: secret",
                    "objectName: b\nobjectAlias: a\nobjectType: cert",
                ],
                "at path \"a\"",
            ),
            (
                &[
                    "objectName: a\nobjectType: secret",
                    "objectName: n\nobjectAlias: a/b\nobjectType: secret",
                ],
                "at path \"a\"",
            ),
            (
                &[
                    "objectName: n\nobjectAlias: x/y/z\nobjectType: secret",
                    "objectName: n\nobjectAlias: x/y\nobjectType: secret",
                ],
                "at path \"x/y\"",
            ),
            (
                &[
                    "objectName: a\nobjectType: secret\nobjectVersionHistory: 3",
                    "objectName: n\nobjectAlias: a/2\nobjectType: key",
                ],
                "at path \"a/2\"",
            ),
            (
                &[
                    "objectName: a\nobjectType: secret\nobjectVersionHistory: 3",
                    "objectName: b\nobjectAlias: a/1/c\nobjectType: key",
                ],
                "at path \"a/1\"",
            ),
        ];
        for (items, want) in cases {
            let e = parse_objects(&list(items)).unwrap_err().0;
            assert!(e.contains(want), "{items:?}: {e}");
        }
        let fine: [&[&str]; 3] = [
            &[
                "objectName: a\nobjectType: secret\nobjectVersionHistory: 3",
                "objectName: n\nobjectAlias: a/3\nobjectType: key",
                "objectName: n\nobjectAlias: a/01\nobjectType: key",
            ],
            &[
                "objectName: a\nobjectType: secret",
                "objectName: ab\nobjectType: secret",
                "objectName: n\nobjectAlias: a-b/c\nobjectType: secret",
            ],
            &[
                "objectName: n\nobjectAlias: d/a\nobjectType: secret",
                "objectName: n\nobjectAlias: d/b\nobjectType: secret",
            ],
        ];
        for items in fine {
            assert_eq!(
                parse_objects(&list(items)).unwrap().len(),
                items.len(),
                "{items:?}"
            );
        }
    }

    #[test]
    fn jmes_path_entries() {
        let object = one(
            "objectName: db-creds\nobjectType: secret\njmesPath:\n  - path: username\n    objectAlias: db-user\n  - path: \" conn.host \"\n    objectAlias: \" cfg/db-host \"",
        )
        .unwrap();
        assert_eq!(
            object.jmes_path,
            [
                JmesPathEntry {
                    path: "username".into(),
                    alias: "db-user".into()
                },
                JmesPathEntry {
                    path: "conn.host".into(),
                    alias: "cfg/db-host".into()
                }
            ]
        );
        assert_eq!(object.files_per_version(), 3);
        assert!(
            one("objectName: a\nobjectType: secret\njmesPath: []")
                .unwrap()
                .jmes_path
                .is_empty()
        );
        let cases = [
            (
                "objectType: key\njmesPath:\n  - path: a\n    objectAlias: b",
                "object key/a: jmesPath is only supported for objectType: secret",
            ),
            (
                "objectType: cert\njmesPath:\n  - path: a\n    objectAlias: b",
                "object cert/a: jmesPath is only supported",
            ),
            (
                "objectType: secret\nobjectFormat: pfx\njmesPath:\n  - path: a\n    objectAlias: b",
                "cannot be combined with objectFormat: pfx",
            ),
            (
                "objectType: secret\nobjectEncoding: base64\njmesPath:\n  - path: a\n    objectAlias: b",
                "cannot be combined with objectEncoding",
            ),
            (
                "objectType: secret\njmesPath:\n  - path: a",
                "object secret/a: jmesPath path \"a\": objectAlias is required",
            ),
            (
                "objectType: secret\njmesPath:\n  - objectAlias: b",
                "object secret/a: jmesPath entry 0: path must not be empty",
            ),
            (
                "objectType: secret\njmesPath:\n  - path: \"a.[\"\n    objectAlias: b",
                "jmesPath path \"a.[\": not a valid JMESPath expression",
            ),
            (
                "objectType: secret\njmesPath:\n  - path: \"[a, b]\"\n    objectAlias: b",
                "multi-select",
            ),
            (
                "objectType: secret\njmesPath:\n  - path: a\n    objectAlias: ../b",
                "jmesPath path \"a\": file name \"../b\" must not contain '..'",
            ),
            (
                "objectType: secret\njmesPath: nope",
                "unmarshal failed for keyVaultObjects at index 0",
            ),
        ];
        for (rest, want) in cases {
            let e = err(&format!("objectName: a\n{rest}"));
            assert!(e.contains(want), "{rest}: {e}");
        }
        let many: String = (0..=jmes::MAX_PATHS_PER_OBJECT)
            .map(|i| format!("  - path: f{i}\n    objectAlias: f{i}\n"))
            .collect();
        let e = err(&format!(
            "objectName: a\nobjectType: secret\njmesPath:\n{many}"
        ));
        assert!(
            e.contains("jmesPath has 65 entries, more than the limit of 64"),
            "{e}"
        );
        let heavy: String = (0..5)
            .map(|i| {
                format!(
                    "  - path: \"{}\"\n    objectAlias: f{i}\n",
                    vec!["a"; 27].join(".")
                )
            })
            .collect();
        let e = err(&format!(
            "objectName: a\nobjectType: secret\njmesPath:\n{heavy}"
        ));
        assert!(
            e.contains("jmesPath entries have 130 of the characters")
                && e.contains("more than the limit of 128 per object"),
            "{e}"
        );
        let fine: String = (0..4)
            .map(|i| {
                format!(
                    "  - path: \"{}\"\n    objectAlias: f{i}\n",
                    vec!["a"; 33].join(".")
                )
            })
            .collect();
        assert_eq!(
            one(&format!(
                "objectName: a\nobjectType: secret\njmesPath:\n{fine}"
            ))
            .unwrap()
            .jmes_path
            .len(),
            4
        );
    }

    #[test]
    fn jmes_path_files_take_part_in_collisions_and_the_file_count() {
        let cases: [(&[&str], &str); 3] = [
            (
                &[
                    "objectName: a\nobjectType: secret\njmesPath:\n  - path: x\n    objectAlias: b",
                    "objectName: b\nobjectType: secret",
                ],
                "object secret/b: its file collides with object secret/a at path \"b\"; give one of them another objectAlias",
            ),
            (
                &["objectName: a\nobjectType: secret\njmesPath:\n  - path: x\n    objectAlias: a"],
                "at path \"a\"",
            ),
            (
                &[
                    "objectName: a\nobjectType: secret\nobjectVersionHistory: 2\njmesPath:\n  - path: x\n    objectAlias: u",
                    "objectName: b\nobjectType: secret\nobjectAlias: u/1",
                ],
                "at path \"u/1\"",
            ),
        ];
        for (items, want) in cases {
            let e = parse_objects(&list(items)).unwrap_err().0;
            assert!(e.contains(want), "{items:?}: {e}");
        }
        let entries: String = (0..9)
            .map(|i| format!("  - path: f{i}\n    objectAlias: s{{n}}-f{i}\n"))
            .collect();
        let items: Vec<String> = (0..100)
            .map(|n| {
                format!(
                    "objectName: s{n}\nobjectType: secret\njmesPath:\n{}",
                    entries.replace("{n}", &n.to_string())
                )
            })
            .collect();
        let refs: Vec<&str> = items.iter().map(String::as_str).collect();
        assert_eq!(
            parse_objects(&list(&refs)).unwrap().len(),
            100,
            "1,000 files"
        );
        let mut over = items.clone();
        over.push("objectName: last\nobjectType: secret".into());
        let refs: Vec<&str> = over.iter().map(String::as_str).collect();
        let e = parse_objects(&list(&refs)).unwrap_err().0;
        assert!(
            e.starts_with("object secret/last:") && e.contains("1001 object versions"),
            "{e}"
        );
    }

    #[test]
    fn object_not_after() {
        let object =
            one("objectName: a\nobjectType: secret\nobjectNotAfter: 2026-01-31T12:00:00.900+01:00")
                .unwrap();
        let not_after = object.not_after.clone().unwrap();
        assert_eq!(not_after.unix, 1_769_857_200);
        assert_eq!(not_after.text, "2026-01-31T12:00:00.900+01:00");
        assert!(object.needs_listing() && !object.is_multi_version());
        assert_eq!(
            one("objectName: a\nobjectType: key\nobjectNotAfter: \"2026-01-31T11:00:00Z\"\nobjectVersionHistory: 3")
                .unwrap()
                .not_after
                .unwrap()
                .unix,
            1_769_857_200
        );
        assert!(
            one("objectName: a\nobjectType: secret\nobjectNotAfter: \"\"")
                .unwrap()
                .not_after
                .is_none()
        );
        let e = err("objectName: a\nobjectType: secret\nobjectNotAfter: 2026-01-31");
        assert!(
            e.starts_with(
                "object secret/a: invalid objectNotAfter \"2026-01-31\", should be an RFC 3339 time"
            ),
            "{e}"
        );
        for bad in ["yesterday", "2026-13-01T00:00:00Z", "2026-01-31 12:00"] {
            let e = err(&format!(
                "objectName: a\nobjectType: secret\nobjectNotAfter: \"{bad}\""
            ));
            assert!(e.contains("invalid objectNotAfter"), "{bad}: {e}");
        }
        for version in ["v1", "latest"] {
            let e = err(&format!(
                "objectName: a\nobjectType: cert\nobjectVersion: {version}\nobjectNotAfter: 2026-01-31T12:00:00Z"
            ));
            assert!(
                e.contains("object cert/a: objectNotAfter cannot be combined with objectVersion"),
                "{e}"
            );
        }
    }

    #[test]
    fn limits() {
        let items: Vec<String> = (0..=MAX_OBJECTS)
            .map(|i| format!("objectName: s{i}\nobjectType: secret"))
            .collect();
        let refs: Vec<&str> = items.iter().map(String::as_str).collect();
        let e = parse_objects(&list(&refs)).unwrap_err().0;
        assert!(
            e.contains("1001 objects, more than the limit of 1000"),
            "{e}"
        );
        assert_eq!(
            parse_objects(&list(&refs[..MAX_OBJECTS])).unwrap().len(),
            MAX_OBJECTS
        );
        let huge = format!(
            "array:\n  - |\n    objectName: {}\n",
            "n".repeat(MAX_OBJECTS_YAML_BYTES)
        );
        assert!(
            parse_objects(&huge)
                .unwrap_err()
                .0
                .contains("more than the limit of 262144")
        );
    }

    #[test]
    fn hostile_yaml_is_an_error_not_a_crash() {
        let deep_flow = "[".repeat(100_000);
        let deep_flow_item = format!("array:\n  - '{}'", "[".repeat(100_000));
        let deep_block: String = (0..600).map(|i| format!("{}-\n", " ".repeat(i))).collect();
        let deep_block_map: String = (0..600).map(|i| format!("{}a:\n", " ".repeat(i))).collect();
        let deep_map = format!("array: {}", "{a: ".repeat(50_000));
        let mut bomb = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..10 {
            let prev = format!("*a{}", i - 1);
            bomb.push_str(&format!("a{i}: &a{i} [{}]\n", vec![prev; 10].join(", ")));
        }
        let bomb_array = format!("{bomb}array: *a9\n");
        let bomb_item = format!(
            "array:\n  - |\n{}",
            bomb.lines()
                .map(|l| format!("    {l}\n"))
                .collect::<String>()
        );
        let many_docs = "array:\n---\n".repeat(1000);
        for yaml in [
            deep_flow.as_str(),
            &deep_flow_item,
            &deep_block,
            &deep_block_map,
            &deep_map,
            &bomb_array,
            &bomb_item,
            &many_docs,
        ] {
            assert!(
                yaml.len() <= MAX_OBJECTS_YAML_BYTES,
                "exercise the parser, not the size limit"
            );
            let e = parse_objects(yaml).unwrap_err().0;
            assert!(
                e.contains("failed to yaml unmarshal objects")
                    || e.contains("keyVaultObjects at index 0"),
                "{e}"
            );
        }
    }

    #[test]
    fn objects_times_versions_is_capped_before_any_fetch() {
        let item = |i: usize, history: u32| {
            format!("objectName: s{i}\nobjectType: secret\nobjectVersionHistory: {history}\n")
        };
        let list = |items: &[String]| {
            let mut yaml = String::from("array:\n");
            for item in items {
                yaml.push_str("  - |\n");
                for line in item.lines() {
                    yaml.push_str(&format!("    {line}\n"));
                }
            }
            yaml
        };
        let within: Vec<String> = (0..10).map(|i| item(i, 100)).collect();
        assert_eq!(parse_objects(&list(&within)).unwrap().len(), 10);
        let over: Vec<String> = (0..11).map(|i| item(i, 100)).collect();
        let e = parse_objects(&list(&over)).unwrap_err().0;
        assert!(
            e.starts_with("object secret/s10:") && e.contains("1100 object versions"),
            "{e}"
        );
        let plain: Vec<String> = (0..MAX_OBJECTS).map(|i| item(i, 1)).collect();
        assert_eq!(parse_objects(&list(&plain)).unwrap().len(), MAX_OBJECTS);
    }
}
