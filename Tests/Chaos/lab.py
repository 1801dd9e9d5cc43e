"""The loopback lab of the chaos suite: a throwaway PostgreSQL, dnsmasq, the MX peers (peers.py), Relay nodes
and HAProxy with a configuration generated from deploy/haproxy/haproxy.cfg on free ports.

Everything listens on loopback (127.0.0.1 and 127.42.0.x), on ports chosen free at start, and everything
started is stopped by `Lab.close()` (the driver calls it from `finally` and from its signal handlers).
"""
import base64
import ctypes
import http.client as httpclient
import json
import os
import re
import shutil
import signal
import smtplib
import socket
import ssl
import subprocess
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))

SINK_ADDRESSES = ["127.42.0.11", "127.42.0.12", "127.42.0.13", "127.42.0.14"]
TARPIT_ADDRESS = "127.42.0.20"
SINK_DOMAINS = ["d%d.chaos.test" % (index + 1) for index in range(len(SINK_ADDRESSES))]
TARPIT_DOMAIN = "tarpit.chaos.test"
SENDER_DOMAIN = "sender.chaos.test"
ADMIN_TOKEN = "chaos-admin"
ALL_ROLES = "api,smtp,worker,inbound"


def free_port(hosts=("127.0.0.1",)):
    """A TCP port that is free on every one of `hosts` right now."""
    for _ in range(100):
        probe = socket.socket()
        probe.bind((hosts[0], 0))
        port = probe.getsockname()[1]
        probe.close()
        try:
            for host in hosts:
                for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
                    test = socket.socket(socket.AF_INET, kind)
                    try:
                        test.bind((host, port))
                    finally:
                        test.close()
            return port
        except OSError:
            continue
    raise RuntimeError("no free port found")


def wait_for(what, condition, timeout, interval=0.1):
    """Polls `condition` until it returns a true value (returned) or `timeout` seconds pass (raises)."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError("timed out after %.0f s waiting for %s" % (timeout, what))
        time.sleep(interval)


def _die_with_parent():
    # The child gets SIGTERM if the driver dies without cleaning up (kill -9 of the driver).
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)
    except OSError:
        pass


def request(port, method, path, body=None, token=None, headers=None, timeout=20, host="127.0.0.1"):
    """One HTTP request on a new connection: (status, parsed JSON or raw text)."""
    connection = httpclient.HTTPConnection(host, port, timeout=timeout)
    try:
        all_headers = dict(headers or {})
        if token:
            all_headers["Authorization"] = "Bearer " + token
        payload = None
        if body is not None:
            payload = json.dumps(body).encode()
            all_headers["Content-Type"] = "application/json"
        connection.request(method, path, body=payload, headers=all_headers)
        response = connection.getresponse()
        data = response.read()
        try:
            return response.status, json.loads(data)
        except ValueError:
            return response.status, data.decode(errors="replace")
    finally:
        connection.close()


def http_status(port, path, timeout=2):
    try:
        return request(port, "GET", path, timeout=timeout)[0]
    except OSError:
        return None


def _accepts(host, port):
    try:
        socket.create_connection((host, port), timeout=1).close()
        return True
    except OSError:
        return False


class Postgres:
    """A throwaway PostgreSQL cluster (initdb/pg_ctl; as root through `runuser -u postgres --`)."""

    def __init__(self, work):
        self.directory = os.path.join(work, "pg")
        self.socket_directory = os.path.join(work, "pgsock")
        self.log = os.path.join(work, "pg.log")
        self.port = free_port()
        self.bin = sorted(
            (os.path.join("/usr/lib/postgresql", version, "bin") for version in os.listdir("/usr/lib/postgresql")),
            key=lambda path: [int(part) for part in re.findall(r"\d+", path)])[-1]
        self.prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        self.url = "postgres://relay@127.0.0.1:%d/relay" % self.port

    def _run(self, *arguments):
        subprocess.run(self.prefix + [os.path.join(self.bin, arguments[0])] + list(arguments[1:]), check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def init(self):
        for directory in (self.directory, self.socket_directory):
            os.makedirs(directory)
            if os.geteuid() == 0:
                shutil.chown(directory, "postgres")
        self._run("initdb", "-D", self.directory, "-U", "relay", "--auth=trust", "-E", "UTF8", "--locale=C", "--no-sync")
        if os.geteuid() == 0:
            open(self.log, "a").close()
            shutil.chown(self.log, "postgres")
        self.start()
        self._run("createdb", "-h", "127.0.0.1", "-p", str(self.port), "-U", "relay", "relay")

    def start(self):
        # fsync=off: a throwaway server on a shared disk; a process crash (kill -9, stop -m immediate) loses
        # nothing committed with it, only a machine crash would. The suite tests Relay, not the disk.
        self._run("pg_ctl", "start", "-w", "-D", self.directory, "-l", self.log, "-o",
                  "-p %d -k %s -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=300"
                  % (self.port, self.socket_directory))

    def stop(self, mode="fast"):
        self._run("pg_ctl", "stop", "-w", "-D", self.directory, "-m", mode)

    def query(self, sql):
        """Runs one SQL statement with psql; its rows as lists of strings."""
        output = subprocess.run(
            [os.path.join(self.bin, "psql"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "relay", "-d", "relay",
             "-AtX", "-F", "\t", "-c", sql], check=True, capture_output=True, text=True).stdout
        return [line.split("\t") for line in output.splitlines() if line]

    def close(self):
        if os.path.exists(os.path.join(self.directory, "postmaster.pid")):
            try:
                self.stop("immediate")
            except subprocess.CalledProcessError:
                pass


class Node:
    """One `relay serve` process with its own ports; restartable on the same ports."""

    def __init__(self, lab, index, roles):
        self.lab = lab
        self.index = index
        self.name = "relay%d" % index
        self.roles = roles
        self.http_port = free_port()
        self.submission_port = free_port()
        self.submissions_port = free_port()
        self.inbound_port = free_port()
        self.directory = os.path.join(lab.work, self.name)
        os.makedirs(self.directory)
        self.log_path = os.path.join(self.directory, "log")
        self.process = None
        self.starts = 0

    @property
    def pid(self):
        return self.process.pid if self.process else None

    def environment(self):
        lab = self.lab
        env = dict(os.environ)
        env.update({
            "DATABASE_URL": lab.postgres.url,
            "RELAY_SECRET_KEY": lab.secret_key,
            "RELAY_ADMIN_TOKEN": ADMIN_TOKEN,
            "RELAY_HOSTNAME": "relay.chaos.test",
            "RELAY_DATA_DIR": self.directory,
            "RELAY_DNS_SERVERS": "127.0.0.1:%d" % lab.dns_port,
            "RELAY_MX_PORT": str(lab.mx_port),
            "RELAY_ROLES": self.roles,
            "RELAY_HTTP_ADDR": "127.0.0.1:%d" % self.http_port,
            "RELAY_SUBMISSION_ADDR": "127.0.0.1:%d" % self.submission_port,
            "RELAY_SUBMISSIONS_ADDR": "127.0.0.1:%d" % self.submissions_port,
            "RELAY_INBOUND_ADDR": "127.0.0.1:%d" % self.inbound_port,
            "RELAY_PROXY_PROTOCOL": "true",
            "RELAY_REQUIRE_VERIFIED_DOMAINS": "false",
            "RELAY_RETRY_INITIAL": "1s",
            "RELAY_RETRY_MAX": "2s",
            "RELAY_LEASE_TIME": "10s",
            "RELAY_LOG_LEVEL": os.environ.get("CHAOS_RELAY_LOG_LEVEL", "warning"),
        })
        env.update(lab.extra_environment)
        return env

    def start(self):
        self.starts += 1
        log = open(self.log_path, "a")
        log.write("=== start %d at %s\n" % (self.starts, time.strftime("%H:%M:%S")))
        log.flush()
        self.process = subprocess.Popen([self.lab.relay, "serve"], env=self.environment(), stdout=log,
                                        stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                        preexec_fn=_die_with_parent)
        log.close()

    def running(self):
        return self.process is not None and self.process.poll() is None

    def ready(self):
        if not self.running():
            raise RuntimeError("%s exited with status %s; log: %s" % (self.name, self.process.returncode, self.log_path))
        return http_status(self.http_port, "/readyz") == 200

    def kill9(self):
        self.process.send_signal(signal.SIGKILL)
        return self.process.wait(timeout=10)

    def stop(self):
        if self.running():
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


class HAProxy:
    """HAProxy with deploy/haproxy/haproxy.cfg, its addresses moved to free ports and the lab's nodes."""

    def __init__(self, lab):
        self.lab = lab
        self.http_port = free_port()
        self.stats_port = free_port()
        self.submission_port = free_port()
        self.submissions_port = free_port()
        self.inbound_port = free_port()
        self.config_path = os.path.join(lab.work, "haproxy.cfg")
        self.log_path = os.path.join(lab.work, "haproxy.log")
        self.process = None

    def config(self):
        with open(os.path.join(ROOT, "deploy", "haproxy", "haproxy.cfg")) as file:
            text = file.read()
        ports = {8080: self.http_port, 8404: self.stats_port, 587: self.submission_port,
                 465: self.submissions_port, 25: self.inbound_port}
        for node in self.lab.nodes:
            ports[18080 + node.index] = node.http_port
            ports[15870 + node.index] = node.submission_port
            ports[14650 + node.index] = node.submissions_port
            ports[10250 + node.index] = node.inbound_port
        used = set()

        def move(match):
            port = int(match.group(2))
            if port not in ports:
                raise RuntimeError("deploy/haproxy/haproxy.cfg uses port %d, which the chaos lab does not map" % port)
            used.add(port)
            return match.group(1) + str(ports[port])

        lines = []
        for line in text.splitlines():
            stripped = line.strip()
            if stripped.startswith("#") or not stripped:
                continue
            # The lab runs HAProxy as the invoking user on unprivileged ports.
            if stripped.startswith(("user ", "group ")):
                continue
            # Servers the lab does not run (the throughput runs have fewer nodes) are left out.
            server = re.match(r"server relay(\d+) ", stripped)
            if server and int(server.group(1)) not in [node.index for node in self.lab.nodes]:
                continue
            lines.append(re.sub(r"(127\.0\.0\.1:|\bport )(\d+)", move, line))
        return "\n".join(lines) + "\n"

    def start(self):
        with open(self.config_path, "w") as file:
            file.write(self.config())
        log = open(self.log_path, "a")
        # -n: a maxconn this process's file limit allows (the file says 20000 for a real host), as lab.sh does.
        self.process = subprocess.Popen([shutil.which("haproxy") or "/usr/sbin/haproxy", "-db", "-n", "4000", "-f", self.config_path], stdout=log,
                                        stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                        preexec_fn=_die_with_parent)
        log.close()

    def states(self):
        """{(backend, server): status} from the stats page's CSV."""
        try:
            status, text = request(self.stats_port, "GET", "/;csv", timeout=2)
        except OSError:
            return {}
        if status != 200 or not isinstance(text, str):
            return {}
        result = {}
        for row in text.splitlines():
            fields = row.split(",")
            if len(fields) > 17 and not row.startswith("#"):
                result[(fields[0], fields[1])] = fields[17]
        return result

    def server_states(self, server):
        return [state for (backend, name), state in self.states().items()
                if name == server and backend.endswith("_nodes")]

    def all_up(self):
        states = self.states()
        wanted = [(backend, node.name) for node in self.lab.nodes for backend in
                  ("relay_http_nodes", "smtp_submission_nodes", "smtp_submissions_nodes", "smtp_inbound_nodes")]
        return all(states.get(key) == "UP" for key in wanted)

    def close(self):
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)


class Lab:
    """PostgreSQL, dnsmasq, the MX peers, nodes and (optionally) HAProxy, in a fresh work directory."""

    def __init__(self, relay, work, node_roles, haproxy=True, extra_environment=None, sink="record"):
        """`sink`: "record" (peers.py: aiosmtpd sinks recording each X-Chaos-Id, and the tarpit) or "smtp-sink"
        (Postfix's smtp-sink on the sink addresses: C, PIPELINING, records nothing; for throughput)."""
        self.relay = relay
        self.sink = sink
        self.work = work
        os.chmod(work, 0o755)
        self.secret_key = base64.b64encode(os.urandom(32)).decode()
        self.extra_environment = extra_environment or {}
        self.processes = []
        self.postgres = Postgres(work)
        self.dns_port = free_port()
        self.mx_port = free_port(tuple(SINK_ADDRESSES + [TARPIT_ADDRESS]))
        self.record_path = os.path.join(work, "sink.record")
        self.nodes = [Node(self, index + 1, roles) for index, roles in enumerate(node_roles)]
        self.haproxy = HAProxy(self) if haproxy else None
        self.api_key = None
        self.tenant_id = None

    # -- start -----------------------------------------------------------------------------------------------

    def start(self, start_nodes=True):
        self.postgres.init()
        self._start_dns()
        self._start_peers()
        if start_nodes:
            self.start_nodes(self.nodes)
        if self.haproxy:
            self.haproxy.start()
            wait_for("HAProxy to mark every node UP", self.haproxy.all_up, 30, 0.2)

    def start_nodes(self, nodes, timeout=90):
        for node in nodes:
            node.start()
        for node in nodes:
            wait_for("%s to be ready" % node.name, node.ready, timeout, 0.1)

    def _spawn(self, arguments, log_name):
        log = open(os.path.join(self.work, log_name), "a")
        process = subprocess.Popen(arguments, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                   preexec_fn=_die_with_parent)
        log.close()
        self.processes.append(process)
        return process

    def _start_dns(self):
        dnsmasq = shutil.which("dnsmasq") or "/usr/sbin/dnsmasq"
        records = []
        for domain, address in zip(SINK_DOMAINS + [TARPIT_DOMAIN], SINK_ADDRESSES + [TARPIT_ADDRESS]):
            records += ["--mx-host=%s,mx.%s,10" % (domain, domain), "--host-record=mx.%s,%s" % (domain, address)]
        user = "root" if os.geteuid() == 0 else os.environ.get("USER", "nobody")
        self._spawn([dnsmasq, "--keep-in-foreground", "--conf-file=/dev/null", "--no-resolv", "--no-hosts",
                     "--pid-file=%s" % os.path.join(self.work, "dnsmasq.pid"), "--user=%s" % user,
                     "--port=%d" % self.dns_port, "--listen-address=127.0.0.1", "--bind-interfaces",
                     "--log-facility=-", "--local-ttl=300", "--local=/test/"] + records, "dnsmasq.log")
        wait_for("dnsmasq to answer", self._dns_answers, 10)

    def _dns_answers(self):
        # A minimal A query for mx.d1.chaos.test; any answer with our id means dnsmasq is up.
        query = b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00"
        for label in ("mx." + SINK_DOMAINS[0]).split("."):
            query += bytes([len(label)]) + label.encode()
        query += b"\x00\x00\x01\x00\x01"
        probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        probe.settimeout(0.5)
        try:
            probe.sendto(query, ("127.0.0.1", self.dns_port))
            return probe.recv(512)[:2] == b"\x12\x34"
        except OSError:
            return False
        finally:
            probe.close()

    def _start_peers(self):
        if self.sink == "smtp-sink":
            binary = shutil.which("smtp-sink") or "/usr/sbin/smtp-sink"
            user = ["-u", "nobody"] if os.geteuid() == 0 else []
            for address in SINK_ADDRESSES:
                self._spawn([binary] + user + ["-m", "1000", "%s:%d" % (address, self.mx_port), "1024"], "smtp-sink.log")
            for address in SINK_ADDRESSES:
                wait_for("smtp-sink on %s" % address, lambda: _accepts(address, self.mx_port), 10)
            return
        arguments = [os.environ.get("PYTHON", "python3"), os.path.join(HERE, "peers.py"), "--port", str(self.mx_port),
                     "--record", self.record_path]
        for address in SINK_ADDRESSES:
            arguments += ["--sink", address]
        arguments += ["--tarpit", TARPIT_ADDRESS]
        log = open(os.path.join(self.work, "peers.log"), "a")
        process = subprocess.Popen(arguments, stdout=subprocess.PIPE, stderr=log, stdin=subprocess.DEVNULL,
                                   text=True, preexec_fn=_die_with_parent)
        log.close()
        self.processes.append(process)
        if process.stdout.readline().strip() != "READY":
            raise RuntimeError("the MX peers did not start; see %s/peers.log" % self.work)

    # -- API -------------------------------------------------------------------------------------------------

    @property
    def api_port(self):
        """Where API clients go: HAProxy when the lab has it, else the first node with the api role."""
        if self.haproxy:
            return self.haproxy.http_port
        return next(node.http_port for node in self.nodes if "api" in node.roles.split(","))

    def create_tenant(self):
        status, body = request(self.api_port, "POST", "/admin/tenants", {"name": "chaos"}, token=ADMIN_TOKEN)
        if status != 201:
            raise RuntimeError("POST /admin/tenants answered %s: %s" % (status, body))
        self.api_key = body["api_key"]
        self.tenant_id = body["id"]
        status, body = request(self.api_port, "POST", "/v1/domains", {"name": SENDER_DOMAIN}, token=self.api_key)
        if status != 201:
            raise RuntimeError("POST /v1/domains answered %s: %s" % (status, body))

    def pending(self):
        """Recipients not in a final state (queued or deferred), from PostgreSQL."""
        return int(self.postgres.query("SELECT count(*) FROM recipients WHERE status IN ('queued', 'deferred')")[0][0])

    # -- stop ------------------------------------------------------------------------------------------------

    def close(self):
        if self.haproxy:
            try:
                self.haproxy.close()
            except Exception:
                pass
        for node in self.nodes:
            if node.running():
                node.process.kill()
                node.process.wait()
        for process in self.processes:
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
        self.postgres.close()


def queue_batches(lab, messages, per_batch=500):
    """Queues `messages` (POST /v1/messages/batch bodies' items) through the lab's API, `per_batch` at a time."""
    for offset in range(0, len(messages), per_batch):
        status, body = request(lab.api_port, "POST", "/v1/messages/batch", {"messages": messages[offset:offset + per_batch]},
                               token=lab.api_key, timeout=300)
        if status not in (200, 202, 207):
            raise RuntimeError("batch send answered %s: %s" % (status, str(body)[:300]))


def delivered_count(lab):
    return int(lab.postgres.query("SELECT count(*) FROM recipients WHERE status = 'delivered'")[0][0])


def delivery_span(lab):
    """(first, last) time an outcome was written (recipients.updated_at), as epoch seconds."""
    first, last = lab.postgres.query(
        "SELECT extract(epoch FROM min(updated_at)), extract(epoch FROM max(updated_at)) FROM recipients")[0]
    return float(first), float(last)


def cpu_by_pid(pids):
    """{pid: user + system CPU seconds used so far} for the processes `pids` that still exist (from /proc)."""
    tick = os.sysconf("SC_CLK_TCK")
    result = {}
    for pid in pids:
        try:
            with open("/proc/%d/stat" % pid) as file:
                fields = file.read().rsplit(")", 1)[1].split()
            result[pid] = (int(fields[11]) + int(fields[12])) / tick
        except (OSError, IndexError, ValueError):
            pass
    return result


def cpu_seconds(pids, since=None):
    """CPU seconds used by `pids`, minus what each had used at `since` (a cpu_by_pid result), if given."""
    since = since or {}
    return sum(value - since.get(pid, 0.0) for pid, value in cpu_by_pid(pids).items())


def postgres_pids(lab):
    """The postmaster of the lab's PostgreSQL and all its children (backends, writers)."""
    try:
        with open(os.path.join(lab.postgres.directory, "postmaster.pid")) as file:
            postmaster = int(file.readline())
    except (OSError, ValueError):
        return []
    pids = [postmaster]
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open("/proc/%s/stat" % entry) as file:
                    if int(file.read().rsplit(")", 1)[1].split()[1]) == postmaster:
                        pids.append(int(entry))
            except (OSError, IndexError, ValueError):
                pass
    return pids


class SinkRecord:
    """Reads the peers' record file incrementally: copies per X-Chaos-Id and their arrival times."""

    def __init__(self, path):
        self.path = path
        self.offset = 0
        self.arrivals = {}  # id → [unix time, …]
        self.tarpit_connections = 0

    def poll(self):
        try:
            with open(self.path, "rb") as file:
                file.seek(self.offset)
                chunk = file.read()
        except FileNotFoundError:
            return self
        complete = chunk.rfind(b"\n") + 1
        self.offset += complete
        for line in chunk[:complete].decode().splitlines():
            at, what, _ = line.split(" ", 2)
            if what == "TARPIT":
                self.tarpit_connections += 1
            else:
                self.arrivals.setdefault(what, []).append(float(at))
        return self

    def received(self, ids):
        """How many of `ids` arrived at least once."""
        return sum(1 for chaos_id in ids if chaos_id in self.arrivals)

    def duplicates(self, ids):
        """The ids among `ids` that arrived more than once."""
        return [chaos_id for chaos_id in ids if len(self.arrivals.get(chaos_id, ())) > 1]


class ProxiedSMTP(smtplib.SMTP):
    """smtplib.SMTP that opens the connection with a PROXY protocol v1 header, as HAProxy would (the nodes run
    with RELAY_PROXY_PROTOCOL=true)."""

    def _get_socket(self, host, port, timeout):
        sock = socket.create_connection((host, port), timeout)
        local = sock.getsockname()
        sock.sendall(("PROXY TCP4 %s %s %d %d\r\n" % (local[0], host, local[1], port)).encode())
        return sock


def smtp_submit(host, port, api_key, chaos_id, to, proxy_header=True, timeout=20, session=None):
    """Submits one message over SMTP (STARTTLS, AUTH PLAIN): ("250", None) when accepted, else (code, stage)
    of the first refusal, ("timeout", stage) or ("error:…", stage). With `session` (an authenticated client
    from `smtp_session`) only the transaction runs on it."""
    stage = "connect"
    client = session
    try:
        if client is None:
            client = (ProxiedSMTP if proxy_header else smtplib.SMTP)(host, port, timeout=timeout)
            stage = "ehlo"
            client.ehlo("chaos.test")
            stage = "starttls"
            context = ssl.create_default_context()
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
            client.starttls(context=context)
            client.ehlo("chaos.test")
            stage = "auth"
            client.login("chaos", api_key)
        stage = "mail"
        code, _ = client.mail("chaos@" + SENDER_DOMAIN)
        if code != 250:
            return str(code), stage
        stage = "rcpt"
        code, _ = client.rcpt(to)
        if code not in (250, 251):
            return str(code), stage
        stage = "data"
        message = ("From: chaos@%s\r\nTo: %s\r\nSubject: chaos %s\r\nX-Chaos-Id: %s\r\n\r\nsubmitted over SMTP\r\n"
                   % (SENDER_DOMAIN, to, chaos_id, chaos_id))
        code, _ = client.data(message.encode())
        return str(code), (None if code == 250 else stage)
    except smtplib.SMTPResponseException as error:
        return str(error.smtp_code), stage
    except (socket.timeout, TimeoutError):
        return "timeout", stage
    except (OSError, smtplib.SMTPException) as error:
        return "error:%s" % type(error).__name__, stage
    finally:
        if session is None and client is not None:
            try:
                client.close()
            except Exception:
                pass


def smtp_session(host, port, api_key, timeout=20):
    """An SMTP client connected (with a PROXY v1 header), under STARTTLS and authenticated."""
    client = ProxiedSMTP(host, port, timeout=timeout)
    client.ehlo("chaos.test")
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    client.starttls(context=context)
    client.ehlo("chaos.test")
    client.login("chaos", api_key)
    return client
