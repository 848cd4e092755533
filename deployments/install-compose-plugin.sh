#!/usr/bin/env bash
# install-compose-plugin.sh: make `docker compose` (the Compose v2+ CLI
# plugin) work, building it from its Go module when it is missing.
#
#   deployments/install-compose-plugin.sh
#
# Does nothing when `docker compose version` already works (whatever
# version), or when there is no docker CLI. Otherwise it builds Compose
# $COMPOSE_VERSION from the Go module github.com/docker/compose/v5 (main
# package github.com/docker/compose/v5/cmd, CGO_ENABLED=0, -trimpath) and
# installs it as Docker's CLI plugin:
#
#   ${DOCKER_CONFIG:-$HOME/.docker}/cli-plugins/docker-compose
#
# The module has exclude directives, so `go install ...@version` refuses it:
# the build goes through a throwaway wrapper module (GOWORK=off) that repeats
# them. Compose v5.6.0 needs Go 1.26.8 or later (newer versions need a newer
# Go still). A cold build takes a few minutes on 2 cores; later runs skip.
# Only the Go module proxy is needed (no binary downloads).
#
# Environment: COMPOSE_VERSION (default v5.6.0), GO (default go), DOCKER
# (default docker), DOCKER_CONFIG (Docker's config directory, default
# ~/.docker), COMPOSE_PLUGIN_FORCE=1 (build and install even if `docker
# compose` works).
set -euo pipefail

COMPOSE_VERSION=${COMPOSE_VERSION:-v5.6.0}
COMPOSE_MODULE=github.com/docker/compose/v5
GO=${GO:-go}
DOCKER=${DOCKER:-docker}
PLUGIN_DIR=${DOCKER_CONFIG:-$HOME/.docker}/cli-plugins
PLUGIN=$PLUGIN_DIR/docker-compose

log() { echo "install-compose-plugin: $*"; }
die() {
	echo "install-compose-plugin: $*" >&2
	exit 1
}

if ! command -v "$DOCKER" >/dev/null 2>&1; then
	log "no docker CLI ($DOCKER): nothing to do"
	exit 0
fi
if [ "${COMPOSE_PLUGIN_FORCE:-}" != 1 ] && v=$(timeout 30 "$DOCKER" compose version 2>/dev/null); then
	log "docker compose works ($v): nothing to do"
	exit 0
fi
command -v "$GO" >/dev/null 2>&1 || die "Go ($GO) is needed to build the compose plugin"

start=$SECONDS
work=$(mktemp -d "${TMPDIR:-/tmp}/compose-plugin.XXXXXX")
trap 'rm -rf "$work"' EXIT
log "building Compose $COMPOSE_VERSION ($COMPOSE_MODULE/cmd) into $PLUGIN (log: $work/build.log)"
if ! (
	set -e
	cd "$work"
	export GOWORK=off GOFLAGS=-mod=mod CGO_ENABLED=0
	"$GO" mod init streamline-tools/compose-plugin
	# The excludes of compose's own go.mod (a dependent module must repeat them).
	"$GO" mod edit \
		-exclude=github.com/davecgh/go-spew@v1.1.2-0.20180830191138-d8f796af33cc \
		-exclude=github.com/pmezard/go-difflib@v1.0.1-0.20181226105442-5d4384ee4fb2
	"$GO" get "$COMPOSE_MODULE/cmd@$COMPOSE_VERSION"
	"$GO" build -trimpath \
		-ldflags "-s -w -X $COMPOSE_MODULE/internal.Version=$COMPOSE_VERSION" \
		-o docker-compose "$COMPOSE_MODULE/cmd"
) >"$work/build.log" 2>&1; then
	tail -n 40 "$work/build.log" >&2
	die "building Compose $COMPOSE_VERSION failed"
fi
mkdir -p "$PLUGIN_DIR"
install -m 0755 "$work/docker-compose" "$PLUGIN.tmp"
mv -f "$PLUGIN.tmp" "$PLUGIN"
v=$(timeout 30 "$DOCKER" compose version 2>&1) ||
	die "installed $PLUGIN, but \`$DOCKER compose version\` fails: $v"
log "installed $PLUGIN in $((SECONDS - start))s: $v"
