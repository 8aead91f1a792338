#!/usr/bin/env bash
# mem-report: the memory of held locks and the start-up time, measured from
# outside a real `octostore serve` process (docs/benchmarks.md, "Memory of
# held locks").
#
# For each scale N (SCALES, default "200000 1000000"), on a fresh database:
#   1. start `octostore serve --max-locks-per-user -1` (one user) and note
#      its VmRSS once it answers;
#   2. take N locks with wrk and loadtest/wrk/hold.lua (one user, distinct
#      names, TTL 1 hour), sampling VmRSS every 0.5 s;
#   3. note VmRSS when the last lock is held ("during": the actors of the
#      new locks are all resident), then again SETTLE later (default 60 s,
#      after the idle actors were passivated: --idle-timeout 30s), and the
#      peak (VmHWM);
#   4. kill -9 the server, start it again on the same database and time it
#      until /health answers 200 (and until its "listening on" line), and
#      note VmRSS then (every lock recovered, no actor resident).
# The marginal figures are (VmRSS - VmRSS at start) / locks held, with the
# held count read from the server (octostore_resources{kind="lock"}).
#
# Usage: loadtest/mem-report.sh [OUT_DIR]
# Environment: SCALES ("200000 1000000"), SETTLE (60: seconds), CONCURRENCY
# (64), OCTOSTORE_BIN (use this binary instead of building ./cmd/octostore),
# SERVE_ARGS (more serve flags, e.g. "--memory-limit 0"), MAX_SECONDS (900:
# bound on taking the locks of one scale).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-$root/mem-out}
scales=${SCALES:-"200000 1000000"}
settle=${SETTLE:-60}
concurrency=${CONCURRENCY:-64}
max_seconds=${MAX_SECONDS:-900}
token=tok-mem-report-0123456789
admin=adm-mem-report-0123456789
command -v wrk >/dev/null || { echo "mem-report: wrk not found (apt-get install -y wrk)" >&2; exit 1; }
mkdir -p "$out"
work=$(mktemp -d)
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done
	for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
	[ -n "${KEEP_WORK:-}" ] && echo "mem-report: work dir kept: $work" >&2 || rm -rf "$work"
}
trap cleanup EXIT

if [ -n "${OCTOSTORE_BIN:-}" ]; then
	bin=$OCTOSTORE_BIN
else
	echo "mem-report: building octostore" >&2
	(cd "$root" && go build -o "$work/octostore" ./cmd/octostore)
	bin=$work/octostore
fi

# rss PID / hwm PID: VmRSS / VmHWM of PID in KiB.
rss() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }
hwm() { awk '/^VmHWM:/ {print $2}' "/proc/$1/status"; }
now_ms() { date +%s%3N; }
# metric URL NAME: a gauge of the server's /metrics (read with the admin key).
metric() {
	curl -fsS -H "X-Admin-Key: $admin" "$1/metrics" | awk -v m="$2" '$1 == m {printf "%d", $2}'
}
# held URL: locks held, from the server's own gauge.
held() { metric "$1" 'octostore_resources{kind="lock"}'; }

# start_serve DB LOG: starts serve in the background (its pid in last_pid,
# its URL in last_url), waiting at most 120 s for its "listening on" line.
start_serve() {
	local db=$1 log=$2
	# shellcheck disable=SC2086 # SERVE_ARGS is a list of flags
	"$bin" serve --addr 127.0.0.1:0 --db "$db" --static-tokens "mem:$token" --admin-key "$admin" --log-level info \
		--max-locks-per-user -1 ${SERVE_ARGS:-} >"$log" 2>&1 &
	last_pid=$!
	pids+=("$last_pid")
	for _ in $(seq 12000); do
		if grep -q "listening on http://" "$log"; then
			last_url=$(sed -n 's/.*listening on \(http:[^ ]*\).*/\1/p' "$log" | head -1)
			return 0
		fi
		kill -0 "$last_pid" 2>/dev/null || break
		sleep 0.01
	done
	echo "mem-report: serve did not start:" >&2
	cat "$log" >&2
	return 1
}

kib_per() { awk -v a="$1" -v b="$2" -v n="$3" 'BEGIN { if (n > 0) printf "%.0f", (a - b) * 1024 / n; else print "-" }'; }
mib() { awk -v k="$1" 'BEGIN { printf "%.0f", k / 1024 }'; }

rows=()
for n in $scales; do
	echo "mem-report: $n held locks" >&2
	dir=$work/s$n
	mkdir -p "$dir"
	start_serve "$dir/octostore.db" "$dir/serve.log"
	pid=$last_pid url=$last_url
	curl -fsS -o /dev/null "$url/health"
	rss0=$(rss "$pid")
	load0=$(cut -d' ' -f1 /proc/loadavg)

	# take the locks
	threads=2
	per=$(((n + threads - 1) / threads))
	t0=$(now_ms)
	OCTOSTORE_TOKEN=$token wrk -t$threads -c"$concurrency" -d"${max_seconds}s" \
		-s "$root/loadtest/wrk/hold.lua" "$url" -- "h$n" "$per" 3600 >"$dir/wrk.txt" 2>&1 &
	wrk_pid=$!
	pids+=("$wrk_pid")
	peak_seen=0 h=0
	for _ in $(seq $((max_seconds * 2))); do
		sleep 0.5
		r=$(rss "$pid")
		((r > peak_seen)) && peak_seen=$r
		h=$(held "$url")
		if [ "$h" -ge "$n" ] || ! kill -0 "$wrk_pid" 2>/dev/null; then break; fi
	done
	kill -INT "$wrk_pid" 2>/dev/null || true
	wait "$wrk_pid" 2>/dev/null || true
	t1=$(now_ms)
	sleep 0.5 # the last answers on the wire
	h=$(held "$url")
	rss_during=$(rss "$pid")
	refused=$(awk '$1 == "hold" && $2 == "refused" {print $3}' "$dir/wrk.txt")
	echo "mem-report: $h held after $(((t1 - t0) / 1000)) s ($refused refused), VmRSS $(mib "$rss_during") MiB" >&2

	# settle
	for _ in $(seq $((settle * 2))); do
		sleep 0.5
		r=$(rss "$pid")
		((r > peak_seen)) && peak_seen=$r
	done
	rss_settled=$(rss "$pid")
	peak=$(hwm "$pid")
	live=$(metric "$url" octostore_live_actors)
	h2=$(held "$url")
	load1=$(cut -d' ' -f1 /proc/loadavg)

	# kill -9 and restart on the same database
	kill -9 "$pid"
	wait "$pid" 2>/dev/null || true
	s0=$(now_ms)
	start_serve "$dir/octostore.db" "$dir/restart.log"
	pid=$last_pid url=$last_url
	s1=$(now_ms)
	for _ in $(seq 12000); do
		curl -fsS -o /dev/null "$url/health" 2>/dev/null && break
		if ! kill -0 "$pid" 2>/dev/null; then
			echo "mem-report: the restarted server exited:" >&2
			cat "$dir/restart.log" >&2
			exit 1
		fi
		sleep 0.01
	done
	s2=$(now_ms)
	rss_restart=$(rss "$pid")
	h3=$(held "$url")
	recovery=$(sed -n 's/.*msg="recovered state" kind=lock.*took=\([^ ]*\).*/\1/p' "$dir/restart.log" | head -1)
	kill -9 "$pid"
	wait "$pid" 2>/dev/null || true

	rows+=("| $n | $h | $(mib "$rss0") | $(mib "$rss_during") ($(kib_per "$rss_during" "$rss0" "$h") B) | $(mib "$rss_settled") ($(kib_per "$rss_settled" "$rss0" "$h2") B, $live actors) | $(mib "$peak") ($(kib_per "$peak" "$rss0" "$h") B) | $(((t1 - t0) / 1000)) s | $h3: $(mib "$rss_restart") ($(kib_per "$rss_restart" 0 "$h3") B all in) | $((s2 - s0)) ms ($((s1 - s0)) ms to listening; lock recovery ${recovery:-?}) | $load0 / $load1 |")
	rm -rf "$dir"
done

{
	echo "# mem-report $(date -u +%Y-%m-%dT%H:%MZ)"
	echo
	echo "- machine: $(nproc) CPUs, $(free -g | awk '/^Mem:/ {print $2}') GiB; $("$bin" version 2>/dev/null | head -1), tree $(cd "$root" && git rev-parse --short HEAD 2>/dev/null || echo unknown)"
	echo "- serve ${SERVE_ARGS:-} --max-locks-per-user -1; locks taken by wrk (hold.lua, $concurrency connections), one user, TTL 1 h; settle $settle s"
	echo "- marginal bytes per held lock = (VmRSS - VmRSS at start) / locks held; after the restart: VmRSS / locks held"
	echo
	echo "| locks asked | held | VmRSS at start MiB | while taking, at the last lock MiB (B/lock) | ${settle} s later MiB (B/lock) | peak VmHWM MiB (B/lock) | time to take | after kill -9 + restart: held, VmRSS MiB (B/lock) | start-up until /health | load (1 min) before / after |"
	echo "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"
	printf '%s\n' "${rows[@]}"
} | tee "$out/mem-report.md"
