/* Live status for the WizFi250 sample site.
 *
 * Every page loads this file. It polls GET /api/status every 2 s and
 *   - sets the badge in the header (#live-badge) on every page;
 *   - fills the tables of the status page (status.html) when they exist.
 *
 * The board answers over a UART shared by several browsers, so the poller is polite:
 *   - one request at a time; the next is scheduled only when the last one ended;
 *   - on errors it backs off (4 s, 8 s, 16 s, then every 30 s) and says so in the page;
 *   - it stops while the tab is hidden and polls at once when the tab comes back.
 *
 * Every field of the answer is optional: a missing or oddly typed field shows as a dash.
 * Counters the page does not know are listed by name, so a new driver counter needs no
 * change here. Text from the board is always inserted with textContent, never as HTML.
 */
(function () {
  "use strict";

  var URL_STATUS = "/api/status";
  var PERIOD_MS = 2000;
  var MAX_BACKOFF_MS = 30000;
  var TIMEOUT_MS = 10000; // a slow link and three busy browsers: give the board time

  var failures = 0;
  var timer = null;
  var inFlight = false;
  var paused = false;
  var lastOk = 0; // Date.now() of the last good answer
  var lastData = null;

  // What the known counters mean. Anything else is shown with its raw name.
  var COUNTERS = {
    frames: "Data frames received ({sid,ip,port,len})",
    rx_bytes: "Payload bytes received",
    tx_bytes: "Payload bytes sent",
    ssend: "AT+SSEND transactions",
    commands: "AT commands sent",
    timeouts: "Commands that timed out",
    send_errors: "[TCP Send Error] answers",
    bad_header: "'{' that was not a frame header",
    overlong: "Lines over 256 bytes (cut and skipped)",
    bad_trailer: "Frames without their CRLF trailer",
    unknown_line: "Lines the parser did not recognise",
    stray: "Final lines and SSEND prompts no command was waiting for",
    air: "Lines and frame headers a scan printed inside a network's name",
    resets: "Module resets seen (one is the firmware's own, at start-up)",
    cut_frame: "Frames the module stopped sending halfway (a restart)",
    recoveries: "Times the supervisor restored service",
    overflow: "Sockets ended because their ring stayed full",
    discarded: "Bytes discarded with an ended socket",
    udp_dropped: "Datagrams dropped: their socket's buffer was full",
    no_memory: "Lines and frames lost: no heap to handle them",
    no_memory_reads: "UART reads retried: no heap for the read",
    adopted: "Open sockets adopted (data before any [CONNECT])",
    accepted: "Browser connections accepted",
    refused: "Connections refused: no handler (or heap for one) came free",
    parked: "Connections that waited for a running handler's heap",
    idle_closed: "Connections closed that never sent a request",
    request_retries: "Requests that waited for heap",
    busy: "Requests answered 503: no heap"
  };
  // Counters that mean trouble above these values: resets counts the firmware's own
  // restart of the module at start-up.
  var WORRYING = { timeouts: 0, send_errors: 0, bad_header: 0, overlong: 0, bad_trailer: 0,
                   resets: 1, cut_frame: 0, overflow: 0, discarded: 0, no_memory: 0, refused: 0, busy: 0 };

  function $(id) { return document.getElementById(id); }

  function isNum(v) { return typeof v === "number" && isFinite(v); }
  function isObj(v) { return v !== null && typeof v === "object" && !Array.isArray(v); }
  function str(v) {
    if (v === null || v === undefined || v === "") return "\u2014";
    return String(v);
  }
  function int(v) {
    if (!isNum(v)) return "\u2014";
    return Math.round(v).toLocaleString();
  }

  function bytes(v) {
    if (!isNum(v)) return "\u2014";
    if (v < 1024) return v + " B";
    if (v < 1024 * 1024) return (v / 1024).toFixed(1) + " KB";
    return (v / 1048576).toFixed(2) + " MB";
  }

  function duration(s) {
    if (!isNum(s) || s < 0) return "\u2014";
    s = Math.floor(s);
    var d = Math.floor(s / 86400), h = Math.floor(s / 3600) % 24;
    var m = Math.floor(s / 60) % 60, sec = s % 60;
    var out = [];
    if (d) out.push(d + " d");
    if (d || h) out.push(h + " h");
    if (d || h || m) out.push(m + " min");
    out.push(sec + " s");
    return out.join(" ");
  }

  // RSSI in dBm to a rough 0..100 quality; the module reports e.g. -45.
  function quality(rssi) {
    if (!isNum(rssi)) return null;
    if (rssi > 0) rssi = -rssi; // some firmware prints the magnitude only
    var q = Math.round((rssi + 95) * 100 / 60); // -95 dBm = 0 %, -35 dBm = 100 %
    return Math.max(0, Math.min(100, q));
  }

  function setText(id, text) {
    var el = $(id);
    if (el) el.textContent = text;
    return el;
  }

  function cell(tr, text, cls) {
    var td = document.createElement("td");
    td.textContent = text;
    if (cls) td.className = cls;
    tr.appendChild(td);
    return td;
  }

  function emptyRow(tbody, cols, text) {
    var tr = document.createElement("tr");
    var td = cell(tr, text, "empty");
    td.colSpan = cols;
    tbody.appendChild(tr);
  }

  function clear(el) {
    while (el.firstChild) el.removeChild(el.firstChild);
  }

  function tag(text, good) {
    var span = document.createElement("span");
    span.className = "state-tag" + (good === true ? " ok" : good === false ? " bad" : "");
    span.textContent = text;
    return span;
  }

  // ---- the badge, on every page -------------------------------------------

  function badge(cls, text, title) {
    var el = $("live-badge");
    if (!el) return;
    el.className = "badge " + cls;
    el.textContent = text;
    if (title) el.title = title;
  }

  function renderBadge(data) {
    var wifi = isObj(data.wifi) ? data.wifi : {};
    var state = typeof wifi.state === "string" ? wifi.state : "";
    var up = /^(up|connected|joined|ap)$/i.test(state) || (state === "" && !!wifi.ip);
    var socks = Array.isArray(data.sockets) ? data.sockets.length : null;
    var text = up ? "Online" : (state ? "Wi-Fi " + state : "Board answers");
    if (up && wifi.ip) text += " \u00b7 " + wifi.ip;
    var title = "Uptime " + duration(data.uptime_s) +
      (socks === null ? "" : ", " + socks + " socket" + (socks === 1 ? "" : "s"));
    badge(up ? "is-up" : "is-warn", text, title);
  }

  // ---- the status page ----------------------------------------------------

  function renderWifi(wifi) {
    var dl = $("wifi-list");
    if (!dl) return;
    wifi = isObj(wifi) ? wifi : {};
    var rows = [
      ["State", null],
      ["Mode", wifi.mode === "ap" ? "soft-AP" : wifi.mode === "station" ? "station" : str(wifi.mode)],
      ["SSID", str(wifi.ssid)],
      ["IP address", str(wifi.ip)],
      ["Gateway", str(wifi.gateway)],
      ["Signal", isNum(wifi.rssi) ? wifi.rssi + " dBm" : "\u2014"]
    ];
    clear(dl);
    rows.forEach(function (row) {
      var dt = document.createElement("dt");
      var dd = document.createElement("dd");
      dt.textContent = row[0];
      if (row[0] === "State") {
        var st = typeof wifi.state === "string" ? wifi.state : "";
        dd.appendChild(tag(st || "unknown", st ? /^(up|connected|joined|ap)$/i.test(st) : undefined));
      } else {
        dd.textContent = row[1];
      }
      dl.appendChild(dt);
      dl.appendChild(dd);
    });
    // Other fields the firmware may add (channel, bssid, ...), shown as they come.
    Object.keys(wifi).forEach(function (k) {
      if (/^(state|mode|ssid|ip|gateway|rssi)$/.test(k)) return;
      var v = wifi[k];
      if (isObj(v) || Array.isArray(v)) v = JSON.stringify(v);
      var dt = document.createElement("dt");
      var dd = document.createElement("dd");
      dt.textContent = k;
      dd.textContent = str(v);
      dl.appendChild(dt);
      dl.appendChild(dd);
    });
    var q = quality(wifi.rssi);
    var bar = $("rssi-bar");
    if (bar) bar.style.width = (q === null ? 0 : q) + "%";
    setText("rssi-text", q === null ? "no signal figure" : q + " % signal quality");
  }

  var KIND_NAMES = {
    "tcp-server": "TCP server connection",
    "tcp-client": "TCP client",
    "udp": "UDP",
    "listener": "TCP listener"
  };

  function renderSockets(list) {
    var tbody = $("socket-rows");
    if (!tbody) return;
    clear(tbody);
    if (!Array.isArray(list)) {
      emptyRow(tbody, 7, "The board did not report its sockets.");
      setText("socket-count", "\u2014");
      return;
    }
    setText("socket-count", list.length + " of 8");
    if (!list.length) {
      emptyRow(tbody, 7, "No socket is open.");
      return;
    }
    list.slice().sort(function (a, b) {
      return (isObj(a) && isNum(a.sid) ? a.sid : 99) - (isObj(b) && isNum(b.sid) ? b.sid : 99);
    }).forEach(function (s) {
      if (!isObj(s)) return;
      var tr = document.createElement("tr");
      cell(tr, isNum(s.sid) ? String(s.sid) : "\u2014", "num");
      cell(tr, KIND_NAMES[s.kind] || str(s.kind));
      var td = cell(tr, "");
      var st = typeof s.state === "string" ? s.state : "";
      td.appendChild(tag(st || "unknown", st ? !/closed|error|reset/i.test(st) : undefined));
      cell(tr, str(s.peer));
      cell(tr, isNum(s.local_port) ? String(s.local_port) : "\u2014", "num");
      cell(tr, bytes(s.rx_bytes), "num");
      cell(tr, bytes(s.tx_bytes), "num");
      tbody.appendChild(tr);
    });
  }

  function renderCounters(counters) {
    var tbody = $("counter-rows");
    if (!tbody) return;
    clear(tbody);
    if (!isObj(counters) || !Object.keys(counters).length) {
      emptyRow(tbody, 3, "The board did not report any counters.");
      return;
    }
    // Known counters first, in the order above, then the rest alphabetically.
    var known = Object.keys(COUNTERS).filter(function (k) { return k in counters; });
    var other = Object.keys(counters).filter(function (k) { return !(k in COUNTERS); }).sort();
    known.concat(other).forEach(function (k) {
      var v = counters[k];
      var tr = document.createElement("tr");
      var name = cell(tr, "");
      var code = document.createElement("code");
      code.textContent = k;
      name.appendChild(code);
      cell(tr, COUNTERS[k] || "");
      var shown = isNum(v) ? (/bytes$/.test(k) ? bytes(v) : int(v)) :
        (isObj(v) || Array.isArray(v) ? JSON.stringify(v) : str(v));
      var td = cell(tr, shown, "num");
      if (k in WORRYING && isNum(v) && v > WORRYING[k]) td.appendChild(tag("check", false));
      tbody.appendChild(tr);
    });
  }

  function renderStatus(data) {
    if (!$("status-page")) return;
    setText("uptime", duration(data.uptime_s));
    setText("heap", isNum(data.heap_free) ? bytes(data.heap_free) : "not reported");
    setText("handlers", isNum(data.handlers) ? int(data.handlers) + " (this status request among them)" : "not reported");
    renderWifi(data.wifi);
    renderSockets(data.sockets);
    renderCounters(data.counters);
    var raw = $("raw-json");
    if (raw) raw.textContent = JSON.stringify(data, null, 2);
  }

  // ---- polling --------------------------------------------------------------

  function delay() {
    if (!failures) return PERIOD_MS;
    return Math.min(MAX_BACKOFF_MS, PERIOD_MS * Math.pow(2, failures));
  }

  function schedule(ms) {
    if (timer) clearTimeout(timer);
    timer = null;
    if (paused || document.hidden) return;
    timer = setTimeout(poll, ms);
  }

  function showPollState(text) {
    setText("poll-state", text);
  }

  function showError(text) {
    setText("poll-error", text || "");
  }

  function fetchJson(url) {
    var ctrl = typeof AbortController === "function" ? new AbortController() : null;
    var t = ctrl ? setTimeout(function () { ctrl.abort(); }, TIMEOUT_MS) : null;
    return fetch(url, {
      cache: "no-store",
      headers: { "Accept": "application/json" },
      signal: ctrl ? ctrl.signal : undefined
    }).then(function (res) {
      if (!res.ok) throw new Error("HTTP " + res.status);
      return res.json();
    }).then(function (data) {
      if (t) clearTimeout(t);
      if (!isObj(data)) throw new Error("the answer is not a JSON object");
      return data;
    }, function (err) {
      if (t) clearTimeout(t);
      if (err && err.name === "AbortError") throw new Error("no answer within " + TIMEOUT_MS / 1000 + " s");
      throw err;
    });
  }

  function poll() {
    timer = null;
    if (inFlight || paused || document.hidden) return;
    inFlight = true;
    fetchJson(URL_STATUS).then(function (data) {
      failures = 0;
      lastOk = Date.now();
      lastData = data;
      renderBadge(data);
      try {
        renderStatus(data);
      } catch (e) {
        showError("Could not show the answer: " + e.message);
        return;
      }
      showError("");
      showPollState("Updated " + new Date(lastOk).toLocaleTimeString() + ", every " + PERIOD_MS / 1000 + " s");
    }, function (err) {
      failures += 1;
      var wait = delay();
      var msg = (err && err.message) ? err.message : "request failed";
      showError("Status request failed (" + msg + "); retrying in " + Math.round(wait / 1000) + " s.");
      showPollState(lastOk ? "Last good answer at " + new Date(lastOk).toLocaleTimeString() : "No answer yet");
      badge(failures > 2 ? "is-down" : "is-warn", failures > 2 ? "Offline" : "Retrying\u2026", msg);
    }).then(function () {
      inFlight = false;
      schedule(delay());
    });
  }

  function onVisibility() {
    if (document.hidden) {
      schedule(0); // clears the timer: nothing is requested while nobody looks
      if (!paused) showPollState("Paused while this tab is hidden");
    } else if (!paused) {
      poll();
    }
  }

  function setupPauseButton() {
    var btn = $("poll-toggle");
    if (!btn) return;
    btn.addEventListener("click", function () {
      paused = !paused;
      btn.textContent = paused ? "Resume updates" : "Pause updates";
      btn.setAttribute("aria-pressed", paused ? "true" : "false");
      if (paused) {
        schedule(0);
        showPollState("Paused");
      } else {
        failures = 0;
        poll();
      }
    });
  }

  function start() {
    if (!$("live-badge") && !$("status-page")) return; // nothing to show on this page
    setupPauseButton();
    document.addEventListener("visibilitychange", onVisibility);
    if (!window.fetch) {
      showError("This browser has no fetch(); the live status needs a newer browser.");
      badge("is-warn", "No live status");
      return;
    }
    poll();
  }

  // For the console: WizStatus.last() shows the last answer.
  window.WizStatus = { last: function () { return lastData; }, poll: poll };

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
