// Parley web client: message requests, mute, search, forwarding and the
// group's topic and invite codes, around app.js and chat.js. Each is one
// call of the module (web/wasm/manage.go), which runs the client
// library's function of the CLI command of the same name. As in the other
// scripts, text goes into the page through textContent only, and every
// control is a button, a form or a select.
"use strict";

const manage = (() => {
  let forwarding = null; // the message the forward dialog sends
  let shown = null;      // the conversation onOpen last showed

  function onEvent(ev) {
    if (ev.type === "requests" || ev.type === "connected") showRequests().then(showSettings).catch(fail);
    // A request to join arrives in the asker's direct conversation.
    if (ev.type === "message" && ev.message?.kind === "join_request" && current?.startsWith("#") && !$("group-invite-box").hidden) {
      showJoinRequests(current).catch(fail);
    }
  }

  // The settings, which another device of the account may have changed.
  async function showSettings() {
    const s = JSON.parse(await parley.settings());
    $("setting-receipts").checked = s.read_receipts;
    $("setting-requests").checked = s.message_requests;
  }

  // Message requests: a stranger's first messages wait here (requests are
  // on by default, `parley settings requests`) until accepted or deleted.
  async function showRequests() {
    const reqs = JSON.parse(await parley.requests()) || [];
    const ul = $("request-list");
    ul.replaceChildren();
    for (const r of reqs) {
      const li = document.createElement("li");
      li.dataset.user = r.user;
      const text = document.createElement("span");
      text.className = "request-text";
      let t = `${r.user}: ${r.preview || ""} (${r.messages} message${r.messages === 1 ? "" : "s"})`;
      if (r.groups_in_common.length > 0) t += `; groups in common: ${r.groups_in_common.join(", ")}`;
      text.textContent = t;
      const accept = button("Accept", async () => {
        await parley.acceptRequest(r.user);
        await showRequests();
        await refreshConversations();
        await openConversation(`@${r.user}`);
      }, "accept");
      accept.setAttribute("aria-label", `Accept the message request from ${r.user}`);
      const del = button("Delete", async () => {
        await parley.deleteRequest(r.user);
        await showRequests();
        $("new-target").focus();
      }, "delete");
      del.setAttribute("aria-label", `Delete the message request from ${r.user}`);
      li.append(text, " ", accept, " ", del);
      ul.append(li);
    }
    $("requests").hidden = reqs.length === 0;
  }

  function button(label, onClick, cls) {
    const b = document.createElement("button");
    b.type = "button";
    b.textContent = label;
    if (cls) b.className = cls;
    b.addEventListener("click", () => { clearError(); onClick().catch(fail); });
    return b;
  }

  // onOpen shows the open conversation's mute and topic (c is its entry
  // in the conversation list, undefined before its first message).
  function onOpen(target, c) {
    if (target !== shown) $("group-invite-code").textContent = ""; // another group's code
    shown = target;
    const mute = $("mute");
    const until = mute.querySelector('option[value="until"]');
    if (!c?.muted) mute.value = "on";
    else if (c.muted.forever) mute.value = c.muted.except_mentions ? "mentions" : "forever";
    else {
      until.textContent = `muted until ${new Date(c.muted.until).toLocaleString()}` +
        (c.muted.except_mentions ? " except mentions of me" : "");
      mute.value = "until";
    }
    const topic = $("conversation-topic");
    topic.textContent = c?.topic || "";
    topic.hidden = !c?.topic;
  }

  // The group's pending requests to join (from invite codes this device
  // made), for an admin to approve or deny.
  async function showJoinRequests(target) {
    const reqs = JSON.parse(await parley.joinRequests(target)) || [];
    if (target !== current) return;
    const ul = $("group-join-requests");
    ul.replaceChildren();
    for (const r of reqs) {
      const li = document.createElement("li");
      li.dataset.user = r.user;
      li.append(`${r.user} asks to join `);
      for (const [label, deny, cls] of [["Approve", false, "approve"], ["Deny", true, "deny"]]) {
        const b = button(label, async () => {
          await parley.answerJoin(target, r.user, deny);
          await refreshConversations();
          await openConversation(target);
        }, cls);
        b.setAttribute("aria-label", `${label} ${r.user}`);
        li.append(b, " ");
      }
      ul.append(li);
    }
    $("group-join-title").hidden = reqs.length === 0;
  }

  function forward(m) {
    forwarding = m;
    $("forward-preview").textContent = m.file ? `📎 ${m.file.name}` : (m.text || "").slice(0, 120);
    $("forward-to").value = "";
    $("forward-dialog").showModal();
    $("forward-to").focus();
  }

  $("forward-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    if (!forwarding) return;
    clearError();
    const to = $("forward-to").value.trim();
    try {
      await parley.forward(forwarding.id, to);
      forwarding = null;
      $("forward-dialog").close();
      status(`Forwarded to ${to}`);
      await refreshConversations();
    } catch (err) { fail(err); }
  });
  $("forward-cancel").addEventListener("click", () => $("forward-dialog").close());
  $("forward-dialog").addEventListener("close", () => { forwarding = null; });

  $("mute").addEventListener("change", async () => {
    clearError();
    const v = $("mute").value;
    try {
      if (v === "on") await parley.unmute(current);
      else if (v !== "until") {
        const forGood = v === "forever" || v === "mentions";
        await parley.mute(current, forGood ? 0 : Number(v), v === "mentions");
      }
      await refreshConversations();
      await openConversation(current);
    } catch (err) { fail(err); }
  });

  // Off, pending requests become conversations (the module's next sync
  // reports them), as `parley settings requests off`.
  $("setting-requests").addEventListener("change", async () => {
    clearError();
    try {
      const s = JSON.parse(await parley.setMessageRequests($("setting-requests").checked));
      $("setting-requests").checked = s.message_requests;
      await showRequests();
    } catch (err) { fail(err); }
  });

  $("search-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    clearError();
    const ul = $("search-results");
    try {
      const found = JSON.parse(await parley.search($("search-query").value)) || [];
      ul.replaceChildren();
      for (const m of found) {
        const li = document.createElement("li");
        li.dataset.id = m.id;
        const text = m.file ? `📎 ${m.file.name}` : m.text;
        const b = button(`${m.conversation} · ${m.sender.user}: ${text}`, async () => {
          await openConversation(m.conversation);
          $("messages").querySelector(`li[data-id="${CSS.escape(m.id)}"]`)?.scrollIntoView();
        }, "search-hit");
        li.append(b);
        ul.append(li);
      }
      if (found.length === 0) {
        const li = document.createElement("li");
        li.textContent = "No messages found.";
        ul.append(li);
      }
      ul.hidden = false;
    } catch (err) { fail(err); }
  });

  $("group-topic-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    clearError();
    try {
      await parley.setTopic(current, $("group-topic").value.trim());
      await refreshConversations();
      await openConversation(current);
    } catch (err) { fail(err); }
  });

  $("group-invite").addEventListener("click", async () => {
    clearError();
    try {
      const inv = JSON.parse(await parley.createInvite(current));
      $("group-invite-code").textContent = inv.code;
      $("group-invite-code").title = `valid until ${new Date(inv.expires).toLocaleString()}; whoever has it may ask to join`;
    } catch (err) { fail(err); }
  });

  // Joining with someone's invite code, as `parley group join`: the
  // request goes end to end to the admin who made the code; the group
  // arrives like any other once they approve.
  $("group-join-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    clearError();
    const code = $("group-join-code").value.trim();
    if (!code) return;
    try {
      const admin = await parley.joinGroup(code);
      $("group-join-code").value = "";
      $("group-join-status").textContent = `Asked ${admin} to add you: the group appears here once they approve.`;
    } catch (err) { fail(err); }
  });

  // Export and import of history (web/wasm/backup.go), as `parley export`
  // and `parley import`: the module encrypts the file, the page only
  // saves or reads its bytes.
  const progress = (n, total) => { if (total > 0) $("backup-progress").value = n / total; };
  async function backup(button, what, run) {
    clearError();
    $(button).disabled = true;
    $("backup-progress").value = 0;
    $("backup-progress").hidden = false;
    $("backup-status").textContent = `${what}…`;
    try {
      $("backup-status").textContent = await run();
      $("backup-progress").value = 1;
    } catch (err) {
      $("backup-status").textContent = "";
      fail(err);
    } finally {
      $(button).disabled = false;
    }
  }

  $("export-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    backup("export-button", "Exporting (the passphrase takes a few seconds)", async () => {
      const pass = $("export-pass").value;
      if (pass !== $("export-pass2").value) throw new Error("the two passphrases differ");
      const res = await parley.exportHistory(pass, progress);
      $("export-pass").value = "";
      $("export-pass2").value = "";
      const url = URL.createObjectURL(new Blob([res.data], { type: "application/octet-stream" }));
      const a = document.createElement("a");
      a.href = url;
      a.download = `parley-history-${self.user}.bin`;
      a.hidden = true;
      document.body.append(a);
      a.click();
      a.remove();
      setTimeout(() => URL.revokeObjectURL(url), 60000);
      return `Exported ${res.messages} messages of ${res.conversations} conversations`;
    });
  });

  $("import-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const f = $("import-file").files[0];
    if (!f) { fail(new Error("choose a history file")); return; }
    backup("import-button", `Importing ${f.name}`, async () => {
      const pass = $("import-pass").value;
      $("import-pass").value = "";
      const res = JSON.parse(await parley.importHistory(new Uint8Array(await f.arrayBuffer()), pass, progress));
      $("import-file").value = "";
      await refreshConversations();
      return `Imported ${res.messages} messages of ${res.conversations} conversations (${res.skipped || 0} already here)`;
    });
  });

  return { onEvent, onOpen, showJoinRequests, forward };
})();
