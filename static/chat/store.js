// What the page knows about each room, and the rules that keep it exact.
//
// `lastSeq`/`lastId` are a contiguous high-water mark: every message of the
// room up to them has been seen (stored in `messages` when the room's history
// is loaded, or only counted otherwise). A live message is applied only when
// its seq is exactly `lastSeq + 1`; anything further ahead means something was
// lost in transit, and the caller repairs by asking for everything after
// `lastId` (`room:join` with `since`). Messages are keyed by id, so whatever
// arrives twice (a repair overlapping a broadcast) is stored once.

export const byId = (a, b) => Number(a.id) - Number(b.id);

export class RoomState {
  constructor(summary) {
    this.id = summary.id;
    this.unread = summary.unreadCount ?? 0;
    const last = summary.lastMessage ?? null;
    this.lastId = last ? Number(last.id) : 0;
    this.lastSeq = last ? last.seq : 0;
    this.lastMessage = last;
    this.messages = new Map(); // id -> message object
    this.loaded = false; // a page of history has been fetched for the view
    this.hasMoreBefore = true;
    this.readUpTo = new Map(); // userId -> highest message id they have read
    this.typing = new Map(); // userId -> {username, timer}
    // People seen in the room (authors, readers, typists, joiners): there is no
    // member list on the wire, and this is enough to say who here is online.
    this.people = new Set();
    this.repairing = false;
    this.repairAgain = false;
    this.error = null; // a join error to show in place (forbidden, banned, ...)
    this.update(summary);
  }

  update(summary) {
    // A public room the user has not joined (when the server says so): listed,
    // but joined over the socket only once opened, since joining makes a member.
    if (typeof summary.isMember === "boolean") this.isMember = summary.isMember;
    else this.isMember ??= true;
    this.name = summary.name ?? this.id;
    this.topic = summary.topic ?? "";
    this.visibility = summary.visibility ?? "public";
  }

  get isDirect() {
    return this.visibility === "direct";
  }

  // "new": the next message in order; "known": seen already; "gap": seq jumped.
  classify(message) {
    if (message.seq <= this.lastSeq) return "known";
    if (message.seq === this.lastSeq + 1) return "new";
    return "gap";
  }

  // Whether the room's newest seq (sync:required names it) is past what we
  // hold: a message sent while the server's bus was down never reached us.
  behind(lastSeq) {
    return Number.isInteger(lastSeq) && lastSeq > this.lastSeq;
  }

  // Advance the high-water mark over the next message (classify said "new").
  advance(message) {
    this.lastSeq = message.seq;
    this.lastId = Math.max(this.lastId, Number(message.id));
    this.lastMessage = message;
    this.store(message);
  }

  store(message) {
    this.messages.set(message.id, message);
    this.people.add(message.userId);
    this.noteReaders(message.readBy ?? [], Number(message.id));
  }

  // Merge a page of history (REST), oldest first.
  merge(messages) {
    for (const message of messages) this.store(message);
  }

  // After loading the newest page: forget live messages stored before it that
  // a hole might separate from it; scrolling up fetches them again.
  trimBefore(oldestId) {
    for (const id of this.messages.keys()) if (Number(id) < oldestId) this.messages.delete(id);
  }

  sorted() {
    return [...this.messages.values()].sort(byId);
  }

  oldestId() {
    let oldest = null;
    for (const id of this.messages.keys()) if (oldest === null || Number(id) < oldest) oldest = Number(id);
    return oldest;
  }

  newestId() {
    let newest = 0;
    for (const id of this.messages.keys()) newest = Math.max(newest, Number(id));
    return Math.max(newest, this.lastId);
  }

  noteReaders(userIds, messageId) {
    for (const userId of userIds) {
      this.people.add(userId);
      if ((this.readUpTo.get(userId) ?? 0) < messageId) this.readUpTo.set(userId, messageId);
    }
  }
}
