// The workbench page: polls /api/state, swaps the rendered fragments, sends commands and
// clicks. The composer's text and the open thread survive every refresh.
(function () {
  "use strict";
  const $ = (id) => document.getElementById(id);
  let state = null;
  let openThread = null;
  let stick = false; // the next render scrolls to the newest message (after a command)
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
    if (atBottom || stick) channel.scrollTop = channel.scrollHeight;
    stick = false;
    renderModal();
    for (const name of ["scenarios", "rollouts", "flags", "pagerduty", "jira", "gitops", "audit"]) {
      swap("wb-panel-" + name, state.panels[name]);
      const section = $("wb-sec-" + name);
      if (section) section.hidden = !state.panels[name];
    }
    if (openThread !== null) {
      $("wb-thread").hidden = false;
      swap("wb-thread-body", state.threads[openThread] || "");
    }
  }

  // The modal the bot opened (views.open) for the user acting; what is typed survives
  // every refresh because the form is only replaced when the view itself changes.
  function renderModal() {
    const modal = state.modal;
    const backdrop = $("wb-modal");
    const form = $("wb-modal-form");
    if (!modal) {
      backdrop.hidden = true;
      form.innerHTML = "";
      shown["wb-modal-form"] = null;
      return;
    }
    backdrop.hidden = false;
    if (shown["wb-modal-form"] !== modal.html) {
      form.innerHTML = modal.html;
      shown["wb-modal-form"] = modal.html;
      form.dataset.viewId = modal.id;
    }
    for (const old of form.querySelectorAll(".wb-field-error")) old.remove();
    for (const [blockId, message] of Object.entries(modal.errors || {})) {
      const field = form.querySelector('[data-block-id="' + CSS.escape(blockId) + '"]');
      const note = document.createElement("div");
      note.className = "wb-field-error";
      note.setAttribute("role", "alert");
      note.textContent = message;
      const holder = field ? field.closest(".bk-input-element") || field : form.querySelector(".bk-modal-body");
      if (holder) holder.after(note);
    }
  }

  function modalValues(form) {
    const values = {};
    for (const field of form.querySelectorAll("input[data-action-id], textarea[data-action-id]")) {
      const block = field.dataset.blockId || "";
      values[block] = values[block] || {};
      values[block][field.dataset.actionId] = field.value;
    }
    return values;
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
    const dismiss = event.target.closest(".bk-view-close, .bk-modal-x");
    if (dismiss) {
      event.preventDefault();
      await post("/api/close", { view_id: $("wb-modal-form").dataset.viewId || "" });
      return;
    }
    const dismissOne = event.target.closest("button.wb-dismiss");
    if (dismissOne) {
      event.preventDefault();
      await post("/api/dismiss", { ephemeral: dismissOne.dataset.dismiss });
      return;
    }
    const scenario = event.target.closest("button.wb-scenario");
    if (scenario) {
      event.preventDefault();
      await post("/api/alert", { service: scenario.dataset.service, status: scenario.dataset.status });
      return;
    }
    const button = event.target.closest("button[data-action-id]");
    if (button) {
      event.preventDefault();
      const ephemeral = button.closest("[data-ephemeral]");
      const holder = button.closest("[data-ts]");
      const ts = ephemeral ? "" : button.dataset.messageTs || (holder && holder.dataset.ts) || "";
      const actionId = button.dataset.actionId;
      const where = ephemeral ? "eph:" + ephemeral.dataset.ephemeral : ts;
      const confirm = state && state.confirms[where + " " + actionId];
      if (confirm && !(await ask(confirm))) return;
      await post("/api/click", {
        message_ts: ts,
        ephemeral: ephemeral ? ephemeral.dataset.ephemeral : "",
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

  $("wb-modal-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const form = $("wb-modal-form");
    await post("/api/submit", { view_id: form.dataset.viewId || "", values: modalValues(form) });
  });

  $("wb-composer").addEventListener("submit", async (event) => {
    event.preventDefault();
    const input = $("wb-text");
    const text = input.value.trim();
    if (!text) return;
    stick = true;
    const data = await post("/api/command", { text: text });
    if (!data.error) input.value = "";
  });

  refresh();
  setInterval(refresh, POLL_MS);
})();
