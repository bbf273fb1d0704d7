//! Whole `MountRequest` → `request::parse`. The input is the request's string fields separated by
//! NUL bytes: `attributes \0 secrets \0 permission \0 target_path` (missing fields are empty), so
//! seeds are readable JSON. Parsing must return `Ok` or `Err`, never panic.
#![no_main]

use akv_csi_provider::pb;
use akv_csi_provider::request::{RequestDefaults, parse};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut fields = data
        .split(|&b| b == 0)
        .map(|field| String::from_utf8_lossy(field).into_owned());
    let request = pb::MountRequest {
        attributes: fields.next().unwrap_or_default(),
        secrets: fields.next().unwrap_or_default(),
        permission: fields.next().unwrap_or_default(),
        target_path: fields.next().unwrap_or_default(),
        current_object_version: vec![],
    };
    let _ = parse(&request, &RequestDefaults::default());
});
