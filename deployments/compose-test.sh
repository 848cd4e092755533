#!/usr/bin/env bash
# compose-test.sh: build the images, start docker-compose.yml, use it as a
# Kafka client on the host would, and tear it down.
#
#   deployments/compose-test.sh
#
# Steps: deployments/images/build.sh; `compose up -d` (with --wait where the
# compose version has it) and wait until every container is healthy; kcat
# produces keyed records through gateway 1's published port and consumes
# them through gateway 2's; a diskless topic (storage.mode=diskless, created
# by streamline-bench) is written and read back through the gateways and
# its objects are looked for in versitygw's volume; Jaeger's query API must
# show streamline-gateway traces; then `compose down -v`.
#
# Without a docker engine (`docker info` fails) it prints
# "compose test SKIPPED: no docker engine" and exits 0. It runs as compose
# project $COMPOSE_TEST_PROJECT (default streamline-compose-test) on free
# 127.0.0.1 ports, so a stack started with plain `docker compose up` is not
# disturbed. Needs Go, kcat, curl and python3 (free ports).
#
# Environment: COMPOSE_TEST_TIMEOUT (seconds for the stack to become healthy,
# default 180), COMPOSE_TEST_BUILD_TIMEOUT (seconds for build.sh, default
# 1800: a first run builds versitygw and Jaeger), COMPOSE_TEST_KEEP=1 (leave
# the stack running after a failure, for a look), GO, DOCKER.
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$SCRIPT_DIR/.." && pwd)
GO=${GO:-go}
DOCKER=${DOCKER:-docker}
PROJECT=${COMPOSE_TEST_PROJECT:-streamline-compose-test}
UP_TIMEOUT=${COMPOSE_TEST_TIMEOUT:-180}
BUILD_TIMEOUT=${COMPOSE_TEST_BUILD_TIMEOUT:-1800}
start=$SECONDS

log() { echo "compose-test: $*"; }
fail() {
	echo "compose test FAILED: $*" >&2
	exit 1
}

if ! timeout 30 "$DOCKER" info >/dev/null 2>&1; then
	echo "compose test SKIPPED: no docker engine (\`$DOCKER info\` failed)"
	exit 0
fi
if timeout 30 "$DOCKER" compose version >/dev/null 2>&1; then
	COMPOSE=("$DOCKER" compose)
elif command -v docker-compose >/dev/null 2>&1 && timeout 30 docker-compose version >/dev/null 2>&1; then
	COMPOSE=(docker-compose)
else
	echo "compose test SKIPPED: no docker compose (neither \`$DOCKER compose\` nor docker-compose works)"
	exit 0
fi
for tool in kcat curl python3 "$GO"; do
	command -v "$tool" >/dev/null || fail "$tool is needed"
done
COMPOSE+=(-f "$REPO/docker-compose.yml" -p "$PROJECT")
log "using ${COMPOSE[*]}"

down() {
	timeout 180 "${COMPOSE[@]}" down -v --remove-orphans -t 15 >/dev/null 2>&1 ||
		log "warning: compose down did not finish cleanly"
}

on_exit() {
	local rc=$?
	if [ "$rc" -ne 0 ]; then
		echo "---- compose ps" >&2
		timeout 60 "${COMPOSE[@]}" ps >&2 || true
		echo "---- compose logs (last 40 lines of each service)" >&2
		timeout 60 "${COMPOSE[@]}" logs --no-color --tail=40 >&2 || true
		if [ "${COMPOSE_TEST_KEEP:-}" = 1 ]; then
			log "COMPOSE_TEST_KEEP=1: stack left running; stop it with: ${COMPOSE[*]} down -v"
			exit "$rc"
		fi
	fi
	log "compose down -v"
	down
	exit "$rc"
}

log "building images (deployments/images/build.sh)"
timeout "$BUILD_TIMEOUT" "$SCRIPT_DIR/images/build.sh" || fail "build.sh failed or took over ${BUILD_TIMEOUT}s"
# The diskless check's client, built before the stack starts.
BENCH="${STREAMLINE_IMAGES_CACHE:-$REPO/.cache/images}/bin/streamline-bench"
(cd "$REPO" && timeout 600 "$GO" build -o "$BENCH" ./services/cmd/streamline-bench) || fail "go build streamline-bench failed"

# Free host ports for the published ones (the compose file reads these).
read -r GW1_PORT GW2_PORT JAEGER_PORT OTLP_PORT <<<"$(python3 -c '
import socket
socks = []
for _ in range(4):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    socks.append(s)
print(" ".join(str(s.getsockname()[1]) for s in socks))
')"
export STREAMLINE_GATEWAY_1_PORT=$GW1_PORT STREAMLINE_GATEWAY_2_PORT=$GW2_PORT
export STREAMLINE_JAEGER_PORT=$JAEGER_PORT STREAMLINE_OTLP_PORT=$OTLP_PORT
GW1=127.0.0.1:$GW1_PORT
GW2=127.0.0.1:$GW2_PORT

# A stack left over by an interrupted run would hold the volumes' old data.
down
trap on_exit EXIT
trap 'exit 130' INT TERM

log "compose up (gateways on $GW1 and $GW2, Jaeger on 127.0.0.1:$JAEGER_PORT)"
up_start=$SECONDS
up=(up -d)
if "${COMPOSE[@]}" up --help 2>/dev/null | grep -q -- '--wait'; then
	up+=(--wait)
fi
timeout "$UP_TIMEOUT" "${COMPOSE[@]}" "${up[@]}" || fail "compose ${up[*]} failed or took over ${UP_TIMEOUT}s"

# Every container healthy (docker-compose v1 has no --wait; with v2 this
# returns at once).
deadline=$((SECONDS + UP_TIMEOUT))
while :; do
	mapfile -t ids < <("${COMPOSE[@]}" ps -q)
	[ "${#ids[@]}" -gt 0 ] || fail "no containers in project $PROJECT"
	states=$("$DOCKER" inspect -f '{{.Name}} {{.State.Status}} {{if .State.Health}}{{.State.Health.Status}}{{else}}no-healthcheck{{end}}' "${ids[@]}")
	if ! grep -qvE ' running (healthy|no-healthcheck)$' <<<"$states"; then
		break
	fi
	if grep -qE ' (exited|dead) | unhealthy$' <<<"$states"; then
		fail "a container stopped or is unhealthy:"$'\n'"$(grep -vE ' running (healthy|no-healthcheck)$' <<<"$states")"
	fi
	if [ "$SECONDS" -ge "$deadline" ]; then
		fail "not all healthy after ${UP_TIMEOUT}s:"$'\n'"$(grep -vE ' running (healthy|no-healthcheck)$' <<<"$states")"
	fi
	sleep 1
done
log "all ${#ids[@]} containers healthy $((SECONDS - up_start))s after compose up"

# Metadata: both gateways, with the advertised (published) addresses.
meta=$(timeout 30 kcat -b "$GW1" -L -m 20) || fail "kcat -L against $GW1 failed"
if ! grep -q "at $GW1" <<<"$meta" || ! grep -q "at $GW2" <<<"$meta"; then
	fail "metadata does not list both gateways at $GW1 and $GW2:"$'\n'"$meta"
fi

# Local topic: produce through gateway 1, consume through gateway 2.
topic=compose-test-$$-$RANDOM
n=100
for i in $(seq 1 "$n"); do echo "k$i:value-$i"; done |
	timeout 60 kcat -b "$GW1" -t "$topic" -P -K: -m 30 -X message.timeout.ms=30000 ||
	fail "kcat could not produce $n records to $topic through $GW1"
got=$(timeout 60 kcat -b "$GW2" -t "$topic" -C -e -q -m 30 -f '%k:%s\n' | sort -V) ||
	fail "kcat could not consume $topic through $GW2"
want=$(for i in $(seq 1 "$n"); do echo "k$i:value-$i"; done)
[ "$got" = "$want" ] || fail "consumed records of $topic differ from the produced ones: got $(wc -l <<<"$got") lines, first: $(head -n 3 <<<"$got" | tr '\n' ' ')"
log "local topic $topic: $n records produced via $GW1, read back via $GW2"

# Diskless topic: streamline-bench creates it with storage.mode=diskless,
# produces and consumes; kcat reads it again through the other gateway.
dtopic=compose-diskless-$$-$RANDOM
timeout 120 "$BENCH" --brokers "$GW1,$GW2" --storage-mode diskless --records 500 --record-bytes 100 \
	--partitions 3 --topic "$dtopic" >/dev/null || fail "streamline-bench on diskless topic $dtopic failed"
count=$(timeout 60 kcat -b "$GW2" -t "$dtopic" -C -e -q -m 30 -f '%o\n' | wc -l) ||
	fail "kcat could not consume $dtopic through $GW2"
[ "$count" -eq 500 ] || fail "diskless topic $dtopic: read $count records back, want 500"
# Its objects are in versitygw's volume (checked where the volume is
# readable from here: the docker host, as root).
vol=$("$DOCKER" volume inspect -f '{{.Mountpoint}}' "${PROJECT}_s3-data" 2>/dev/null || true)
if [ -n "$vol" ] && [ -r "$vol" ]; then
	objects=$(find "$vol/streamline/cluster" -type f 2>/dev/null | wc -l)
	[ "$objects" -gt 0 ] || fail "no objects under bucket streamline/cluster in $vol after the diskless writes"
	log "diskless topic $dtopic: 500 records written and read back; $objects object(s) in the bucket"
else
	log "diskless topic $dtopic: 500 records written and read back (bucket volume not readable here: objects not counted)"
fi

# Jaeger's query API: the produces above must show up as gateway traces
# (spans are exported in batches every few seconds).
traces=
for _ in $(seq 1 60); do
	traces=$(curl -fsS --max-time 10 "http://127.0.0.1:$JAEGER_PORT/api/traces?service=streamline-gateway&limit=20" || true)
	if grep -q '"traceID"' <<<"$traces"; then
		break
	fi
	sleep 1
done
grep -q '"traceID"' <<<"$traces" ||
	fail "no streamline-gateway trace in Jaeger (127.0.0.1:$JAEGER_PORT/api/traces) within 60s: ${traces:0:300}"
# The diskless produce crossed gateway -> logsvc -> uploader: each
# service reports its spans of those traces.
services=
for _ in $(seq 1 60); do
	services=$(curl -fsS --max-time 10 "http://127.0.0.1:$JAEGER_PORT/api/services" || true)
	if grep -q streamline-logsvc <<<"$services" && grep -q streamline-uploader <<<"$services"; then
		break
	fi
	sleep 1
done
grep -q streamline-logsvc <<<"$services" && grep -q streamline-uploader <<<"$services" ||
	fail "Jaeger lists no logsvc or uploader spans within 60s: $services"
log "Jaeger has streamline-gateway traces; services: $services"

trap - EXIT
log "compose down -v"
down
echo "compose test PASSED in $((SECONDS - start))s"
