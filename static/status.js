// Status page: refresh the table every 10 s in place, keeping the filter and scroll position.
(function () {
  "use strict";
  const REFRESH_MS = 10000;
  const box = document.getElementById("status-table");
  let timer = null;
  function localTimes(root) {
    root.querySelectorAll("time[datetime]").forEach((t) => {
      const d = new Date(t.getAttribute("datetime"));
      if (!isNaN(d)) t.textContent = d.toLocaleString();
    });
  }
  function refresh() {
    const url = new URL(box.dataset.refreshUrl, window.location.origin);
    url.searchParams.set("partial", "1");
    fetch(url, { headers: { Accept: "text/html" } })
      .then((r) => (r.ok ? r.text() : Promise.reject(r.status)))
      .then((html) => { box.innerHTML = html; localTimes(box); })
      .catch(() => {})
      .finally(() => { timer = setTimeout(refresh, REFRESH_MS); });
  }
  // Row actions: cancel, retry, re-run, delete (the destructive ones ask first).
  box.addEventListener("click", (event) => {
    const button = event.target.closest("button[data-action]");
    if (!button) return;
    if (button.dataset.confirm && !window.confirm(button.dataset.confirm)) return;
    const { action, rid } = button.dataset;
    const url = "/api/recordings/" + encodeURIComponent(rid) + (action === "delete" ? "" : "/" + action);
    button.disabled = true;
    fetch(url, { method: action === "delete" ? "DELETE" : "POST", headers: { Accept: "application/json" } })
      .then((r) => r.json().then((body) => ({ ok: r.ok, body })))
      .then(({ ok, body }) => { if (!ok) window.alert(body.error || "The action failed."); })
      .catch(() => window.alert("The server did not answer; try again."))
      .finally(reloadNow);
  });
  function reloadNow() {
    clearTimeout(timer);
    refresh();
  }
  localTimes(box);
  timer = setTimeout(refresh, REFRESH_MS);
})();
