#!/usr/bin/env bash
# cluster.sh: a local Streamline cluster of separate processes on 127.0.0.1,
# without containers: one etcd (streamline-etcd), 3 log-service nodes, 1
# uploader and 2 gateways.
#
#   cluster.sh up DIR             build into DIR/bin, start everything, write DIR/cluster.env
#   cluster.sh status DIR         which nodes run (exit 0 if all, 1 otherwise)
#   cluster.sh restart DIR NODE   restart one node (same args, ports, data) and update its PID
#   cluster.sh down DIR           stop everything (SIGTERM, SIGKILL after a grace period)
#
# DIR layout: bin/ (binaries), data/<node>/ (etcd and logsvc data), objects/ (the
# object store of diskless topics, shared by the log-service nodes and the
# uploader; STREAMLINE_OBJECT_STORE replaces it), logs/<node>.log,
# cmd/<node> (the node's command line, shell-quoted), cluster.env (shell syntax:
# BOOTSTRAP, ETCD_ENDPOINTS, OBJECT_STORE, NODES, ADDR_<NODE>, PID_<NODE>, HTTP_<NODE> (the
# node's /metrics, /healthz and /readyz; all but etcd), ...).
# `up` on a DIR that held a cluster before reuses its ports and data.
#
# Environment: CLUSTER_TIMEOUT (seconds to wait for a node to serve, default 60),
# CLUSTER_GRACE (seconds between SIGTERM and SIGKILL, default 15), GO (default go).
# STREAMLINE_* variables reach every process (flags on the command line win).
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$SCRIPT_DIR/../.." && pwd)
TIMEOUT=${CLUSTER_TIMEOUT:-60}
GRACE=${CLUSTER_GRACE:-15}
GO=${GO:-go}

# Nodes in start order; down stops them in tiers, the reverse.
NODE_LIST="etcd logsvc-1 logsvc-2 logsvc-3 uploader-1 gateway-1 gateway-2"

usage() {
	cat >&2 <<'EOF'
usage: cluster.sh up DIR
       cluster.sh status DIR
       cluster.sh restart DIR NODE    (NODE: etcd, logsvc-1..3, uploader-1, gateway-1..2)
       cluster.sh down DIR
EOF
	exit 2
}

die() {
	echo "cluster.sh: $*" >&2
	exit 1
}

# var_of NODE: the variable suffix of a node name (logsvc-1 -> LOGSVC_1).
var_of() { printf '%s' "$1" | tr 'a-z-' 'A-Z_'; }

is_node() {
	local n
	for n in $NODE_LIST; do
		[ "$n" = "$1" ] && return 0
	done
	return 1
}

# marker_of NODE: the line a node prints once it serves.
marker_of() {
	case "$1" in
	etcd) echo "etcd ready at" ;;
	logsvc-*) echo "log service started" ;;
	gateway-*) echo "gateway ready" ;;
	uploader-*) echo "uploader started" ;;
	esac
}

# alive PID: the process exists, is not a zombie, and runs one of this
# cluster's binaries (so a recycled PID is never signalled).
alive() {
	local pid=$1 args
	[ -n "$pid" ] || return 1
	kill -0 "$pid" 2>/dev/null || return 1
	args=$(ps -ww -o args= -p "$pid" 2>/dev/null) || return 1
	case "$args" in
	"$DIR/bin/"*) return 0 ;;
	*) return 1 ;;
	esac
}

# set_var NAME VALUE: set NAME=VALUE in cluster.env (added if missing).
set_var() {
	local tmp="$ENV_FILE.tmp"
	awk -v k="$1" -v v="$2" '
		index($0, k "=") == 1 { print k "=" v; found = 1; next }
		{ print }
		END { if (!found) print k "=" v }' "$ENV_FILE" >"$tmp"
	mv "$tmp" "$ENV_FILE"
}

pid_of() {
	local v
	v="PID_$(var_of "$1")"
	printf '%s' "${!v:-}"
}

# free_ports N: N distinct free 127.0.0.1 ports, held together while chosen.
free_ports() {
	python3 -c '
import socket, sys
socks = []
for _ in range(int(sys.argv[1])):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    socks.append(s)
print(" ".join(str(s.getsockname()[1]) for s in socks))
' "$1"
}

# write_cmd NODE ARGS...: store the node's command line, shell-quoted.
write_cmd() {
	local node=$1
	shift
	printf '%q ' "$@" >"$DIR/cmd/$node"
	echo >>"$DIR/cmd/$node"
}

# start_node NODE: run DIR/cmd/NODE in the background, output appended to
# DIR/logs/NODE.log, wait until it prints its readiness line, record its PID.
start_node() {
	local node=$1 log="$DIR/logs/$1.log" marker offset pid waited=0
	local -a cmd
	marker=$(marker_of "$node")
	eval "cmd=($(cat "$DIR/cmd/$node"))"
	touch "$log"
	offset=$(wc -c <"$log" | tr -d ' ')
	echo "==== $(date -u +%Y-%m-%dT%H:%M:%SZ) cluster.sh starts $node ====" >>"$log"
	nohup "${cmd[@]}" >>"$log" 2>&1 </dev/null &
	pid=$!
	set_var "PID_$(var_of "$node")" "$pid"
	# Look only at what this run printed: the log keeps earlier runs.
	until tail -c "+$((offset + 1))" "$log" | grep -qF -- "$marker"; do
		if ! kill -0 "$pid" 2>/dev/null; then
			echo "cluster.sh: $node (pid $pid) exited before it was ready; end of $log:" >&2
			tail -c "+$((offset + 1))" "$log" | tail -n 40 >&2
			return 1
		fi
		if [ "$waited" -ge "$((TIMEOUT * 10))" ]; then
			echo "cluster.sh: $node (pid $pid) not ready after ${TIMEOUT}s (no \"$marker\" in its log); end of $log:" >&2
			tail -c "+$((offset + 1))" "$log" | tail -n 40 >&2
			return 1
		fi
		sleep 0.1
		waited=$((waited + 1))
	done
	echo "started $node (pid $pid) on $(addr_of "$node")"
}

addr_of() {
	local v
	v="ADDR_$(var_of "$1")"
	printf '%s' "${!v:-}"
}

# http_of NODE: where NODE serves /metrics, /healthz and /readyz (none for etcd).
http_of() {
	local v
	v="HTTP_$(var_of "$1")"
	printf '%s' "${!v:-}"
}

# HTTP_NODES are the nodes given an --http-addr.
HTTP_NODES="logsvc-1 logsvc-2 logsvc-3 uploader-1 gateway-1 gateway-2"

admin_of() {
	local v
	v="ADMIN_$(var_of "$1")"
	printf '%s' "${!v:-}"
}

load_env() {
	[ -f "$ENV_FILE" ] || die "no cluster in $DIR ($ENV_FILE missing; run: cluster.sh up $DIR)"
	# shellcheck disable=SC1090
	. "$ENV_FILE"
}

# stop_nodes NODE...: SIGTERM the running ones together, SIGKILL whatever
# still runs after GRACE seconds; report each and clear its PID.
stop_nodes() {
	local node pid waited=0 left
	local -a running=()
	for node in "$@"; do
		pid=$(pid_of "$node")
		if alive "$pid"; then
			kill -TERM "$pid" 2>/dev/null || true
			kill -CONT "$pid" 2>/dev/null || true # a frozen node must run to exit
			running+=("$node")
		else
			if [ -n "$pid" ]; then
				echo "$node (pid $pid) was not running"
			fi
			set_var "PID_$(var_of "$node")" ""
		fi
	done
	if [ "${#running[@]}" -eq 0 ]; then
		return 0
	fi
	while [ "$waited" -lt "$((GRACE * 10))" ]; do
		left=0
		for node in "${running[@]}"; do
			if alive "$(pid_of "$node")"; then
				left=$((left + 1))
			fi
		done
		if [ "$left" -eq 0 ]; then
			break
		fi
		sleep 0.1
		waited=$((waited + 1))
	done
	for node in "${running[@]}"; do
		pid=$(pid_of "$node")
		if alive "$pid"; then
			kill -KILL "$pid" 2>/dev/null || true
			waited=0
			while alive "$pid" && [ "$waited" -lt 100 ]; do
				sleep 0.1
				waited=$((waited + 1))
			done
			if alive "$pid"; then
				echo "cluster.sh: $node (pid $pid) survived SIGKILL for 10s" >&2
				continue
			fi
			echo "killed $node (pid $pid): still running ${GRACE}s after SIGTERM"
		else
			echo "stopped $node (pid $pid)"
		fi
		set_var "PID_$(var_of "$node")" ""
	done
}

cmd_up() {
	mkdir -p "$DIR"
	DIR=$(cd "$DIR" && pwd)
	ENV_FILE="$DIR/cluster.env"
	local node n reuse=
	if [ -f "$ENV_FILE" ]; then
		# shellcheck disable=SC1090
		. "$ENV_FILE"
		reuse=yes
		for node in $NODE_LIST; do
			if alive "$(pid_of "$node")"; then
				die "$node already runs (pid $(pid_of "$node")) from $DIR; run: cluster.sh down $DIR"
			fi
			if [ -z "$(addr_of "$node")" ]; then
				reuse=
			fi
		done
		if [ -z "${ETCD_PEER_ADDR:-}" ] || [ -z "${ADMIN_GATEWAY_1:-}" ] || [ -z "${ADMIN_GATEWAY_2:-}" ]; then
			reuse=
		fi
		for node in $HTTP_NODES; do
			if [ -z "$(http_of "$node")" ]; then
				reuse=
			fi
		done
	fi
	mkdir -p "$DIR/bin" "$DIR/data" "$DIR/logs" "$DIR/cmd"

	echo "building binaries from $REPO into $DIR/bin"
	local b
	for b in streamline-etcd=./services/cmd/streamline-etcd logsvc=./logsvc/cmd/logsvc \
		gateway=./gateway/cmd/gateway uploader=./uploader/cmd/uploader; do
		(cd "$REPO" && CGO_ENABLED=0 "$GO" build -o "$DIR/bin/${b%%=*}" "${b#*=}") ||
			die "go build ${b#*=} failed"
	done

	# Ports: those of an earlier cluster in DIR, or new ones.
	local etcd_peer=${ETCD_PEER_ADDR:-}
	if [ -z "$reuse" ]; then
		local ports
		read -r -a ports <<<"$(free_ports 16)"
		[ "${#ports[@]}" -eq 16 ] || die "could not pick free ports"
		# shellcheck disable=SC2034 # the ADDR_LOGSVC_* are read through addr_of
		{
			ADDR_ETCD=127.0.0.1:${ports[0]}
			etcd_peer=127.0.0.1:${ports[1]}
			ADDR_LOGSVC_1=127.0.0.1:${ports[2]}
			ADDR_LOGSVC_2=127.0.0.1:${ports[3]}
			ADDR_LOGSVC_3=127.0.0.1:${ports[4]}
			ADDR_UPLOADER_1=127.0.0.1:${ports[5]}
			ADDR_GATEWAY_1=127.0.0.1:${ports[6]}
			ADDR_GATEWAY_2=127.0.0.1:${ports[7]}
			ADMIN_GATEWAY_1=127.0.0.1:${ports[8]}
			ADMIN_GATEWAY_2=127.0.0.1:${ports[9]}
			HTTP_LOGSVC_1=127.0.0.1:${ports[10]}
			HTTP_LOGSVC_2=127.0.0.1:${ports[11]}
			HTTP_LOGSVC_3=127.0.0.1:${ports[12]}
			HTTP_UPLOADER_1=127.0.0.1:${ports[13]}
			HTTP_GATEWAY_1=127.0.0.1:${ports[14]}
			HTTP_GATEWAY_2=127.0.0.1:${ports[15]}
		}
	fi
	local eps="http://$ADDR_ETCD"
	{
		echo "# Streamline local cluster, written by cluster.sh; source it (. $(printf '%q' "$ENV_FILE"))."
		echo "CLUSTER_DIR=$(printf '%q' "$DIR")"
		echo "BOOTSTRAP=$ADDR_GATEWAY_1,$ADDR_GATEWAY_2"
		echo "ETCD_ENDPOINTS=$eps"
		echo "ETCD_PEER_ADDR=$etcd_peer"
		echo "ADMIN_GATEWAY_1=$ADMIN_GATEWAY_1"
		echo "ADMIN_GATEWAY_2=$ADMIN_GATEWAY_2"
		for node in $HTTP_NODES; do
			echo "HTTP_$(var_of "$node")=$(http_of "$node")"
		done
		echo "NODES=\"$NODE_LIST\""
		for node in $NODE_LIST; do
			echo "ADDR_$(var_of "$node")=$(addr_of "$node")"
		done
		for node in $NODE_LIST; do
			echo "PID_$(var_of "$node")="
		done
	} >"$ENV_FILE"

	# One object store for every log-service node and the uploader, so
	# diskless topics work: a directory under DIR unless
	# STREAMLINE_OBJECT_STORE names one (an s3:// URL, say).
	local objects=${STREAMLINE_OBJECT_STORE:-file://$DIR/objects}
	set_var OBJECT_STORE "$(printf %q "$objects")"
	write_cmd etcd "$DIR/bin/streamline-etcd" --name etcd --data-dir "$DIR/data/etcd" \
		--client-addr "$ADDR_ETCD" --peer-addr "$etcd_peer"
	for n in 1 2 3; do
		write_cmd "logsvc-$n" "$DIR/bin/logsvc" --id "logsvc-$n" --etcd-endpoints "$eps" \
			--data-dir "$DIR/data/logsvc-$n" --grpc-addr "$(addr_of "logsvc-$n")" --http-addr "$(http_of "logsvc-$n")" \
			--object-store "$objects"
	done
	write_cmd uploader-1 "$DIR/bin/uploader" --id uploader-1 --etcd-endpoints "$eps" --grpc-addr "$ADDR_UPLOADER_1" \
		--http-addr "$HTTP_UPLOADER_1" --object-store "$objects"
	for n in 1 2; do
		write_cmd "gateway-$n" "$DIR/bin/gateway" --id "gateway-$n" --node-id "$n" --etcd-endpoints "$eps" \
			--kafka-addr "$(addr_of "gateway-$n")" --admin-addr "$(admin_of "gateway-$n")" --http-addr "$(http_of "gateway-$n")" \
			--auto-create-topics=true
	done

	for node in $NODE_LIST; do
		if ! start_node "$node"; then
			echo "cluster.sh: stopping what started" >&2
			load_env
			stop_nodes gateway-2 gateway-1 uploader-1 >&2
			stop_nodes logsvc-3 logsvc-2 logsvc-1 >&2
			stop_nodes etcd >&2
			exit 1
		fi
	done
	echo "cluster up: BOOTSTRAP=$ADDR_GATEWAY_1,$ADDR_GATEWAY_2 ETCD_ENDPOINTS=$eps"
	echo "settings in $ENV_FILE, logs in $DIR/logs"
}

cmd_status() {
	load_env
	local node pid state down=0
	for node in $NODE_LIST; do
		pid=$(pid_of "$node")
		if alive "$pid"; then
			case "$(ps -o stat= -p "$pid" 2>/dev/null)" in
			T*) state=" frozen (SIGSTOP; resume with kill -CONT $pid)" ;;
			*) state= ;;
			esac
			printf '%-11s running  pid %-8s %s%s\n' "$node" "$pid" "$(addr_of "$node")" "$state"
		else
			printf '%-11s stopped\n' "$node"
			down=$((down + 1))
		fi
	done
	if [ "$down" -gt 0 ]; then
		return 1
	fi
}

cmd_restart() {
	local node=$1 old
	load_env
	[ -f "$DIR/cmd/$node" ] || die "no command line for $node in $DIR/cmd"
	old=$(pid_of "$node")
	stop_nodes "$node"
	start_node "$node" || die "$node did not come back"
	load_env
	echo "restarted $node (pid ${old:-none} -> $(pid_of "$node"))"
}

cmd_down() {
	load_env
	# Clients' nodes first, etcd last: the others revoke their leases in
	# etcd as they stop.
	stop_nodes gateway-2 gateway-1 uploader-1
	stop_nodes logsvc-3 logsvc-2 logsvc-1
	stop_nodes etcd
	echo "cluster in $DIR is down (data kept in $DIR/data)"
}

# Only cluster.env may set these, never the caller's environment.
for _node in $NODE_LIST; do
	unset "ADDR_$(var_of "$_node")" "PID_$(var_of "$_node")" "HTTP_$(var_of "$_node")"
done
unset ETCD_PEER_ADDR _node

[ $# -ge 2 ] || usage
COMMAND=$1
DIR=$2
[ -n "$DIR" ] || usage
case "$COMMAND" in
up | status | down)
	[ $# -eq 2 ] || usage
	;;
restart)
	[ $# -eq 3 ] || usage
	is_node "$3" || {
		echo "cluster.sh: unknown node \"$3\"" >&2
		usage
	}
	;;
*) usage ;;
esac
if [ "$COMMAND" != up ]; then
	[ -d "$DIR" ] || die "$DIR: no such directory"
	DIR=$(cd "$DIR" && pwd)
	ENV_FILE="$DIR/cluster.env"
fi
case "$COMMAND" in
up) cmd_up ;;
status) cmd_status ;;
restart) cmd_restart "$3" ;;
down) cmd_down ;;
esac
