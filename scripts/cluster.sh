#!/usr/bin/env bash
# A local Redis Cluster for benchmarks and trials by hand (tests use redistest.StartClusterWith).
#
#   scripts/cluster.sh start [masters] [replicas-per-master] [base-port]   (defaults 3, 0, 7000)
#       starts masters*(1+replicas) redis-server processes (no persistence, 127.0.0.1 only) on
#       consecutive ports from base-port (their cluster bus ports are those plus 10000), forms
#       the cluster with redis-cli --cluster create, waits until every node reports
#       cluster_state:ok and every replica is in sync, and prints the addresses comma-separated
#       on its last line, ready for herald serve --redis-addrs. redis-cli picks which replica
#       follows which master; start lists them.
#   scripts/cluster.sh addrs   prints the addresses of the running cluster.
#   scripts/cluster.sh stop    shuts every node down and removes the cluster's directory.
#
# Nodes keep their files in ${TMPDIR:-/tmp}/herald-cluster/<port>. They run with a 2-second
# --cluster-node-timeout (HERALD_CLUSTER_NODE_TIMEOUT, in ms), so a replica takes over a few
# seconds after its master is killed (kill -9 $(cat .../<port>/redis.pid)). Set REDIS_CPUS to pin
# them, as scripts/lib.sh does, e.g. REDIS_CPUS=1.
set -euo pipefail

dir="${TMPDIR:-/tmp}/herald-cluster"

die() { echo "cluster.sh: $*" >&2; exit 1; }

# in_use PORT: whether something listens on 127.0.0.1:PORT.
in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# gone PID: whether process PID has exited.
gone() { ! kill -0 "$1" 2>/dev/null; }

# until_ok SECONDS WHAT COMMAND...: runs COMMAND every 0.1 s until it succeeds, or fails after SECONDS.
until_ok() {
	local seconds=$1 what=$2; shift 2
	local deadline=$((SECONDS + seconds))
	until "$@"; do
		((SECONDS < deadline)) || { echo "cluster.sh: timed out after ${seconds}s waiting for $what" >&2; return 1; }
		sleep 0.1
	done
}

# node_ready PORT: whether the node reports cluster_state:ok with every slot served and, if it is
# a replica, is in sync with its master.
node_ready() {
	local info
	info=$(redis-cli -p "$1" cluster info 2>/dev/null) || return 1
	grep -q '^cluster_state:ok' <<<"$info" && grep -q '^cluster_slots_ok:16384' <<<"$info" || return 1
	info=$(redis-cli -p "$1" info replication 2>/dev/null) || return 1
	grep -q '^role:master' <<<"$info" || grep -q '^master_link_status:up' <<<"$info"
}

cmd_start() {
	local masters=${1:-3} replicas=${2:-0} base=${3:-7000}
	[[ "$masters" =~ ^[0-9]+$ && "$replicas" =~ ^[0-9]+$ && "$base" =~ ^[0-9]+$ ]] \
		|| die "usage: cluster.sh start [masters] [replicas-per-master] [base-port]"
	((masters >= 3)) || die "redis-cli --cluster create needs at least 3 masters"
	local n=$((masters * (1 + replicas)))
	((base >= 1024 && base + n - 1 + 10000 <= 65535)) || die "ports $base..$((base + n - 1)) and their bus ports (+10000) must lie in 1024..65535"
	command -v redis-server >/dev/null && command -v redis-cli >/dev/null \
		|| die "redis-server and redis-cli are needed (scripts/test.sh installs them)"
	[[ ! -e "$dir" ]] || die "$dir exists: a cluster is running (scripts/cluster.sh stop removes it)"
	local ports=() p
	for ((p = base; p < base + n; p++)); do
		! in_use "$p" && ! in_use $((p + 10000)) || die "port $p or its bus port $((p + 10000)) is in use"
		ports+=("$p")
	done

	# From here on, a failure or an interrupt stops what was started.
	starting=1
	trap '[[ -z "${starting:-}" ]] || { echo "cluster.sh: start failed; stopping the nodes" >&2; cmd_stop >/dev/null; }' EXIT
	trap 'exit 130' INT TERM
	local pin=()
	[[ -n "${REDIS_CPUS:-}" ]] && pin=(taskset -c "$REDIS_CPUS")
	for p in "${ports[@]}"; do
		mkdir -p "$dir/$p"
		"${pin[@]}" redis-server --bind 127.0.0.1 --port "$p" --dir "$dir/$p" \
			--cluster-enabled yes --cluster-config-file nodes.conf \
			--cluster-node-timeout "${HERALD_CLUSTER_NODE_TIMEOUT:-2000}" \
			--cluster-replica-validity-factor 0 --repl-diskless-sync-delay 0 \
			--save "" --appendonly no --daemonize yes --pidfile "$dir/$p/redis.pid" \
			--loglevel warning --logfile "$dir/$p/redis.log"
	done
	for p in "${ports[@]}"; do
		until_ok 10 "redis-server on port $p" redis-cli -p "$p" ping >/dev/null
	done
	local addrs=("${ports[@]/#/127.0.0.1:}")
	if ! redis-cli --cluster create "${addrs[@]}" --cluster-replicas "$replicas" --cluster-yes >"$dir/create.log" 2>&1; then
		cat "$dir/create.log" >&2
		exit 1
	fi
	for p in "${ports[@]}"; do
		until_ok 30 "node $p to report cluster_state:ok and be in sync" node_ready "$p"
	done
	starting=
	(IFS=,; echo "${addrs[*]}") >"$dir/addrs"
	echo "Redis Cluster of $masters masters with $replicas replicas each in $dir"
	# One line a node: its address, and its slots or the master it replicates.
	redis-cli -p "$base" cluster nodes | sort -k2 | awk '
		{ sub(/@.*/, "", $2); addr[$1] = $2; line[NR] = $0 }
		END {
			for (i = 1; i <= NR; i++) {
				n = split(line[i], f, " ")
				if (f[4] == "-") print "  " f[2], "master", f[9] (n > 9 ? " ..." : "")
				else print "  " f[2], "replica of", addr[f[4]]
			}
		}'
	cat "$dir/addrs"
}

cmd_stop() {
	[[ -d "$dir" ]] || { echo "no cluster in $dir"; return 0; }
	local d p pid pids=()
	for d in "$dir"/*/; do
		p=$(basename "$d")
		pid=$(cat "$d/redis.pid" 2>/dev/null) || continue
		# Only the redis-server of that port: the pid file may be stale and the pid reused.
		[[ "$(ps -p "$pid" -o command= 2>/dev/null)" == *redis-server*":$p"* ]] || continue
		kill "$pid" && pids+=("$pid")
	done
	for pid in "${pids[@]}"; do
		until_ok 10 "redis-server $pid to exit" gone "$pid"
	done
	rm -rf "$dir"
	echo "stopped ${#pids[@]} nodes; removed $dir"
}

cmd_addrs() {
	[[ -f "$dir/addrs" ]] || die "no cluster in $dir (scripts/cluster.sh start starts one)"
	cat "$dir/addrs"
}

case "${1:-}" in
start) shift; cmd_start "$@" ;;
stop) cmd_stop ;;
addrs) cmd_addrs ;;
*) die "usage: cluster.sh start [masters] [replicas-per-master] [base-port] | stop | addrs" ;;
esac
