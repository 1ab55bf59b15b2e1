// The dashboard's few behaviours htmx does not cover: @bot completion, Enter to send, keeping the chat
// scrolled to the newest message. No inline scripts anywhere (the Content-Security-Policy forbids them).
"use strict";

function mentions() {
  const holder = document.querySelector("[data-mentions]");
  return holder ? JSON.parse(holder.dataset.mentions) : [];
}

function partialMention(textarea) {
  const before = textarea.value.slice(0, textarea.selectionStart);
  const match = before.match(/(^|\s)@(\w*)$/);
  return match ? match[2].toLowerCase() : null;
}

function showMentions(textarea) {
  const list = document.getElementById("mention-list");
  const partial = partialMention(textarea);
  list.replaceChildren();
  if (partial === null) { list.hidden = true; return; }
  for (const [handle, label] of mentions()) {
    if (!handle.startsWith(partial) && !label.toLowerCase().includes(partial)) continue;
    const item = document.createElement("li");
    item.textContent = label;
    item.dataset.handle = handle;
    item.addEventListener("mousedown", (event) => { event.preventDefault(); complete(textarea, handle); });
    list.append(item);
  }
  if (list.firstChild) list.firstChild.classList.add("on");
  list.hidden = !list.firstChild;
}

function complete(textarea, handle) {
  const at = textarea.selectionStart;
  const before = textarea.value.slice(0, at).replace(/@(\w*)$/, "@" + handle + " ");
  textarea.value = before + textarea.value.slice(at);
  textarea.selectionStart = textarea.selectionEnd = before.length;
  document.getElementById("mention-list").hidden = true;
  textarea.focus();
}

function onKey(event) {
  const textarea = event.target;
  const list = document.getElementById("mention-list");
  const items = list ? [...list.children] : [];
  const current = items.findIndex((li) => li.classList.contains("on"));
  if (list && !list.hidden && items.length) {
    if (event.key === "ArrowDown" || event.key === "ArrowUp") {
      event.preventDefault();
      items[current]?.classList.remove("on");
      const next = (current + (event.key === "ArrowDown" ? 1 : items.length - 1)) % items.length;
      items[next].classList.add("on");
      return;
    }
    if (event.key === "Tab" || event.key === "Enter") {
      event.preventDefault();
      complete(textarea, items[Math.max(current, 0)].dataset.handle);
      return;
    }
    if (event.key === "Escape") { list.hidden = true; return; }
  }
  if (event.key === "Enter" && !event.shiftKey) {
    event.preventDefault();
    textarea.form.requestSubmit();
  }
}

function scrollHistory() {
  const history = document.getElementById("history");
  if (history) history.scrollTop = history.scrollHeight;
}

document.addEventListener("input", (event) => {
  if (event.target.id === "text") showMentions(event.target);
});
document.addEventListener("keydown", (event) => {
  if (event.target.id === "text") onKey(event);
});
document.addEventListener("htmx:sseMessage", scrollHistory);
document.addEventListener("htmx:afterSwap", (event) => {
  if (event.detail.target.id === "compose") document.getElementById("text")?.focus();
});
document.addEventListener("DOMContentLoaded", () => {
  scrollHistory();
  document.getElementById("text")?.focus();
});
