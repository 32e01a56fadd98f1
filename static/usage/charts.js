// Draw every [data-chart] element from the figure in its json_script block.
(function () {
  "use strict";

  // A horizontal legend below the plot scrolls once it is taller than half
  // the figure (plotly's default), which at 390 px hides most models of a
  // chart of many: make the figure taller by what the legend lacks, and let
  // the legend be as tall as its entries, so every series stays in sight.
  function fitLegend(el) {
    var legend = el._fullLayout && el._fullLayout.legend;
    if (!legend || !legend._height || !legend._effHeight) return null;
    var missing = Math.ceil(legend._height - legend._effHeight);
    if (missing <= 1) return null;
    return Plotly.relayout(el, {
      height: el._fullLayout.height + missing + 8,
      "legend.maxheight": Math.ceil(legend._height) + 4
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    if (typeof Plotly === "undefined") return;
    document.querySelectorAll("[data-chart]").forEach(function (el) {
      var source = document.getElementById(el.dataset.chart);
      if (!source) return;
      var figure = JSON.parse(source.textContent);
      Plotly.newPlot(el, figure.data, figure.layout, {displaylogo: false, responsive: true})
        .then(function () { return fitLegend(el); })
        .then(function () { el.dataset.drawn = "true"; });
    });
  });
})();
