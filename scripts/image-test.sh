#!/usr/bin/env bash
# Runs a built image's filesystem and checks that it works, without a container runtime:
#
#   bash scripts/image-test.sh target/image/akv-csi-provider-<version>.oci.tar
#
# Unpacks the OCI archive's layers into a root filesystem (scripts/oci_unpack.py, which checks
# every blob's digest), reads the image config's user and entrypoint, and runs the entrypoint in a
# chroot of that filesystem as that user inside a new network namespace with only loopback
# (`unshare -n`):
#   1. the config says a non-root user, an entrypoint, and a version label equal to the crate's;
#      the filesystem has the CA bundle and the non-root user;
#   2. `<entrypoint> --version` prints the crate version;
#   3. the server starts on a Unix socket inside the filesystem, `<entrypoint> probe` (a second
#      process of the image) gets an answer to `Version`, /healthz answers 200 (its gRPC health
#      check goes over the same socket), and SIGTERM stops the server cleanly.
# Needs root (chroot, unshare). Without the privilege it warns loudly and exits 0, so CI still
# reports the tests' verdict; with it, every failure is fatal.
set -euo pipefail
cd "$(dirname "$0")/.."

archive=${1:?usage: image-test.sh <oci-archive>}
[[ -f "$archive" ]] || { echo "image-test.sh: no archive at $archive" >&2; exit 1; }
version=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n1)

fail() {
  echo "FAIL (image): $*" >&2
  [[ -f "${work:-}/server.log" ]] && sed 's/^/  server: /' "$work/server.log" >&2
  exit 1
}

if ! { unshare -n true && chroot / true; } 2>/dev/null; then
  echo "WARNING: image-test.sh: chroot and unshare -n are not permitted here (they need root):" >&2
  echo "WARNING: the image at $archive was NOT run. Run this script as root to check it." >&2
  exit 0
fi

work=$(mktemp -d)
cleanup() {
  rm -rf "$work"
}
trap cleanup EXIT
rootfs=$work/rootfs

config=$(python3 scripts/oci_unpack.py "$archive" "$rootfs") || fail "cannot unpack $archive"
read -r user entrypoint label < <(python3 -c '
import json, shlex, sys
c = json.loads(sys.argv[1])
print(c.get("User", ""), shlex.join(c.get("Entrypoint") or []) or "-", (c.get("Labels") or {}).get("org.opencontainers.image.version", "-"))
' "$config")
# Entrypoint holds one path here (no spaces); read splits on whitespace.
[[ "$entrypoint" != "-" ]] || fail "the image has no entrypoint"
[[ -n "$user" && "${user%%:*}" != 0 && "${user%%:*}" != root ]] || fail "the image runs as root by default (User=${user:-unset})"
[[ "$label" == "$version" ]] || fail "the image's version label is $label, the crate's version $version"
echo "ok: config: user $user, entrypoint $entrypoint, version $label"
# The system trust store the TLS stack reads (openssl-probe's Debian location).
grep -q 'BEGIN CERTIFICATE' "$rootfs/etc/ssl/certs/ca-certificates.crt" 2>/dev/null ||
  fail "the image has no CA bundle at /etc/ssl/certs/ca-certificates.crt"
grep -q '^nonroot:x:65532:' "$rootfs/etc/passwd" || fail "the image's /etc/passwd has no nonroot (65532)"
echo "ok: CA bundle and /etc/passwd present"

# chroot --userspec takes numeric ids as they are; a name is looked up in the image's /etc/passwd
# by the chroot itself, which is what a runtime does too.
in_image() {
  chroot --userspec="$user" "$rootfs" "$entrypoint" "$@"
}
export -f in_image
export rootfs user entrypoint

printed=$(unshare -n bash -c 'in_image --version') || fail "--version exited with $?"
python3 -c '
import json, sys
v = json.loads(sys.argv[1])
sys.exit(0 if v.get("version") == sys.argv[2] else 1)
' "$printed" "$version" || fail "--version printed $printed, expected version $version"
echo "ok: --version: $printed"

# The server, the probe and the health check in one network namespace (loopback only). The
# socket lives in the image's /tmp (mode 1777, writable by the image user).
cat >"$work/run.sh" <<'EOF'
set -euo pipefail
ip link set lo up 2>/dev/null || true
# A simple command in the background: $! is the provider itself (chroot execs it).
chroot --userspec="$user" "$rootfs" "$entrypoint" --endpoint unix:///tmp/azure.sock \
  --healthz-port 18989 --prometheus-port 18898 >"$WORK/server.log" 2>&1 &
server=$!
trap 'kill "$server" 2>/dev/null || true' EXIT
for _ in $(seq 1 300); do
  [[ -S "$rootfs/tmp/azure.sock" ]] && break
  kill -0 "$server" 2>/dev/null || { echo "the server exited at start-up" >&2; exit 1; }
  sleep 0.1
done
[[ -S "$rootfs/tmp/azure.sock" ]] || { echo "no socket after 30 s" >&2; exit 1; }
in_image --endpoint unix:///tmp/azure.sock probe --timeout 20s >"$WORK/probe.out" ||
  { echo "probe failed" >&2; exit 1; }
python3 - <<'PY' || { echo "/healthz or /metrics did not answer 200" >&2; exit 1; }
import urllib.request
# Straight to loopback, whatever *_proxy says.
opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
for url in ("http://127.0.0.1:18989/healthz", "http://127.0.0.1:18898/metrics"):
    with opener.open(url, timeout=20) as response:
        assert response.status == 200, (url, response.status)
PY
kill -TERM "$server"
status=0
wait "$server" || status=$?
[[ $status == 0 ]] || { echo "the server exited with $status after SIGTERM" >&2; exit 1; }
EOF
WORK=$work unshare -n env WORK="$work" bash "$work/run.sh" || fail "the server in the image did not serve (see above)"
probe=$(cat "$work/probe.out")
python3 -c '
import json, sys
v = json.loads(sys.argv[1])
sys.exit(0 if v.get("version") == "v1alpha1" and v.get("runtimeVersion") == sys.argv[2] else 1)
' "$probe" "$version" || fail "Version answered $probe, expected v1alpha1 and runtime version $version"
echo "ok: the server started as $user, answered Version on a Unix socket ($probe), /healthz and /metrics, and stopped on SIGTERM"
[[ -e "$rootfs/tmp/azure.sock" ]] && fail "the server left its socket behind"
echo "ok: image $archive"
