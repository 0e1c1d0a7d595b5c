# Shared by the bench scripts: source it, then call start_redis DIR.
#
# start_redis DIR starts a throwaway redis-server (no persistence) on a free loopback port with its
# files in DIR (pinned to the CPUs in $REDIS_CPUS when set, e.g. REDIS_CPUS=1), waits until it answers, and sets REDIS_PORT, REDIS_PID and REDIS_URL. stop_redis
# stops it; call it from the script's EXIT trap. free_port prints a free loopback TCP port.
#
# start_cluster DIR MASTERS starts a Redis Cluster of MASTERS masters without replicas with
# scripts/cluster.sh (its nodes' files under DIR) on free consecutive ports, and sets
# CLUSTER_ADDRS (comma-separated) and CLUSTER_PORTS; stop_cluster stops it (bench_cleanup does).
#
# bench_workdir makes the scratch directory $work and the list pids (add the PID of every
# background process the script starts), and sets traps that on exit stop those processes and
# Redis (or the cluster) and remove $work (an interrupt exits with 130, which runs the same cleanup).

free_port() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

start_redis() {
	local dir=$1
	command -v redis-server >/dev/null || { echo "redis-server is not installed (scripts/test.sh installs it)" >&2; return 1; }
	REDIS_PORT=$(free_port)
	local pin=()
	[[ -n "${REDIS_CPUS:-}" ]] && pin=(taskset -c "$REDIS_CPUS") # REDIS_CPUS: the CPUs it may run on
	"${pin[@]}" redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --dir "$dir" --save "" --appendonly no \
		--daemonize no --loglevel warning --logfile "$dir/redis.log" &
	REDIS_PID=$!
	for _ in $(seq 100); do redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 && break; sleep 0.05; done
	redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 || { echo "redis-server did not answer on port $REDIS_PORT" >&2; return 1; }
	REDIS_URL="redis://127.0.0.1:$REDIS_PORT/0"
}

# start_replica DIR starts a replica of the Redis start_redis started (files in DIR/replica) and
# waits until it is in sync; sets REPLICA_PID. stop_redis stops it too.
start_replica() {
	local dir=$1/replica port
	mkdir -p "$dir"
	port=$(free_port)
	redis-cli -p "$REDIS_PORT" config set repl-diskless-sync-delay 0 >/dev/null
	redis-server --bind 127.0.0.1 --port "$port" --dir "$dir" --save "" --appendonly no \
		--daemonize no --loglevel warning --logfile "$dir/redis.log" --replicaof 127.0.0.1 "$REDIS_PORT" &
	REPLICA_PID=$!
	for _ in $(seq 200); do
		redis-cli -p "$port" info replication 2>/dev/null | grep -q 'master_link_status:up' && return 0
		sleep 0.05
	done
	echo "the replica on port $port did not sync" >&2
	return 1
}

stop_redis() {
	local pid
	for pid in "${REPLICA_PID:-}" "${REDIS_PID:-}"; do
		[[ -n "$pid" ]] || continue
		kill "$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
	done
	REDIS_PID= REPLICA_PID=
}

start_cluster() {
	local dir=$1 masters=$2 base out try
	CLUSTER_TMP=$dir
	# Ports and bus ports (+10000) below the usual ephemeral range (32768-), so an outgoing
	# connection cannot hold one; cluster.sh refuses ports in use, and a start that fails (a port
	# taken) is retried on others.
	for try in 1 2 3; do
		base=$((10000 + RANDOM % 12000))
		if out=$(TMPDIR="$dir" "$(dirname "${BASH_SOURCE[0]}")/cluster.sh" start "$masters" 0 "$base"); then
			CLUSTER_ADDRS=$(tail -1 <<<"$out")
			CLUSTER_PORTS="$base-$((base + masters - 1))"
			return 0
		fi
		echo "(try $try of 3 to start the cluster failed)" >&2
	done
	return 1
}

stop_cluster() {
	if [[ -n "${CLUSTER_TMP:-}" ]]; then
		TMPDIR="$CLUSTER_TMP" "$(dirname "${BASH_SOURCE[0]}")/cluster.sh" stop >/dev/null || true
		CLUSTER_TMP=
	fi
}

bench_workdir() {
	work="$(mktemp -d)"
	pids=()
	trap bench_cleanup EXIT
	trap 'exit 130' INT TERM
}

bench_cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
	stop_redis
	stop_cluster
	rm -rf "$work"
}
