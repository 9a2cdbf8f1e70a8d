// infermatrix site: filters for the matrix page and sortable tables. No dependencies; works
// opened from disk (file://). Filters read and write the URL's hash (#engine=x&verdict=fail),
// so a filtered view can be linked to.
(function () {
  "use strict";

  function params() {
    var out = {};
    location.hash.replace(/^#/, "").split("&").forEach(function (part) {
      var kv = part.split("=");
      if (kv[0]) { out[decodeURIComponent(kv[0])] = decodeURIComponent(kv[1] || ""); }
    });
    return out;
  }

  function applyFilters() {
    var selects = document.querySelectorAll("select[data-filter]");
    var wanted = {};
    selects.forEach(function (s) { if (s.value) { wanted[s.dataset.filter] = s.value; } });
    var shown = 0;
    document.querySelectorAll("tr[data-cell]").forEach(function (row) {
      var ok = Object.keys(wanted).every(function (k) {
        return (" " + (row.dataset[k] || "") + " ").indexOf(" " + wanted[k] + " ") >= 0;
      });
      row.hidden = !ok;
      if (ok) { shown += 1; }
    });
    var count = document.getElementById("shown");
    if (count) { count.textContent = String(shown); }
    var hash = Object.keys(wanted).map(function (k) {
      return encodeURIComponent(k) + "=" + encodeURIComponent(wanted[k]);
    }).join("&");
    if (("#" + hash) !== location.hash && !(hash === "" && location.hash === "")) {
      history.replaceState(null, "", hash ? "#" + hash : location.pathname);
    }
  }

  function setupFilters() {
    var selects = document.querySelectorAll("select[data-filter]");
    if (!selects.length) { return; }
    var given = params();
    selects.forEach(function (s) {
      if (given[s.dataset.filter] !== undefined) { s.value = given[s.dataset.filter]; }
      s.addEventListener("change", applyFilters);
    });
    var reset = document.getElementById("reset");
    if (reset) {
      reset.addEventListener("click", function () {
        selects.forEach(function (s) { s.value = ""; });
        applyFilters();
      });
    }
    window.addEventListener("hashchange", function () {
      var now = params();
      selects.forEach(function (s) { s.value = now[s.dataset.filter] || ""; });
      applyFilters();
    });
    applyFilters();
  }

  function cellValue(row, index) {
    var cell = row.children[index];
    if (!cell) { return ""; }
    var raw = cell.dataset.sort !== undefined ? cell.dataset.sort : cell.textContent.trim();
    var number = parseFloat(raw.replace(/[,\s]/g, ""));
    return isNaN(number) || !/^[-+]?[\d,.]/.test(raw.trim()) ? raw.toLowerCase() : number;
  }

  function setupSorting() {
    document.querySelectorAll("table").forEach(function (table) {
      var head = table.querySelector("thead tr") || table.querySelector("tr");
      if (!head || !table.tBodies.length) { return; }
      Array.prototype.forEach.call(head.children, function (th, index) {
        th.classList.add("sortable");
        th.title = "sort";
        th.addEventListener("click", function () {
          var body = table.tBodies[0];
          var rows = Array.prototype.slice.call(body.rows);
          var ascending = th.dataset.order !== "asc";
          Array.prototype.forEach.call(head.children, function (h) { delete h.dataset.order; });
          th.dataset.order = ascending ? "asc" : "desc";
          rows.sort(function (a, b) {
            var x = cellValue(a, index), y = cellValue(b, index);
            if (typeof x === typeof y) { return (x > y ? 1 : x < y ? -1 : 0) * (ascending ? 1 : -1); }
            return (typeof x === "number" ? -1 : 1) * (ascending ? 1 : -1);
          });
          rows.forEach(function (r) { body.appendChild(r); });
        });
      });
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    setupFilters();
    setupSorting();
  });
})();
