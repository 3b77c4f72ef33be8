// REST calls of the page: the Django session cookie authenticates them and the
// CSRF token goes in a header (DRF's SessionAuthentication checks it).

export class ApiError extends Error {
  constructor(status, body) {
    super(body?.error || `The server answered ${status}`);
    this.status = status;
    this.code = body?.code || (status === 0 ? "network" : "http_error");
    this.fields = body?.fields || null;
  }
}

function csrfToken() {
  const cookie = document.cookie.split("; ").find((c) => c.startsWith("csrftoken="));
  if (cookie) return decodeURIComponent(cookie.slice("csrftoken=".length));
  return document.querySelector('meta[name="csrf-token"]')?.content ?? "";
}

export async function request(method, path, body) {
  const headers = { Accept: "application/json" };
  const init = { method, headers, credentials: "same-origin" };
  if (method !== "GET") headers["X-CSRFToken"] = csrfToken();
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch {
    throw new ApiError(0, { error: "The server cannot be reached", code: "network" });
  }
  if (response.status === 204) return null;
  let data = null;
  try {
    data = await response.json();
  } catch {
    data = null;
  }
  if (response.status === 401 || response.status === 403) {
    // A session that ended (logout in another tab) would otherwise fail every call.
    if (data?.code === "auth_required" || data?.code === "invalid_token") {
      window.location.assign(`/login/?next=${encodeURIComponent(location.pathname + location.hash)}`);
    }
  }
  if (!response.ok) throw new ApiError(response.status, data);
  return data;
}

export const api = {
  rooms: () => request("GET", "/api/rooms/"),
  createRoom: (body) => request("POST", "/api/rooms/", body),
  directRoom: (username) => request("POST", "/api/rooms/direct/", { username }),
  messages: (roomId, params) => {
    const query = new URLSearchParams(Object.entries(params).filter(([, v]) => v !== undefined && v !== null));
    return request("GET", `/api/rooms/${encodeURIComponent(roomId)}/messages/?${query}`);
  },
  users: (search) => request("GET", `/api/users/?${new URLSearchParams({ search })}`),
  usersById: (ids) => request("GET", `/api/users/?${new URLSearchParams(ids.map((id) => ["id", id]))}`),
};
