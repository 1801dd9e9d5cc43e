#!/usr/bin/env python3
"""Relay's chaos suite (issue 7), run by scripts/chaos: Relay nodes on loopback, failures injected, and every
message counted at the receiving MX hosts.

  chaos.py --relay PATH [kill9] [outage] [tarpit] [throughput]     (no scenario: kill9 outage tarpit)

Scenarios (docs/scaling.md, "Chaos suite", describes each and records measured runs):
  kill9       3 nodes behind HAProxy + 1 PostgreSQL; 10,000 messages POSTed through HAProxy; one node is killed
              with kill -9 in the middle and restarted. Every message must arrive; duplicates only for messages
              that had reached the sink before the kill (deliveries in flight on the killed node).
  outage      PostgreSQL stopped for 30 s under load. The nodes must answer API 503 and SMTP 4xx meanwhile
              (no 500, no hang, no crash), recover by themselves (same PIDs), and deliver every message accepted
              before, during and after.
  tarpit      one domain's MX accepts TCP and never answers; the other domains' mail must deliver in a time
              comparable to a run without the tarpit.
  throughput  delivery rate with 1, 2 and 3 worker nodes draining the same queue to the same sinks (use a
              release build for figures).

Prints one "ok"/"FAIL" line per check with its numbers and exits 1 if any check failed. Everything it starts
is stopped when it exits, whatever the reason. Traffic goes to loopback only (127.0.0.1, 127.42.0.x).
"""
import argparse
import http.client
import json
import os
import shutil
import signal
import smtplib
import sys
import tempfile
import threading
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lab as lablib  # noqa: E402
from lab import (ALL_ROLES, SENDER_DOMAIN, SINK_DOMAINS, TARPIT_DOMAIN, Lab, SinkRecord, request,  # noqa: E402
                 smtp_session, smtp_submit, wait_for)


# Checks that fail because of a bug in Relay that is reported and not fixed yet (docs/scaling.md, "Chaos suite",
# says how to reproduce each). Such a check prints KNOWN-BUG instead of FAIL and does not fail the run. A
# deterministic bug (strict) that passes prints FAIL ("fixed? remove it from KNOWN_BUGS"), so the list cannot go
# stale; a racy one (not strict) may pass in a run and prints ok then.
KNOWN_BUGS = {
    # Both bugs the first runs found are fixed: "tarpit-other-domains" (claims now leave out a domain with
    # RELAY_MX_MAX_CONNECTIONS recipients in flight on the node) and "outage-stuck-calls" (every database call
    # has a deadline that holds even when the call ignores cancellation).
}


class Report:
    """ok/FAIL lines; `failures` counts the FAILs, `known` the KNOWN-BUG lines."""

    def __init__(self):
        self.failures = 0
        self.known = []
        self.started = time.monotonic()

    def check(self, name, passed, detail="", known_bug=None):
        strict, bug = KNOWN_BUGS.get(known_bug, (False, None)) if known_bug else (False, None)
        if bug and passed and not strict:
            label = "ok  "
        elif bug and passed:
            label, passed = "FAIL", False
            detail += " — passed although marked as a known bug (%s): fixed? remove %r from KNOWN_BUGS" % (bug, known_bug)
        elif bug:
            label = "KNOWN-BUG"
            detail += " — known bug: " + bug
            self.known.append(known_bug)
        else:
            label = "ok  " if passed else "FAIL"
        print("%s  %s%s" % (label, name, (": " + detail) if detail else ""), flush=True)
        if not passed and label == "FAIL":
            self.failures += 1
        return passed

    def info(self, text):
        print("info  " + text, flush=True)

    def section(self, title):
        print("\n== %s (t=%.0f s)" % (title, time.monotonic() - self.started), flush=True)


# ---------------------------------------------------------------------------------------------------------------
# Load: POST /v1/messages from threads with keep-alive connections
# ---------------------------------------------------------------------------------------------------------------

RETRYABLE = {429, 500, 502, 503, 504}


class Result:
    __slots__ = ("chaos_id", "status", "statuses", "started", "finished")

    def __init__(self, chaos_id):
        self.chaos_id = chaos_id
        self.status = None
        self.statuses = []
        self.started = time.time()
        self.finished = None


class Sender:
    """Sends messages through the API with `threads` keep-alive connections.

    `send_all` retries a 429/5xx answer, a timeout or a broken connection with the same Idempotency-Key (what a
    careful client does; the key makes the retry store the message at most once) until it is accepted or
    `give_up_after` seconds pass. `run_until` sends new messages until stopped, each once, and records every
    answer: the outage scenario looks at what the API said."""

    def __init__(self, port, api_key, threads=16, timeout=20):
        self.port = port
        self.api_key = api_key
        self.threads = threads
        self.timeout = timeout

    def _connection(self):
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=self.timeout)

    def _post(self, connection, chaos_id, to):
        body = json.dumps({
            "from": "Chaos <chaos@%s>" % SENDER_DOMAIN, "to": to, "subject": "chaos " + chaos_id,
            "text": "chaos message " + chaos_id, "headers": {"X-Chaos-Id": chaos_id},
        })
        headers = {"Authorization": "Bearer " + self.api_key, "Content-Type": "application/json",
                   "Idempotency-Key": chaos_id}
        try:
            connection.request("POST", "/v1/messages", body=body, headers=headers)
            response = connection.getresponse()
            response.read()
            if response.getheader("Connection", "").lower() == "close":
                connection.close()
            return str(response.status)
        except (TimeoutError, OSError) as error:
            connection.close()
            return "timeout" if isinstance(error, TimeoutError) else "error"
        except http.client.HTTPException:
            connection.close()
            return "error"

    def send_all(self, items, give_up_after=120):
        """Sends every (chaos_id, to) in `items`; {chaos_id: Result}."""
        results = {}
        lock = threading.Lock()
        queue = list(reversed(items))

        def work():
            connection = self._connection()
            while True:
                with lock:
                    if not queue:
                        break
                    chaos_id, to = queue.pop()
                result = Result(chaos_id)
                delay = 0.2
                while True:
                    status = self._post(connection, chaos_id, to)
                    result.statuses.append(status)
                    if status in ("202", "200") or (status.isdigit() and int(status) not in RETRYABLE):
                        break
                    if time.time() - result.started > give_up_after:
                        break
                    time.sleep(delay)
                    delay = min(delay * 2, 2.0)
                result.status = status
                result.finished = time.time()
                with lock:
                    results[chaos_id] = result
            connection.close()

        threads = [threading.Thread(target=work, daemon=True) for _ in range(self.threads)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return results

    def run_until(self, stop, make_item, results, lock):
        """Starts the threads; each sends new messages from `make_item()` until `stop` is set, appending a
        Result per message to `results`. Returns the threads."""

        def work():
            connection = self._connection()
            while not stop.is_set():
                chaos_id, to = make_item()
                result = Result(chaos_id)
                result.status = self._post(connection, chaos_id, to)
                result.statuses.append(result.status)
                result.finished = time.time()
                with lock:
                    results.append(result)
                if result.status != "202":
                    time.sleep(0.05)  # an error answer comes fast; do not spin
            connection.close()

        threads = [threading.Thread(target=work, daemon=True) for _ in range(self.threads)]
        for thread in threads:
            thread.start()
        return threads


def recipient(index, domains=SINK_DOMAINS):
    return "r%d@%s" % (index, domains[index % len(domains)])


def histogram(values):
    counts = {}
    for value in values:
        counts[value] = counts.get(value, 0) + 1
    return ", ".join("%s×%d" % (key, counts[key]) for key in sorted(counts, key=str)) or "none"


def explain_lost(lab, report, lost, limit=10):
    """Prints what PostgreSQL knows about messages that did not arrive (the recipient's state and its queue row)."""
    for chaos_id in lost[:limit]:
        rows = lab.postgres.query(
            "SELECT r.id, r.status, r.attempts, coalesce(r.last_text, ''), r.updated_at, m.created_at,"
            " coalesce(q.due_at::text, 'no queue row'), coalesce(q.lease_owner::text, 'no lease'), now()"
            " FROM messages m JOIN recipients r ON r.message_id = m.id LEFT JOIN queue q ON q.recipient_id = r.id"
            " WHERE m.subject = 'chaos %s'" % chaos_id.replace("'", ""))
        report.info("not delivered: %s → %s" % (chaos_id, rows or "no such message in the database"))


def wait_delivered(lab, record, ids, timeout):
    """Waits until every id in `ids` reached a sink; returns the seconds waited (None on timeout)."""
    started = time.monotonic()
    try:
        wait_for("%d messages to arrive" % len(ids), lambda: record.poll().received(ids) == len(ids), timeout, 0.25)
    except TimeoutError:
        return None
    return time.monotonic() - started


# ---------------------------------------------------------------------------------------------------------------
# Scenarios
# ---------------------------------------------------------------------------------------------------------------

def scenario_kill9(lab, report, count):
    report.section("kill -9: %d messages through HAProxy to 3 nodes, node 2 killed and restarted" % count)
    record = SinkRecord(lab.record_path)
    victim = lab.nodes[1]
    ids = ["k9-%d" % index for index in range(count)]
    results = {}
    sender = Sender(lab.api_port, lab.api_key, threads=16)
    started = time.time()
    sending = threading.Thread(target=lambda: results.update(sender.send_all([(i, recipient(n)) for n, i in enumerate(ids)])),
                               daemon=True)
    sending.start()
    # "In the middle": once 30 % of the messages have arrived, while accepts and deliveries are both going on.
    wait_for("30% of the messages to arrive", lambda: record.poll().received(ids) >= count * 0.3, 600, 0.1)
    in_flight_before = lab.pending()
    killed_at = time.time()
    killed_pid = victim.pid
    status = victim.kill9()
    arrived_at_kill = record.poll().received(ids)
    report.info("kill -9 of %s (pid %d) at t=%.1f s: %s; %d/%d arrived, %d recipients pending"
                % (victim.name, killed_pid, killed_at - started,
                   "killed by SIGKILL" if status == -signal.SIGKILL else "exit status %s" % status,
                   arrived_at_kill, count, in_flight_before))
    wait_for("HAProxy to take %s out" % victim.name,
             lambda: all(state.startswith("DOWN") for state in lab.haproxy.server_states(victim.name)), 30, 0.2)
    down_after = time.time() - killed_at
    victim.start()
    wait_for("%s to be ready again" % victim.name, victim.ready, 90)
    wait_for("HAProxy to put %s back" % victim.name, lab.haproxy.all_up, 30, 0.2)
    report.info("%s out of HAProxy %.1f s after the kill, restarted (pid %d) and back UP %.1f s after the kill"
                % (victim.name, down_after, victim.pid, time.time() - killed_at))
    sending.join()
    accept_seconds = max(result.finished for result in results.values()) - started
    accepted = [result.chaos_id for result in results.values() if result.status in ("202", "200")]
    retried = [result for result in results.values() if len(result.statuses) > 1]
    report.check("every message accepted through HAProxy (retrying with the same Idempotency-Key)",
                 len(accepted) == count,
                 "%d/%d accepted in %.1f s (%.0f/s); %d needed a retry, answers before the retry: %s; final: %s"
                 % (len(accepted), count, accept_seconds, count / accept_seconds, len(retried),
                    histogram(status for result in retried for status in result.statuses[:-1]),
                    histogram(result.status for result in results.values())))
    waited = wait_delivered(lab, record, ids, 240)
    record.poll()
    delivered = record.received(ids)
    last_arrival = max(min(times) for chaos_id, times in record.arrivals.items() if chaos_id.startswith("k9-"))
    report.check("every message delivered after the kill -9 and restart (lost = 0)", delivered == count,
                 "%d/%d delivered, lost %d; all had arrived %.1f s after the first send"
                 % (delivered, count, count - delivered, last_arrival - started) if waited is not None else
                 "%d/%d delivered after waiting 240 s, lost %d" % (delivered, count, count - delivered))
    explain_lost(lab, report, [chaos_id for chaos_id in ids if chaos_id not in record.arrivals])
    duplicates = record.duplicates(ids)
    # A first copy may be recorded up to a second after the signal: bytes the killed node had already written
    # are still read by the sink (it records at the end of data).
    early = [chaos_id for chaos_id in duplicates if min(record.arrivals[chaos_id]) > killed_at + 1.0]
    concurrency = int(lab.extra_environment.get("RELAY_WORKER_CONCURRENCY", "64"))
    report.check("duplicates only for deliveries in flight at the kill", not early and len(duplicates) <= concurrency,
                 "%d duplicates (bound: the killed node's %d delivery slots); %d of them first arrived more than 1 s"
                 " after the kill%s" % (len(duplicates), concurrency, len(early),
                         "; first copies %.2f–%.2f s, second copies %.1f–%.1f s after the kill" % (
                             min(min(record.arrivals[d]) for d in duplicates) - killed_at,
                             max(min(record.arrivals[d]) for d in duplicates) - killed_at,
                             min(sorted(record.arrivals[d])[1] for d in duplicates) - killed_at,
                             max(sorted(record.arrivals[d])[1] for d in duplicates) - killed_at) if duplicates else ""))
    wait_for("the queue to be empty", lambda: lab.pending() == 0, 60, 0.5)
    others_same = all(node.starts == 1 for node in lab.nodes if node is not victim)
    report.check("the other nodes kept running (no restart)", others_same and all(node.running() for node in lab.nodes))


def scenario_outage(lab, report, outage_seconds):
    report.section("PostgreSQL stopped for %d s under load" % outage_seconds)
    record = SinkRecord(lab.record_path)
    pids = {node.name: node.pid for node in lab.nodes}
    lock = threading.Lock()
    stop = threading.Event()
    counter = iter(range(10**9))
    results = []

    def next_item():
        with lock:
            index = next(counter)
        return "pg-lb-%d" % index, recipient(index)

    # Load through HAProxy, as applications send.
    threads = Sender(lab.api_port, lab.api_key, threads=4).run_until(stop, next_item, results, lock)
    # Probes straight to each node: what Relay itself answers (HAProxy takes nodes whose /readyz fails out).
    probes = []  # (node, kind, started, finished, answer, stage)
    probe_counter = iter(range(10**9))

    def api_probe(node):
        connection = http.client.HTTPConnection("127.0.0.1", node.http_port, timeout=20)
        sender = Sender(node.http_port, lab.api_key)
        while not stop.is_set():
            with lock:
                index = next(probe_counter)
            chaos_id = "pg-%s-%d" % (node.name, index)
            began = time.time()
            status = sender._post(connection, chaos_id, recipient(index))
            with lock:
                probes.append((node.name, "api", chaos_id, began, time.time(), status, None))
            stop.wait(0.25)

    def smtp_probe(node, fresh):
        session = None
        while not stop.is_set():
            with lock:
                index = next(probe_counter)
            chaos_id = "pg-smtp-%s-%d" % (node.name, index)
            began = time.time()
            if fresh:
                code, stage = smtp_submit("127.0.0.1", node.submission_port, lab.api_key, chaos_id, recipient(index))
            else:
                # One session authenticated before the outage, reused: the outage meets it at MAIL FROM or DATA.
                try:
                    if session is None:
                        stage = "reconnect"
                        session = smtp_session("127.0.0.1", node.submission_port, lab.api_key)
                    code, stage = smtp_submit(None, None, lab.api_key, chaos_id, recipient(index), session=session)
                    if code != "250":
                        session.rset()
                except Exception as error:  # the session broke; a new one is opened next time
                    if stage == "reconnect":
                        # A refusal while reconnecting (454 at AUTH during the outage) is an answer like any other.
                        code = str(error.smtp_code) if isinstance(error, smtplib.SMTPResponseException) \
                            else "error:%s" % type(error).__name__
                    session = None
            with lock:
                probes.append((node.name, "smtp-new" if fresh else "smtp-open", chaos_id, began, time.time(), code, stage))
            stop.wait(1.0)

    workers = threads + [threading.Thread(target=api_probe, args=(node,), daemon=True) for node in lab.nodes]
    workers += [threading.Thread(target=smtp_probe, args=(lab.nodes[0], True), daemon=True),
                threading.Thread(target=smtp_probe, args=(lab.nodes[0], False), daemon=True)]
    for worker in workers[len(threads):]:
        worker.start()
    began = time.time()

    def accepted_ids():
        with lock:
            return [r.chaos_id for r in results if r.status == "202"] + \
                   [p[2] for p in probes if p[5] in ("202", "250")]

    # Load for a few seconds first, until mail is both accepted and delivered.
    wait_for("load before the outage", lambda: len(accepted_ids()) >= 200 and record.poll().received(accepted_ids()) >= 100,
             120, 0.2)
    down_started = time.time()
    lab.postgres.stop("fast")
    down_at = time.time()
    report.info("PostgreSQL stopped (pg_ctl stop -m fast, %.1f s) at t=%.1f s after %d messages were accepted"
                % (down_at - down_started, down_at - began, len(accepted_ids())))
    stop.wait(outage_seconds)  # the outage itself lasts a fixed time, by design
    up_started = time.time()
    lab.postgres.start()
    up_at = time.time()
    report.info("PostgreSQL started again after %.1f s down" % (up_at - down_at))
    try:
        wait_for("every node ready again", lambda: all(node.ready() for node in lab.nodes), 120, 0.2)
        ready_after = time.time() - up_at
        wait_for("HAProxy to put every node back", lab.haproxy.all_up, 60, 0.2)
        up_after = time.time() - up_at
    except (TimeoutError, RuntimeError) as error:
        ready_after = up_after = None
        report.check("nodes ready again after the outage", False, str(error))
    # Keep the load on after the recovery until mail accepted after it has arrived too.
    try:
        wait_for("load after the outage",
                 lambda: sum(1 for r in list(results) if r.status == "202" and r.started > up_at + (up_after or 0)) >= 200,
                 120, 0.2)
    except TimeoutError:
        pass
    stop.set()
    for worker in workers:
        worker.join(timeout=60)
    hung_workers = sum(1 for worker in workers if worker.is_alive())

    def window(items, start, end):
        return [item for item in items if item[0] >= start and item[1] <= end]

    # Answers to requests made while PostgreSQL was down (started after the stop completed, before the start).
    lb = [(r.started, r.finished, r.status) for r in results]
    lb_outage = window(lb, down_at, up_started)
    direct = [(p[3], p[4], p[5], p[1], p[6]) for p in probes]
    api_outage = [item for item in window(direct, down_at, up_started) if item[3] == "api"]
    smtp_outage = [item for item in window(direct, down_at, up_started) if item[3].startswith("smtp")]
    # Hangs: any request that overlapped the outage (started up to 2 s before the stop) and took over 15 s, or
    # was given up by the client (20 s socket timeout).
    overlapping = [item for item in lb + direct if down_started - 2 <= item[0] <= up_started]
    slowest = max([item[1] - item[0] for item in overlapping] or [0])
    hung = [item for item in overlapping if item[1] - item[0] > 15 or item[2] == "timeout"]
    def seconds(items):
        durations = sorted(item[1] - item[0] for item in items) or [0]
        return "answered in %.1f s median, %.1f s at most" % (durations[len(durations) // 2], durations[-1])

    report.check("API straight to the nodes during the outage: 503 only", api_outage and
                 all(item[2] == "503" for item in api_outage),
                 "%d requests: %s, %s" % (len(api_outage), histogram(item[2] for item in api_outage), seconds(api_outage)))
    report.check("API through HAProxy during the outage: 503 only (Relay's, then HAProxy's once the nodes are out)",
                 lb_outage and all(item[2] == "503" for item in lb_outage),
                 "%d requests: %s, %s" % (len(lb_outage), histogram(item[2] for item in lb_outage), seconds(lb_outage)))
    for kind, label in (("smtp-open", "an SMTP session authenticated before the outage"),
                        ("smtp-new", "new SMTP sessions")):
        answers = [item for item in smtp_outage if item[3] == kind]
        report.check("SMTP submission during the outage, %s: 4xx only" % label,
                     answers and all(item[2].startswith("4") for item in answers),
                     "%d attempts: %s, %s" % (len(answers), histogram("%s at %s" % (item[2], item[4]) for item in answers),
                                              seconds(answers)))
    broken = [item for item in overlapping if item[2] == "error" or item[2].startswith("error")]
    report.check("no request hung (> 15 s) or lost its connection during the outage",
                 not hung and not broken and hung_workers == 0, known_bug="outage-stuck-calls", detail=
                 "%d requests overlapped the outage; slowest answer %.1f s; over 15 s: %s; broken connections: %s"
                 % (len(overlapping), slowest,
                    histogram("%s %s%s" % (item[3] if len(item) > 3 else "api-lb", item[2], " at " + item[4] if len(item) > 4 and item[4] else "")
                              for item in hung),
                    histogram("%s %s" % (item[3] if len(item) > 3 else "api-lb", item[2]) for item in broken)))
    if ready_after is not None:
        report.check("every node ready again by itself after PostgreSQL came back", True,
                     "/readyz 200 on all nodes %.1f s after the start, all UP in HAProxy after %.1f s"
                     % (ready_after, up_after))
    same = all(node.running() and node.pid == pids[node.name] for node in lab.nodes)
    report.check("no node crashed or restarted (same PIDs)", same,
                 ", ".join("%s pid %d%s" % (name, pid, "" if lab.nodes[i].pid == pid and lab.nodes[i].running() else " → gone")
                           for i, (name, pid) in enumerate(pids.items())))
    accepted = accepted_ids()
    before = sum(1 for r in results if r.status == "202" and r.finished < down_at)
    after = sum(1 for r in results if r.status == "202" and r.started > up_started)
    with open(os.path.join(lab.work, "outage-answers.json"), "w") as file:
        json.dump({"down_at": down_at, "up_started": up_started, "up_at": up_at,
                   "through_haproxy": [(r.chaos_id, r.started, r.finished, r.status) for r in results],
                   "straight_to_nodes": probes}, file)
    waited = wait_delivered(lab, record, accepted, 90)
    delivered = record.poll().received(accepted)
    explain_lost(lab, report, [chaos_id for chaos_id in accepted if chaos_id not in record.arrivals])
    report.check("every message accepted before, during and after the outage delivered (lost = 0)",
                 delivered == len(accepted), known_bug="outage-stuck-calls", detail=
                 "%d accepted (%d through HAProxy before the stop, %d after the start; %d straight to the nodes by API"
                 " or SMTP), %d delivered, lost %d, %d duplicates"
                 % (len(accepted), before, after, sum(1 for p in probes if p[5] in ("202", "250")), delivered,
                    len(accepted) - delivered, len(record.duplicates(accepted))))
    if waited is None:
        return
    # Every delivery must also be recorded: a node whose outcome writes stopped keeps its recipients leased
    # (renewed) and "queued" although the sink has them, and sends them all again when it restarts.
    try:
        wait_for("the queue to be empty", lambda: lab.pending() == 0, 60, 0.5)
        report.check("every delivery recorded in PostgreSQL after the outage (queue empty)", True)
    except TimeoutError:
        owners = lab.postgres.query(
            "SELECT coalesce(q.lease_owner::text, 'none'), count(*), min(m.created_at)::text FROM queue q"
            " JOIN messages m ON m.id = q.message_id GROUP BY 1 ORDER BY 2 DESC")
        arrived = sum(1 for row in lab.postgres.query(
            "SELECT m.subject FROM queue q JOIN messages m ON m.id = q.message_id")
                      if row[0].startswith("chaos ") and row[0][6:] in record.poll().arrivals)
        report.check("every delivery recorded in PostgreSQL after the outage (queue empty)", False,
                     known_bug="outage-stuck-calls", detail=
                     "queue rows 60 s later by lease owner: %s; %d of them had already arrived at the sinks"
                     % ("; ".join("%s: %s rows, oldest message %s" % tuple(row) for row in owners), arrived))


def scenario_tarpit(lab, report, count, tarpit_count):
    report.section("tarpit MX for %s while %d messages go to other domains" % (TARPIT_DOMAIN, count))
    record = SinkRecord(lab.record_path)
    sender = Sender(lab.api_port, lab.api_key, threads=16)

    def run(prefix, tarpitted, timeout):
        ids = ["%s-%d" % (prefix, index) for index in range(count)]
        items = [(chaos_id, recipient(index)) for index, chaos_id in enumerate(ids)]
        if tarpitted:
            # Tarpit mail first, then interleaved: it is claimed ahead of and among the other mail.
            slow = [("tp-slow-%d" % index, "r%d@%s" % (index, TARPIT_DOMAIN)) for index in range(tarpit_count)]
            head, rest = slow[:tarpit_count // 2], slow[tarpit_count // 2:]
            step = max(1, len(items) // max(1, len(rest)))
            mixed = list(head)
            for index, item in enumerate(items):
                mixed.append(item)
                if index % step == 0 and rest:
                    mixed.append(rest.pop())
            items = mixed + rest
        started = time.time()
        results = sender.send_all(items)
        refused = [r for r in results.values() if r.status not in ("202", "200")]
        waited = wait_delivered(lab, record, ids, timeout)
        record.poll()
        if waited is None:
            return ids, None, refused
        return ids, max(min(record.arrivals[i]) for i in ids) - started, refused

    base_ids, base_seconds, refused = run("tp-base", False, 180)
    report.check("without the tarpit: %d messages delivered" % count, base_seconds is not None and not refused,
                 ("in %.1f s (%.0f/s)" % (base_seconds, count / base_seconds)) if base_seconds else
                 "%d/%d after 180 s" % (record.received(base_ids), count))
    if base_seconds is None:
        return
    report.check("without the tarpit: no duplicates", not record.duplicates(base_ids),
                 "%d duplicates" % len(record.duplicates(base_ids)))
    # "Comparable": at most twice the time without the tarpit, plus 10 s for a noisy shared machine. The wait
    # stops there (plus a margin for the accepts): what has not arrived by then is late by definition.
    limit = 2 * base_seconds + 10
    fast_ids, fast_seconds, refused = run("tp-fast", True, limit + 15)
    report.check("with %d messages to the tarpit among them: the %d others delivered in a comparable time"
                 % (tarpit_count, count), fast_seconds is not None and fast_seconds <= limit and not refused,
                 ("%.1f s vs %.1f s without the tarpit (ratio %.2f; limit 2× + 10 s = %.0f s); %d connections to the tarpit"
                  % (fast_seconds, base_seconds, fast_seconds / base_seconds, limit, record.tarpit_connections))
                 if fast_seconds else "only %d/%d delivered after %.0f s (limit 2× + 10 s = %.0f s); %d connections to the tarpit"
                 % (record.received(fast_ids), count, limit + 15, limit, record.tarpit_connections),
                 known_bug="tarpit-other-domains")
    report.check("with the tarpit: no duplicates", not record.duplicates(fast_ids),
                 "%d duplicates" % len(record.duplicates(fast_ids)))
    tarpit_delivered = record.received(["tp-slow-%d" % index for index in range(tarpit_count)])
    cluster_limit = 10  # RELAY_MX_MAX_CONNECTIONS, held across all nodes in PostgreSQL
    report.check("the tarpit gets at most the cluster-wide per-MX connection limit (10, all nodes together) and "
                 "delivers nothing",
                 0 < record.tarpit_connections <= cluster_limit and tarpit_delivered == 0,
                 "%d connections, %d delivered" % (record.tarpit_connections, tarpit_delivered))


def scenario_throughput(relay, report, count, work_root, sink, node_counts=(1, 2, 3)):
    """A queue of `count` messages (filled by an API-only node with POST /v1/messages/batch) drained by 1, 2 and 3
    worker-only nodes, each run in a fresh lab with the same sinks. The rate is (count - 1) / (last delivery -
    first delivery), the deliveries' times being when their outcomes were written (recipients.updated_at)."""
    label = {"smtp-sink": "Postfix smtp-sink", "record": "the recording aiosmtpd sinks"}[sink]
    report.section("throughput: %d queued messages drained by 1, 2 and 3 worker nodes, to %s" % (count, label))
    rates = {}
    for workers in node_counts:
        work = tempfile.mkdtemp(prefix="n%d-%s-" % (workers, sink), dir=work_root)
        lab = Lab(relay, work, ["api"] + ["worker"] * workers, haproxy=False, sink=sink)
        ACTIVE.append(lab)
        try:
            lab.start(start_nodes=False)
            lab.start_nodes(lab.nodes[:1])
            lab.create_tenant()
            ids = ["tp%d-%d" % (workers, index) for index in range(count)]
            lablib.queue_batches(lab, [{"from": "chaos@" + SENDER_DOMAIN, "to": recipient(n), "subject": "chaos " + chaos_id,
                                        "text": "throughput", "headers": {"X-Chaos-Id": chaos_id}}
                                       for n, chaos_id in enumerate(ids)])
            peers = [process.pid for process in lab.processes]
            # PostgreSQL forks a backend per new connection: its processes are listed again at the end.
            cpu_before = (lablib.cpu_by_pid(peers), lablib.cpu_by_pid(lablib.postgres_pids(lab)))
            started = time.time()
            lab.start_nodes(lab.nodes[1:])

            try:
                wait_for("%d deliveries" % count, lambda: lablib.delivered_count(lab) == count, 900, 0.5)
            except TimeoutError:
                report.check("%d worker node(s): %d messages delivered" % (workers, count), False,
                             "%d/%d delivered after 900 s" % (lablib.delivered_count(lab), count))
                continue
            wall = time.time() - started
            cpu = (lablib.cpu_seconds([node.pid for node in lab.nodes[1:]]), lablib.cpu_seconds(peers, cpu_before[0]),
                   lablib.cpu_seconds(lablib.postgres_pids(lab), cpu_before[1]))
            first, last = lablib.delivery_span(lab)
            rates[workers] = (count - 1) / (last - first)
            attempts = lab.postgres.query("SELECT count(*), round(avg(duration_ms)) FROM attempts")[0]
            report.check("%d worker node(s): %d messages delivered" % (workers, count), int(attempts[0]) == count,
                         "first delivery %.1f s after the workers were started, last %.1f s after the first: "
                         "%.0f messages/s; %s attempts of %s ms on average; CPU over the %.0f s: workers %.1f s, "
                         "sinks and DNS %.1f s, PostgreSQL %.1f s (of %.0f core-seconds)"
                         % (first - started, last - first, rates[workers], attempts[0], attempts[1], wall, cpu[0],
                            cpu[1], cpu[2], wall * os.cpu_count()))
        finally:
            lab.close()
            ACTIVE.remove(lab)
    if 1 in rates:
        report.info("ratios to 1 node (%s): " % label
                    + ", ".join("%d nodes %.2f×" % (n, rates[n] / rates[1]) for n in sorted(rates)))


# ---------------------------------------------------------------------------------------------------------------

ACTIVE = []  # labs to close on exit


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--relay", required=True, help="path of the relay binary")
    parser.add_argument("--messages", type=int, default=10000, help="kill9: messages sent (default 10000)")
    parser.add_argument("--outage-seconds", type=int, default=30)
    parser.add_argument("--tarpit-messages", type=int, default=1000, help="tarpit: messages to the other domains")
    parser.add_argument("--throughput-messages", type=int, default=10000)
    parser.add_argument("--throughput-sinks", default="smtp-sink,record",
                        help="throughput: comma-separated sink kinds, smtp-sink and/or record (default both)")
    parser.add_argument("--keep", action="store_true", help="keep the work directory (logs) after a pass too")
    parser.add_argument("scenarios", nargs="*", help="kill9, outage, tarpit, throughput (default: kill9 outage tarpit)")
    args = parser.parse_args()
    scenarios = args.scenarios or ["kill9", "outage", "tarpit"]
    unknown = set(scenarios) - {"kill9", "outage", "tarpit", "throughput"}
    if unknown:
        parser.error("unknown scenario(s): " + ", ".join(sorted(unknown)))
    relay = os.path.realpath(args.relay)
    if not os.access(relay, os.X_OK):
        sys.exit("chaos: %s is not an executable relay binary (build it: swift build --product relay)" % relay)
    if not (shutil.which("haproxy") or os.access("/usr/sbin/haproxy", os.X_OK)):
        sys.exit("chaos: haproxy is missing (scripts/install-test-peers installs it)")

    def on_signal(number, _frame):
        raise SystemExit(128 + number)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    work_root = tempfile.mkdtemp(prefix="relay-chaos.")
    os.chmod(work_root, 0o755)
    report = Report()
    print("chaos: relay %s, work directory %s" % (relay, work_root), flush=True)
    try:
        correctness = [name for name in scenarios if name != "throughput"]
        if correctness:
            work = tempfile.mkdtemp(prefix="lab-", dir=work_root)
            lab = Lab(relay, work, [ALL_ROLES] * 3, extra_environment={"RELAY_WORKER_CONCURRENCY": "64"})
            ACTIVE.append(lab)
            started = time.monotonic()
            lab.start()
            lab.create_tenant()
            report.info("lab up in %.1f s: PostgreSQL :%d, dnsmasq :%d, sinks %s and tarpit %s on :%d, nodes %s, HAProxy :%d"
                        % (time.monotonic() - started, lab.postgres.port, lab.dns_port, ",".join(lablib.SINK_ADDRESSES),
                           lablib.TARPIT_ADDRESS, lab.mx_port,
                           ", ".join("%s :%d pid %d" % (n.name, n.http_port, n.pid) for n in lab.nodes),
                           lab.haproxy.http_port))
            for name in correctness:
                try:
                    if name == "kill9":
                        scenario_kill9(lab, report, args.messages)
                    elif name == "outage":
                        scenario_outage(lab, report, args.outage_seconds)
                    elif name == "tarpit":
                        scenario_tarpit(lab, report, args.tarpit_messages, 200)
                except (TimeoutError, RuntimeError) as error:
                    report.check("scenario %s ran to its end" % name, False, str(error))
        if "throughput" in scenarios:
            for sink in args.throughput_sinks.split(","):
                scenario_throughput(relay, report, args.throughput_messages, work_root, sink)
    finally:
        for lab in list(ACTIVE):
            lab.close()
    elapsed = time.monotonic() - report.started
    if report.failures or args.keep:
        print("\nchaos: logs kept in %s" % work_root)
    else:
        shutil.rmtree(work_root, ignore_errors=True)
    known = ", %d check(s) failed with a known bug: %s" % (len(report.known), ", ".join(
        "%s ×%d" % (name, report.known.count(name)) for name in sorted(set(report.known)))) if report.known else ""
    print("chaos: %s, %d check(s) failed%s, %.0f s" % ("FAILED" if report.failures else "passed", report.failures, known, elapsed))
    return 1 if report.failures else 0


if __name__ == "__main__":
    sys.exit(main())
