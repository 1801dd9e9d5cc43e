#!/usr/bin/env python3
"""Checks Relay's dashboard in headless Chromium against the API it reads.

  dashboard_check.py --base-url http://127.0.0.1:PORT --token rly_... --out DIR
                     [--recipient ADDR] [--admin-token T]

Signs in (after checking that a bad key is refused), compares every headline figure, the chart bars and the
error / provider / domain tables with what /v1/stats returns for the exact query the page made
(body[data-stats-query]), for the 7-day and the 24-hour range. With --recipient, searches the delivery log,
opens the first message and looks for a server reply line in its SMTP transcript. Saves
DIR/dashboard-laptop.png (1366 wide, full height) and DIR/dashboard-phone.png (390x844) and checks the phone
layout has no horizontal overflow. With --admin-token, signs out, signs in as the operator and checks the
admin queue fields. Prints one line per check; exits 0 when all pass, 1 otherwise."""
import argparse
import json
import math
import os
import sys
import urllib.error
import urllib.request
from datetime import datetime, timedelta
from decimal import Decimal, ROUND_HALF_UP
from urllib.parse import parse_qs, urlencode

from selenium import webdriver
from selenium.common.exceptions import TimeoutException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select, WebDriverWait

WAIT_SECONDS = 20
ADMIN_QUEUE_KEYS = ["due", "scheduled", "in_flight", "total", "oldest_queued_age_seconds", "oldest_due_age_seconds"]


class CheckFailed(Exception):
    """A failure not yet printed; main prints it as "run stopped"."""


class StopRun(Exception):
    """A failed check already printed, that later checks depend on."""


class Checks:
    def __init__(self):
        self.failed = 0

    def record(self, name, ok, detail=""):
        print("%s %s%s" % ("PASS" if ok else "FAIL", name, (": " + detail) if detail else ""), flush=True)
        if not ok:
            self.failed += 1
        return ok

    def require(self, name, ok, detail=""):
        """Like record, but stops the run: later checks depend on this one."""
        if not self.record(name, ok, detail):
            raise StopRun(name)


# ---------- the page's formatting, mirrored (JS toFixed rounds exact ties up; Python's format rounds to even) ----------

def to_fixed1(x):
    return str(Decimal(x).quantize(Decimal("0.1"), rounding=ROUND_HALF_UP))


def fmt_percent(rate):
    return "—" if rate is None else to_fixed1(rate * 100) + "%"


def fmt_count(n):
    if n is None:
        return "—"
    if isinstance(n, float) and n.is_integer():
        n = int(n)
    return str(n)


def fmt_duration(ms):
    if ms is None:
        return "—"
    if ms < 1000:
        return "%d ms" % math.floor(ms + 0.5)
    if ms < 60000:
        return to_fixed1(ms / 1000) + " s"
    if ms < 3600000:
        return to_fixed1(ms / 60000) + " min"
    return to_fixed1(ms / 3600000) + " h"


def expected_figures(stats):
    totals, timing = stats.get("totals") or {}, stats.get("delivery_time_ms") or {}
    figures = {"delivery-rate": fmt_percent(stats.get("delivery_rate")), "bounce-rate": fmt_percent(stats.get("bounce_rate"))}
    for key in ["accepted", "delivered", "deferred", "bounced", "failed", "suppressed", "complained"]:
        figures["total-" + key] = fmt_count(totals.get(key))
    for key in ["p50", "p95", "p99"]:
        figures[key] = fmt_duration(timing.get(key))
    return figures


def breakdown_cells(name, row):
    return [name] + [fmt_count(row.get(k)) for k in ["delivered", "bounced", "deferred", "failed"]] + \
        [fmt_percent(row.get("delivery_rate")), fmt_percent(row.get("bounce_rate"))]


# ---------- browser and API plumbing ----------

def make_driver():
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for arg in ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", "--hide-scrollbars", "--window-size=1366,900"]:
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service(executable_path="/usr/bin/chromedriver"), options=options)


def api_get(base_url, token, path):
    request = urllib.request.Request(base_url + path, headers={"Authorization": "Bearer " + token, "Accept": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=WAIT_SECONDS) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as err:
        raise CheckFailed("GET %s -> HTTP %d %s" % (path, err.code, err.read()[:300]))


def wait_for(driver, what, condition):
    try:
        return WebDriverWait(driver, WAIT_SECONDS, poll_frequency=0.1).until(lambda d: condition(d))
    except TimeoutException:
        state = driver.execute_script("return document.body && document.body.dataset.state")
        raise CheckFailed("timed out after %ds waiting for %s (body data-state=%r)" % (WAIT_SECONDS, what, state))


def js(driver, script, *args):
    return driver.execute_script(script, *args)


def set_viewport(driver, width, height):
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                           {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False})


# One synchronous read of everything the stats checks compare, so an auto-refresh cannot interleave.
SNAPSHOT_JS = """
const text = (sel) => [...document.querySelectorAll(sel)];
const cells = (tr) => [...tr.cells].map((td) => td.textContent);
const figures = {};
text('[data-testid]').forEach((n) => { if (n.classList.contains('value')) figures[n.dataset.testid] = n.textContent; });
const queue = {};
text('[data-testid^="queue-"]').forEach((n) => { queue[n.dataset.testid.slice(6)] = n.textContent; });
return {
  state: document.body.dataset.state, query: document.body.dataset.statsQuery || '', figures, queue,
  bars: text('svg[data-testid="series-chart"] g[data-testid="series-bar"]').length,
  charts: text('svg[data-testid="series-chart"]').length,
  errors: text('tr[data-testid="error-row"]').map(cells),
  providers: text('tr[data-testid="provider-row"]').map(cells),
  domains: text('tr[data-testid="domain-row"]').map(cells),
};
"""


def wait_ready(driver, what, bucket=None):
    def ready(d):
        s = js(d, "return [document.body.dataset.state, document.body.dataset.statsQuery || '']")
        if s[0] == "error":
            raise CheckFailed("page shows an error: " + js(d, "return document.getElementById('stats-error').textContent"))
        return s[0] == "ready" and (bucket is None or ("bucket=" + bucket) in s[1])
    wait_for(driver, what, ready)


def check_stats(driver, checks, base_url, token, admin, label):
    """Compares the rendered stats with the API's answer to the same query."""
    snap = js(driver, SNAPSHOT_JS)
    query = snap["query"]
    checks.require(label + " stats query exposed", bool(query), query)
    stats = api_get(base_url, token, ("/admin/stats?" if admin else "/v1/stats?") + query)
    expected = expected_figures(stats)
    wrong = {k: (snap["figures"].get(k), v) for k, v in expected.items() if snap["figures"].get(k) != v}
    checks.record(label + " figures", not wrong,
                  ("shown vs api: %r" % wrong) if wrong else ", ".join("%s=%s" % kv for kv in expected.items()))
    series = stats.get("series") or []
    checks.record(label + " series bars", snap["charts"] == 1 and snap["bars"] == len(series),
                  "%d bars, %d buckets" % (snap["bars"], len(series)))
    want_errors = [[fmt_count(e.get("code")), e.get("enhanced") or "—", e.get("sample") or "", fmt_count(e.get("count"))]
                   for e in stats.get("top_errors") or []]
    checks.record(label + " error rows", snap["errors"] == want_errors,
                  "%d rows" % len(want_errors) if snap["errors"] == want_errors else "shown %r, api %r" % (snap["errors"], want_errors))
    want_providers = [breakdown_cells(p.get("provider"), p) for p in stats.get("providers") or []]
    checks.record(label + " provider rows", snap["providers"] == want_providers,
                  ", ".join(r[0] for r in want_providers) if snap["providers"] == want_providers
                  else "shown %r, api %r" % (snap["providers"], want_providers))
    want_domains = [breakdown_cells(d.get("domain"), d) for d in stats.get("domains") or []]
    shown_domains = [row[:7] for row in snap["domains"]]
    checks.record(label + " domain rows", shown_domains == want_domains,
                  "%d rows" % len(want_domains) if shown_domains == want_domains else "shown %r, api %r" % (shown_domains, want_domains))
    # The reputation guard's banner: hidden when ok (and on the admin view), else its state and reason shown.
    banner = driver.find_element(By.CSS_SELECTOR, '[data-testid="reputation-banner"]')
    reputation = stats.get("reputation") or {"state": "ok"}
    shown_state = banner.get_attribute("data-state") or "ok"
    banner_ok = shown_state == reputation["state"] and banner.is_displayed() == (reputation["state"] != "ok")
    if reputation["state"] == "paused":
        banner_ok = banner_ok and "paused" in banner.text and ("bounce rate" in banner.text or "complaint rate" in banner.text)
    checks.record(label + " reputation banner", banner_ok,
                  "state %s, api %s: %r" % (shown_state, reputation["state"], banner.text))
    if not admin:
        # Webhook endpoints: one row each, with enabled or "disabled: <reason>" as the API says.
        hooks = api_get(base_url, token, "/v1/webhooks?limit=100").get("data") or []
        want = ["enabled" if w.get("enabled") else "disabled: " + (w.get("disabled_reason") or "manual") for w in hooks]
        shown = [e.text for e in driver.find_elements(By.CSS_SELECTOR, '[data-testid="webhook-status"]')]
        checks.record(label + " webhook rows", shown == want and len(want) > 0, "shown %r, api %r" % (shown, want))
    missing = [k for k in (stats.get("queue") or {}) if k not in snap["queue"]]
    checks.record(label + " queue fields", not missing and bool(snap["queue"]),
                  ("missing %r" % missing) if missing else ", ".join("%s=%s" % kv for kv in snap["queue"].items()))
    return stats, snap


def sign_in(driver, token):
    wait_for(driver, "the token form", lambda d: d.find_element(By.ID, "token-input").is_displayed())
    field = driver.find_element(By.ID, "token-input")
    field.clear()
    field.send_keys(token)
    driver.find_element(By.ID, "login-button").click()


# ---------- the checks ----------

def run(driver, args, checks):
    base = args.base_url.rstrip("/")
    driver.get(base + "/dashboard")
    wait_for(driver, "the token form", lambda d: d.find_element(By.ID, "token-input").is_displayed())
    checks.record("page loads and asks for a token", True, driver.title)

    # A key the server does not know: 401 must bring the form back with a message and forget the key.
    sign_in(driver, "rly_dashboard_check_not_a_key")
    wait_for(driver, "the form to come back after a 401",
             lambda d: d.find_element(By.ID, "login-message").is_displayed())
    stored = js(driver, "return sessionStorage.getItem('relay.token')")
    checks.record("401 shows the form again", stored is None, driver.find_element(By.ID, "login-message").text)

    sign_in(driver, args.token)
    wait_ready(driver, "stats (7 days)", bucket="day")
    checks.record("signed in with the API key", js(driver, "return sessionStorage.getItem('relay.token')") == args.token)
    params = parse_qs(js(driver, "return document.body.dataset.statsQuery"))
    span = datetime.fromisoformat(params["until"][0].replace("Z", "+00:00")) - \
        datetime.fromisoformat(params["since"][0].replace("Z", "+00:00"))
    checks.record("default range is 7 days by day", params.get("bucket") == ["day"] and timedelta(days=6) < span <= timedelta(days=7),
                  "since=%s until=%s" % (params["since"][0], params["until"][0]))
    check_stats(driver, checks, base, args.token, False, "7d")

    driver.refresh()
    wait_ready(driver, "stats after a reload", bucket="day")
    checks.record("reload keeps the session", js(driver, "return document.getElementById('login').hidden") is True)

    Select(driver.find_element(By.ID, "range-select")).select_by_value("24h")
    wait_ready(driver, "stats (24 hours)", bucket="hour")
    check_stats(driver, checks, base, args.token, False, "24h")
    Select(driver.find_element(By.ID, "range-select")).select_by_value("7d")
    wait_ready(driver, "stats (7 days again)", bucket="day")

    wait_for(driver, "the delivery log", lambda d: js(d, "return document.getElementById('messages').dataset.logState") in ("ready", "error"))
    log_state = js(driver, "return document.getElementById('messages').dataset.logState")
    rows = len(driver.find_elements(By.CSS_SELECTOR, 'tr[data-testid="message-row"]'))
    checks.record("delivery log loads", log_state == "ready", "%d message rows" % rows if log_state == "ready"
                  else driver.find_element(By.ID, "messages-error").text)
    if args.recipient:
        check_message_search(driver, checks, base, args.token, args.recipient)

    injected = js(driver, "return document.querySelectorAll('#dashboard img, #dashboard script, #dashboard iframe').length")
    checks.record("no markup injected from API strings", injected == 0, "%d img/script/iframe elements" % injected)
    check_console(driver, checks)
    take_screenshots(driver, checks, args.out)

    if args.admin_token:
        check_admin(driver, checks, base, args.admin_token)


def check_message_search(driver, checks, base, token, recipient):
    field = driver.find_element(By.ID, "search-recipient")
    field.clear()
    field.send_keys(recipient)
    Select(driver.find_element(By.ID, "search-status")).select_by_value("")
    driver.find_element(By.CSS_SELECTOR, "#search-form button[type=submit]").click()

    def searched(d):
        section = d.find_element(By.ID, "messages")
        query = parse_qs(section.get_attribute("data-log-query") or "")
        return section.get_attribute("data-log-state") == "ready" and query.get("recipient") == [recipient]
    wait_for(driver, "the recipient search", searched)
    shown = [r.get_attribute("data-message-id") for r in driver.find_elements(By.CSS_SELECTOR, 'tr[data-testid="message-row"]')]
    page = api_get(base, token, "/v1/messages?" + urlencode({"limit": 50, "recipient": recipient}))
    want = [m["id"] for m in page.get("data") or []]
    checks.record("recipient search rows", shown == want, "%d messages for %s" % (len(shown), recipient)
                  if shown == want else "shown %r, api %r" % (shown, want))
    checks.require("recipient search found a message", len(shown) > 0, recipient)

    first = driver.find_element(By.CSS_SELECTOR, 'tr[data-testid="message-row"]')
    message_id = first.get_attribute("data-message-id")
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", first)
    first.click()
    wait_for(driver, "the message detail", lambda d: js(
        d, "const p = document.getElementById('detail'); return !p.hidden && p.dataset.messageId === arguments[0] "
           "&& p.dataset.detailState !== 'loading'", message_id))
    state = js(driver, "return document.getElementById('detail').dataset.detailState")
    checks.require("message detail opens", state == "ready", "%s (%s)" % (message_id, state))
    wait_for(driver, "a transcript block", lambda d: d.find_elements(By.CSS_SELECTOR, '#detail [data-testid="transcript"]'))
    texts = js(driver, "return [...document.querySelectorAll('#detail [data-testid=\"transcript\"]')].map((n) => n.textContent)")
    lines = [line for text in texts for line in text.splitlines()]
    replies = [line for line in lines if line.startswith(("S: 250", "S: 5", "S: 4"))]
    checks.record("transcript has a server reply", bool(replies),
                  ("%d blocks, e.g. %r" % (len(texts), replies[-1][:80])) if replies else "lines: %r" % lines[:20])


def check_console(driver, checks):
    try:
        logs = driver.get_log("browser")
    except Exception as err:  # some driver builds do not expose the log
        checks.record("no script or CSP errors in the console", True, "console log unavailable: %s" % err)
        return
    bad = [entry["message"] for entry in logs if entry.get("level") == "SEVERE"
           and ("Content Security Policy" in entry["message"] or "Uncaught" in entry["message"])]
    checks.record("no script or CSP errors in the console", not bad, "; ".join(bad)[:500])


def take_screenshots(driver, checks, out):
    os.makedirs(out, exist_ok=True)
    set_viewport(driver, 1366, 900)
    js(driver, "window.scrollTo(0, 0)")
    height = js(driver, "return Math.max(document.documentElement.scrollHeight, document.body.scrollHeight)")
    set_viewport(driver, 1366, min(max(900, height), 12000))
    laptop = os.path.join(out, "dashboard-laptop.png")
    driver.save_screenshot(laptop)
    checks.record("laptop screenshot", os.path.getsize(laptop) > 0, "%s (1366x%d)" % (laptop, max(900, height)))

    set_viewport(driver, 390, 844)
    wait_for(driver, "the phone layout", lambda d: js(d, "return window.innerWidth") == 390)
    js(driver, "return new Promise((r) => setTimeout(r, 400))")  # the chart redraws 150 ms after a resize
    widths = js(driver, "return [document.documentElement.scrollWidth, window.innerWidth]")
    phone = os.path.join(out, "dashboard-phone.png")
    js(driver, "window.scrollTo(0, 0)")
    driver.save_screenshot(phone)
    checks.record("phone screenshot", os.path.getsize(phone) > 0, phone)
    checks.record("no horizontal overflow on a phone", widths[0] <= widths[1] + 1,
                  "scrollWidth %d, innerWidth %d" % tuple(widths))
    height = js(driver, "return document.documentElement.scrollHeight")
    set_viewport(driver, 390, min(max(844, height), 12000))
    driver.save_screenshot(os.path.join(out, "dashboard-phone-full.png"))
    set_viewport(driver, 1366, 900)


def check_admin(driver, checks, base, admin_token):
    driver.find_element(By.ID, "signout-button").click()
    wait_for(driver, "the token form after signing out", lambda d: d.find_element(By.ID, "token-input").is_displayed())
    checks.record("sign out clears the token", js(driver, "return sessionStorage.getItem('relay.token')") is None)
    sign_in(driver, admin_token)
    wait_ready(driver, "admin stats")
    stats, snap = check_stats(driver, checks, base, admin_token, True, "admin")
    missing = [k for k in ADMIN_QUEUE_KEYS if not snap["queue"].get(k)]
    checks.record("admin queue fields shown", not missing,
                  ("missing %r" % missing) if missing else ", ".join("%s=%s" % (k, snap["queue"][k]) for k in ADMIN_QUEUE_KEYS))
    note = driver.find_element(By.ID, "messages-admin-note")
    checks.record("admin mode explains message search needs an API key", note.is_displayed(), note.text)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base-url", required=True)
    parser.add_argument("--token", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--recipient")
    parser.add_argument("--admin-token")
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)

    checks = Checks()
    driver = make_driver()
    try:
        run(driver, args, checks)
    except StopRun as err:
        print("STOP after failed check: %s" % err, flush=True)
    except CheckFailed as err:
        checks.record("run stopped", False, str(err))
    except Exception as err:  # an unexpected selenium/driver error is a failure too, with its reason
        checks.record("run stopped", False, "%s: %s" % (type(err).__name__, err))
    finally:
        if checks.failed:
            try:
                driver.save_screenshot(os.path.join(args.out, "dashboard-failure.png"))
            except Exception:
                pass
        driver.quit()
    print("%s: %d check(s) failed" % ("FAILED" if checks.failed else "OK", checks.failed), flush=True)
    sys.exit(1 if checks.failed else 0)


if __name__ == "__main__":
    main()
