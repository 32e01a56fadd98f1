// Keyboard shortcuts of the review page (#19): 1/2/3 verdict, Enter complete
// and next, s skip, j/k next/previous item, ? help. No inline script (CSP):
// the page gives its links in the json_script block "review-keys".
(function () {
  "use strict";
  const data = document.getElementById("review-keys");
  if (!data) return;
  const keys = JSON.parse(data.textContent);
  const form = document.getElementById("review-form");
  const help = document.getElementById("review-help");

  function toggleHelp(show) {
    if (!help) return;
    help.hidden = show === undefined ? !help.hidden : !show;
  }

  function typing(target) {
    return target && (target.isContentEditable || ["INPUT", "TEXTAREA", "SELECT"].includes(target.tagName)) &&
      !(target.tagName === "INPUT" && ["radio", "checkbox"].includes(target.type));
  }

  function submit(action) {
    if (!form) return;
    const button = form.querySelector(`button[name=action][value=${action}]`);
    if (action === "complete" && !form.querySelector("input[name=verdict]:checked")) {
      form.querySelector("input[name=verdict]").reportValidity();
      return;
    }
    form.requestSubmit(button);
  }

  document.querySelectorAll(".help-link").forEach((link) =>
    link.addEventListener("click", (event) => { event.preventDefault(); toggleHelp(); }));

  document.addEventListener("keydown", (event) => {
    if (event.altKey || event.metaKey) return;
    if (event.key === "Escape") { toggleHelp(false); return; }
    if (typing(event.target)) {
      if (event.key === "Enter" && event.ctrlKey) { event.preventDefault(); submit("complete"); }
      return;
    }
    if (event.ctrlKey) return;
    const verdicts = form ? form.querySelectorAll("input[name=verdict]") : [];
    switch (event.key) {
      case "1": case "2": case "3": {
        const radio = verdicts[Number(event.key) - 1];
        if (radio) { radio.checked = true; radio.focus(); event.preventDefault(); }
        break;
      }
      case "Enter":
        if (event.target && event.target.tagName === "BUTTON") return; // the button's own action
        event.preventDefault();
        submit("complete");
        break;
      case "s":
        event.preventDefault();
        submit("skip");
        break;
      case "j":
        if (keys.next) window.location.assign(keys.next);
        break;
      case "k":
        if (keys.prev) window.location.assign(keys.prev);
        break;
      case "?":
        event.preventDefault();
        toggleHelp();
        break;
      default:
    }
  });
})();
