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

// htmx does not swap 4xx/5xx answers: show the error page's message in a flash at the top instead
document.addEventListener('htmx:responseError', (event) => {
  const xhr = event.detail.xhr;
  const doc = new DOMParser().parseFromString(xhr.responseText || '', 'text/html');
  const text = (doc.querySelector('#error-message') || {}).textContent || `${xhr.status} ${xhr.statusText}`;
  const flash = document.createElement('div');
  flash.className = 'flash flash-error';
  flash.id = 'htmx-error';
  flash.setAttribute('role', 'alert');
  flash.textContent = text;
  const old = document.getElementById('htmx-error');
  if (old) old.remove();
  document.querySelector('main').prepend(flash);
});

// 常用语: a phrase button inserts its text into the opinion box of its form
document.addEventListener('click', (event) => {
  const button = event.target.closest('button[data-phrase]');
  if (!button) return;
  const form = button.closest('form');
  const box = form && form.querySelector('textarea');
  if (!box) return;
  const text = button.dataset.phrase;
  box.value = box.value && !box.value.endsWith(text) ? `${box.value}${box.value.endsWith('。') ? '' : '；'}${text}` : text;
  box.focus();
});
