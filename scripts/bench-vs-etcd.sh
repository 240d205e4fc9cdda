#!/usr/bin/env bash
# Measures a 3-member KubeRaft cluster and a 3-member etcd cluster on this machine with
# the same raft-bench workloads and prints them side by side with the ratio.
#
# Installs nothing. Needs: etcd (Debian: etcd-server), protoc (Debian: protobuf-compiler,
# for raft-bench's etcd driver), curl, awk, cargo. Everything listens on 127.0.0.1 only
# and is stopped on exit (trap), whatever happens.
#
# Environment (all optional):
#   DURATION=10s       length of each measured run
#   BASE_PORT=23000    first of the ports used (base .. base+32)
#   CLIENTS_MANY=64    the "many clients" level
#   BENCH_THREADS=     raft-bench's threads, the same for both systems (empty: one per CPU)
#   KEEP=1             keep the work directory (logs, data) for a look afterwards
set -euo pipefail

DURATION=${DURATION:-10s}
BASE_PORT=${BASE_PORT:-23000}
CLIENTS_MANY=${CLIENTS_MANY:-64}
BENCH_THREADS=${BENCH_THREADS:-}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
BIN=$TARGET_DIR/release

NAME=bench-vs-etcd
# shellcheck source=scripts/lib.sh
. "$ROOT/scripts/lib.sh"

for tool in etcd protoc curl awk cargo; do
    command -v "$tool" >/dev/null || die "$tool not found (etcd: apt-get install etcd-server; protoc: apt-get install protobuf-compiler)"
done

WORK=$(mktemp -d /tmp/bench-vs-etcd.XXXXXX)
PIDS=() ETCD_PIDS=() RAFT_PIDS=()
cleanup() {
    local pid
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do
        # raft-node hands leadership over on SIGTERM; give every process 10 s, then -9.
        for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$pid" 2>/dev/null || true
    done
    if [ "${KEEP:-0}" = 1 ]; then echo "work directory kept: $WORK" >&2; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

require_free_ports "$BASE_PORT" 33

echo "== building release binaries (raft-node, raftctl, raft-bench with the etcd driver)"
(cd "$ROOT" && cargo build --release -q -p kuberaft-node --features etcd \
    --bin raft-node --bin raftctl --bin raft-bench)

echo "== starting etcd: 3 members on 127.0.0.1, fsync on"
ETCD_CLUSTER=""
for i in 1 2 3; do
    ETCD_CLUSTER+="${ETCD_CLUSTER:+,}e$i=http://127.0.0.1:$((BASE_PORT + i * 2 - 1))"
done
ETCD_ENDPOINTS=""
for i in 1 2 3; do
    client=$((BASE_PORT + i * 2)) peer=$((BASE_PORT + i * 2 - 1))
    ETCD_ENDPOINTS+="${ETCD_ENDPOINTS:+,}127.0.0.1:$client"
    etcd --name "e$i" --data-dir "$WORK/etcd-$i" \
        --listen-client-urls "http://127.0.0.1:$client" --advertise-client-urls "http://127.0.0.1:$client" \
        --listen-peer-urls "http://127.0.0.1:$peer" --initial-advertise-peer-urls "http://127.0.0.1:$peer" \
        --initial-cluster "$ETCD_CLUSTER" --initial-cluster-state new --initial-cluster-token bench \
        >"$WORK/etcd-$i.log" 2>&1 &
    PIDS+=($!)
    ETCD_PIDS+=($!)
done
for i in 1 2 3; do
    wait_for "etcd member e$i" 60 \
        sh -c "curl -fsS http://127.0.0.1:$((BASE_PORT + i * 2))/health | grep -q '\"health\":\"true\"'"
done

echo "== starting raft-node: 3 members on 127.0.0.1 (n1 bootstraps, raftctl adds n2 and n3)"
RAFT_ENDPOINTS=""
for i in 1 2 3; do
    base=$((BASE_PORT + 10 + i * 3))
    RAFT_ENDPOINTS+="${RAFT_ENDPOINTS:+,}127.0.0.1:$((base + 1))"
    extra=()
    [ "$i" = 1 ] && extra=(--bootstrap)
    "$BIN/raft-node" --name "n$i" --data-dir "$WORK/raft-$i" \
        --peer-listen "127.0.0.1:$base" --client-listen "127.0.0.1:$((base + 1))" \
        --http-listen "127.0.0.1:$((base + 2))" "${extra[@]}" >"$WORK/raft-$i.log" 2>&1 &
    PIDS+=($!)
    RAFT_PIDS+=($!)
    wait_for "raft-node n$i" 30 test -s "$WORK/raft-$i/addresses.json"
done
N1=127.0.0.1:$((BASE_PORT + 14))
for i in 2 3; do
    "$BIN/raftctl" --endpoints "$N1" --timeout 30s member add "127.0.0.1:$((BASE_PORT + 11 + i * 3))"
done
"$BIN/raftctl" --endpoints "$RAFT_ENDPOINTS" status

# field NAME JSON: a number from raft-bench's one-line JSON report.
field() { sed -E "s/.*\"$1\":([0-9.eE+-]+).*/\1/" <<<"$2"; }
ms() { awk -v us="$1" 'BEGIN { printf "%.2f", us / 1000 }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2fx", a / b; else print "-" }'; }

bench() { # TARGET ENDPOINTS ARGS...
    local target=$1 endpoints=$2; shift 2
    "$BIN/raft-bench" --target "$target" --endpoints "$endpoints" --duration "$DURATION" --json \
        ${BENCH_THREADS:+--threads "$BENCH_THREADS"} "$@"
}

# CPU time (clock ticks, user + system) the given processes have used so far.
cpu_ticks() { # PID...
    local pid
    for pid in "$@"; do cat "/proc/$pid/stat"; done \
        | awk '{ sub(/^.*\) /, ""); t += $12 + $13 } END { print t + 0 }'
}
TICKS_PER_S=$(getconf CLK_TCK)

# bench, plus "cpu_us_per_op": the CPU time its three members used per operation.
bench_cpu() { # TARGET ENDPOINTS PIDS_NAME ARGS...
    local target=$1 endpoints=$2; local -n pids=$3; shift 3
    local before after report ops
    before=$(cpu_ticks "${pids[@]}")
    report=$(bench "$target" "$endpoints" "$@")
    after=$(cpu_ticks "${pids[@]}")
    ops=$(field ops "$report")
    REPORT=$report awk -v t=$((after - before)) -v hz="$TICKS_PER_S" -v ops="$ops" 'BEGIN {
        r = ENVIRON["REPORT"]
        printf "%s,\"cpu_us_per_op\":%.1f}\n", substr(r, 1, length(r) - 1), (ops > 0 ? t / hz * 1e6 / ops : 0)
    }'
}

ROWS=()
run_workload() { # LABEL ARGS...
    local label=$1; shift
    echo "== $label: raft"
    local raft etcd
    raft=$(bench_cpu raft "$RAFT_ENDPOINTS" RAFT_PIDS "$@")
    echo "$raft"
    echo "== $label: etcd"
    etcd=$(bench_cpu etcd "$ETCD_ENDPOINTS" ETCD_PIDS "$@")
    echo "$etcd"
    local rt et rp ep r9 e9 rc ec
    rt=$(field throughput "$raft") et=$(field throughput "$etcd")
    rp=$(field p50_us "$raft") ep=$(field p50_us "$etcd")
    r9=$(field p99_us "$raft") e9=$(field p99_us "$etcd")
    rc=$(field cpu_us_per_op "$raft") ec=$(field cpu_us_per_op "$etcd")
    ROWS+=("$(printf '%-28s %10.0f %10.0f %8s   %8s %8s %8s   %8s %8s   %8.0f %8.0f' \
        "$label" "$rt" "$et" "$(ratio "$rt" "$et")" "$(ms "$rp")" "$(ms "$ep")" "$(ratio "$ep" "$rp")" \
        "$(ms "$r9")" "$(ms "$e9")" "$rc" "$ec")")
}

# Peak resident memory of each member so far, in MiB (VmHWM).
peak_rss() { # PID...
    local pid out=""
    for pid in "$@"; do
        out+="${out:+ / }$(awk '/^VmHWM:/ { printf "%.0f", $2 / 1024 }' "/proc/$pid/status")"
    done
    echo "$out"
}

run_workload "writes, 1 client" --clients 1
run_workload "writes, $CLIENTS_MANY clients" --clients "$CLIENTS_MANY"
run_workload "linearizable reads, $CLIENTS_MANY cl" --clients "$CLIENTS_MANY" --write-ratio 0 --consistency linearizable

# The floor of one write: one fsync plus two loopback gRPC round trips (client→leader,
# leader→follower). fsync: 4 KiB O_DSYNC overwrites of a preallocated file (like a WAL
# segment) in the work directory; round trip: p50 of a stale read served by one member.
dd if=/dev/zero of="$WORK/fsync-probe" bs=4k count=200 status=none && sync
FSYNC_S=$( { dd if=/dev/zero of="$WORK/fsync-probe" bs=4k count=200 conv=notrunc oflag=dsync 2>&1 >/dev/null || true; } \
    | awk '/copied/ { for (i = 1; i <= NF; i++) if ($i == "s,") print $(i - 1) }')
FSYNC_US=$(awk -v s="${FSYNC_S:-0}" 'BEGIN { printf "%.0f", s * 1e6 / 200 }')
RTT=$("$BIN/raft-bench" --endpoints "$N1" --write-ratio 0 --consistency stale --duration 2s --json)
RTT_US=$(field p50_us "$RTT")

echo
echo "== KubeRaft vs etcd, 3 members each, 127.0.0.1, fsync on, 256 B values, 8 B keys, $DURATION per run"
printf '%-28s %10s %10s %8s   %8s %8s %8s   %8s %8s   %8s %8s\n' \
    workload "raft op/s" "etcd op/s" ratio "raft p50" "etcd p50" "p50 gain" "raft p99" "etcd p99" \
    "raft cpu" "etcd cpu"
printf '%s\n' "${ROWS[@]}"
echo "(latencies in ms; ratio = raft/etcd throughput; p50 gain = etcd p50 / raft p50;"
echo " cpu = CPU time of the three members per operation, in microseconds)"
echo "peak RSS per member (MiB): raft $(peak_rss "${RAFT_PIDS[@]}"), etcd $(peak_rss "${ETCD_PIDS[@]}")"
echo "write floor: fsync $(ms "$FSYNC_US") ms + 2 x gRPC round trip $(ms "$RTT_US") ms = $(ms $((FSYNC_US + 2 * ${RTT_US%.*}))) ms"
