// The vidcap page: calls the same HTTP API a program would (/api/caption, /api/attention,
// /api/search, /healthz). Nothing is fetched from another host.
"use strict";

const $ = (id) => document.getElementById(id);
const video = $("video");
const objectUrls = {};   // kind -> blob: URL in use, revoked when replaced
let current = null;      // the File being shown
let generation = 0;      // answers to an older choice are ignored

function say(text, isError = false) {
  $("status").textContent = text;
  $("status").classList.toggle("error", isError);
}

function replaceUrl(kind, blob) {
  if (objectUrls[kind]) URL.revokeObjectURL(objectUrls[kind]);
  objectUrls[kind] = blob ? URL.createObjectURL(blob) : null;
  return objectUrls[kind];
}

function clock(seconds) {
  const minutes = Math.floor(seconds / 60);
  const rest = (seconds - 60 * minutes).toFixed(1).padStart(4, "0");
  return `${minutes}:${rest}`;
}

async function reason(response) {
  try {
    const body = await response.json();
    if (typeof body.detail === "string") return body.detail;
  } catch (err) { /* not JSON */ }
  return `the server answered ${response.status} ${response.statusText}`;
}

function captionQuery() {
  const query = new URLSearchParams();
  for (const name of ["strategy", "num_beams", "top_p", "seed", "segments", "window", "stride"]) {
    const value = $(name).value.trim();
    if (value !== "") query.set(name, value);
  }
  return query.toString();
}

function removeTracks() {
  for (const track of video.querySelectorAll("track")) track.remove();
  replaceUrl("track", null);
}

function showVideo(src) {
  removeTracks();
  video.src = src;
}

function addTrack(vtt) {
  removeTracks();
  const track = document.createElement("track");
  track.kind = "captions";
  track.label = "Description";
  track.srclang = "en";
  track.default = true;
  track.src = replaceUrl("track", new Blob([vtt], { type: "text/vtt" }));
  video.appendChild(track);
  track.track.mode = "showing";
}

function sceneButton(start, end) {
  const button = document.createElement("button");
  button.type = "button";
  button.className = "link";
  button.textContent = `${clock(start)} to ${clock(end)}`;
  button.setAttribute("aria-label", `Play from ${clock(start)}`);
  button.addEventListener("click", () => { video.currentTime = start; });
  return button;
}

function showDescription(result) {
  $("caption").textContent = result.caption || "(no description)";
  const list = $("scenes");
  list.replaceChildren();
  for (const scene of result.segments) {
    const item = document.createElement("li");
    item.append(sceneButton(scene.start, scene.end), ` ${scene.caption}`);
    list.append(item);
  }
  addTrack(result.vtt);
}

function clearDescription(text) {
  $("caption").textContent = text;
  $("scenes").replaceChildren();
  $("attention").hidden = true;
  replaceUrl("figure", null);
}

async function post(path, file) {
  const form = new FormData();
  form.append("file", file, file.name);
  return fetch(path, { method: "POST", body: form });
}

async function describe(file) {
  const mine = ++generation;
  current = file;
  $("describe").disabled = false;
  showVideo(replaceUrl("video", file));
  clearDescription("Describing…");
  say(`Describing ${file.name}…`);
  let response;
  try {
    response = await post(`/api/caption?${captionQuery()}`, file);
  } catch (err) {
    if (mine === generation) { clearDescription("No description."); say(`The server cannot be reached (${err.message}).`, true); }
    return;
  }
  if (mine !== generation) return;
  if (!response.ok) {
    clearDescription("No description.");
    say(await reason(response), true);
    return;
  }
  const result = await response.json();
  if (mine !== generation) return;
  showDescription(result);
  say(`Described ${file.name}: ${result.segments.length} scene(s). Drawing the attention figure…`);
  await showAttention(file, result.caption, mine);
}

async function showAttention(file, caption, mine) {
  let response;
  try {
    response = await post("/api/attention", file);
  } catch (err) {
    if (mine === generation) say(`The attention figure failed: ${err.message}.`, true);
    return;
  }
  if (mine !== generation) return;
  if (!response.ok) {
    say(`The attention figure failed: ${await reason(response)}`, true);
    return;
  }
  const image = $("attention");
  image.src = replaceUrl("figure", await response.blob());
  image.alt = `Attention figure of ${file.name}: its sampled frames above the same frames `
    + `under a heat map of where the model looked; title: ${caption}`;
  image.hidden = false;
  say(`Described ${file.name}.`);
}

function playFrom(hit) {
  const mine = ++generation;
  current = null;
  $("describe").disabled = true;
  replaceUrl("video", null);
  showVideo(hit.url);
  clearDescription(hit.text || `Indexed video ${hit.video_id}`);
  video.addEventListener("loadedmetadata", () => {
    if (mine !== generation) return;
    video.currentTime = hit.start;
    video.play().catch(() => { /* autoplay may be refused: the controls are there */ });
  }, { once: true });
  say(`Playing ${hit.video_id} from ${clock(hit.start)}.`);
}

function showResults(results) {
  const list = $("results");
  list.replaceChildren();
  for (const hit of results) {
    const item = document.createElement("li");
    const button = document.createElement("button");
    button.type = "button";
    button.className = "link";
    button.textContent = `${hit.video_id} at ${clock(hit.start)}`;
    button.addEventListener("click", () => playFrom(hit));
    item.append(button, ` ${hit.text} (score ${hit.score.toFixed(3)})`);
    list.append(item);
  }
}

async function search(event) {
  event.preventDefault();
  const q = $("query").value.trim();
  if (!q) return;
  say(`Searching for “${q}”…`);
  let response;
  try {
    response = await fetch(`/api/search?${new URLSearchParams({ q, k: "10" })}`);
  } catch (err) {
    say(`The server cannot be reached (${err.message}).`, true);
    return;
  }
  if (!response.ok) { say(await reason(response), true); return; }
  const body = await response.json();
  showResults(body.results);
  say(`${body.results.length} result(s) for “${q}”.`);
}

function setUpDrop() {
  const drop = $("drop");
  drop.addEventListener("dragover", (event) => { event.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (event) => {
    event.preventDefault();
    drop.classList.remove("over");
    const file = event.dataTransfer.files[0];
    if (file) describe(file);
  });
}

async function showServer() {
  try {
    const response = await fetch("/healthz");
    if (!response.ok) return;
    const health = await response.json();
    $("model").textContent = `Run ${health.run}: ${health.model}, on ${health.device} (${health.precision}).`;
    $("search").hidden = !health.search;
  } catch (err) {
    say("The server cannot be reached.", true);
  }
}

$("file").addEventListener("change", () => {
  const file = $("file").files[0];
  if (file) describe(file);
});
$("upload-form").addEventListener("submit", (event) => {
  event.preventDefault();
  if (current) describe(current);
});
$("search-form").addEventListener("submit", search);
setUpDrop();
showServer();
