// Rayline console: the little the pages need beyond HTML. No inline script anywhere (the
// Content-Security-Policy forbids them): behaviour is attached here, to data-* attributes.
// - [data-log-stream]: a live tail (Server-Sent Events) appended as text, never as markup;
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

function startTail(box) {
  if (!("live" in box.dataset) || typeof EventSource === "undefined") return;
  const url = box.dataset.logStream + "?after=" + encodeURIComponent(box.dataset.after || "0");
  const source = new EventSource(url);
  box.scrollTop = box.scrollHeight;
  source.addEventListener("log", (event) => appendLine(box, JSON.parse(event.data)));
  source.addEventListener("status", (event) => showStatus(JSON.parse(event.data).status));
  source.addEventListener("end", (event) => {
    source.close();
    const status = JSON.parse(event.data).status;
    showStatus(status);
    const hint = document.querySelector("[data-live-hint]");
    if (hint) hint.textContent = "Ended: " + status + ".";
    // The page shows the outputs and the error once the execution has ended.
    if ("reloadOnEnd" in box.dataset && FINAL.has(status)) window.location.reload();
  });
  source.addEventListener("error", () => {
    // Closed by the server (a 401 once the session has ended): the browser does not retry.
    if (source.readyState === EventSource.CLOSED) {
      const hint = document.querySelector("[data-live-hint]");
      if (hint) hint.textContent = "The live tail stopped; reload the page to resume it.";
    }
  });
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
