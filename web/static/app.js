// Parley web client: the page around the WebAssembly module (web/wasm),
// which holds every key and runs MLS. This script only moves text between
// the module and the page, always through textContent (never HTML), and
// loads the module with Subresource Integrity from the page's meta tag.
"use strict";

const $ = (id) => document.getElementById(id);
let current = null;      // the open conversation ("@bob", "#team")
let self = null;         // {server, user, device}

function show(id) {
  for (const s of ["unlock", "link", "chat"]) $(s).hidden = s !== id;
}
function status(text) { $("status").textContent = text; }
function fail(err) {
  const e = $("error");
  e.textContent = String(err && err.message ? err.message : err);
  e.hidden = false;
}
function clearError() { $("error").hidden = true; }

async function start() {
  // One tab at a time: the module keeps the profile's rows in memory,
  // and two tabs writing the same IndexedDB would undo each other.
  if (navigator.locks) {
    const got = await new Promise((resolve) => {
      navigator.locks.request("parley-profile", { ifAvailable: true }, (lock) => {
        resolve(lock !== null);
        return lock ? new Promise(() => {}) : undefined; // hold until the tab closes
      });
    });
    if (!got) { status("Parley is open in another tab of this browser."); return; }
  }
  const meta = document.querySelector('meta[name="parley-wasm"]');
  const go = new Go();
  const ready = new Promise((resolve) => { globalThis.parleyReady = resolve; });
  const resp = await fetch(meta.content, { integrity: meta.dataset.integrity });
  const { instance } = await WebAssembly.instantiate(await resp.arrayBuffer(), go.importObject);
  go.run(instance);
  await ready;
  // The server names its object store when this page's policy lets it
  // connect there: attachments then go to and from it directly.
  if (document.querySelector('meta[name="parley-object-store"]')) await parley.allowDirectTransfers();
  if (await parley.hasProfile()) {
    show("unlock");
    status("Locked");
    $("unlock-pass").focus();
  } else {
    show("link");
    status("Not linked");
    $("link-user").focus();
  }
}

$("unlock-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  clearError();
  $("unlock-button").disabled = true;
  status("Unlocking…");
  try {
    const pass = $("unlock-pass").value;
    $("unlock-pass").value = ""; // not left in the page
    self = JSON.parse(await parley.open(pass));
    await enterChat();
  } catch (err) {
    status("Locked");
    fail(err);
  } finally {
    $("unlock-button").disabled = false;
    $("unlock-pass").focus();
  }
});

$("link-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  clearError();
  $("link-button").disabled = true;
  status("Linking…");
  try {
    const onCode = (code, expires) => {
      $("link-code").textContent = code;
      $("link-expires").textContent = new Date(expires).toLocaleTimeString();
      $("link-code-box").hidden = false;
    };
    self = JSON.parse(await parley.link(location.origin, $("link-user").value.trim(), $("link-pass").value, onCode));
    $("link-pass").value = "";
    await enterChat();
  } catch (err) {
    status("Not linked");
    fail(err);
  } finally {
    $("link-button").disabled = false;
  }
});

async function enterChat() {
  show("chat");
  status(`${self.user} (device ${self.device})`);
  document.body.dataset.ready = "true";
  await refreshConversations();
  parley.watch(async (text) => {
    const ev = JSON.parse(text);
    chat.onEvent(ev); // chat.js: unread counts, typing
    if (ev.type === "message" || ev.type === "sent" || ev.type === "connected" || ev.type === "history") {
      await refreshConversations();
      // Imported history (from the device that approved this one) may
      // belong to any conversation, the open one too.
      if (current && ((ev.message && ev.message.conversation === current) || ev.type === "history")) await openConversation(current);
    } else if (ev.type === "disconnected") {
      status(`${self.user}: offline, retrying`);
    } else if (ev.type === "stopped") {
      fail(ev.error);
    }
    if (ev.type === "connected") status(`${self.user} (device ${self.device})`);
  });
}

// refreshConversations updates the list in place: each conversation
// keeps its button, so keyboard focus stays where the user left it when
// a message arrives (and a test's handle on a button stays valid).
async function refreshConversations() {
  // Message requests are listed apart (manage.js) until accepted.
  const convs = (JSON.parse(await parley.conversations()) || []).filter((c) => !c.request);
  const ul = $("conversations");
  const existing = new Map();
  for (const li of ul.children) existing.set(li.firstChild.dataset.target, li);
  const focused = document.activeElement;
  const wanted = [];
  for (const c of convs) {
    let li = existing.get(c.conversation);
    existing.delete(c.conversation);
    if (!li) {
      li = document.createElement("li");
      const b = document.createElement("button");
      b.type = "button";
      b.dataset.target = c.conversation;
      b.addEventListener("click", () => openConversation(c.conversation));
      li.append(b);
    }
    const b = li.firstChild;
    b.textContent = c.conversation;
    if (c.conversation === current) b.setAttribute("aria-current", "true");
    else b.removeAttribute("aria-current");
    chat.decorateConversation(b, c); // chat.js: unread count, group name
    wanted.push(li);
  }
  for (const li of existing.values()) li.remove();
  // Move nodes only where the order changed: moving a node drops its focus.
  wanted.forEach((li, i) => {
    if (ul.children[i] !== li) ul.insertBefore(li, ul.children[i] || null);
  });
  if (focused && focused !== document.activeElement && ul.contains(focused)) focused.focus();
}

async function openConversation(target) {
  clearError();
  current = target;
  $("conversation-title").textContent = target;
  $("compose").disabled = false;
  $("send").disabled = false;
  for (const b of $("conversations").querySelectorAll("button")) {
    if (b.dataset.target === target) b.setAttribute("aria-current", "true");
    else b.removeAttribute("aria-current");
  }
  let msgs = [];
  try {
    msgs = JSON.parse(await parley.history(target, 200)) || [];
  } catch (err) {
    if (!/no such conversation/.test(String(err))) fail(err);
  }
  const ol = $("messages");
  ol.replaceChildren();
  for (const m of msgs) {
    if (m.kind === "receipt") continue;
    ol.append(chat.renderMessage(m)); // chat.js
  }
  ol.scrollTop = ol.scrollHeight;
  await chat.onOpen(target, msgs); // chat.js: receipts, unread, group panel, timer
}

$("new-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const t = $("new-target").value.trim();
  if (!t) return;
  $("new-target").value = "";
  await openConversation(t.startsWith("@") || t.startsWith("#") ? t : "@" + t);
  $("compose").focus();
});

$("compose-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const text = $("compose").value;
  if (!current || !text.trim()) return;
  clearError();
  $("send").disabled = true;
  try {
    if (!(await chat.submit(current, text))) await parley.send(current, text); // chat.js: reply, edit
    $("compose").value = "";
    await refreshConversations();
    await openConversation(current);
  } catch (err) {
    fail(err);
  } finally {
    $("send").disabled = false;
    $("compose").focus();
  }
});

start().catch((err) => { status("Failed to start"); fail(err); });
