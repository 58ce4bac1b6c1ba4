{{- define "initpipeline.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "initpipeline.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "initpipeline.labels" -}}
{{ include "initpipeline.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "initpipeline.serviceAccountName" -}}
{{- default (include "initpipeline.fullname" .) .Values.serviceAccount.name -}}
{{- end -}}

{{- define "initpipeline.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{/* What the operator does with pipelines and their Pods; nothing more. */}}
{{- define "initpipeline.rules" -}}
- apiGroups: [initpipeline.dev]
  resources: [initpipelines]
  verbs: [get, list, watch, patch]
- apiGroups: [initpipeline.dev]
  resources: [initpipelines/status]
  verbs: [get, patch]
- apiGroups: [""]
  resources: [pods]
  verbs: [get, list, watch, create, delete, patch]
- apiGroups: [apps]
  resources: [deployments, statefulsets]
  verbs: [get, list, watch, create, update, delete]
# attach mode: which revision of a workload of yours is current (never written)
- apiGroups: [apps]
  resources: [replicasets, controllerrevisions]
  verbs: [get, list, watch]
- apiGroups: [batch]
  resources: [jobs]
  verbs: [get, list, watch, create, delete]
- apiGroups: [kopf.dev]
  resources: [clusterkopfpeerings, kopfpeerings]
  verbs: [get, list, watch, patch]
- apiGroups: ["", events.k8s.io]
  resources: [events]
  verbs: [create, patch]
{{- with .Values.objectWaits.rules }}
# waitForObject: the other kinds that steps wait for (read only)
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* Attach mode's mechanism, policy or webhook: `auto` takes the API server's MutatingAdmissionPolicy
where it serves admissionregistration.k8s.io/v1 (Kubernetes 1.36 and later), the webhook below. */}}
{{- define "initpipeline.injection" -}}
{{- if eq .Values.injection "auto" -}}
{{- if .Capabilities.APIVersions.Has "admissionregistration.k8s.io/v1/MutatingAdmissionPolicy" }}policy{{ else }}webhook{{ end -}}
{{- else -}}
{{- .Values.injection -}}
{{- end -}}
{{- end -}}

{{/* Non-empty when the operator serves the Pod webhook: `injection` resolves to webhook and it is enabled. */}}
{{- define "initpipeline.servesWebhook" -}}
{{- if and .Values.webhook.enabled (eq (include "initpipeline.injection" .) "webhook") }}true{{ end -}}
{{- end -}}

{{/* The Pods that attach mode's admission sees: those that opt in, outside the release's namespace
and kube-system (and inside watchNamespaces, when set). */}}
{{- define "initpipeline.attachSelectors" -}}
objectSelector:
  matchExpressions:
    - {key: initpipeline.dev/inject, operator: Exists}
namespaceSelector:
  matchExpressions:
    - key: kubernetes.io/metadata.name
      operator: NotIn
      values: [{{ .Release.Namespace }}, kube-system]
    {{- if .Values.watchNamespaces }}
    - key: kubernetes.io/metadata.name
      operator: In
      values: {{ toJson .Values.watchNamespaces }}
    {{- end }}
{{- end -}}
