{{/*
Named templates shared by the chart's manifests. The chart keeps to a small subset of the
template language (fields, include, if/else, default, quote, toYaml, indent, nindent), the
subset operator/tests/chart.rs renders without Helm.
*/}}

{{/* Name of every object of the release: the release name unless fullnameOverride is set. */}}
{{- define "kuberaft.fullname" -}}
{{- .Values.fullnameOverride | default .Release.Name -}}
{{- end -}}

{{/* Labels the Deployment selects its pods by, and the Service and ServiceMonitor select by. */}}
{{- define "kuberaft.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end -}}

{{/* Labels of every object of the release. */}}
{{- define "kuberaft.labels" -}}
{{ include "kuberaft.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ .Chart.Name }}-{{ .Chart.Version }}
{{- end -}}

{{/* The ServiceAccount the operator runs as, and the ClusterRoleBinding grants to. */}}
{{- define "kuberaft.serviceAccountName" -}}
{{- .Values.serviceAccount.name | default (include "kuberaft.fullname" .) -}}
{{- end -}}

{{/* The operator image; the tag defaults to the chart's appVersion. */}}
{{- define "kuberaft.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}
