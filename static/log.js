// The charger page's log (templates/_log.html; lines come from ocpplab/web/live.py as
// out-of-band swaps): follow mode and "N new", pause, filters and search, clear with undo,
// expanding a line (its frames are asked for over the page socket), copy, send again, edit
// and send, and the keyboard (the log is one Tab stop; arrow keys move inside it).
// What the person reads never moves: lines are only added below, and trimming the oldest
// lines removes only lines above the view and gives the scroll position back.
(function () {
  "use strict";
  var pane = document.getElementById("log-pane");
  var log = document.getElementById("log");
  if (!pane || !log) return;

  var SLACK = 50; // lines over the window (data-window) before a trim, so that trims are few
  var UNDO_MS = 10000;
  var SEARCH_DELAY_MS = 250;

  var socket = null; // htmx's socket wrapper, once open
  var opened = 0;
  var follow = true;
  var unseen = 0;
  var paused = false;
  var waiting = 0;
  var cleared = null; // {lines, upto, timer} while Clear can be undone
  var current = null; // the line that holds the one Tab stop
  var query = "";
  var found = null; // {query, numbers: Set, upto}: the server's answer to the search
  var foundElement = null;
  var searchTimer = 0;
  var pinned = -1; // where log.js itself last scrolled the log to

  function byId(id) { return document.getElementById(id); }
  var newButton = byId("log-new");
  var waitingText = byId("log-waiting");
  var pauseButton = pane.querySelector("[data-log=pause]");
  var undoBox = byId("log-undo");
  var undoText = byId("log-undo-text");
  var shown = byId("log-shown");
  var inputs = {
    search: byId("log-search"),
    action: byId("log-action"),
    dir: byId("log-dir"),
    type: byId("log-type"),
    problems: byId("log-problems")
  };

  function number(li) { return parseInt(li.id.slice(1), 10) || 0; }
  function lines() { return Array.prototype.slice.call(log.children); }
  function target(li) { return li.querySelector("summary") || li; }
  function outcome(li) { return li.querySelector(".o"); }
  function visible(li) {
    return !li.classList.contains("filtered") && !li.classList.contains("cleared") &&
      !li.classList.contains("waiting");
  }

  function ask(message) {
    if (!socket) return false;
    socket.send(JSON.stringify(message));
    return true;
  }

  // Filters and search: they hide lines, never drop them.

  function filtersOn() {
    return !!(query || inputs.action.value.trim() || inputs.dir.value || inputs.type.value ||
      inputs.problems.checked);
  }

  function searchHit(li) {
    if (!query) return true;
    var n = number(li);
    if (found && found.query === query) {
      if (found.numbers.has(n)) return true;
      if (n > found.upto && li.classList.contains("hit")) return true;
    }
    var text = (li.textContent + " " + (li.getAttribute("data-unique-id") || "")).toLowerCase();
    return text.indexOf(query.toLowerCase()) !== -1;
  }

  function passes(li) {
    var event = li.classList.contains("ev");
    var dir = inputs.dir.value;
    if (dir && (event || !li.classList.contains(dir))) return false;
    var type = inputs.type.value;
    if (type) {
      var o = outcome(li);
      if (type === "event") { if (!event) return false; }
      else if (event) return false;
      else if (!li.classList.contains(type) && !(o && o.getAttribute("data-t") === type)) return false;
    }
    var action = inputs.action.value.trim().toLowerCase();
    if (action) {
      var name = li.querySelector("b");
      var text = (name ? name.textContent : li.textContent).toLowerCase();
      if (text.indexOf(action) === -1) return false;
    }
    if (inputs.problems.checked) {
      var bad = event ? li.classList.contains("ev-gap") : !!li.querySelector(".o.bad");
      if (!bad) return false;
    }
    return searchHit(li);
  }

  function applyFilter(li) { li.classList.toggle("filtered", !passes(li)); }

  function refilter() {
    var total = 0, count = 0;
    lines().forEach(function (li) {
      applyFilter(li);
      if (li.classList.contains("cleared")) return;
      total += 1;
      if (!li.classList.contains("filtered")) count += 1;
    });
    shown.textContent = filtersOn() ? count + " of " + total + " lines shown" : "";
    if (follow) toBottom();
    keepTabStop();
  }

  function search() {
    query = inputs.search.value.trim().slice(0, 200);
    found = null;
    ask({ log: "search", q: query });
    refilter();
  }

  function takeFound() {
    var element = byId("log-found");
    if (!element || element === foundElement) return;
    foundElement = element;
    var text = element.getAttribute("data-n") || "";
    var numbers = new Set(text ? text.split(" ").map(Number) : []);
    var last = log.lastElementChild;
    found = { query: element.getAttribute("data-q") || "", numbers: numbers, upto: last ? number(last) : 0 };
    if (found.query === query) refilter();
  }

  // Following, "N new", pause

  function atBottom() { return log.scrollHeight - log.scrollTop - log.clientHeight < 4; }

  function toBottom() {
    log.scrollTop = log.scrollHeight;
    pinned = log.scrollTop;
  }

  // Whether the person moved the log since log.js last scrolled it (a scroll event may not
  // have arrived yet when lines do).
  function movedByPerson() { return Math.abs(log.scrollTop - pinned) > 2; }

  function showNew() {
    newButton.hidden = follow || unseen === 0;
    newButton.textContent = unseen + " new ↓";
  }

  function showWaiting() {
    waitingText.hidden = !paused;
    waitingText.textContent = waiting === 1 ? "1 frame waits" : waiting + " frames wait";
  }

  function setPaused(on) {
    paused = on;
    pauseButton.setAttribute("aria-pressed", on ? "true" : "false");
    pauseButton.textContent = on ? "Resume" : "Pause";
    if (!on) {
      lines().forEach(function (li) { li.classList.remove("waiting"); });
      waiting = 0;
      if (follow) toBottom();
    }
    showWaiting();
  }

  log.addEventListener("scroll", function () {
    if (!movedByPerson()) return;
    follow = atBottom();
    if (follow) unseen = 0;
    showNew();
  });

  // Lines as they arrive

  function frames(li) {
    return li.classList.contains("x") && outcome(li) && outcome(li).hasAttribute("data-t") ? 2 : 1;
  }

  function added(li) {
    target(li).tabIndex = -1;
    if (paused) {
      li.classList.add("waiting");
      waiting += frames(li);
    }
    applyFilter(li);
    if (!follow && visible(li)) unseen += 1;
  }

  function changed(li) {
    applyFilter(li);
    var details = li.querySelector("details");
    if (details && details.open) expand(li);
  }

  function trim() {
    var all = log.children;
    var window = parseInt(pane.getAttribute("data-window"), 10) || 2000; // lines kept
    if (all.length <= window + Math.min(SLACK, window)) return;
    var excess = all.length - window, top = log.scrollTop, before = log.scrollHeight;
    // Only what is wholly above the view (or hidden) goes: what is read stays. Measured
    // before anything is removed, as each removal moves the lines below it.
    var doomed = [];
    for (var i = 0; i < excess; i += 1) {
      var li = all[i];
      if (!follow && li.offsetHeight && li.offsetTop + li.offsetHeight > top) break;
      doomed.push(li);
    }
    if (!doomed.length) return;
    doomed.forEach(function (item) { log.removeChild(item); });
    if (cleared) {
      cleared.lines = cleared.lines.filter(function (item) { return item.parentElement === log; });
    }
    if (follow) toBottom();
    else {
      log.scrollTop = top - (before - log.scrollHeight);
      pinned = log.scrollTop;
    }
    ask({ log: "forget", upto: number(doomed[doomed.length - 1]) });
  }

  new MutationObserver(function (records) {
    if (follow && movedByPerson() && !atBottom()) follow = false;
    records.forEach(function (record) {
      Array.prototype.forEach.call(record.addedNodes, function (node) {
        if (node.nodeType !== 1) return;
        if (record.target === log && node.tagName === "LI") added(node);
        else if (node.classList.contains("o")) changed(node.closest("li"));
      });
    });
    trim();
    if (follow && !paused) toBottom();
    showNew();
    showWaiting();
    keepTabStop();
  }).observe(log, { childList: true, subtree: true });

  // Expanding a line: its frames come over the page socket (`{"log": "expand", "n": …}`).

  function expand(li) {
    var details = li.querySelector("details");
    var id = "b" + number(li);
    var body = byId(id);
    if (!body) {
      body = document.createElement("div");
      body.id = id;
      body.className = "b";
      details.appendChild(body);
    }
    if (!ask({ log: "expand", n: number(li) })) {
      body.textContent = "Live updates are off: the frames cannot be fetched now.";
    } else if (!body.firstChild) {
      body.textContent = "Fetching the frames…";
    }
  }

  document.addEventListener("toggle", function (event) {
    var details = event.target;
    if (!details.parentElement || details.parentElement.parentElement !== log) return;
    if (details.open) expand(details.parentElement);
  }, true);

  // Keyboard: one Tab stop (roving tabindex); arrows, Home and End move; Enter or Space
  // expands (a summary does); Escape collapses.

  // The stop is on the line last focused; while following (and the focus is elsewhere),
  // on the newest line.
  function keepTabStop() {
    if (current && (current.parentElement !== log || !visible(current))) current = null;
    if (follow && !log.contains(document.activeElement)) current = null;
    if (!current) {
      var all = lines().filter(visible);
      current = all.length ? all[all.length - 1] : null;
    }
    var stop = current ? target(current) : null;
    log.querySelectorAll("[tabindex='0']").forEach(function (element) {
      if (element !== stop) element.tabIndex = -1;
    });
    if (stop) stop.tabIndex = 0;
  }

  function moveTo(li) {
    if (!li) return;
    current = li;
    keepTabStop();
    target(li).focus();
  }

  function step(from, forward) {
    var li = forward ? from.nextElementSibling : from.previousElementSibling;
    while (li && !visible(li)) li = forward ? li.nextElementSibling : li.previousElementSibling;
    return li;
  }

  log.addEventListener("focusin", function (event) {
    var li = event.target.closest("#log > li");
    if (li && target(li) === event.target && li !== current) { current = li; keepTabStop(); }
  });

  log.addEventListener("keydown", function (event) {
    var li = event.target.closest("#log > li");
    if (!li) return;
    var onLine = event.target === target(li);
    var key = event.key;
    if (key === "Escape") {
      var details = li.querySelector("details");
      if (details && details.open) {
        details.open = false;
        moveTo(li);
        event.preventDefault();
      }
      return;
    }
    if (!onLine) return;
    var next = null;
    if (key === "ArrowDown") next = step(li, true);
    else if (key === "ArrowUp") next = step(li, false);
    else if (key === "Home") next = lines().filter(visible)[0];
    else if (key === "End") next = lines().filter(visible).pop();
    else return;
    event.preventDefault();
    if (next) {
      if (key === "ArrowUp" || key === "Home") follow = false;
      moveTo(next);
    }
  });

  // Copy, send again, edit and send

  function say(button, text) {
    var place = button.parentElement.querySelector("[data-log-said]");
    if (place) place.textContent = text;
  }

  function copy(button, text) {
    function fallback() {
      var box = document.createElement("textarea");
      box.value = text;
      box.setAttribute("readonly", "");
      box.className = "visually-hidden";
      document.body.appendChild(box);
      box.select();
      var ok = false;
      try { ok = document.execCommand("copy"); } catch (e) { ok = false; }
      document.body.removeChild(box);
      button.focus();
      say(button, ok ? "Copied" : "Copying is not allowed here: select the text instead");
    }
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(text).then(function () { say(button, "Copied"); }, fallback);
    } else {
      fallback();
    }
  }

  function quoted(text) { return "'" + text.replace(/'/g, "'\\''") + "'"; }

  function curl(button) {
    return "curl -X " + button.getAttribute("data-method") + " " +
      quoted(location.origin + button.getAttribute("data-url")) +
      " -H 'Content-Type: application/json' --data-raw " + quoted(button.getAttribute("data-body"));
  }

  var SENT = {
    200: "Answered: see the new line",
    502: "The charger answered with a CALLERROR: see the new line",
    504: "The charger did not answer in time",
    409: "Not sent: the charger is not connected"
  };

  function sendAgain(button) {
    button.disabled = true;
    say(button, "Sending…");
    fetch(button.getAttribute("data-url"), {
      method: "POST",
      headers: { "Content-Type": "application/json", "Accept": "application/json" },
      body: button.getAttribute("data-body"),
      credentials: "same-origin"
    }).then(function (response) {
      if (SENT[response.status]) return SENT[response.status];
      return response.json().then(function (body) {
        return "Not sent: " + (body && body.error ? body.error : "HTTP " + response.status);
      }, function () { return "Not sent: HTTP " + response.status; });
    }, function () {
      return "Not sent: ocpplab cannot be reached";
    }).then(function (text) {
      button.disabled = false;
      say(button, text);
    });
  }

  function clearLog() {
    if (cleared) forgetCleared();
    var all = lines().filter(function (li) { return !li.classList.contains("cleared"); });
    if (!all.length) return;
    all.forEach(function (li) { li.classList.add("cleared"); });
    cleared = { lines: all, upto: number(all[all.length - 1]), timer: setTimeout(forgetCleared, UNDO_MS) };
    undoText.textContent = all.length === 1 ? "Cleared 1 line." : "Cleared " + all.length + " lines.";
    undoBox.hidden = false;
    unseen = 0;
    showNew();
    refilter();
  }

  function forgetCleared() {
    if (!cleared) return;
    clearTimeout(cleared.timer);
    cleared.lines.forEach(function (li) { if (li.parentElement === log) log.removeChild(li); });
    ask({ log: "forget", upto: cleared.upto });
    cleared = null;
    undoBox.hidden = true;
  }

  function undoClear() {
    if (!cleared) return;
    clearTimeout(cleared.timer);
    cleared.lines.forEach(function (li) { li.classList.remove("cleared"); });
    cleared = null;
    undoBox.hidden = true;
    refilter();
    pane.querySelector("[data-log=clear]").focus();
  }

  pane.addEventListener("click", function (event) {
    var button = event.target.closest("[data-log]");
    if (!button) return;
    var what = button.getAttribute("data-log");
    if (what === "pause") setPaused(!paused);
    else if (what === "clear") clearLog();
    else if (what === "undo") undoClear();
    else if (what === "follow") {
      follow = true;
      unseen = 0;
      toBottom();
      showNew();
      var last = lines().filter(visible).pop();
      if (last) moveTo(last);
    } else if (what === "copy-json") {
      var raw = button.closest(".fr").querySelector("pre.raw");
      copy(button, raw ? raw.textContent : "");
    } else if (what === "copy-curl") copy(button, curl(button));
    else if (what === "send-again") sendAgain(button);
    else if (what === "edit") {
      var payload;
      try { payload = JSON.parse(button.getAttribute("data-payload")); } catch (e) { payload = {}; }
      document.dispatchEvent(new CustomEvent("ocpplab:edit-call", {
        detail: { action: button.getAttribute("data-action"), payload: payload }
      }));
    }
  });

  inputs.search.addEventListener("input", function () {
    clearTimeout(searchTimer);
    searchTimer = setTimeout(search, SEARCH_DELAY_MS);
  });
  inputs.action.addEventListener("input", refilter);
  ["dir", "type", "problems"].forEach(function (name) {
    inputs[name].addEventListener("change", refilter);
  });

  // The page socket: its wrapper, to ask; a new socket (after a lost one) replays the log.

  document.addEventListener("htmx:wsOpen", function (event) {
    socket = event.detail && event.detail.socketWrapper;
    opened += 1;
    if (opened > 1) {
      if (cleared) { clearTimeout(cleared.timer); cleared = null; undoBox.hidden = true; }
      lines().forEach(function (li) { log.removeChild(li); });
      waiting = 0;
      unseen = 0;
      follow = true;
      found = null;
      if (query) ask({ log: "search", q: query });
    }
  });
  document.addEventListener("htmx:wsClose", function () { socket = null; });
  document.addEventListener("htmx:wsAfterMessage", takeFound);
})();
