// Parley web client: the conversation features around app.js (which
// loads the module and draws the list and the history). Files with a
// progress bar and a checked download, groups, unread counts, read
// receipts, replies, reactions, edits, deletes, the disappearing-messages
// timer and typing. As in app.js, text only ever goes into the page
// through textContent, and every control is a button, a form or a select
// so that the keyboard alone reaches it.
"use strict";

const chat = (() => {
  const conversations = new Map(); // conversation → its last list entry
  const typers = new Map();      // conversation → Map(user → until, ms)
  let mode = null;               // {kind: "reply"|"edit", message}
  let typingSent = false;        // told the conversation we are typing
  // app.js redraws the history whenever something arrives: the open
  // action menus and the focused control survive it, or a keyboard user
  // would lose their place at every receipt.
  const openMenus = new Set();   // message ids whose actions are open
  let focused = null;            // {id, cls} of the focused control in the history
  const reactions = ["👍", "❤️", "😂"];

  const counted = (m) => (m.kind === "text" || m.kind === "file") && self && m.sender.user !== self.user;

  // Unread counts are the module's (web/wasm/manage.go: counted as
  // messages arrive, kept sealed in the profile so a reload keeps them);
  // it only needs to know what is on screen.
  document.addEventListener("visibilitychange", () => {
    if (self) parley.viewing(document.hidden ? "" : current || "").catch(() => {});
  });

  function onEvent(ev) {
    manage.onEvent(ev); // manage.js: message requests
    if (ev.type === "message" && ev.message && counted(ev.message)) {
      // A member who sent stopped typing.
      typers.get(ev.message.conversation)?.delete(ev.message.sender.user);
      showTyping();
    }
    if (ev.type === "typing" && ev.typing) {
      const t = ev.typing;
      if (!typers.has(t.conversation)) typers.set(t.conversation, new Map());
      if (t.typing) {
        const until = t.until ? Date.parse(t.until) : Date.now() + 6000;
        typers.get(t.conversation).set(t.user, until);
        setTimeout(showTyping, Math.max(0, until - Date.now()) + 50);
      } else {
        typers.get(t.conversation).delete(t.user);
      }
      showTyping();
    }
  }

  function showTyping() {
    const now = Date.now();
    const who = [];
    for (const [user, until] of typers.get(current) || []) if (until > now) who.push(user);
    $("typing").textContent = who.length === 0 ? "" : `${who.join(", ")} ${who.length === 1 ? "is" : "are"} typing…`;
  }

  function decorateConversation(button, c) {
    conversations.set(c.conversation, c);
    if (c.name && c.kind === "group" && `#${c.name}` !== c.conversation) button.textContent = `${c.conversation} (${c.name})`;
    if (c.left || c.removed) button.append(c.left ? " (left)" : " (removed)");
    if (c.muted) button.append(" 🔕");
    const n = c.unread || 0;
    if (n > 0) {
      const badge = document.createElement("span");
      badge.className = "unread";
      badge.textContent = String(n);
      badge.setAttribute("aria-label", `${n} unread`);
      button.append(" ", badge);
    }
  }

  function button(label, onClick, cls) {
    const b = document.createElement("button");
    b.type = "button";
    b.textContent = label;
    if (cls) b.className = cls;
    b.addEventListener("click", () => onClick().catch(fail));
    return b;
  }

  function focusKey(el) {
    const li = el.closest("#messages li[data-id]");
    if (!li) return null;
    const cls = el.tagName === "SUMMARY" ? "summary" : [...el.classList].map((c) => "." + CSS.escape(c)).join("");
    return cls ? { id: li.dataset.id, cls } : null;
  }

  function sizeText(n) {
    if (n < 1024) return `${n} B`;
    if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
    return `${(n / 1024 / 1024).toFixed(1)} MiB`;
  }

  function renderMessage(m) {
    const li = document.createElement("li");
    const mine = self && m.sender.user === self.user;
    li.className = mine ? "outgoing" : "incoming";
    li.dataset.id = m.id;
    li.dataset.kind = m.kind;
    const meta = document.createElement("span");
    meta.className = "meta";
    let metaText = `${m.sender.user} · ${new Date(m.sent_at).toLocaleString()}`;
    if (m.edited) metaText += " · edited";
    if (m.forwarded) metaText += " · forwarded";
    if (m.mentioned) {
      metaText += " · mentions you";
      li.classList.add("mentioned");
    }
    if (m.expires_at) metaText += ` · disappears ${new Date(m.expires_at).toLocaleString()}`;
    meta.textContent = metaText;
    li.append(meta);
    if (m.reply_to) {
      const q = document.createElement("span");
      q.className = "quote";
      q.textContent = `↪ ${m.quote || "an earlier message"}`;
      li.append(q);
    }
    const body = document.createElement("span");
    body.className = "text";
    if (m.deleted) body.textContent = "(deleted)";
    else if (m.kind === "membership") body.textContent = membershipText(m.membership);
    else if (m.kind === "timer") body.textContent = m.text || "disappearing messages timer changed";
    else if (m.file) body.textContent = "";
    else body.textContent = m.text || "";
    li.append(body);
    if (m.file && !m.deleted) li.append(fileBox(m));
    if (m.reactions && m.reactions.length > 0) {
      const r = document.createElement("span");
      r.className = "reactions";
      const by = new Map();
      for (const x of m.reactions) by.set(x.emoji, [...(by.get(x.emoji) || []), x.user]);
      r.textContent = [...by].map(([e, users]) => `${e} ${users.join(", ")}`).join("  ");
      li.append(r);
    }
    if (mine && (m.kind === "text" || m.kind === "file") && !m.deleted) {
      const st = document.createElement("span");
      st.className = "receipt";
      st.textContent = "sent";
      li.append(st);
    }
    if ((m.kind === "text" || m.kind === "file") && !m.deleted) li.append(actions(m, mine));
    else if (m.kind !== "receipt") li.append(actions(m, false, true));
    return li;
  }

  function membershipText(ms) {
    if (!ms) return "(membership change)";
    const names = (xs) => [...new Set((xs || []).map((s) => s.user))].join(", ");
    const parts = [];
    if (ms.added?.length) parts.push(`added ${names(ms.added)}`);
    if (ms.removed?.length) parts.push(`removed ${names(ms.removed)}`);
    if (ms.left?.length) parts.push(`${names(ms.left)} left`);
    return parts.join("; ") || "(membership change)";
  }

  function fileBox(m) {
    const box = document.createElement("span");
    box.className = "file";
    const name = document.createElement("span");
    name.className = "file-name";
    name.textContent = `📎 ${m.file.name} (${sizeText(m.file.size)}) sha256 ${m.file.sha256.slice(0, 16)}…`;
    name.title = m.file.sha256;
    const done = document.createElement("span");
    done.className = "file-verified";
    const prog = document.createElement("progress");
    prog.max = 1;
    prog.value = 0;
    prog.hidden = true;
    const dl = button("Download", async () => {
      clearError();
      dl.disabled = true;
      prog.hidden = false;
      try {
        const f = await parley.fileBytes(m.id, (n, total) => { if (total > 0) prog.value = n / total; });
        prog.value = 1;
        // The module returns the bytes only once their SHA-256 matched the
        // sender's message; the browser saves them under the plain name.
        const url = URL.createObjectURL(new Blob([f.data], { type: "application/octet-stream" }));
        const a = document.createElement("a");
        a.href = url;
        a.download = f.name.replace(/[\\/]/g, "_");
        a.hidden = true;
        document.body.append(a);
        a.click();
        a.remove();
        setTimeout(() => URL.revokeObjectURL(url), 60000);
        done.textContent = `saved, sha256 verified: ${f.sha256}`;
      } finally {
        dl.disabled = false;
      }
    }, "download");
    box.append(name, " ", dl, prog, done);
    return box;
  }

  function actions(m, mine, onlyDelete) {
    const d = document.createElement("details");
    d.className = "actions";
    const s = document.createElement("summary");
    s.textContent = "Actions";
    s.setAttribute("aria-label", `Actions for the message from ${m.sender.user}`);
    d.append(s);
    d.open = openMenus.has(m.id);
    // Recorded on the click (Enter or Space on the summary), which comes
    // before the toggle: a redraw in between keeps the menu as the user set it.
    s.addEventListener("click", () => { if (d.open) openMenus.delete(m.id); else openMenus.add(m.id); });
    const box = document.createElement("span");
    if (!onlyDelete) {
      box.append(button("Reply", async () => { openMenus.delete(m.id); setMode({ kind: "reply", message: m }); }, "reply"));
      for (const e of reactions) {
        const had = (m.reactions || []).some((x) => x.emoji === e && x.user === self.user);
        const b = button(e, async () => { openMenus.delete(m.id); await parley.react(m.id, e, had); await openConversation(current); }, "react");
        b.setAttribute("aria-label", had ? `Take back ${e}` : `React ${e}`);
        b.setAttribute("aria-pressed", had ? "true" : "false");
        box.append(b);
      }
      box.append(button("Forward", async () => { openMenus.delete(m.id); manage.forward(m); }, "forward"));
      if (mine && m.kind === "text") box.append(button("Edit", async () => { openMenus.delete(m.id); setMode({ kind: "edit", message: m }); }, "edit"));
      if (mine) {
        box.append(button("Delete for everyone", async () => {
          openMenus.delete(m.id);
          await parley.deleteForEveryone(m.id);
          await openConversation(current);
        }, "delete-everyone"));
      }
    }
    box.append(button("Delete for me", async () => {
      openMenus.delete(m.id);
      await parley.deleteForMe(m.id);
      await openConversation(current);
    }, "delete-me"));
    d.append(box);
    return d;
  }

  function setMode(m) {
    mode = m;
    const box = $("compose-context");
    if (!m) {
      box.hidden = true;
      $("compose").value = "";
      return;
    }
    const quoted = (m.message.text || "").slice(0, 60);
    $("compose-context-text").textContent = m.kind === "reply" ? `Replying to ${m.message.sender.user}: ${quoted}` : `Editing: ${quoted}`;
    box.hidden = false;
    if (m.kind === "edit") $("compose").value = m.message.text || "";
    $("compose").focus();
  }

  // submit sends text as a reply or an edit when the compose line is in
  // that mode; false means app.js sends it as a plain message.
  async function submit(target, text) {
    typingSent = false;
    if (!mode) return false;
    const m = mode;
    if (m.kind === "reply") await parley.reply(target, m.message.id, text);
    else await parley.edit(m.message.id, text);
    setMode(null);
    return true;
  }

  async function onOpen(target, msgs) {
    if (focused && (document.activeElement === document.body || !document.activeElement)) {
      const el = $("messages").querySelector(`li[data-id="${CSS.escape(focused.id)}"] ${focused.cls}`);
      if (el) el.focus();
    }
    if (!document.hidden) await parley.viewing(target);
    const badge = $("conversations").querySelector(`button[data-target="${CSS.escape(target)}"] .unread`);
    if (badge) badge.remove();
    if (mode && mode.message.conversation !== target) setMode(null);
    showTyping();
    $("conversation-tools").hidden = false;
    $("file-input").disabled = false;
    $("file-send").disabled = false;
    const c = conversations.get(target);
    $("timer").value = String(timerSeconds(c?.timer));
    manage.onOpen(target, c); // manage.js: mute, topic
    const group = target.startsWith("#");
    $("group-panel").hidden = !group;
    if (!group) $("group-picture").hidden = true;
    if (group) await showGroup(target);
    // Receipts of this user's messages, newest 50.
    const ids = msgs.filter((m) => self && m.sender.user === self.user && (m.kind === "text" || m.kind === "file") && !m.deleted)
      .slice(-50).map((m) => m.id);
    if (ids.length === 0) return;
    const states = JSON.parse(await parley.receipts(JSON.stringify(ids)));
    if (target !== current) return;
    for (const [id, s] of Object.entries(states)) {
      const span = $("messages").querySelector(`li[data-id="${CSS.escape(id)}"] .receipt`);
      if (!span) continue;
      span.dataset.state = s.state;
      span.textContent = s.members > 1 ? `${s.state} (read by ${s.read} of ${s.members})` : s.state;
    }
  }

  function timerSeconds(t) {
    const m = /^(\d+)([smhdw])$/.exec(t || "");
    if (!m) return 0;
    return Number(m[1]) * { s: 1, m: 60, h: 3600, d: 86400, w: 604800 }[m[2]];
  }

  // The group panel shows each control only where the user may act (the
  // client library, and every member's client, refuses the rest anyway):
  // admins add, remove, promote and demote, rename, set the topic and
  // make invite codes; a group made before roles lets everyone.
  async function showGroup(target) {
    let info;
    try {
      info = JSON.parse(await parley.groupInfo(target));
    } catch (err) {
      $("group-members").replaceChildren();
      return; // left or removed: nothing to manage
    }
    if (target !== current) return;
    const admin = !info.roles || info.my_role === "admin";
    const ul = $("group-members");
    ul.replaceChildren();
    for (const mem of info.members || []) {
      const li = document.createElement("li");
      li.dataset.user = mem.user;
      li.dataset.role = mem.role || "";
      li.textContent = mem.role ? `${mem.user} (${mem.role}) ` : `${mem.user} `;
      if (admin && mem.user !== self.user) {
        const b = button("Remove", async () => {
          await parley.removeMembers(target, JSON.stringify([mem.user]));
          await refreshConversations();
          await openConversation(target);
        }, "remove");
        b.setAttribute("aria-label", `Remove ${mem.user}`);
        li.append(b);
        if (info.roles) {
          const promote = mem.role !== "admin";
          const r = button(promote ? "Make admin" : "Remove admin", async () => {
            await parley.setAdmin(target, mem.user, promote);
            await openConversation(target);
          }, promote ? "promote" : "demote");
          r.setAttribute("aria-label", promote ? `Make ${mem.user} an admin` : `Remove ${mem.user} as admin`);
          li.append(" ", r);
        }
      }
      ul.append(li);
    }
    for (const id of ["group-add-form", "group-rename-form", "group-topic-form", "group-picture-form", "group-invite-box"]) $(id).hidden = !admin;
    $("group-topic-form").hidden = !admin || !info.roles;
    $("group-picture-form").hidden = !admin || !info.roles;
    await showPicture(target, info.picture);
    if (document.activeElement !== $("group-rename")) $("group-rename").value = info.name || "";
    if (document.activeElement !== $("group-topic")) $("group-topic").value = info.topic || "";
    if (admin) await manage.showJoinRequests(target);
  }

  // showPicture shows a group's picture: decrypted by the module (which
  // checks its digest against the group's state) and shown from a blob:
  // URL, raster types only; fetched again only when the digest changes.
  let picture = { target: null, sha256: null, url: null };
  async function showPicture(target, info) {
    const img = $("group-picture");
    const raster = ["image/png", "image/jpeg", "image/gif", "image/webp"];
    if (!info || !raster.includes(info.type)) {
      img.hidden = true;
      return;
    }
    if (picture.target === target && picture.sha256 === info.sha256) {
      img.hidden = false;
      return;
    }
    let p;
    try {
      p = await parley.groupPicture(target);
    } catch (err) {
      img.hidden = true;
      return; // not fetched now (offline, or a picture the digest refused): no picture rather than a wrong one
    }
    if (target !== current) return;
    if (picture.url) URL.revokeObjectURL(picture.url);
    picture = { target, sha256: info.sha256, url: URL.createObjectURL(new Blob([p.data], { type: p.type })) };
    img.src = picture.url;
    img.alt = `Picture of ${target}`;
    img.hidden = false;
  }

  $("group-picture-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    clearError();
    const f = $("group-picture-input").files[0];
    if (!f) return;
    try {
      const info = JSON.parse(await parley.setPicture(current, new Uint8Array(await f.arrayBuffer())));
      $("group-picture-input").value = "";
      await showPicture(current, info.picture);
    } catch (err) { fail(err); }
  });

  const users = (s) => s.split(/[\s,]+/).map((u) => u.replace(/^@/, "")).filter((u) => u);

  document.addEventListener("focusin", (ev) => { focused = focusKey(ev.target); });

  $("group-new-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    clearError();
    const name = $("group-new-name").value.trim().replace(/^#/, "");
    try {
      const c = JSON.parse(await parley.createGroup(name, JSON.stringify(users($("group-new-members").value))));
      $("group-new-name").value = "";
      $("group-new-members").value = "";
      await refreshConversations();
      await openConversation(c.conversation);
      $("compose").focus();
    } catch (err) { fail(err); }
  });

  $("group-add-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    clearError();
    try {
      await parley.addMembers(current, JSON.stringify(users($("group-add-user").value)));
      $("group-add-user").value = "";
      await refreshConversations();
      await openConversation(current);
    } catch (err) { fail(err); }
  });

  $("group-rename-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    clearError();
    try {
      await parley.renameGroup(current, $("group-rename").value.trim());
      await refreshConversations();
      await openConversation(current);
    } catch (err) { fail(err); }
  });

  $("group-rename").addEventListener("focus", () => $("group-rename").select());

  $("group-leave").addEventListener("click", async () => {
    clearError();
    try {
      await parley.leaveGroup(current);
      status(`Asked to leave ${current}: it takes effect when another member's device next syncs`);
      await refreshConversations();
      await openConversation(current);
    } catch (err) { fail(err); }
  });

  $("timer").addEventListener("change", async () => {
    clearError();
    try {
      await parley.setTimer(current, Number($("timer").value));
      await refreshConversations();
      await openConversation(current);
    } catch (err) { fail(err); }
  });

  $("setting-receipts").addEventListener("change", async () => {
    clearError();
    try {
      const s = JSON.parse(await parley.setReadReceipts($("setting-receipts").checked));
      $("setting-receipts").checked = s.read_receipts;
    } catch (err) { fail(err); }
  });

  $("compose").addEventListener("input", () => {
    if (!current || current.startsWith("@") && !conversations.has(current)) return;
    const typing = $("compose").value !== "";
    if (typing === typingSent && !typing) return;
    typingSent = typing;
    // The module sends at most one "typing" every few seconds.
    parley.typing(current, typing).catch(() => {});
  });

  $("compose").addEventListener("keydown", (ev) => {
    if (ev.key === "Escape" && mode) {
      ev.preventDefault();
      setMode(null);
    }
  });
  $("compose-cancel").addEventListener("click", () => { setMode(null); $("compose").focus(); });

  $("file-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const f = $("file-input").files[0];
    if (!current || !f) return;
    clearError();
    const prog = $("file-progress");
    prog.value = 0;
    prog.hidden = false;
    $("file-send").disabled = true;
    $("file-status").textContent = `Sending ${f.name}…`;
    try {
      const data = new Uint8Array(await f.arrayBuffer());
      await parley.sendFile(current, f.name, data, (n, total) => { if (total > 0) prog.value = n / total; });
      prog.value = 1;
      $("file-status").textContent = `Sent ${f.name}`;
      $("file-input").value = "";
      await refreshConversations();
      await openConversation(current);
    } catch (err) {
      $("file-status").textContent = "";
      fail(err);
    } finally {
      $("file-send").disabled = false;
    }
  });

  // The settings once the profile is open (the chat section shows).
  new MutationObserver(async () => {
    if ($("chat").hidden || !self) return;
    try {
      const s = JSON.parse(await parley.settings());
      $("setting-receipts").checked = s.read_receipts;
      $("setting-requests").checked = s.message_requests;
    } catch (err) { /* shown on change */ }
  }).observe($("chat"), { attributes: true, attributeFilter: ["hidden"] });

  return { onEvent, decorateConversation, renderMessage, onOpen, submit };
})();
