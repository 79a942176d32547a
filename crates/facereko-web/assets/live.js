// Live updates for the home page: door status and new attempts over server-sent events.
// The page works without this script; it only saves reloading.
(function () {
  "use strict";
  var root = document.getElementById("status");
  if (!root || !window.EventSource) { return; }
  var state = document.getElementById("live-state");
  var source = new EventSource(root.getAttribute("data-live"));
  function set(id, text) {
    var el = document.getElementById(id);
    if (el && el.textContent !== text) { el.textContent = text; }
  }
  // When the door stops answering for a few seconds, the state shown is no longer the door's state:
  // say so plainly instead of leaving "Active / Locked" on the screen.
  var lost = null;
  function unreachable() {
    set("st-system", "Unknown");
    var pill = document.getElementById("st-system");
    if (pill) { pill.className = "pill unknown"; }
    set("st-lock", "Unknown");
    set("st-door", "Unknown");
    set("st-reader", "Unknown");
    if (state) {
      state.textContent = "The door is not answering: its state is unknown until it does. Retrying…";
      state.className = "warning";
    }
  }
  source.addEventListener("open", function () {
    if (lost) { window.clearTimeout(lost); lost = null; }
    if (state) { state.textContent = "Live"; state.className = "muted small"; }
  });
  source.addEventListener("error", function () {
    if (state) { state.textContent = "Reconnecting…"; }
    if (!lost) { lost = window.setTimeout(unreachable, 5000); }
  });
  source.addEventListener("status", function (e) {
    var s;
    try { s = JSON.parse(e.data); } catch (err) { return; }
    set("st-system", s.system);
    var pill = document.getElementById("st-system");
    if (pill) { pill.className = "pill " + (s.armed ? "on" : "off"); }
    set("st-lock", s.lock);
    set("st-door", s.door);
    set("st-reader", s.reader);
    set("st-mode", s.mode);
    set("st-last", s.last);
    var on = document.getElementById("activate"), off = document.getElementById("deactivate");
    // The Activate/Deactivate form matches the state the page was drawn with; redraw it if that changed.
    if ((s.armed && on) || (!s.armed && off)) { window.location.reload(); }
  });
  source.addEventListener("attempt", function (e) {
    var body = document.getElementById("attempts");
    if (!body) { return; }
    var holder = document.createElement("tbody");
    holder.innerHTML = e.data; // server-rendered, escaped row
    var row = holder.firstElementChild;
    if (!row || document.getElementById(row.id)) { return; }
    row.classList.add("new");
    body.insertBefore(row, body.firstChild);
    while (body.children.length > 10) { body.removeChild(body.lastElementChild); }
    var none = document.getElementById("no-attempts");
    if (none) { none.remove(); }
  });
})();
