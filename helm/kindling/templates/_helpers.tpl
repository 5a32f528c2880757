{{/* Names, labels and the values several templates share. */}}

{{- define "kindling.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "kindling.fullname" -}}
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

{{- define "kindling.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "kindling.selectorLabels" -}}
app.kubernetes.io/name: {{ include "kindling.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "kindling.labels" -}}
helm.sh/chart: {{ include "kindling.chart" . }}
{{ include "kindling.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/component: kernel
{{- end }}

{{- define "kindling.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "kindling.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "kindling.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/* The Secret holding the HMAC key (`key`) and the Spark Connect token (`spark-token`). */}}
{{- define "kindling.secretName" -}}
{{- default (include "kindling.fullname" .) .Values.auth.existingSecret }}
{{- end }}

{{/* Whether the kernel gets a Spark Connect token from the Secret. */}}
{{- define "kindling.useToken" -}}
{{- if .Values.auth.existingSecret -}}
{{- if .Values.sparkConnect.token.inExistingSecret -}}
true
{{- end }}
{{- else if or .Values.sparkConnect.token.value .Values.sparkConnect.token.generate -}}
true
{{- end }}
{{- end }}
