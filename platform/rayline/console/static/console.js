// Rayline console: the little the pages need beyond HTML. No inline script anywhere (the
// Content-Security-Policy forbids them): behaviour is attached here, to data-* attributes.
// - [data-log-stream]: a live tail (Server-Sent Events) appended as text, never as markup,
//   open only while the tab is visible;
// - [data-confirm] forms: asked before they are sent;
// - [data-reveal-token] / [data-copy]: the endpoint token, fetched only when asked for, and copy.
"use strict";

const FINAL = new Set(["Succeeded", "Failed", "Error"]);

function csrfToken() {
  const meta = document.querySelector('meta[name="csrf-token"]');
  return meta ? meta.content : "";
}

function formatTime(iso) {
  // As the server renders it: "YYYY-MM-DD HH:MM:SS UTC".
  return iso.replace("T", " ").replace(/\.\d+/, "").replace("Z", "") + " UTC";
}

function appendLine(box, line) {
  const empty = box.querySelector("[data-empty]");
  if (empty) empty.remove();
  const atBottom = box.scrollTop + box.clientHeight >= box.scrollHeight - 4;
  const row = document.createElement("div");
  row.className = "line line-" + (line.stream === "stderr" ? "stderr" : "stdout");
  const time = document.createElement("time");
  time.textContent = formatTime(line.timestamp);
  const message = document.createElement("span");
  message.className = "message";
  message.textContent = line.message;
  row.append(time, message);
  box.append(row);
  if (atBottom) box.scrollTop = box.scrollHeight;
}

function showStatus(status) {
  const holder = document.querySelector("[data-live-status]");
  if (!holder) return;
  const badge = document.createElement("span");
  badge.className = "status status-" + status.toLowerCase().replace(/ /g, "-");
  badge.textContent = status;
  holder.replaceChildren(badge);
}

function setHint(text) {
  const hint = document.querySelector("[data-live-hint]");
  if (hint) hint.textContent = text;
}

// A live tail follows its page while the tab is shown: hidden, its stream is closed (no request
// held open, no poll on the server); shown again, it reopens from the last line it got.
function startTail(box) {
  if (!("live" in box.dataset) || typeof EventSource === "undefined") return;
  let cursor = box.dataset.after || "0";
  let source = null;
  let finished = false;
  const stop = () => {
    if (source) source.close();
    source = null;
  };
  const open = () => {
    if (source || finished) return;
    source = new EventSource(box.dataset.logStream + "?after=" + encodeURIComponent(cursor));
    source.addEventListener("log", (event) => {
      if (event.lastEventId) cursor = event.lastEventId;
      appendLine(box, JSON.parse(event.data));
    });
    source.addEventListener("status", (event) => showStatus(JSON.parse(event.data).status));
    source.addEventListener("end", (event) => {
      finished = true;
      stop();
      const status = JSON.parse(event.data).status;
      showStatus(status);
      setHint("Ended: " + status + ".");
      // The page shows the outputs and the error once the execution has ended.
      if ("reloadOnEnd" in box.dataset && FINAL.has(status)) window.location.reload();
    });
    source.addEventListener("signed-out", () => {
      finished = true;
      stop();
      setHint("Your session has ended: sign in again (reload the page) to resume the live tail.");
    });
    const opened = source;
    opened.addEventListener("error", () => {
      // Closed by the server (a 401 once the session has ended): the browser does not retry.
      if (opened.readyState === EventSource.CLOSED && source === opened) {
        finished = true;
        source = null;
        setHint("The live tail stopped; reload the page to resume it.");
      }
    });
  };
  document.addEventListener("visibilitychange", () => {
    if (document.visibilityState === "hidden") stop();
    else open();
  });
  box.scrollTop = box.scrollHeight;
  if (document.visibilityState !== "hidden") open();
}

async function revealToken(button) {
  const holder = document.querySelector("[data-token]");
  if (!holder) return;
  const answer = await fetch(holder.dataset.tokenUrl, {
    method: "POST",
    headers: { "X-CSRF-Token": csrfToken(), Accept: "application/json" },
    credentials: "same-origin",
  });
  if (!answer.ok) {
    holder.textContent = "(could not read the token: reload the page)";
    return;
  }
  holder.textContent = (await answer.json()).endpoint_token;
  button.disabled = true;
}

async function copyText(button) {
  const target = document.querySelector(button.dataset.copy);
  if (!target) return;
  await navigator.clipboard.writeText(target.textContent);
  const label = button.textContent;
  button.textContent = "Copied";
  setTimeout(() => { button.textContent = label; }, 1500);
}

document.addEventListener("DOMContentLoaded", () => {
  document.querySelectorAll("[data-log-stream]").forEach(startTail);
  document.querySelectorAll("form[data-confirm]").forEach((form) => {
    form.addEventListener("submit", (event) => {
      if (!window.confirm(form.dataset.confirm)) event.preventDefault();
    });
  });
  document.querySelectorAll("[data-reveal-token]").forEach((button) => {
    button.addEventListener("click", () => revealToken(button));
  });
  document.querySelectorAll("[data-copy]").forEach((button) => {
    button.addEventListener("click", () => copyText(button));
  });
});
