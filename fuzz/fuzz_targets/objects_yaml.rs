//! Arbitrary text as the `objects` parameter of an otherwise valid request → `request::parse`:
//! exercises the YAML decoding of `array:` and of each entry, and per-object validation.
#![no_main]

use akv_csi_provider::pb;
use akv_csi_provider::request::{RequestDefaults, parse};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|objects: &str| {
    let attributes = serde_json::json!({
        "csi.storage.k8s.io/pod.name": "fuzz-pod",
        "csi.storage.k8s.io/pod.namespace": "default",
        "csi.storage.k8s.io/pod.uid": "9f3b1c2e-0000-4000-8000-000000000001",
        "csi.storage.k8s.io/serviceAccount.name": "default",
        "secretProviderClass": "fuzz-spc",
        "keyvaultName": "kvname",
        "tenantId": "72f988bf-86f1-41af-91ab-2d7cd011db47",
        "useVMManagedIdentity": "true",
        "objects": objects,
    });
    let request = pb::MountRequest {
        attributes: attributes.to_string(),
        secrets: "null".into(),
        permission: "420".into(),
        target_path: "/var/lib/kubelet/pods/uid/volumes/kubernetes.io~csi/vol/mount".into(),
        current_object_version: vec![],
    };
    let _ = parse(&request, &RequestDefaults::default());
});
