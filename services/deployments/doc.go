// Package deployments holds no code: its tests check the deployment files
// under deployments/ and docker-compose.yml against the binaries they run,
// without a container engine or a Kubernetes cluster.
//
//   - Kubernetes manifests (deployments/kubernetes): every document parses
//     and names its apiVersion, kind and metadata.name; images are ones
//     deployments/images/build.sh builds; every flag and STREAMLINE_*
//     variable a container gets exists in its binary's --help; $(VAR)
//     references, ConfigMaps, Secrets, volumes and ports resolve; Services
//     select labels some workload's pods carry.
//   - docker-compose.yml: the same for its services, plus dependencies on
//     healthy services that have health checks and advertised addresses
//     that match the published ports and service names.
//   - Dockerfiles (deployments/images/*/Dockerfile): FROM scratch only, no
//     RUN, no syntax line, exec-form health checks with the probe.
//   - The health-check probe (deployments/images/probe) against real
//     servers: versitygw (its bucket check signs with SigV4 and creates
//     buckets), a Kafka server, TCP and HTTP endpoints.
//
// The binaries are built once per test run (the probe with GOWORK=off: it
// is a module of its own, outside go.work); versitygw comes from `make
// tools`, like the end-to-end tests'.
package deployments
