// Upload page: client-side checks, a queue of resumable (tus) uploads, then extraction polling per file.
(function () {
  "use strict";
  const ACCEPTED = [".zip", ".tar", ".tar.gz", ".tgz"];
  const POLL_MS = 300;
  const CHUNK_BYTES = 50 * 1024 * 1024;
  const RETRY_DELAYS = [0, 1000, 3000, 5000, 10000, 20000];
  const JOB_RETRIES = 5;
  const SPEED_WINDOW_MS = 3000;
  const MIB = 1024 * 1024;
  const ACTIVE = ["waiting", "uploading", "paused", "cancelling"];
  const $ = (id) => document.getElementById(id);
  const form = $("upload-form"), input = $("file-input"), zone = $("drop-zone"), button = $("upload-button");
  const maxBytes = Number($("max-size").dataset.bytes);
  const endpoint = new URL(form.dataset.endpoint, window.location.href).href;
  const queue = [];
  let current = null;

  function human(bytes) {
    const units = ["B", "KB", "MB", "GB", "TB"];
    let i = 0;
    while (bytes >= 1024 && i < units.length - 1) { bytes /= 1024; i += 1; }
    return bytes.toFixed(i ? 1 : 0) + " " + units[i];
  }
  $("max-size").textContent = human(maxBytes);

  function duration(seconds) {
    const s = Math.max(0, Math.round(seconds));
    if (s < 60) return s + " s";
    if (s < 3600) return Math.floor(s / 60) + " min " + (s % 60) + " s";
    return Math.floor(s / 3600) + " h " + Math.floor((s % 3600) / 60) + " min";
  }

  function element(tag, text, className) {
    const node = document.createElement(tag);
    if (text != null) node.textContent = text;
    if (className) node.className = className;
    return node;
  }

  function problemWith(file) {
    const name = file.name.toLowerCase();
    if (!ACCEPTED.some((ext) => name.endsWith(ext))) return "Only .zip, .tar, .tar.gz and .tgz archives are accepted.";
    if (file.size === 0) return "The file is empty.";
    if (file.size > maxBytes) return "The file is " + human(file.size) + "; the limit is " + human(maxBytes) + ".";
    return null;
  }

  function problemsFrom(details) {
    if (!details) return [];
    if (Array.isArray(details.problems)) return details.problems;
    if (details.entry) return ["Entry: " + details.entry];
    return Object.entries(details).map(([k, v]) => k + ": " + JSON.stringify(v));
  }


  function sameFile(a, b) {
    return a.name === b.name && a.size === b.size && a.lastModified === b.lastModified;
  }

  function isPending(file) {
    return queue.some((item) => sameFile(item.file, file) && ACTIVE.includes(item.state));
  }

  function enqueue(file) {
    const li = element("li", null, "queue-item");
    li.append(element("span", file.name, "queue-name"), " ", element("span", "(" + human(file.size) + ")", "muted"), " ",
      element("span", "", "badge queue-state"), element("div", null, "queue-detail"));
    const item = { file, li, state: null, upload: null, ready: false, samples: [] };
    queue.push(item);
    $("queue-list").append(li);
    $("queue").hidden = false;
    setState(item, "waiting");
  }

  function setState(item, state, detail) {
    item.state = state;
    item.li.dataset.state = state;
    item.li.querySelector(".queue-state").textContent = state;
    item.li.querySelector(".queue-state").className = "badge queue-state state-" + state;
    item.li.querySelector(".queue-detail").replaceChildren(...(detail || []));
    updateButton();
  }

  function doneDetail(recordingId) {
    const link = element("a", recordingId + " on the status page");
    link.href = "/status#rec-" + encodeURIComponent(recordingId);
    return [link];
  }

  function problemDetail(message, problems) {
    const list = element("ul", null, "queue-problems");
    list.append(...[message].concat(problems || []).map((p) => element("li", p)));
    return [list];
  }

  function updateButton() {
    button.disabled = current !== null || !queue.some((item) => item.state === "waiting");
  }


  function choose(files) {
    const chosen = Array.from(files || []);
    const lines = chosen.map((file) => {
      const problem = problemWith(file);
      if (!problem && !isPending(file)) enqueue(file);
      if (problem) return element("div", file.name + ": " + problem, "error");
      return element("div", file.name + " (" + human(file.size) + ")");
    });
    $("file-choice").replaceChildren(...(lines.length ? lines : [element("div", "No file chosen.", "error")]));
    updateButton();
  }

  input.addEventListener("change", () => { choose(input.files); input.value = ""; });
  ["dragenter", "dragover"].forEach((ev) => zone.addEventListener(ev, (e) => { e.preventDefault(); zone.classList.add("dragging"); }));
  ["dragleave", "drop"].forEach((ev) => zone.addEventListener(ev, (e) => { e.preventDefault(); zone.classList.remove("dragging"); }));
  zone.addEventListener("drop", (e) => choose(e.dataTransfer.files));


  function showPanel(item) {
    $("progress").hidden = false;
    $("result").hidden = true;
    $("phase-title").textContent = "Uploading";
    $("current-file").textContent = item.file.name;
    $("upload-bar").value = 0;
    ["upload-text", "upload-speed", "upload-eta", "extract-text"].forEach((id) => { $(id).textContent = ""; });
    $("resume-text").hidden = true;
    $("extract-bar").hidden = true;
    $("extract-bar").value = 0;
    showControls(true, false);
  }

  function showControls(visible, paused) {
    $("upload-controls").hidden = !visible;
    $("pause-button").hidden = paused;
    $("resume-button").hidden = !paused;
  }

  function showResult(ok, message, problems, recordingId) {
    $("result").hidden = false;
    $("result-message").textContent = message;
    $("result-message").className = ok ? "" : "error";
    $("problem-list").replaceChildren(...(problems || []).map((p) => element("li", p)));
    $("status-link").href = recordingId ? "/status#rec-" + encodeURIComponent(recordingId) : "/status";
  }

  // Speed over the last few seconds only, so a pause or a stall does not skew it for long.
  function speedOf(item, sent) {
    const now = performance.now();
    item.samples.push({ t: now, sent });
    while (item.samples.length > 2 && now - item.samples[0].t > SPEED_WINDOW_MS) item.samples.shift();
    const first = item.samples[0];
    const seconds = (now - first.t) / 1000;
    return seconds > 0.2 ? (sent - first.sent) / seconds : null;
  }

  function showUploadProgress(item, sent, total) {
    if (item !== current) return;
    const pct = total ? (100 * sent) / total : 0;
    $("upload-bar").value = pct;
    $("upload-text").textContent = human(sent) + " of " + human(total) + " (" + pct.toFixed(1) + " %)";
    const speed = speedOf(item, sent);
    $("upload-speed").textContent = speed == null ? "" : "· " + (speed / MIB).toFixed(1) + " MB/s";
    $("upload-eta").textContent = speed ? "· " + duration((total - sent) / speed) + " left" : "";
  }

  // A HEAD answer carries the offset the server already holds: that is where this upload resumes.
  function noteOffset(item, req, res) {
    if (req.getMethod() !== "HEAD" || res.getStatus() !== 200 || item !== current) return;
    const offset = parseInt(res.getHeader("Upload-Offset"), 10);
    const length = parseInt(res.getHeader("Upload-Length"), 10);
    if (!(offset > 0 && length > 0)) return;
    item.samples = [];
    $("resume-text").textContent =
      "Resuming from " + Math.floor((100 * offset) / length) + " % (" + human(offset) + " already on the server)";
    $("resume-text").hidden = false;
  }


  function startNext() {
    current = queue.find((item) => item.state === "waiting") || null;
    updateButton();
    if (current) beginUpload(current);
  }

  function beginUpload(item) {
    showPanel(item);
    setState(item, "uploading");
    item.upload = new tus.Upload(item.file, {
      endpoint,
      chunkSize: CHUNK_BYTES,
      retryDelays: RETRY_DELAYS,
      storeFingerprintForResuming: true,
      removeFingerprintOnSuccess: true,
      metadata: { filename: item.file.name, filetype: item.file.type || "application/octet-stream" },
      onAfterResponse: (req, res) => noteOffset(item, req, res),
      onProgress: (sent, total) => showUploadProgress(item, sent, total),
      onSuccess: () => uploaded(item),
      onError: (err) => uploadFailed(item, err),
    });
    item.upload.findPreviousUploads()
      .then((previous) => { if (previous.length) item.upload.resumeFromPreviousUpload(newest(previous)); })
      .catch(() => {})
      .then(() => {
        item.ready = true;
        if (item.state === "uploading") item.upload.start();
      });
  }

  function newest(previous) {
    return previous.slice().sort((a, b) => String(b.creationTime).localeCompare(String(a.creationTime)))[0];
  }

  // tus-js-client gives up at once while the browser reports being offline; wait for the network instead.
  function uploadFailed(item, err) {
    if (err && !err.originalResponse && navigator.onLine === false) return waitForNetwork(item);
    finish(item, "failed", false, uploadError(err));
  }

  function waitForNetwork(item) {
    $("phase-title").textContent = "Offline";
    $("upload-speed").textContent = "";
    $("upload-eta").textContent = "";
    $("resume-text").textContent = "The connection dropped; the upload goes on when the network is back.";
    $("resume-text").hidden = false;
    window.addEventListener("online", () => {
      if (item !== current || item.state !== "uploading") return;
      $("phase-title").textContent = "Uploading";
      item.samples = [];
      item.upload.start();
    }, { once: true });
  }

  function uploadError(err) {
    const res = err && err.originalResponse;
    if (res) {
      try {
        const body = JSON.parse(res.getBody());
        if (body && body.error) return body.error;
      } catch (e) { /* not JSON: fall through to the status */ }
      return "Upload failed (" + res.getStatus() + ")";
    }
    return "The connection to the server was lost. Choose the file again to resume.";
  }

  function uploadId(url) {
    return new URL(url, window.location.href).pathname.split("/").filter(Boolean).pop();
  }

  function uploaded(item) {
    showControls(false, false);
    $("upload-bar").value = 100;
    $("upload-speed").textContent = "";
    $("upload-eta").textContent = "";
    fetchJob(item, uploadId(item.upload.url), 0);
  }

  function fetchJob(item, id, attempt) {
    fetch(new URL(encodeURIComponent(id) + "/job", endpoint), { headers: { Accept: "application/json" } })
      .then((r) => r.json().catch(() => ({})).then((body) => ({ status: r.status, body })))
      .then(({ status, body }) => {
        if (status === 200) return pollExtraction(item, body.status_url || "/extract_status/" + body.job_id);
        if (status >= 500 && attempt < JOB_RETRIES) return retryJob(item, id, attempt);
        finish(item, "failed", false, body.error || "The server did not start processing the upload (" + status + ").");
      })
      .catch(() => {
        if (navigator.onLine === false) {
          return window.addEventListener("online", () => fetchJob(item, id, attempt), { once: true });
        }
        if (attempt < JOB_RETRIES) return retryJob(item, id, attempt);
        finish(item, "failed", false, "Lost the connection to the server.");
      });
  }

  function retryJob(item, id, attempt) {
    setTimeout(() => fetchJob(item, id, attempt + 1), POLL_MS * 5);
  }

  function pollExtraction(item, statusUrl) {
    setState(item, "extracting");
    $("phase-title").textContent = "Extracting and validating";
    $("extract-bar").hidden = false;
    fetch(statusUrl, { headers: { Accept: "application/json" } })
      .then((r) => r.json().then((body) => ({ ok: r.ok, body })))
      .then(({ ok, body }) => {
        if (!ok) return finish(item, "failed", false, body.error || "Could not read the extraction status.");
        showExtraction(body);
        if (body.status === "done") {
          const message = "Recording " + body.recording_id + " is valid and queued for processing.";
          return finish(item, "done", true, message, [], body.recording_id);
        }
        if (body.status === "error") {
          return finish(item, "refused", false, body.message || "The archive was refused.", problemsFrom(body.details));
        }
        setTimeout(() => pollExtraction(item, statusUrl), POLL_MS);
      })
      .catch(() => setTimeout(() => pollExtraction(item, statusUrl), POLL_MS * 5));
  }

  function showExtraction(body) {
    const percent = body.percent || 0;
    $("extract-bar").value = percent;
    $("extract-text").textContent = (body.phase || body.status) + ": " + percent.toFixed(1) + " % · " +
      (body.extracted_files || 0) + " files · " + human(body.extract_size || 0);
  }

  const TITLES = { done: "Done", refused: "Refused", failed: "Upload failed", cancelled: "Cancelled" };

  function finish(item, state, ok, message, problems, recordingId) {
    const detail = state === "done" ? doneDetail(recordingId)
      : state === "cancelled" ? [element("div", message, "muted")] : problemDetail(message, problems);
    setState(item, state, detail);
    if (item === current) {
      $("phase-title").textContent = TITLES[state];
      showControls(false, false);
      showResult(ok, message, problems, recordingId);
      startNext();
    }
  }


  function pause() {
    if (!current || current.state !== "uploading") return;
    current.upload.abort(false);
    setState(current, "paused");
    $("phase-title").textContent = "Paused";
    $("upload-speed").textContent = "";
    $("upload-eta").textContent = "";
    showControls(true, true);
  }

  function resume() {
    if (!current || current.state !== "paused") return;
    current.samples = [];
    setState(current, "uploading");
    $("phase-title").textContent = "Uploading";
    showControls(true, false);
    if (current.ready) current.upload.start();
  }

  function cancel() {
    if (!current || !["uploading", "paused"].includes(current.state)) return;
    const item = current;
    setState(item, "cancelling");
    showControls(false, false);
    $("phase-title").textContent = "Cancelling";
    // Terminate rather than just stop: the server frees the space, and picking the file again starts afresh.
    item.upload.abort(true)
      .then(() => finish(item, "cancelled", false, "Upload cancelled; the partial upload was deleted."))
      .catch(() => finish(item, "cancelled", false, "Upload cancelled; the server discards the partial upload when it expires."));
  }

  $("pause-button").addEventListener("click", pause);
  $("resume-button").addEventListener("click", resume);
  $("cancel-button").addEventListener("click", cancel);

  form.addEventListener("submit", (e) => {
    e.preventDefault();
    if (!current) startNext();
  });
})();
