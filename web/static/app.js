// Small helpers shared by the pages. The CSRF token of the session is in <meta name="csrf-token">;
// htmx sends it from the body's hx-headers, fetch() callers use tongban.post().
window.tongban = {
  csrf() { return document.querySelector('meta[name="csrf-token"]').content; },
  async post(url, body, isJson = true) {
    const headers = { 'X-CSRF-Token': tongban.csrf() };
    if (isJson) headers['Content-Type'] = 'application/json';
    const res = await fetch(url, { method: 'POST', headers, body: isJson ? JSON.stringify(body) : body,
                                   credentials: 'same-origin' });
    let data = null;
    try { data = await res.json(); } catch (e) { data = { message: res.statusText }; }
    return { ok: res.ok, status: res.status, data };
  },
};
