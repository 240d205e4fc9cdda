#!/usr/bin/env bash
# Measures how long writes stall when the leader of a 3-member KubeRaft cluster dies.
#
# One raft-bench client writes without pause; one second in, the leader gets kill -9.
# The longest write latency of that run is the stall: from the last write before the
# kill (at most one write earlier) to the first one acknowledged by the new leader,
# including the client finding it. The dead member is restarted on its data directory
# and the next round kills whichever member leads then. The goal (issue #4) is the
# longest election timeout (2 x election ticks x tick) plus 200 ms.
#
# Needs only cargo, curl, sed and awk; installs nothing. Everything listens on
# 127.0.0.1 only and is stopped on exit (trap), whatever happens.
#
# Environment (all optional):
#   KILLS=10            rounds
#   TICK_MILLIS=20      raft-node --tick-millis
#   ELECTION_TICKS=10   raft-node --election-ticks (the timeout is random in [n, 2n) ticks)
#   BASE_PORT=23100     first of the ports used (base .. base+9)
#   BIN_DIR=...         use raft-node, raftctl and raft-bench from here instead of
#                       building them (release) first
#   KEEP=1              keep the work directory (logs, data) for a look afterwards
set -euo pipefail

KILLS=${KILLS:-10}
TICK_MILLIS=${TICK_MILLIS:-20}
ELECTION_TICKS=${ELECTION_TICKS:-10}
BASE_PORT=${BASE_PORT:-23100}
ROOT=$(cd "$(dirname "$0")/.." && pwd)

NAME=failover
POLL=0.05
# shellcheck source=scripts/lib.sh
. "$ROOT/scripts/lib.sh"

for tool in curl sed awk; do
    command -v "$tool" >/dev/null || die "$tool not found"
done
case $KILLS in '' | *[!0-9]* | 0) die "KILLS must be a positive number, not '$KILLS'" ;; esac

if [ -n "${BIN_DIR:-}" ]; then
    BIN=$BIN_DIR
else
    echo "== building release binaries (raft-node, raftctl, raft-bench)"
    (cd "$ROOT" && cargo build --release -q -p kuberaft-node --bin raft-node --bin raftctl --bin raft-bench)
    BIN=${CARGO_TARGET_DIR:-$ROOT/target}/release
fi
for b in raft-node raftctl raft-bench; do
    [ -x "$BIN/$b" ] || die "$BIN/$b is missing"
done

WORK=$(mktemp -d /tmp/failover.XXXXXX)
declare -A PID
cleanup() {
    local pid
    for pid in "${PID[@]}"; do { kill -9 "$pid" && wait "$pid"; } 2>/dev/null || true; done
    if [ "${KEEP:-0}" = 1 ]; then echo "work directory kept: $WORK" >&2; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

require_free_ports "$BASE_PORT" 10

peer() { echo "127.0.0.1:$((BASE_PORT + $1 * 3 - 3))"; }
client() { echo "127.0.0.1:$((BASE_PORT + $1 * 3 - 2))"; }
http() { echo "127.0.0.1:$((BASE_PORT + $1 * 3 - 1))"; }
ENDPOINTS="$(client 1),$(client 2),$(client 3)"

start() { # MEMBER [EXTRA ARGS...]
    local i=$1; shift
    "$BIN/raft-node" --name "n$i" --data-dir "$WORK/n$i" \
        --peer-listen "$(peer "$i")" --client-listen "$(client "$i")" --http-listen "$(http "$i")" \
        --tick-millis "$TICK_MILLIS" --election-ticks "$ELECTION_TICKS" "$@" >>"$WORK/n$i.log" 2>&1 &
    PID[$i]=$!
}

echo "== starting raft-node: 3 members on 127.0.0.1, tick ${TICK_MILLIS} ms, election ${ELECTION_TICKS}-$((2 * ELECTION_TICKS)) ticks"
start 1 --bootstrap
wait_for "raft-node n1" 30 curl -fsS "http://$(http 1)/readyz"
for i in 2 3; do
    start "$i"
    wait_for "raft-node n$i" 30 curl -fsS "http://$(http "$i")/healthz"
    "$BIN/raftctl" --endpoints "$(client 1)" --timeout 30s member add "$(client "$i")" >/dev/null
done

leader() { # the name of the member that says it leads
    "$BIN/raftctl" --endpoints "$ENDPOINTS" --timeout 5s status -o json 2>/dev/null \
        | sed -nE 's/.*"name":"(n[0-9])","role":"leader".*/\1/p'
}
all_ready() { for i in 1 2 3; do curl -fsS "http://$(http "$i")/readyz" || return 1; done; }

GOAL_MS=$((2 * ELECTION_TICKS * TICK_MILLIS + 200))
STALLS=()
for round in $(seq "$KILLS"); do
    wait_for "every member ready" 60 all_ready
    name=$(leader)
    [ -n "$name" ] || die "round $round: no member says it leads (logs in $WORK)"
    victim=${name#n}
    "$BIN/raft-bench" --endpoints "$ENDPOINTS" --clients 1 --duration 3s --json >"$WORK/bench-$round.json" &
    bench=$!
    sleep 1
    { kill -9 "${PID[$victim]}" && wait "${PID[$victim]}"; } 2>/dev/null || true
    wait "$bench" || die "round $round: raft-bench failed: $(cat "$WORK/bench-$round.json")"
    json=$(cat "$WORK/bench-$round.json")
    errors=$(sed -E 's/.*"errors":([0-9]+).*/\1/' <<<"$json")
    [ "$errors" = 0 ] || die "round $round: $errors writes failed: $json"
    max_us=$(sed -E 's/.*"max_us":([0-9]+).*/\1/' <<<"$json")
    stall_ms=$((max_us / 1000))
    STALLS+=("$stall_ms")
    echo "round $round: killed leader $name, writes stalled ${stall_ms} ms"
    start "$victim"
done

sorted=$(printf '%s\n' "${STALLS[@]}" | sort -n)
n=${#STALLS[@]}
median=$(sed -n "$(((n + 1) / 2))p" <<<"$sorted")
max=$(tail -n 1 <<<"$sorted")
over=$(awk -v g="$GOAL_MS" '$1 > g { c++ } END { print c + 0 }' <<<"$sorted")
echo
echo "== leader kill -9 to the next acknowledged write, $n kills"
echo "stall: median ${median} ms, max ${max} ms; goal ${GOAL_MS} ms (longest election timeout + 200 ms); over the goal: $over"
