// Live refresh: every 2 s, the page is fetched again and its <main> swapped in, unless the
// user is typing in a form field or the tab is hidden. Nothing else runs here.
(function () {
  "use strict";
  var busy = false;
  function typing() {
    var el = document.activeElement;
    return el && (el.tagName === "INPUT" || el.tagName === "TEXTAREA");
  }
  function refresh() {
    if (busy || document.hidden || typing()) { return; }
    busy = true;
    fetch(window.location.href, { credentials: "same-origin", headers: { "x-fourit-refresh": "1" } })
      .then(function (response) { return response.ok ? response.text() : null; })
      .then(function (html) {
        if (!html) { return; }
        var fresh = new DOMParser().parseFromString(html, "text/html").getElementById("main");
        var main = document.getElementById("main");
        if (fresh && main) { main.replaceWith(fresh); }
      })
      .catch(function () {})
      .then(function () { busy = false; });
  }
  window.setInterval(refresh, 2000);
})();
