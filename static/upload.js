// Upload page: client-side checks, XHR upload with byte progress, then extraction polling.
(function () {
  "use strict";
  const ACCEPTED = [".zip", ".tar", ".tar.gz", ".tgz"];
  const POLL_MS = 300;
  const $ = (id) => document.getElementById(id);
  const form = $("upload-form"), input = $("file-input"), zone = $("drop-zone"), button = $("upload-button");
  const maxBytes = Number($("max-size").dataset.bytes);
  let chosen = null;

  function human(bytes) {
    const units = ["B", "KB", "MB", "GB", "TB"];
    let i = 0;
    while (bytes >= 1024 && i < units.length - 1) { bytes /= 1024; i += 1; }
    return bytes.toFixed(i ? 1 : 0) + " " + units[i];
  }
  $("max-size").textContent = human(maxBytes);

  function problemWith(file) {
    const name = file.name.toLowerCase();
    if (!ACCEPTED.some((ext) => name.endsWith(ext))) return "Only .zip, .tar, .tar.gz and .tgz archives are accepted.";
    if (file.size === 0) return "The file is empty.";
    if (file.size > maxBytes) return "The file is " + human(file.size) + "; the limit is " + human(maxBytes) + ".";
    return null;
  }

  function choose(file) {
    const problem = file ? problemWith(file) : "No file chosen.";
    chosen = problem ? null : file;
    $("file-choice").textContent = problem || file.name + " (" + human(file.size) + ")";
    $("file-choice").className = problem ? "error" : "muted";
    button.disabled = !chosen;
  }

  input.addEventListener("change", () => choose(input.files[0]));
  ["dragenter", "dragover"].forEach((ev) => zone.addEventListener(ev, (e) => { e.preventDefault(); zone.classList.add("dragging"); }));
  ["dragleave", "drop"].forEach((ev) => zone.addEventListener(ev, (e) => { e.preventDefault(); zone.classList.remove("dragging"); }));
  zone.addEventListener("drop", (e) => choose(e.dataTransfer.files[0]));

  function showResult(ok, message, problems) {
    $("result").hidden = false;
    $("result-message").textContent = message;
    $("result-message").className = ok ? "" : "error";
    const list = $("problem-list");
    list.replaceChildren(...(problems || []).map((p) => { const li = document.createElement("li"); li.textContent = p; return li; }));
    button.disabled = false;
  }

  function problemsFrom(details) {
    if (!details) return [];
    if (Array.isArray(details.problems)) return details.problems;
    if (details.entry) return ["Entry: " + details.entry];
    return Object.entries(details).map(([k, v]) => k + ": " + JSON.stringify(v));
  }

  function pollExtraction(jobId) {
    $("phase-title").textContent = "Extracting and validating";
    $("extract-bar").hidden = false;
    fetch("/extract_status/" + jobId, { headers: { Accept: "application/json" } })
      .then((r) => r.json().then((body) => ({ ok: r.ok, body })))
      .then(({ ok, body }) => {
        if (!ok) return showResult(false, body.error || "Could not read the extraction status.");
        $("extract-bar").value = body.percent || 0;
        $("extract-text").textContent = (body.phase || body.status) + ": " + (body.percent || 0).toFixed(1) + " % · " +
          body.extracted_files + " files · " + human(body.extract_size || 0);
        if (body.status === "done") {
          $("phase-title").textContent = "Done";
          $("status-link").href = "/status#rec-" + body.recording_id;
          return showResult(true, "Recording " + body.recording_id + " is valid and queued for processing.");
        }
        if (body.status === "error") {
          $("phase-title").textContent = "Refused";
          return showResult(false, body.message || "The archive was refused.", problemsFrom(body.details));
        }
        setTimeout(() => pollExtraction(jobId), POLL_MS);
      })
      .catch(() => setTimeout(() => pollExtraction(jobId), POLL_MS * 5));
  }

  form.addEventListener("submit", (e) => {
    e.preventDefault();
    if (!chosen) return;
    button.disabled = true;
    $("result").hidden = true;
    $("progress").hidden = false;
    $("phase-title").textContent = "Uploading";
    $("extract-bar").hidden = true;
    $("extract-text").textContent = "";
    const data = new FormData();
    data.append("file", chosen, chosen.name);
    const xhr = new XMLHttpRequest();
    xhr.open("POST", form.action);
    xhr.setRequestHeader("Accept", "application/json");
    xhr.upload.onprogress = (ev) => {
      if (!ev.lengthComputable) return;
      const pct = (100 * ev.loaded) / ev.total;
      $("upload-bar").value = pct;
      $("upload-text").textContent = human(ev.loaded) + " of " + human(ev.total) + " (" + pct.toFixed(1) + " %)";
    };
    xhr.onload = () => {
      let body = {};
      try { body = JSON.parse(xhr.responseText); } catch (err) { body = { error: "Unexpected answer from the server (" + xhr.status + ")" }; }
      if (xhr.status === 202) return pollExtraction(body.job_id);
      $("phase-title").textContent = "Refused";
      showResult(false, body.error || "Upload failed (" + xhr.status + ")", problemsFrom(body.details));
    };
    xhr.onerror = () => showResult(false, "The connection dropped during the upload. Please try again.");
    xhr.send(data);
  });
})();
