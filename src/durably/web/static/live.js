// durably dashboard: the only script. Elements with data-live="URL" are refreshed with the
// HTML fragment at URL every data-every ms; data-tail="URL" appends what comes after
// data-next (a stream). A response with "X-Durably-Live: done" ends the polling (and
// reloads the page when the element has data-reload-on-done, so everything is final).
// Ticked checkboxes survive a refresh; #pick-all ticks every run of the runs table.
(function () {
  "use strict";
  function follow(el) {
    var every = parseInt(el.getAttribute("data-every") || "2000", 10);
    var tail = el.getAttribute("data-tail");
    function url() {
      if (!tail) return el.getAttribute("data-live");
      return tail + (tail.indexOf("?") < 0 ? "?" : "&") + "start_index=" +
        encodeURIComponent(el.getAttribute("data-next") || "0");
    }
    function tick() {
      if (document.hidden) { setTimeout(tick, every); return; }
      fetch(url(), {credentials: "same-origin", headers: {"X-Requested-With": "durably"}})
        .then(function (r) {
          return r.text().then(function (html) {
            if (!r.ok) { setTimeout(tick, every * 2); return; }
            if (tail) {
              if (html.trim()) el.insertAdjacentHTML("beforeend", html);
              el.setAttribute("data-next", r.headers.get("X-Durably-Next") || el.getAttribute("data-next"));
            } else {
              // Keep what the user ticked (the runs table's checkboxes) across refreshes.
              var ticked = {};
              el.querySelectorAll("input[type=checkbox]:checked").forEach(function (c) {
                ticked[c.value] = true;
              });
              el.innerHTML = html;
              el.querySelectorAll("input[type=checkbox]").forEach(function (c) {
                if (ticked[c.value]) c.checked = true;
              });
            }
            if (r.headers.get("X-Durably-Live") === "done") {
              if (el.hasAttribute("data-reload-on-done")) window.location.reload();
              return;
            }
            setTimeout(tick, every);
          });
        })
        .catch(function () { setTimeout(tick, every * 2); });
    }
    setTimeout(tick, every);
  }
  document.querySelectorAll("[data-live],[data-tail]").forEach(follow);
  // The runs table's "select all" box ticks every live run shown.
  var all = document.getElementById("pick-all");
  if (all) {
    all.addEventListener("change", function () {
      document.querySelectorAll("#runs-rows input[name=run]").forEach(function (c) {
        c.checked = all.checked;
      });
    });
  }
})();
