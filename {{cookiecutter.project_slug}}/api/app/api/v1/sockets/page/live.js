// The live tasks page: log in, start tasks through the API, and follow each
// one over its WebSocket. The token stays in this page's memory only.
"use strict";

const API = "/api/v1";
const CLOSE_REASONS = {
  1000: "finished",
  1011: "internal error",
  1012: "the API is restarting",
  1013: "result backend unavailable, try again later",
  4401: "not authenticated",
  4403: "inactive user",
  4404: "task not found",
  4429: "too many open sockets",
};
let token = null;

function $(id) {
  return document.getElementById(id);
}

async function logIn(event) {
  event.preventDefault();
  const form = new URLSearchParams({ username: $("email").value, password: $("password").value });
  const response = await fetch(`${API}/auth/token`, { method: "POST", body: form });
  if (!response.ok) {
    $("who").textContent = "Wrong e-mail or password";
    $("who").className = "error";
    return;
  }
  token = (await response.json()).access_token;
  $("who").textContent = `Logged in as ${$("email").value}`;
  $("who").className = "";
  for (const button of document.querySelectorAll("#start button")) button.disabled = false;
}

async function start(event, name, path, body) {
  event.preventDefault();
  const card = addCard(name);
  const response = await fetch(`${API}${path}`, {
    method: "POST",
    headers: { Authorization: `Bearer ${token}`, "Content-Type": "application/json" },
    body: JSON.stringify(body),
  });
  const answer = await response.json();
  if (response.status !== 202) {
    show(card, "closed", `Not started (${response.status}): ${JSON.stringify(answer.detail)}`);
    return;
  }
  card.querySelector(".id").textContent = answer.task_id;
  follow(card, answer.task_id);
}

function follow(card, taskId) {
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const socket = new WebSocket(`${scheme}://${location.host}${API}/ws/tasks/${taskId}`);
  socket.onopen = () => socket.send(JSON.stringify({ token }));
  socket.onmessage = (message) => update(card, JSON.parse(message.data));
  socket.onclose = (close) => {
    if (close.code !== 1000) {
      show(card, "closed", `Socket closed: ${CLOSE_REASONS[close.code] || close.code}`);
    }
  };
}

function update(card, reply) {
  const bar = card.querySelector("progress");
  const status = card.querySelector(".status");
  status.textContent = reply.status;
  status.className = `status ${reply.status}`;
  if (reply.status === "PROGRESS") {
    bar.max = reply.result.total;
    bar.value = reply.result.done;
    status.textContent = `PROGRESS ${reply.result.done} / ${reply.result.total}`;
  } else if (reply.status === "SUCCESS") {
    bar.max = 1;
    bar.value = 1;
    card.querySelector(".outcome").textContent = `result: ${JSON.stringify(reply.result)}`;
  } else if (reply.error) {
    card.querySelector(".outcome").textContent = `${reply.error.type}: ${reply.error.message}`;
  }
}

function show(card, state, text) {
  const outcome = card.querySelector(".outcome");
  outcome.textContent = text;
  outcome.className = `outcome ${state === "closed" ? "error" : ""}`;
}

function addCard(name) {
  const card = $("task-card").content.firstElementChild.cloneNode(true);
  card.querySelector(".name").textContent = name;
  card.querySelector(".status").textContent = "starting";
  $("tasks").prepend(card);
  return card;
}

$("login").addEventListener("submit", logIn);
$("long-running").addEventListener("submit", (event) =>
  start(event, "long-running", "/tasks/long-running/async", {
    seconds: Number($("seconds").value),
    steps: Number($("steps").value),
  }),
);
$("chord").addEventListener("submit", (event) =>
  start(event, "chord", "/workflows/chord/async", {
    integer: Number($("integer").value),
    size: Number($("size").value),
  }),
);
