#!/usr/bin/env bash
# bench-cluster: cluster mode (issue 14) on this machine, in one run:
#   - octostore serve on SQLite (label single)
#   - three octostore nodes with embedded etcd members (labels leader and
#     follower: the same cluster through its leader and through a follower)
#   - etcd's own lock recipe (concurrency.Mutex, label etcd-mutex) on the
#     same embedded cluster, through one member's client URL
# runs lock-cycle against each (ROUNDS rounds rotating over the targets; the
# best counts), then measures failover: TRIES kills (SIGKILL) of the leader
# and TRIES freezes (SIGSTOP past its session) of the leader, each the time
# from the signal to the first lock granted through a surviving node.
# Writes the reports, failover.txt and bench.md to OUT_DIR (./bench-cluster).
#
# Usage: loadtest/bench-cluster.sh [OUT_DIR]
# Environment: DURATION (5s), WARMUP (1s), CONCURRENCY (64), ROUNDS (1),
# TRIES (5), LEADER_TTL (5s), DRIVER (raw), OCTOSTORE_BIN, NODE_FLAGS (more
# serve flags for the three nodes, e.g. --move-raft-leader).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-$root/bench-cluster}
duration=${DURATION:-5s}
warmup=${WARMUP:-1s}
concurrency=${CONCURRENCY:-64}
rounds=${ROUNDS:-1}
tries=${TRIES:-5}
ttl=${LEADER_TTL:-5s}
driver=${DRIVER:-raw}
token=tok-bench
mkdir -p "$out"
rm -f "$out"/*.json "$out"/*.txt
work=$(mktemp -d)
declare -A pid api
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill -CONT "$p" 2>/dev/null || true; kill "$p" 2>/dev/null || true; done
	for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
	rm -rf "$work"
}
trap cleanup EXIT
if [ -n "${OCTOSTORE_BIN:-}" ]; then bin=$OCTOSTORE_BIN; else
	(cd "$root" && go build -o "$work/octostore" ./cmd/octostore)
	bin=$work/octostore
fi
taken=" "
free_port() { # sets port: a random loopback port nobody listens on, not handed out before
	for _ in $(seq 100); do
		port=$((20000 + RANDOM % 12000)) # below the ephemeral range
		case $taken in *" $port "*) continue ;; esac
		if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then taken="$taken$port "; return 0; fi
	done
	return 1
}
wait_for() { # FILE PATTERN
	for _ in $(seq 600); do grep -q "$2" "$1" 2>/dev/null && return 0; sleep 0.1; done
	echo "bench-cluster: timed out waiting for '$2' in $1" >&2; cat "$1" >&2; return 1
}

# single node
"$bin" serve --addr 127.0.0.1:0 --db "$work/single.db" --static-tokens "bench:$token" --log-level warn >"$work/single.out" 2>&1 &
single_pid=$!; pids+=("$single_pid")
wait_for "$work/single.out" "listening on"
single=$(sed -n 's/.*listening on \(http:[^ ]*\).*/\1/p' "$work/single.out" | head -1)

# three nodes
nodes="n1 n2 n3"
declare -A peer etcdc
cluster=""
for n in $nodes; do
	free_port; peer[$n]=http://127.0.0.1:$port
	free_port; etcdc[$n]=http://127.0.0.1:$port
	cluster="$cluster${cluster:+,}$n=${peer[$n]}"
done
start_node() { # NAME
	local n=$1
	"$bin" serve --addr "${api_addr[$n]:-127.0.0.1:0}" --node "$n" --cluster "$cluster" --etcd-dir "$work/$n.etcd" \
		--etcd-client-url "${etcdc[$n]}" --static-tokens "bench:$token" --admin-key adm --leader-ttl "$ttl" \
		--log-level warn ${NODE_FLAGS:-} >>"$work/$n.out" 2>&1 &
	pid[$n]=$!; pids+=("${pid[$n]}")
}
declare -A api_addr
for n in $nodes; do free_port; api_addr[$n]=127.0.0.1:$port; start_node "$n"; done
for n in $nodes; do wait_for "$work/$n.out" "listening on"; api[$n]=http://${api_addr[$n]}; done
leader_of() { # ask any live node; prints the leader's name
	for n in $nodes; do
		local l
		l=$(curl -s -m 2 -H 'X-Admin-Key: adm' "${api[$n]}/cluster" 2>/dev/null | sed -n 's/.*"leader":"\([^"]*\)".*/\1/p')
		if [ -n "$l" ]; then echo "$l"; return 0; fi
	done
	return 1
}
wait_leader() { for _ in $(seq 300); do leader_of && return 0; sleep 0.1; done; return 1; }
leader=$(wait_leader)
follower=""; for n in $nodes; do [ "$n" != "$leader" ] && follower=$n && break; done
echo "bench-cluster: single $single, leader $leader ${api[$leader]}, follower $follower ${api[$follower]}" >&2

load0=$(cut -d' ' -f1-3 /proc/loadavg)
run() { # LABEL TARGET PID ROUND
	"$bin" loadtest lock-cycle --target "$2" --server-pid "$3" --token "$token" --driver "$driver" \
		-c "$concurrency" --duration "$duration" --warmup "$warmup" --label "$1" \
		--out "$out/lock-cycle-$1.r$4.json" >"$out/lock-cycle-$1.r$4.txt" 2>&1 || echo "bench-cluster: $1 exited $?" >&2
}
for r in $(seq "$rounds"); do
	run single "$single" "$single_pid" "$r"
	run leader "${api[$leader]}" "${pid[$leader]}" "$r"
	run follower "${api[$follower]}" "${pid[$follower]}" "$r"
	run etcd-mutex "etcd://${etcdc[$leader]#http://}" "${pid[$leader]}" "$r"
done
load1=$(cut -d' ' -f1-3 /proc/loadavg)

# failover: time from the signal to the first grant through another node
now_ms() { date +%s%3N; }
grant_after() { # NODE START_MS: prints ms until a grant through NODE
	# One attempt every 50 ms, each in the background with its own timeout,
	# so that an attempt stuck at the old leader does not delay the next.
	local res=$work/grants.$RANDOM i=0 tries=()
	: >"$res"
	while [ ! -s "$res" ]; do
		i=$((i + 1))
		(code=$(curl -s -m 10 -o /dev/null -w '%{http_code}' -X POST -H "Authorization: Bearer $token" \
			-H 'Content-Type: application/json' -d '{"ttl_seconds":60}' "${api[$1]}/locks/failover-$RANDOM-$i/acquire" || true)
		[ "$code" = 200 ] && echo $(($(now_ms) - $2)) >>"$res") &
		tries+=($!)
		[ $(($(now_ms) - $2)) -gt 60000 ] && { echo timeout; return 1; }
		sleep 0.05
	done
	wait "${tries[@]}"
	sort -n "$res" | head -1
}
: >"$out/failover.txt"
for kind in kill stop; do
	for t in $(seq "$tries"); do
		leader=$(wait_leader)
		other=""; for n in $nodes; do [ "$n" != "$leader" ] && other=$n && break; done
		sleep 1
		start=$(now_ms)
		if [ "$kind" = kill ]; then kill -9 "${pid[$leader]}"; else kill -STOP "${pid[$leader]}"; fi
		ms=$(grant_after "$other" "$start")
		echo "$kind $t leader=$leader ms=$ms" | tee -a "$out/failover.txt" >&2
		if [ "$kind" = kill ]; then wait "${pid[$leader]}" 2>/dev/null || true; start_node "$leader"
		else kill -CONT "${pid[$leader]}"; fi
		for _ in $(seq 300); do curl -s -m 1 -o /dev/null -w '%{http_code}' "${api[$leader]}/health" 2>/dev/null | grep -q 200 && break; sleep 0.1; done
	done
done
stats() { sort -n | awk '{a[NR]=$1} END {if (NR) printf "min %d ms, median %d ms, max %d ms (%d tries)", a[1], a[int((NR+1)/2)], a[NR], NR}'; }
{
	echo "# bench-cluster $(date -u +%Y-%m-%dT%H:%MZ)"
	echo
	echo "- machine: $(nproc) CPUs, $(lscpu 2>/dev/null | sed -n 's/^Model name: *//p' | head -1); $(go version | cut -d' ' -f3)"
	echo "- three nodes with embedded etcd members on this machine, --leader-ttl $ttl ${NODE_FLAGS:-}; loadtest lock-cycle, driver $driver, $concurrency workers, $duration after $warmup warmup, best of $rounds round(s)"
	echo "- load average (1/5/15 min) before: $load0, after the load runs: $load1, at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
	echo
	"$bin" loadtest bench-table "$out"/*.json
	echo
	echo "- failover after kill -9 of the leader: $(grep '^kill' "$out/failover.txt" | sed 's/.*ms=//' | grep -v timeout | stats)"
	echo "- failover after SIGSTOP of the leader: $(grep '^stop' "$out/failover.txt" | sed 's/.*ms=//' | grep -v timeout | stats)"
} | tee "$out/bench.md"
