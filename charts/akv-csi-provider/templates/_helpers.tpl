{{/*
Chart name, shortened to the 63 characters a label value allows.
*/}}
{{- define "akv-csi-provider.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Full name of the chart's resources: fullnameOverride, else the release name when it
already contains the chart name, else "<release>-<chart>".
*/}}
{{- define "akv-csi-provider.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/*
Chart name and version, for the helm.sh/chart label.
*/}}
{{- define "akv-csi-provider.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Labels that select the provider's pods. They must not change between releases.
*/}}
{{- define "akv-csi-provider.selectorLabels" -}}
app.kubernetes.io/name: {{ include "akv-csi-provider.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/*
Labels on every resource of the chart.
*/}}
{{- define "akv-csi-provider.labels" -}}
helm.sh/chart: {{ include "akv-csi-provider.chart" . }}
{{ include "akv-csi-provider.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/component: provider
app.kubernetes.io/part-of: secrets-store-csi-driver
app.kubernetes.io/managed-by: {{ .Release.Service }}
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
Prometheus port from metricsAddr. The Go provider's chart takes a bare port ("8898");
a leading ":" (":8898") is tolerated too.
*/}}
{{- define "akv-csi-provider.metricsPort" -}}
{{- trimPrefix ":" (toString .Values.metricsAddr) | int }}
{{- end }}

{{/*
Container arguments: the Go provider's flags, then this provider's own flags when set.
--construct-pem-chain is always passed with an explicit value, so constructPEMChain=false
takes effect (the binary's default is true).
*/}}
{{- define "akv-csi-provider.args" -}}
- --endpoint=unix:///provider/azure.sock
- --construct-pem-chain={{ ternary "false" "true" (eq (toString .Values.constructPEMChain | lower) "false") }}
{{- if .Values.writeCertAndKeyInSeparateFiles }}
- --write-cert-and-key-in-separate-files=true
{{- end }}
- --healthz-port={{ .Values.linux.healthzPort }}
- {{ printf "--healthz-path=%s" .Values.linux.healthzPath | quote }}
- --healthz-timeout={{ .Values.linux.healthzTimeout }}
- --prometheus-port={{ include "akv-csi-provider.metricsPort" . }}
{{- if .Values.logFormatJSON }}
- --log-format-json=true
{{- end }}
{{- if .Values.logVerbosity }}
- -v={{ .Values.logVerbosity }}
{{- end }}
{{- with .Values.linux.customUserAgent }}
- {{ printf "--custom-user-agent=%s" . | quote }}
{{- end }}
{{- with .Values.maxConcurrentFetches }}
- --max-concurrent-fetches={{ . }}
{{- end }}
{{- with .Values.cacheTTL }}
- --cache-ttl={{ . }}
{{- end }}
{{- with .Values.shutdownGracePeriod }}
- --shutdown-grace-period={{ . }}
{{- end }}
{{- with .Values.extraCAFile }}
- {{ printf "--extra-ca-file=%s" . | quote }}
{{- end }}
{{- end }}
