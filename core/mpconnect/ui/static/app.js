// The status page's behaviour: local times, charts (uPlot, shipped with the page) and
// live updates by polling the page's JSON twin. No other host is ever contacted.
(function () {
  "use strict";

  function localTimes(root) {
    root.querySelectorAll("time[data-ts]").forEach(function (el) {
      var date = new Date(parseFloat(el.dataset.ts) * 1000);
      el.textContent = date.toLocaleString(undefined, {
        year: "numeric", month: "short", day: "numeric",
        hour: "2-digit", minute: "2-digit", second: "2-digit", timeZoneName: "short"
      });
    });
  }

  function readJson(root, id) {
    var el = root.querySelector("#" + id);
    return el ? JSON.parse(el.textContent) : null;
  }

  function width(el) { return Math.max(el.clientWidth || 0, 280); }

  // A lone point gets an hour either side instead of uPlot's default span of years.
  var timeScale = { time: true, range: function (u, min, max) {
    return min === max ? [min - 3600, max + 3600] : [min, max];
  } };

  function historyChart(root) {
    var el = root.querySelector("#history-chart");
    var data = readJson(root, "history-data");
    if (!el || !data || typeof uPlot === "undefined") return;
    var xs = data.map(function (d) { return d.started_at; });
    var records = data.map(function (d) { return d.imported; });
    var durations = data.map(function (d) { return d.duration; });
    var style = getComputedStyle(document.documentElement);
    new uPlot({
      width: width(el), height: 240, scales: { x: timeScale },
      series: [
        {},
        { label: "records", stroke: style.getPropertyValue("--accent").trim() || "#4f44e0",
          width: 2, scale: "n", points: { show: true } },
        { label: "duration (s)", stroke: style.getPropertyValue("--warn").trim() || "#a15c00",
          width: 2, scale: "s", points: { show: true } }
      ],
      axes: [{}, { scale: "n", label: "records" },
             { scale: "s", side: 1, label: "seconds", grid: { show: false } }]
    }, [xs, records, durations], el);
    el.dataset.drawn = "true";
  }

  function throughputChart(root) {
    var el = root.querySelector("#throughput-chart");
    var data = readJson(root, "throughput-data");
    if (!el || !data || typeof uPlot === "undefined") return;
    var style = getComputedStyle(document.documentElement);
    new uPlot({
      width: width(el), height: 240, scales: { x: timeScale },
      series: [{}, { label: "records imported", stroke:
        style.getPropertyValue("--accent").trim() || "#4f44e0", width: 2,
        points: { show: true } }],
      axes: [{}, { label: "records" }]
    }, [data.map(function (d) { return d.time; }),
        data.map(function (d) { return d.imported; })], el);
    el.dataset.drawn = "true";
  }

  function enhance(root) {
    localTimes(root);
    historyChart(root);
    throughputChart(root);
  }

  var FOCUSABLE = "a[href], button, input, select, textarea, summary, [tabindex]";

  // What a refresh must give back: the element that has the keyboard focus (found again
  // by id, else by its link or text, else by its place among focusable elements) and
  // which <details> are open, so that a keyboard or screen-reader user stays in place.
  function remember(main) {
    var el = document.activeElement;
    var open = Array.prototype.map.call(main.querySelectorAll("details"), function (d) {
      return d.open;
    });
    if (!el || el === main || !main.contains(el)) return { focus: null, open: open };
    var focusable = Array.prototype.slice.call(main.querySelectorAll(FOCUSABLE));
    return { open: open, focus: { id: el.id, href: el.getAttribute("href"),
      text: el.textContent, tag: el.tagName, index: focusable.indexOf(el) } };
  }

  function restore(main, kept) {
    main.querySelectorAll("details").forEach(function (d, i) {
      if (i < kept.open.length) d.open = kept.open[i];
    });
    var key = kept.focus;
    if (!key) return;
    var focusable = Array.prototype.slice.call(main.querySelectorAll(FOCUSABLE));
    var target = key.id ? document.getElementById(key.id) : null;
    if (!target) {
      target = focusable.filter(function (el) {
        return el.tagName === key.tag && el.getAttribute("href") === key.href &&
          el.textContent === key.text;
      })[0] || focusable[key.index] || main;
    }
    target.focus({ preventScroll: true });
  }

  function poll() {
    var api = document.body.dataset.api;
    var seconds = parseFloat(document.body.dataset.poll || "0");
    if (!api || !seconds) return;
    var last = null;
    function tick() {
      if (document.hidden) return;
      fetch(api, { credentials: "same-origin", headers: { "Accept": "application/json" } })
        .then(function (r) { return r.ok ? r.text() : null; })
        .then(function (text) {
          if (text === null) return;
          var stamp = document.getElementById("updated");
          if (stamp) stamp.textContent = "updated " + new Date().toLocaleTimeString();
          if (last !== null && text !== last) return refresh();
          last = text;
        })
        .catch(function () {});
    }
    function refresh() {
      return fetch(location.pathname + location.search, { credentials: "same-origin" })
        .then(function (r) { return r.ok ? r.text() : null; })
        .then(function (html) {
          if (html === null) return;
          var fresh = new DOMParser().parseFromString(html, "text/html").getElementById("main");
          var main = document.getElementById("main");
          if (!fresh || !main) return;
          var kept = remember(main);
          main.innerHTML = fresh.innerHTML;
          enhance(main);
          restore(main, kept);
          last = null;
          tick();
        });
    }
    tick();
    setInterval(tick, seconds * 1000);
  }

  document.addEventListener("DOMContentLoaded", function () {
    enhance(document);
    poll();
  });
})();
