package cluster

// serverConfig is the Temporal server's configuration: PostgreSQL for
// persistence and visibility, each service on its own ports, and mTLS at
// the frontend when asked for (the services talk among themselves in
// plain text on loopback; the system worker presents a client certificate
// to the frontend like any other client).
const serverConfig = `log:
  stdout: true
  level: warn
persistence:
  defaultStore: postgres-default
  visibilityStore: postgres-visibility
  numHistoryShards: 4
  datastores:
    postgres-default:
      sql:
        pluginName: postgres12
        databaseName: temporal
        connectAddr: "127.0.0.1:{{.P.Postgres}}"
        connectProtocol: tcp
        user: temporal
        maxConns: 40
        maxIdleConns: 40
        maxConnLifetime: 1h
    postgres-visibility:
      sql:
        pluginName: postgres12
        databaseName: temporal_visibility
        connectAddr: "127.0.0.1:{{.P.Postgres}}"
        connectProtocol: tcp
        user: temporal
        maxConns: 10
        maxIdleConns: 10
        maxConnLifetime: 1h
global:
  membership:
    maxJoinDuration: 30s
    broadcastAddress: 127.0.0.1
{{- with .TLS}}
  tls:
    frontend:
      server:
        certFile: {{.ServerCert}}
        keyFile: {{.ServerKey}}
        requireClientAuth: true
        clientCaFiles: [{{.CA}}]
      client:
        serverName: localhost
        rootCaFiles: [{{.CA}}]
    systemWorker:
      certFile: {{.Cert}}
      keyFile: {{.Key}}
      client:
        serverName: localhost
        rootCaFiles: [{{.CA}}]
{{- end}}
services:
  frontend:
    rpc: {grpcPort: {{.P.Frontend}}, membershipPort: {{index .P.Membership 2}}, bindOnIP: 127.0.0.1, httpPort: {{.P.FrontendHTTP}}}
  history:
    rpc: {grpcPort: {{.P.History}}, membershipPort: {{index .P.Membership 0}}, bindOnIP: 127.0.0.1}
  matching:
    rpc: {grpcPort: {{.P.Matching}}, membershipPort: {{index .P.Membership 1}}, bindOnIP: 127.0.0.1}
  worker:
    rpc: {grpcPort: {{.P.Worker}}, membershipPort: {{index .P.Membership 3}}, bindOnIP: 127.0.0.1}
clusterMetadata:
  enableGlobalNamespace: false
  failoverVersionIncrement: 10
  masterClusterName: active
  currentClusterName: active
  clusterInformation:
    active:
      enabled: true
      initialFailoverVersion: 1
      rpcName: frontend
      rpcAddress: "127.0.0.1:{{.P.Frontend}}"
      httpAddress: "127.0.0.1:{{.P.FrontendHTTP}}"
dcRedirectionPolicy:
  policy: noop
archival:
  history: {state: disabled}
  visibility: {state: disabled}
namespaceDefaults:
  archival:
    history: {state: disabled}
    visibility: {state: disabled}
publicClient:
  hostPort: "127.0.0.1:{{.P.Frontend}}"
dynamicConfigClient:
  filepath: {{.Dynamic}}
  pollInterval: 10s
`

// dynamicConfig turns on what handoff uses (updates, update-with-start)
// and makes new namespaces and search attributes usable at once.
const dynamicConfig = `frontend.enableUpdateWorkflowExecution:
  - value: true
frontend.enableUpdateWorkflowExecutionAsyncAccepted:
  - value: true
frontend.enableExecuteMultiOperation:
  - value: true
system.forceSearchAttributesCacheRefreshOnRead:
  - value: true
system.namespaceCacheRefreshInterval:
  - value: 1s
`

// uiConfig is the Web UI's: the frontend, and handoff's codec endpoint.
const uiConfig = `temporalGrpcAddress: "127.0.0.1:{{.P.Frontend}}"
host: 127.0.0.1
port: {{.P.UI}}
enableUi: true
defaultNamespace: default
refreshInterval: 1m
cors:
  cookieInsecure: true
{{- with .TLS}}
tls:
  caFile: {{.CA}}
  certFile: {{.Cert}}
  keyFile: {{.Key}}
  serverName: localhost
  enableHostVerification: true
{{- end}}
codec:
  endpoint: "{{.Codec}}"
  includeCredentials: true
`
