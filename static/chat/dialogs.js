// The two dialogs of the sidebar: create a room, and find a person to open a
// 1:1 chat with (the user directory, GET /api/users/?search=). Native <dialog>
// elements: focus stays inside while open and Escape closes them.

import { ApiError, api } from "./api.js";
import { avatar, el } from "./render.js";

const $ = (id) => document.getElementById(id);

let hooks = null;

// me: {userId, username}; presenceOf(userId) -> "online" | "away" | "offline";
// roomChosen(id): refresh the room list and open that room; flash(text): a short notice.
export function setupDialogs({ me, presenceOf, roomChosen, flash }) {
  hooks = { me, presenceOf, roomChosen, flash };
  setupNewRoomDialog();
  setupDirectDialog();
}

function setupNewRoomDialog() {
  const dialog = $("new-room-dialog");
  const form = $("new-room-form");
  const error = $("new-room-error");
  $("new-room-button").addEventListener("click", () => {
    form.reset();
    error.hidden = true;
    dialog.showModal();
  });
  $("new-room-cancel").addEventListener("click", () => dialog.close());
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const data = new FormData(form);
    const submit = form.querySelector('[type="submit"]');
    submit.disabled = true;
    try {
      const room = await api.createRoom({
        name: String(data.get("name")).trim(),
        visibility: data.get("visibility") === "private" ? "private" : "public",
      });
      dialog.close();
      await hooks.roomChosen(room.id);
    } catch (err) {
      error.textContent = describeError(err);
      error.hidden = false;
    } finally {
      submit.disabled = false;
    }
  });
}

function setupDirectDialog() {
  const dialog = $("new-dm-dialog");
  const search = $("dm-search");
  const results = $("dm-results");
  const error = $("new-dm-error");
  let timer = null;
  let generation = 0;

  const show = async () => {
    const mine = ++generation;
    try {
      const users = (await api.users(search.value.trim())).filter((u) => u.userId !== hooks.me.userId);
      if (mine !== generation) return;
      results.replaceChildren(
        ...users.map((user) =>
          el(
            "li",
            {},
            el(
              "button",
              { type: "button", class: "person person--result", dataset: { action: "dm", username: user.username } },
              avatar(user.username, "avatar--small"),
              el("span", { class: "room-name", text: user.username }),
              el("span", { class: `presence-dot presence-dot--${hooks.presenceOf(user.userId)}`, "aria-hidden": "true" }),
            ),
          ),
        ),
      );
      if (!users.length) results.append(el("li", { class: "sidebar-note", text: "No one matches" }));
    } catch (err) {
      error.textContent = describeError(err);
      error.hidden = false;
    }
  };

  $("new-dm-button").addEventListener("click", () => {
    search.value = "";
    error.hidden = true;
    results.replaceChildren();
    dialog.showModal();
    show();
  });
  $("new-dm-cancel").addEventListener("click", () => dialog.close());
  search.addEventListener("input", () => {
    clearTimeout(timer);
    timer = setTimeout(show, 150);
  });
  search.addEventListener("keydown", (event) => {
    if (event.key === "ArrowDown") {
      event.preventDefault();
      results.querySelector("button")?.focus();
    } else if (event.key === "Enter") {
      event.preventDefault();
      results.querySelector("button")?.click();
    }
  });
  results.addEventListener("keydown", (event) => {
    const buttons = [...results.querySelectorAll("button")];
    const index = buttons.indexOf(document.activeElement);
    if (event.key === "ArrowDown" && index >= 0) buttons[index + 1]?.focus();
    else if (event.key === "ArrowUp" && index > 0) buttons[index - 1].focus();
    else if (event.key === "ArrowUp" && index === 0) search.focus();
    else return;
    event.preventDefault();
  });
}

export async function startDirect(username) {
  const dialog = $("new-dm-dialog");
  const error = $("new-dm-error");
  try {
    const room = await api.directRoom(username);
    if (dialog.open) dialog.close();
    await hooks.roomChosen(room.id);
  } catch (err) {
    if (dialog.open) {
      error.textContent = describeError(err);
      error.hidden = false;
    } else hooks.flash(describeError(err));
  }
}

function describeError(error) {
  if (error instanceof ApiError && error.fields) {
    const [field, messages] = Object.entries(error.fields)[0] ?? [];
    if (field) return `${field === "non_field_errors" ? "" : `${field}: `}${[].concat(messages)[0]}`;
  }
  return error?.message || "Something went wrong";
}
