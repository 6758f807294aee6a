#!/usr/bin/env python3
"""Slowloris acceptance test for kbridge (issue 8).

Starts a kbridge binary, opens SLOW connections that send one header byte every second (never finishing their
request head) and IDLE connections that send nothing, and meanwhile asks `GET /health` on a fresh connection
every half second. Reports the worst and median latency of those fresh clients and kbridge's resident memory
(before, peak, after), and fails (exit 1) when a fresh client waited longer than --max-latency-ms.

Usage: scripts/testing/slowloris.py [--binary .build/release/kbridge] [--slow 500] [--idle 2000] [--seconds 20]
The file-descriptor limit is raised to the hard limit for this script and for kbridge.
"""
import argparse
import os
import re
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time


def rss_mb(pid):
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def fresh_request(port, timeout=5.0):
    """Latency in seconds of a GET /health on a new connection (None if no answer)."""
    start = time.monotonic()
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as client:
            client.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            data = client.recv(65536)
            if not data.startswith(b"HTTP/1.1 "):
                return None
    except OSError:
        return None
    return time.monotonic() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--binary", default=".build/debug/kbridge")
    parser.add_argument("--slow", type=int, default=500, help="slowloris connections")
    parser.add_argument("--idle", type=int, default=2000, help="idle connections")
    parser.add_argument("--seconds", type=float, default=20, help="how long the slowloris connections trickle")
    parser.add_argument("--max-latency-ms", type=float, default=100)
    parser.add_argument("--bootstrap", default=os.environ.get("KBRIDGE_TEST_BOOTSTRAP", "127.0.0.1:9"),
                        help="brokers for the route (none are needed: only /health is asked)")
    parser.add_argument("--server", default="", help="extra `server:` keys as YAML flow, e.g. 'request_read_timeout: 10000'")
    args = parser.parse_args()

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    needed = 2 * (args.slow + args.idle) + 1000
    if hard != resource.RLIM_INFINITY and hard < needed:
        sys.exit(f"the hard file-descriptor limit ({hard}) is below the {needed} needed")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, needed), hard))

    extra = f", {args.server}" if args.server else ""
    config = tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False)
    config.write(f"server: {{host: 127.0.0.1, port: 0{extra}}}\nlog_level: info\n"
                 f"routes:\n  - path: /in\n    topic: slowloris\n    bootstrap_servers: [{args.bootstrap}]\n")
    config.close()
    process = subprocess.Popen([args.binary, config.name], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    port_found = threading.Event()
    port = [0]
    log = []

    def read_stderr():
        for line in process.stderr:
            log.append(line)
            match = re.search(r"address=127\.0\.0\.1:(\d+)", line)
            if match and not port_found.is_set():
                port[0] = int(match.group(1))
                port_found.set()

    threading.Thread(target=read_stderr, daemon=True).start()
    if not port_found.wait(30):
        process.kill()
        sys.exit("kbridge did not start:\n" + "".join(log))
    port = port[0]
    try:
        for _ in range(5):
            fresh_request(port)  # warm up
        rss_before = rss_mb(process.pid)
        idle = [socket.create_connection(("127.0.0.1", port)) for _ in range(args.idle)]
        slow = []
        for _ in range(args.slow):
            connection = socket.create_connection(("127.0.0.1", port))
            connection.setblocking(False)
            connection.send(b"POST /in HTTP/1.1\r\nHost: x\r\n")
            slow.append(connection)
        print(f"kbridge pid {process.pid} port {port}: {len(slow)} slowloris and {len(idle)} idle connections open",
              flush=True)
        latencies = []
        failures = 0
        rss_peak = rss_before
        start = time.monotonic()
        next_byte = start
        while time.monotonic() - start < args.seconds:
            if time.monotonic() >= next_byte:
                for connection in slow:
                    try:
                        connection.send(b"X")
                    except OSError:
                        pass
                next_byte += 1.0
            latency = fresh_request(port)
            if latency is None:
                failures += 1
            else:
                latencies.append(latency)
            rss_peak = max(rss_peak, rss_mb(process.pid))
            time.sleep(0.5)
        still_open = 0
        for connection in slow:
            try:
                connection.recv(1, socket.MSG_PEEK)  # data (a 408) or b"" (closed): kbridge let go of it
            except BlockingIOError:
                still_open += 1
            except OSError:
                pass
        rss_open = rss_mb(process.pid)
        for connection in slow + idle:
            connection.close()
        time.sleep(1)
        rss_after = rss_mb(process.pid)
        worst = max(latencies) * 1000 if latencies else float("inf")
        median = statistics.median(latencies) * 1000 if latencies else float("inf")
        print(f"fresh clients: {len(latencies)} answered, {failures} failed; latency median {median:.1f} ms, worst {worst:.1f} ms")
        print(f"slowloris connections still open after {args.seconds:.0f} s: {still_open} of {len(slow)}")
        print(f"kbridge RSS: {rss_before:.1f} MB before, {rss_peak:.1f} MB peak, {rss_open:.1f} MB with the connections open, "
              f"{rss_after:.1f} MB after they closed")
        ok = failures == 0 and worst <= args.max_latency_ms
        print("PASS" if ok else f"FAIL: a fresh client waited {worst:.1f} ms (limit {args.max_latency_ms} ms) or failed")
        return 0 if ok else 1
    finally:
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
        os.unlink(config.name)


if __name__ == "__main__":
    sys.exit(main())
