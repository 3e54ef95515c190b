// Device Factory dashboard: dialogs, RESERVE DSNS and uploads without leaving the page,
// and live progress of running factory actions. Plain JavaScript, no dependencies.
"use strict";

(() => {
  const POLL_MS = 1000;
  const $ = (selector, root = document) => root.querySelector(selector);
  const $$ = (selector, root = document) => Array.from(root.querySelectorAll(selector));
  const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

  // --- dialogs: real buttons open them; Esc, Cancel and a click outside close them ----------

  document.addEventListener("click", (event) => {
    const opener = event.target.closest("[data-dialog-open]");
    if (opener) {
      const dialog = document.getElementById(opener.dataset.dialogOpen);
      if (dialog && !dialog.open) {
        dialog.showModal();
      }
      return;
    }
    const closer = event.target.closest("[data-dialog-close]");
    if (closer) {
      closer.closest("dialog")?.close();
    }
  });

  for (const dialog of $$("dialog")) {
    dialog.addEventListener("click", (event) => {
      if (event.target === dialog) {
        dialog.close(); // the backdrop
      }
    });
  }

  // --- clickable rows: a click anywhere on the row follows its first link ------------------
  // (The first cell holds a real link, so the keyboard and screen readers need no script.)

  document.addEventListener("click", (event) => {
    const row = event.target.closest("tr[data-href]");
    if (!row || event.button !== 0 || event.defaultPrevented) return;
    if (event.target.closest("a, button, input, select, textarea, label, summary")) return;
    if (window.getSelection()?.toString()) return; // selecting text is not a click
    if (event.ctrlKey || event.metaKey || event.shiftKey) {
      window.open(row.dataset.href, "_blank", "noopener");
    } else {
      window.location.assign(row.dataset.href);
    }
  });

  // --- helpers -----------------------------------------------------------------------------

  function element(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function banner(kind, message) {
    const node = element("div", `banner banner-${kind}`);
    node.setAttribute("role", kind === "error" ? "alert" : "status");
    node.append(element("span", "banner-message", message));
    return node;
  }

  function running(message) {
    const node = banner("info", "");
    node.classList.add("banner-running");
    node.firstChild.replaceWith(element("span", "spinner"), element("span", "banner-message", message));
    return node;
  }

  // The server renders every error as a page with a [data-error] banner (code and message).
  function errorFrom(html, status) {
    const doc = new DOMParser().parseFromString(html, "text/html");
    const found = doc.querySelector("[data-error]");
    if (found) {
      return document.importNode(found, true);
    }
    return banner("error", `The request failed (HTTP ${status}). Reload the page and try again.`);
  }

  function setBusy(form, busy) {
    form.toggleAttribute("aria-busy", busy);
    for (const control of $$("button, input, select", form)) {
      if (!control.hasAttribute("data-dialog-close")) {
        control.disabled = busy;
      }
    }
  }

  // A redirect to the sign-in page (the session ended) is followed by the whole window.
  function leftTheDashboard(response) {
    return response.redirected && new URL(response.url).pathname.startsWith("/dashboard/sign_in");
  }

  // --- live progress panels ----------------------------------------------------------------

  async function fetchPanel(url) {
    const response = await fetch(url, { credentials: "same-origin", cache: "no-store" });
    if (leftTheDashboard(response)) {
      window.location.assign(response.url);
      return null;
    }
    const html = await response.text();
    if (!response.ok) {
      return errorFrom(html, response.status);
    }
    const doc = new DOMParser().parseFromString(html, "text/html");
    const panel = doc.querySelector("[data-live-url]");
    return panel ? document.importNode(panel, true) : banner("error", "Unexpected answer from the server.");
  }

  // Poll until the action is finished (success or failure); resolves with the last panel.
  async function follow(panel) {
    let current = panel;
    while (current.dataset && current.dataset.final === "false") {
      await sleep(POLL_MS);
      let next;
      try {
        next = await fetchPanel(current.dataset.liveUrl);
      } catch (error) {
        continue; // a network hiccup: try again
      }
      if (!next) return current;
      current.replaceWith(next);
      current = next;
    }
    return current;
  }

  for (const panel of $$("[data-live-url][data-final='false']")) {
    follow(panel);
  }

  // In an upload dialog, "All" and "Problems only" swap the panel instead of leaving the page.
  document.addEventListener("click", async (event) => {
    const link = event.target.closest(".upload-live a[data-live-link]");
    if (!link || event.ctrlKey || event.metaKey || event.shiftKey) return;
    event.preventDefault();
    const panel = link.closest("[data-live-url]");
    const next = await fetchPanel(link.dataset.liveLink);
    if (next && panel) panel.replaceWith(next);
  });

  // --- RESERVE DSNS: the action shows as running, then a banner -------------------------------

  function runningRow(count, model) {
    const table = $("#actions-table tbody");
    if (!table) return null;
    const row = element("tr", "row-running");
    row.dataset.testid = "running-row";
    const cells = [
      element("td", "", "Reserve"),
      element("td", "num", count),
      element("td"),
      element("td", "", $(".who-email")?.textContent || ""),
      element("td", "nowrap", "now"),
      element("td", "muted", "—"),
    ];
    cells[0].append(element("span", "cell-sub", model));
    cells[2].append(element("span", "pill pill-running", "running"));
    row.append(...cells);
    table.prepend(row);
    $("tr.empty", table)?.remove();
    return row;
  }

  for (const form of $$("form[data-reserve-form]")) {
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const data = new FormData(form);
      const banners = $("#page-banners");
      const count = data.get("count");
      const model = data.get("model");
      form.closest("dialog")?.close();
      const row = runningRow(count, model);
      const note = running(`Reserving ${count} ${model} DSNs…`);
      banners.replaceChildren(note);
      setBusy(form, true);
      try {
        const response = await fetch(form.action, {
          method: "POST",
          body: new URLSearchParams(data),
          credentials: "same-origin",
        });
        if (response.ok && response.redirected) {
          window.location.assign(response.url); // the list, with the result banner and downloads
          return;
        }
        banners.replaceChildren(errorFrom(await response.text(), response.status));
      } catch (error) {
        banners.replaceChildren(banner("error", `Network error: ${error.message}`));
      }
      row?.remove();
      setBusy(form, false);
    });
  }

  // --- uploads: VALIDATE or SUBMIT, then follow the action's progress in the dialog ----------

  for (const form of $$("form[data-upload-form]")) {
    const live = $("[data-upload-live]", form);
    const dialog = form.closest("dialog");
    let uploaded = false;

    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const data = new FormData(form, event.submitter);
      const validating = data.get("validate_only") === "true";
      live.replaceChildren(running(validating ? "Uploading the file to validate it…" : "Uploading the file…"));
      setBusy(form, true);
      try {
        const response = await fetch(form.action, { method: "POST", body: data, credentials: "same-origin" });
        if (leftTheDashboard(response)) {
          window.location.assign(response.url);
          return;
        }
        if (!response.ok) {
          live.replaceChildren(errorFrom(await response.text(), response.status));
        } else {
          uploaded = true;
          const panel = await fetchPanel(`${new URL(response.url).pathname}/live`);
          if (panel) {
            live.replaceChildren(panel);
            await follow(panel);
          }
        }
      } catch (error) {
        live.replaceChildren(banner("error", `Network error: ${error.message}`));
      }
      setBusy(form, false);
    });

    // The list behind the dialog shows the new actions once the dialog is closed.
    dialog?.addEventListener("close", () => {
      if (uploaded) window.location.reload();
    });
  }
})();
