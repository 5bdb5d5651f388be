// The workbench page: polls /api/state, swaps the rendered fragments, sends commands and
// clicks. The composer's text and the open thread survive every refresh.
(function () {
  "use strict";
  const $ = (id) => document.getElementById(id);
  let state = null;
  let openThread = null;
  const shown = {};

  function swap(id, html) {
    if (shown[id] !== html) {
      $(id).innerHTML = html;
      shown[id] = html;
    }
  }

  function user() {
    return $("wb-user").value || (state && state.user) || "";
  }

  function showError(text) {
    $("wb-error").textContent = text || "";
  }

  async function post(path, body) {
    const response = await fetch(path, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(Object.assign({ user: user() }, body)),
    });
    const data = await response.json().catch(() => ({}));
    showError(response.ok ? "" : data.error || "HTTP " + response.status);
    refresh();
    return data;
  }

  function renderUsers() {
    const select = $("wb-user");
    if (select.options.length) return;
    for (const u of state.users) {
      const option = document.createElement("option");
      option.value = u.id;
      option.textContent = "@" + u.name;
      if (u.id === state.user) option.selected = true;
      select.appendChild(option);
    }
  }

  function render() {
    renderUsers();
    const channel = $("wb-channel");
    const atBottom = channel.scrollHeight - channel.scrollTop - channel.clientHeight < 40;
    swap("wb-channel", state.channel.html);
    if (atBottom) channel.scrollTop = channel.scrollHeight;
    swap("wb-ephemerals", state.ephemerals);
    for (const name of ["rollouts", "flags", "pagerduty", "jira", "audit"]) {
      swap("wb-panel-" + name, state.panels[name]);
      const section = $("wb-sec-" + name);
      if (section) section.hidden = !state.panels[name];
    }
    if (openThread !== null) {
      $("wb-thread").hidden = false;
      swap("wb-thread-body", state.threads[openThread] || "");
    }
  }

  async function refresh() {
    try {
      const response = await fetch("/api/state?user=" + encodeURIComponent(user()));
      state = await response.json();
      render();
    } catch (err) {
      showError("the workbench is not answering (" + err + ")");
    }
  }

  function ask(confirm) {
    return new Promise((resolve) => {
      const dialog = $("wb-confirm");
      $("wb-confirm-title").textContent = confirm.title;
      $("wb-confirm-text").textContent = confirm.text;
      $("wb-confirm-ok").textContent = confirm.confirm || "Confirm";
      $("wb-confirm-ok").className = "bk-button " + (confirm.style === "danger" ? "bk-danger" : "bk-primary");
      $("wb-confirm-deny").textContent = confirm.deny || "Cancel";
      dialog.returnValue = "";
      dialog.addEventListener("close", () => resolve(dialog.returnValue === "confirm"), { once: true });
      dialog.showModal();
    });
  }

  document.addEventListener("click", async (event) => {
    const button = event.target.closest("button[data-action-id]");
    if (button) {
      event.preventDefault();
      const holder = button.closest("[data-ts]");
      const ts = button.dataset.messageTs || (holder && holder.dataset.ts) || "";
      const actionId = button.dataset.actionId;
      const confirm = state && state.confirms[ts + " " + actionId];
      if (confirm && !(await ask(confirm))) return;
      await post("/api/click", {
        message_ts: ts,
        action_id: actionId,
        block_id: button.dataset.blockId || "",
        value: button.dataset.value || "",
      });
      return;
    }
    const link = event.target.closest(".bk-replies");
    if (link) {
      event.preventDefault();
      const holder = link.closest("[data-ts]");
      openThread = link.dataset.threadTs || (holder && holder.dataset.ts);
      shown["wb-thread-body"] = null;
      render();
    }
  });

  $("wb-thread-close").addEventListener("click", () => {
    openThread = null;
    $("wb-thread").hidden = true;
  });

  $("wb-user").addEventListener("change", refresh);

  $("wb-composer").addEventListener("submit", async (event) => {
    event.preventDefault();
    const input = $("wb-text");
    const text = input.value.trim();
    if (!text) return;
    const data = await post("/api/command", { text: text });
    if (!data.error) input.value = "";
  });

  refresh();
  setInterval(refresh, POLL_MS);
})();
