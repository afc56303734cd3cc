// "Copy" buttons: <button data-copy="#element-id" hidden> copies that
// element's text. The buttons stay hidden where the clipboard API is missing
// (the code itself is selectable with one click either way).
(function () {
  "use strict";
  if (!navigator.clipboard) { return; }
  document.querySelectorAll("[data-copy]").forEach(function (button) {
    var target = document.querySelector(button.getAttribute("data-copy"));
    var status = document.getElementById("copy-status");
    if (!target) { return; }
    button.hidden = false;
    button.addEventListener("click", function () {
      navigator.clipboard.writeText(target.textContent.trim()).then(function () {
        if (status) { status.textContent = "Copied."; }
      }, function () {
        if (status) { status.textContent = "Could not copy: select the code and copy it yourself."; }
      });
    });
  });
}());
