// ocpplab's only script: small conveniences around htmx. The pages work without it,
// except for live updates, which need htmx's websocket extension.
(function () {
  "use strict";
  var MAX_LOG_ENTRIES = 500;
  var paused = false;
  var pending = [];

  function liveStatus(text, bad) {
    var el = document.getElementById("live-status");
    if (!el) return;
    el.textContent = text;
    el.classList.toggle("live-bad", !!bad);
  }

  function trimLog() {
    var log = document.getElementById("log");
    if (!log) return;
    while (log.children.length > MAX_LOG_ENTRIES) log.removeChild(log.lastElementChild);
  }

  document.addEventListener("htmx:wsOpen", function () { liveStatus("Live updates: on", false); });
  document.addEventListener("htmx:wsClose", function () {
    liveStatus("Live updates lost: reconnecting to ocpplab…", true);
  });
  document.addEventListener("htmx:wsError", function () {
    liveStatus("Live updates lost: reconnecting to ocpplab…", true);
  });
  document.addEventListener("htmx:wsAfterMessage", function () {
    trimLog();
    updateCountdowns();
  });

  // Pause keeps new frames out of view (they are kept, and shown on resume).
  document.addEventListener("htmx:wsBeforeMessage", function (event) {
    if (!paused) return;
    var message = event.detail && event.detail.message;
    if (typeof message === "string" && message.indexOf('id="log"') !== -1) {
      pending.push(message);
      event.preventDefault();
    }
  });

  document.addEventListener("click", function (event) {
    var button = event.target.closest("[data-action]");
    if (!button) return;
    var action = button.getAttribute("data-action");
    if (action === "close-editor") {
      var slot = button.closest(".editor-slot");
      if (slot) {
        var opener = document.querySelector('[aria-controls="' + slot.id + '"]');
        slot.innerHTML = "";
        if (opener) opener.focus();
      }
    } else if (action === "clear-log") {
      var log = document.getElementById("log");
      if (log) log.innerHTML = "";
    } else if (action === "pause-log") {
      paused = !paused;
      button.setAttribute("aria-pressed", paused ? "true" : "false");
      button.textContent = paused ? "Resume" : "Pause";
      if (!paused) {
        var socketElt = document.querySelector("[ws-connect]");
        pending.splice(0).forEach(function (html) {
          htmx.swap(socketElt, html, { swapStyle: "none" });
        });
        trimLog();
      }
    }
  });

  function updateCountdowns() {
    var now = Date.now();
    document.querySelectorAll("time.countdown").forEach(function (el) {
      var left = Math.max(0, Math.round((Date.parse(el.getAttribute("datetime")) - now) / 1000));
      el.textContent = left + " s";
    });
  }
  setInterval(updateCountdowns, 1000);

  // A fragment that opens a form marks where the keyboard focus goes (data-focus). Not the
  // autofocus attribute: Chromium also applies that natively, a frame later, and so could
  // pull the focus back after the person has already moved on.
  document.addEventListener("htmx:afterSettle", function (event) {
    var elt = event.detail && event.detail.elt;
    var target = elt && elt.querySelector ? elt.querySelector("[data-focus]") : null;
    if (!target && elt && elt.hasAttribute && elt.hasAttribute("data-focus")) target = elt;
    if (!target) return;
    target.removeAttribute("data-focus");
    target.focus();
  });
})();
