#!/usr/bin/env bash
# make compare-federation, fedtrain's half: a server and 10 client processes on loopback whose
# clients return the model unchanged (--echo: no training), LeNet-5, 21 rounds, no evaluation but
# after the last (left out); prints the p50 of the other 20 rounds' wall times. Usage: scripts/federation_overhead.sh FEDTRAIN OUT
set -euo pipefail
fedtrain=$1 out=$2
rm -rf "$out"; mkdir -p "$out"
cat > "$out/job.yaml" <<JOB
clients: 10
rounds: 21
fraction: 1.0
partition: "dirichlet:0.5"
eval_every: 1000
JOB
pids=()
cleanup() { for pid in "${pids[@]}"; do kill "$pid" 2> /dev/null || true; done; }
trap cleanup EXIT
"$fedtrain" server --config "$out/job.yaml" --listen 127.0.0.1:0 --port-file "$out/port" --state "$out/state" --insecure \
    > "$out/server.out" 2> "$out/server.log" &
server=$!
for _ in $(seq 600); do [ -s "$out/port" ] && break; sleep 0.1; done
port=$(cat "$out/port")
for k in $(seq 0 9); do
    "$fedtrain" client --server "127.0.0.1:$port" --client-id "$k" --threads 1 --insecure --echo 2> "$out/client-$k.log" &
    pids+=($!)
done
wait $server
python3 - "$out/state/metrics.jsonl" <<'PY'
import json, statistics, sys
rows = [json.loads(line) for line in open(sys.argv[1])]
# The last round also evaluates the model on the test set; Flower's echo run does not evaluate.
seconds = [row["seconds"] for row in rows[:-1]]
print("fedtrain echo: p50 round %.4f s over %d rounds (min %.4f, max %.4f)" % (statistics.median(seconds), len(seconds), min(seconds), max(seconds)))
print("  " + " ".join("%.4f" % s for s in seconds))
PY
