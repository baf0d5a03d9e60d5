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
  window.bindRecordingActions(box, reloadNow);
  function reloadNow() {
    clearTimeout(timer);
    refresh();
  }
  localTimes(box);
  timer = setTimeout(refresh, REFRESH_MS);
})();
