#!/usr/bin/env python3
"""The MLflow side of bench/load.sh: register-then-approve pairs against an MLflow tracking
server's model registry (SQLite backend), over its REST API.

One pair = create a model version (POST /api/2.0/mlflow/model-versions/create) + set an approval
tag on it (POST /api/2.0/mlflow/model-versions/set-tag, key "approval", value "approved") — the
closest MLflow has to airisk's register + approve. Each client thread owns one registered model and
a keep-alive HTTP connection, and runs pairs back to back for the given duration.

Usage: mlflow_peer.py URL CLIENTS SECONDS
Prints one line: RESULT pairs=N seconds=S pairs_per_s=R p50_ms=… p99_ms=… errors=E
"""

import http.client
import json
import sys
import threading
import time
import urllib.parse


def main():
    url, clients, seconds = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
    parsed = urllib.parse.urlparse(url)
    run = str(int(time.time()))
    latencies = []
    counts = [0] * clients
    errors = [0] * clients
    lock = threading.Lock()
    # A client that fails its set-up breaks the barrier, so nobody waits for it forever.
    start_gate = threading.Barrier(clients + 1, timeout=120)

    def post(conn, path, body):
        conn.request("POST", path, json.dumps(body), {"Content-Type": "application/json"})
        r = conn.getresponse()
        data = r.read()
        if r.status != 200:
            raise RuntimeError(f"{path}: {r.status} {data[:200]!r}")
        return json.loads(data)

    def client(i):
        conn = http.client.HTTPConnection(parsed.hostname, parsed.port, timeout=60)
        name = f"bench-{run}-{i}"
        post(conn, "/api/2.0/mlflow/registered-models/create", {"name": name})
        # Warm-up: one unmeasured pair per client (workers loaded, connections open).
        mv = post(conn, "/api/2.0/mlflow/model-versions/create", {"name": name, "source": f"s3://bench/{name}/warm"})
        post(
            conn,
            "/api/2.0/mlflow/model-versions/set-tag",
            {"name": name, "version": mv["model_version"]["version"], "key": "warm", "value": "up"},
        )
        start_gate.wait()
        deadline = time.monotonic() + seconds
        mine = []
        n = 0
        while time.monotonic() < deadline:
            n += 1
            t0 = time.monotonic()
            try:
                mv = post(
                    conn,
                    "/api/2.0/mlflow/model-versions/create",
                    {"name": name, "source": f"s3://bench/{name}/{n}", "description": "load test"},
                )
                version = mv["model_version"]["version"]
                t1 = time.monotonic()
                post(
                    conn,
                    "/api/2.0/mlflow/model-versions/set-tag",
                    {"name": name, "version": version, "key": "approval", "value": "approved"},
                )
                t2 = time.monotonic()
                mine.extend([(t1 - t0) * 1000, (t2 - t1) * 1000])
                counts[i] += 1
            except Exception as e:  # noqa: BLE001 - count and go on; the line reports them
                errors[i] += 1
                if errors[i] <= 3:
                    print(f"client {i}: {e}", file=sys.stderr)
                conn.close()
                conn = http.client.HTTPConnection(parsed.hostname, parsed.port, timeout=60)
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    start_gate.wait()
    began = time.monotonic()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - began
    latencies.sort()

    def pct(p):
        if not latencies:
            return float("nan")
        return latencies[min(len(latencies) - 1, int(len(latencies) * p / 100))]

    pairs = sum(counts)
    print(
        f"RESULT pairs={pairs} seconds={elapsed:.3f} pairs_per_s={pairs / elapsed:.2f} "
        f"p50_ms={pct(50):.3f} p99_ms={pct(99):.3f} errors={sum(errors)}"
    )


if __name__ == "__main__":
    main()
