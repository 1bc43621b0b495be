// Progressive help for the forms; every form works without it. The enrolment form's HLA
// fields are checked against the registry's IMGT/HLA release as they are typed: the
// offending token is shown beside the field.
(function () {
  "use strict";
  var timers = new WeakMap();
  function check(input) {
    var locus = input.getAttribute("data-hla-locus");
    var out = document.getElementById(input.id + "-error");
    var value = input.value.trim();
    if (!value) { out.textContent = ""; input.removeAttribute("aria-invalid"); return; }
    var url = "/hla-check?locus=" + encodeURIComponent(locus) + "&value=" + encodeURIComponent(value);
    fetch(url, { credentials: "same-origin", headers: { "Accept": "application/json" } })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (answer) {
        if (!answer || input.value.trim() !== value) { return; }
        out.textContent = answer.ok ? "" : answer.message;
        if (answer.ok) { input.removeAttribute("aria-invalid"); } else { input.setAttribute("aria-invalid", "true"); }
      })
      .catch(function () { /* the server checks again when the form is posted */ });
  }
  document.addEventListener("input", function (e) {
    var input = e.target;
    if (!input.hasAttribute || !input.hasAttribute("data-hla-locus")) { return; }
    clearTimeout(timers.get(input));
    timers.set(input, setTimeout(function () { check(input); }, 250));
  });
  document.addEventListener("change", function (e) {
    if (e.target.hasAttribute && e.target.hasAttribute("data-hla-locus")) { check(e.target); }
  });
})();
