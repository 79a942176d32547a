// Small helpers for every page; each page works without them.

// Live camera pictures (<img class="camera-live">) are fetched again every few seconds while the page is
// visible; without the script they show the picture of when the page was opened.
(function () {
  "use strict";
  var cameras = document.querySelectorAll("img.camera-live");
  if (!cameras.length) { return; }
  window.setInterval(function () {
    if (document.hidden) { return; }
    Array.prototype.forEach.call(cameras, function (img) {
      img.src = "/camera.jpg?t=" + Date.now();
    });
  }, 3000);
})();

(function () {
  "use strict";
  // Copy buttons: <button class="copy" data-copy="ID" hidden> copies the element ID's text (a link's
  // whole address). Hidden until this script shows them, since without it they could do nothing.
  var buttons = document.querySelectorAll("button.copy[data-copy]");
  Array.prototype.forEach.call(buttons, function (b) {
    var el = document.getElementById(b.getAttribute("data-copy"));
    if (!el || !navigator.clipboard) { return; }
    b.hidden = false;
    b.addEventListener("click", function () {
      var text = el.href ? el.href : el.textContent.trim();
      navigator.clipboard.writeText(text).then(function () {
        b.textContent = "Copied";
      }, function () {
        b.textContent = "Copy failed: select and copy by hand";
      });
    });
  });
})();

// "Tap now": while the server waits for a card, say so, count down and offer Cancel (its own form,
// which ends the wait on the server). Without the script the page simply waits for the answer.
(function () {
  "use strict";
  var form = document.getElementById("tap-form");
  var cancel = document.getElementById("tap-cancel");
  var left = document.getElementById("tap-left");
  if (!form || !cancel || !left) { return; }
  form.addEventListener("submit", function () {
    var seconds = parseInt(form.getAttribute("data-wait"), 10) || 0;
    var button = document.getElementById("tap-now");
    if (button) { button.disabled = true; button.textContent = "Waiting for a card…"; }
    cancel.hidden = false;
    left.textContent = String(seconds);
    var timer = window.setInterval(function () {
      seconds = Math.max(0, seconds - 1);
      left.textContent = String(seconds);
      if (seconds === 0) { window.clearInterval(timer); }
    }, 1000);
  });
})();
