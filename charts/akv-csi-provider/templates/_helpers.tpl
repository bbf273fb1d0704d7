{{/*
Chart name, shortened to the 63 characters a label value allows. It is the value of the
`app` label the DaemonSet selects on, so it must not change during a release's life.
*/}}
{{- define "akv-csi-provider.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Name of the Go provider's chart. With nameOverride set to it, every name, label and the
selector are the ones that chart renders, so `helm upgrade` of a release installed with it
rolls its DaemonSet in place.
*/}}
{{- define "akv-csi-provider.upstreamName" -}}
csi-secrets-store-provider-azure
{{- end }}

{{/*
"true" when the resources take the Go provider's chart's names (see upstreamName).
*/}}
{{- define "akv-csi-provider.upstreamNames" -}}
{{- eq (include "akv-csi-provider.name" .) (include "akv-csi-provider.upstreamName" .) }}
{{- end }}

{{/*
Full name of the chart's resources: fullnameOverride, else the release name when it
already contains the chart name, else "<release>-<chart>" (the Go provider's chart computes
its DaemonSet name the same way).
*/}}
{{- define "akv-csi-provider.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := include "akv-csi-provider.name" . }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/*
ServiceAccount the pods run as (and the chart creates when rbac.install): rbac.serviceAccountName
when set; else, with the Go provider's chart's names, the name that chart hard-codes
(csi-secrets-store-provider-azure, whatever its overrides); else the full name.
*/}}
{{- define "akv-csi-provider.serviceAccountName" -}}
{{- if .Values.rbac.serviceAccountName }}
{{- .Values.rbac.serviceAccountName }}
{{- else if eq (include "akv-csi-provider.upstreamNames" .) "true" }}
{{- include "akv-csi-provider.upstreamName" . }}
{{- else }}
{{- include "akv-csi-provider.fullname" . }}
{{- end }}
{{- end }}

{{/*
Chart name and version, for the helm.sh/chart label.
*/}}
{{- define "akv-csi-provider.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Labels that select the provider's pods: `app: <name>`, as the Go provider's chart. A
DaemonSet's selector cannot change in place, so this must stay exactly that.
*/}}
{{- define "akv-csi-provider.selectorLabels" -}}
app: {{ include "akv-csi-provider.name" . }}
{{- end }}

{{/*
Labels on every resource of the chart: the Go provider's chart's set, plus component and part-of.
*/}}
{{- define "akv-csi-provider.labels" -}}
helm.sh/chart: {{ include "akv-csi-provider.chart" . }}
app.kubernetes.io/name: {{ include "akv-csi-provider.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/component: provider
app.kubernetes.io/part-of: secrets-store-csi-driver
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{ include "akv-csi-provider.selectorLabels" . }}
{{- end }}

{{/*
A boolean value read as the Go provider reads its flags (Go's strconv.ParseBool), so a
string from `--set-string` or a quoted value means what it says: 1 t T TRUE true True are
true, 0 f F FALSE false False are false. Unset or "" gives the default (the Go chart omits
the flag then). Anything else fails the render, naming the value.
Call: include "akv-csi-provider.bool" (dict "value" .Values.x "default" false "name" "x")
Result: the string "true" or "false".
*/}}
{{- define "akv-csi-provider.bool" -}}
{{- $value := .value }}
{{- if kindIs "invalid" $value }}
{{- .default }}
{{- else if kindIs "bool" $value }}
{{- $value }}
{{- else }}
{{- $text := toString $value }}
{{- if eq $text "" }}
{{- .default }}
{{- else if has $text (list "1" "t" "T" "TRUE" "true" "True") }}
{{- true }}
{{- else if has $text (list "0" "f" "F" "FALSE" "false" "False") }}
{{- false }}
{{- else }}
{{- fail (printf "%s: %q is not a boolean (accepted as Go's strconv.ParseBool does: true, false, 1, 0, t, f, T, F, TRUE, FALSE, True, False)" .name ($text | trunc 64)) }}
{{- end }}
{{- end }}
{{- end }}

{{/*
Provider image reference; the tag defaults to the chart's appVersion.
*/}}
{{- define "akv-csi-provider.image" -}}
{{- $image := .Values.linux.image }}
{{- $tag := default .Chart.AppVersion $image.tag | toString }}
{{- printf "%s:%s" $image.repository $tag }}
{{- end }}

{{/*
Container port named "metrics": prometheusPort when set (it also moves the server), else
metricsAddr, which, as in the Go provider's chart, only declares the port. A bare port
("8898") as that chart takes it; a leading ":" (":8898") is tolerated too.
*/}}
{{- define "akv-csi-provider.metricsPort" -}}
{{- if .Values.prometheusPort }}
{{- .Values.prometheusPort | toString | int }}
{{- else }}
{{- trimPrefix ":" (toString .Values.metricsAddr) | int }}
{{- end }}
{{- end }}

{{/*
Container arguments: the Go provider's flags, then this provider's own flags when set.
--construct-pem-chain is always passed with an explicit value, so constructPEMChain=false
takes effect (the binary's default is true).
*/}}
{{- define "akv-csi-provider.args" -}}
{{- $v := .Values -}}
- --endpoint=unix:///provider/azure.sock
{{- if eq (include "akv-csi-provider.bool" (dict "value" $v.logFormatJSON "default" false "name" "logFormatJSON")) "true" }}
- --log-format-json=true
{{- end }}
{{- $verbosity := int (toString (default 0 $v.logVerbosity)) }}
{{- if gt $verbosity 255 }}
{{- fail (printf "logVerbosity: %d is above 255, the highest level this provider accepts" $verbosity) }}
{{- end }}
{{- if $verbosity }}
- -v={{ $verbosity }}
{{- end }}
- --construct-pem-chain={{ include "akv-csi-provider.bool" (dict "value" $v.constructPEMChain "default" true "name" "constructPEMChain") }}
{{- with $v.linux.customUserAgent }}
- {{ printf "--custom-user-agent=%s" . | quote }}
{{- end }}
- --healthz-port={{ $v.linux.healthzPort | toString | int }}
- {{ printf "--healthz-path=%s" $v.linux.healthzPath | quote }}
- --healthz-timeout={{ $v.linux.healthzTimeout }}
{{- if eq (include "akv-csi-provider.bool" (dict "value" $v.writeCertAndKeyInSeparateFiles "default" false "name" "writeCertAndKeyInSeparateFiles")) "true" }}
- --write-cert-and-key-in-separate-files=true
{{- end }}
{{- with $v.prometheusPort }}
- --prometheus-port={{ . | toString | int }}
{{- end }}
{{- with $v.maxConcurrentFetches }}
- --max-concurrent-fetches={{ . }}
{{- end }}
{{- with $v.cacheTTL }}
- --cache-ttl={{ . }}
{{- end }}
{{- with $v.shutdownGracePeriod }}
- --shutdown-grace-period={{ . }}
{{- end }}
{{- with $v.extraCAFile }}
- {{ printf "--extra-ca-file=%s" . | quote }}
{{- end }}
{{- if eq (include "akv-csi-provider.identityBinding" .) "true" }}
- --token-proxy-ca-file=/var/run/secrets/akv-csi-provider/token-proxy/ca.crt
{{- with $v.identityBinding.tokenProxyURL }}
- {{ printf "--token-proxy-url=%s" . | quote }}
{{- end }}
{{- with $v.identityBinding.sniName }}
- {{ printf "--sni-name=%s" . | quote }}
{{- end }}
{{- end }}
{{- end }}

{{/* "true" when identityBinding.enabled (a Go-style boolean) is on. */}}
{{- define "akv-csi-provider.identityBinding" -}}
{{- $ib := .Values.identityBinding | default dict -}}
{{- include "akv-csi-provider.bool" (dict "value" $ib.enabled "default" false "name" "identityBinding.enabled") -}}
{{- end }}
