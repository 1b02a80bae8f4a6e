// ocpplab's page script: small conveniences around htmx. The pages work without it,
// except for live updates, which need htmx's websocket extension. The log's own behaviour
// is in log.js.
(function () {
  "use strict";
  var DESKTOP = window.matchMedia("(min-width: 900px)");
  var TIME_FIELD = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:?\d\d)$/;
  var ACTION_NAME = /^[A-Za-z][A-Za-z0-9]{0,63}$/;
  var baseTitle = document.title;

  function liveStatus(text, bad) {
    var el = document.getElementById("live-status");
    if (!el) return;
    el.textContent = text;
    el.classList.toggle("live-bad", !!bad);
  }
  document.addEventListener("htmx:wsOpen", function () { liveStatus("Live updates: on", false); });
  document.addEventListener("htmx:wsClose", function () {
    liveStatus("Live updates lost: reconnecting to ocpplab…", true);
  });
  document.addEventListener("htmx:wsError", function () {
    liveStatus("Live updates lost: reconnecting to ocpplab…", true);
  });

  var tablist = document.querySelector("[role=tablist]");
  var tabs = tablist ? Array.prototype.slice.call(tablist.querySelectorAll("[role=tab]")) : [];

  function tabName(tab) { return tab.id.replace(/^tab-/, ""); }
  function tabByName(name) {
    for (var i = 0; i < tabs.length; i++) if (tabName(tabs[i]) === name) return tabs[i];
    return null;
  }
  function usable(tab) { return tab && !(DESKTOP.matches && tab.classList.contains("tab-phone")); }
  function selectedTab() {
    for (var i = 0; i < tabs.length; i++) if (tabs[i].getAttribute("aria-selected") === "true") return tabs[i];
    return null;
  }
  function selectTab(tab, options) {
    if (!usable(tab)) return;
    tabs.forEach(function (each) {
      var on = each === tab;
      each.setAttribute("aria-selected", on ? "true" : "false");
      each.tabIndex = on ? 0 : -1;
      var panel = document.getElementById(each.getAttribute("aria-controls"));
      if (panel) panel.hidden = !on;
    });
    if (options && options.remember !== false && history.replaceState) {
      history.replaceState(history.state, "", "#" + tabName(tab));
    }
    if (options && options.focus) tab.focus();
    updateHeld();
  }
  function defaultTab() { return tabByName(DESKTOP.matches ? "configure" : "log"); }
  function layoutChanged() {
    var log = document.getElementById("log-panel");
    if (log) {
      if (DESKTOP.matches) log.removeAttribute("role"); else log.setAttribute("role", "tabpanel");
    }
    var current = selectedTab();
    if (!usable(current)) selectTab(defaultTab(), { remember: false });
  }
  function showTabOf(element, remember) {
    var panel = element && element.closest ? element.closest("[role=tabpanel], .tabpanel, #log-panel") : null;
    if (!panel) return;
    var tab = document.querySelector('[role=tab][aria-controls="' + panel.id + '"]');
    if (tab && tab.getAttribute("aria-selected") !== "true") selectTab(tab, { remember: remember });
  }

  if (tablist) {
    tablist.hidden = false;
    var fromHash = tabByName(location.hash.replace(/^#/, ""));
    selectTab(usable(fromHash) ? fromHash : defaultTab(), { remember: false });
    layoutChanged();
    if (DESKTOP.addEventListener) DESKTOP.addEventListener("change", layoutChanged);
    tablist.addEventListener("click", function (event) {
      var tab = event.target.closest("[role=tab]");
      if (tab) selectTab(tab, { focus: true });
    });
    tablist.addEventListener("keydown", function (event) {
      var visible = tabs.filter(usable);
      var index = visible.indexOf(document.activeElement);
      if (index < 0) return;
      var next = null;
      if (event.key === "ArrowRight") next = visible[(index + 1) % visible.length];
      else if (event.key === "ArrowLeft") next = visible[(index - 1 + visible.length) % visible.length];
      else if (event.key === "Home") next = visible[0];
      else if (event.key === "End") next = visible[visible.length - 1];
      if (!next) return;
      event.preventDefault();
      selectTab(next, { focus: true });
    });
    window.addEventListener("hashchange", function () {
      var tab = tabByName(location.hash.replace(/^#/, ""));
      if (usable(tab)) selectTab(tab, { remember: false });
      else showTabOf(document.getElementById(location.hash.replace(/^#/, "")), false);
    });
  }

  // A check step's evidence: show that frame's line in the log, opened.
  document.addEventListener("click", function (event) {
    var link = event.target.closest("a.evidence[data-unique-id]");
    if (!link) return;
    event.preventDefault();
    event.stopPropagation();
    var uid = link.getAttribute("data-unique-id");
    var line = null;
    document.querySelectorAll("#log > li[data-unique-id]").forEach(function (item) {
      if (item.getAttribute("data-unique-id") === uid) line = item;
    });
    if (!line) {
      link.setAttribute("title", "That frame is no longer in this page's log (cleared, or older than what it keeps)");
      link.classList.add("evidence-gone");
      return;
    }
    showTabOf(line, true);
    var details = line.querySelector("details");
    if (details && !details.open) details.querySelector("summary").click();
    line.scrollIntoView({ block: "center" });
    var summary = line.querySelector("summary");
    if (summary) summary.focus({ preventScroll: true });
  }, true);

  document.addEventListener("click", function (event) {
    var link = event.target.closest("a[href^='#']");
    if (!link || !tablist) return;
    var name = link.getAttribute("data-tab");
    var id = link.getAttribute("href").slice(1);
    var target = id ? document.getElementById(id) : null;
    var tab = name ? tabByName(name) : null;
    if (link.getAttribute("data-action") === "answer-held") {
      event.preventDefault();
      answerHeld();
      return;
    }
    if (!tab && !target) return;
    event.preventDefault();
    if (id === "controls") {
      var chosen = selectedTab();
      if (chosen && usable(chosen) && chosen.tabIndex === 0) { chosen.focus(); return; }
    }
    if (tab) selectTab(tab);
    if (target) {
      showTabOf(target, true);
      target.scrollIntoView({ block: "nearest" });
      if (target.tabIndex < 0 && !target.hasAttribute("tabindex")) target.setAttribute("tabindex", "-1");
      target.focus({ preventScroll: true });
    }
  });

  function heldCards() { return Array.prototype.slice.call(document.querySelectorAll("#held .held-card")); }
  function updateHeld() {
    var cards = heldCards();
    var alert = document.getElementById("held-alert");
    document.title = cards.length ? "(" + cards.length + ") " + baseTitle : baseTitle;
    document.body.classList.toggle("has-held", cards.length > 0);
    document.querySelectorAll("[data-held-count]").forEach(function (el) {
      el.hidden = !cards.length;
      el.textContent = cards.length ? String(cards.length) : "";
      el.setAttribute("aria-label", cards.length + " waiting for your answer");
    });
    if (!alert) return;
    var calls = tabByName("calls");
    var onCalls = calls && calls.getAttribute("aria-selected") === "true";
    if (!cards.length || onCalls) { alert.hidden = true; return; }
    var oldest = cards[cards.length - 1];
    var text = (oldest.getAttribute("data-action-name") || "A call") + " waits for your answer";
    if (cards.length > 1) text += " (and " + (cards.length - 1) + " more)";
    var slot = alert.querySelector(".held-alert-text");
    if (slot.textContent !== text) slot.textContent = text;
    alert.hidden = false;
  }
  function answerHeld() {
    var cards = heldCards();
    if (!cards.length) return;
    var card = cards[cards.length - 1];
    var tab = tabByName("calls");
    if (tab) selectTab(tab);
    card.scrollIntoView({ block: "start" });
    freshTimes(card, true);
    var field = card.querySelector("textarea");
    (field || card).focus({ preventScroll: true });
  }

  function freshTimes(card, force) {
    var field = card.querySelector("textarea[data-fresh-times]");
    if (!field || field.getAttribute("data-edited") === "true") return;
    if (!force && field.getAttribute("data-freshened") === "true") return;
    var value;
    try { value = JSON.parse(field.value); } catch (error) { return; }
    if (!value || typeof value !== "object" || Array.isArray(value)) return;
    var now = new Date().toISOString();
    var changed = false;
    Object.keys(value).forEach(function (key) {
      if (typeof value[key] === "string" && TIME_FIELD.test(value[key])) { value[key] = now; changed = true; }
    });
    field.setAttribute("data-freshened", "true");
    if (changed) field.value = JSON.stringify(value, null, 2);
  }
  document.addEventListener("input", function (event) {
    if (event.target.matches && event.target.matches("textarea[data-fresh-times]")) {
      event.target.setAttribute("data-edited", "true");
    }
  });
  document.addEventListener("focusin", function (event) {
    var card = event.target.closest ? event.target.closest(".held-card") : null;
    if (card && event.target.matches("textarea[data-fresh-times]")) freshTimes(card, true);
  });
  function freshenNewCards() {
    heldCards().forEach(function (card) { freshTimes(card, false); });
  }

  function ago(ms) {
    var s = Math.max(0, Math.round(ms / 1000));
    if (s < 60) return s + " s";
    var m = Math.floor(s / 60);
    if (m < 60) return m + " min";
    var h = Math.floor(m / 60);
    return h + " h " + (m % 60) + " min";
  }
  function updateMoments() {
    var now = Date.now();
    document.querySelectorAll("[data-offline-since] time.moment:not([datetime])").forEach(function (el) {
      var at = new Date(now);
      el.setAttribute("datetime", at.toISOString());
      el.textContent = at.toISOString().slice(11, 19) + " UTC";
    });
    document.querySelectorAll("#status time.moment[datetime]").forEach(function (el) {
      var at = Date.parse(el.getAttribute("datetime"));
      if (isNaN(at)) return;
      var next = el.nextElementSibling;
      if (!next || !next.classList.contains("moment-ago")) {
        next = document.createElement("span");
        next.className = "moment-ago";
        el.parentNode.insertBefore(next, el.nextSibling);
      }
      var text = " (" + ago(now - at) + ")";
      if (next.textContent !== text) next.textContent = text;
    });
    document.querySelectorAll("time.countdown").forEach(function (el) {
      var left = Math.max(0, Math.round((Date.parse(el.getAttribute("datetime")) - now) / 1000));
      var text = left + " s";
      if (el.textContent !== text) el.textContent = text;
    });
  }
  setInterval(updateMoments, 1000);

  function updateOutcomes() {
    document.querySelectorAll(".op-outcome[data-call]").forEach(function (el) {
      var row = document.getElementById(el.getAttribute("data-call"));
      var state = row ? row.querySelector(".call-state") : null;
      if (!state) return;
      var text = state.textContent.replace(/\s+/g, " ").trim();
      var slot = el.querySelector(".op-outcome-text");
      if (slot && slot.textContent !== text) slot.textContent = text;
      var done = !row.classList.contains("call-waiting") && !row.classList.contains("call-queued");
      el.classList.toggle("op-outcome-done", done);
      el.classList.toggle("op-outcome-bad", !!row.querySelector(".call-bad"));
    });
  }

  var remembered = null;
  function keyOf(el) {
    if (!el || el === document.body || !el.closest) return null;
    var scope = el.closest("[id]");
    return {
      id: el.id || null,
      scope: scope ? scope.id : null,
      tag: el.tagName,
      name: el.getAttribute("name"),
      value: el.getAttribute("value"),
      start: typeof el.selectionStart === "number" ? el.selectionStart : null,
      end: typeof el.selectionEnd === "number" ? el.selectionEnd : null,
    };
  }
  function refocus(key) {
    if (!key) return;
    var active = document.activeElement;
    if (active && active !== document.body && active.isConnected) return;
    var el = key.id ? document.getElementById(key.id) : null;
    if (!el && key.name && key.scope) {
      var scope = document.getElementById(key.scope);
      var candidates = scope ? scope.querySelectorAll(key.tag + '[name="' + CSS.escape(key.name) + '"]') : [];
      for (var i = 0; i < candidates.length && !el; i++) {
        if (candidates[i].getAttribute("value") === key.value) el = candidates[i];
      }
    }
    if (!el) return;
    el.focus({ preventScroll: true });
    if (key.start !== null && typeof el.setSelectionRange === "function") {
      try { el.setSelectionRange(key.start, key.end); } catch (error) { /* not a text field */ }
    }
  }
  document.addEventListener("htmx:wsBeforeMessage", function () { remembered = keyOf(document.activeElement); });
  document.addEventListener("htmx:beforeSwap", function () { remembered = keyOf(document.activeElement); });
  document.addEventListener("htmx:wsAfterMessage", function () {
    refocus(remembered);
    afterUpdate();
  });
  document.addEventListener("htmx:afterSettle", function (event) {
    var elt = event.detail && event.detail.elt;
    var target = elt && elt.querySelector ? elt.querySelector("[data-focus]") : null;
    if (!target && elt && elt.hasAttribute && elt.hasAttribute("data-focus")) target = elt;
    if (target) {
      target.removeAttribute("data-focus");
      target.focus();
    } else {
      refocus(remembered);
    }
    afterUpdate();
  });
  document.addEventListener("htmx:oobAfterSwap", function (event) {
    var target = event.detail && event.detail.target;
    if (!target || (target.id !== "op-feedback" && target.id !== "raw-feedback")) return;
    setTimeout(function () {
      var feedback = document.getElementById(target.id);
      if (feedback && feedback.firstElementChild) feedback.scrollIntoView({ block: "nearest" });
    }, 60);
  });
  function afterUpdate() {
    updateHeld();
    freshenNewCards();
    updateOutcomes();
    updateMoments();
  }

  function closeEditor(slot) {
    var opener = document.querySelector('[aria-controls="' + slot.id + '"]');
    slot.innerHTML = "";
    if (opener) opener.focus();
  }
  document.addEventListener("keydown", function (event) {
    if (event.key !== "Escape" || event.defaultPrevented) return;
    var slot = event.target.closest ? event.target.closest(".editor-slot") : null;
    if (slot && slot.firstElementChild) {
      event.preventDefault();
      closeEditor(slot);
    }
  });
  document.addEventListener("click", function (event) {
    var button = event.target.closest("[data-action=close-editor]");
    var slot = button ? button.closest(".editor-slot") : null;
    if (slot) closeEditor(slot);
  });

  document.addEventListener("ocpplab:edit-call", function (event) {
    var detail = event.detail || {};
    var operations = document.getElementById("operations");
    var template = operations && operations.getAttribute("data-form-url");
    if (!template || typeof detail.action !== "string" || !ACTION_NAME.test(detail.action)) return;
    var tab = tabByName("operations");
    if (tab) selectTab(tab);
    var url = template.replace("__ACTION__", encodeURIComponent(detail.action));
    document.addEventListener("htmx:afterSettle", function fill() {
      var box = document.getElementById("op-json");
      if (!box) return;
      document.removeEventListener("htmx:afterSettle", fill);
      box.value = JSON.stringify(detail.payload === undefined ? {} : detail.payload, null, 2);
      var details = box.closest("details");
      if (details) details.open = true;
      box.focus();
    });
    htmx.ajax("GET", url, { target: "#op-work" });
  });

  afterUpdate();
})();
