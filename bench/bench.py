#!/usr/bin/env python3
"""Relay's benchmarks, each side by side with the ceiling of this machine measured in the same run.

    bench/run [B1 B2 B3] [--runs N] [--seconds S] [--messages N] [--large-messages N] [--write]

B1  HTTP accept: wrk POSTing 1 kB JSON messages (one recipient) to an API-only node, against pgbench inserting the
    equivalent message and recipient rows (prepared statements), at 16, 64 and 256 connections. Durable
    PostgreSQL (fsync on, synchronous_commit on). Accepts/s, p50 and p99 latency.
B2  Delivery of pre-queued 5 kB messages into Postfix's smtp-sink by one worker node, against smtp-source
    sending the same messages to the same sink over the same number of reused sessions.
B3  B2 with 100 kB messages.

Every figure is the median of --runs runs (default 3); the table gives Relay, the ceiling and their ratio.
--write replaces the generated section of docs/benchmarks.md. Loopback only; uses the chaos lab
(Tests/Chaos/lab.py) for PostgreSQL, dnsmasq, smtp-sink and the Relay nodes. Needs a release build
(bench/run makes one) and wrk, pgbench, smtp-source and smtp-sink.
"""
import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "Tests", "Chaos"))
import lab as lablib  # noqa: E402
from lab import Lab, Postgres, wait_for  # noqa: E402

SENDER = "app@" + lablib.SENDER_DOMAIN
RECIPIENT_DOMAIN = lablib.SINK_DOMAINS[0]
SINK_ADDRESS = lablib.SINK_ADDRESSES[0]


class DurablePostgres(Postgres):
    """The lab's PostgreSQL with the durability a production queue has: fsync and synchronous commit on."""

    def start(self):
        self._run("pg_ctl", "start", "-w", "-D", self.directory, "-l", self.log, "-o",
                  "-p %d -k %s -c listen_addresses=127.0.0.1 -c fsync=on -c synchronous_commit=on "
                  "-c max_connections=400 -c shared_buffers=512MB -c max_wal_size=4GB"
                  % (self.port, self.socket_directory))


def new_lab(relay, work_root, roles, extra=None):
    work = tempfile.mkdtemp(prefix="bench-", dir=work_root)
    lab = Lab(relay, work, roles, haproxy=False, sink="smtp-sink", extra_environment=extra or {})
    lab.postgres = DurablePostgres(work)
    return lab


def text_of(size):
    """A message body of `size` bytes in lines of 76 characters, as a mail client would write it."""
    line = ("The quick brown fox jumps over the lazy dog. " * 2)[:74] + "\r\n"
    return (line * (size // len(line) + 1))[:size]


def percentile(values, fraction):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(fraction * (len(ordered) - 1))))]


# -- B1 ---------------------------------------------------------------------------------------------------------

PGBENCH_SCHEMA = """
CREATE TABLE IF NOT EXISTS bench_messages (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(), tenant_id uuid NOT NULL, sender text NOT NULL,
    subject text NOT NULL, body text NOT NULL, created_at timestamptz NOT NULL DEFAULT now());
CREATE TABLE IF NOT EXISTS bench_recipients (
    id bigserial PRIMARY KEY, message_id uuid NOT NULL REFERENCES bench_messages, email text NOT NULL,
    domain text NOT NULL, status text NOT NULL, next_attempt_at timestamptz);
CREATE INDEX IF NOT EXISTS bench_recipients_due ON bench_recipients (next_attempt_at) WHERE status = 'queued';
"""

PGBENCH_SCRIPT = """WITH m AS (
  INSERT INTO bench_messages (tenant_id, sender, subject, body)
  VALUES ('00000000-0000-0000-0000-000000000001', 'app@sender.chaos.test', 'Benchmark', repeat('x', 1024))
  RETURNING id)
INSERT INTO bench_recipients (message_id, email, domain, status, next_attempt_at)
SELECT id, 'user@d1.chaos.test', 'd1.chaos.test', 'queued', now() FROM m;
"""


def run_pgbench(lab, connections, seconds, work):
    script = os.path.join(work, "insert.sql")
    with open(script, "w") as handle:
        handle.write(PGBENCH_SCRIPT)
    log_dir = tempfile.mkdtemp(prefix="pgbench-log-", dir=work)
    pgbench = os.path.join(lab.postgres.bin, "pgbench")
    output = subprocess.run(
        [pgbench, "-h", "127.0.0.1", "-p", str(lab.postgres.port), "-U", "relay", "-n", "-M", "prepared",
         "-c", str(connections), "-j", "2", "-T", str(seconds), "-f", script, "-l",
         "--log-prefix", os.path.join(log_dir, "tx"), "relay"],
        check=True, capture_output=True, text=True, cwd=log_dir).stdout
    tps = float(re.search(r"tps = ([\d.]+)", output).group(1))
    latencies = []
    for name in os.listdir(log_dir):
        with open(os.path.join(log_dir, name)) as handle:
            latencies += [int(line.split()[2]) / 1000.0 for line in handle if line.strip()]
    shutil.rmtree(log_dir, ignore_errors=True)
    return tps, percentile(latencies, 0.5), percentile(latencies, 0.99)


WRK_SCRIPT = """wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer %s"
wrk.body = [[%s]]
"""


def parse_wrk_latency(text, label):
    match = re.search(r"^\s*%s\s+([\d.]+)(us|ms|s)\s*$" % re.escape(label), text, re.MULTILINE)
    value, unit = float(match.group(1)), match.group(2)
    return value / 1000.0 if unit == "us" else value * 1000.0 if unit == "s" else value


def run_wrk(port, api_key, connections, seconds, work):
    import json
    body = json.dumps({"from": SENDER, "to": "user@" + RECIPIENT_DOMAIN, "subject": "Benchmark",
                       "text": text_of(1024)})
    script = os.path.join(work, "post.lua")
    with open(script, "w") as handle:
        handle.write(WRK_SCRIPT % (api_key, body))
    output = subprocess.run(
        ["wrk", "-t", "2", "-c", str(connections), "-d", "%ds" % seconds, "--latency", "--timeout", "10s",
         "-s", script, "http://127.0.0.1:%d/v1/messages" % port],
        check=True, capture_output=True, text=True).stdout
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))
    failed = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    errors = re.search(r"Socket errors: (.*)", output)
    if failed or errors:
        raise RuntimeError("wrk saw failures at c=%d:\n%s" % (connections, output))
    return rate, parse_wrk_latency(output, "50%"), parse_wrk_latency(output, "99%")


def bench_b1(relay, work_root, runs, seconds, concurrencies=(16, 64, 256)):
    rows = []
    for connections in concurrencies:
        relay_runs, ceiling_runs = [], []
        for _ in range(runs):
            # A fresh cluster each run, so that neither side inherits the other's table growth.
            lab = new_lab(relay, work_root, ["api"])
            try:
                lab.start()
                lab.create_tenant()
                lab.postgres.query(PGBENCH_SCHEMA)
                ceiling_runs.append(run_pgbench(lab, connections, seconds, lab.work))
                relay_runs.append(run_wrk(lab.nodes[0].http_port, lab.api_key, connections, seconds, lab.work))
            finally:
                lab.close()
        relay_median = [statistics.median(values) for values in zip(*relay_runs)]
        ceiling_median = [statistics.median(values) for values in zip(*ceiling_runs)]
        rows.append(("B1 HTTP accept, c=%d" % connections, "%.0f/s" % relay_median[0], "%.0f/s" % ceiling_median[0],
                     relay_median[0] / ceiling_median[0],
                     "Relay p50 %.1f ms, p99 %.1f ms; pgbench p50 %.1f ms, p99 %.1f ms; runs: Relay %s, pgbench %s"
                     % (relay_median[1], relay_median[2], ceiling_median[1], ceiling_median[2],
                        "/".join("%.0f" % run[0] for run in relay_runs),
                        "/".join("%.0f" % run[0] for run in ceiling_runs))))
        print_row(rows[-1])
    return rows


# -- B2, B3 -----------------------------------------------------------------------------------------------------

def smtp_source_rate(lab, count, size, sessions):
    """smtp-source sending `count` messages of `size` bytes over `sessions` reused sessions to the lab's sink."""
    binary = shutil.which("smtp-source") or "/usr/sbin/smtp-source"
    started = time.monotonic()
    subprocess.run([binary, "-s", str(sessions), "-m", str(count), "-l", str(size), "-d", "-c",
                    "-f", SENDER, "-t", "user@" + RECIPIENT_DOMAIN, "%s:%d" % (SINK_ADDRESS, lab.mx_port)],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return count / (time.monotonic() - started)


def fill_queue(lab, count, size):
    body_text = text_of(size)
    # Batches of about 4 MB at most (the API limits the request body).
    lablib.queue_batches(lab, [{"from": SENDER, "to": "user%d@%s" % (n, RECIPIENT_DOMAIN), "subject": "Benchmark %d" % n,
                                "text": body_text} for n in range(count)],
                         per_batch=max(1, min(500, 4_000_000 // size)))


def relay_delivery_rate(relay, work_root, count, size, sessions):
    """(Relay msg/s, smtp-source msg/s, detail) for `count` pre-queued messages of `size` bytes."""
    extra = {"RELAY_MX_MAX_CONNECTIONS": str(sessions), "RELAY_LOG_LEVEL": "error"}
    lab = new_lab(relay, work_root, ["api", "worker"], extra)
    try:
        lab.start(start_nodes=False)
        lab.start_nodes(lab.nodes[:1])
        lab.create_tenant()
        ceiling = smtp_source_rate(lab, count, size, sessions)
        fill_queue(lab, count, size)
        started = time.time()
        lab.start_nodes(lab.nodes[1:])

        wait_for("%d deliveries" % count, lambda: lablib.delivered_count(lab) == count, 1800, 0.5)
        first, last = lablib.delivery_span(lab)
        rate = (count - 1) / (last - first)
        return rate, ceiling, "first delivery %.1f s after the worker started" % (first - started)
    finally:
        lab.close()


def bench_delivery(name, relay, work_root, runs, count, size, sessions=10):
    results = [relay_delivery_rate(relay, work_root, count, size, sessions) for _ in range(runs)]
    relay_rate = statistics.median(result[0] for result in results)
    ceiling = statistics.median(result[1] for result in results)
    row = ("%s delivery, %d × %d kB, %d sessions" % (name, count, size // 1024, sessions), "%.0f msg/s" % relay_rate,
           "%.0f msg/s" % ceiling, relay_rate / ceiling,
           "runs: Relay %s, smtp-source %s; %s" % ("/".join("%.0f" % r[0] for r in results),
                                                    "/".join("%.0f" % r[1] for r in results), results[-1][2]))
    print_row(row)
    return [row]


# -- output -----------------------------------------------------------------------------------------------------

def print_row(row):
    print("%-40s Relay %-12s ceiling %-12s ratio %.2f  (%s)" % (row[0], row[1], row[2], row[3], row[4]), flush=True)


def markdown(rows, arguments):
    lines = ["<!-- generated by bench/run; do not edit by hand -->",
             "Run on %s, %d cores; medians of %d runs (%s)." % (time.strftime("%Y-%m-%d"), os.cpu_count(), arguments.runs,
                                                               " ".join(arguments.benchmarks)),
             "", "| Benchmark | Relay | Ceiling | Ratio | Details |", "|---|---|---|---|---|"]
    lines += ["| %s | %s | %s | %.2f× | %s |" % (row[0], row[1], row[2], row[3], row[4]) for row in rows]
    return "\n".join(lines) + "\n"


def write_docs(text):
    path = os.path.join(ROOT, "docs", "benchmarks.md")
    with open(path) as handle:
        document = handle.read()
    start, end = "<!-- results: start -->", "<!-- results: end -->"
    before, rest = document.split(start, 1)
    after = rest.split(end, 1)[1]
    with open(path, "w") as handle:
        handle.write(before + start + "\n" + text + end + after)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("benchmarks", nargs="*", default=["B1", "B2", "B3"])
    parser.add_argument("--relay", default=os.path.join(ROOT, ".build", "release", "relay"))
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=15, help="duration of each B1 measurement")
    parser.add_argument("--messages", type=int, default=50000, help="B2 queue size")
    parser.add_argument("--large-messages", type=int, default=10000, help="B3 queue size")
    parser.add_argument("--write", action="store_true", help="replace the results in docs/benchmarks.md")
    arguments = parser.parse_args()
    work_root = tempfile.mkdtemp(prefix="relay-bench-")
    os.chmod(work_root, 0o755)
    rows = []
    try:
        if "B1" in arguments.benchmarks:
            rows += bench_b1(arguments.relay, work_root, arguments.runs, arguments.seconds)
        if "B2" in arguments.benchmarks:
            rows += bench_delivery("B2", arguments.relay, work_root, arguments.runs, arguments.messages, 5 * 1024)
        if "B3" in arguments.benchmarks:
            rows += bench_delivery("B3", arguments.relay, work_root, arguments.runs, arguments.large_messages, 100 * 1024)
    finally:
        shutil.rmtree(work_root, ignore_errors=True)
    table = markdown(rows, arguments)
    print(table)
    if arguments.write:
        write_docs(table)


if __name__ == "__main__":
    main()
