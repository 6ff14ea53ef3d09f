// The page of the sample app: plain JavaScript, no build step.
"use strict";

const form = document.getElementById("upload-form");
const input = document.getElementById("file-input");
const drop = document.getElementById("drop");
const button = document.getElementById("upload-button");
const uploads = document.getElementById("uploads");
const tbody = document.querySelector("#documents tbody");

function formatSize(bytes) {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return `${unit === 0 ? value : value.toFixed(1)} ${units[unit]}`;
}

function element(tag, props = {}, children = []) {
  const node = Object.assign(document.createElement(tag), props);
  for (const child of children) node.append(child);
  return node;
}

async function loadList() {
  const response = await fetch("/api/documents");
  const docs = await response.json();
  tbody.replaceChildren(...docs.map(row));
  document.getElementById("count").textContent = `(${docs.length})`;
  document.getElementById("empty").hidden = docs.length > 0;
}

function previewable(type) {
  return /^(image|audio|video)\//.test(type);
}

function row(doc) {
  const name = element("a", { href: `${doc.url}?download`, textContent: doc.name, download: doc.name });
  name.dataset.id = doc.id;
  const actions = element("td", { className: "actions" });
  if (previewable(doc.contentType)) {
    actions.append(element("button", { className: "link", textContent: "Preview", onclick: () => preview(doc) }));
  }
  actions.append(element("a", { href: doc.url, textContent: "Open", target: "_blank", rel: "noopener" }));
  actions.append(element("button", { className: "link danger", textContent: "Delete", onclick: () => remove(doc) }));
  return element("tr", {}, [
    element("td", {}, [name]),
    element("td", { textContent: doc.contentType }),
    element("td", { className: "num", textContent: formatSize(doc.size), title: `${doc.size} bytes` }),
    element("td", { textContent: new Date(doc.createdAt).toLocaleString() }),
    element("td", { className: "hash", textContent: doc.sha256.slice(0, 12), title: doc.sha256 }),
    actions,
  ]);
}

function preview(doc) {
  const kind = doc.contentType.split("/")[0];
  const media =
    kind === "image"
      ? element("img", { src: doc.url, alt: doc.name })
      : element(kind, { src: doc.url, controls: true, preload: "metadata" });
  document.getElementById("preview-title").textContent = `Preview: ${doc.name}`;
  document.getElementById("preview-body").replaceChildren(media);
  document.getElementById("preview").hidden = false;
}

async function remove(doc) {
  if (!confirm(`Delete ${doc.name}?`)) return;
  await fetch(`/api/documents/${doc.id}`, { method: "DELETE" });
  document.getElementById("preview").hidden = true;
  await loadList();
}

// XMLHttpRequest, because fetch() reports no upload progress.
function upload(file) {
  const status = element("span", { className: "status", textContent: "waiting" });
  const bar = element("progress", { max: file.size || 1, value: 0 });
  const item = element("li", {}, [element("span", { textContent: `${file.name} (${formatSize(file.size)})` }), status, bar]);
  uploads.append(item);
  return new Promise((resolve) => {
    const xhr = new XMLHttpRequest();
    const started = performance.now();
    xhr.upload.onprogress = (event) => {
      bar.max = event.total || 1;
      bar.value = event.loaded;
      const seconds = (performance.now() - started) / 1000;
      status.textContent = `${Math.floor((100 * event.loaded) / (event.total || 1))}% · ${formatSize(event.loaded / Math.max(seconds, 0.001))}/s`;
    };
    xhr.onload = () => {
      if (xhr.status === 201) {
        bar.value = bar.max;
        status.textContent = "stored";
      } else {
        item.classList.add("failed");
        let message = `HTTP ${xhr.status}`;
        try {
          message = JSON.parse(xhr.responseText).error;
        } catch {
          // not JSON: keep the status line
        }
        status.textContent = message;
      }
      resolve();
    };
    xhr.onerror = () => {
      item.classList.add("failed");
      status.textContent = "connection failed";
      resolve();
    };
    const body = new FormData();
    body.append("file", file, file.name);
    xhr.open("POST", "/api/documents");
    xhr.send(body);
  });
}

async function uploadAll(files) {
  button.disabled = true;
  try {
    for (const file of files) {
      await upload(file);
      await loadList();
    }
  } finally {
    button.disabled = false;
    input.value = "";
  }
}

form.addEventListener("submit", (event) => {
  event.preventDefault();
  if (input.files.length > 0) uploadAll([...input.files]);
});
drop.addEventListener("dragover", (event) => {
  event.preventDefault();
  drop.classList.add("over");
});
drop.addEventListener("dragleave", () => drop.classList.remove("over"));
drop.addEventListener("drop", (event) => {
  event.preventDefault();
  drop.classList.remove("over");
  uploadAll([...event.dataTransfer.files]);
});

loadList();
