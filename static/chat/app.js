// The chat page: sidebar, room view, composer, and the /chat socket.
//
// Data flow: REST for the room list, history pages and room creation; the
// socket for everything live. The rules that make reconnection lose nothing
// live in store.js (seq high-water mark) and `repair` below (room:join with
// `since`, also on the server's `sync:required`); the outbox sends in order with a clientId, so a resend after a
// dropped connection is stored once by the server.

import { io } from "socket.io-client";
import { api } from "./api.js";
import { setupDialogs, startDirect } from "./dialogs.js";
import { daySeparator, el, icon, messageNode, signature } from "./render.js";
import { RoomState } from "./store.js";
import { dayKey, joinNames, newClientId, typingText } from "./text.js";

const me = JSON.parse(document.getElementById("me").textContent);
const $ = (id) => document.getElementById(id);

const SEND_TIMEOUT_MS = 10_000;
const TYPING_REFRESH_MS = 3_000; // the server forgets a typist after 5 s
const TYPING_IDLE_MS = 4_000;
const TYPING_EXPIRY_MS = 7_000; // in case the server's "stopped" is lost
const GROUP_WINDOW_MS = 5 * 60_000;
const MAX_TEXT = 5000;

const state = {
  rooms: new Map(),
  currentId: null,
  users: new Map([[me.userId, me.username]]), // userId -> username, learnt from every event
  online: new Map(), // userId -> {username, status}
  outbox: [], // sends not yet confirmed, in the order they were made
  connected: false,
  everConnected: false,
  pumping: false,
  replyTo: null,
};

const dom = {
  app: $("app"),
  roomList: $("room-list"),
  dmList: $("dm-list"),
  onlineList: $("online-list"),
  banner: $("connection-banner"),
  bannerText: $("connection-banner-text"),
  roomTitle: $("room-title"),
  roomIcon: $("room-icon"),
  roomTopic: $("room-topic"),
  roomError: $("room-error"),
  scroller: $("scroller"),
  historyTop: $("history-top"),
  list: $("message-list"),
  receipt: $("receipt-line"),
  typing: $("typing-line"),
  composer: $("composer"),
  input: $("composer-input"),
  composerError: $("composer-error"),
  replyPreview: $("reply-preview"),
  replyAuthor: $("reply-author"),
  replyText: $("reply-text"),
  emptyState: $("empty-state"),
  roomView: $("room-view"),
};

const current = () => state.rooms.get(state.currentId) ?? null;
// Rooms the socket joins: the user's own, and whatever is on screen.
const followed = (room) => room.isMember || room.id === state.currentId;
const viewing = (room) => room.id === state.currentId && document.visibilityState === "visible";
const learnUser = (userId, username) => userId && username && state.users.set(String(userId), username);

// --- the socket -------------------------------------------------------------------

const socket = io("/chat", {
  autoConnect: false,
  withCredentials: true,
  reconnectionDelay: 500,
  reconnectionDelayMax: 3000,
});

function call(event, data, timeout = SEND_TIMEOUT_MS) {
  return socket.timeout(timeout).emitWithAck(event, data);
}

socket.on("connect", async () => {
  state.connected = true;
  dom.app.dataset.connection = "syncing";
  const reconnect = state.everConnected;
  state.everConnected = true;
  if (reconnect) refreshRooms().catch(() => {});
  // Rejoin every room from its high-water mark, then send what waited.
  await Promise.all([...state.rooms.values()].filter(followed).map((room) => repair(room)));
  if (state.connected) setBanner(null);
  markRead();
  pump();
});

socket.on("disconnect", (reason) => {
  state.connected = false;
  for (const room of state.rooms.values()) clearTyping(room);
  renderTyping();
  for (const item of state.outbox) if (item.state === "sending") item.state = "queued";
  renderMessages();
  setBanner("offline");
  // The server closed us on purpose (a ban, a restart's goodbye): socket.io
  // does not retry those by itself.
  if (reason === "io server disconnect") setTimeout(() => socket.connect(), 2000);
});

socket.on("connect_error", (error) => {
  state.connected = false;
  if (error?.message === "Authentication required" || error?.message === "Invalid token") setBanner("signed-out");
  else setBanner("offline");
});

socket.on("chat:message", (message) => onLiveMessage(message));

socket.on("chat:message-updated", (message) => {
  const room = state.rooms.get(message.roomId);
  if (!room || !room.messages.has(message.id)) return;
  room.messages.set(message.id, message);
  if (room.id === state.currentId) renderMessages();
});

socket.on("chat:message-deleted", ({ roomId, messageId }) => {
  const room = state.rooms.get(roomId);
  const message = room?.messages.get(messageId);
  if (!message) return;
  room.messages.set(messageId, { ...message, text: "", deletedAt: new Date().toISOString() });
  if (room.id === state.currentId) renderMessages();
});

socket.on("chat:typing", ({ userId, username, roomId, isTyping }) => {
  if (userId === me.userId) return;
  const room = state.rooms.get(roomId);
  if (!room) return;
  learnUser(userId, username);
  room.people.add(userId);
  clearTimeout(room.typing.get(userId)?.timer);
  if (isTyping) {
    const timer = setTimeout(() => {
      room.typing.delete(userId);
      renderTyping();
    }, TYPING_EXPIRY_MS);
    room.typing.set(userId, { username, timer });
  } else {
    room.typing.delete(userId);
  }
  if (room.id === state.currentId) renderTyping();
});

socket.on("chat:read", ({ userId, messageId, roomId }) => {
  const room = state.rooms.get(roomId);
  if (!room) return;
  room.noteReaders([userId], Number(messageId));
  // Read in another tab of mine: the badge here clears too.
  if (userId === me.userId && Number(messageId) >= room.lastId) {
    room.unread = 0;
    renderSidebar();
  }
  if (room.id === state.currentId) {
    renderReceipt();
    renderHeader();
  }
});

socket.on("presence:list", (users) => {
  state.online.clear();
  for (const user of users ?? []) {
    state.online.set(user.userId, { username: user.username, status: user.status ?? "online" });
    learnUser(user.userId, user.username);
  }
  renderPresence();
});
socket.on("presence:online", ({ userId, username, status }) => {
  state.online.set(userId, { username, status: status ?? "online" });
  learnUser(userId, username);
  renderPresence();
});
socket.on("presence:offline", ({ userId }) => {
  state.online.delete(userId);
  renderPresence();
});
socket.on("presence:status", ({ userId, username, status }) => {
  if (status === "offline") state.online.delete(userId);
  else state.online.set(userId, { username: username ?? state.users.get(userId) ?? "", status });
  learnUser(userId, username);
  renderPresence();
});

socket.on("room:user-joined", ({ userId, username, roomId }) => {
  learnUser(userId, username);
  state.rooms.get(roomId)?.people.add(userId);
  if (roomId === state.currentId) renderHeader();
});
socket.on("room:updated", ({ roomId, name, topic }) => {
  const room = state.rooms.get(roomId);
  if (!room) return;
  room.update({ name: name ?? room.name, topic: topic ?? room.topic, visibility: room.visibility });
  renderSidebar();
  if (roomId === state.currentId) renderHeader();
});
// The server's bus dropped broadcasts (protocol.md's additions): a room whose
// newest seq is past our high-water mark is repaired like a seq gap. Without
// this the newest message of a quiet room would stay missing, since a gap
// shows only when a later message arrives.
socket.on("sync:required", ({ rooms } = {}) => {
  for (const { roomId, lastSeq } of Array.isArray(rooms) ? rooms : []) {
    const room = state.rooms.get(roomId);
    if (room && room.behind(lastSeq)) repair(room);
  }
});
socket.on("room:added", () => refreshRooms().catch(() => {}));
socket.on("room:banned", ({ roomId }) => {
  const room = state.rooms.get(roomId);
  if (!room) return;
  room.error = { code: "banned", error: "You were removed from this room by a moderator." };
  if (roomId === state.currentId) renderRoomError();
});

socket.on("room:deleted", ({ roomId }) => {
  const room = state.rooms.get(roomId);
  if (!room) return;
  room.error = { code: "not_found", error: "This room was deleted by a moderator." };
  if (roomId === state.currentId) renderRoomError();
});

// --- keeping every room exact -------------------------------------------------------

function onLiveMessage(message) {
  const room = state.rooms.get(message.roomId);
  if (!room) {
    refreshRooms().catch(() => {});
    return;
  }
  const kind = room.classify(message);
  if (kind === "new") {
    applyNew(room, message);
    afterNewMessages(room);
  } else if (kind === "gap") {
    // Something between our high-water mark and this one was lost in transit:
    // fetch everything after the mark (this message included) in order.
    repair(room);
  } else {
    settleOutbox(message);
  }
}

function applyNew(room, message) {
  room.advance(message);
  learnUser(message.userId, message.username);
  settleOutbox(message);
  if (room.typing.has(message.userId)) {
    clearTimeout(room.typing.get(message.userId).timer);
    room.typing.delete(message.userId);
  }
  if (message.userId !== me.userId && !message.deletedAt && !viewing(room)) room.unread += 1;
}

function applyBatch(room, messages) {
  let changed = false;
  for (const message of [...messages].sort((a, b) => Number(a.id) - Number(b.id))) {
    // A batch answers "everything after lastId" and is authoritative: take it
    // in order even if its first seq is not lastSeq + 1 (a join without
    // `since` returns only the last 50).
    if (room.classify(message) !== "known") {
      applyNew(room, message);
      changed = true;
    } else if (room.loaded && room.messages.has(message.id)) {
      room.messages.set(message.id, message);
    }
  }
  if (changed) afterNewMessages(room);
}

function afterNewMessages(room) {
  if (room.id === state.currentId) {
    renderHeader();
    renderMessages();
    renderTyping();
    markRead();
  }
  renderSidebar();
}

// Join (or rejoin) a room from its high-water mark and take what was missed.
async function repair(room) {
  if (!state.connected) return; // the next connect repairs every room
  if (room.repairing) {
    room.repairAgain = true;
    return;
  }
  room.repairing = true;
  try {
    do {
      room.repairAgain = false;
      const payload = room.lastId ? { roomId: room.id, since: String(room.lastId) } : { roomId: room.id };
      const ack = await call("room:join", payload);
      if (ack.status !== "ok") {
        room.error = ack;
        if (room.id === state.currentId) renderRoomError();
        return;
      }
      if (room.error) {
        room.error = null;
        if (room.id === state.currentId) renderRoomError();
      }
      applyBatch(room, ack.messages ?? []);
      // More than the server sends on a join were missed: page through REST.
      let more = Boolean(ack.hasMore);
      while (more) {
        const page = await api.messages(room.id, { after: room.lastId, limit: 200 });
        applyBatch(room, page.messages);
        more = page.hasMore && page.messages.length > 0;
      }
    } while (room.repairAgain && state.connected);
  } catch {
    // A timeout or a dropped connection: the next connect repairs again.
  } finally {
    room.repairing = false;
  }
}

// --- sending --------------------------------------------------------------------

function queueSend(room, text) {
  const reply = state.replyTo;
  state.outbox.push({
    clientId: newClientId(),
    roomId: room.id,
    text,
    replyTo: reply?.id ?? null,
    reply,
    userId: me.userId,
    username: me.username,
    timestamp: null,
    state: "queued",
    error: null,
  });
  renderMessages("bottom");
  pump();
}

// Send queued messages one at a time, in order, while connected.
async function pump() {
  if (state.pumping || !state.connected) return;
  state.pumping = true;
  try {
    let item;
    while (state.connected && (item = state.outbox.find((i) => i.state === "queued"))) {
      item.state = "sending";
      renderIfCurrent(item.roomId);
      let ack;
      try {
        ack = await call("chat:message", {
          roomId: item.roomId,
          text: item.text,
          replyTo: item.replyTo,
          clientId: item.clientId,
        });
      } catch {
        // No answer: it may or may not be stored. Resending with the same
        // clientId is safe, so it goes again when the connection allows.
        if (item.state === "sending") item.state = "queued";
        renderIfCurrent(item.roomId);
        if (state.connected) setTimeout(pump, 2000);
        break;
      }
      const room = state.rooms.get(item.roomId);
      if (ack.status === "ok") {
        if (room?.messages.has(ack.messageId)) removeFromOutbox(item);
        else {
          item.state = "sent";
          item.messageId = ack.messageId;
          expectDelivery(room, ack);
        }
      } else {
        item.state = "failed";
        item.error = ack.error || "the server refused it";
      }
      renderIfCurrent(item.roomId);
    }
  } finally {
    state.pumping = false;
  }
}

// The ack says the message is stored; if its broadcast never comes, fetch it.
function expectDelivery(room, ack) {
  setTimeout(() => {
    if (room && !room.messages.has(ack.messageId) && (ack.seq ?? Infinity) > room.lastSeq) repair(room);
  }, 1500);
}

function settleOutbox(message) {
  if (message.userId !== me.userId || !message.clientId) return;
  const item = state.outbox.find((i) => i.clientId === message.clientId);
  if (item) removeFromOutbox(item);
}

function removeFromOutbox(item) {
  state.outbox = state.outbox.filter((i) => i !== item);
  renderIfCurrent(item.roomId);
}

function retry(clientId) {
  const item = state.outbox.find((i) => i.clientId === clientId);
  if (!item) return;
  // To the back of the queue: it is sent after anything already waiting.
  state.outbox = state.outbox.filter((i) => i !== item);
  item.state = "queued";
  item.error = null;
  state.outbox.push(item);
  renderMessages();
  pump();
}

function discard(clientId) {
  const item = state.outbox.find((i) => i.clientId === clientId);
  if (item) removeFromOutbox(item);
  dom.input.focus();
}

// --- typing and reading ------------------------------------------------------------

const typing = { roomId: null, sentAt: 0, idleTimer: null };

function onComposerInput() {
  const room = current();
  autosize();
  dom.composerError.hidden = true;
  if (!room || !state.connected) return;
  if (!dom.input.value.trim()) {
    stopTyping();
    return;
  }
  const now = Date.now();
  if (typing.roomId !== room.id || now - typing.sentAt > TYPING_REFRESH_MS) {
    if (typing.roomId && typing.roomId !== room.id) stopTyping();
    socket.emit("chat:typing", { roomId: room.id, isTyping: true });
    typing.roomId = room.id;
    typing.sentAt = now;
  }
  clearTimeout(typing.idleTimer);
  typing.idleTimer = setTimeout(stopTyping, TYPING_IDLE_MS);
}

function stopTyping() {
  clearTimeout(typing.idleTimer);
  if (typing.roomId && state.connected) socket.emit("chat:typing", { roomId: typing.roomId, isTyping: false });
  typing.roomId = null;
  typing.sentAt = 0;
}

function clearTyping(room) {
  for (const entry of room.typing.values()) clearTimeout(entry.timer);
  room.typing.clear();
}

let readTimer = null;

function markRead() {
  const room = current();
  if (!room || !room.loaded || document.visibilityState !== "visible") return;
  if (room.unread) {
    room.unread = 0;
    renderSidebar();
  }
  clearTimeout(readTimer);
  readTimer = setTimeout(() => {
    const newest = room.newestId();
    if (!newest || !state.connected || newest <= (room.readSent ?? 0)) return;
    room.readSent = newest;
    call("chat:read", { roomId: room.id, messageId: String(newest) })
      .then((ack) => {
        if (ack.status !== "ok") room.readSent = 0;
      })
      .catch(() => {
        room.readSent = 0;
      });
  }, 250);
}

// --- rooms -------------------------------------------------------------------

async function refreshRooms() {
  const summaries = await api.rooms();
  const seen = new Set();
  for (const summary of summaries) {
    seen.add(summary.id);
    let room = state.rooms.get(summary.id);
    if (room) {
      room.update(summary);
      continue;
    }
    room = new RoomState(summary);
    state.rooms.set(room.id, room);
    if (summary.lastMessage) learnUser(summary.lastMessage.userId, summary.lastMessage.username);
    if (state.connected && followed(room)) repair(room);
  }
  for (const id of [...state.rooms.keys()]) {
    if (!seen.has(id) && id !== state.currentId) state.rooms.delete(id);
  }
  renderSidebar();
}

function roomFromHash() {
  const id = decodeURIComponent(location.hash.replace(/^#/, ""));
  if (state.rooms.has(id)) return id;
  if (state.rooms.has("general")) return "general";
  return sortedRooms(false)[0]?.id ?? sortedRooms(true)[0]?.id ?? null;
}

function openRoom(id, { focus = true } = {}) {
  if (`#${encodeURIComponent(id)}` !== location.hash) history.pushState(null, "", `#${encodeURIComponent(id)}`);
  showRoom(id, { focus });
}

function showRoom(id, { focus = false } = {}) {
  const room = state.rooms.get(id);
  if (!room) return;
  if (state.currentId !== id) {
    stopTyping();
    state.currentId = id;
    state.replyTo = null;
    nodeCache.clear();
    dom.list.replaceChildren();
    renderReplyPreview();
  }
  dom.app.dataset.view = "room";
  dom.emptyState.hidden = true;
  dom.roomView.hidden = false;
  renderHeader();
  renderSidebar();
  renderRoomError();
  renderTyping();
  dom.input.placeholder = room.isDirect ? `Message ${roomLabel(room)}` : `Message #${roomLabel(room)}`;
  if (!room.isMember) {
    room.isMember = true; // opening a public room joins it
    repair(room);
  }
  if (room.loaded) {
    renderMessages("bottom");
    markRead();
  } else {
    renderMessages("bottom");
    loadLatest(room);
  }
  if (focus) dom.input.focus();
}

async function loadLatest(room) {
  if (room.loading) return;
  room.loading = true;
  renderHistoryTop();
  try {
    const page = await api.messages(room.id, { limit: 50 });
    for (const message of page.messages) {
      learnUser(message.userId, message.username);
      // A page is a contiguous run: it may carry the high-water mark forward.
      if (room.classify(message) === "new") room.advance(message);
    }
    room.merge(page.messages);
    if (page.hasMore && page.messages.length) room.trimBefore(Number(page.messages[0].id));
    room.hasMoreBefore = page.hasMore;
    room.loaded = true;
    room.historyError = null;
  } catch (error) {
    room.historyError = error.message;
  } finally {
    room.loading = false;
  }
  if (room.id === state.currentId) {
    renderHeader();
    renderMessages("bottom");
    markRead();
  }
}

async function loadOlder(room) {
  if (room.loadingOlder || !room.hasMoreBefore || !room.loaded) return;
  room.loadingOlder = true;
  renderHistoryTop();
  try {
    const page = await api.messages(room.id, { before: room.oldestId(), limit: 50 });
    for (const message of page.messages) learnUser(message.userId, message.username);
    room.merge(page.messages);
    room.hasMoreBefore = page.hasMore;
    room.historyError = null;
  } catch (error) {
    room.historyError = error.message;
  } finally {
    room.loadingOlder = false;
  }
  if (room.id === state.currentId) renderMessages("anchor");
}

async function jumpTo(id) {
  const room = current();
  if (!room) return;
  for (let tries = 0; !room.messages.has(id) && room.hasMoreBefore && tries < 20; tries++) {
    await loadOlder(room);
    if (room.historyError) break;
  }
  const node = document.getElementById(`message-${id}`);
  if (!node) {
    flash("The original message is no longer available.");
    return;
  }
  node.scrollIntoView({ block: "center", behavior: "smooth" });
  node.classList.add("message--highlight");
  setTimeout(() => node.classList.remove("message--highlight"), 2500);
  node.focus({ preventScroll: true });
}

function startReply(id) {
  const message = current()?.messages.get(id);
  if (!message || message.deletedAt) return;
  state.replyTo = { id: message.id, userId: message.userId, username: message.username, text: message.text.slice(0, 200) };
  renderReplyPreview();
  dom.input.focus();
}

function cancelReply() {
  state.replyTo = null;
  renderReplyPreview();
}

// --- rendering ---------------------------------------------------------------

const nodeCache = new Map(); // key -> {node, sig}, for the room on screen

function cached(key, sig, build) {
  const hit = nodeCache.get(key);
  if (hit && hit.sig === sig) return hit.node;
  const node = build();
  if (hit) {
    const hadFocus = hit.node.contains(document.activeElement);
    hit.node.replaceWith(node);
    if (hadFocus) node.focus({ preventScroll: true });
  }
  nodeCache.set(key, { node, sig });
  return node;
}

function renderIfCurrent(roomId) {
  if (roomId === state.currentId) renderMessages();
}

// mode: "auto" keeps the view at the bottom if it was there; "bottom" goes
// there; "anchor" keeps what is on screen still while older messages load above.
function renderMessages(mode = "auto") {
  const room = current();
  if (!room) return;
  const scroller = dom.scroller;
  const atBottom = scroller.scrollHeight - scroller.scrollTop - scroller.clientHeight < 80;
  const previousHeight = scroller.scrollHeight;
  const previousTop = scroller.scrollTop;

  const items = room.loaded ? room.sorted().map((message) => ({ key: `m:${message.id}`, message })) : [];
  for (const pending of state.outbox) {
    if (pending.roomId === room.id) items.push({ key: `p:${pending.clientId}`, pending });
  }
  const desired = [];
  const used = new Set();
  let previous = null;
  let previousDay = null;
  for (const item of items) {
    const message = item.message ?? item.pending;
    const when = message.timestamp ?? new Date().toISOString();
    const day = dayKey(when);
    if (day !== previousDay) {
      const key = `d:${day}`;
      desired.push(cached(key, key, () => daySeparator(when)));
      used.add(key);
      previousDay = day;
      previous = null;
    }
    const continued = Boolean(
      previous &&
        previous.userId === message.userId &&
        message.userId !== "" && // authors of deleted accounts are not one person
        !message.reply &&
        !previous.deletedAt &&
        new Date(when) - new Date(previous.timestamp ?? when) < GROUP_WINDOW_MS,
    );
    desired.push(cached(item.key, signature(item, continued), () => messageNode(item, { continued, meId: me.userId })));
    used.add(item.key);
    previous = message;
  }
  for (const key of [...nodeCache.keys()]) {
    if (!used.has(key)) {
      nodeCache.get(key).node.remove();
      nodeCache.delete(key);
    }
  }
  desired.forEach((node, index) => {
    if (dom.list.children[index] !== node) dom.list.insertBefore(node, dom.list.children[index] ?? null);
  });
  while (dom.list.children.length > desired.length) dom.list.lastElementChild.remove();

  renderHistoryTop();
  renderReceipt();
  if (mode === "bottom" || (mode === "auto" && atBottom)) scroller.scrollTop = scroller.scrollHeight;
  else if (mode === "anchor") scroller.scrollTop = previousTop + (scroller.scrollHeight - previousHeight);
}

function renderHistoryTop() {
  const room = current();
  if (!room) return;
  const top = dom.historyTop;
  top.replaceChildren();
  if (room.historyError) {
    top.append(
      el("p", { class: "inline-error", role: "alert", text: `Could not load messages: ${room.historyError}` }),
      el("button", { type: "button", class: "link-button", dataset: { action: "reload-history" }, text: "Try again" }),
    );
  } else if (!room.loaded || room.loadingOlder) {
    top.append(el("p", { class: "history-note", text: "Loading messages…" }));
  } else if (room.hasMoreBefore) {
    top.append(el("button", { type: "button", class: "link-button", dataset: { action: "load-older" }, text: "Load older messages" }));
  } else {
    const intro = el("div", { class: "room-intro" });
    intro.append(
      el("h3", { text: room.isDirect ? roomLabel(room) : `#${roomLabel(room)}` }),
      el("p", {
        text: room.isDirect
          ? `This is the beginning of your conversation with ${roomLabel(room)}.`
          : `This is the very beginning of #${roomLabel(room)}.${room.topic ? ` ${room.topic}` : ""}`,
      }),
    );
    top.append(intro);
  }
}

function renderReceipt() {
  const room = current();
  const line = dom.receipt;
  const last = room?.loaded ? room.sorted().at(-1) : null;
  if (!last) {
    line.textContent = "";
    return;
  }
  const readers = [...room.readUpTo]
    .filter(([userId, upTo]) => userId !== me.userId && userId !== last.userId && upTo >= Number(last.id))
    .map(([userId]) => userId);
  const unknown = readers.filter((userId) => !state.users.has(userId));
  if (unknown.length) lookupUsers(unknown);
  const names = readers.map((userId) => state.users.get(userId)).filter(Boolean);
  line.textContent = names.length ? `Seen by ${joinNames(names.sort())}` : "";
}

const lookingUp = new Set();
async function lookupUsers(ids) {
  const wanted = ids.filter((id) => !lookingUp.has(id));
  if (!wanted.length) return;
  wanted.forEach((id) => lookingUp.add(id));
  try {
    for (const user of await api.usersById(wanted)) learnUser(user.userId, user.username);
    renderReceipt();
  } catch {
    // Names stay unknown; the line shows the ones we have.
  }
}

function renderTyping() {
  const room = current();
  const names = room ? [...room.typing.values()].map((t) => t.username) : [];
  dom.typing.textContent = typingText(names);
}

function renderReplyPreview() {
  const reply = state.replyTo;
  dom.replyPreview.hidden = !reply;
  dom.replyAuthor.textContent = reply?.username ?? "";
  dom.replyText.textContent = reply?.text ?? "";
}

function renderRoomError() {
  const room = current();
  const error = room?.error;
  dom.roomError.hidden = !error;
  dom.roomError.textContent = error ? roomErrorText(error) : "";
  dom.input.disabled = Boolean(error && ["forbidden", "banned", "not_found"].includes(error.code));
}

function roomErrorText(error) {
  if (error.code === "banned") return error.error || "You are banned from this room.";
  if (error.code === "forbidden") return `You cannot join this room: ${error.error}`;
  return error.error || "Something went wrong with this room.";
}

function roomLabel(room) {
  if (!room.isDirect) return room.name;
  const other = directPartner(room);
  return other?.username ?? room.name;
}

// The other person of a 1:1 room: its id is dm-<low id>-<high id>, with -<n>
// after it when an earlier room of the pair was deleted.
function directPartner(room) {
  const match = /^dm-(\d+)-(\d+)(?:-\d+)?$/.exec(room.id);
  if (!match) return null;
  const userId = match[1] === me.userId ? match[2] : match[1];
  let username = state.users.get(userId);
  if (!username) {
    const names = room.name.split(" & ");
    username = names.find((n) => n !== me.username) ?? names[0];
  }
  return { userId, username };
}

function presenceOf(userId) {
  if (userId === me.userId) return state.connected ? "online" : "offline";
  return state.online.get(userId)?.status ?? "offline";
}

function sortedRooms(direct) {
  return [...state.rooms.values()]
    .filter((room) => room.isDirect === direct)
    .sort((a, b) => roomLabel(a).localeCompare(roomLabel(b)));
}

function renderSidebar() {
  const link = (room) => {
    const label = roomLabel(room);
    const isCurrent = room.id === state.currentId;
    let glyph;
    if (room.isDirect) {
      const status = presenceOf(directPartner(room)?.userId);
      glyph = el("span", { class: `presence-dot presence-dot--${status}`, title: status },
        el("span", { class: "visually-hidden", text: `(${status})` }));
    } else {
      glyph = el("span", { class: "room-glyph" }, icon(room.visibility === "private" ? "lock" : "hash"));
      if (room.visibility === "private") glyph.append(el("span", { class: "visually-hidden", text: "(private)" }));
    }
    const badge = room.unread && !isCurrent && room.isMember
      ? el("span", { class: "badge", dataset: { unread: String(room.unread) } },
          String(room.unread), el("span", { class: "visually-hidden", text: " unread" }))
      : null;
    return el(
      "li",
      {},
      el(
        "a",
        {
          href: `#${encodeURIComponent(room.id)}`,
          class: `room-link${room.unread && !isCurrent ? " room-link--unread" : ""}`,
          "aria-current": isCurrent ? "page" : undefined,
          dataset: { roomId: room.id },
        },
        glyph,
        el("span", { class: "room-name", text: label }),
        badge,
      ),
    );
  };
  dom.roomList.replaceChildren(...sortedRooms(false).map(link));
  dom.dmList.replaceChildren(...sortedRooms(true).map(link));
  if (!sortedRooms(false).length) dom.roomList.append(el("li", { class: "sidebar-note", text: "No rooms yet" }));
  if (!sortedRooms(true).length) dom.dmList.append(el("li", { class: "sidebar-note", text: "No conversations yet" }));
  const elsewhere = [...state.rooms.values()].reduce((sum, room) => sum + (room.id === state.currentId ? 0 : room.unread), 0);
  const total = elsewhere + (document.visibilityState === "visible" ? 0 : current()?.unread ?? 0);
  document.title = total ? `(${total}) ${titleBase()}` : titleBase();
  // On a phone the sidebar is hidden behind the back button: it carries the count.
  $("back-badge").hidden = !elsewhere;
  $("back-badge").textContent = String(elsewhere);
  $("back-button").setAttribute("aria-label", elsewhere ? `Back to rooms (${elsewhere} unread)` : "Back to rooms");
}

function titleBase() {
  const room = current();
  return room ? `${room.isDirect ? "" : "#"}${roomLabel(room)} · Chat` : "Chat";
}

function renderPresence() {
  const others = [...state.online]
    .filter(([userId]) => userId !== me.userId)
    .sort((a, b) => a[1].username.localeCompare(b[1].username));
  dom.onlineList.replaceChildren(
    ...others.map(([userId, { username, status }]) =>
      el(
        "li",
        {},
        el(
          "button",
          { type: "button", class: "person", dataset: { action: "dm", username }, title: `Message ${username}` },
          el("span", { class: `presence-dot presence-dot--${status}`, "aria-hidden": "true" }),
          el("span", { class: "room-name", text: username }),
          el("span", { class: "visually-hidden", text: ` (${status})` }),
        ),
      ),
    ),
  );
  if (!others.length) dom.onlineList.append(el("li", { class: "sidebar-note", text: "No one else is online" }));
  $("me-dot").className = `presence-dot presence-dot--${presenceOf(me.userId)}`;
  renderSidebar();
  renderHeader();
}

function renderHeader() {
  const room = current();
  if (!room) return;
  dom.roomTitle.textContent = roomLabel(room);
  if (room.isDirect) {
    const status = presenceOf(directPartner(room)?.userId);
    dom.roomIcon.replaceChildren(el("span", { class: `presence-dot presence-dot--${status}`, "aria-hidden": "true" }));
    dom.roomTopic.textContent = status === "online" ? "Online" : status === "away" ? "Away" : "Offline";
  } else {
    dom.roomIcon.replaceChildren(icon(room.visibility === "private" ? "lock" : "hash"));
    dom.roomTopic.textContent = room.topic;
  }
  const here = [...room.people]
    .filter((userId) => userId !== me.userId && presenceOf(userId) !== "offline")
    .map((userId) => state.users.get(userId) ?? state.online.get(userId)?.username)
    .filter(Boolean)
    .sort();
  const line = $("room-online");
  line.hidden = room.isDirect || !here.length;
  line.replaceChildren(
    el("span", { class: "presence-dot presence-dot--online", "aria-hidden": "true" }),
    `${joinNames(here)} online`,
  );
  line.title = here.length ? `Online here: ${here.join(", ")}` : "";
}

function setBanner(kind) {
  // Also a hook for tests and styles: "online" once connected and caught up.
  dom.app.dataset.connection = kind ?? (state.connected ? "online" : "connecting");
  dom.banner.hidden = !kind;
  dom.banner.dataset.kind = kind ?? "";
  if (kind === "offline") {
    dom.bannerText.textContent =
      "You are offline. Reconnecting… Messages you write now are sent when the connection returns.";
  } else if (kind === "signed-out") {
    dom.bannerText.replaceChildren(
      "Your session has ended. ",
      el("a", { href: `/login/?next=${encodeURIComponent("/" + location.hash)}`, text: "Sign in again" }),
    );
  }
  $("me-dot").className = `presence-dot presence-dot--${presenceOf(me.userId)}`;
}

let flashTimer = null;
function flash(text) {
  const box = $("flash");
  box.textContent = text;
  box.hidden = false;
  clearTimeout(flashTimer);
  flashTimer = setTimeout(() => {
    box.hidden = true;
  }, 4000);
}

function autosize() {
  dom.input.style.height = "auto";
  dom.input.style.height = `${Math.min(dom.input.scrollHeight, 200)}px`;
}

// --- events ------------------------------------------------------------------

function setupEvents() {
  dom.composer.addEventListener("submit", (event) => {
    event.preventDefault();
    const room = current();
    const text = dom.input.value.trim();
    if (!room || !text) return;
    if (text.length > MAX_TEXT) {
      dom.composerError.textContent = `Messages can be at most ${MAX_TEXT} characters (this one has ${text.length}).`;
      dom.composerError.hidden = false;
      return;
    }
    stopTyping();
    queueSend(room, text);
    dom.input.value = "";
    autosize();
    cancelReply();
  });
  dom.input.addEventListener("input", onComposerInput);
  dom.input.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      dom.composer.requestSubmit();
    } else if (event.key === "Escape" && state.replyTo) {
      event.preventDefault();
      cancelReply();
    } else if (event.key === "ArrowUp" && !dom.input.value) {
      // Up from an empty box walks into the messages, like a chat app's history.
      const last = [...dom.list.querySelectorAll(".message")].at(-1);
      if (last) {
        event.preventDefault();
        last.focus();
      }
    }
  });
  $("reply-cancel").addEventListener("click", () => {
    cancelReply();
    dom.input.focus();
  });

  document.addEventListener("click", (event) => {
    const target = event.target.closest("[data-action]");
    if (!target) return;
    const { action } = target.dataset;
    if (action === "reply") startReply(target.dataset.id);
    else if (action === "jump") jumpTo(target.dataset.target);
    else if (action === "retry") retry(target.dataset.clientId);
    else if (action === "discard") discard(target.dataset.clientId);
    else if (action === "load-older") loadOlder(current());
    else if (action === "reload-history") {
      const room = current();
      room.historyError = null;
      room.loaded ? loadOlder(room) : loadLatest(room);
    } else if (action === "dm") startDirect(target.dataset.username);
    else if (action === "back") dom.app.dataset.view = "sidebar";
  });

  // The sidebar's links change the hash; this turns that into a room switch.
  document.addEventListener("click", (event) => {
    const link = event.target.closest("a.room-link");
    if (!link || event.ctrlKey || event.metaKey || event.shiftKey) return;
    event.preventDefault();
    openRoom(link.dataset.roomId);
  });
  window.addEventListener("popstate", () => {
    const id = roomFromHash();
    if (id) showRoom(id);
  });

  dom.scroller.addEventListener("scroll", () => {
    const room = current();
    if (room && dom.scroller.scrollTop < 120) loadOlder(room);
  });

  // Keyboard use of the message log: arrows walk the messages, R or Enter
  // replies, Escape goes back to the composer.
  dom.scroller.addEventListener("keydown", (event) => {
    const messages = [...dom.list.querySelectorAll(".message")];
    const focused = event.target.closest?.(".message");
    const index = messages.indexOf(focused);
    const go = (node) => {
      if (!node) return;
      event.preventDefault();
      node.focus();
      node.scrollIntoView({ block: "nearest" });
    };
    if (event.key === "ArrowUp") {
      if (index > 0) go(messages[index - 1]);
      else if (index === 0) loadOlder(current());
      else go(messages.at(-1));
    } else if (event.key === "ArrowDown") {
      if (index >= 0 && index < messages.length - 1) go(messages[index + 1]);
      else if (index === messages.length - 1) {
        event.preventDefault();
        dom.input.focus();
      } else if (index < 0) go(messages.at(-1));
    } else if (event.key === "Home" && focused) go(messages[0]);
    else if (event.key === "End" && focused) go(messages.at(-1));
    else if ((event.key === "r" || event.key === "R" || event.key === "Enter") && focused && event.target === focused) {
      if (focused.dataset.id) {
        event.preventDefault();
        startReply(focused.dataset.id);
      }
    } else if (event.key === "Escape") {
      event.preventDefault();
      dom.input.focus();
    }
  });

  // Alt+Up / Alt+Down move between rooms from anywhere.
  document.addEventListener("keydown", (event) => {
    if (!event.altKey || (event.key !== "ArrowUp" && event.key !== "ArrowDown")) return;
    const order = [...sortedRooms(false), ...sortedRooms(true)].map((room) => room.id);
    const index = order.indexOf(state.currentId);
    const next = order[index + (event.key === "ArrowUp" ? -1 : 1)];
    if (next) {
      event.preventDefault();
      openRoom(next);
    }
  });

  document.addEventListener("visibilitychange", () => {
    if (document.visibilityState === "visible") markRead();
    else stopTyping();
  });
  window.addEventListener("focus", () => refreshRooms().catch(() => {}));
}

// --- start -------------------------------------------------------------------

async function start() {
  setupEvents();
  setupDialogs({
    me,
    presenceOf,
    flash,
    roomChosen: async (id) => {
      await refreshRooms();
      openRoom(id);
    },
  });
  try {
    await refreshRooms();
  } catch (error) {
    dom.emptyState.hidden = false;
    dom.emptyState.querySelector("p").textContent = `Could not load your rooms: ${error.message}`;
  }
  const id = roomFromHash();
  if (id) showRoom(id, { focus: true });
  else {
    dom.roomView.hidden = true;
    dom.emptyState.hidden = false;
    dom.app.dataset.view = "sidebar";
  }
  socket.connect();
  // `room:added` announces rooms others add me to; a slow re-read (and one on
  // focus) also catches what a dropped broadcast or an admin edit changed.
  setInterval(() => {
    if (state.connected && document.visibilityState === "visible") refreshRooms().catch(() => {});
  }, 30_000);
}

start();
