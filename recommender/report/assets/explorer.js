// Explorer: pick an item, show its related items by each scorer side by side.
(function () {
  "use strict";
  var node = document.getElementById("explorer-data");
  if (!node) return;
  var data = JSON.parse(node.textContent);
  var items = data.items, byId = {}, queryPos = {};
  items.forEach(function (it, i) { byId[it[0]] = i; });
  data.queries.forEach(function (u, i) { queryPos[u] = i; });
  var input = document.getElementById("explorer-input");
  var out = document.getElementById("explorer-out");
  var title = document.getElementById("explorer-title");
  var list = document.getElementById("explorer-items");

  function label(u) { var it = items[u]; return it[1] ? it[0] + " — " + it[1] : it[0]; }
  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text;
    return e;
  }
  data.queries.forEach(function (u) {
    var o = document.createElement("option"); o.value = label(u); list.appendChild(o);
  });

  function itemCell(u) {
    var td = el("td", "rel"), it = items[u];
    var name = it[1] || it[0];
    if (u in queryPos) {
      var a = el("a", null, name); a.dataset.u = u; a.title = "show " + it[0];
      a.addEventListener("click", function () { show(u); });
      td.appendChild(a);
    } else {
      td.appendChild(el("span", null, name));
    }
    td.appendChild(el("br"));
    td.appendChild(el("span", "id", it[0]));
    if (it[2]) td.appendChild(el("span", "cat", it[2]));
    return td;
  }

  function show(u) {
    var q = queryPos[u];
    if (q === undefined) return false;
    var it = items[u];
    input.value = label(u);
    title.textContent = "";
    title.appendChild(el("strong", null, it[1] || it[0]));
    title.appendChild(document.createTextNode(" "));
    title.appendChild(el("span", "id", it[0] + (it[2] ? " · " + it[2] : "") + " · " +
                          it[3].toLocaleString("en-US") + " training engagements"));
    out.textContent = "";
    var seen = {};
    data.scorers.forEach(function (s) {
      (s.related[q] || []).forEach(function (r) { seen[r] = (seen[r] || 0) + 1; });
    });
    data.scorers.forEach(function (s) {
      var box = el("div", "scorer");
      box.appendChild(el("h3", null, s.name));
      var table = el("table", "related"), rel = s.related[q] || [], sc = s.scores[q] || [];
      if (!rel.length) {
        var tr0 = el("tr"); tr0.appendChild(el("td", "muted", "not in this scorer's table"));
        table.appendChild(tr0);
      }
      rel.forEach(function (r, i) {
        var tr = el("tr", seen[r] > 1 && data.scorers.length > 1 ? "shared" : "");
        tr.appendChild(el("td", "rank", String(i + 1)));
        tr.appendChild(itemCell(r));
        var v = sc[i];
        tr.appendChild(el("td", "score", v === null || v === undefined ? "–" :
          (Number.isInteger(v) ? v.toLocaleString("en-US") : v.toFixed(3))));
        table.appendChild(tr);
      });
      box.appendChild(table);
      out.appendChild(box);
    });
    return true;
  }

  function pick(text) {
    text = text.trim();
    var id = text.split(" — ")[0];
    if (id in byId && show(byId[id])) return;
    var low = text.toLowerCase();
    for (var i = 0; i < data.queries.length && low.length > 2; i++) {
      var u = data.queries[i];
      if ((items[u][1] || "").toLowerCase().indexOf(low) >= 0) { show(u); return; }
    }
  }
  input.addEventListener("change", function () { pick(input.value); });
  input.addEventListener("keydown", function (e) { if (e.key === "Enter") pick(input.value); });
  document.getElementById("explorer-random").addEventListener("click", function () {
    show(data.queries[Math.floor(Math.random() * data.queries.length)]);
  });
  if (data.queries.length) show(data.queries[0]);
})();
