{{- define "rag-portal.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "rag-portal.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else if contains (include "rag-portal.name" .) .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name (include "rag-portal.name" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "rag-portal.selectorLabels" -}}
app.kubernetes.io/name: {{ include "rag-portal.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "rag-portal.labels" -}}
{{ include "rag-portal.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{- define "rag-portal.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "rag-portal.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "rag-portal.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{- define "rag-portal.secretName" -}}
{{- default (printf "%s-connections" (include "rag-portal.fullname" .)) .Values.secrets.existingSecret -}}
{{- end -}}

{{/* RAGPORTAL_CLUSTERS: name -> {in_cluster} or {kubeconfig, context}. */}}
{{- define "rag-portal.clustersJson" -}}
{{- $clusters := dict -}}
{{- if .Values.provisioning.inCluster -}}
{{- $_ := set $clusters "in-cluster" (dict "in_cluster" true) -}}
{{- end -}}
{{- range $name, $cluster := .Values.provisioning.clusters -}}
{{- $_ := set $clusters $name (dict "kubeconfig" (printf "/etc/rag-portal/kubeconfigs/%s" $cluster.file) "context" $cluster.context) -}}
{{- end -}}
{{- toJson $clusters -}}
{{- end -}}

{{/* Environment shared by the API, workers, beat and the migration Job. */}}
{{- define "rag-portal.env" -}}
- name: RAGPORTAL_DATA_DIR
  value: /data
- name: RAGPORTAL_HOST
  value: 0.0.0.0
- name: RAGPORTAL_PORT
  value: {{ .Values.api.port | quote }}
- name: RAGPORTAL_BASE_URL
  value: {{ .Values.baseUrl | quote }}
- name: RAGPORTAL_CLUSTERS
  value: {{ include "rag-portal.clustersJson" . | quote }}
{{- if .Values.provisioning.defaultCluster }}
- name: RAGPORTAL_DEFAULT_CLUSTER
  value: {{ .Values.provisioning.defaultCluster | quote }}
{{- end }}
- name: RAGPORTAL_PROVISION_GPU_CLASS_LABEL
  value: {{ .Values.provisioning.gpuClassLabel | quote }}
- name: RAGPORTAL_RECONCILE_INTERVAL_S
  value: {{ .Values.provisioning.reconcileIntervalSeconds | quote }}
- name: DATABASE_URL
  valueFrom:
    secretKeyRef:
      name: {{ include "rag-portal.secretName" . }}
      key: {{ .Values.secrets.keys.databaseUrl }}
- name: REDIS_URL
  valueFrom:
    secretKeyRef:
      name: {{ include "rag-portal.secretName" . }}
      key: {{ .Values.secrets.keys.redisUrl }}
- name: RAGPORTAL_PROVISIONING_SECRET_KEY
  valueFrom:
    secretKeyRef:
      name: {{ include "rag-portal.secretName" . }}
      key: {{ .Values.secrets.keys.provisioningSecretKey }}
- name: RAGPORTAL_BOOTSTRAP_TOKEN
  valueFrom:
    secretKeyRef:
      name: {{ include "rag-portal.secretName" . }}
      key: {{ .Values.secrets.keys.bootstrapToken }}
      optional: true
{{- range $key, $value := .Values.env }}
- name: {{ printf "RAGPORTAL_%s" $key }}
  value: {{ $value | quote }}
{{- end }}
{{- end -}}

{{- define "rag-portal.volumeMounts" -}}
- name: data
  mountPath: /data
- name: tmp
  mountPath: /tmp
{{- if .Values.provisioning.kubeconfigSecret }}
- name: kubeconfigs
  mountPath: /etc/rag-portal/kubeconfigs
  readOnly: true
{{- end }}
{{- end -}}

{{- define "rag-portal.volumes" -}}
- name: data
  emptyDir: {}
- name: tmp
  emptyDir: {}
{{- if .Values.provisioning.kubeconfigSecret }}
- name: kubeconfigs
  secret:
    secretName: {{ .Values.provisioning.kubeconfigSecret }}
    defaultMode: 0400
{{- end }}
{{- end -}}

{{- define "rag-portal.podSpecCommon" -}}
serviceAccountName: {{ include "rag-portal.serviceAccountName" . }}
securityContext:
  {{- toYaml .Values.podSecurityContext | nindent 2 }}
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
volumes:
  {{- include "rag-portal.volumes" . | nindent 2 }}
{{- end -}}
