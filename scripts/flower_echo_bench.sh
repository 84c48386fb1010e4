#!/usr/bin/env bash
# Per-round latency of Flower (1.42) in DEPLOYMENT mode for an "echo" federation.
#
# Starts one SuperLink and N SuperNodes (insecure, 127.0.0.1 only), submits
# scripts/flower_echo_app with `flwr run --stream`, waits for the run to finish
# and prints the median (p50) round wall time measured inside the ServerApp
# (configure_fit start -> aggregate_fit end) plus every per-round value.
#
# Usage: scripts/flower_echo_bench.sh [PYTHON_VENV_DIR]     (default: .venv)
# Environment knobs (optional):
#   FLOWER_BENCH_NODES=10  FLOWER_BENCH_ROUNDS=20  FLOWER_BENCH_TIMEOUT=1800 (s, `flwr run`)
#   FLOWER_BENCH_KEEP=1    keep the temporary work dir (logs) instead of deleting it
set -euo pipefail

SCRIPT_START=$(date +%s.%N)
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VENV=${1:-.venv}
[[ $VENV = /* ]] || VENV="$PWD/$VENV"
[[ -x $VENV/bin/python ]] || VENV="$REPO/${1:-.venv}"
if [[ ! -x $VENV/bin/python || ! -x $VENV/bin/flower-superlink ]]; then
    echo "error: no Flower venv at '${1:-.venv}' (need bin/python and bin/flower-superlink)" >&2
    exit 2
fi
APP="$REPO/scripts/flower_echo_app"
NODES=${FLOWER_BENCH_NODES:-10}
ROUNDS=${FLOWER_BENCH_ROUNDS:-20}
RUN_TIMEOUT=${FLOWER_BENCH_TIMEOUT:-1800}
PY="$VENV/bin/python"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/flower_echo_bench.XXXXXX")
# SuperLink/SuperNode spawn `flower-superexec`, `flwr-serverapp`, `flwr-clientapp`
# by name, so the venv's bin must come first on PATH.
export PATH="$VENV/bin:$PATH"
export FLWR_TELEMETRY_ENABLED=0 FLWR_DISABLE_UPDATE_CHECK=1 PYTHONUNBUFFERED=1

PIDS=()
descendants() { # all live descendants of a pid (depth first)
    local c
    for c in $(ps -o pid= --ppid "$1" 2>/dev/null); do
        echo "$c"
        descendants "$c"
    done
}
is_alive() { # running and not a zombie
    [[ -r /proc/$1/status ]] && ! grep -q '^State:[[:space:]]*Z' "/proc/$1/status" 2>/dev/null
}
cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    local all=() p
    for p in "${PIDS[@]}"; do
        all+=("$p")
        # includes the SuperLink's detached (setsid) SuperExec and any ClientApps
        mapfile -t -O "${#all[@]}" all < <(descendants "$p")
    done
    if ((${#all[@]})); then
        kill -TERM "${all[@]}" 2>/dev/null || true
        for _ in $(seq 50); do
            local alive=0
            for p in "${all[@]}"; do is_alive "$p" && alive=1 && break; done
            ((alive)) || break
            sleep 0.1
        done
        local left=()
        for p in "${all[@]}"; do is_alive "$p" && left+=("$p"); done
        if ((${#left[@]})); then
            echo "note: ${#left[@]} process(es) ignored SIGTERM for 5 s; sending SIGKILL" >&2
            kill -KILL "${left[@]}" 2>/dev/null || true
        fi
        wait "${PIDS[@]}" 2>/dev/null || true # reap our direct children
        # Grandchildren (SuperExecs, ClientApps) end up as zombies re-parented to
        # PID 1; give init up to 5 s to reap them so nothing is listed afterwards.
        for _ in $(seq 50); do
            local any=0
            for p in "${all[@]}"; do [[ -e /proc/$p ]] && any=1 && break; done
            ((any)) || break
            sleep 0.1
        done
    fi
    if [[ ${FLOWER_BENCH_KEEP:-0} = 1 || $rc -ne 0 ]]; then
        echo "logs kept in $WORK" >&2
    else
        rm -rf "$WORK"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
trap 'echo "error: command failed at line $LINENO" >&2' ERR

fail() {
    echo "error: $*" >&2
    local f
    for f in "$WORK"/*.log; do
        [[ -s $f ]] || continue
        echo "---- tail $(basename "$f")" >&2
        tail -n 15 "$f" >&2
    done
    exit 1
}

# Free loopback ports: 1 for the SuperLink HTTP API (Fleet+Control+Runtime share it
# in 1.42), 1 per SuperNode for its local Runtime HTTP API.
read -r -a PORTS < <("$PY" - "$((NODES + 1))" <<'EOF'
import socket, sys
socks = []
for _ in range(int(sys.argv[1])):
    s = socket.socket(); s.bind(("127.0.0.1", 0)); socks.append(s)
print(" ".join(str(s.getsockname()[1]) for s in socks))
EOF
)
LINK_PORT=${PORTS[0]}

wait_port() { # port timeout_s pid
    "$PY" - "$1" "$2" "$3" <<'EOF'
import os, socket, sys, time
port, deadline, pid = int(sys.argv[1]), time.time() + float(sys.argv[2]), int(sys.argv[3])
while time.time() < deadline:
    try:
        os.kill(pid, 0)
    except OSError:
        sys.exit(1)
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
        sys.exit(0)
    except OSError:
        time.sleep(0.2)
sys.exit(1)
EOF
}

tree_cpu() { # CPU seconds (self + reaped children) of the given pids and all descendants
    "$PY" - "$@" <<'EOF'
import os, sys
tick = os.sysconf("SC_CLK_TCK")
stat = {}
for d in os.listdir("/proc"):
    if d.isdigit():
        try:
            with open(f"/proc/{d}/stat") as f:
                rest = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        stat[int(d)] = (int(rest[1]), sum(int(x) for x in rest[11:15]))
todo, seen, total = [int(p) for p in sys.argv[1:]], set(), 0
while todo:
    p = todo.pop()
    if p in seen or p not in stat:
        continue
    seen.add(p)
    total += stat[p][1]
    todo += [c for c, (pp, _) in stat.items() if pp == p]
print(f"{total / tick:.1f}")
EOF
}

echo "flower $("$PY" -c 'import flwr; print(flwr.__version__)') | superlink 127.0.0.1:$LINK_PORT | $NODES supernodes | $ROUNDS rounds | work dir $WORK"

# --- SuperLink (own FLWR_HOME; no `uv sync` of app dependencies at run time)
mkdir -p "$WORK/superlink"
FLWR_HOME="$WORK/superlink" flower-superlink --insecure --host 127.0.0.1 --port "$LINK_PORT" \
    --disable-runtime-dependency-installation >"$WORK/superlink.log" 2>&1 &
PIDS+=($!)
wait_port "$LINK_PORT" 60 "${PIDS[0]}" || fail "SuperLink did not open 127.0.0.1:$LINK_PORT within 60 s"

# --- SuperNodes (each with its own FLWR_HOME so concurrent FAB installs don't race)
for ((i = 0; i < NODES; i++)); do
    mkdir -p "$WORK/node$i"
    FLWR_HOME="$WORK/node$i" flower-supernode --insecure --superlink "127.0.0.1:$LINK_PORT" \
        --host 127.0.0.1 --port "${PORTS[$((i + 1))]}" \
        --max-retries 10 --max-wait-time 60 \
        --node-config "partition-id=$i num-partitions=$NODES" >"$WORK/supernode$i.log" 2>&1 &
    PIDS+=($!)
done
deadline=$((SECONDS + 120))
while :; do
    n=$( (grep -l "SuperNode ID" "$WORK"/supernode*.log 2>/dev/null || true) | wc -l)
    ((n >= NODES)) && break
    for p in "${PIDS[@]}"; do kill -0 "$p" 2>/dev/null || fail "process $p exited during startup"; done
    ((SECONDS < deadline)) || fail "only $n/$NODES SuperNodes registered within 120 s"
    sleep 0.5
done
echo "all $NODES SuperNodes registered"

# --- Flower CLI connection (private FLWR_HOME; ~/.flwr is left untouched)
mkdir -p "$WORK/cli"
cat >"$WORK/cli/config.toml" <<EOF
[superlink]
default = "bench"

[superlink.bench]
address = "127.0.0.1:$LINK_PORT"
insecure = true
EOF

OUT="$WORK/rounds.json"
CPU0=$(tree_cpu "${PIDS[@]}")
RUN_START=$(date +%s.%N)
set +e
FLWR_HOME="$WORK/cli" timeout -k 10 "$RUN_TIMEOUT" flwr run "$APP" bench --stream \
    --run-config "num-server-rounds=$ROUNDS num-clients=$NODES out-file=\"$OUT\"" \
    >"$WORK/flwr_run.log" 2>&1
RUN_RC=$?
set -e
RUN_END=$(date +%s.%N)
CPU1=$(tree_cpu "${PIDS[@]}")
((RUN_RC == 124)) && fail "flwr run did not finish within ${RUN_TIMEOUT} s"
((RUN_RC == 0)) || fail "flwr run exited with code $RUN_RC"
[[ -s $OUT ]] || fail "ServerApp wrote no round timings ($OUT missing)"

"$PY" - "$OUT" "$ROUNDS" "$NODES" "$RUN_START" "$RUN_END" "$CPU0" "$CPU1" <<'EOF' || fail "incomplete run"
import json, os, statistics, sys
data = json.load(open(sys.argv[1]))
rounds, nodes = int(sys.argv[2]), int(sys.argv[3])
rs = data["rounds"]
secs = [r["seconds"] for r in rs]
starts = [r["start"] for r in rs]
gaps = [b - a for a, b in zip(starts, starts[1:])]
short = [r["round"] for r in rs if r["replies"] != nodes]
if len(rs) != rounds or short:
    print(f"error: {len(rs)}/{rounds} rounds recorded; rounds missing replies: {short}",
          file=sys.stderr)
    sys.exit(1)
p50 = statistics.median(secs)
print(f"flower echo: p50 round {p50:.3f} s over {len(secs)} rounds "
      f"(min {min(secs):.3f}, max {max(secs):.3f})")
print("per-round s (configure_fit -> aggregate_fit):", " ".join(f"{s:.3f}" for s in secs))
def med(xs):
    return statistics.median(xs)
ct = [r["client_t"] for r in rs]
first = med([min(f for _, f in c) - r["start"] for r, c in zip(rs, ct)])
last = med([max(f for _, f in c) - r["start"] for r, c in zip(rs, ct)])
tail = med([r["end"] - max(f for _, f in c) for r, c in zip(rs, ct)])
print(f"breakdown p50: round start -> first client fit {first:.3f} s, -> last client "
      f"fit {last:.3f} s; last fit -> aggregated {tail:.3f} s")
gap = f"{statistics.median(gaps):.3f} s" if gaps else "n/a"
print(f"round-start-to-round-start p50 {gap}; "
      f"flwr run wall {float(sys.argv[5]) - float(sys.argv[4]):.1f} s "
      f"(incl. ServerApp launch + {rounds} rounds)")
cpu = float(sys.argv[7]) - float(sys.argv[6])
wall = float(sys.argv[5]) - float(sys.argv[4])
print(f"CPU used by SuperLink/SuperNodes/SuperExecs/ServerApp/ClientApps during the run: "
      f"{cpu:.1f} s = {cpu / rounds:.1f} s per round ({cpu / wall:.2f} cores on average; "
      f"host has {os.cpu_count()})")
EOF
echo "script wall time: $(awk -v a="$SCRIPT_START" -v b="$(date +%s.%N)" 'BEGIN{printf "%.1f", b-a}') s"
