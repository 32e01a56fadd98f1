// Drill-down of the per-day charts: a click on a bar or point opens the rows
// behind it. The server renders each chart's target as data-drill, a URL in
// which "__day__" stands for the day clicked; a trace's "meta" object adds
// its own filters (the stacked chart's model). Loaded from static (CSP).
(function () {
  "use strict";

  function target(pattern, point) {
    var day = String(point.x).slice(0, 10);
    var url = pattern.split("__day__").join(encodeURIComponent(day));
    var meta = point.data && point.data.meta;
    if (meta && typeof meta === "object") {
      Object.keys(meta).forEach(function (name) {
        url += (url.indexOf("?") < 0 ? "?" : "&") +
          encodeURIComponent(name) + "=" + encodeURIComponent(meta[name]);
      });
    }
    return url;
  }

  function attach(el, tries) {
    if (typeof el.on !== "function") {
      // charts.js draws on DOMContentLoaded too: wait until it has.
      if (tries > 0) setTimeout(function () { attach(el, tries - 1); }, 50);
      return;
    }
    el.classList.add("drillable");
    el.on("plotly_click", function (event) {
      if (!event || !event.points || !event.points.length) return;
      window.location.assign(target(el.dataset.drill, event.points[0]));
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("[data-drill]").forEach(function (el) {
      if (el.dataset.drill) attach(el, 100);
    });
  });
})();
