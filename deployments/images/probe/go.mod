// The health-check probe of the container images. A module of its own, kept
// out of go.work and of the product's modules: build it with GOWORK=off
// (deployments/images/build.sh does). Standard library only.
module github.com/streamline-dev/streamline/deployments/images/probe

go 1.26.0
