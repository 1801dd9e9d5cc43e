#!/usr/bin/env python3
"""A throwaway Postfix instance on loopback, for benchmarks: accept by SMTP, relay everything to one host.

    pf = PostfixInstance(work_dir="/tmp/x/postfix", smtpd_port=2525, relay_host="127.0.0.1", relay_port=2526)
    pf.start()                 # returns once smtpd answers on 127.0.0.1:smtpd_port
    ...                        # e.g. smtp-source -s 10 -m 5000 -l 5120 -f a@b.test -t user@d.test 127.0.0.1:2525
    pf.queue_count()           # messages in incoming + active + deferred + maildrop + hold
    pf.wait_until_empty(60)    # raises TimeoutError if the queue does not drain in time
    pf.delivered_count()       # "status=sent" lines in the instance's own log since start()
    pf.stop()                  # idempotent

Everything lives under work_dir: config/ (main.cf and a minimal master.cf written here), queue/, data/ and
postfix.log. Nothing under /etc is written (/etc/postfix/main.cf may be absent; the shared postfix-files and
dynamicmaps.cf there are only read). `postfix -c DIR start` is reserved for root and needs no
alternate_config_directories entry: that list in the default main.cf is only consulted by the set-gid commands
postqueue and postdrop, which this module never runs (queue_count() walks the queue directories instead). The instance listens on 127.0.0.1:smtpd_port only, logs
to its own file instead of syslog, and relays every message to [relay_host]:relay_port without DNS. Postfix's
durability is left as shipped (queue files are fsynced before a message is acknowledged).

Must run as root (postfix(1) refuses otherwise); needs the Debian postfix package (postfix user, postdrop group).

    python3 bench/postfix.py [MESSAGES]    # self-test against smtp-sink (needs smtp-source and smtp-sink)
"""
import grp
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

POSTFIX = "/usr/sbin/postfix"

# The queues a message can sit in until it is delivered or bounced (deferred is hashed into subdirectories).
MESSAGE_QUEUES = ("maildrop", "incoming", "active", "deferred", "hold")

# Debian's master.cf services, minus TLS, local delivery and the pipe examples; every chroot column is "n" so
# no chroot needs populating. Columns: service type private unpriv chroot wakeup maxproc command.
MASTER_CF = """\
{listen} inet n - n - - smtpd
pickup    unix  n - n 60    1 pickup
cleanup   unix  n - n -     0 cleanup
qmgr      unix  n - n 300   1 qmgr
rewrite   unix  - - n -     - trivial-rewrite
bounce    unix  - - n -     0 bounce
defer     unix  - - n -     0 bounce
trace     unix  - - n -     0 bounce
verify    unix  - - n -     1 verify
flush     unix  n - n 1000? 0 flush
proxymap  unix  - - n -     - proxymap
smtp      unix  - - n -     - smtp
relay     unix  - - n -     - smtp
showq     unix  n - n -     - showq
error     unix  - - n -     - error
retry     unix  - - n -     - error
discard   unix  - - n -     - discard
anvil     unix  - - n -     1 anvil
scache    unix  - - n -     1 scache
postlog   unix-dgram n - n - 1 postlogd
"""


class PostfixInstance:
    """One private Postfix instance under work_dir (see the module docstring)."""

    def __init__(self, work_dir, smtpd_port, relay_host="127.0.0.1", relay_port=25, process_limit=100,
                 extra_config=None):
        self.work_dir = os.path.abspath(work_dir)
        self.smtpd_port = int(smtpd_port)
        self.relay_host = relay_host
        self.relay_port = int(relay_port)
        self.process_limit = int(process_limit)
        self.extra_config = dict(extra_config or {})  # main.cf overrides, e.g. {"in_flow_delay": "0"}
        self.config_dir = os.path.join(self.work_dir, "config")
        self.queue_dir = os.path.join(self.work_dir, "queue")
        self.data_dir = os.path.join(self.work_dir, "data")
        self.log_file = os.path.join(self.work_dir, "postfix.log")
        self._log_offset = 0  # delivered_count() reads the log incrementally from here
        self._sent = 0

    # Configuration.

    def main_cf(self):
        """main.cf settings as an ordered dict (extra_config last, so it wins)."""
        settings = {
            # Silences the "backwards-compatible default settings" warnings (Debian's default level is 0).
            "compatibility_level": "3.6",
            "queue_directory": self.queue_dir,
            "data_directory": self.data_dir,
            "mail_owner": "postfix",
            "setgid_group": "postdrop",
            "syslog_name": "postfix-bench",
            # Log to our own file through postlogd (the postlog service) instead of syslog; postlogd only writes
            # under maillog_file_prefixes (default /var, /dev/stdout).
            "maillog_file": self.log_file,
            "maillog_file_prefixes": self.work_dir,
            # A fixed name: no dependence on the machine's hostname being fully qualified.
            "myhostname": "postfix-bench.localdomain",
            "mydomain": "localdomain",
            "myorigin": "$myhostname",
            # Nothing is local: every address is relayed to relayhost. Local delivery would fail, not deliver.
            "mydestination": "",
            "local_recipient_maps": "",
            "local_transport": "error:local delivery is disabled",
            "alias_maps": "",
            "alias_database": "",
            "relay_domains": "",
            "relayhost": "[%s]:%d" % (self.relay_host, self.relay_port),  # brackets: no MX lookup
            "smtp_dns_support_level": "disabled",
            "smtpd_peername_lookup": "no",
            # Loopback only, both ways (one inet_interfaces address also becomes the smtp client's source).
            "inet_interfaces": "127.0.0.1",
            "inet_protocols": "ipv4",
            "mynetworks": "127.0.0.0/8",
            "smtpd_relay_restrictions": "permit_mynetworks, reject",
            "smtpd_recipient_restrictions": "",
            "smtpd_sasl_auth_enable": "no",
            "smtpd_tls_security_level": "none",
            "smtp_tls_security_level": "none",
            # Reuse delivery connections (the on-demand cache is Postfix's default; stated to be sure).
            "smtp_connection_cache_on_demand": "yes",
            "default_process_limit": str(self.process_limit),
            # No per-client limits for the benchmark client (loopback is exempt anyway; explicit for clarity).
            "smtpd_client_connection_count_limit": "0",
            "smtpd_client_connection_rate_limit": "0",
            "smtpd_client_message_rate_limit": "0",
            "smtpd_client_recipient_rate_limit": "0",
            "biff": "no",
            "append_dot_mydomain": "no",
        }
        settings.update(self.extra_config)
        return settings

    def master_cf(self):
        return MASTER_CF.format(listen="127.0.0.1:%d" % self.smtpd_port)

    def _write_config(self):
        # The postfix command chdirs into queue_directory before anything else, so it must exist; it and the
        # config directory are root-owned 0755 as Postfix expects (postfix-script warns otherwise).
        for directory in (self.work_dir, self.config_dir, self.queue_dir):
            os.makedirs(directory, exist_ok=True)
        for directory in (self.work_dir, self.config_dir, self.queue_dir):
            os.chmod(directory, 0o755)
        # master and the daemons open data/ and queue/ after dropping to the postfix user, which must therefore
        # be able to traverse every ancestor (tempfile.mkdtemp makes 0700 directories: chmod those 0755).
        parent = os.path.dirname(self.work_dir)
        while True:
            if not os.stat(parent).st_mode & 0o001:
                raise RuntimeError("the postfix user cannot traverse %s (mode lacks o+x), an ancestor of %s"
                                   % (parent, self.work_dir))
            if parent == os.path.dirname(parent):
                break
            parent = os.path.dirname(parent)
        main = "".join("%s = %s\n" % item for item in self.main_cf().items())
        for name, text in (("main.cf", main), ("master.cf", self.master_cf())):
            path = os.path.join(self.config_dir, name)
            with open(path, "w") as f:
                f.write(text)
            os.chmod(path, 0o644)
            # Postfix re-reads a main.cf modified within the last second after sleeping 1 s (in case an editor is
            # still writing it); every program of `postfix start` would pay that. Back-date both files instead.
            stamp = time.time() - 10
            os.utime(path, (stamp, stamp))

    # Control.

    def _postfix(self, *args, check=True):
        # The postfix command exports MAIL_CONFIG=config_dir to postfix-script, master and every daemon, so the
        # whole instance reads our main.cf. An inherited MAIL_CONFIG or MAIL_DEBUG must not leak in.
        env = {k: v for k, v in os.environ.items() if k not in ("MAIL_CONFIG", "MAIL_DEBUG")}
        result = subprocess.run([POSTFIX, "-c", self.config_dir] + list(args), env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        if check and result.returncode != 0:
            raise RuntimeError("postfix %s failed (%d): %s\n%s" % (" ".join(args), result.returncode,
                                                                  result.stdout.strip(), self.log_tail()))
        return result

    def start(self, timeout=30.0):
        """Write the configuration, start the instance and return once smtpd answers with a 220 greeting."""
        if os.geteuid() != 0:
            raise RuntimeError("PostfixInstance needs root: postfix(1) is reserved for the superuser")
        if self.running():
            raise RuntimeError("a Postfix instance is already running in %s" % self.config_dir)
        self._write_config()
        # delivered_count() counts from here, so a reused work_dir does not count an earlier run's deliveries.
        self._log_offset = os.path.getsize(self.log_file) if os.path.exists(self.log_file) else 0
        self._sent = 0
        # "start" runs postfix-script check-fatal first: post-install create-missing makes the queue and data
        # directories with Postfix's owners and modes (postfix, postdrop for maildrop/public; only directories
        # flagged "c" in /etc/postfix/postfix-files, i.e. only ours), postsuper checks the queue, then master -w
        # waits until the master daemon has opened its sockets. "set-permissions" is avoided: it would also
        # chown/chmod the shared system files (/usr/sbin/postdrop, ...).
        self._postfix("start")
        self._wait_for_greeting(timeout)

    def _wait_for_greeting(self, timeout):
        deadline = time.monotonic() + timeout
        last_error = None
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.smtpd_port), timeout=5) as s:
                    s.settimeout(5)
                    banner = s.recv(512)
                    if banner.startswith(b"220"):
                        s.sendall(b"QUIT\r\n")
                        s.recv(512)
                        return
                    last_error = banner
            except OSError as e:
                last_error = e
            time.sleep(0.05)
        raise TimeoutError("Postfix smtpd on 127.0.0.1:%d not ready after %ss (%s)\n%s"
                           % (self.smtpd_port, timeout, last_error, self.log_tail()))

    def stop(self, timeout=30.0):
        """Stop the instance: `postfix stop`, then make sure the master and all its daemons are gone. Idempotent."""
        if self.running():
            # postfix-script stop sends SIGTERM and escalates to SIGKILL of master's process group after 5 s.
            self._postfix("stop", check=False)
        if not self._wait_gone(timeout):
            # Last resort, only for processes of this instance (matched by MAIL_CONFIG, see pids()).
            for pid in self.pids():
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            if not self._wait_gone(5):
                raise RuntimeError("Postfix processes survived SIGKILL: %s" % self.pids())

    def _wait_gone(self, timeout):
        deadline = time.monotonic() + timeout
        while self.pids():
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.05)
        return True

    def master_pid(self):
        """The master daemon's pid from its pid file, or None."""
        try:
            with open(os.path.join(self.queue_dir, "pid", "master.pid")) as f:
                return int(f.read().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def running(self):
        """Whether this instance's master daemon is alive."""
        pid = self.master_pid()
        return pid is not None and pid in self.pids()

    def pids(self):
        """Pids of every process of this instance (master and daemons), found by MAIL_CONFIG=config_dir in their
        environment. Their command lines do not name work_dir, so `pgrep -f work_dir` cannot find them."""
        wanted = b"MAIL_CONFIG=" + os.fsencode(self.config_dir)
        found = []
        for name in os.listdir("/proc"):
            if not name.isdigit():
                continue
            try:
                with open("/proc/%s/environ" % name, "rb") as f:
                    environ = f.read().split(b"\0")
            except OSError:
                continue  # gone, or a kernel thread
            if wanted in environ:
                found.append(int(name))
        return found

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.stop()

    # Observation.

    def queue_count(self):
        """Messages in the queue (maildrop, incoming, active, deferred, hold): a directory walk, no postqueue."""
        count = 0
        for queue in MESSAGE_QUEUES:
            # os.walk ignores directories that vanish mid-walk; queue files come and go all the time.
            for _, _, files in os.walk(os.path.join(self.queue_dir, queue)):
                count += len(files)
        return count

    def wait_until_empty(self, timeout=300.0, interval=0.05):
        """Poll queue_count() until it is 0; return the seconds waited, raise TimeoutError on timeout."""
        started = time.monotonic()
        while True:
            count = self.queue_count()
            if count == 0:
                return time.monotonic() - started
            if time.monotonic() - started >= timeout:
                raise TimeoutError("Postfix queue still holds %d messages after %ss" % (count, timeout))
            time.sleep(interval)

    def delivered_count(self):
        """Deliveries logged with status=sent since start(), read incrementally from the instance's log.
        postlogd writes asynchronously, so the count can trail an empty queue by a moment."""
        try:
            with open(self.log_file, "rb") as f:
                f.seek(self._log_offset)
                data = f.read()
        except FileNotFoundError:
            return self._sent
        end = data.rfind(b"\n") + 1  # whole lines only; a partial last line is read again next time
        self._sent += data[:end].count(b" status=sent ")
        self._log_offset += end
        return self._sent

    def log_tail(self, lines=30):
        try:
            with open(self.log_file, "rb") as f:
                f.seek(max(0, os.path.getsize(self.log_file) - 64 * 1024))
                return b"\n".join(f.read().splitlines()[-lines:]).decode(errors="replace")
        except OSError:
            return "(no log at %s)" % self.log_file


def _wait_for_port(port, timeout=10.0):
    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if time.monotonic() >= deadline:
                raise
            time.sleep(0.05)


def _self_test(messages, runs=2):
    """Relay `messages` 5 kB messages from smtp-source through the instance into smtp-sink, `runs` times over,
    reusing the same work_dir, and check that every message was delivered and nothing is left running."""
    smtpd_port, sink_port = 2525, 2526
    root = tempfile.mkdtemp(prefix="postfix-bench-")
    os.chmod(root, 0o755)  # mkdtemp's 0700 would keep the postfix user out (see _write_config)
    work_dir = os.path.join(root, "postfix")
    # As root, smtp-sink must drop privileges (-u); -c counts; 1000 is its listen backlog.
    sink = subprocess.Popen(["smtp-sink", "-u", "nobody", "-c", "127.0.0.1:%d" % sink_port, "1000"],
                            stdout=subprocess.DEVNULL)
    pf = PostfixInstance(work_dir, smtpd_port=smtpd_port, relay_host="127.0.0.1", relay_port=sink_port)
    ok = False
    try:
        _wait_for_port(sink_port)
        good_runs = 0
        for run in range(1, runs + 1):
            started = time.monotonic()
            pf.start()
            print("run %d: started in %.2fs: master pid %s, %d instance processes, pgrep -f work_dir finds %d"
                  % (run, time.monotonic() - started, pf.master_pid(), len(pf.pids()),
                     len(_pgrep(work_dir))))
            started = time.monotonic()
            subprocess.run(["smtp-source", "-s", "10", "-m", str(messages), "-l", "5120", "-f", "app@sender.test",
                            "-t", "user@d1.test", "127.0.0.1:%d" % smtpd_port], check=True)
            sent = time.monotonic() - started
            queued = pf.queue_count()
            drained = pf.wait_until_empty(timeout=600)
            deadline = time.monotonic() + 10  # the log trails the queue slightly
            while pf.delivered_count() < messages and time.monotonic() < deadline:
                time.sleep(0.05)
            delivered = pf.delivered_count()
            print("run %d: smtp-source %.2fs (%.0f msg/s); %d queued then, empty %.2fs later; %.2fs in all "
                  "(%.0f msg/s); delivered %d/%d"
                  % (run, sent, messages / sent, queued, drained, sent + drained, messages / (sent + drained),
                     delivered, messages))
            started = time.monotonic()
            pf.stop()
            left, pgrep = pf.pids(), _pgrep(work_dir)
            print("run %d: stopped in %.2fs; instance processes left: %s; pgrep -f work_dir: %s"
                  % (run, time.monotonic() - started, left or "none", pgrep or "none"))
            good_runs += delivered == messages and not left and not pgrep
        for name in ("queue", "queue/maildrop", "queue/public", "queue/active", "queue/pid", "data"):
            st = os.stat(os.path.join(work_dir, name))
            print("  %-15s %s:%s %o" % (name, pwd.getpwuid(st.st_uid).pw_name, grp.getgrgid(st.st_gid).gr_name,
                                        st.st_mode & 0o7777))
        ok = good_runs == runs
    finally:
        pf.stop()
        sink.terminate()
        sink.wait()
        if ok:
            shutil.rmtree(root)
        else:
            print("kept %s for inspection" % root)
    print("OK" if ok else "FAILED")
    return ok


def _pgrep(pattern):
    return subprocess.run(["pgrep", "-f", pattern], stdout=subprocess.PIPE, text=True).stdout.split()


if __name__ == "__main__":
    sys.exit(0 if _self_test(int(sys.argv[1]) if len(sys.argv) > 1 else 2000) else 1)
