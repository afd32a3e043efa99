// Parley web client: the safety number and device views, and the QR
// codes (the link code's, a safety number's). Like app.js it writes the
// page only through textContent and attributes it sets on elements it
// creates: the QR codes are SVG <path> elements whose path data the
// module draws (web/qr), so no HTML, inline script or data: URL is
// needed and the page's CSP and Trusted Types stay strict.
//
// It watches the elements app.js fills (the link code, the open
// conversation's title) rather than being called by it, so the two
// scripts stay independent.
"use strict";

const SVG = "http://www.w3.org/2000/svg";
const PX_PER_MODULE = 5; // whole pixels per module keep the edges crisp

// drawQR replaces box's content with the QR code of text.
async function drawQR(box, text, label) {
  const { view_box: n, path } = JSON.parse(await parley.qr(text));
  const svg = document.createElementNS(SVG, "svg");
  svg.setAttribute("viewBox", `0 0 ${n} ${n}`);
  svg.setAttribute("width", String(n * PX_PER_MODULE));
  svg.setAttribute("height", String(n * PX_PER_MODULE));
  svg.setAttribute("shape-rendering", "crispEdges");
  svg.setAttribute("role", "img");
  svg.setAttribute("aria-label", label);
  const bg = document.createElementNS(SVG, "rect");
  bg.setAttribute("width", String(n));
  bg.setAttribute("height", String(n));
  bg.setAttribute("fill", "#fff");
  const dark = document.createElementNS(SVG, "path");
  dark.setAttribute("d", path);
  dark.setAttribute("fill", "#000");
  svg.append(bg, dark);
  box.dataset.text = text;
  box.replaceChildren(svg);
}

function showError(err) {
  if (typeof fail === "function") fail(err); // app.js's error line
}

// The link code's QR code, drawn whenever app.js shows a code.
new MutationObserver(() => {
  const code = document.getElementById("link-code").textContent.trim();
  const box = document.getElementById("link-qr");
  if (code && box.dataset.text !== code) drawQR(box, code, `QR code of the link code ${code}`).catch(showError);
}).observe(document.getElementById("link-code"), { childList: true, characterData: true, subtree: true });

// The safety number is for one-to-one conversations ("@user"): the
// button shows for those only.
new MutationObserver(() => {
  const title = document.getElementById("conversation-title").textContent;
  document.getElementById("safety-button").hidden = !title.startsWith("@");
}).observe(document.getElementById("conversation-title"), { childList: true, characterData: true, subtree: true });

document.getElementById("safety-button").addEventListener("click", async () => {
  const user = document.getElementById("conversation-title").textContent.replace(/^@/, "");
  const dlg = document.getElementById("safety-dialog");
  const digits = document.getElementById("safety-digits");
  document.getElementById("safety-user").textContent = user;
  digits.textContent = "Computing…";
  delete digits.dataset.number;
  document.getElementById("safety-qr").replaceChildren();
  dlg.showModal();
  try {
    const sn = JSON.parse(await parley.safetyNumber(user));
    // Three rows of four groups of five digits, as `parley safety-number` prints it.
    const groups = sn.formatted.split(" ");
    const rows = [];
    for (let i = 0; i < groups.length; i += 4) rows.push(groups.slice(i, i + 4).join(" "));
    digits.textContent = rows.join("\n");
    digits.dataset.number = sn.safety_number;
    await drawQR(document.getElementById("safety-qr"), sn.safety_number, `QR code of the safety number with ${user}`);
  } catch (err) {
    digits.textContent = "";
    dlg.close();
    showError(err);
  }
});

document.getElementById("devices-button").addEventListener("click", async () => {
  const dlg = document.getElementById("devices-dialog");
  const ul = document.getElementById("devices");
  ul.replaceChildren();
  ul.dataset.loaded = "false";
  dlg.showModal();
  try {
    const devices = JSON.parse(await parley.devices()) || [];
    for (const d of devices) {
      const li = document.createElement("li");
      li.dataset.device = d.id;
      const id = document.createElement("strong");
      id.textContent = d.id;
      const meta = document.createElement("span");
      meta.className = "meta";
      meta.textContent = ` added ${new Date(d.created).toLocaleString()} · key ${d.key.slice(0, 16)}…`;
      li.append(id, meta);
      if (d.current) {
        li.dataset.current = "true";
        const me = document.createElement("span");
        me.className = "this-device";
        me.textContent = " (this browser)";
        li.append(me);
      }
      if (!d.signed) {
        li.dataset.unsigned = "true";
        const warn = document.createElement("span");
        warn.className = "warning";
        warn.textContent = " NOT SIGNED: not in your account's signed device list (you did not add it; nobody sends to it)";
        li.append(warn);
      }
      ul.append(li);
    }
    ul.dataset.loaded = "true";
  } catch (err) {
    dlg.close();
    showError(err);
  }
});

for (const id of ["safety-close", "devices-close"]) {
  document.getElementById(id).addEventListener("click", (ev) => ev.target.closest("dialog").close());
}
