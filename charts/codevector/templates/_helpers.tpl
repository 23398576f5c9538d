{{/*
The system namespace is fixed: the admission policies name the components'
service accounts in it, the guardrail policies accept their ConfigMaps
from it only, and both components default --system-namespace to it.
*/}}
{{- define "codevector.namespace" -}}
{{- if ne .Release.Namespace "codevector-system" -}}
{{- fail (printf "install this chart into the namespace codevector-system (helm install --namespace codevector-system), not %q: the admission policies name the components' service accounts there" .Release.Namespace) -}}
{{- end -}}
codevector-system
{{- end -}}

{{- define "codevector.labels" -}}
app.kubernetes.io/part-of: codevector
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ include "codevector.tag" . | quote }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{/* Labels of one component; the selector uses app.kubernetes.io/name only, as config/ does. */}}
{{- define "codevector.componentLabels" -}}
app.kubernetes.io/name: codevector-{{ .component }}
app.kubernetes.io/component: {{ .component }}
{{ include "codevector.labels" .root }}
{{- end -}}

{{- define "codevector.tag" -}}
{{- .Values.image.tag | default .Chart.AppVersion -}}
{{- end -}}

{{/* The image of one component: (dict "root" $ "component" "manager"). A component's imageTag wins over image.tag (upgrades: manager first). */}}
{{- define "codevector.image" -}}
{{- $v := .root.Values -}}
{{- $tag := (index $v .component).imageTag | default (include "codevector.tag" .root) -}}
{{- if and $v.image.digest (not (index $v .component).imageTag) -}}
{{ $v.image.repository }}@{{ $v.image.digest }}
{{- else -}}
{{ $v.image.repository }}:{{ $tag }}
{{- end -}}
{{- end -}}

{{/* A verbatim copy of a file of config/ (make manifests keeps files/ in step). */}}
{{- define "codevector.file" -}}
{{ .root.Files.Get .path | trim }}
{{- end -}}
