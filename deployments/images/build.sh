#!/usr/bin/env bash
# build.sh: build Streamline's container images from local files only (no
# registry is reachable where they are used, so nothing is pulled).
#
#   deployments/images/build.sh [IMAGE...]
#
# IMAGE is one of: streamline gateway logsvc uploader etcd versitygw jaeger
# (default: all). Each becomes streamline/IMAGE:$IMAGE_TAG (default dev): FROM
# scratch + static binaries (CGO_ENABLED=0) + rootfs/ (CA bundle from the
# host, etc/passwd with the non-root user streamline, uid 65532, tmp/ mode
# 1777) + the health-check probe (probe/, a module of its own). Health
# checks are exec-form `probe` commands; see each IMAGE/Dockerfile.
#
# Binaries:
#   streamline, gateway, logsvc, uploader, streamline-etcd  go build from this repository
#   probe      go build in probe/ (GOWORK=off: not part of go.work)
#   versitygw  $VERSITYGW_VERSION; reused from $(go env GOBIN) or $(go env GOPATH)/bin
#              when static and of that version (`make tools` installs it there),
#              else `go install`ed once into the cache (~2 min)
#   jaeger     Jaeger v2 $JAEGER_VERSION, built once in the cache through a
#              throwaway wrapper module (~7 min on 2 cores); later runs reuse it
#
# Environment:
#   IMAGE_TAG                 tag of the images (default dev)
#   STREAMLINE_IMAGES_CACHE   cache directory: built binaries, third-party tools,
#                             one staging directory (= build context) per image
#                             (default: <repo>/.cache/images, ignored by git)
#   CA_BUNDLE                 CA certificates copied into the images
#                             (default /etc/ssl/certs/ca-certificates.crt)
#   GO (default go), DOCKER (default docker)
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$SCRIPT_DIR/../.." && pwd)
GO=${GO:-go}
DOCKER=${DOCKER:-docker}
TAG=${IMAGE_TAG:-dev}
CACHE=${STREAMLINE_IMAGES_CACHE:-$REPO/.cache/images}
CA_BUNDLE=${CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}
VERSITYGW_VERSION=v1.8.0
JAEGER_VERSION=v1.76.0
ALL_IMAGES="streamline gateway logsvc uploader etcd versitygw jaeger"

die() {
	echo "build.sh: $*" >&2
	exit 1
}

# binaries_of IMAGE: the binaries an image holds (besides probe).
binaries_of() {
	case "$1" in
	etcd) echo streamline-etcd ;;
	*) echo "$1" ;;
	esac
}

# package_of BINARY: the Go package of a binary built from this repository.
package_of() {
	case "$1" in
	streamline) echo ./services/cmd/streamline ;;
	streamline-etcd) echo ./services/cmd/streamline-etcd ;;
	gateway) echo ./gateway/cmd/gateway ;;
	logsvc) echo ./logsvc/cmd/logsvc ;;
	uploader) echo ./uploader/cmd/uploader ;;
	esac
}

# static_go BIN [MODULE VERSION]: BIN is a Go binary built with
# CGO_ENABLED=0 (so static) and, if given, containing MODULE at VERSION.
static_go() {
	local info
	[ -f "$1" ] && [ -x "$1" ] || return 1
	info=$("$GO" version -m "$1" 2>/dev/null) || return 1
	grep -q $'^\tbuild\tCGO_ENABLED=0$' <<<"$info" || return 1
	if [ $# -ge 3 ]; then
		grep -qE $'^\t(mod|dep)\t'"$2"$'\t'"$3"$'(\t|$)' <<<"$info" || return 1
	fi
}

# versitygw_bin: path of a static versitygw $VERSITYGW_VERSION, installed into
# the cache if none is found.
versitygw_bin() {
	local gobin dir="$CACHE/tools/versitygw-$VERSITYGW_VERSION" c
	local cached="$dir/versitygw"
	gobin=$("$GO" env GOBIN)
	if [ -z "$gobin" ]; then
		gobin="$("$GO" env GOPATH | cut -d: -f1)/bin"
	fi
	for c in "$gobin/versitygw" "$cached"; do
		if static_go "$c" github.com/versity/versitygw "$VERSITYGW_VERSION"; then
			echo "$c"
			return
		fi
	done
	local log="$dir.build.log"
	echo "== versitygw $VERSITYGW_VERSION: go install into $dir (once, ~2 min; log: $log)" >&2
	rm -rf "$dir.tmp"
	mkdir -p "$dir.tmp"
	if ! GOWORK=off GOBIN="$dir.tmp" "$GO" install "github.com/versity/versitygw/cmd/versitygw@$VERSITYGW_VERSION" >"$log" 2>&1; then
		tail -n 30 "$log" >&2
		die "go install versitygw@$VERSITYGW_VERSION failed (log: $log)"
	fi
	rm -rf "$dir"
	mv "$dir.tmp" "$dir"
	static_go "$cached" github.com/versity/versitygw "$VERSITYGW_VERSION" || die "$cached is not a static versitygw $VERSITYGW_VERSION"
	echo "$cached"
}

# jaeger_bin: path of Jaeger v2 $JAEGER_VERSION, built into the cache once.
# Its main package is built through a throwaway wrapper module (GOWORK=off:
# the cache lies under this repository's go.work); jaeger's own go.mod
# replaces Shopify/sarama, which a dependent module must repeat.
jaeger_bin() {
	local dir="$CACHE/tools/jaeger-$JAEGER_VERSION"
	if static_go "$dir/jaeger" github.com/jaegertracing/jaeger "$JAEGER_VERSION"; then
		echo "$dir/jaeger"
		return
	fi
	local log="$CACHE/tools/jaeger-$JAEGER_VERSION.build.log"
	echo "== jaeger $JAEGER_VERSION: build in $dir (once, ~5-7 min on 2 cores; log: $log)" >&2
	rm -rf "$dir.tmp"
	mkdir -p "$dir.tmp"
	if ! (
		set -e
		cd "$dir.tmp"
		export GOWORK=off
		"$GO" mod init streamline-tools/jaeger
		"$GO" mod edit -replace=github.com/Shopify/sarama=github.com/Shopify/sarama@v1.33.0
		"$GO" get "github.com/jaegertracing/jaeger/cmd/jaeger@$JAEGER_VERSION"
		"$GO" build -trimpath -o jaeger github.com/jaegertracing/jaeger/cmd/jaeger
	) >"$log" 2>&1; then
		tail -n 30 "$log" >&2
		die "building jaeger $JAEGER_VERSION failed (log: $log)"
	fi
	rm -rf "$dir"
	mv "$dir.tmp" "$dir"
	static_go "$dir/jaeger" github.com/jaegertracing/jaeger "$JAEGER_VERSION" || die "$dir/jaeger is not a static jaeger $JAEGER_VERSION"
	echo "$dir/jaeger"
}

# link_or_copy SRC DST: a hard link for files of the cache (no copy of large
# binaries), else (or if linking fails) a copy: DST's mode is changed next,
# which must not touch files outside the cache, such as $GOPATH/bin's.
link_or_copy() {
	case "$1" in
	"$CACHE"/*) ln -f "$1" "$2" 2>/dev/null && return ;;
	esac
	cp -f "$1" "$2"
}

# stage IMAGE BIN...: (re)create the image's build context in $CACHE/stage/IMAGE.
stage() {
	local name=$1 ctx="$CACHE/stage/$1" b
	shift
	rm -rf "$ctx"
	mkdir -p "$ctx/bin" "$ctx/home" "$ctx/data"
	cp "$SCRIPT_DIR/$name/Dockerfile" "$SCRIPT_DIR/.dockerignore" "$ctx/"
	cp -R "$SCRIPT_DIR/rootfs" "$ctx/rootfs"
	mkdir -p "$ctx/rootfs/etc/ssl/certs" "$ctx/rootfs/tmp"
	cp "$CA_BUNDLE" "$ctx/rootfs/etc/ssl/certs/ca-certificates.crt"
	# Modes independent of the checkout's umask (they are part of the image).
	find "$ctx/rootfs" "$ctx/home" "$ctx/data" -type d -exec chmod 0755 {} +
	find "$ctx/rootfs" -type f -exec chmod 0644 {} +
	chmod 1777 "$ctx/rootfs/tmp"
	for b in "$@"; do
		link_or_copy "$b" "$ctx/bin/$(basename "$b")"
		chmod 0755 "$ctx/bin/$(basename "$b")"
	done
}

start=$SECONDS
images=("$@")
if [ ${#images[@]} -eq 0 ]; then
	read -r -a images <<<"$ALL_IMAGES"
fi
for i in "${images[@]}"; do
	case " $ALL_IMAGES " in
	*" $i "*) ;;
	*) die "unknown image \"$i\" (want some of: $ALL_IMAGES)" ;;
	esac
done
[ -r "$CA_BUNDLE" ] || die "CA bundle $CA_BUNDLE not readable (set CA_BUNDLE)"
"$DOCKER" info >/dev/null 2>&1 || die "no docker engine (\`$DOCKER info\` failed)"
export CGO_ENABLED=0
mkdir -p "$CACHE/bin" "$CACHE/tools" "$CACHE/stage"

# This repository's binaries, in one go build (parallel compile and link).
pkgs=()
for i in "${images[@]}"; do
	for b in $(binaries_of "$i"); do
		p=$(package_of "$b")
		if [ -n "$p" ]; then
			pkgs+=("$p")
		fi
	done
done
if [ ${#pkgs[@]} -gt 0 ]; then
	echo "== go build ${pkgs[*]}"
	(cd "$REPO" && "$GO" build -trimpath -o "$CACHE/bin/" "${pkgs[@]}") || die "go build failed"
fi
echo "== go build probe"
(cd "$SCRIPT_DIR/probe" && GOWORK=off "$GO" build -trimpath -ldflags='-s -w' -o "$CACHE/bin/probe" .) ||
	die "go build probe failed"

for i in "${images[@]}"; do
	bins=()
	case "$i" in
	versitygw)
		b=$(versitygw_bin)
		bins+=("$b")
		;;
	jaeger)
		b=$(jaeger_bin)
		bins+=("$b")
		;;
	*)
		for b in $(binaries_of "$i"); do
			bins+=("$CACHE/bin/$b")
		done
		;;
	esac
	for b in "${bins[@]}" "$CACHE/bin/probe"; do
		static_go "$b" || die "$b is not a static Go binary (CGO_ENABLED=0)"
	done
	stage "$i" "${bins[@]}" "$CACHE/bin/probe"
	echo "== docker build -t streamline/$i:$TAG"
	log="$CACHE/stage/$i.build.log"
	if ! "$DOCKER" build --label "org.opencontainers.image.title=streamline/$i" \
		-t "streamline/$i:$TAG" "$CACHE/stage/$i" >"$log" 2>&1; then
		tail -n 30 "$log" >&2
		die "docker build of streamline/$i failed (log: $log)"
	fi
done
echo "== images built in $((SECONDS - start))s:"
for i in "${images[@]}"; do
	"$DOCKER" image ls --format '   {{.Repository}}:{{.Tag}}  {{.Size}}' "streamline/$i:$TAG"
done
