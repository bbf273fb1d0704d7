//! Arbitrary bytes as a PKCS#12 file through the limits checked before any key derivation: the
//! structural pre-scan with the default limits, then the whole check (encrypted safes inspected)
//! with a small work budget so that no input makes an iteration slow. Must never panic.
#![no_main]

use akv_csi_provider::content::pfx_limits::{PfxLimits, check, prescan};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|der: &[u8]| {
    let _ = prescan(der, &PfxLimits::default());
    let _ = check(
        der,
        &PfxLimits {
            max_work: 50_000,
            max_scrypt_memory: 256 * 1024,
            ..PfxLimits::default()
        },
    );
});
