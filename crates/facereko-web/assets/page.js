// Small helpers for every page; each page works without them.
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
