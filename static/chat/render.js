// DOM builders for the message list. User data only ever lands in textContent
// (or an href that safeHref allowed); buttons carry data-action for the one
// delegated click handler in app.js.

import { formatDay, formatFull, formatTime, hueFor, initials, linkify } from "./text.js";

export function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else if (key === "dataset") Object.assign(node.dataset, value);
    // Through the CSSOM: a style attribute would be refused by the page's CSP.
    else if (key === "style") node.style.cssText = value;
    else if (key in node && typeof value !== "string") node[key] = value;
    else node.setAttribute(key, value === true ? "" : value);
  }
  node.append(...children.filter((c) => c !== null && c !== undefined && c !== false));
  return node;
}

const SVG = "http://www.w3.org/2000/svg";

// Icons are drawn, not emoji: a machine without an emoji font shows boxes.
export function icon(name) {
  const svg = document.createElementNS(SVG, "svg");
  svg.setAttribute("viewBox", "0 0 16 16");
  svg.setAttribute("width", "14");
  svg.setAttribute("height", "14");
  svg.setAttribute("aria-hidden", "true");
  svg.setAttribute("class", `icon icon--${name}`);
  const path = document.createElementNS(SVG, "path");
  path.setAttribute("fill", "currentColor");
  path.setAttribute(
    "d",
    name === "lock"
      ? "M5 7V5a3 3 0 0 1 6 0v2h.5A1.5 1.5 0 0 1 13 8.5v5a1.5 1.5 0 0 1-1.5 1.5h-7A1.5 1.5 0 0 1 3 13.5v-5A1.5 1.5 0 0 1 4.5 7H5Zm1.5 0h3V5a1.5 1.5 0 0 0-3 0v2Z"
      : "M6.2 1.5 5.6 5H2.5v1.5h2.85l-.5 3H1.5V11h3.1l-.6 3.5h1.5l.6-3.5h3l-.6 3.5H10l.6-3.5h3V9.5h-2.85l.5-3h3.25V5h-3l.6-3.5H10.6L10 5H7l.6-3.5H6.2Zm.55 5h3l-.5 3h-3l.5-3Z",
  );
  svg.append(path);
  return svg;
}

export function avatar(name, extraClass = "") {
  return el("span", {
    class: `avatar ${extraClass}`.trim(),
    "aria-hidden": "true",
    style: `--hue: ${hueFor(name)}`,
    text: initials(name),
  });
}

export function daySeparator(iso) {
  return el("div", { class: "day-separator", role: "separator" }, el("span", { text: formatDay(iso) }));
}

const STATUS_TEXT = {
  queued: "Waiting for the connection…",
  sending: "Sending…",
  sent: "Sent",
};

// The author of a message whose account was deleted: the server sends
// `userId: ""` (docs/protocol.md); the name shown is always this placeholder.
export const DELETED_USER = "Deleted user";

export function authorName(message) {
  return message.userId === "" ? DELETED_USER : message.username;
}

// A stored message (`item.message`) or one still in the outbox (`item.pending`).
export function messageNode(item, { continued, meId }) {
  const message = item.message ?? item.pending;
  const pending = item.pending ?? null;
  const deleted = Boolean(message.deletedAt);
  const mine = message.userId === meId;
  const author = authorName(message);
  const domId = pending ? `pending-${pending.clientId}` : `message-${message.id}`;
  const classes = ["message"];
  if (continued) classes.push("message--continued");
  if (pending) classes.push("message--pending", `message--${pending.state}`);
  if (deleted) classes.push("message--deleted");
  if (mine) classes.push("message--mine");

  const node = el("div", {
    class: classes.join(" "),
    id: domId,
    tabindex: "-1",
    "aria-label": undefined,
    dataset: pending ? { clientId: pending.clientId } : { id: message.id },
  });

  const gutter = el("div", { class: "message-gutter" });
  if (!continued) gutter.append(avatar(author, message.userId === "" ? "avatar--deleted" : ""));
  else if (message.timestamp) {
    gutter.append(el("time", { class: "gutter-time", datetime: message.timestamp, text: formatTime(message.timestamp) }));
  }

  const body = el("div", { class: "message-body" });
  if (!continued) {
    const meta = el(
      "div",
      { class: "message-meta" },
      el("span", { class: message.userId === "" ? "message-author message-author--deleted" : "message-author", text: author }),
      message.timestamp
        ? el("time", { datetime: message.timestamp, title: formatFull(message.timestamp), text: formatTime(message.timestamp) })
        : null,
    );
    body.append(meta);
  } else {
    // Screen readers read who wrote a continued message too.
    body.append(el("span", { class: "visually-hidden", text: `${author}: ` }));
  }

  const reply = message.reply ?? pending?.reply ?? null;
  if (reply && !deleted) {
    body.append(
      el(
        "button",
        {
          type: "button",
          class: "message-quote",
          dataset: { action: "jump", target: reply.id },
          "aria-label": `Replying to ${authorName(reply)}: ${reply.text || "deleted message"}. Show the original`,
        },
        el("span", { class: "quote-author", text: authorName(reply) }),
        el("span", { class: "quote-text", text: reply.text || "This message was deleted" }),
      ),
    );
  }

  const text = el("div", { class: "message-text" });
  if (deleted) text.textContent = "This message was deleted";
  else text.append(linkify(message.text));
  if (message.editedAt && !deleted) text.append(" ", el("span", { class: "message-edited", text: "(edited)" }));
  body.append(text);

  if (pending) {
    const status = el("div", { class: "message-status", role: pending.state === "failed" ? "alert" : undefined });
    if (pending.state === "failed") {
      status.append(
        el("span", { class: "message-error", text: `Not sent: ${pending.error}` }),
        el("button", { type: "button", class: "link-button", dataset: { action: "retry", clientId: pending.clientId }, text: "Retry" }),
        el("button", { type: "button", class: "link-button", dataset: { action: "discard", clientId: pending.clientId }, text: "Discard" }),
      );
    } else {
      status.textContent = STATUS_TEXT[pending.state] ?? "";
    }
    body.append(status);
  }

  node.append(gutter, body);
  if (!pending && !deleted) {
    node.append(
      el(
        "div",
        { class: "message-actions" },
        el("button", {
          type: "button",
          class: "icon-button",
          tabindex: "-1",
          title: "Reply (R)",
          "aria-label": `Reply to ${author}`,
          dataset: { action: "reply", id: message.id },
          text: "↩",
        }),
      ),
    );
  }
  return node;
}

// What a node depends on: rebuild it only when this changes.
export function signature(item, continued) {
  const m = item.message ?? item.pending;
  const p = item.pending;
  return [continued, m.text, m.editedAt, m.deletedAt, p?.state, p?.error, m.reply?.text].join("\u0000");
}
