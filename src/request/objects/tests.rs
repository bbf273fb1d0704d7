//! Unit tests of `objects.rs`, kept beside it so the module itself stays short.

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
    let e = parse_objects(
        "array:\n  - |\n    objectName: a\n    objectType: secret\n    objectVersionHistory: many",
    )
    .unwrap_err()
    .0;
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
    assert!(
        err("objectName: a\nobjectType: Secret").contains(
            "object Secret/a: invalid objectType \"Secret\", should be secret, key or cert"
        )
    );
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
    assert!(err("objectName: secret1/..\nobjectType: secret").contains("must not contain '..'"));
    assert!(err("objectName: ../secret1\nobjectType: secret").contains("must not contain '..'"));
    assert!(
        err("objectName: n\nobjectAlias: a..b\nobjectType: secret")
            .contains("must not contain '..'")
    );
    assert!(err("objectName: \"\"\nobjectType: secret").contains("file name must not be empty"));
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
    assert!(err(&format!("objectName: {long}\nobjectType: secret")).contains("longer than 255"));
    let total = vec!["y".repeat(200); 21].join("/");
    assert!(err(&format!("objectName: {total}\nobjectType: secret")).contains("longer than 4096"));
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
    assert!(err(&format!("objectName: {long}\nobjectType: secret")).contains("invalid objectName"));
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
