# octostore recipes. `just` lists them. The justfile is a convenience: every
# recipe is a plain command you can copy (CI runs .ci/run, not just).

default:
    @just --list

# build the binary into ./octostore
build:
    go build -o octostore ./cmd/octostore

# run the server on embedded defaults (127.0.0.1:3000, ./octostore.db)
run *ARGS:
    go run ./cmd/octostore serve {{ARGS}}

# the README's test command
test:
    go test -race ./...

# vet + gofmt check (fails on a diff)
lint:
    go vet ./...
    @test -z "$(gofmt -l $(git ls-files '*.go'))" || (gofmt -l $(git ls-files '*.go'); exit 1)

# rewrite files with gofmt
fmt:
    gofmt -w $(git ls-files '*.go')

# go mod tidy, failing if it changes go.mod/go.sum
tidy:
    go mod tidy
    git diff --exit-code go.mod go.sum

# Go benchmarks of the runtime, writer, and HTTP hot paths
bench:
    go test -run '^$' -bench . -benchmem ./actors ./persistence ./httpd

# load test a running server, e.g. just loadtest lock-cycle --duration 10s
loadtest SCENARIO *ARGS:
    go run ./cmd/octostore loadtest {{SCENARIO}} {{ARGS}}

# octostore vs redis (appendfsync always / no persistence) vs a no-op fasthttp server, one machine, one run
bench-compare:
    loadtest/bench-compare.sh bench-out

# memory of held locks and start-up time, measured from outside a real serve process (wrk)
mem-report-rss SCALES="200000 1000000":
    SCALES="{{SCALES}}" loadtest/mem-report.sh mem-out

# cluster mode: lock-cycle through a leader and a follower vs single node vs etcd's mutex recipe; failover times
bench-cluster:
    loadtest/bench-cluster.sh bench-cluster

# the live terminal view against a running server
tui *ARGS:
    go run ./cmd/octostore tui {{ARGS}}

# kill -9 / restart crash loop under load, then full verification and porcupine checks
crash-test CYCLES="50":
    go test ./tools/crashtest -run CrashLoop -count=1 -timeout 60m -crash.cycles={{CYCLES}} -v

# run every fuzz target for DURATION each
fuzz DURATION="30s":
    tools/fuzz.sh {{DURATION}}

# what CI runs
ci:
    bash .ci/run

# memory and recovery-time reports at scale (one process per test keeps RSS baselines clean)
mem-report SCALE="1000000":
    go test ./httpd -run '^TestRecoveryTime$' -count=1 -v -timeout 60m -reliability.scale={{SCALE}}
    go test ./httpd -run '^TestMemoryHeldLocks$' -count=1 -v -timeout 60m -reliability.scale={{SCALE}}
    go test ./httpd -run '^TestMemoryIdleNames$' -count=1 -v -timeout 60m -reliability.scale={{SCALE}}
