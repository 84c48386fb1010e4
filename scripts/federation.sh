#!/usr/bin/env bash
# make federation: a CA and certificates, a server and N client processes on loopback with mutual
# TLS, the default job run to its end, and its summary. Usage: scripts/federation.sh FEDTRAIN N OUT
set -euo pipefail
fedtrain=$1 clients=$2 out=$3
job=experiments/default.yaml
job_clients=$(sed -n 's/^clients: *//p' "$job")
if [ "$clients" -lt 1 ] || [ "$clients" -gt "$job_clients" ]; then
    echo "make federation: N=$clients client processes for a job of $job_clients clients (1 <= N <= $job_clients)"; exit 2
fi
rm -rf "$out"
mkdir -p "$out"
"$fedtrain" ca init --dir "$out/ca" > /dev/null
"$fedtrain" ca issue --dir "$out/ca" --name server --hosts 127.0.0.1,localhost > /dev/null
# Client process p hosts an equal share of the job's clients, under its own certificate.
ranges=()
for ((p = 0; p < clients; p++)); do
    first=$((p * job_clients / clients)) last=$(((p + 1) * job_clients / clients - 1))
    ranges+=("$first-$last")
    "$fedtrain" ca issue --dir "$out/ca" --name "site-$p" --clients "$first-$last" > /dev/null
done
pids=()
cleanup() { for pid in "${pids[@]}"; do kill "$pid" 2> /dev/null || true; done; }
trap cleanup EXIT
"$fedtrain" server --config "$job" --listen 127.0.0.1:0 --port-file "$out/port" --state "$out/state" \
    --tls-cert "$out/ca/server.pem" --tls-key "$out/ca/server.key" --client-ca "$out/ca/ca.pem" --allow "$out/ca/allow.txt" \
    2> "$out/server.log" &
server=$!
for _ in $(seq 600); do [ -s "$out/port" ] && break; kill -0 $server 2> /dev/null || break; sleep 0.1; done
[ -s "$out/port" ] || { echo "make federation: the server did not start:"; tail -5 "$out/server.log"; exit 1; }
port=$(cat "$out/port")
echo "server on 127.0.0.1:$port (mutual TLS, CA in $out/ca); $clients client processes; logs in $out"
threads=$(( $(nproc) / clients )); [ "$threads" -ge 1 ] || threads=1
for ((p = 0; p < clients; p++)); do
    "$fedtrain" client --server "127.0.0.1:$port" --client-ids "${ranges[$p]}" --threads "$threads" --ca "$out/ca/ca.pem" \
        --tls-cert "$out/ca/site-$p.pem" --tls-key "$out/ca/site-$p.key" 2> "$out/client-$p.log" &
    pids+=($!)
done
status=0
wait $server || status=$?
for pid in "${pids[@]}"; do wait "$pid" || status=$?; done
pids=()
[ $status -eq 0 ] || { echo "make federation: a process failed (status $status); see $out/*.log"; exit 1; }
cat "$out/state/summary.json"; echo
