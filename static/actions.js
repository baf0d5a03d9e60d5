// Recording actions shared by the status and recording pages: cancel, retry, re-run, delete.
// Destructive ones ask first; `done` runs after the server answered (to redraw the page).
(function () {
  "use strict";
  window.bindRecordingActions = function (container, done) {
    container.addEventListener("click", (event) => {
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
        .finally(() => done(action));
    });
  };
})();
