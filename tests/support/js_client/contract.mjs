// The /chat wire contract, played by the official JavaScript client.
//
// Written only from docs/protocol.md, as a third-party app would be: no
// knowledge of the server's code. Run by tests/chat/sockets/test_js_client.py;
// by hand:
//
//   node tests/support/js_client/contract.mjs '{"url": "http://127.0.0.1:8000",
//     "roomId": "general", "a": {"token": "...", "userId": "1", "username": "alice"},
//     "b": {"token": "...", "userId": "2", "username": "bob"}}'
//
// (or the same JSON in CONTRACT_INPUT). Both users must be members of the room;
// nothing else may be talking in it.
//
// With "scenario": "sync-required" (only "a" needed) it plays the recovery of
// protocol.md's additions instead: A joins the room, writes `READY` on stderr,
// and waits (up to SYNC_WAIT_MS) for `sync:required`; the caller meanwhile
// makes the server's bus drop a message of the room. A then fetches what it
// lacks with `room:join {since}`, as the addition says. Prints one JSON object on stdout,
// {"ok": true, ...observations} or {"ok": false, "step", "error", ...}, and
// exits 0, 1 (a contract violation) or 2 (bad input). Every wait has a
// timeout, so a silent server fails the run instead of hanging it.

import { isDeepStrictEqual } from "node:util";

// Resolved from the repository's node_modules (Node walks up from this file),
// so the version is the one pinned in package.json.
import { io } from "socket.io-client";

const STEP_TIMEOUT_MS = 5000;
// A broadcast that should not happen is given this long to show up.
const QUIET_MS = 400;
const OVERALL_TIMEOUT_MS = 50000;
// How long the sync-required scenario waits for the server's bus to drop and recover.
const SYNC_WAIT_MS = 40000;
const NAMESPACE = "/chat";
// protocol.md: "ISO 8601 in UTC, e.g. 2026-11-29T10:00:00.123456Z".
const UTC_TIMESTAMP = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$/;

class ContractViolation extends Error {}

const observations = { steps: [] };
const sockets = [];
let currentStep = "input";

// --- checks ---------------------------------------------------------------------

function show(value) {
  return JSON.stringify(value);
}

function expect(condition, message) {
  if (!condition) throw new ContractViolation(message);
}

function expectEqual(actual, expected, what) {
  expect(isDeepStrictEqual(actual, expected), `${what}: expected ${show(expected)}, got ${show(actual)}`);
}

function expectOk(ack, what) {
  expect(ack !== null && typeof ack === "object" && ack.status === "ok", `${what}: expected an ok ack, got ${show(ack)}`);
}

function expectError(ack, code, what) {
  expect(
    ack !== null && typeof ack === "object" && ack.status === "error" && ack.code === code,
    `${what}: expected {status: "error", code: "${code}"}, got ${show(ack)}`,
  );
  expect(
    typeof ack.error === "string" && ack.error.length > 0,
    `${what}: an error ack needs a human "error" text, got ${show(ack)}`,
  );
}

function expectTimestamp(value, what) {
  expect(
    typeof value === "string" && UTC_TIMESTAMP.test(value),
    `${what}: expected ISO 8601 UTC ending in Z, got ${show(value)}`,
  );
  expect(!Number.isNaN(Date.parse(value)), `${what}: ${show(value)} is not a date`);
}

// The message object of protocol.md (spec fields, then this server's additions),
// and any `expected` values on top.
function expectMessage(message, expected, what) {
  expect(message !== null && typeof message === "object", `${what}: expected a message object, got ${show(message)}`);
  for (const field of ["id", "roomId", "userId", "username", "text"]) {
    expect(typeof message[field] === "string", `${what}: "${field}" must be a string, got ${show(message)}`);
  }
  expect(Number.isInteger(message.seq) && message.seq >= 1, `${what}: "seq" must be an integer >= 1, got ${show(message)}`);
  for (const field of ["replyTo", "clientId"]) {
    expect(
      field in message && (message[field] === null || typeof message[field] === "string"),
      `${what}: "${field}" must be null or a string, got ${show(message)}`,
    );
  }
  expect("attachment" in message, `${what}: "attachment" is missing: ${show(message)}`);
  expectTimestamp(message.timestamp, `${what}.timestamp`);
  expect(
    Array.isArray(message.readBy) && message.readBy.every((id) => typeof id === "string"),
    `${what}: "readBy" must be a list of user ids (strings), got ${show(message)}`,
  );
  expectEqual(message.readBy[0], message.userId, `${what}: readBy starts with the author's id`);
  expect(
    Number.isInteger(message.readCount) && message.readCount >= message.readBy.length && message.readBy.length <= 20,
    `${what}: "readCount" must count every reader, "readBy" list at most 20 of them, got ${show(message)}`,
  );
  for (const field of ["reply", "editedAt", "deletedAt"]) {
    expect(field in message, `${what}: "${field}" is missing (every message object carries it): ${show(message)}`);
  }
  for (const [field, value] of Object.entries(expected)) {
    expectEqual(message[field], value, `${what}.${field}`);
  }
}

// Oldest first, and seq without holes.
function expectHistory(messages, what) {
  expect(Array.isArray(messages), `${what}: expected a list of messages, got ${show(messages)}`);
  messages.forEach((message, i) => expectMessage(message, {}, `${what}[${i}]`));
  for (let i = 1; i < messages.length; i++) {
    expectEqual(messages[i].seq, messages[i - 1].seq + 1, `${what}[${i}].seq (oldest first, no holes)`);
  }
}

// --- a recording client -----------------------------------------------------------

function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function withTimeout(promise, what, ms = STEP_TIMEOUT_MS) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new ContractViolation(`${what}: nothing within ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

class Client {
  // forceNew: every Client is its own connection, like two users' browsers.
  // reconnection off: a disconnect the server chose must show, not be papered over.
  constructor(label, url, auth) {
    this.label = label;
    this.url = url;
    this.auth = auth;
    this.events = [];
    this.disconnects = [];
    this.listeners = new Set();
    this.socket = io(`${url}${NAMESPACE}`, { auth, forceNew: true, reconnection: false, timeout: STEP_TIMEOUT_MS });
    sockets.push(this.socket);
    this.socket.onAny((event, ...args) => {
      this.events.push({ event, payload: args.length === 1 ? args[0] : args });
      for (const listener of this.listeners) listener();
    });
    this.socket.on("disconnect", (reason) => this.disconnects.push(reason));
    this.transports = [];
    this.watchTransport();
  }

  // The transports this client went through, in order; protocol.md: polling, then websocket.
  watchTransport() {
    const engine = this.socket.io.engine;
    this.transports.push(engine.transport.name);
    engine.on("upgrade", (transport) => this.transports.push(transport.name));
  }

  connected() {
    return new Promise((resolve, reject) => {
      this.socket.once("connect", resolve);
      this.socket.once("connect_error", (error) => reject(new ContractViolation(`${this.label} was refused: ${error.message}`)));
    });
  }

  // The connect_error of a refused handshake; it must never connect.
  refused() {
    return new Promise((resolve, reject) => {
      this.socket.once("connect", () => reject(new ContractViolation(`${this.label} connected, but must be refused`)));
      this.socket.once("connect_error", resolve);
    });
  }

  async upgraded() {
    const engine = this.socket.io.engine;
    if (engine.transport.name !== "websocket") {
      await withTimeout(
        new Promise((resolve, reject) => {
          engine.once("upgrade", resolve);
          engine.once("upgradeError", (error) =>
            reject(new ContractViolation(`${this.label}: the upgrade to websocket failed: ${error.message}`)),
          );
        }),
        `${this.label}: upgrade from polling to websocket`,
      );
    }
    expectEqual(engine.transport.name, "websocket", `${this.label}: transport after the upgrade`);
  }

  reconnect() {
    this.socket.connect();
    this.watchTransport();
  }

  mark() {
    return this.events.length;
  }

  received(event, predicate = () => true, since = 0) {
    return this.events.slice(since).filter((e) => e.event === event && predicate(e.payload)).map((e) => e.payload);
  }

  // The first `event` (recorded from `since` on) matching `predicate`.
  waitFor(event, predicate = () => true, since = 0, what = `${this.label} receives ${event}`, ms = STEP_TIMEOUT_MS) {
    const found = () => this.received(event, predicate, since)[0];
    let listener;
    const arrival = new Promise((resolve) => {
      listener = () => {
        const payload = found();
        if (payload !== undefined) resolve(payload);
      };
      this.listeners.add(listener);
      listener();
    });
    return withTimeout(arrival, what, ms).catch((error) => {
      const seen = this.received(event, () => true, since);
      throw new ContractViolation(`${error.message}; ${event} seen meanwhile: ${show(seen)}`);
    }).finally(() => this.listeners.delete(listener));
  }

  async call(event, payload) {
    try {
      return await this.socket.timeout(STEP_TIMEOUT_MS).emitWithAck(event, payload);
    } catch (error) {
      throw new ContractViolation(
        `${this.label}: no ack for ${event} ${show(payload)} within ${STEP_TIMEOUT_MS} ms (${error.message})`,
      );
    }
  }

  emit(event, payload) {
    this.socket.emit(event, payload);
  }
}

// --- the scenario -----------------------------------------------------------------

function readInput() {
  const raw = process.argv[2] ?? process.env.CONTRACT_INPUT;
  if (!raw) throw new TypeError("pass the input JSON as the first argument or in CONTRACT_INPUT");
  const input = JSON.parse(raw);
  for (const key of ["url", "roomId"]) {
    if (typeof input[key] !== "string") throw new TypeError(`input.${key} must be a string`);
  }
  if (input.scenario !== undefined && input.scenario !== "sync-required") {
    throw new TypeError(`input.scenario must be "sync-required" when given, got ${show(input.scenario)}`);
  }
  for (const user of input.scenario === "sync-required" ? ["a"] : ["a", "b"]) {
    for (const key of ["token", "userId", "username"]) {
      if (typeof input[user]?.[key] !== "string") throw new TypeError(`input.${user}.${key} must be a string`);
    }
  }
  return input;
}

async function step(name, body) {
  currentStep = name;
  const started = Date.now();
  await body();
  observations.steps.push({ name, ms: Date.now() - started });
}

async function scenario({ url, roomId, a: userA, b: userB }) {
  const tag = Date.now().toString(36);
  const asA = { userId: userA.userId, username: userA.username };
  const asB = { userId: userB.userId, username: userB.username };
  let a, b, history, sent, missed;

  await step("handshake refusals", async () => {
    const anonymous = new Client("no credentials", url, undefined);
    const forged = new Client("bad token", url, { token: "not-a-jwt" });
    const [noCredentials, badToken] = await withTimeout(
      Promise.all([anonymous.refused(), forged.refused()]),
      "connect_error for refused handshakes",
    );
    expectEqual(noCredentials.message, "Authentication required", "connect_error message without credentials");
    expectEqual(badToken.message, "Invalid token", "connect_error message for a bad token");
    observations.refusals = { noCredentials: noCredentials.message, badToken: badToken.message };
    anonymous.socket.close();
    forged.socket.close();
  });

  await step("connect both, polling then websocket", async () => {
    a = new Client("A", url, { token: userA.token });
    await withTimeout(a.connected(), "A connects");
    await a.upgraded();
    b = new Client("B", url, { token: userB.token });
    await withTimeout(b.connected(), "B connects");
    await b.upgraded();
    expectEqual(a.transports, ["polling", "websocket"], "A's transports");
    expectEqual(b.transports, ["polling", "websocket"], "B's transports");
    observations.transports = { a: [...a.transports], b: [...b.transports] };
  });

  await step("presence on connect", async () => {
    // B connected second: A is online and shares the room, so B's list names A once.
    const listB = await b.waitFor("presence:list");
    expect(Array.isArray(listB), `presence:list must be a list, got ${show(listB)}`);
    for (const item of listB) {
      expect(typeof item.userId === "string" && typeof item.username === "string", `presence:list item ${show(item)}`);
    }
    const aInB = listB.filter((item) => item.userId === userA.userId);
    expectEqual(aInB.length, 1, `A in B's presence:list ${show(listB)}`);
    expectEqual(aInB[0].username, userA.username, "A's username in B's presence:list");
    // A hears of B by presence:online (or, racing, in its own presence:list).
    const bOnline = await Promise.any([
      a.waitFor("presence:online", (p) => p.userId === userB.userId),
      a.waitFor("presence:list", (list) => Array.isArray(list) && list.some((item) => item.userId === userB.userId)),
    ]).catch(() => {
      throw new ContractViolation(`A never heard B come online: ${show(a.events)}`);
    });
    if (!Array.isArray(bOnline)) expectEqual(bOnline, asB, "presence:online about B");
    observations.presence = { listOfB: listB, aHeardOfB: bOnline };
  });

  await step("room:join answers ok with history", async () => {
    const ackA = await a.call("room:join", roomId);
    expectOk(ackA, "A's room:join (string form)");
    expectEqual(ackA.roomId, roomId, "room:join ack roomId");
    expectHistory(ackA.messages, "room:join ack messages");
    expectEqual(ackA.hasMore, false, "room:join hasMore without since");
    expect(typeof ackA.hasMoreBefore === "boolean", `room:join hasMoreBefore must be a boolean, got ${show(ackA)}`);
    const historyA = await a.waitFor("room:history", (h) => h.roomId === roomId);
    expectEqual(historyA.messages, ackA.messages, "room:history messages (same as the ack)");

    const markB = b.mark();
    const ackB = await b.call("room:join", { roomId });
    expectOk(ackB, "B's room:join (object form)");
    expectEqual(ackB.messages, ackA.messages, "B's history (nothing new since A joined)");
    await b.waitFor("room:history", (h) => h.roomId === roomId, markB);

    const unknown = await a.call("room:join", `no-such-room-${tag}`);
    expectError(unknown, "not_found", "room:join of an unknown room");

    history = ackA.messages;
    observations.history = {
      count: history.length,
      ids: history.map((m) => m.id),
      texts: history.map((m) => m.text),
      hasMoreBefore: ackA.hasMoreBefore,
    };
  });

  const lastSeq = () => (history.length ? history[history.length - 1].seq : 0);

  await step("chat:typing reaches the others", async () => {
    const markB = b.mark();
    a.emit("chat:typing", { roomId, isTyping: true }); // the ack is optional: none asked
    expectEqual(await b.waitFor("chat:typing", () => true, markB), { ...asA, roomId, isTyping: true }, "chat:typing at B");
    const ack = await a.call("chat:typing", { roomId, isTyping: false });
    expectOk(ack, "chat:typing ack, when asked for");
    expectEqual(
      await b.waitFor("chat:typing", (t) => t.isTyping === false, markB),
      { ...asA, roomId, isTyping: false },
      "chat:typing stop at B",
    );
    observations.typing = b.received("chat:typing", () => true, markB);
  });

  await step("chat:message is acked after storing and reaches the room", async () => {
    const markA = a.mark();
    const markB = b.mark();
    // Typing first: sending clears it for the others.
    a.emit("chat:typing", { roomId, isTyping: true });
    await b.waitFor("chat:typing", (t) => t.isTyping === true, markB);
    const clientId = `js-${tag}-1`;
    const ack = await a.call("chat:message", { roomId, text: "  Hello from socket.io-client  ", clientId });
    expectOk(ack, "chat:message ack");
    expect(
      typeof ack.messageId === "string" && ack.messageId.length > 0,
      `chat:message ack messageId must be a string, got ${show(ack)}`,
    );
    expectEqual(ack.seq, lastSeq() + 1, "chat:message ack seq");

    // "only after the message is durably stored": REST already has it.
    const after = history.length ? `?after=${encodeURIComponent(history.at(-1).id)}` : "";
    const response = await withTimeout(
      fetch(`${url}/api/rooms/${encodeURIComponent(roomId)}/messages/${after}`, {
        headers: { Authorization: `Bearer ${userB.token}` },
      }),
      "REST messages after the ack",
    );
    expectEqual(response.status, 200, "GET messages status");
    const stored = (await response.json()).messages;
    expect(
      Array.isArray(stored) && stored.some((m) => m.id === ack.messageId),
      `the acked message is not in GET messages: ${show(stored)}`,
    );

    const expected = {
      id: ack.messageId,
      roomId,
      seq: lastSeq() + 1,
      ...asA,
      text: "Hello from socket.io-client",
      replyTo: null,
      clientId,
      attachment: null,
      readBy: [userA.userId],
      reply: null,
      editedAt: null,
      deletedAt: null,
    };
    const atB = await b.waitFor("chat:message", (m) => m.id === ack.messageId, markB);
    expectMessage(atB, expected, "chat:message at B");
    const atA = await a.waitFor("chat:message", (m) => m.id === ack.messageId, markA, "A receives its own chat:message");
    expectEqual(atA, atB, "the sender's copy of chat:message");
    const age = Math.abs(Date.now() - Date.parse(atB.timestamp));
    expect(age < 120000, `chat:message timestamp ${atB.timestamp} is ${age} ms from now: not UTC?`);
    expectEqual(
      await b.waitFor("chat:typing", (t) => t.isTyping === false, markB, "B sees A's typing cleared by the send"),
      { ...asA, roomId, isTyping: false },
      "chat:typing cleared by sending",
    );
    sent = { ...atB, ack };
    observations.sent = { messageId: ack.messageId, seq: atB.seq, clientId, text: atB.text, timestamp: atB.timestamp, ack };
  });

  await step("a resend with the same clientId is the same message", async () => {
    const markA = a.mark();
    const markB = b.mark();
    const again = await a.call("chat:message", { roomId, text: "  Hello from socket.io-client  ", clientId: sent.clientId });
    expectOk(again, "resend ack");
    expectEqual(again.messageId, sent.id, "resend messageId (the first one)");
    await sleep(QUIET_MS);
    expectEqual(b.received("chat:message", () => true, markB), [], "chat:message at B after a resend (not broadcast twice)");
    expectEqual(a.received("chat:message", () => true, markA), [], "chat:message at A after a resend");
    observations.resend = { ack: again };
  });

  await step("malformed payloads are invalid and keep the socket", async () => {
    const markB = b.mark();
    const malformed = [
      { roomId, text: 42, clientId: `js-${tag}-bad-1` },
      { roomId, clientId: `js-${tag}-bad-2` },
      { roomId, text: "   \n ", clientId: `js-${tag}-bad-3` },
      { roomId, text: "x".repeat(5001), clientId: `js-${tag}-bad-4` },
      "not an object",
    ];
    const acks = [];
    for (const payload of malformed) {
      const ack = await a.call("chat:message", payload);
      expectError(ack, "invalid", `chat:message ${show(payload).slice(0, 80)}`);
      acks.push(ack);
    }
    await sleep(QUIET_MS);
    expect(a.socket.connected, `A was disconnected by malformed payloads: ${show(a.disconnects)}`);
    expectEqual(a.disconnects, [], "A's disconnects after malformed payloads");
    expectEqual(b.received("chat:message", () => true, markB), [], "chat:message at B after malformed payloads");
    observations.invalid = acks;
  });

  await step("chat:read reaches the others and marks earlier messages read", async () => {
    const markA = a.mark();
    const markB = b.mark();
    const ack = await b.call("chat:read", { roomId, messageId: sent.id });
    expectOk(ack, "chat:read ack");
    const read = await a.waitFor("chat:read", () => true, markA);
    expectEqual(read, { userId: userB.userId, messageId: sent.id, roomId }, "chat:read at A");
    const response = await withTimeout(
      fetch(`${url}/api/rooms/${encodeURIComponent(roomId)}/messages/`, { headers: { Authorization: `Bearer ${userA.token}` } }),
      "REST messages after chat:read",
    );
    expectEqual(response.status, 200, "GET messages status");
    const messages = (await response.json()).messages;
    for (const message of messages.filter((m) => m.seq <= sent.seq)) {
      expect(message.readBy.includes(userB.userId), `message seq ${message.seq} not read by B after chat:read: ${show(message)}`);
    }
    await sleep(QUIET_MS);
    expectEqual(b.received("chat:read", () => true, markB), [], "chat:read at the reader's own socket");
    observations.read = { ack, atA: read, readBy: messages.map((m) => ({ seq: m.seq, readBy: m.readBy })) };
  });

  await step("a disconnected client catches up with room:join since", async () => {
    const markB = b.mark();
    a.emit("chat:typing", { roomId, isTyping: true });
    await b.waitFor("chat:typing", (t) => t.isTyping === true, markB);
    const lastSeen = sent; // the last message A received
    a.socket.disconnect();
    expectEqual(
      await b.waitFor("chat:typing", (t) => t.isTyping === false, markB, "B sees A's typing cleared by the disconnect"),
      { ...asA, roomId, isTyping: false },
      "chat:typing cleared on disconnect",
    );

    const clientId = `js-${tag}-2`;
    const ack = await b.call("chat:message", { roomId, text: "You missed this", clientId });
    expectOk(ack, "B's chat:message ack");
    missed = await b.waitFor("chat:message", (m) => m.id === ack.messageId, markB, "B receives its own chat:message");
    expectMessage(
      missed,
      { roomId, seq: lastSeen.seq + 1, ...asB, text: "You missed this", clientId, readBy: [userB.userId] },
      "B's message",
    );

    const markA = a.mark();
    a.reconnect();
    await withTimeout(a.connected(), "A reconnects");
    await a.upgraded();
    const ackJoin = await a.call("room:join", { roomId, since: lastSeen.id });
    expectOk(ackJoin, "room:join with since");
    expectEqual(ackJoin.roomId, roomId, "room:join since ack roomId");
    expectEqual(ackJoin.messages, [missed], "room:join since: exactly the missed message");
    expectEqual(ackJoin.hasMore, false, "room:join since hasMore");
    const historyA = await a.waitFor("room:history", (h) => h.roomId === roomId, markA);
    expectEqual(historyA.messages, [missed], "room:history after since");
    observations.missed = { messageId: missed.id, seq: missed.seq, clientId, text: missed.text };
    observations.rejoin = {
      messages: ackJoin.messages.map((m) => m.id),
      hasMore: ackJoin.hasMore,
      transports: a.transports.slice(2),
    };
  });

  await step("audiences", async () => {
    expectEqual(a.received("chat:typing", (t) => t.userId === userA.userId), [], "A's own chat:typing echoed to A");
    expectEqual(b.received("chat:read", (r) => r.userId === userB.userId), [], "B's own chat:read echoed to B");
    expectEqual(a.received("chat:message", (m) => m.id === sent.id).length, 1, "A's copies of its message");
    expectEqual(b.received("chat:message", (m) => m.id === sent.id).length, 1, "B's copies of A's message");
    expectEqual(a.disconnects, ["io client disconnect"], "A's disconnects (only the one it asked for)");
    expectEqual(b.disconnects, [], "B's disconnects");
    observations.received = {
      a: a.events.map((e) => e.event),
      b: b.events.map((e) => e.event),
    };
  });
}

// protocol.md's additions: `sync:required {rooms: [{roomId, lastSeq}]}` means
// broadcasts to these rooms may have been lost; fetch everything after your
// last seq with `room:join {since}`.
async function syncScenario({ url, roomId, a: userA }) {
  let a, lastSeen;

  await step("connect and join", async () => {
    a = new Client("A", url, { token: userA.token });
    await withTimeout(a.connected(), "A connects");
    const ack = await a.call("room:join", { roomId });
    expectOk(ack, "A's room:join");
    expectHistory(ack.messages, "room:join ack messages");
    lastSeen = ack.messages.length ? ack.messages[ack.messages.length - 1] : null;
    observations.lastSeen = lastSeen && { id: lastSeen.id, seq: lastSeen.seq };
    process.stderr.write("READY\n");
  });

  await step("sync:required after the bus dropped a message", async () => {
    const sync = await a.waitFor("sync:required", () => true, 0, "A receives sync:required", SYNC_WAIT_MS);
    expect(sync !== null && typeof sync === "object" && Array.isArray(sync.rooms), `sync:required ${show(sync)}`);
    for (const room of sync.rooms) {
      expect(typeof room.roomId === "string", `sync:required roomId must be a string: ${show(room)}`);
      expect(Number.isInteger(room.lastSeq) && room.lastSeq >= 0, `sync:required lastSeq: ${show(room)}`);
    }
    const ours = sync.rooms.find((room) => room.roomId === roomId);
    expect(ours !== undefined, `sync:required names the joined room: ${show(sync)}`);
    const heard = a.received("chat:message", (m) => m.roomId === roomId);
    const known = Math.max(lastSeen ? lastSeen.seq : 0, ...heard.map((m) => m.seq));
    expect(ours.lastSeq > known, `lastSeq ${ours.lastSeq} is past what A holds (${known}): nothing to repair`);
    observations.sync = { rooms: sync.rooms, heardLive: heard.map((m) => m.id) };

    const payload = lastSeen ? { roomId, since: lastSeen.id } : { roomId };
    const ack = await a.call("room:join", payload);
    expectOk(ack, "room:join with since after sync:required");
    expectHistory(ack.messages, "the repair's messages");
    const seqs = ack.messages.map((m) => m.seq);
    const first = lastSeen ? lastSeen.seq + 1 : 1;
    expectEqual(seqs, Array.from({ length: ours.lastSeq - first + 1 }, (_, i) => first + i), "seqs of the repair");
    observations.repaired = ack.messages.map((m) => ({ id: m.id, seq: m.seq, text: m.text }));
  });
}

function finish(code, report, message) {
  for (const socket of sockets) socket.close();
  process.stdout.write(`${JSON.stringify(report)}\n`, () => {
    if (message) process.stderr.write(`${message}\n`);
    process.exit(code);
  });
}

const watchdog = setTimeout(() => {
  const error = `no end within ${OVERALL_TIMEOUT_MS} ms`;
  finish(1, { ok: false, step: currentStep, error, ...observations }, `contract run timed out in step "${currentStep}"`);
}, OVERALL_TIMEOUT_MS);

let input;
try {
  input = readInput();
} catch (error) {
  clearTimeout(watchdog);
  finish(2, { ok: false, step: "input", error: error.message }, `bad input: ${error.message}`);
}

if (input) {
  try {
    await (input.scenario === "sync-required" ? syncScenario(input) : scenario(input));
    clearTimeout(watchdog);
    finish(0, { ok: true, ...observations });
  } catch (error) {
    clearTimeout(watchdog);
    const kind = error instanceof ContractViolation ? "CONTRACT VIOLATION" : "ERROR";
    const message = `${kind} in step "${currentStep}": ${error.message}`;
    finish(1, { ok: false, step: currentStep, error: error.message, ...observations }, message);
  }
}
