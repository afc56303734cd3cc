// Moves focus to the error summary of a form that came back with errors, so
// a phone shows it (the page would otherwise open at its top, the errors
// below the fold) and a screen reader reads it.
(function () {
  "use strict";
  var summary = document.getElementById("error-summary");
  if (summary) { summary.focus(); }
}());
