#!/usr/bin/env bash
# compose-test.sh: build the images, start docker-compose.yml, use it from
# the host as a user would (Kafka clients, the admin API through grpcurl and
# streamline-cli), and tear it down.
#
#   deployments/compose-test.sh
#
# Compose: `docker compose` (the v2+ CLI plugin) where it works, else
# docker-compose 1.x; it says which. deployments/install-compose-plugin.sh
# installs the plugin where it is missing (.ci/run calls it).
#
# Steps: deployments/images/build.sh; `compose up -d` (with --wait where the
# compose version has it) and wait until every container is healthy; then
#   Kafka: kcat produces keyed records through gateway 1's published port and
#     consumes them through gateway 2's; a diskless topic (storage.mode=
#     diskless, created by streamline-bench) is written and read back through
#     the gateways and its objects are looked for in versitygw's volume; a
#     hybrid topic (replication factor 3, 16 KiB segments) is written by
#     kcat, an uploader writes its rolled segments to the bucket, and kcat
#     reads every record back from offset 0; kcat produces 50 records in one
#     transaction and a read_committed kcat reads them through the other
#     gateway;
#   admin API (both gateways' published admin ports): grpcurl `list` and the
#     health service; CreateTopic (diskless, 3 partitions); kcat produces
#     10/20/30 records to partitions 0/1/2; DescribeTopic shows those high
#     watermarks; a kcat -G consumer group reads and commits all 60; 5 more
#     records go to partition 0; DescribeGroup shows the committed offsets
#     and a lag of 5; ListGroups lists the group; DescribeCluster;
#   streamline-cli (built from ./services/cmd/streamline-cli) with
#     --admin-addr: `topics create` (diskless), `topics describe` (the local
#     topic kcat auto-created has 3 replicas, all in sync), `groups
#     describe`, `groups list`, `cluster`;
#   Jaeger's query API shows streamline-gateway traces;
# then `compose down -v`. Every step prints the command it runs; a failed
# step prints the command, its exit status and output. Kafka steps stop the
# test at once; admin-API steps are all run and counted ("N passed, N
# failed"), and any failure fails the test. On failure `compose ps` and the
# services' logs are printed before the stack is torn down (always, by a
# trap).
#
# Without a docker engine (`docker info` fails) it prints
# "compose test SKIPPED: no docker engine" and exits 0. It runs as compose
# project $COMPOSE_TEST_PROJECT (default streamline-compose-test) on free
# 127.0.0.1 ports, so a stack started with plain `docker compose up` is not
# disturbed. Needs Go, kcat, curl, jq, python3 (free ports) and grpcurl
# (`make tools` puts it in $(go env GOPATH)/bin).
#
# Environment: COMPOSE_TEST_TIMEOUT (seconds for the stack to become healthy,
# default 180), COMPOSE_TEST_BUILD_TIMEOUT (seconds for build.sh, default
# 1800: a first run builds versitygw and Jaeger), COMPOSE_TEST_KEEP=1 (leave
# the stack running after a failure, for a look), GO, DOCKER, GRPCURL.
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$SCRIPT_DIR/.." && pwd)
GO=${GO:-go}
DOCKER=${DOCKER:-docker}
PROJECT=${COMPOSE_TEST_PROJECT:-streamline-compose-test}
UP_TIMEOUT=${COMPOSE_TEST_TIMEOUT:-180}
BUILD_TIMEOUT=${COMPOSE_TEST_BUILD_TIMEOUT:-1800}
STEP_TIMEOUT=60
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
# Compose v2+ (the CLI plugin) first; docker-compose 1.x only without it.
if compose_version=$(timeout 30 "$DOCKER" compose version 2>/dev/null); then
	COMPOSE=("$DOCKER" compose)
	log "using \`$DOCKER compose\` (CLI plugin): $compose_version"
elif command -v docker-compose >/dev/null 2>&1 && compose_version=$(timeout 30 docker-compose version --short 2>/dev/null); then
	COMPOSE=(docker-compose)
	log "using docker-compose $compose_version (v1: \`$DOCKER compose\` does not work here; deployments/install-compose-plugin.sh installs the plugin)"
else
	echo "compose test SKIPPED: no docker compose (neither \`$DOCKER compose\` nor docker-compose works; deployments/install-compose-plugin.sh installs the plugin)"
	exit 0
fi
GRPCURL=${GRPCURL:-$(command -v grpcurl || echo "$("$GO" env GOPATH | cut -d: -f1)/bin/grpcurl")}
[ -x "$GRPCURL" ] || fail "grpcurl is needed (make tools installs it into \$(go env GOPATH)/bin; or set GRPCURL)"
for tool in kcat curl jq python3 "$GO"; do
	command -v "$tool" >/dev/null || fail "$tool is needed"
done
COMPOSE+=(-f "$REPO/docker-compose.yml" -p "$PROJECT")

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
	rm -rf "$TMP"
	exit "$rc"
}
TMP=$(mktemp -d "${TMPDIR:-/tmp}/compose-test.XXXXXX")
trap 'rm -rf "$TMP"' EXIT

# ---- Steps. run [--stdin FILE] CMD...: prints the command, runs it with a
# timeout; its stdout is in $out, its stderr in $err, its status in $rc.
# expect DESC [JQ]: the last command succeeded and (with JQ) its stdout
# satisfies `jq -e JQ`; expect_text DESC REGEX: its stdout matches the
# (extended) regex. Both count the step as passed or failed (printing the
# command and its output) and set $last_ok; they return 0 either way.
passed=0
failed=()
out='' err='' rc=0 last_cmd='' last_ok=1 last_desc=''
run() {
	local stdin=/dev/null
	if [ "$1" = --stdin ]; then
		stdin=$2
		shift 2
	fi
	last_cmd=$(printf '%q ' "$@")
	last_cmd=${last_cmd% }
	if [ "$stdin" != /dev/null ]; then
		last_cmd+=" < $(basename "$stdin") ($(wc -l <"$stdin") lines)"
	fi
	log "\$ $last_cmd"
	rc=0
	out=$(timeout "$STEP_TIMEOUT" "$@" <"$stdin" 2>"$TMP/stderr") || rc=$?
	err=$(cat "$TMP/stderr")
}
step_result() { # DESC WHY ("" = passed)
	last_desc=$1
	if [ -z "$2" ]; then
		last_ok=1
		passed=$((passed + 1))
		log "ok: $1"
		return
	fi
	last_ok=0
	failed+=("$1")
	{
		echo "compose-test: FAILED: $1: $2"
		echo "    command: $last_cmd"
		echo "    exit status: $rc"
		echo "    stdout: $(head -c 3000 <<<"$out")"
		echo "    stderr: $(head -c 3000 <<<"$err")"
	} >&2
}
expect() {
	local why=
	if [ "$rc" -ne 0 ]; then
		why="exit status $rc"
	elif [ -n "${2:-}" ] && ! jq -e "$2" >/dev/null 2>&1 <<<"$out"; then
		why="output does not satisfy jq -e '$2'"
	fi
	step_result "$1" "$why"
}
expect_text() {
	local why=
	if [ "$rc" -ne 0 ]; then
		why="exit status $rc"
	elif ! grep -qE -- "$2" <<<"$out"; then
		why="output does not match /$2/"
	fi
	step_result "$1" "$why"
}
# lines TEXT: its number of non-empty lines.
lines() { grep -c . <<<"$1" || true; }
# need: the last step passed, else the test stops (later steps depend on it).
need() {
	[ "$last_ok" = 1 ] || fail "$last_desc (see above)"
}

log "building images (deployments/images/build.sh)"
build_start=$SECONDS
timeout "$BUILD_TIMEOUT" "$SCRIPT_DIR/images/build.sh" || fail "build.sh failed or took over ${BUILD_TIMEOUT}s"
build_secs=$((SECONDS - build_start))
# The clients, built before the stack starts: streamline-bench (diskless
# check) and streamline-cli (admin API).
BIN="${STREAMLINE_IMAGES_CACHE:-$REPO/.cache/images}/bin"
BENCH=$BIN/streamline-bench
CLI=$BIN/streamline-cli
log "\$ go build -o $BIN/ ./services/cmd/streamline-bench ./services/cmd/streamline-cli"
(cd "$REPO" && CGO_ENABLED=0 timeout 600 "$GO" build -o "$BIN/" ./services/cmd/streamline-bench ./services/cmd/streamline-cli) ||
	fail "go build of streamline-bench and streamline-cli failed"

# Free host ports for the published ones (the compose file reads these).
read -r GW1_PORT GW2_PORT GW1_ADMIN_PORT GW2_ADMIN_PORT JAEGER_PORT OTLP_PORT <<<"$(python3 -c '
import socket
socks = []
for _ in range(6):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    socks.append(s)
print(" ".join(str(s.getsockname()[1]) for s in socks))
')"
export STREAMLINE_GATEWAY_1_PORT=$GW1_PORT STREAMLINE_GATEWAY_2_PORT=$GW2_PORT
export STREAMLINE_GATEWAY_1_ADMIN_PORT=$GW1_ADMIN_PORT STREAMLINE_GATEWAY_2_ADMIN_PORT=$GW2_ADMIN_PORT
export STREAMLINE_JAEGER_PORT=$JAEGER_PORT STREAMLINE_OTLP_PORT=$OTLP_PORT
# The uploaders merge diskless ranges older than 5 s here (default 5 min),
# so the test sees a merge happen.
export STREAMLINE_MERGE_MIN_AGE=5s STREAMLINE_MERGE_INTERVAL=2s
GW1=127.0.0.1:$GW1_PORT
GW2=127.0.0.1:$GW2_PORT
ADMIN1=127.0.0.1:$GW1_ADMIN_PORT
ADMIN2=127.0.0.1:$GW2_ADMIN_PORT

# A stack left over by an interrupted run would hold the volumes' old data.
down
trap on_exit EXIT
trap 'exit 130' INT TERM

log "compose up (Kafka on $GW1 and $GW2, admin API on $ADMIN1 and $ADMIN2, Jaeger on 127.0.0.1:$JAEGER_PORT)"
up_start=$SECONDS
up=(up -d)
if "${COMPOSE[@]}" up --help 2>/dev/null | grep -q -- '--wait'; then
	up+=(--wait)
fi
log "\$ ${COMPOSE[*]} ${up[*]}"
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
log "all ${#ids[@]} containers healthy $((SECONDS - up_start))s after compose up; $((SECONDS - build_start))s after build.sh started (build.sh took ${build_secs}s)"

# ---- Kafka from the host. These stop the test on failure: the rest
# depends on them.

# Metadata: both gateways, with the advertised (published) addresses.
run kcat -b "$GW1" -L -m 20
expect_text "kcat -L lists a broker at $GW1" "broker [0-9]+ at $GW1( |\$)"
need
expect_text "kcat -L lists a broker at $GW2" "broker [0-9]+ at $GW2( |\$)"
need

# Local topic: produce through gateway 1, consume through gateway 2.
topic=compose-test-$$-$RANDOM
n=100
for i in $(seq 1 "$n"); do echo "k$i:value-$i"; done >"$TMP/records"
run --stdin "$TMP/records" kcat -b "$GW1" -t "$topic" -P -K: -m 30 -X message.timeout.ms=30000
expect "kcat produces $n keyed records to $topic through $GW1"
need
run kcat -b "$GW2" -t "$topic" -C -e -q -m 30 -f '%k:%s\n'
why=
if [ "$rc" -eq 0 ] && [ "$(sort -V <<<"$out")" != "$(cat "$TMP/records")" ]; then
	why="the consumed records differ from the produced ones: got $(lines "$out") lines, first: $(head -n 3 <<<"$out" | tr '\n' ' ')"
fi
[ "$rc" -eq 0 ] || why="exit status $rc"
step_result "kcat reads the $n records of $topic back, identical, through $GW2" "$why"
need

# uploader_with_metric METRIC prints the first uploader whose counter
# METRIC is at least 1 (read with the image's probe, from inside the
# container: the uploaders' metrics port is not published), polling for
# 60 s; it prints nothing if none gets there.
uploader_with_metric() {
	log "\$ ${COMPOSE[*]} exec -T uploader-N probe metric http://127.0.0.1:9097/metrics $1 1 (either uploader, 60s at most)" >&2
	for _ in $(seq 60); do
		for u in uploader-1 uploader-2; do
			if timeout 20 "${COMPOSE[@]}" exec -T "$u" /usr/local/bin/probe metric http://127.0.0.1:9097/metrics "$1" 1 >/dev/null 2>&1; then
				echo "$u"
				return
			fi
		done
		sleep 1
	done
}

# Diskless topic: streamline-bench creates it with storage.mode=diskless,
# produces and consumes; kcat reads it again through the other gateway.
dtopic=compose-diskless-$$-$RANDOM
STEP_TIMEOUT=120 run "$BENCH" --brokers "$GW1,$GW2" --storage-mode diskless --records 500 --record-bytes 100 \
	--partitions 3 --topic "$dtopic"
expect "streamline-bench writes and reads 500 records of diskless topic $dtopic"
need
run kcat -b "$GW2" -t "$dtopic" -C -e -q -m 30 -f '%o\n'
why=
[ "$rc" -ne 0 ] || [ "$(lines "$out")" -eq 500 ] || why="read $(lines "$out") records back, want 500"
[ "$rc" -eq 0 ] || why="exit status $rc"
step_result "kcat reads the 500 records of $dtopic back through $GW2" "$why"
need
# Its objects are in versitygw's volume (checked where the volume is
# readable from here: the docker host, as root).
vol=$("$DOCKER" volume inspect -f '{{.Mountpoint}}' "${PROJECT}_s3-data" 2>/dev/null || true)
if [ -n "$vol" ] && [ -r "$vol" ]; then
	objects=$(find "$vol/streamline/cluster" -type f 2>/dev/null | wc -l)
	[ "$objects" -gt 0 ] || fail "no objects under bucket streamline/cluster in $vol after the diskless writes"
	log "ok: diskless topic $dtopic has $objects object(s) in the bucket"
else
	log "diskless topic $dtopic: bucket volume not readable here: objects not counted"
fi
# The elected uploader merges the topic's ranges into segment objects: its
# streamline_merge_segments_total moves.
merged=$(uploader_with_metric streamline_merge_segments_total)
last_cmd="${COMPOSE[*]} exec -T uploader-N /usr/local/bin/probe metric ..."
step_result "an uploader merged diskless ranges into segment objects (streamline_merge_segments_total >= 1 on ${merged:-none})" \
	"$([ -n "$merged" ] || echo "no uploader merged within 60s")"

# Hybrid topic: replicated on the three log-service nodes, 16 KiB segments
# and 16 KiB kept locally; kcat writes 600 uncompressed records in small
# batches (segments roll), an uploader writes the rolled segments to the
# bucket (streamline_uploader_segments_total), and kcat reads every record
# back from the start through the other gateway.
htopic=compose-hybrid-$$-$RANDOM
run "$CLI" --admin-addr "$ADMIN1" --timeout 30s topics create "$htopic" --partitions 1 --replication-factor 3 --storage-mode hybrid \
	--config segment.bytes=16384 --config local.retention.bytes=16384
expect_text "streamline-cli topics create $htopic --storage-mode hybrid" "^Created topic \"$htopic\": 1 partitions?, replication factor 3, storage mode Hybrid\.\$"
for i in $(seq 1 600); do printf 'hybrid-%04d-%0200d\n' "$i" 0; done >"$TMP/hybrid-records"
run --stdin "$TMP/hybrid-records" kcat -b "$GW1" -t "$htopic" -P -z none -X batch.num.messages=10 -X message.timeout.ms=30000
expect "kcat produces 600 records to hybrid topic $htopic through $GW1"
tiered=$(uploader_with_metric streamline_uploader_segments_total)
last_cmd="${COMPOSE[*]} exec -T uploader-N /usr/local/bin/probe metric ..."
step_result "an uploader wrote rolled segments of $htopic to the bucket (streamline_uploader_segments_total >= 1 on ${tiered:-none})" \
	"$([ -n "$tiered" ] || echo "no segment uploaded within 60s")"
run kcat -b "$GW2" -t "$htopic" -C -o beginning -e -q -f '%s\n'
why=
if [ "$rc" -eq 0 ] && [ "$out" != "$(cat "$TMP/hybrid-records")" ]; then
	why="the records read back differ: got $(lines "$out") lines, want 600"
fi
[ "$rc" -eq 0 ] || why="exit status $rc"
step_result "kcat reads the 600 records of hybrid topic $htopic back from offset 0 through $GW2" "$why"

# Transactions: kcat sends 50 records in one transaction through gateway 1
# (its coordinator may be either gateway: the transactional id's shard
# decides), and a read_committed kcat reads all 50 through gateway 2.
ttopic=compose-txn-$$-$RANDOM
for i in $(seq 1 50); do printf 'txn-%03d\n' "$i"; done >"$TMP/txn-records"
run --stdin "$TMP/txn-records" kcat -b "$GW1" -t "$ttopic" -P -X transactional.id="compose-$$" -X message.timeout.ms=30000
expect "kcat produces 50 records to $ttopic in one transaction through $GW1"
run kcat -b "$GW2" -t "$ttopic" -C -o beginning -e -q -X isolation.level=read_committed -f '%s\n'
why=
if [ "$rc" -eq 0 ] && [ "$(echo "$out" | sort)" != "$(sort "$TMP/txn-records")" ]; then
	why="read_committed read $(lines "$out") records, want the 50 committed ones"
fi
[ "$rc" -eq 0 ] || why="exit status $rc"
step_result "a read_committed kcat reads the 50 committed records of $ttopic through $GW2" "$why"

# ---- The admin API from the host, as users call it: grpcurl (JSON of the
# proto's messages: lowerCamelCase names, 64-bit integers as strings,
# -emit-defaults for zeros) and streamline-cli. Every step runs; failures
# are counted and fail the test at the end.
admin_failed_before=${#failed[@]}
GRPC=("$GRPCURL" -plaintext -max-time 30 -emit-defaults)
SVC=streamline.admin.v1.AdminService

for a in "$ADMIN1" "$ADMIN2"; do
	run "${GRPC[@]}" "$a" list
	expect_text "grpcurl list on $a shows $SVC (server reflection)" "^$SVC\$"
	run "${GRPC[@]}" "$a" grpc.health.v1.Health/Check
	expect "grpcurl grpc.health.v1.Health/Check on $a is SERVING" '.status == "SERVING"'
done

# A diskless topic through the admin API; records per partition by kcat -p.
atopic=compose-admin-$$-$RANDOM
group=compose-group-$$-$RANDOM
run "${GRPC[@]}" -d "{\"name\":\"$atopic\",\"partitions\":3,\"storage_mode\":\"STORAGE_MODE_DISKLESS\"}" "$ADMIN1" "$SVC/CreateTopic"
expect "grpcurl CreateTopic $atopic (diskless, 3 partitions)" \
	".topic.name == \"$atopic\" and .topic.partitions == 3 and .topic.storageMode == \"STORAGE_MODE_DISKLESS\""
if [ "$last_ok" != 1 ]; then
	log "(CreateTopic failed: kcat's produce below auto-creates $atopic with 3 local partitions instead)"
fi
produce_to() { # PARTITION COUNT FIRST: COUNT records to PARTITION of $atopic
	for i in $(seq "$3" $(($3 + $2 - 1))); do echo "p$1-$i"; done >"$TMP/p$1"
	run --stdin "$TMP/p$1" kcat -b "$GW1" -t "$atopic" -p "$1" -P -m 30 -X message.timeout.ms=30000
	expect "kcat produces $2 records to $atopic partition $1 through $GW1"
}
produce_to 0 10 1
produce_to 1 20 1
produce_to 2 30 1

# Offsets, from the other gateway: high watermark = records produced.
run "${GRPC[@]}" -d "{\"name\":\"$atopic\"}" "$ADMIN2" "$SVC/DescribeTopic"
expect "grpcurl DescribeTopic $atopic: high watermarks 10/20/30, log start 0, no offsets error" \
	"[.partitions[] | {p: .partition, hw: (.highWatermark | tonumber), ls: (.logStartOffset | tonumber), e: .offsetsError}] | sort_by(.p) == [{p:0,hw:10,ls:0,e:\"\"},{p:1,hw:20,ls:0,e:\"\"},{p:2,hw:30,ls:0,e:\"\"}]"

# A consumer group reads all 60 records and commits (librdkafka commits the
# stored offsets on close); then 5 more records make a lag of 5.
run kcat -b "$GW2" -G "$group" "$atopic" -c 60 -q -f '%p:%o\n' -X client.id=compose-test \
	-X auto.offset.reset=earliest -X auto.commit.interval.ms=200
why=
[ "$rc" -ne 0 ] || [ "$(lines "$out")" -eq 60 ] || why="read $(lines "$out") records, want 60"
[ "$rc" -eq 0 ] || why="exit status $rc"
step_result "kcat -G $group reads the 60 records of $atopic and commits" "$why"
produce_to 0 5 11

want_offsets="[{p:0,c:10,e:15,l:5},{p:1,c:20,e:20,l:0},{p:2,c:30,e:30,l:0}]"
run "${GRPC[@]}" -d "{\"group\":\"$group\"}" "$ADMIN1" "$SVC/DescribeGroup"
expect "grpcurl DescribeGroup $group: Empty, committed 10/20/30, total lag 5" \
	".group.group == \"$group\" and .group.state == \"Empty\" and (.totalLag | tonumber) == 5 and ([.offsets[] | select(.topic == \"$atopic\") | {p: .partition, c: (.committed | tonumber), e: (.end | tonumber), l: (.lag | tonumber)}] | sort_by(.p)) == $want_offsets"
run "${GRPC[@]}" "$ADMIN2" "$SVC/ListGroups"
expect "grpcurl ListGroups lists $group" "any(.groups[]; .group == \"$group\")"
run "${GRPC[@]}" "$ADMIN2" "$SVC/DescribeCluster"
expect "grpcurl DescribeCluster: 2 gateways at $GW1/$GW2, 3 log nodes, 2 uploaders, a controller" \
	"([.gateways[] | \"\(.host):\(.port)\"] | sort) == ([\"$GW1\", \"$GW2\"] | sort) and (.logNodes | length) == 3 and (.uploaders | length) == 2 and .controller != \"\""

# streamline-cli, as documented: text output where users read it, -o json
# where the test checks numbers.
CLI1=("$CLI" --admin-addr "$ADMIN1" --timeout 30s)
CLI2=("$CLI" --admin-addr "$ADMIN2" --timeout 30s)
ctopic=compose-cli-$$-$RANDOM
run "${CLI1[@]}" topics create "$ctopic" --partitions 2 --storage-mode diskless
expect_text "streamline-cli topics create $ctopic --storage-mode diskless" "^Created topic \"$ctopic\": 2 partitions, replication factor 1, storage mode Diskless\.\$"
run "${CLI2[@]}" topics describe "$ctopic"
expect_text "streamline-cli topics describe $ctopic (text) shows storage mode Diskless" "^Storage Mode: +Diskless\$"
run "${CLI2[@]}" topics describe "$topic" -o json
expect "streamline-cli topics describe $topic -o json: kcat's auto-created local topic has 3 replicas, all in sync" \
	".topic.replication_factor == 3 and all(.partitions[]; (.replicas | length) == 3 and (.isr | length) == 3)"
run "${CLI2[@]}" topics describe "$atopic" -o json
expect "streamline-cli topics describe $atopic -o json: high watermarks 15/20/30" \
	"[.partitions[] | {p: .partition, hw: .high_watermark}] | sort_by(.p) == [{p:0,hw:15},{p:1,hw:20},{p:2,hw:30}]"
run "${CLI1[@]}" groups describe "$group"
expect_text "streamline-cli groups describe $group (text) shows total lag 5" "^Total Lag: +5\$"
run "${CLI1[@]}" groups describe "$group" -o json
expect "streamline-cli groups describe $group -o json: committed 10/20/30, lag 5/0/0" \
	".total_lag == 5 and ([.offsets[] | select(.topic == \"$atopic\") | {p: .partition, c: .committed, e: .end, l: .lag}] | sort_by(.p)) == $want_offsets"
run "${CLI2[@]}" groups list -o json
expect "streamline-cli groups list -o json lists $group" "any(.groups[]; .group == \"$group\")"
run "${CLI1[@]}" cluster
expect_text "streamline-cli cluster (text) shows 2 gateways" "^Gateways \(2\):\$"
run "${CLI1[@]}" cluster -o json
expect "streamline-cli cluster -o json: 2 gateways at $GW1/$GW2, 3 log nodes, 2 uploaders, a controller" \
	"([.gateways[] | \"\(.host):\(.port)\"] | sort) == ([\"$GW1\", \"$GW2\"] | sort) and (.log_nodes | length) == 3 and (.uploaders | length) == 2 and .controller != \"\""
admin_failed=$((${#failed[@]} - admin_failed_before))

# ---- Jaeger's query API: the produces above must show up as gateway
# traces (spans are exported in batches every few seconds).
log "\$ curl http://127.0.0.1:$JAEGER_PORT/api/traces?service=streamline-gateway&limit=20 (until it lists a trace, 60s at most)"
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
log "\$ curl http://127.0.0.1:$JAEGER_PORT/api/services (until it lists logsvc and uploader, 60s at most)"
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
log "ok: Jaeger has streamline-gateway traces; services: $services"
passed=$((passed + 1))

log "${passed} passed, ${#failed[@]} failed"
if [ "${#failed[@]}" -gt 0 ]; then
	fail "${#failed[@]} step(s) failed (${admin_failed} of the admin API):"$'\n'"$(printf '  - %s\n' "${failed[@]}")"
fi
trap - EXIT
log "compose down -v"
down
rm -rf "$TMP"
echo "compose test PASSED in $((SECONDS - start))s"
