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
- name: RAGPORTAL_SCAFFOLDER_DEFAULT_GIT_HOST
  value: {{ .Values.git.defaultHost | quote }}
- name: RAGPORTAL_SCAFFOLDER_GIT_HOSTS
  value: {{ toJson .Values.git.hosts | quote }}
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

{{/* The data folder: the shared volume (persistence.enabled) for the portal's pods; an
emptyDir for the migration hook, which runs before the chart's PersistentVolumeClaim exists
and writes nothing there. Call with (dict "root" . "hook" true|false). */}}
{{- define "rag-portal.volumes" -}}
{{- $root := .root -}}
- name: data
{{- if and $root.Values.persistence.enabled (not .hook) }}
  persistentVolumeClaim:
    claimName: {{ include "rag-portal.dataClaim" $root }}
{{- else }}
  emptyDir: {}
{{- end }}
- name: tmp
  emptyDir: {}
{{- if $root.Values.provisioning.kubeconfigSecret }}
- name: kubeconfigs
  secret:
    secretName: {{ $root.Values.provisioning.kubeconfigSecret }}
    defaultMode: 0400
{{- end }}
{{- end -}}

{{- define "rag-portal.dataClaim" -}}
{{- default (printf "%s-data" (include "rag-portal.fullname" .)) .Values.persistence.existingClaim -}}
{{- end -}}

{{/* Call with (dict "root" . "hook" true|false). */}}
{{- define "rag-portal.podSpecCommon" -}}
{{- $root := .root -}}
serviceAccountName: {{ include "rag-portal.serviceAccountName" $root }}
securityContext:
  {{- toYaml $root.Values.podSecurityContext | nindent 2 }}
{{- with $root.Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
volumes:
  {{- include "rag-portal.volumes" . | nindent 2 }}
{{- end -}}

{{/* Values that cannot work together fail `helm template`/`helm install` with the fix. */}}
{{- define "rag-portal.validate" -}}
{{- $host := .Values.git.defaultHost -}}
{{- if and (eq $host "local") (not .Values.persistence.enabled) -}}
{{- fail "git.defaultHost is \"local\" (bare repositories in the portal's data folder) but persistence.enabled is false: every pod would get its own emptyDir data folder, so a repository a worker creates is missing for the API and the other workers. Either set persistence.enabled=true (a ReadWriteMany volume shared by all pods) or publish to a git host: git.defaultHost=<host> with git.hosts.<host> (e.g. type: github) and its token in the secret store (ragportal secrets set git-token:<host>)." -}}
{{- end -}}
{{- if and (ne $host "local") (not (hasKey .Values.git.hosts $host)) -}}
{{- fail (printf "git.defaultHost %q is not in git.hosts (configured: %s): add git.hosts.%s (type github, gitlab or git)" $host (keys .Values.git.hosts | sortAlpha | join ", " | default "none") $host) -}}
{{- end -}}
{{- if and .Values.persistence.enabled (not .Values.persistence.existingClaim) (not (has "ReadWriteMany" .Values.persistence.accessModes)) -}}
{{- fail "persistence.accessModes must include ReadWriteMany: the data folder is shared by the API, worker and beat pods, which may run on different nodes (or set persistence.enabled=false and publish to a git host)." -}}
{{- end -}}
{{- end -}}
