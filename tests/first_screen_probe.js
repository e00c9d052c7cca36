// Appended to a copy of a report by tests/test_report.py: once every plotly figure is drawn,
// writes where the status rows and banners are, table sizes and axis ranges into the page.
(function () {
  function measure() {
    var rows = Array.prototype.map.call(
      document.querySelectorAll("table.msl-status tbody tr"), function (tr) {
        var r = tr.getBoundingClientRect();
        return {text: tr.innerText, top: r.top + window.scrollY, bottom: r.bottom + window.scrollY};
      });
    var banners = Array.prototype.map.call(document.querySelectorAll(".msl-banner"), function (b) {
      var r = b.getBoundingClientRect();
      return {text: b.innerText, bottom: r.bottom + window.scrollY};
    });
    var tables = Array.prototype.map.call(document.querySelectorAll("table"), function (t) {
      return t.querySelectorAll("tbody tr").length;
    });
    var figures = Array.prototype.map.call(document.querySelectorAll(".plotly-graph-div"), function (gd) {
      var axes = {};
      if (gd._fullLayout) {
        Object.keys(gd._fullLayout).filter(function (k) { return /^[xy]axis\d*$/.test(k); })
          .forEach(function (k) {
            var a = gd._fullLayout[k];
            axes[k] = {type: a.type, range: a.range};
          });
      }
      var data = (gd.data || []).map(function (t) {
        return {x: t.x ? Array.prototype.slice.call(t.x) : null,
                y: t.y ? Array.prototype.slice.call(t.y) : null,
                xaxis: t.xaxis || "x", yaxis: t.yaxis || "y", type: t.type || "scatter",
                orientation: t.orientation || "v"};
      });
      return {drawn: !!gd._fullLayout, axes: axes, data: data,
              title: gd.layout && gd.layout.title && (gd.layout.title.text || gd.layout.title)};
    });
    return {rows: rows, banners: banners, tables: tables, figures: figures,
            viewport: window.innerHeight, height: document.documentElement.scrollHeight};
  }
  var tries = 0;
  function wait() {
    var pending = Array.prototype.some.call(document.querySelectorAll(".plotly-graph-div"),
                                            function (gd) { return !gd._fullLayout; });
    if (pending && tries++ < 100) { setTimeout(wait, 100); return; }
    var out = document.createElement("pre");
    out.id = "msl-probe";
    out.textContent = JSON.stringify(measure());
    document.body.appendChild(out);
  }
  window.addEventListener("load", function () { setTimeout(wait, 100); });
})();
