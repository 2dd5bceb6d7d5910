// Tollgate's one script: progressive enhancement only. Every page works without it.
"use strict";
document.addEventListener("click", (event) => {
  const copy = event.target.closest("[data-copy]");
  if (copy) {
    const source = document.getElementById(copy.dataset.copy);
    if (source && navigator.clipboard) {
      navigator.clipboard.writeText(source.textContent.trim()).then(
        () => { copy.textContent = "Copied"; },
        () => { copy.textContent = "Select and copy"; }
      );
    }
  }
});
document.addEventListener("submit", (event) => {
  const button = event.submitter || event.target.querySelector("[data-confirm]");
  const question = button && button.dataset ? button.dataset.confirm : "";
  if (question && !window.confirm(question)) {
    event.preventDefault();
  }
});
