// Stack page charts: reads the series JSON (data-series-url) and draws them with the
// vendored uPlot. Loaded from static (CSP: no inline scripts); without JavaScript the
// page still links to the JSON.
(function () {
  "use strict";

  var PALETTE = ["#3d8bfd", "#18a058", "#e8890c", "#a86cff", "#d6336c", "#0ca5b0"];
  var REFRESH_MS = 30000;

  function colour(i) {
    return PALETTE[i % PALETTE.length];
  }

  function percent(values) {
    return values.map(function (v) {
      return v === null ? null : Math.round(v * 1000) / 10;
    });
  }

  function chartSpecs(data) {
    var x = data.x;
    return {
      health: {
        data: [x].concat(data.health.map(function (s) { return percent(s.ok_ratio); })),
        series: data.health.map(function (s, i) {
          return { label: s.vantage, stroke: colour(i), width: 1.5, paths: uPlot.paths.stepped({ align: 1 }) };
        }),
        unit: "%",
        range: [0, 100],
        empty: "No probe of this stack in this window."
      },
      latency: {
        data: [x].concat(data.health.map(function (s) { return s.latency_ms; })),
        series: data.health.map(function (s, i) {
          return { label: s.vantage, stroke: colour(i), width: 1.5, spanGaps: true };
        }),
        unit: "ms",
        empty: "No successful probe in this window."
      },
      lag: {
        data: [x].concat(data.lag.map(function (s) { return s.lag_seconds; })),
        series: data.lag.map(function (s, i) {
          return {
            label: s.source_region + " → " + s.receiving_region,
            stroke: colour(i),
            width: 1.5,
            spanGaps: true,
            points: { show: true, size: 4 }
          };
        }),
        unit: "s",
        empty: "No replication lag sample into this region in this window."
      }
    };
  }

  function draw(container, spec) {
    container.textContent = "";
    if (!spec.series.length) {
      var p = document.createElement("p");
      p.className = "muted small chart-empty";
      p.textContent = spec.empty;
      container.appendChild(p);
      return null;
    }
    var opts = {
      width: Math.max(container.clientWidth, 280),
      height: 180,
      cursor: { drag: { x: true, y: false } },
      // The console shows UTC everywhere.
      tzDate: function (ts) { return uPlot.tzDate(new Date(ts * 1e3), "Etc/UTC"); },
      scales: { x: { time: true }, y: spec.range ? { range: spec.range } : { auto: true } },
      axes: [
        { stroke: "#8d9aa7", grid: { stroke: "rgba(128,128,128,0.15)" } },
        {
          stroke: "#8d9aa7",
          grid: { stroke: "rgba(128,128,128,0.15)" },
          values: function (u, splits) {
            return splits.map(function (v) { return v + " " + spec.unit; });
          },
          size: 60
        }
      ],
      series: [{ label: "UTC" }].concat(spec.series)
    };
    return new uPlot(opts, spec.data, container);
  }

  function load(root) {
    var url = root.getAttribute("data-series-url");
    var plots = [];
    root.setAttribute("aria-busy", "true");
    return fetch(url, { headers: { Accept: "application/json" }, credentials: "same-origin" })
      .then(function (response) {
        if (!response.ok) {
          throw new Error("HTTP " + response.status);
        }
        return response.json();
      })
      .then(function (data) {
        var specs = chartSpecs(data);
        root.querySelectorAll("[data-chart]").forEach(function (container) {
          var spec = specs[container.getAttribute("data-chart")];
          if (spec) {
            var plot = draw(container, spec);
            if (plot) {
              plots.push([plot, container]);
            }
          }
        });
        root.setAttribute("aria-busy", "false");
        return plots;
      })
      .catch(function (error) {
        root.setAttribute("aria-busy", "false");
        root.querySelectorAll("[data-chart]").forEach(function (container) {
          container.textContent = "Could not load the chart data (" + error.message + ").";
        });
        return plots;
      });
  }

  function start(root) {
    var plots = [];
    function refresh() {
      if (document.hidden) {
        return;
      }
      plots.forEach(function (pair) { pair[0].destroy(); });
      load(root).then(function (made) { plots = made; });
    }
    refresh();
    window.setInterval(refresh, REFRESH_MS);
    window.addEventListener("resize", function () {
      plots.forEach(function (pair) {
        pair[0].setSize({ width: Math.max(pair[1].clientWidth, 280), height: 180 });
      });
    });
  }

  function init() {
    if (!window.uPlot || !window.fetch) {
      return;
    }
    document.querySelectorAll("[data-charts]").forEach(start);
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", init);
  } else {
    init();
  }
})();
