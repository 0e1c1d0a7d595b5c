# Shared by the bench scripts: source it, then call start_redis DIR.
#
# start_redis DIR starts a throwaway redis-server (no persistence) on a free loopback port with its
# files in DIR (pinned to the CPUs in $REDIS_CPUS when set, e.g. REDIS_CPUS=1), waits until it answers, and sets REDIS_PORT, REDIS_PID and REDIS_URL. stop_redis
# stops it; call it from the script's EXIT trap. free_port prints a free loopback TCP port.
#
# bench_workdir makes the scratch directory $work and the list pids (add the PID of every
# background process the script starts), and sets traps that on exit stop those processes and
# Redis and remove $work (an interrupt exits with 130, which runs the same cleanup).

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

stop_redis() {
	if [[ -n "${REDIS_PID:-}" ]]; then
		kill "$REDIS_PID" 2>/dev/null || true
		wait "$REDIS_PID" 2>/dev/null || true
		REDIS_PID=
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
	rm -rf "$work"
}
