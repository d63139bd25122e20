// New-generation page: drag-and-drop upload with preview, and a drawing canvas (pen, eraser, undo,
// clear). Progressive: without JS the page is a plain file-upload form. When the canvas tab is
// active, the drawing is exported as PNG into the same file input ("sketch") before submitting,
// so the server sees one kind of request either way.
(() => {
  "use strict";
  const form = document.getElementById("generate-form");
  if (!form) return;
  const fileInput = document.getElementById("sketch-file");
  const source = document.getElementById("source");
  const dropzone = document.getElementById("dropzone");
  const preview = document.getElementById("upload-preview");
  const panels = { upload: document.getElementById("panel-upload"), canvas: document.getElementById("panel-draw") };
  const tabs = document.querySelectorAll("[data-mode]");
  const button = document.getElementById("generate-button");
  document.querySelectorAll("[data-js-only]").forEach((el) => { el.hidden = false; });

  // ---- mode tabs ----
  function setMode(mode) {
    source.value = mode;
    for (const [name, panel] of Object.entries(panels)) panel.hidden = name !== mode;
    tabs.forEach((t) => t.setAttribute("aria-selected", String(t.dataset.mode === mode)));
  }
  tabs.forEach((t) => t.addEventListener("click", () => setMode(t.dataset.mode)));
  setMode(source.value === "canvas" ? "canvas" : "upload");

  // ---- upload: picker + drag and drop ----
  function showPreview(file) {
    if (!file) { preview.hidden = true; return; }
    preview.src = URL.createObjectURL(file);
    preview.hidden = false;
  }
  fileInput.addEventListener("change", () => showPreview(fileInput.files[0]));
  // a sketch the server kept after a refused submit (e.g. "case number taken") goes back into
  // the file input, so nobody has to choose it again
  const kept = document.getElementById("kept-sketch-data");
  if (kept && kept.value.startsWith("data:image/")) {
    const [head, payload] = kept.value.split(";base64,");
    const bytes = Uint8Array.from(atob(payload), (c) => c.charCodeAt(0));
    const dt = new DataTransfer();
    dt.items.add(new File([bytes], "kept-sketch", { type: head.slice(5) }));
    fileInput.files = dt.files;
    kept.removeAttribute("name");
    showPreview(fileInput.files[0]);
  }
  ["dragenter", "dragover"].forEach((type) => dropzone.addEventListener(type, (e) => {
    e.preventDefault();
    dropzone.classList.add("over");
  }));
  ["dragleave", "drop"].forEach((type) => dropzone.addEventListener(type, () => dropzone.classList.remove("over")));
  dropzone.addEventListener("drop", (e) => {
    e.preventDefault();
    const file = e.dataTransfer.files[0];
    if (!file) return;
    const dt = new DataTransfer();
    dt.items.add(file);
    fileInput.files = dt.files;
    showPreview(file);
  });

  // ---- canvas drawing ----
  const canvas = document.getElementById("sketch-canvas");
  const ctx = canvas.getContext("2d");
  const size = document.getElementById("tool-size");
  const penBtn = document.getElementById("tool-pen");
  const eraserBtn = document.getElementById("tool-eraser");
  const history = []; // ImageData snapshots taken before each stroke
  const MAX_UNDO = 30;
  let tool = "pen";
  let drawing = false;
  let dirty = false;
  let last = null;

  function paper() {
    ctx.save();
    ctx.fillStyle = "#ffffff"; // white paper: the model expects dark lines on white
    ctx.fillRect(0, 0, canvas.width, canvas.height);
    ctx.restore();
  }
  paper();

  function setTool(name) {
    tool = name;
    penBtn.setAttribute("aria-pressed", String(name === "pen"));
    eraserBtn.setAttribute("aria-pressed", String(name === "eraser"));
    canvas.dataset.tool = name;
  }
  penBtn.addEventListener("click", () => setTool("pen"));
  eraserBtn.addEventListener("click", () => setTool("eraser"));

  function point(e) {
    const r = canvas.getBoundingClientRect();
    return { x: (e.clientX - r.left) * (canvas.width / r.width), y: (e.clientY - r.top) * (canvas.height / r.height) };
  }
  function stroke(from, to) {
    ctx.strokeStyle = tool === "eraser" ? "#ffffff" : "#111111";
    ctx.lineWidth = Number(size.value) * (tool === "eraser" ? 4 : 1);
    ctx.lineCap = "round";
    ctx.lineJoin = "round";
    ctx.beginPath();
    ctx.moveTo(from.x, from.y);
    ctx.lineTo(to.x, to.y);
    ctx.stroke();
  }
  canvas.addEventListener("pointerdown", (e) => {
    e.preventDefault();
    canvas.setPointerCapture(e.pointerId);
    history.push(ctx.getImageData(0, 0, canvas.width, canvas.height));
    if (history.length > MAX_UNDO) history.shift();
    drawing = true;
    dirty = true;
    last = point(e);
    stroke(last, { x: last.x + 0.01, y: last.y }); // a click leaves a dot
  });
  canvas.addEventListener("pointermove", (e) => {
    if (!drawing) return;
    const p = point(e);
    stroke(last, p);
    last = p;
  });
  ["pointerup", "pointercancel", "pointerleave"].forEach((type) => canvas.addEventListener(type, () => { drawing = false; }));
  document.getElementById("tool-undo").addEventListener("click", () => {
    const snapshot = history.pop();
    if (snapshot) ctx.putImageData(snapshot, 0, 0);
    dirty = history.length > 0;
  });
  document.getElementById("tool-clear").addEventListener("click", () => {
    history.push(ctx.getImageData(0, 0, canvas.width, canvas.height));
    paper();
    dirty = false;
  });
  document.addEventListener("keydown", (e) => {
    if ((e.ctrlKey || e.metaKey) && e.key === "z" && source.value === "canvas") {
      e.preventDefault();
      document.getElementById("tool-undo").click();
    }
  });

  // ---- submit ----
  form.addEventListener("submit", (e) => {
    if (form.dataset.ready === "1") return; // second pass: the canvas PNG is in the file input
    if (source.value !== "canvas") {
      if (!fileInput.files.length) { e.preventDefault(); alert("Choose a sketch image first, or switch to Draw."); return; }
      button.disabled = true;
      button.textContent = "Generating…";
      return;
    }
    e.preventDefault();
    if (!dirty) { alert("Draw a sketch first."); return; }
    button.disabled = true;
    button.textContent = "Generating…";
    canvas.toBlob((blob) => {
      const dt = new DataTransfer();
      dt.items.add(new File([blob], "canvas-sketch.png", { type: "image/png" }));
      fileInput.files = dt.files;
      form.dataset.ready = "1";
      form.submit();
    }, "image/png");
  });
})();
