//! `content` against fixtures made by `tests/fixtures/content/generate.sh` (openssl CLI): every
//! expected output is openssl's own rendering of the same material, compared byte for byte.

use akv_csi_provider::content::{
    ContentOptions, JsonWebKey, Rendered, SecretBundle, certificate_expiries, render_certificate,
    render_key, render_secret,
};
use akv_csi_provider::request::{ObjectEncoding, ObjectFormat};
use akv_csi_provider::sensitive::Sensitive;

const PEM_CT: &str = "application/x-pem-file";
const PFX_CT: &str = "application/x-pkcs12";
const INCOMPLETE: &str = "certificate chain is not complete due to missing intermediate/root certificates in the cert from key vault";

fn fixture(name: &str) -> String {
    let path = format!(
        "{}/tests/fixtures/content/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read_to_string(&path).unwrap_or_else(|err| panic!("{path}: {err}"))
}

fn hex_fixture(name: &str) -> Vec<u8> {
    hex::decode(fixture(name).trim()).unwrap()
}

fn cat(names: &[&str]) -> Vec<u8> {
    names.iter().flat_map(|n| fixture(n).into_bytes()).collect()
}

fn plain(value: &str) -> SecretBundle {
    SecretBundle {
        value: Some(Sensitive::new(value)),
        content_type: None,
        kid: None,
    }
}

fn cert_backed(value: &str, content_type: &str) -> SecretBundle {
    SecretBundle {
        value: Some(Sensitive::new(value)),
        content_type: Some(content_type.into()),
        kid: Some("https://kv.vault.azure.net/keys/cert1/v1".into()),
    }
}

fn opts(construct_pem_chain: bool, separate: bool) -> ContentOptions {
    ContentOptions {
        construct_pem_chain,
        write_cert_and_key_in_separate_files: separate,
    }
}

fn render(
    bundle: &SecretBundle,
    format: ObjectFormat,
    encoding: ObjectEncoding,
    o: ContentOptions,
) -> Rendered {
    render_secret(bundle, format, encoding, &o).unwrap()
}

/// The single main file of a rendering without warnings.
fn only_file(r: Rendered) -> Vec<u8> {
    assert!(r.warnings.is_empty(), "{:?}", r.warnings);
    assert_eq!(r.files.len(), 1);
    assert_eq!(r.files[0].suffix, "");
    r.files.into_iter().next().unwrap().contents
}

fn pem_text(bytes: Vec<u8>) -> String {
    String::from_utf8(bytes).unwrap()
}

fn secret_err(bundle: &SecretBundle, format: ObjectFormat, encoding: ObjectEncoding) -> String {
    render_secret(bundle, format, encoding, &ContentOptions::default())
        .unwrap_err()
        .0
}

// ---- plain secrets and objectEncoding (reference §7 C, D 24) ----

#[test]
fn plain_secret_is_raw_bytes() {
    let r = render(
        &plain("secret1value"),
        ObjectFormat::Pem,
        ObjectEncoding::Utf8,
        ContentOptions::default(),
    );
    assert_eq!(only_file(r), b"secret1value");
}

#[test]
fn plain_secret_encodings() {
    let b64 = render(
        &plain("QmFzZTY0RW5jb2RlZFN0cmluZw=="),
        ObjectFormat::Pem,
        ObjectEncoding::Base64,
        opts(true, false),
    );
    assert_eq!(only_file(b64), b"Base64EncodedString");
    let hex = render(
        &plain("486578456E636F646564537472696E67"),
        ObjectFormat::Pem,
        ObjectEncoding::Hex,
        opts(true, false),
    );
    assert_eq!(only_file(hex), b"HexEncodedString");
}

#[test]
fn plain_secret_is_never_a_certificate_and_separate_files_do_not_apply() {
    // A PFX without kid is just a secret (issue #1952).
    let pfx = fixture("legacy.pfx.b64");
    let r = render(
        &plain(&pfx),
        ObjectFormat::Pem,
        ObjectEncoding::Utf8,
        opts(true, true),
    );
    assert_eq!(only_file(r), pfx.as_bytes());
    let mut empty_kid = plain(&pfx);
    empty_kid.kid = Some(String::new());
    empty_kid.content_type = Some(PFX_CT.into());
    let r = render(
        &empty_kid,
        ObjectFormat::Pem,
        ObjectEncoding::Utf8,
        opts(true, true),
    );
    assert_eq!(only_file(r), pfx.as_bytes());
}

#[test]
fn bad_encodings_name_the_encoding_and_offset_only() {
    let value = "c2VjcmV0*mFsdWU=";
    let err = secret_err(&plain(value), ObjectFormat::Pem, ObjectEncoding::Base64);
    assert_eq!(
        err,
        "objectEncoding base64: illegal base64 data at input byte 8"
    );
    let err = secret_err(
        &plain("not base64 secret"),
        ObjectFormat::Pem,
        ObjectEncoding::Base64,
    );
    assert_eq!(
        err,
        "objectEncoding base64: illegal base64 data at input byte 3"
    );
    let err = secret_err(&plain("deadbeefzz"), ObjectFormat::Pem, ObjectEncoding::Hex);
    assert_eq!(
        err,
        "objectEncoding hex: invalid hex character at input byte 8"
    );
    let err = secret_err(&plain("abc"), ObjectFormat::Pem, ObjectEncoding::Hex);
    assert_eq!(
        err,
        "objectEncoding hex: odd length hex string (3 characters)"
    );
}

#[test]
fn nil_value_and_bad_content_types() {
    let nil = SecretBundle {
        value: None,
        content_type: None,
        kid: None,
    };
    assert_eq!(
        secret_err(&nil, ObjectFormat::Pem, ObjectEncoding::Utf8),
        "secret value is nil"
    );
    let mut no_ct = cert_backed("x", PEM_CT);
    no_ct.content_type = None;
    assert_eq!(
        secret_err(&no_ct, ObjectFormat::Pem, ObjectEncoding::Utf8),
        "certificate-backed secret has no content type"
    );
    assert_eq!(
        secret_err(
            &cert_backed("x", "text/plain"),
            ObjectFormat::Pem,
            ObjectEncoding::Utf8
        ),
        "failed to get certificate. unknown content type 'text/plain'"
    );
}

// ---- certificate-backed secrets (§7 D, F) ----

#[test]
fn pem_content_is_unchanged_in_any_format() {
    let value = pem_text(cat(&["leaf.pem", "root.pem", "leaf.key", "inter.pem"]));
    for format in [ObjectFormat::Pem, ObjectFormat::Pfx] {
        let r = render(
            &cert_backed(&value, PEM_CT),
            format,
            ObjectEncoding::Utf8,
            opts(true, false),
        );
        assert_eq!(only_file(r), value.as_bytes());
    }
}

#[test]
fn pfx_format_returns_the_base64_text_or_binary_with_base64_encoding() {
    let b64 = fixture("legacy.pfx.b64");
    let r = render(
        &cert_backed(&b64, PFX_CT),
        ObjectFormat::Pfx,
        ObjectEncoding::Utf8,
        opts(true, false),
    );
    assert_eq!(only_file(r), b64.as_bytes());
    let r = render(
        &cert_backed(&b64, PFX_CT),
        ObjectFormat::Pfx,
        ObjectEncoding::Base64,
        opts(true, false),
    );
    assert_eq!(only_file(r), base64_decode(&b64));
}

fn base64_decode(s: &str) -> Vec<u8> {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD
        .decode(s.trim())
        .unwrap()
}

#[test]
fn legacy_and_modern_pfx_become_key_then_leaf_intermediate_root() {
    // Bags hold leaf, root, intermediate; openssl's `pkey` prints the expected PKCS#8 RSA key.
    let expected = cat(&["leaf.key", "leaf.pem", "inter.pem", "root.pem"]);
    for pfx in ["legacy.pfx.b64", "modern.pfx.b64"] {
        let bundle = cert_backed(&fixture(pfx), PFX_CT);
        let r = render(
            &bundle,
            ObjectFormat::Pem,
            ObjectEncoding::Utf8,
            ContentOptions::default(),
        );
        assert_eq!(pem_text(only_file(r)), pem_text(expected.clone()), "{pfx}");
    }
}

#[test]
fn without_chain_construction_certs_keep_pfx_bag_order() {
    let bundle = cert_backed(&fixture("legacy.pfx.b64"), PFX_CT);
    let r = render(
        &bundle,
        ObjectFormat::Pem,
        ObjectEncoding::Utf8,
        opts(false, false),
    );
    assert_eq!(
        pem_text(only_file(r)),
        pem_text(cat(&["leaf.key", "leaf.pem", "root.pem", "inter.pem"]))
    );
}

#[test]
fn leaf_without_subject_key_identifier_is_ordered() {
    // Bags: leaf-noski, inter, root.
    let bundle = cert_backed(&fixture("noski.pfx.b64"), PFX_CT);
    let r = render(
        &bundle,
        ObjectFormat::Pem,
        ObjectEncoding::Utf8,
        opts(true, false),
    );
    assert_eq!(
        pem_text(only_file(r)),
        pem_text(cat(&[
            "leaf.key",
            "leaf-noski.pem",
            "inter.pem",
            "root.pem"
        ]))
    );
}

#[test]
fn incomplete_chain_keeps_bag_order_and_warns() {
    // Bags: leaf, root; the intermediate is missing.
    let bundle = cert_backed(&fixture("incomplete.pfx.b64"), PFX_CT);
    let r = render(
        &bundle,
        ObjectFormat::Pem,
        ObjectEncoding::Utf8,
        opts(true, false),
    );
    assert_eq!(r.warnings, vec![INCOMPLETE.to_string()]);
    assert_eq!(r.files.len(), 1);
    assert_eq!(
        pem_text(r.files[0].contents.clone()),
        pem_text(cat(&["leaf.key", "leaf.pem", "root.pem"]))
    );
}

#[test]
fn ec_key_is_go_style_pkcs8_without_sec1_parameters() {
    let scalar = hex_fixture("leaf-ec.scalar.hex");
    let point = hex_fixture("leaf-ec.point.hex");
    assert_eq!((scalar.len(), point.len()), (32, 65));
    let mut der =
        hex::decode("308187020100301306072a8648ce3d020106082a8648ce3d030107046d306b0201010420")
            .unwrap();
    der.extend(&scalar);
    der.extend(hex::decode("a144034200").unwrap());
    der.extend(&point);
    assert_eq!(der.len(), 0x87 + 3);

    let bundle = cert_backed(&fixture("ec.pfx.b64"), PFX_CT);
    let out = only_file(render(
        &bundle,
        ObjectFormat::Pem,
        ObjectEncoding::Utf8,
        opts(true, false),
    ));
    let mut expected = pem_block("PRIVATE KEY", &der);
    expected.extend(cat(&["leaf-ec.pem", "inter.pem", "root.pem"]));
    assert_eq!(pem_text(out), pem_text(expected));
}

/// A PEM block written independently of the crate: 64-column base64 lines.
fn pem_block(label: &str, der: &[u8]) -> Vec<u8> {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(chunk).unwrap());
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out.into_bytes()
}

#[test]
fn pfx_errors_carry_no_secret_material() {
    let wrong_password = fixture("password.pfx.b64");
    let corrupt = {
        let mut der = base64_decode(&fixture("modern.pfx.b64"));
        let mid = der.len() / 2;
        der[mid] ^= 0xff;
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD.encode(der)
    };
    let cases = [
        (wrong_password.clone(), "integrity check failed"),
        ("invalid".to_string(), "illegal base64 data at input byte 4"),
        ("aW52YWxpZA==".to_string(), "failed to decode PFX"),
        (corrupt.clone(), "failed to decode PFX"),
    ];
    let secrets = [
        fixture("leaf.key"),
        wrong_password,
        corrupt,
        fixture("modern.pfx.b64"),
    ];
    for (value, expected) in cases {
        let err = secret_err(
            &cert_backed(&value, PFX_CT),
            ObjectFormat::Pem,
            ObjectEncoding::Utf8,
        );
        assert!(err.contains(expected), "{err}");
        assert_no_secret(&err, &secrets);
    }
}

/// No 16-character window of any secret (PEM body lines or base64) appears in `message`.
fn assert_no_secret(message: &str, secrets: &[String]) {
    for secret in secrets {
        for line in secret.lines().filter(|l| !l.starts_with("-----")) {
            for window in line.as_bytes().windows(16) {
                let window = std::str::from_utf8(window).unwrap();
                assert!(
                    !message.contains(window),
                    "error message leaks secret material: {message}"
                );
            }
        }
    }
}

// ---- --write-cert-and-key-in-separate-files (§2.7, §7 H) ----

fn suffixes(r: &Rendered) -> Vec<&'static str> {
    r.files.iter().map(|f| f.suffix).collect()
}

#[test]
fn separate_files_from_pfx() {
    let bundle = cert_backed(&fixture("legacy.pfx.b64"), PFX_CT);
    let r = render(
        &bundle,
        ObjectFormat::Pem,
        ObjectEncoding::Utf8,
        opts(true, true),
    );
    assert_eq!(suffixes(&r), [".crt", ".key", ""]);
    assert_eq!(
        pem_text(r.files[0].contents.clone()),
        pem_text(cat(&["leaf.pem", "inter.pem", "root.pem"]))
    );
    assert_eq!(pem_text(r.files[1].contents.clone()), fixture("leaf.key"));
    assert_eq!(
        pem_text(r.files[2].contents.clone()),
        pem_text(cat(&["leaf.key", "leaf.pem", "inter.pem", "root.pem"]))
    );
}

#[test]
fn separate_files_from_pem_keep_input_order() {
    let value = pem_text(cat(&["root.pem", "inter.pem", "leaf.pem", "leaf.key"]));
    let r = render(
        &cert_backed(&value, PEM_CT),
        ObjectFormat::Pem,
        ObjectEncoding::Utf8,
        opts(true, true),
    );
    assert_eq!(suffixes(&r), [".crt", ".key", ""]);
    assert_eq!(
        r.files[0].contents,
        cat(&["root.pem", "inter.pem", "leaf.pem"])
    );
    assert_eq!(r.files[1].contents, cat(&["leaf.key"]));
    assert_eq!(r.files[2].contents, value.as_bytes());
}

#[test]
fn separate_files_with_pfx_format_are_empty_and_encoding_applies_to_each() {
    let b64 = fixture("legacy.pfx.b64");
    let r = render(
        &cert_backed(&b64, PFX_CT),
        ObjectFormat::Pfx,
        ObjectEncoding::Base64,
        opts(true, true),
    );
    assert_eq!(suffixes(&r), [".crt", ".key", ""]);
    assert!(r.files[0].contents.is_empty() && r.files[1].contents.is_empty());
    assert_eq!(r.files[2].contents, base64_decode(&b64));
    // Hex applied to PEM text fails: the encoding really runs on each file.
    let value = pem_text(cat(&["leaf.pem"]));
    let err = render_secret(
        &cert_backed(&value, PEM_CT),
        ObjectFormat::Pem,
        ObjectEncoding::Hex,
        &opts(true, true),
    );
    assert_eq!(
        err.unwrap_err().0,
        "objectEncoding hex: invalid hex character at input byte 0"
    );
}

// ---- keys (§2.4, §7 E) ----

fn rsa_jwk(kty: &str) -> JsonWebKey {
    JsonWebKey {
        kty: Some(kty.into()),
        n: Some(hex_fixture("jwk-rsa.n.hex")),
        e: Some(hex_fixture("jwk-rsa.e.hex")),
        ..Default::default()
    }
}

fn ec_jwk(kty: &str, crv: &str, name: &str) -> JsonWebKey {
    JsonWebKey {
        kty: Some(kty.into()),
        crv: Some(crv.into()),
        x: Some(hex_fixture(&format!("jwk-{name}.x.hex"))),
        y: Some(hex_fixture(&format!("jwk-{name}.y.hex"))),
        ..Default::default()
    }
}

#[test]
fn rsa_keys_match_openssl_pubout() {
    for kty in ["RSA", "RSA-HSM"] {
        assert_eq!(
            pem_text(render_key(&rsa_jwk(kty)).unwrap()),
            fixture("jwk-rsa.pub.pem")
        );
    }
    // A leading zero in n (as some encoders send) does not change the key.
    let mut padded = rsa_jwk("RSA");
    padded.n.as_mut().unwrap().insert(0, 0);
    assert_eq!(
        pem_text(render_key(&padded).unwrap()),
        fixture("jwk-rsa.pub.pem")
    );
}

#[test]
fn ec_keys_match_openssl_pubout() {
    for (crv, name) in [("P-256", "p256"), ("P-384", "p384"), ("P-521", "p521")] {
        for kty in ["EC", "EC-HSM"] {
            let pem = render_key(&ec_jwk(kty, crv, name)).unwrap();
            assert_eq!(
                pem_text(pem),
                fixture(&format!("jwk-{name}.pub.pem")),
                "{kty} {crv}"
            );
        }
    }
    // Coordinates shorter than the field (leading zeros dropped, as Go's big.Int does) or with
    // extra leading zeros are left-padded to the field size.
    let x = hex_fixture("jwk-p521.x.hex");
    let mut short = ec_jwk("EC", "P-521", "p521");
    short.x = Some(x.iter().copied().skip_while(|&b| b == 0).collect());
    assert_eq!(
        pem_text(render_key(&short).unwrap()),
        fixture("jwk-p521.pub.pem")
    );
    short.x = Some([&[0, 0][..], &x].concat());
    assert_eq!(
        pem_text(render_key(&short).unwrap()),
        fixture("jwk-p521.pub.pem")
    );
}

#[test]
fn key_errors() {
    let err = |jwk: JsonWebKey| render_key(&jwk).unwrap_err().0;
    assert_eq!(
        err(ec_jwk("EC", "P-256K", "p256")),
        "curve P-256K is not supported"
    );
    let oct = JsonWebKey {
        kty: Some("oct".into()),
        ..Default::default()
    };
    assert_eq!(
        err(oct),
        "failed to get key. key type 'oct' currently not supported"
    );
    assert_eq!(err(JsonWebKey::default()), "key has no 'kty'");
    let mut no_crv = ec_jwk("EC", "P-256", "p256");
    no_crv.crv = None;
    assert_eq!(err(no_crv), "key has no 'crv'");
    for field in ["n", "e"] {
        let mut jwk = rsa_jwk("RSA");
        *(if field == "n" { &mut jwk.n } else { &mut jwk.e }) = None;
        assert_eq!(err(jwk), format!("key has no '{field}'"));
    }
    for field in ["x", "y"] {
        let mut jwk = ec_jwk("EC", "P-384", "p384");
        *(if field == "x" { &mut jwk.x } else { &mut jwk.y }) = None;
        assert_eq!(err(jwk), format!("key has no '{field}'"));
    }
    let mut off_curve = ec_jwk("EC", "P-256", "p256");
    *off_curve.y.as_mut().unwrap().last_mut().unwrap() ^= 1;
    assert!(err(off_curve).contains("not on the curve"));
    let mut too_long = ec_jwk("EC", "P-256", "p256");
    too_long.x.as_mut().unwrap().insert(0, 1);
    assert!(err(too_long).contains("'x' is longer than 32 bytes"));
    // A P-384 point presented as P-256 does not fit.
    assert!(err(ec_jwk("EC", "P-256", "p384")).contains("longer than 32 bytes"));
}

// ---- certificates and expiries (§2.5) ----

#[test]
fn certificate_is_one_pem_block() {
    assert_eq!(
        render_certificate(b"test"),
        b"-----BEGIN CERTIFICATE-----\ndGVzdA==\n-----END CERTIFICATE-----\n"
    );
    let der = pem_body(&fixture("leaf.pem"));
    assert_eq!(pem_text(render_certificate(&der)), fixture("leaf.pem"));
}

fn pem_body(pem: &str) -> Vec<u8> {
    base64_decode(
        &pem.lines()
            .filter(|l| !l.starts_with("-----"))
            .collect::<String>(),
    )
}

#[test]
fn expiries_of_every_certificate_block() {
    let leaf: i64 = fixture("leaf.notafter").trim().parse().unwrap();
    let pem = cat(&["leaf.key", "leaf.pem", "root.pem"]);
    let expiries = certificate_expiries(&pem);
    assert_eq!(expiries.len(), 2);
    assert_eq!(expiries[0], leaf);
    assert!(expiries[1] > leaf, "the root outlives the leaf");
    assert!(
        certificate_expiries(b"-----BEGIN CERTIFICATE-----\ndGVzdA==\n-----END CERTIFICATE-----\n")
            .is_empty()
    );
}

// ---- upstream's own vectors (§7 F 33–34) ----

#[test]
fn upstream_pfx_vectors_match_byte_for_byte() {
    // windows-rsa: MAC and bags under the zero-length password; ec-chain: Go-style EC PKCS#8 and
    // a reordered 3-certificate chain.
    for name in ["windows-rsa", "ec-chain"] {
        let bundle = cert_backed(fixture(&format!("upstream/{name}.pfx.b64")).trim(), PFX_CT);
        let r = render(
            &bundle,
            ObjectFormat::Pem,
            ObjectEncoding::Utf8,
            ContentOptions::default(),
        );
        assert_eq!(
            pem_text(only_file(r)),
            fixture(&format!("upstream/{name}.expected.pem")),
            "{name}"
        );
    }
}
