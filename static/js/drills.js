// Drill pages: the global endpoint's success-rate chart (drill page) and the
// time-to-failover trend (scorecard), drawn with the vendored uPlot from data the page
// embeds with json_script. Loaded from static (CSP: no inline scripts). On the drill
// page htmx replaces the data every 2 s; the chart then takes the new data.
(function () {
  "use strict";

  var HEIGHT = 200;

  function readData(id) {
    var node = document.getElementById(id);
    if (!node) {
      return null;
    }
    try {
      // json_script (static pages) or a data-series attribute (parts htmx swaps)
      return JSON.parse(node.getAttribute("data-series") || node.textContent);
    } catch (e) {
      return null;
    }
  }

  function columns(pairs) {
    var xs = [];
    var ys = [];
    (pairs || []).forEach(function (p) {
      xs.push(p[0]);
      ys.push(p[1]);
    });
    return [xs, ys];
  }

  // The x range around the points, read from the data: for a lone point uPlot 1.6.32
  // widens a time scale to `86400 / ms` after it (86,400,000 s with its default ms = 1e-3:
  // 1,000 days) before the range function pads it: an axis running to 2029. One point (or
  // several at one x) gets `alone` on each side; more get 5 % of their span.
  function around(alone) {
    return function (u, min, max) {
      var xs = u.data[0] || [];
      if (xs.length) {
        min = Math.min.apply(null, xs);
        max = Math.max.apply(null, xs);
      }
      var pad = max > min ? (max - min) * 0.05 : alone;
      return [min - pad, max + pad];
    };
  }

  function axes(unit) {
    return [
      { stroke: "#8d9aa7", grid: { stroke: "rgba(128,128,128,0.15)" } },
      {
        stroke: "#8d9aa7",
        grid: { stroke: "rgba(128,128,128,0.15)" },
        size: 60,
        values: function (u, splits) {
          return splits.map(function (v) { return v + " " + unit; });
        }
      }
    ];
  }

  function makeChart(container, kind) {
    var id = container.getAttribute("data-series-id");
    var plot = null;
    var empty = kind === "success"
      ? "No sample of the global endpoint yet."
      : "No finished drill with a time to fail over yet.";

    function options() {
      var success = kind === "success";
      return {
        width: Math.max(container.clientWidth - 12, 280),
        height: HEIGHT,
        scales: {
          // success: seconds since the injection; trend: finish times, a lone one in the middle of a day
          x: { time: !success, range: around(success ? 5 : 12 * 3600) },
          y: success ? { range: [0, 100] } : { auto: true }
        },
        tzDate: function (ts) { return uPlot.tzDate(new Date(ts * 1e3), "Etc/UTC"); },
        axes: success
          ? [{ stroke: "#8d9aa7", grid: { stroke: "rgba(128,128,128,0.15)" },
               values: function (u, splits) { return splits.map(function (v) { return v + " s"; }); } },
             axes("%")[1]]
          : axes("s"),
        series: [
          { label: success ? "s since injection" : "UTC" },
          {
            label: success ? "success %" : "time to fail over",
            stroke: success ? "#18a058" : "#3d8bfd",
            width: 1.5,
            points: { show: !success, size: 5 }
          }
        ]
      };
    }

    function update() {
      var data = columns(readData(id));
      if (!data[0].length) {
        if (plot) {
          plot.destroy();
          plot = null;
          container.uplot = null;
        }
        container.textContent = "";
        var p = document.createElement("p");
        p.className = "muted small";
        p.textContent = empty;
        container.appendChild(p);
        return;
      }
      if (plot) {
        plot.setData(data);
      } else {
        container.textContent = "";
        plot = new uPlot(options(), data, container);
        container.uplot = plot; // for the browser tests: its scales are what the axes show
      }
    }

    update();
    window.addEventListener("resize", function () {
      if (plot) {
        plot.setSize({ width: Math.max(container.clientWidth - 12, 280), height: HEIGHT });
      }
    });
    return update;
  }

  function init() {
    if (!window.uPlot) {
      return;
    }
    var updates = [];
    document.querySelectorAll("[data-success-chart]").forEach(function (c) {
      updates.push(makeChart(c, "success"));
    });
    document.querySelectorAll("[data-trend-chart]").forEach(function (c) {
      updates.push(makeChart(c, "trend"));
    });
    // After htmx swapped the live part, its json_script holds the latest series.
    document.addEventListener("htmx:afterSettle", function () {
      updates.forEach(function (update) { update(); });
    });
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", init);
  } else {
    init();
  }
})();
