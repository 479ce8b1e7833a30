// ssf-hub console: fetches server-rendered fragments with the admin token and shows them.
// The token lives in this tab's sessionStorage only and travels as an Authorization header;
// the console sets no cookie, so no request it makes is ever ambient.
"use strict";

const TOKEN_KEY = "ssf-hub-console-token";
const API = "/console/api";
let watching = null; // the AbortController of the live drill stream, if any

const $ = (id) => document.getElementById(id);

function token() {
  return sessionStorage.getItem(TOKEN_KEY);
}

function notify(text, kind) {
  const notice = $("notice");
  notice.textContent = text || "";
  notice.className = kind || "";
  notice.hidden = !text;
}

function showSignIn(message) {
  sessionStorage.removeItem(TOKEN_KEY);
  $("nav").hidden = true;
  $("main").replaceChildren();
  $("sign-in").hidden = false;
  notify(message, "error");
}

async function api(path, options) {
  const request = Object.assign({ cache: "no-store", credentials: "omit" }, options || {});
  request.headers = Object.assign({}, request.headers, { Authorization: "Bearer " + token() });
  const response = await fetch(API + path, request);
  if (response.status === 401 || response.status === 403) {
    showSignIn(response.status === 401 ? "The token was refused: sign in again." : "This token has no ssf.admin scope.");
    throw new Error("not signed in");
  }
  if (!response.ok) {
    let description = response.statusText;
    try {
      description = (await response.json()).description || description;
    } catch (ignored) { /* not JSON */ }
    notify(description, "error");
    throw new Error(description);
  }
  return response;
}

function stopWatching() {
  if (watching) {
    watching.abort();
    watching = null;
  }
}

// Only the console's own fragments are ever put into the page: a crafted link such as
// #/../../ssf/admin/streams must not turn another endpoint's JSON into markup.
function fragmentPath(path) {
  return path.startsWith("/") && !path.startsWith("//") && !path.includes("..") && !path.includes("\\");
}

async function html(response) {
  if (!(response.headers.get("content-type") || "").startsWith("text/html")) {
    notify("unexpected answer from the hub", "error");
    throw new Error("not a console fragment");
  }
  return response.text();
}

async function show(path) {
  stopWatching();
  if (!fragmentPath(path)) {
    notify("no such console page", "error");
    return;
  }
  const response = await api(path);
  notify("");
  $("main").innerHTML = await html(response);
  afterRender($("main"));
}

function route() {
  if (!token()) {
    showSignIn("");
    return;
  }
  $("sign-in").hidden = true;
  $("nav").hidden = false;
  const path = location.hash.replace(/^#/, "") || "/overview";
  for (const link of document.querySelectorAll("#nav a")) {
    link.classList.toggle("current", path.startsWith(link.getAttribute("href").slice(1).split("?")[0]));
  }
  show(path).catch(() => {});
}

function formFields(form) {
  const fields = {};
  for (const [name, value] of new FormData(form).entries()) {
    fields[name] = String(value);
  }
  return fields;
}

async function submit(form) {
  const confirmText = form.dataset.confirm;
  if (!fragmentPath(form.dataset.get || form.dataset.post || "")) {
    return;
  }
  if (form.dataset.get) {
    const query = new URLSearchParams(formFields(form)).toString();
    location.hash = "#" + form.dataset.get + (query ? "?" + query : "");
    return;
  }
  if (confirmText && !window.confirm(confirmText)) {
    return;
  }
  stopWatching();
  const response = await api(form.dataset.post, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(formFields(form)),
  });
  const target = form.dataset.target ? $(form.dataset.target) : $("main");
  target.innerHTML = await html(response);
  afterRender(target);
}

function afterRender(root) {
  for (const select of root.querySelectorAll("select[data-navigate]")) {
    select.addEventListener("change", () => {
      location.hash = "#" + select.dataset.navigate + encodeURIComponent(select.value);
    });
  }
  const watch = root.querySelector("[data-watch]");
  if (watch) {
    watchDrill(watch.dataset.watch).catch(() => {});
  }
}

// Server-sent events over fetch (EventSource cannot send an Authorization header).
async function watchDrill(path) {
  stopWatching();
  const controller = new AbortController();
  watching = controller;
  const response = await api(path, { signal: controller.signal });
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) {
      break;
    }
    buffer += decoder.decode(value, { stream: true });
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      handleEvent(buffer.slice(0, end));
      buffer = buffer.slice(end + 2);
    }
  }
  if (watching === controller) {
    watching = null;
  }
}

function handleEvent(block) {
  let name = "message";
  let data = "";
  for (const line of block.split("\n")) {
    if (line.startsWith("event: ")) {
      name = line.slice(7);
    } else if (line.startsWith("data: ")) {
      data += line.slice(6);
    }
  }
  const state = $("watch-state");
  if (name === "fanout") {
    const update = JSON.parse(data);
    const rows = $("fanout-rows");
    if (rows) {
      rows.innerHTML = update.html;
    }
    if (state) {
      state.textContent = update.finished ? "every stream finished; waiting for receipts\u2026" : "delivering\u2026";
    }
  } else if (name === "done" && state) {
    state.textContent = "done";
    state.classList.add("done");
  }
}

document.addEventListener("submit", (event) => {
  const form = event.target;
  event.preventDefault();
  if (form.id === "sign-in-form") {
    sessionStorage.setItem(TOKEN_KEY, $("token").value.trim());
    $("token").value = "";
    route();
    return;
  }
  submit(form).catch(() => {});
});

document.addEventListener("DOMContentLoaded", () => {
  $("sign-out").addEventListener("click", () => {
    stopWatching();
    showSignIn("Signed out.");
  });
  window.addEventListener("hashchange", route);
  route();
});
