// The page of the sample app: plain JavaScript, no build step.
"use strict";

const form = document.getElementById("upload-form");
const input = document.getElementById("file-input");
const drop = document.getElementById("drop");
const button = document.getElementById("upload-button");
const uploads = document.getElementById("uploads");
const tbody = document.querySelector("#documents tbody");
// What the server offers: { maxUploadBytes, resumable: { endpoint, chunkBytes, minBytes } | null }.
const config = fetch("/api/config").then((response) => response.json());

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
    element("td", { className: "hash", textContent: doc.sha256?.slice(0, 12) ?? "", title: doc.sha256 ?? "" }),
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
  await config.then(({ resumable }) => {
  document.getElementById("resumable-note").hidden = !resumable;
});
loadList();
}

function uploadItem(file) {
  const status = element("span", { className: "status", textContent: "waiting" });
  const bar = element("progress", { max: file.size || 1, value: 0 });
  const item = element("li", {}, [element("span", { textContent: `${file.name} (${formatSize(file.size)})` }), status, bar]);
  uploads.append(item);
  return { status, bar, item };
}

function showProgress({ status, bar }, loaded, total, started, from) {
  bar.max = total || 1;
  bar.value = loaded;
  const seconds = (performance.now() - started) / 1000;
  const rate = formatSize((loaded - from) / Math.max(seconds, 0.001));
  status.textContent = `${Math.floor((100 * loaded) / (total || 1))}% · ${rate}/s${from > 0 ? ` · resumed at ${formatSize(from)}` : ""}`;
}

// XMLHttpRequest, because fetch() reports no upload progress.
function upload(file) {
  const { status, bar, item } = uploadItem(file);
  return new Promise((resolve) => {
    const xhr = new XMLHttpRequest();
    const started = performance.now();
    xhr.upload.onprogress = (event) => showProgress({ status, bar }, event.loaded, event.total, started, 0);
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

// tus-js-client keeps each upload's URL in localStorage under the file's fingerprint (name, type,
// size, modification time): the same file chosen after a reload resumes where the server stopped.
function resumableUpload(file, resumable) {
  const { status, bar, item } = uploadItem(file);
  return new Promise((resolve) => {
    let started = performance.now();
    let from = 0;
    const upload = new tus.Upload(file, {
      endpoint: resumable.endpoint,
      chunkSize: resumable.chunkBytes,
      retryDelays: [0, 1000, 3000, 5000],
      metadata: { filename: file.name, filetype: file.type || "application/octet-stream" },
      removeFingerprintOnSuccess: true,
      onProgress: (sent, total) => showProgress({ status, bar }, sent, total, started, from),
      onSuccess: () => {
        bar.value = bar.max;
        status.textContent = from > 0 ? `stored (resumed at ${formatSize(from)})` : "stored";
        resolve();
      },
      onError: (error) => {
        item.classList.add("failed");
        status.textContent = error.originalResponse ? `HTTP ${error.originalResponse.getStatus()}` : "connection failed";
        resolve();
      },
    });
    upload
      .findPreviousUploads()
      .then(async (previous) => {
        if (previous.length > 0) {
          upload.resumeFromPreviousUpload(previous[0]);
          // Where the server stopped: what it committed of the earlier attempt.
          const head = await fetch(upload.url, { method: "HEAD", headers: { "Tus-Resumable": "1.0.0" } });
          from = Number(head.headers.get("Upload-Offset")) || 0;
          item.dataset.resumedAt = String(from);
        }
        started = performance.now();
        upload.start();
      })
      .catch((error) => {
        item.classList.add("failed");
        status.textContent = String(error);
        resolve();
      });
  });
}

async function uploadAll(files) {
  button.disabled = true;
  const { resumable } = await config;
  try {
    for (const file of files) {
      if (resumable && file.size >= resumable.minBytes) await resumableUpload(file, resumable);
      else await upload(file);
      await config.then(({ resumable }) => {
  document.getElementById("resumable-note").hidden = !resumable;
});
loadList();
    }
  } finally {
    input.value = "";
    updateButton();
  }
}

// Nothing to send until a file is chosen.
function updateButton() {
  button.disabled = input.files.length === 0;
}

input.addEventListener("change", updateButton);

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

config.then(({ resumable }) => {
  document.getElementById("resumable-note").hidden = !resumable;
});
loadList();
