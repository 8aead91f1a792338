#!/usr/bin/env bash
# bench-compare: on this machine, in one run, start
#   - redis-server with appendonly yes + appendfsync always   (label redis-always)
#   - redis-server with no persistence at all                  (label redis-none)
#   - the no-op fasthttp server (octostore loadtest noop-server) (label noop)
#   - octostore serve on a temporary database                  (label octostore)
# on random loopback ports, run the same scenarios against each with
# `octostore loadtest`, then (when wrk is installed) the lock cycle, rate-limit
# checks and flag evaluations with wrk and the Lua scripts in loadtest/wrk/,
# and the same lock cycle against Redis with redis-benchmark, and write the
# reports plus markdown tables with the ratios to OUT_DIR (default
# ./bench-out) and to stdout. Every figure comes with the CPU the server spent
# per request (/proc/PID/stat) and the load average around its run.
#
# Usage: loadtest/bench-compare.sh [OUT_DIR]
# Environment: DURATION (5s), WARMUP (1s), CONCURRENCY (64), ROUNDS (3: runs of
# each scenario and target, rotating over the targets; the best counts), SCENARIOS (a
# space-separated subset), REDIS_SERVER (redis-server), DRIVER (raw or client;
# default raw: it costs the load generator the least CPU, which matters when
# it shares 2 cores with the server; the ratios compare like with like),
# OCTOSTORE_BIN (use this binary instead of building ./cmd/octostore),
# P99_CONCURRENCY (32: workers of the extra lock-cycle run the p99 goal is
# judged on; empty: skip it), WRK_SCENARIOS (lock-cycle ratelimit-check
# flag-eval; empty: no wrk runs), WRK_THREADS (2), RB_REQUESTS (100000:
# requests of each redis-benchmark phase), SERVE_ARGS (more `octostore serve`
# flags, e.g. "--memory-limit 0").
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-$root/bench-out}
duration=${DURATION:-5s}
warmup=${WARMUP:-1s}
concurrency=${CONCURRENCY:-64}
rounds=${ROUNDS:-3}
driver=${DRIVER:-raw}
scenarios=${SCENARIOS:-"lock-cycle lock-contended lock-status ratelimit-check flag-eval config-read config-write"}
redis_server=${REDIS_SERVER:-redis-server}
p99_concurrency=${P99_CONCURRENCY-32}
wrk_scenarios=${WRK_SCENARIOS-"lock-cycle ratelimit-check flag-eval"}
wrk_threads=${WRK_THREADS:-2}
rb_requests=${RB_REQUESTS:-100000}
token=tok-bench

command -v "$redis_server" >/dev/null || { echo "bench-compare: $redis_server not found (apt-get install -y redis-server)" >&2; exit 1; }
if [ -n "$wrk_scenarios" ] && ! command -v wrk >/dev/null; then
	echo "bench-compare: wrk not found (apt-get install -y wrk): skipping the wrk runs" >&2
	wrk_scenarios=
fi
if [ -n "$wrk_scenarios" ] && ! command -v redis-benchmark >/dev/null; then
	echo "bench-compare: redis-benchmark not found (it comes with redis-server)" >&2
	exit 1
fi
mkdir -p "$out"
rm -f "$out"/*.json "$out"/*.txt "$out"/wrk.tsv
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
# shellcheck disable=SC2086 # SERVE_ARGS is a list of flags
start_http octostore "$bin" serve --addr 127.0.0.1:0 --db "$work/octostore.db" \
	--static-tokens "bench:$token" --log-level warn ${SERVE_ARGS:-}
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

# The p99 goal is judged at P99_CONCURRENCY workers (the throughput figures
# above at CONCURRENCY), labelled octostore-cN.
if [ -n "$p99_concurrency" ]; then
	for round in $(seq "$rounds"); do
		label=octostore-c$p99_concurrency
		echo "bench-compare: lock-cycle against $label (round $round/$rounds)" >&2
		rc=0
		name=lock-cycle-$label.r$round
		"$bin" loadtest lock-cycle --target "$octo" --server-pid "$octo_pid" \
			--token "$token" --driver "$driver" \
			-c "$p99_concurrency" --duration "$duration" --warmup "$warmup" \
			--label "$label" --out "$out/$name.json" >"$out/$name.txt" 2>&1 || rc=$?
		if [ "$rc" -ne 0 ]; then
			echo "bench-compare: lock-cycle against $label exited $rc (see $out/$name.txt)" >&2
			status=1
		fi
	done
fi

# --- from outside: wrk (octostore, noop) and redis-benchmark (Redis) ---

clk_tck=$(getconf CLK_TCK)
# cpu_ticks PID: user + system CPU of PID so far, in clock ticks.
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
loadavg() { cut -d' ' -f1 /proc/loadavg; }
# field FILE KEY: the number after "KEY " on the line of a run's output.
field() { awk -v k="$2" '($1 == "lockcycle" || $1 == "resource") && $2 == k {print $3}' "$1"; }
# record SCENARIO LABEL CLIENT ROUND OPS P50_MS P99_MS CPU_US ERRORS LOAD NOTE
record() { printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$@" >>"$out/wrk.tsv"; }

# run_wrk SCENARIO LABEL ROUND: one wrk run (after a WARMUP run whose
# figures are dropped) of the scenario's Lua script against the label.
run_wrk() {
	local sc=$1 label=$2 round=$3 script args kind
	local url pid; url=$(url_of "$label"); pid=$(pid_of "$label")
	local prefix=wrk$round
	case $sc in
	lock-cycle) script=lock-cycle.lua kind=lockcycle args=("$prefix-cycle" 4096 30) ;;
	ratelimit-check) script=resource.lua kind=resource args=(ratelimit-check "$prefix-rl" 1000) ;;
	flag-eval) script=resource.lua kind=resource args=(flag-eval wrk-flag 100) ;;
	esac
	local f="$out/wrk-$sc-$label.r$round.txt"
	# the warmup on names of its own: the leases it leaves held would
	# otherwise be found still held by the measured run
	local wargs=("${args[@]}")
	[ "$sc" = lock-cycle ] && wargs[0]=$prefix-warm
	OCTOSTORE_TOKEN=$token wrk -t"$wrk_threads" -c"$concurrency" -d"$warmup" \
		-s "$root/loadtest/wrk/$script" "$url" -- "${wargs[@]}" >/dev/null 2>&1 || true
	local l0 t0 t1; l0=$(loadavg); t0=$(cpu_ticks "$pid")
	if ! OCTOSTORE_TOKEN=$token wrk -t"$wrk_threads" -c"$concurrency" -d"$duration" --latency \
		-s "$root/loadtest/wrk/$script" "$url" -- "${args[@]}" >"$f" 2>&1; then
		echo "bench-compare: wrk $sc against $label failed (see $f)" >&2
		status=1
		return
	fi
	t1=$(cpu_ticks "$pid")
	local req dur p50 p99 errs note=
	req=$(field "$f" requests) dur=$(field "$f" duration_us)
	p50=$(field "$f" p50_us) p99=$(field "$f" p99_us)
	if [ "$kind" = lockcycle ]; then
		errs=$(($(field "$f" refused) + $(field "$f" held)))
		note="acquired $(field "$f" acquired), released $(field "$f" released)"
	else
		errs=$(field "$f" refused)
	fi
	record "$sc" "$label" wrk "$round" \
		"$(awk -v r="$req" -v d="$dur" 'BEGIN{printf "%.0f", r / (d / 1e6)}')" \
		"$(awk -v v="$p50" 'BEGIN{printf "%.3f", v / 1000}')" "$(awk -v v="$p99" 'BEGIN{printf "%.3f", v / 1000}')" \
		"$(awk -v t="$((t1 - t0))" -v h="$clk_tck" -v r="$req" 'BEGIN{printf "%.1f", t * 1e6 / h / r}')" \
		"$errs" "$l0-$(loadavg)" "$note"
}

# csv_field FILE COLUMN: a column of redis-benchmark's CSV answer line.
csv_field() { awk -F'","' -v c="$2" 'NR == 2 {gsub(/^"|"$/, ""); print $c}' "$1"; }

# run_redis_cycle LABEL ROUND: the lock cycle against Redis with
# redis-benchmark (docs/benchmarks.md, "From outside"). Phase 1 acquires:
# SET NX PX on keys nobody holds (every request a grant: a write). Phase 2
# releases: the compare-and-delete script on keys held with the lease value
# (prefilled, 20x as many as requests, so about 97% of the requests find
# their key and delete it; the count is measured). The cycle's rate is that of
# one request of each phase: 2 / (1/acquire + 1/release).
run_redis_cycle() {
	local label=$1 round=$2
	local url pid port; url=$(url_of "$label"); pid=$(pid_of "$label"); port=${url##*:}
	local cli=(redis-cli -h 127.0.0.1 -p "$port")
	local lease=0b4c3a8e-6a57-4c7f-9d1e-3f2a1b0c9d8e keys=$((rb_requests * 20))
	local fsync; fsync=$("${cli[@]}" config get appendfsync | tail -1)
	"${cli[@]}" flushall >/dev/null
	"${cli[@]}" config set appendfsync no >/dev/null
	awk -v n="$keys" -v v="$lease" 'BEGIN { for (i = 0; i < n; i++) { k = sprintf("lt:rb:%012d", i)
		printf "*5\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n$2\r\nPX\r\n$7\r\n3600000\r\n", length(k), k, length(v), v } }' |
		"${cli[@]}" --pipe >/dev/null
	"${cli[@]}" config set appendfsync "$fsync" >/dev/null
	# a rewrite of the append-only file the prefill set off must not run during the measurement
	for _ in $(seq 600); do
		"${cli[@]}" info persistence | grep -q '^aof_rewrite_in_progress:1\|^aof_rewrite_scheduled:1' || break
		sleep 0.1
	done
	local rb=(redis-benchmark -h 127.0.0.1 -p "$port" -c "$concurrency" -n "$rb_requests" --threads "$wrk_threads" --csv)
	local fa="$out/rb-lock-cycle-$label.r$round.acquire.csv" fr="$out/rb-lock-cycle-$label.r$round.release.csv"
	local l0 t0 t1 before after; l0=$(loadavg); t0=$(cpu_ticks "$pid")
	"${rb[@]}" -r 1000000000 SET 'lt:rb:a__rand_int__' "$lease" NX PX 30000 >"$fa" 2>&1
	before=$("${cli[@]}" dbsize)
	"${rb[@]}" -r "$keys" EVAL "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end" \
		1 'lt:rb:__rand_int__' "$lease" >"$fr" 2>&1
	after=$("${cli[@]}" dbsize)
	t1=$(cpu_ticks "$pid")
	local ra rr; ra=$(csv_field "$fa" 2) rr=$(csv_field "$fr" 2)
	if [ -z "$ra" ] || [ -z "$rr" ]; then
		echo "bench-compare: redis-benchmark against $label failed (see $fa, $fr)" >&2
		status=1
		return
	fi
	record lock-cycle "$label" redis-benchmark "$round" \
		"$(awk -v a="$ra" -v r="$rr" 'BEGIN{printf "%.0f", 2 / (1 / a + 1 / r)}')" \
		"$(csv_field "$fa" 5)/$(csv_field "$fr" 5)" "$(csv_field "$fa" 7)/$(csv_field "$fr" 7)" \
		"$(awk -v t="$((t1 - t0))" -v h="$clk_tck" -v r="$((2 * rb_requests))" 'BEGIN{printf "%.1f", t * 1e6 / h / r}')" \
		0 "$l0-$(loadavg)" "acquire $ra/s, release $rr/s ($((before - after)) of $rb_requests deleted)"
	"${cli[@]}" flushall >/dev/null
}

if [ -n "$wrk_scenarios" ]; then
	# the flags flag-eval reads (quota: 1,000 flags per user)
	for i in $(seq 0 99); do
		curl -fsS -o /dev/null -X PUT -H "Authorization: Bearer $token" -H 'Content-Type: application/json' \
			-d '{"enabled":true,"percentage":50}' "$octo/flags/wrk-flag-$i" || { echo "bench-compare: flag set-up failed" >&2; exit 1; }
	done
	for round in $(seq "$rounds"); do
		for sc in $wrk_scenarios; do
			for label in octostore noop; do
				echo "bench-compare: wrk $sc against $label (round $round/$rounds)" >&2
				run_wrk "$sc" "$label" "$round"
			done
			if [ "$sc" = lock-cycle ]; then
				for label in redis-always redis-none; do
					echo "bench-compare: redis-benchmark lock-cycle against $label (round $round/$rounds)" >&2
					run_redis_cycle "$label" "$round"
				done
			fi
		done
	done
fi

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
	if [ -s "$out/wrk.tsv" ]; then
		echo
		echo "## From outside: wrk against octostore and the no-op server, redis-benchmark against Redis"
		echo
		echo "Best of $rounds round(s) by ops/s; $concurrency connections, $wrk_threads client threads; wrk ${duration} after ${warmup} warmup,"
		echo "redis-benchmark $rb_requests requests per phase. p50/p99 of Redis: acquire/release phase."
		echo
		echo "| scenario | target | client | ops/s | p50 ms | p99 ms | server cpu µs/op | errors | load (1 min, before-after) | octostore ÷ this | note |"
		echo "|---|---|---|---:|---:|---:|---:|---:|---|---:|---|"
		sort -t$'\t' -k1,1 -k2,2 -k5,5nr "$out/wrk.tsv" | awk -F'\t' '
			!seen[$1 FS $2]++ { row[++n] = $0; if ($2 == "octostore") best[$1] = $5 }
			END {
				for (i = 1; i <= n; i++) {
					split(row[i], f, "\t")
					ratio = "-"
					if (f[2] != "octostore" && best[f[1]] > 0 && f[5] > 0) ratio = sprintf("%.2fx", best[f[1]] / f[5])
					printf "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", f[1], f[2], f[3], f[5], f[6], f[7], f[8], f[9], f[10], ratio, f[11]
				}
			}'
	fi
} | tee "$out/bench.md"
exit $status
