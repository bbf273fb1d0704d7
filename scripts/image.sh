#!/usr/bin/env bash
# Builds the provider's container image without a Docker daemon and writes it as an OCI archive.
#
#   bash scripts/image.sh            # prints the path of the OCI archive
#
# No base image is pulled: the image's only layer holds
#   /usr/local/bin/akv-csi-provider      the release binary (cargo build --release --locked)
#   the C runtime the binary links       every library `ldd` lists, and the dynamic loader
#   /etc/ssl/certs/ca-certificates.crt   the build machine's CA bundle (the system trust store)
#   /etc/passwd, /etc/group              root and the unprivileged user `nonroot` (65532)
#   /etc/nsswitch.conf, /tmp             name resolution from files then DNS; the default socket dir
#   /usr/share/doc/<pkg>/copyright       the licences of the Debian packages copied in
# It runs as 65532:65532 by default, its entrypoint is the binary, and its tag is the crate
# version, which must equal the chart's appVersion (checked here).
#
# Built with buildah (Debian's package; installed with apt-get when missing and run as root), in
# a storage directory of its own under target/image/ (vfs driver, no daemon, nothing run inside
# the image). File times and the creation time are SOURCE_DATE_EPOCH (default: the last commit's
# time), so the same commit and build machine give the same layer.
#
# Writes, under target/image/:
#   akv-csi-provider-<version>.oci.tar     the OCI archive (image layout), ref name <version>
#   akv-csi-provider-<version>.docker.tar  the same image as `docker save` writes it, tagged
#                                          akv-csi-provider:<version>, for `kind load image-archive`
#                                          and `docker load`
# The Dockerfile at the top of the repository builds the same content for users with Docker.
set -euo pipefail
cd "$(dirname "$0")/.."

die() {
  echo "image.sh: $*" >&2
  exit 1
}

name=akv-csi-provider
version=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n1)
app_version=$(sed -n 's/^appVersion: *"\{0,1\}\([^"]*\)"\{0,1\} *$/\1/p' charts/akv-csi-provider/Chart.yaml)
[[ -n "$version" ]] || die "cannot read the crate version from Cargo.toml"
[[ "$version" == "$app_version" ]] ||
  die "crate version $version and the chart's appVersion ${app_version:-(none)} differ; make them agree"

if ! command -v buildah >/dev/null; then
  if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null; then
    echo "installing buildah (Debian package)" >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends buildah >&2 ||
      { apt-get update >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends buildah >&2; } ||
      die "cannot install buildah"
  else
    die "buildah is needed (apt-get install buildah), or use the Dockerfile with Docker"
  fi
fi

epoch=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || echo 0)}
build_date=$(date -u -d "@$epoch" +%Y-%m-%dT%H:%M:%SZ)
target_dir=${CARGO_TARGET_DIR:-target}
out=$target_dir/image
mkdir -p "$out"
out=$(cd "$out" && pwd)

# The binary, as a release is built; the build date comes from the same epoch.
AKV_CSI_PROVIDER_BUILD_DATE=$build_date cargo build --release --locked --bin "$name" >&2
binary=$target_dir/release/$name

# The root filesystem.
rootfs=$out/rootfs
rm -rf "$rootfs"
mkdir -p "$rootfs"/{usr/local/bin,etc/ssl/certs,tmp,home/nonroot}
install -m 0755 "$binary" "$rootfs/usr/local/bin/$name"
strip --strip-debug "$rootfs/usr/local/bin/$name" 2>/dev/null || true

# Every library the dynamic loader resolves for the binary, and the loader itself, at the same
# paths. `ldd` prints `name => /path (addr)` for libraries and `/path (addr)` for the loader.
libs=$(ldd "$binary" | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }' | sort -u)
[[ -n "$libs" ]] || die "ldd lists no libraries for $binary (a static binary needs no runtime; adjust this script)"
packages=()
for lib in $libs; do
  mkdir -p "$rootfs$(dirname "$lib")"
  cp -L "$lib" "$rootfs$lib"
  if command -v dpkg >/dev/null; then
    pkg=$(dpkg -S "$lib" 2>/dev/null || dpkg -S "$(readlink -f "$lib")" 2>/dev/null || true)
    pkg=${pkg%%:*}
    [[ -n "$pkg" ]] && packages+=("$pkg")
  fi
done
echo "C runtime: $(echo "$libs" | tr '\n' ' ')" >&2

bundle=${CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}
[[ -s "$bundle" ]] || die "no CA bundle at $bundle (apt-get install ca-certificates, or set CA_BUNDLE)"
install -m 0644 "$bundle" "$rootfs/etc/ssl/certs/ca-certificates.crt"
packages+=(ca-certificates)
for pkg in $(printf '%s\n' "${packages[@]}" | sort -u); do
  if [[ -f /usr/share/doc/$pkg/copyright ]]; then
    install -D -m 0644 "/usr/share/doc/$pkg/copyright" "$rootfs/usr/share/doc/$pkg/copyright"
  fi
done

printf '%s\n' 'root:x:0:0:root:/root:/sbin/nologin' 'nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin' \
  >"$rootfs/etc/passwd"
printf '%s\n' 'root:x:0:' 'nonroot:x:65532:' >"$rootfs/etc/group"
printf '%s\n' 'passwd: files' 'group: files' 'hosts: files dns' >"$rootfs/etc/nsswitch.conf"
chmod 0644 "$rootfs"/etc/{passwd,group,nsswitch.conf}
chmod 1777 "$rootfs/tmp"
chown 65532:65532 "$rootfs/home/nonroot" 2>/dev/null || true
chmod 0755 "$rootfs/home/nonroot"
find "$rootfs" -exec touch -h -d "@$epoch" {} +

# The image: one layer from scratch, then the two archives.
storage=$out/buildah
rm -rf "$storage"
bah=(buildah --root "$storage/root" --runroot "$storage/run" --storage-driver vfs)
cleanup() {
  "${bah[@]}" rm --all >/dev/null 2>&1 || true
  rm -rf "$storage" 2>/dev/null || true
}
trap cleanup EXIT
ctr=$("${bah[@]}" from --quiet scratch)
"${bah[@]}" copy --quiet "$ctr" "$rootfs" / >/dev/null
"${bah[@]}" config \
  --entrypoint "[\"/usr/local/bin/$name\"]" \
  --user 65532:65532 --workingdir / \
  --label org.opencontainers.image.title="$name" \
  --label org.opencontainers.image.description="Azure Key Vault provider for the Secrets Store CSI driver" \
  --label org.opencontainers.image.version="$version" \
  --label org.opencontainers.image.created="$build_date" \
  --label org.opencontainers.image.licenses="MIT" \
  "$ctr"
"${bah[@]}" commit --quiet --timestamp "$epoch" --omit-history --identity-label=false \
  "$ctr" "localhost/$name:$version" >/dev/null

oci=$out/$name-$version.oci.tar
docker=$out/$name-$version.docker.tar
rm -f "$oci" "$docker"
"${bah[@]}" push --quiet "localhost/$name:$version" "oci-archive:$oci:$version" >&2
"${bah[@]}" push --quiet "localhost/$name:$version" "docker-archive:$docker:$name:$version" >&2
rm -rf "$rootfs"
echo "image $name:$version ($(du -h "$oci" | cut -f1)); docker-save form: $docker" >&2
echo "$oci"
