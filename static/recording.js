// Recording page: local times, the log tail (polled every 2 s while the job is live), actions.
(function () {
  "use strict";
  const POLL_MS = 2000;
  const panel = document.getElementById("recording");
  const tail = document.getElementById("log-tail");
  const live = panel.dataset.live === "yes";
  document.querySelectorAll("time[datetime]").forEach((t) => {
    const d = new Date(t.getAttribute("datetime"));
    if (t.getAttribute("datetime") && !isNaN(d)) t.textContent = d.toLocaleString();
  });
  function pollLog() {
    fetch(tail.dataset.url)
      .then((r) => (r.ok ? r.text() : "(no log yet)"))
      .then((text) => {
        const atBottom = tail.scrollTop + tail.clientHeight >= tail.scrollHeight - 4;
        tail.textContent = text;
        if (atBottom) tail.scrollTop = tail.scrollHeight;
      })
      .catch(() => {})
      .finally(() => { if (live) setTimeout(pollLog, POLL_MS); });
  }
  // The page itself reloads while the job runs, so states and stage times stay current.
  if (live) setTimeout(() => window.location.reload(), 15000);
  window.bindRecordingActions(panel, (action) => {
    window.location.href = action === "delete" ? "/status" : window.location.href;
  });
  pollLog();
})();
