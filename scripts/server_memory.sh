#!/usr/bin/env bash
# make server-memory: the server's peak RSS over networked jobs with a large model. A server and
# echo client processes (each returns the model unchanged) on loopback, 3 rounds, a 23.9M-parameter
# model (784-30000-10 dense, 95 MB in fp32): 4 clients with 2 sampled a round, then 8 clients all
# sampled; then the first job with LeNet-5 (the server's footprint without a large model). Prints
# each peak (the server's maximum resident set size, from getrusage of its parent).
# Usage: scripts/server_memory.sh FEDTRAIN OUT
set -euo pipefail
fedtrain=$1 out=$2
rm -rf "$out"; mkdir -p "$out"
pids=()
cleanup() { for pid in "${pids[@]}"; do kill "$pid" 2> /dev/null || true; done; }
trap cleanup EXIT

run() {
    local name=$1 clients=$2 dir="$out/$1"
    mkdir -p "$dir"
    cat > "$dir/job.yaml"
    python3 -c 'import resource, subprocess, sys
code = subprocess.run(sys.argv[2:]).returncode
open(sys.argv[1], "w").write("%d\n" % resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
sys.exit(code)' "$dir/peak-kb" "$fedtrain" server --config "$dir/job.yaml" --listen 127.0.0.1:0 --port-file "$dir/port" \
        --state "$dir/state" --insecure > "$dir/server.out" 2> "$dir/server.log" &
    local server=$!
    for _ in $(seq 600); do [ -s "$dir/port" ] && break; sleep 0.1; done
    for k in $(seq 0 $((clients - 1))); do
        "$fedtrain" client --server "127.0.0.1:$(cat "$dir/port")" --client-id "$k" --threads 1 --insecure --echo 2> "$dir/client-$k.log" &
        pids+=($!)
    done
    wait "$server"
    local peak
    peak=$(cat "$dir/peak-kb")
    echo "$name: server peak RSS $((peak / 1024)) MB"
}

large_model='model:
  layers:
    - flatten
    - dense: 30000
    - relu
    - dense: classes'
run dense-30000-2-of-4 4 <<JOB
clients: 4
rounds: 3
fraction: 0.5
partition: "iid"
eval_every: 1000
$large_model
JOB
run dense-30000-8-of-8 8 <<JOB
clients: 8
rounds: 3
fraction: 1.0
partition: "iid"
eval_every: 1000
$large_model
JOB
run lenet5-2-of-4 4 <<JOB
clients: 4
rounds: 3
fraction: 0.5
partition: "iid"
eval_every: 1000
JOB
echo "the large model: 23,850,010 parameters = 95.4 MB in fp32 (a task or an echoed update: 95.4 MB)"
