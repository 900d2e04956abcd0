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
  // The timeline's brush: drag across its axis to zoom to that span (?zoom=LO-HI, in
  // percent of the whole chart; the current window is data-lo..data-hi).
  function brush(area) {
    var lo = parseFloat(area.getAttribute("data-lo")), hi = parseFloat(area.getAttribute("data-hi"));
    var band = document.createElement("div"), from = null;
    band.className = "brush";
    area.appendChild(band);
    function at(e) {
      var r = area.getBoundingClientRect();
      return Math.min(Math.max((e.clientX - r.left) / r.width, 0), 1);
    }
    function draw(a, b) {
      band.style.left = (Math.min(a, b) * 100) + "%";
      band.style.width = (Math.abs(b - a) * 100) + "%";
      band.style.display = "block";
    }
    area.addEventListener("mousedown", function (e) { from = at(e); draw(from, from); e.preventDefault(); });
    window.addEventListener("mousemove", function (e) { if (from !== null) draw(from, at(e)); });
    window.addEventListener("mouseup", function (e) {
      if (from === null) return;
      var to = at(e), a = Math.min(from, to), b = Math.max(from, to);
      from = null;
      band.style.display = "none";
      if (b - a < 0.01) return;
      var span = hi - lo, x0 = lo + span * a, x1 = lo + span * b;
      var q = new URLSearchParams(window.location.search);
      q.set("zoom", x0.toFixed(2) + "-" + x1.toFixed(2));
      if (area.getAttribute("data-scale")) q.set("scale", "real"); else q.delete("scale");
      window.location.search = q.toString();
    });
  }
  // The brush lives in the polled part of the run page: (re)attach it after each refresh.
  function brushes() {
    var area = document.getElementById("brush-area");
    if (area && !area.hasAttribute("data-brush")) { area.setAttribute("data-brush", ""); brush(area); }
  }
  brushes();
  new MutationObserver(brushes).observe(document.body, {childList: true, subtree: true});
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
