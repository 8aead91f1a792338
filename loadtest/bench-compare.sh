#!/usr/bin/env bash
# bench-compare: on this machine, in one run, start
#   - redis-server with appendonly yes + appendfsync always   (label redis-always)
#   - redis-server with no persistence at all                  (label redis-none)
#   - the no-op fasthttp server (octostore loadtest noop-server) (label noop)
#   - octostore serve on a temporary database                  (label octostore)
# on random loopback ports, run the same scenarios against each with
# `octostore loadtest`, and write the reports plus a markdown table with the
# ratios to OUT_DIR (default ./bench-out) and to stdout.
#
# Usage: loadtest/bench-compare.sh [OUT_DIR]
# Environment: DURATION (5s), WARMUP (1s), CONCURRENCY (64), ROUNDS (1: runs of
# each scenario and target, rotating over the targets; the best counts), SCENARIOS (a
# space-separated subset), REDIS_SERVER (redis-server), DRIVER (raw or client;
# default raw: it costs the load generator the least CPU, which matters when
# it shares 2 cores with the server; the ratios compare like with like),
# OCTOSTORE_BIN (use this binary instead of building ./cmd/octostore).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-$root/bench-out}
duration=${DURATION:-5s}
warmup=${WARMUP:-1s}
concurrency=${CONCURRENCY:-64}
rounds=${ROUNDS:-1}
driver=${DRIVER:-raw}
scenarios=${SCENARIOS:-"lock-cycle lock-contended lock-status ratelimit-check flag-eval config-read config-write"}
redis_server=${REDIS_SERVER:-redis-server}
token=tok-bench

command -v "$redis_server" >/dev/null || { echo "bench-compare: $redis_server not found (apt-get install -y redis-server)" >&2; exit 1; }
mkdir -p "$out"
rm -f "$out"/*.json "$out"/*.txt
work=$(mktemp -d)
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
	rm -rf "$work"
}
trap cleanup EXIT

if [ -n "${OCTOSTORE_BIN:-}" ]; then
	bin=$OCTOSTORE_BIN
else
	echo "bench-compare: building octostore" >&2
	(cd "$root" && go build -o "$work/octostore" ./cmd/octostore)
	bin=$work/octostore
fi

# wait_for FILE PATTERN: wait (at most 30s) until FILE has a line matching PATTERN.
wait_for() {
	for _ in $(seq 300); do
		if grep -q "$2" "$1" 2>/dev/null; then return 0; fi
		sleep 0.1
	done
	echo "bench-compare: timed out waiting for '$2' in $1:" >&2
	cat "$1" >&2 || true
	return 1
}

# free_port: a random loopback port nobody listens on.
free_port() {
	for _ in $(seq 100); do
		local p=$((20000 + RANDOM % 40000))
		if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then echo "$p"; return 0; fi
	done
	return 1
}

# The start_* functions run in this shell (not in $(...)), so that pids
# collects every server for cleanup; they leave the address in last_url and
# the process id in last_pid.
last_url=
last_pid=

# start_redis NAME ARGS...
start_redis() {
	local name=$1; shift
	mkdir -p "$work/$name"
	for _ in 1 2 3; do
		local port; port=$(free_port)
		"$redis_server" --port "$port" --bind 127.0.0.1 --dir "$work/$name" --save '' \
			--daemonize no --logfile "$work/$name.log" "$@" >/dev/null 2>&1 &
		last_pid=$!
		pids+=("$last_pid")
		if wait_for "$work/$name.log" "Ready to accept connections" 2>/dev/null; then
			last_url="redis://127.0.0.1:$port"
			return 0
		fi
		kill "$last_pid" 2>/dev/null || true
	done
	echo "bench-compare: could not start $name" >&2
	return 1
}

# start_http NAME CMD...: runs CMD, takes the URL from its "listening on" line.
start_http() {
	local name=$1; shift
	"$@" >"$work/$name.out" 2>&1 &
	last_pid=$!
	pids+=("$last_pid")
	wait_for "$work/$name.out" "listening on http://" || return 1
	last_url=$(sed -n 's/.*listening on \(http:[^ ]*\).*/\1/p' "$work/$name.out" | head -1)
}

start_redis redis-always --appendonly yes --appendfsync always
redis_always=$last_url redis_always_pid=$last_pid
start_redis redis-none --appendonly no
redis_none=$last_url redis_none_pid=$last_pid
start_http noop "$bin" loadtest noop-server --addr 127.0.0.1:0
noop=$last_url noop_pid=$last_pid
start_http octostore "$bin" serve --addr 127.0.0.1:0 --db "$work/octostore.db" \
	--static-tokens "bench:$token" --log-level warn
octo=$last_url octo_pid=$last_pid
echo "bench-compare: redis-always $redis_always, redis-none $redis_none, noop $noop, octostore $octo" >&2

# targets SCENARIO: the labels to run it against.
targets() {
	case $1 in
	lock-cycle | lock-status | ratelimit-check) echo "octostore redis-always redis-none noop" ;;
	lock-contended) echo "octostore redis-always redis-none" ;; # the no-op server is no lock service
	*) echo "octostore noop" ;;
	esac
}
url_of() {
	case $1 in
	octostore) echo "$octo" ;;
	redis-always) echo "$redis_always" ;;
	redis-none) echo "$redis_none" ;;
	noop) echo "$noop" ;;
	esac
}
pid_of() {
	case $1 in
	octostore) echo "$octo_pid" ;;
	redis-always) echo "$redis_always_pid" ;;
	redis-none) echo "$redis_none_pid" ;;
	noop) echo "$noop_pid" ;;
	esac
}

load0=$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo unknown)
status=0
for sc in $scenarios; do
	for round in $(seq "$rounds"); do
		for label in $(targets "$sc"); do
			echo "bench-compare: $sc against $label (round $round/$rounds)" >&2
			rc=0
			name=$sc-$label.r$round
			"$bin" loadtest "$sc" --target "$(url_of "$label")" --server-pid "$(pid_of "$label")" \
				--token "$token" --driver "$driver" \
				-c "$concurrency" --duration "$duration" --warmup "$warmup" \
				--label "$label" --out "$out/$name.json" >"$out/$name.txt" 2>&1 || rc=$?
			if [ "$rc" -ne 0 ]; then
				echo "bench-compare: $sc against $label exited $rc (see $out/$name.txt)" >&2
				status=1
			fi
		done
	done
done

{
	echo "# bench-compare $(date -u +%Y-%m-%dT%H:%MZ)"
	echo
	echo "- machine: $(nproc) CPUs, $(lscpu 2>/dev/null | sed -n 's/^Model name: *//p' | head -1)"
	echo "- $(go version)"
	echo "- $("$redis_server" --version | cut -d' ' -f1-3)"
	rev=$(cd "$root" && git rev-parse --short HEAD 2>/dev/null || echo unknown)
	if [ -z "${OCTOSTORE_BIN:-}" ] && ! (cd "$root" && git diff --quiet HEAD -- . 2>/dev/null); then rev="$rev + uncommitted changes"; fi
	echo "- $("$bin" version 2>/dev/null | head -1), tree $rev"
	echo "- loadtest: driver $driver, $concurrency workers, $duration measured after $warmup warmup, best of $rounds round(s)"
	echo "- load average (1/5/15 min) before: $load0, after: $(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo unknown)"
	echo "- temp dir file system: $(df -T "$work" 2>/dev/null | awk 'NR==2 {print $2}')"
	echo
	shopt -s nullglob
	reports=("$out"/*.json)
	if [ ${#reports[@]} -gt 0 ]; then
		"$bin" loadtest bench-table "${reports[@]}"
	else
		echo "no reports"
	fi
} | tee "$out/bench.md"
exit $status
