// Fengqiao dashboard: the only script. A <select data-autosubmit> submits its form on change
// (each such form also has a <noscript> button, so every page works without this file).
document.addEventListener("change", function (event) {
  var target = event.target;
  if (target && target.matches && target.matches("select[data-autosubmit]") && target.form) {
    target.form.submit();
  }
});
