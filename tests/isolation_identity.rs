//! Tenant isolation (issue #10) for identity inputs and the credential cache, against the binary
//! as a process: huge identity values, floods of failing mounts, oversized and slow `clientcert`s.
//! Each attack runs under the harness (`under_attack`), which probes `Version` and `/healthz`
//! throughout and measures peak memory; every test prints its `attack ...` line.

mod support;

use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::{Value, json};
use support::driver::Driver;
use support::fake::FakeAzure;
use support::process::{ProviderProcess, under_attack};

const TENANT: &str = "11111111-2222-3333-4444-555555555555";
/// One attack at a time: the figures measure one attack, not the others of this file.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
const VAULT: &str = "isovault";
/// A registered service principal (identity B of the tests).
const GOOD: &str = "b0000000-0000-4000-8000-00000000000b";
const GOOD_SECRET: &str = "good-secret-value-5e1";
/// A client with a certificate Entra ID does not know (identity A).
const CERT_CLIENT: &str = "a0000000-0000-4000-8000-00000000000a";

fn attributes(tenant: &str) -> Value {
    json!({
        "keyvaultName": VAULT, "tenantId": tenant,
        "objects": "array:\n  - |\n    objectName: s\n    objectType: secret\n",
        "csi.storage.k8s.io/pod.name": "p", "csi.storage.k8s.io/pod.namespace": "n",
        "csi.storage.k8s.io/pod.uid": "0b0b0b0b-0000-4000-8000-000000000001",
    })
}

async fn fake_with_good_identity() -> FakeAzure {
    let fake = FakeAzure::start().await;
    fake.add_client_secret(TENANT, GOOD, GOOD_SECRET);
    fake.grant(VAULT, GOOD);
    fake.add_secret(VAULT, "s", "v1", "value", None, None, 100, true);
    fake
}

fn start(fake: &FakeAzure, extra: &[&str]) -> (tempfile::TempDir, ProviderProcess) {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("azure.sock");
    let extra: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
    let provider = ProviderProcess::start_with_fake(&socket, &fake.url(), &extra);
    (dir, provider)
}

async fn good_mount(driver: &mut Driver) -> Result<Duration, tonic::Status> {
    let secrets = json!({"clientid": GOOD, "clientsecret": GOOD_SECRET});
    let start = Instant::now();
    let response = driver
        .mount(&attributes(TENANT), Some(&secrets), "420")
        .await?;
    assert_eq!(response.files[0].contents, b"value");
    Ok(start.elapsed())
}

/// No log line longer than 16 KiB, and none quoting a long run of `needle`.
fn assert_logs_bounded(provider: &ProviderProcess, needle: char) {
    let run: String = std::iter::repeat_n(needle, 200).collect();
    for line in provider.drain_logs() {
        assert!(line.len() <= 16 * 1024, "log line of {} bytes", line.len());
        assert!(!line.contains(&run), "a log line echoes the value whole");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_900_kb_tenant_id_is_refused_fast_with_a_short_message() {
    let _one = ONE_AT_A_TIME.lock().await;
    let fake = fake_with_good_identity().await;
    // Attributes of up to 1 MiB let the value reach the tenantId check (by default the 512 KiB
    // attributes limit refuses the request even earlier).
    let (_dir, provider) = start(&fake, &["--max-attributes-bytes=1048576"]);
    let tenant = "t".repeat(900_000);
    let secrets = json!({"clientid": GOOD, "clientsecret": GOOD_SECRET});
    let (report, result) = under_attack("900 KB tenantId", &provider, async {
        let mut driver = Driver::connect(&provider.socket).await;
        driver
            .mount(&attributes(&tenant), Some(&secrets), "420")
            .await
    })
    .await;
    report.assert_isolated(Duration::from_secs(2));
    let status = result.unwrap_err();
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
    assert!(
        status.message().starts_with("tenantId \"ttt"),
        "{}",
        status.message()
    );
    assert!(
        status.message().len() < 400,
        "{} bytes",
        status.message().len()
    );

    // The default limit refuses the same request before parsing it.
    let (_dir2, default) = start(&fake, &[]);
    let mut driver = Driver::connect(&default.socket).await;
    let status = driver
        .mount(&attributes(&tenant), Some(&secrets), "420")
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
    assert!(
        status.message().contains("failed to unmarshal attributes")
            && status.message().contains("limit of 524288"),
        "{}",
        status.message()
    );
    assert_logs_bounded(&provider, 't');
    assert_logs_bounded(&default, 't');
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_mounts_with_huge_identity_values_leave_nothing_cached() {
    let _one = ONE_AT_A_TIME.lock().await;
    let fake = fake_with_good_identity().await;
    // Two cache slots: under the old cache, failing identities evicted the proven one.
    let (_dir, provider) = start(&fake, &["--max-cached-identities=2"]);
    let mut driver = Driver::connect(&provider.socket).await;
    good_mount(&mut driver).await.expect("first good mount");
    let tokens_before = fake.counts().entra_tokens;

    // Requests and connections are made before the attacks, so they time the provider only.
    let attributes = attributes(TENANT).to_string();
    let mut drivers = Vec::new();
    for _ in 0..20 {
        drivers.push(Driver::connect(&provider.socket).await);
    }
    let huge: Vec<String> = (0..20)
        .map(|i| {
            let client = format!("c0000000-0000-4000-8000-{i:012}");
            json!({"clientid": client, "clientsecret": "0".repeat(800_000)}).to_string()
        })
        .collect();
    // Within the limit, but refused by Entra ID: authenticated, failed, and not cached.
    let wrong: Vec<String> = (0..20)
        .map(|i| {
            let client = format!("d0000000-0000-4000-8000-{i:012}");
            let secret = format!("{i:04}").repeat(4_000);
            json!({"clientid": client, "clientsecret": secret}).to_string()
        })
        .collect();

    let (report, outcomes) = under_attack("20 failing mounts x 800 KB values", &provider, async {
        let mounts = (huge.iter().zip(drivers.iter_mut()))
            .map(|(secrets, driver)| driver.mount_raw(&attributes, secrets, "420"));
        futures::future::join_all(mounts).await
    })
    .await;
    report.assert_isolated(Duration::from_secs(2));
    for outcome in outcomes {
        let status = outcome.unwrap_err();
        let message = status.message();
        assert_eq!(status.code(), tonic::Code::InvalidArgument, "{message}");
        assert!(
            message.contains("nodePublishSecretRef secret key \"clientsecret\" is 800000 bytes")
                && message.len() < 1024,
            "{message}"
        );
    }

    let (report, outcomes) =
        under_attack("20 mounts refused by Entra ID, 16 KB", &provider, async {
            let mounts = (wrong.iter().zip(drivers.iter_mut()))
                .map(|(secrets, driver)| driver.mount_raw(&attributes, secrets, "420"));
            futures::future::join_all(mounts).await
        })
        .await;
    report.assert_isolated(Duration::from_secs(2));
    for outcome in outcomes {
        let status = outcome.unwrap_err();
        assert_eq!(
            status.code(),
            tonic::Code::Unauthenticated,
            "{}",
            status.message()
        );
        assert!(
            status.message().len() < 1024,
            "{} bytes",
            status.message().len()
        );
    }

    // The proven identity kept its slot: its token is reused, no new Entra ID request.
    let before_good = fake.counts().entra_tokens;
    assert!(
        before_good >= tokens_before + 20,
        "the refused mounts did ask Entra ID"
    );
    good_mount(&mut driver)
        .await
        .expect("good mount after the flood");
    assert_eq!(fake.counts().entra_tokens, before_good, "token reused");
    assert_logs_bounded(&provider, '0');
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_1_mib_clientcert_is_refused_naming_clientcert() {
    let _one = ONE_AT_A_TIME.lock().await;
    let fake = fake_with_good_identity().await;
    let (_dir, provider) = start(&fake, &[]);
    let clientcert = "A".repeat(1_000_000);
    let secrets = json!({"clientid": CERT_CLIENT, "clientcert": clientcert});
    let (report, result) = under_attack("1 MB clientcert", &provider, async {
        let mut driver = Driver::connect(&provider.socket).await;
        driver
            .mount(&attributes(TENANT), Some(&secrets), "420")
            .await
    })
    .await;
    report.assert_isolated(Duration::from_secs(2));
    let status = result.unwrap_err();
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
    assert!(
        status
            .message()
            .contains("nodePublishSecretRef secret key \"clientcert\" is 1000000 bytes"),
        "{}",
        status.message()
    );
    assert_logs_bounded(&provider, 'A');
}

/// A valid PFX whose key derivation is deliberately expensive (many PBKDF2 iterations, within
/// what the PKCS#12 pre-scan admits), for a certificate Entra ID does not know.
fn expensive_pfx(iterations: u32) -> String {
    use aws_lc_rs::encoding::AsDer;
    use p12_keystore::{Certificate, KeyStore, KeyStoreEntry, PrivateKey, PrivateKeyChain};
    let key = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).unwrap();
    let pkcs8 = key.as_der().unwrap().as_ref().to_vec();
    let signer = rcgen::KeyPair::try_from(pkcs8.as_slice()).unwrap();
    let cert = rcgen::CertificateParams::new(vec!["slow".to_string()])
        .unwrap()
        .self_signed(&signer)
        .unwrap();
    let chain = PrivateKeyChain::new(
        b"1".as_slice(),
        PrivateKey::from_der(&pkcs8).unwrap(),
        [Certificate::from_der(cert.der()).unwrap()],
    );
    let mut store = KeyStore::new();
    store.add_entry("client", KeyStoreEntry::PrivateKeyChain(chain));
    let pfx = store
        .writer("")
        .encryption_iterations(iterations)
        .mac_iterations(iterations)
        .write()
        .unwrap();
    base64::engine::general_purpose::STANDARD.encode(pfx)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_clientcert_build_does_not_delay_other_identities() {
    let _one = ONE_AT_A_TIME.lock().await;
    let fake = fake_with_good_identity().await;
    let (_dir, provider) = start(&fake, &[]);
    let mut driver = Driver::connect(&provider.socket).await;
    // Warm B once (its identity is then cached and proven), and measure A's build alone.
    good_mount(&mut driver).await.expect("warm good mount");
    let pfx = expensive_pfx(20_000);
    let secrets_a = json!({"clientid": CERT_CLIENT, "clientcert": pfx});
    let alone = Instant::now();
    let status = driver
        .mount(&attributes(TENANT), Some(&secrets_a), "420")
        .await
        .unwrap_err();
    let alone = alone.elapsed();
    assert_eq!(
        status.code(),
        tonic::Code::Unauthenticated,
        "{}",
        status.message()
    );
    println!("slow clientcert build alone: {} ms", alone.as_millis());

    let (report, (a, b)) =
        under_attack("slow clientcert build, other identity", &provider, async {
            let a = async {
                let mut driver = Driver::connect(&provider.socket).await;
                let start = Instant::now();
                let result = driver
                    .mount(&attributes(TENANT), Some(&secrets_a), "420")
                    .await;
                (start.elapsed(), result)
            };
            let b = async {
                // B starts while A is in the blocking pool.
                tokio::time::sleep(alone / 4).await;
                let mut driver = Driver::connect(&provider.socket).await;
                good_mount(&mut driver).await
            };
            tokio::join!(a, b)
        })
        .await;
    report.assert_isolated(alone + Duration::from_secs(2));
    let b = b.expect("B mounts");
    println!(
        "slow clientcert build: A took {} ms, B mounted in {} ms meanwhile",
        a.0.as_millis(),
        b.as_millis()
    );
    assert!(a.1.is_err());
    assert!(b < Duration::from_millis(500), "B waited {b:?}");
    if alone > Duration::from_millis(400) {
        // The build was slow enough to tell: B did not wait behind it.
        assert!(b < alone / 2, "B took {b:?}, A's build alone {alone:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clientcert_parse_over_the_blocking_timeout_fails_naming_clientcert() {
    let _one = ONE_AT_A_TIME.lock().await;
    let fake = fake_with_good_identity().await;
    let (_dir, provider) = start(&fake, &["--blocking-timeout=5ms"]);
    let secrets = json!({"clientid": CERT_CLIENT, "clientcert": expensive_pfx(20_000)});
    let (report, result) = under_attack("clientcert over the blocking timeout", &provider, async {
        let mut driver = Driver::connect(&provider.socket).await;
        driver
            .mount(&attributes(TENANT), Some(&secrets), "420")
            .await
    })
    .await;
    report.assert_isolated(Duration::from_secs(2));
    let status = result.unwrap_err();
    assert_eq!(status.code(), tonic::Code::Unauthenticated);
    assert!(
        status.message().contains(
            "service_principal_certificate: clientcert could not be parsed: parsing took longer than 5ms"
        ),
        "{}",
        status.message()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scrypt_clientcert_is_refused_without_deriving_the_key() {
    let _one = ONE_AT_A_TIME.lock().await;
    // 185-byte-class PFX: PBES2 with scrypt N=2^17, r=8, p=16 (143 MiB, seconds to derive).
    let fake = fake_with_good_identity().await;
    let (_dir, provider) = start(&fake, &[]);
    let pfx = scrypt_bomb_pfx();
    let secrets = json!({"clientid": CERT_CLIENT, "clientcert": pfx});
    let (report, result) = under_attack("scrypt clientcert", &provider, async {
        let mut driver = Driver::connect(&provider.socket).await;
        driver
            .mount(&attributes(TENANT), Some(&secrets), "420")
            .await
    })
    .await;
    report.assert_isolated(Duration::from_secs(2));
    let status = result.unwrap_err();
    assert!(
        status.message().contains("clientcert"),
        "{}",
        status.message()
    );
}

/// A minimal PKCS#12 whose only safe is encrypted with PBES2 + scrypt (N=2^17, r=8, p=16).
fn scrypt_bomb_pfx() -> String {
    let kdf = seq(&[
        oid(&[0x2b, 0x06, 0x01, 0x04, 0x01, 0xda, 0x47, 0x04, 0x0b]), // 1.3.6.1.4.1.11591.4.11
        seq(&[tlv(0x04, &[1u8; 8]), int(1 << 17), int(8), int(16), int(32)]),
    ]);
    let enc = seq(&[
        oid(&[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x01, 0x2a]), // aes-256-cbc
        tlv(0x04, &[2u8; 16]),
    ]);
    let pbes2 = seq(&[
        oid(&[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x05, 0x0d]),
        seq(&[kdf, enc]),
    ]);
    let data_oid = oid(&[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x01]);
    let encrypted_oid = oid(&[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x06]);
    let encrypted_content_info = seq(&[data_oid.clone(), pbes2, tlv(0x80, &[0u8; 16])]);
    let encrypted_data = seq(&[int(0), encrypted_content_info]);
    let safes = seq(&[seq(&[encrypted_oid, tlv(0xa0, &encrypted_data)])]);
    let auth_safe = seq(&[data_oid, tlv(0xa0, &tlv(0x04, &safes))]);
    let pfx = seq(&[int(3), auth_safe]);
    base64::engine::general_purpose::STANDARD.encode(pfx)
}

fn tlv(tag: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    match body.len() {
        n @ 0..=127 => out.push(n as u8),
        n @ 128..=255 => out.extend([0x81, n as u8]),
        n => out.extend([0x82, (n >> 8) as u8, n as u8]),
    }
    out.extend(body);
    out
}

fn seq(parts: &[Vec<u8>]) -> Vec<u8> {
    tlv(0x30, &parts.concat())
}

fn oid(body: &[u8]) -> Vec<u8> {
    tlv(0x06, body)
}

fn int(value: u32) -> Vec<u8> {
    let bytes = value.to_be_bytes();
    let start = bytes.iter().position(|b| *b != 0).unwrap_or(3);
    let mut body = bytes[start..].to_vec();
    if body[0] & 0x80 != 0 {
        body.insert(0, 0);
    }
    tlv(0x02, &body)
}
